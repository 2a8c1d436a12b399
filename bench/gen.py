#!/usr/bin/env python3
"""gen.py: build the benchmark databases for bench/run.sh.

Writes into OUTDIR (default $BENCH_DIR or /tmp/resort-sync-bench):

  old.db    the "big" database: items (rowid table + secondary index),
            kv (WITHOUT ROWID), pairs (composite primary key)
  new.db    a copy of old.db with about 100 changed rows spread over the
            three tables (updates, inserts and deletes)
  small.db  a 50,000-row items-only database, kept for a D1 load benchmark
  params.txt  the parameters the files were built with; when it matches the
            current request the files are reused (generation is slow)

Everything comes from one seeded random.Random, so the same options give
byte-identical content on every machine with the same SQLite page layout.

At --scale 1 (the default) old.db is about 320 MB: 1,000,000 items rows,
100,000 kv rows and 200,000 pairs rows.  --scale 0.05 is the quick mode.
"""
import argparse
import os
import random
import shutil
import sqlite3
import string
import sys
import time

SEED = 20240611

# Average sizes (bytes) chosen so a full-scale old.db lands near 320 MB
# and small.db near 13 MB.
PAYLOAD_MIN, PAYLOAD_MAX = 120, 280   # items.payload BLOB
SMALL_PAYLOAD_MIN, SMALL_PAYLOAD_MAX = 100, 230
KV_V_MIN, KV_V_MAX = 40, 160          # kv.v TEXT

WORDS = (
    "alpine bay beach cabin canyon cliff coast cove creek delta dune "
    "field forest glacier grove harbor hill island lagoon lake marsh "
    "meadow mesa oasis orchard peak pier plain plateau pond prairie "
    "reef ridge river shore spring summit terrace tundra valley vista "
    "bungalow chalet lodge villa suite studio loft hostel inn resort"
).split()
TAGS = (
    "pool spa wifi pets parking gym bar kitchen breakfast shuttle "
    "beachfront ski family quiet accessible ev-charger sauna view"
).split()


def schema_big(db):
    db.executescript(
        """
        CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, price REAL,
                           qty INTEGER, tags TEXT, payload BLOB);
        CREATE TABLE kv(k TEXT PRIMARY KEY, v TEXT, n INTEGER) WITHOUT ROWID;
        CREATE TABLE pairs(a INTEGER, b TEXT, v REAL, PRIMARY KEY(a, b));
        """
    )


def item_row(rng, i, pmin=PAYLOAD_MIN, pmax=PAYLOAD_MAX):
    name = "%s %s %d" % (rng.choice(WORDS), rng.choice(WORDS), rng.randrange(10000))
    price = round(rng.uniform(20, 2000), 2)
    qty = rng.randrange(0, 500)
    tags = ",".join(rng.sample(TAGS, rng.randrange(1, 6)))
    payload = rng.randbytes(rng.randrange(pmin, pmax + 1))
    return (i, name, price, qty, tags, payload)


def kv_key(i):
    # Spread keys so their sort order differs from insertion order.
    return "key-%08x" % ((i * 2654435761) & 0xFFFFFFFF)


def kv_row(rng, i):
    n = rng.randrange(KV_V_MIN, KV_V_MAX + 1)
    v = "".join(rng.choices(string.ascii_letters + string.digits + " ", k=n))
    return (kv_key(i), v, rng.randrange(-10**6, 10**6))


def pair_row(rng, i):
    # a in [0, n/4), four distinct b per a on average.
    return (i // 4, "b%05d-%s" % (i % 4 * 7919 % 100000, rng.choice(WORDS)),
            rng.random() * 1000)


def open_fast(path):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-262144")
    return db


def fill(db, sql, gen, n, batch=20000):
    for start in range(0, n, batch):
        db.executemany(sql, (gen(i) for i in range(start, min(n, start + batch))))


def build_big(path, n_items, n_kv, n_pairs, seed):
    rng = random.Random(seed)
    db = open_fast(path)
    schema_big(db)
    db.execute("BEGIN")
    fill(db, "INSERT INTO items VALUES(?,?,?,?,?,?)", lambda i: item_row(rng, i + 1), n_items)
    fill(db, "INSERT INTO kv VALUES(?,?,?)", lambda i: kv_row(rng, i), n_kv)
    fill(db, "INSERT INTO pairs VALUES(?,?,?)", lambda i: pair_row(rng, i), n_pairs)
    db.execute("CREATE INDEX items_name ON items(name)")
    db.execute("COMMIT")
    db.close()


def mutate(path, n_items, n_kv, n_pairs, seed):
    """About 100 changed rows: per table updates, inserts, deletes."""
    rng = random.Random(seed + 1)
    db = open_fast(path)
    db.execute("BEGIN")
    changed = 0
    # items: 30 updates, 15 inserts (past the end), 15 deletes
    ids = rng.sample(range(1, n_items + 1), 45)
    for i in ids[:30]:
        kind = rng.randrange(3)
        if kind == 0:
            db.execute("UPDATE items SET price = price + 1.25 WHERE id=?", (i,))
        elif kind == 1:
            db.execute("UPDATE items SET name = name || ' (renovated)', qty = qty + 1 WHERE id=?", (i,))
        else:
            db.execute("UPDATE items SET payload = ? WHERE id=?", (rng.randbytes(200), i))
        changed += 1
    for i in ids[30:]:
        db.execute("DELETE FROM items WHERE id=?", (i,))
        changed += 1
    for j in range(15):
        db.execute("INSERT INTO items VALUES(?,?,?,?,?,?)", item_row(rng, n_items + 1 + j))
        changed += 1
    # kv: 10 updates, 5 inserts, 5 deletes
    ks = rng.sample(range(n_kv), 15)
    for i in ks[:10]:
        db.execute("UPDATE kv SET v = v || '!', n = n + 1 WHERE k=?", (kv_key(i),))
        changed += 1
    for i in ks[10:]:
        db.execute("DELETE FROM kv WHERE k=?", (kv_key(i),))
        changed += 1
    for j in range(5):
        row = kv_row(rng, n_kv + j)
        db.execute("INSERT INTO kv VALUES(?,?,?)", row)
        changed += 1
    # pairs: 10 updates, 5 inserts, 5 deletes
    rows = db.execute("SELECT a, b FROM pairs WHERE rowid IN (%s)" %
                      ",".join(str(r) for r in rng.sample(range(1, n_pairs + 1), 15))).fetchall()
    for a, b in rows[:10]:
        db.execute("UPDATE pairs SET v = -v WHERE a=? AND b=?", (a, b))
        changed += 1
    for a, b in rows[10:]:
        db.execute("DELETE FROM pairs WHERE a=? AND b=?", (a, b))
        changed += 1
    for j in range(5):
        db.execute("INSERT INTO pairs VALUES(?,?,?)", (n_pairs + j, "new-%d" % j, j * 1.5))
        changed += 1
    db.execute("COMMIT")
    db.close()
    return changed


def build_small(path, n, seed):
    rng = random.Random(seed + 2)
    db = open_fast(path)
    db.execute("CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, price REAL,"
                " qty INTEGER, tags TEXT, payload BLOB)")
    db.execute("BEGIN")
    fill(db, "INSERT INTO items VALUES(?,?,?,?,?,?)", lambda i: item_row(rng, i + 1, SMALL_PAYLOAD_MIN, SMALL_PAYLOAD_MAX), n)
    db.execute("CREATE INDEX items_name ON items(name)")
    db.execute("COMMIT")
    db.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("BENCH_DIR", "/tmp/resort-sync-bench"))
    ap.add_argument("--scale", type=float, default=1.0,
                    help="fraction of the full-size row counts (quick mode: 0.05)")
    ap.add_argument("--rows", type=int, help="items rows (overrides --scale; kv and pairs follow)")
    ap.add_argument("--small-rows", type=int, default=50000)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--force", action="store_true", help="rebuild even if params match")
    a = ap.parse_args()

    n_items = a.rows if a.rows else max(1000, int(1_000_000 * a.scale))
    n_kv = max(100, n_items // 10)
    n_pairs = max(200, n_items // 5)
    params = "items=%d kv=%d pairs=%d small=%d seed=%d gen=2\n" % (
        n_items, n_kv, n_pairs, a.small_rows, a.seed)

    os.makedirs(a.out, exist_ok=True)
    stamp = os.path.join(a.out, "params.txt")
    files = [os.path.join(a.out, f) for f in ("old.db", "new.db", "small.db")]
    if not a.force and all(os.path.exists(f) for f in files + [stamp]):
        with open(stamp) as f:
            if f.read() == params:
                print("gen: reusing %s (%s)" % (a.out, params.strip()))
                return 0
    for f in files + [stamp]:
        if os.path.exists(f):
            os.remove(f)

    t0 = time.time()
    old, new, small = files
    build_big(old + ".tmp", n_items, n_kv, n_pairs, a.seed)
    os.replace(old + ".tmp", old)
    shutil.copyfile(old, new + ".tmp")
    changed = mutate(new + ".tmp", n_items, n_kv, n_pairs, a.seed)
    os.replace(new + ".tmp", new)
    build_small(small + ".tmp", a.small_rows, a.seed)
    os.replace(small + ".tmp", small)
    with open(stamp, "w") as f:
        f.write(params)
    mb = lambda p: os.path.getsize(p) / 1e6
    print("gen: %s in %.0fs: old.db %.1f MB, new.db %.1f MB (%d changed rows), small.db %.1f MB"
          % (params.strip(), time.time() - t0, mb(old), mb(new), changed, mb(small)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
