"""The page comparison of `resort-sync diff` (src/engine/pages.c) on
databases large enough to have multi-level b-trees, overflow chains and
WAL frames that are not checkpointed.

A base database A holds a rowid table with values that overflow (some
updated in place at the same size, so only their overflow pages change),
WITHOUT ROWID tables (TEXT key, NOCASE key, descending composite key, keys
too large for their page), a composite-key rowid table, a table without a
primary key, and an FTS5 table.  Each round copies A to B and changes B at
random: through a rollback journal, or in WAL mode with the connection kept
open and checkpoints off, so the diff must read the frames; some rounds
VACUUM, so every page moves.  Checked per round:

  1. `diff A B` and `diff --plain A B` print the same bytes;
  2. the diff applied to a copy of A gives B (tests/lib/dbcompare.py);
  3. the page comparison was used, and read fewer rows than the plain diff,
     in the rounds without VACUUM.

A WITHOUT ROWID table keeps whole rows in its interior pages too: one
check deletes a row and updates another that live on interior pages of
`kv` (found by reading the file), and compares the two diffs.

Then a writer process commits ten rows and a counter per transaction to a
WAL database while `diff` runs again and again: every diff applied must
give a state that was committed (rows 1..10k and the counter k), never a
mix of two.

RS_SEED fixes the seed; RS_ROUNDS the number of rounds (default 12).
"""
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.environ.get("ROOT", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BUILD = os.environ.get("BUILD", "build")
RS = os.path.join(ROOT, BUILD, "resort-sync")
APPLY = os.path.join(ROOT, BUILD, "tools", "apply_sql")
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import dbcompare  # noqa: E402
import e2e  # noqa: E402
from e2e import report  # noqa: E402

SEED = int(os.environ.get("RS_SEED", random.randrange(1 << 30)))
ROUNDS = int(os.environ.get("RS_ROUNDS", "12"))


def run(args):
    return subprocess.run(args, capture_output=True)


def word(r, n=8):
    return "".join(r.choice("abcdefghijKLMNOP") for _ in range(r.randrange(1, n)))


def build_base(path, r):
    c = sqlite3.connect(path)
    c.executescript("""
        CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, payload BLOB);
        CREATE INDEX items_name ON items(name);
        CREATE TABLE kv(k TEXT PRIMARY KEY, v) WITHOUT ROWID;
        CREATE TABLE ci(k TEXT COLLATE NOCASE PRIMARY KEY, v) WITHOUT ROWID;
        CREATE TABLE dsc(a INTEGER, b TEXT, v, PRIMARY KEY(a DESC, b)) WITHOUT ROWID;
        CREATE TABLE bigkey(k BLOB PRIMARY KEY, v) WITHOUT ROWID;
        CREATE TABLE pairs(a INTEGER, b TEXT, v REAL, PRIMARY KEY(a, b));
        CREATE TABLE nopk(a, b);
        CREATE VIRTUAL TABLE notes USING fts5(body);
        CREATE TABLE seq(id INTEGER PRIMARY KEY, grp INTEGER);
        CREATE TABLE counter(id INTEGER PRIMARY KEY, n INTEGER);
        INSERT INTO counter VALUES(1, 0);
    """)
    for i in range(1, 6001):
        size = r.choice([20, 60, 150]) if r.random() < 0.93 else r.randrange(5000, 20000)
        c.execute("INSERT INTO items VALUES(?,?,?)", (i * 3, word(r), r.randbytes(size)))
    for i in range(4000):
        c.execute("INSERT OR IGNORE INTO kv VALUES(?,?)", ("k%06d" % r.randrange(10 ** 6), r.random()))
    for i in range(2500):
        c.execute("INSERT OR IGNORE INTO ci VALUES(?,?)", (word(r, 10) + str(i), i))
    for i in range(2500):
        c.execute("INSERT OR IGNORE INTO dsc VALUES(?,?,?)", (r.randrange(500), word(r), r.random()))
    for i in range(300):
        k = r.randbytes(r.choice([8, 40, 3000]))
        c.execute("INSERT OR IGNORE INTO bigkey VALUES(?,?)", (k, i))
    for i in range(3000):
        c.execute("INSERT OR IGNORE INTO pairs VALUES(?,?,?)", (r.randrange(1000), word(r), r.random() * 1e6))
    for i in range(3000):
        c.execute("INSERT INTO nopk VALUES(?,?)", (r.random(), word(r)))
    for i in range(800):
        c.execute("INSERT INTO notes VALUES(?)", (" ".join(word(r) for _ in range(r.randrange(3, 60))),))
    c.commit()
    c.close()


def mutate(c, r):
    for _ in range(r.randrange(1, 25)):
        op = r.randrange(14)
        if op == 0:
            c.execute("UPDATE items SET name = ? WHERE id = ?", (word(r), 3 * r.randrange(1, 6001)))
        elif op == 1:  # same size: the overflow pages change, the leaf may not
            row = c.execute("SELECT id, length(payload) FROM items WHERE length(payload) > 4000"
                            " ORDER BY random() LIMIT 1").fetchone()
            if row:
                c.execute("UPDATE items SET payload = ? WHERE id = ?", (r.randbytes(row[1]), row[0]))
        elif op == 2:  # into or out of overflow
            c.execute("UPDATE items SET payload = ? WHERE id = ?",
                      (r.randbytes(r.choice([30, 9000])), 3 * r.randrange(1, 6001)))
        elif op == 3:
            lo = 3 * r.randrange(1, 6001)
            c.execute("DELETE FROM items WHERE id BETWEEN ? AND ?", (lo, lo + r.randrange(1, 200)))
        elif op == 4:  # between existing rowids, and past the end
            i = r.randrange(1, 18100)
            c.execute("INSERT OR IGNORE INTO items VALUES(?,?,?)", (i, word(r), r.randbytes(40)))
        elif op == 5:
            c.execute("INSERT OR REPLACE INTO kv VALUES(?,?)", ("k%06d" % r.randrange(10 ** 6), r.random()))
            c.execute("DELETE FROM kv WHERE k = (SELECT k FROM kv ORDER BY random() LIMIT 1)")
        elif op == 6:  # only the case of a NOCASE key changes: the same row
            row = c.execute("SELECT k FROM ci ORDER BY random() LIMIT 1").fetchone()
            c.execute("UPDATE ci SET k = ? WHERE k = ?", (row[0].swapcase(), row[0]))
        elif op == 7:
            c.execute("INSERT OR IGNORE INTO dsc VALUES(?,?,?)", (r.randrange(500), word(r), r.random()))
            c.execute("DELETE FROM dsc WHERE a = ?", (r.randrange(500),))
        elif op == 8:
            c.execute("INSERT OR IGNORE INTO bigkey VALUES(?,?)", (r.randbytes(r.choice([8, 3000])), -1))
            c.execute("UPDATE bigkey SET v = v + 1 WHERE k = (SELECT k FROM bigkey ORDER BY random() LIMIT 1)")
        elif op == 9:
            c.execute("UPDATE pairs SET v = ? WHERE rowid = ?", (r.random(), r.randrange(1, 3000)))
        elif op == 10:
            c.execute("UPDATE nopk SET b = ? WHERE rowid = ?", (word(r), r.randrange(1, 3000)))
            c.execute("DELETE FROM nopk WHERE rowid = ?", (r.randrange(1, 3000),))
        elif op == 11:
            c.execute("INSERT INTO notes VALUES(?)", (" ".join(word(r) for _ in range(40)),))
            c.execute("DELETE FROM notes WHERE rowid = ?", (r.randrange(1, 800),))
        elif op == 12:  # many rows of one table
            c.execute("UPDATE items SET name = name || 'x' WHERE id % 7 = ?", (r.randrange(7),))
        else:
            pass  # nothing but the ops before


def stats_rows(stderr):
    for part in stderr.decode().split(";"):
        if part.strip().startswith("rows read:"):
            return int(part.split(":")[1])
    return -1


def rounds(tmp, rnd):
    a = os.path.join(tmp, "a.db")
    build_base(a, random.Random(rnd.randrange(1 << 30)))
    bad = {"same": [], "apply": [], "used": []}
    used = 0
    for k in range(ROUNDS):
        r = random.Random(rnd.randrange(1 << 30))
        b = os.path.join(tmp, "b.db")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(b + suffix):
                os.remove(b + suffix)
        shutil.copy(a, b)
        wal = k % 2 == 1
        vacuum = k % 5 == 4 and not wal
        c = sqlite3.connect(b, isolation_level=None)
        if wal:
            c.execute("PRAGMA journal_mode = WAL")
            c.execute("PRAGMA wal_autocheckpoint = 0")
        c.execute("BEGIN")
        mutate(c, r)
        c.execute("COMMIT")
        if wal:  # a second transaction, so frames of two commits are in the WAL
            c.execute("BEGIN")
            mutate(c, r)
            c.execute("COMMIT")
        if vacuum:
            c.execute("VACUUM")
        # (the connection stays open: in WAL mode its frames are not checkpointed)
        fast = run([RS, "diff", "--stats", a, b])
        plain = run([RS, "diff", "--plain", "--stats", a, b])
        if fast.returncode or plain.returncode or fast.stdout != plain.stdout:
            bad["same"].append("round %d (wal %d vacuum %d): %d vs %d bytes %s %s" % (
                k, wal, vacuum, len(fast.stdout), len(plain.stdout), fast.stderr[-300:], plain.stderr[-300:]))
            c.close()
            continue
        if wal and not os.path.exists(b + "-wal"):
            bad["same"].append("round %d: the WAL was checkpointed away; the test did not test frames" % k)
        sql = os.path.join(tmp, "d.sql")
        open(sql, "wb").write(fast.stdout)
        res = os.path.join(tmp, "res.db")
        shutil.copy(a, res)
        ap = run([APPLY, res, sql])
        d = dbcompare.compare(res, b) if ap.returncode == 0 else [ap.stderr.decode()[:300]]
        if d:
            bad["apply"].append("round %d (wal %d): %s" % (k, wal, "; ".join(d)[:400]))
        on = b"page filter: on" in fast.stderr
        if not vacuum:
            if on and stats_rows(fast.stderr) < stats_rows(plain.stderr):
                used += 1
            else:
                bad["used"].append("round %d: %s" % (k, fast.stderr.decode().strip()[-300:]))
        c.close()
    report("fast_and_plain_diff_print_the_same_bytes_%d_rounds" % ROUNDS, not bad["same"],
           " | ".join(bad["same"][:2]) + " seed %d" % SEED)
    report("fast_diff_applied_gives_the_target", not bad["apply"], " | ".join(bad["apply"][:2]) + " seed %d" % SEED)
    report("page_comparison_used_and_read_fewer_rows", not bad["used"],
           "used in %d rounds; %s seed %d" % (used, " | ".join(bad["used"][:2]), SEED))


def varint(b, i):
    v = 0
    for k in range(9):
        if k == 8:
            return v << 8 | b[i + k], i + 9
        v = v << 7 | (b[i + k] & 0x7f)
        if not b[i + k] & 0x80:
            return v, i + k + 1


def interior_keys(path, table):
    """The first key column (TEXT) of every cell on the interior pages of a WITHOUT ROWID table."""
    c = sqlite3.connect(path)
    root = c.execute("SELECT rootpage FROM sqlite_schema WHERE name = ?", (table,)).fetchone()[0]
    ps = c.execute("PRAGMA page_size").fetchone()[0]
    c.close()
    data = open(path, "rb").read()
    keys, todo = [], [root]
    while todo:
        p = todo.pop()
        pg, h = data[(p - 1) * ps:p * ps], 100 if p == 1 else 0
        if pg[h] != 2:
            continue
        for i in range(int.from_bytes(pg[h + 3:h + 5], "big")):
            off = int.from_bytes(pg[h + 12 + 2 * i:h + 14 + 2 * i], "big")
            todo.append(int.from_bytes(pg[off:off + 4], "big"))
            _, rec = varint(pg, off + 4)
            hsize, q = varint(pg, rec)
            st, _ = varint(pg, q)
            keys.append(pg[rec + hsize:rec + hsize + (st - 13) // 2].decode())
        todo.append(int.from_bytes(pg[h + 8:h + 12], "big"))
    return keys


def interior_rows(tmp):
    a, b = os.path.join(tmp, "a.db"), os.path.join(tmp, "ib.db")
    shutil.copy(a, b)
    keys = interior_keys(b, "kv")
    ok, why = len(keys) >= 2, "kv has %d keys on interior pages; the test needs 2" % len(keys)
    if ok:
        c = sqlite3.connect(b)
        c.execute("DELETE FROM kv WHERE k = ?", (keys[0],))
        c.execute("UPDATE kv SET v = -1 WHERE k = ?", (keys[-1],))
        c.commit()
        c.close()
        fast = run([RS, "diff", "--stats", a, b])
        plain = run([RS, "diff", "--plain", a, b])
        want = [b"DELETE FROM \"kv\"", ("'%s'" % keys[-1]).encode()]
        ok = (fast.returncode == 0 and fast.stdout == plain.stdout and b"page filter: on" in fast.stderr
              and all(w in plain.stdout for w in want))
        why = "keys %s and %s: fast %d bytes, plain %d bytes; %s" % (
            keys[0], keys[-1], len(fast.stdout), len(plain.stdout), fast.stderr.decode().strip()[-300:])
    report("rows_on_interior_pages_of_a_without_rowid_table_are_diffed", ok, why)


# Tables re-created (or renamed) so that one name stands for a b-tree of
# another kind, key or collation on the two sides, the pages reused in
# place.  Each case: the SQL run on a copy of the old database, and which
# root page must be shared (a table's name, "old name=new name"), or None.
ROWS = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d) "
SWAPS = [
    ("without_rowid_to_rowid",
     "CREATE TABLE w(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
     "INSERT INTO w " + ROWS % 400 + "SELECT printf('k%04d', i), printf('%060d', i * 7919) FROM n;",
     "DROP TABLE w; CREATE TABLE w(k TEXT, v);"
     "INSERT INTO w " + ROWS % 300 + "SELECT printf('k%04d', i), hex(zeroblob(30)) FROM n;", "w"),
    ("rowid_to_without_rowid",
     "CREATE TABLE w(k TEXT, v);"
     "INSERT INTO w " + ROWS % 400 + "SELECT printf('k%04d', i), printf('%060d', i * 7919) FROM n;",
     "DROP TABLE w; CREATE TABLE w(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
     "INSERT INTO w " + ROWS % 300 + "SELECT printf('k%04d', i), hex(zeroblob(30)) FROM n;", "w"),
    ("integer_primary_key_to_without_rowid",
     "CREATE TABLE w(id INTEGER PRIMARY KEY, v);"
     "INSERT INTO w " + ROWS % 400 + "SELECT i, printf('%060d', i * 7919) FROM n;",
     "DROP TABLE w; CREATE TABLE w(id INTEGER PRIMARY KEY, v) WITHOUT ROWID;"
     "INSERT INTO w " + ROWS % 300 + "SELECT i, hex(zeroblob(30)) FROM n;", "w"),
    ("without_rowid_to_integer_primary_key",
     "CREATE TABLE w(id INTEGER PRIMARY KEY, v) WITHOUT ROWID;"
     "INSERT INTO w " + ROWS % 400 + "SELECT i, printf('%060d', i * 7919) FROM n;",
     "DROP TABLE w; CREATE TABLE w(id INTEGER PRIMARY KEY, v);"
     "INSERT INTO w " + ROWS % 300 + "SELECT i, hex(zeroblob(30)) FROM n;", "w"),
    ("without_rowid_key_of_one_column_to_two",
     "CREATE TABLE w(a TEXT, b INTEGER, v, PRIMARY KEY(a)) WITHOUT ROWID;"
     "INSERT INTO w " + ROWS % 400 + "SELECT printf('k%04d', i), i % 7, printf('%060d', i * 7919) FROM n;",
     "DROP TABLE w; CREATE TABLE w(a TEXT, b INTEGER, v, PRIMARY KEY(a, b)) WITHOUT ROWID;"
     "INSERT INTO w " + ROWS % 300 + "SELECT printf('k%04d', i / 2), i % 2, hex(zeroblob(30)) FROM n;", "w"),
    ("without_rowid_key_collation_changed",
     "CREATE TABLE w(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
     "INSERT INTO w " + ROWS % 400 + "SELECT printf('%s%04d', char(65 + i % 2 * 32), i), i FROM n;",
     "DROP TABLE w; CREATE TABLE w(k TEXT COLLATE NOCASE PRIMARY KEY, v) WITHOUT ROWID;"
     "INSERT INTO w " + ROWS % 300 + "SELECT printf('%s%04d', char(65 + i % 3 * 32), i), -i FROM n;", "w"),
    ("rowid_table_renamed_into_a_without_rowid_tables_name",
     "CREATE TABLE a(k TEXT, v); CREATE TABLE b(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
     "INSERT INTO a " + ROWS % 300 + "SELECT printf('a%04d', i), i FROM n;"
     "INSERT INTO b " + ROWS % 300 + "SELECT printf('b%04d', i), i FROM n;",
     "DROP TABLE b; ALTER TABLE a RENAME TO b; UPDATE b SET v = -v WHERE v % 50 = 0;", "a=b"),
    ("without_rowid_table_renamed_into_a_rowid_tables_name",
     "CREATE TABLE a(k TEXT PRIMARY KEY, v) WITHOUT ROWID; CREATE TABLE b(k TEXT, v);"
     "INSERT INTO a " + ROWS % 300 + "SELECT printf('a%04d', i), i FROM n;"
     "INSERT INTO b " + ROWS % 300 + "SELECT printf('b%04d', i), i FROM n;",
     "DROP TABLE b; ALTER TABLE a RENAME TO b; UPDATE b SET v = -v WHERE v % 50 = 0;", "a=b"),
    ("index_replaced_by_a_table_at_its_root_page",
     "CREATE TABLE t(k TEXT, v); CREATE INDEX x ON t(k);"
     "INSERT INTO t " + ROWS % 300 + "SELECT printf('t%04d', i), i FROM n;",
     "DROP INDEX x; CREATE TABLE x(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
     "INSERT INTO x " + ROWS % 200 + "SELECT printf('t%04d', i), -i FROM n;", "x"),
    ("index_replaced_by_a_rowid_table_at_its_root_page",
     "CREATE TABLE t(k TEXT, v); CREATE INDEX x ON t(k);"
     "INSERT INTO t " + ROWS % 300 + "SELECT printf('t%04d', i), i FROM n;",
     "DROP INDEX x; CREATE TABLE x(k TEXT, v);"
     "INSERT INTO x " + ROWS % 200 + "SELECT printf('t%04d', i), -i FROM n;", "x"),
    ("table_replaced_by_an_index_of_that_name_at_its_root_page",
     "CREATE TABLE t(k TEXT, v); CREATE TABLE x(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
     "INSERT INTO t " + ROWS % 300 + "SELECT printf('t%04d', i), i FROM n;"
     "INSERT INTO x " + ROWS % 300 + "SELECT printf('x%04d', i), i FROM n;",
     "DROP TABLE x; CREATE INDEX x ON t(k);", "x"),
]


def root_of(path, name):
    c = sqlite3.connect(path)
    row = c.execute("SELECT rootpage FROM sqlite_schema WHERE name = ?", (name,)).fetchone()
    c.close()
    return row[0] if row else None


def key_kind_swaps(tmp):
    """Every swap: the fast diff runs, prints what the plain one does, and applies to old to give new."""
    for name, old_sql, change, shared in SWAPS:
        for wal in (0, 1):
            old, new = os.path.join(tmp, "sw_old.db"), os.path.join(tmp, "sw_new.db")
            for path in (old, new):
                for suffix in ("", "-wal", "-shm"):
                    if os.path.exists(path + suffix):
                        os.remove(path + suffix)
            c = sqlite3.connect(old)
            c.executescript(old_sql)
            c.close()
            shutil.copy(old, new)
            c = sqlite3.connect(new, isolation_level=None)
            if wal:  # the new side's pages in WAL frames, the connection kept open
                c.execute("PRAGMA journal_mode = WAL")
                c.execute("PRAGMA wal_autocheckpoint = 0")
            c.executescript("BEGIN;" + change + "COMMIT;")
            was, now = shared.split("=") if "=" in shared else (shared, shared)
            setup = root_of(old, was) is not None and root_of(old, was) == root_of(new, now)
            fast = run([RS, "diff", "--stats", old, new])
            plain = run([RS, "diff", "--plain", old, new])
            ok = setup and fast.returncode == 0 and plain.returncode == 0 and fast.stdout == plain.stdout
            why = "root pages %s %s (must be the same); exit %d and %d, %d vs %d bytes; %s" % (
                root_of(old, was), root_of(new, now), fast.returncode, plain.returncode, len(fast.stdout),
                len(plain.stdout), fast.stderr.decode(errors="replace").strip()[-300:])
            if ok:
                sql = os.path.join(tmp, "sw.sql")
                open(sql, "wb").write(fast.stdout)
                res = os.path.join(tmp, "sw_res.db")
                shutil.copy(old, res)
                ap = run([APPLY, res, sql])
                d = dbcompare.compare(res, new) if ap.returncode == 0 else [ap.stderr.decode()[:300]]
                ok, why = not d, "; ".join(d)[:400]
            c.close()
            report("key_kind_swap_%s%s" % (name, "_wal" if wal else ""), ok, why)


WRITER = r"""
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("PRAGMA busy_timeout = 5000")
k = 0
end = time.time() + float(sys.argv[2])
while time.time() < end:
    k += 1
    c.execute("BEGIN IMMEDIATE")
    for i in range(10):
        c.execute("INSERT INTO seq VALUES(?, ?)", (10 * (k - 1) + i + 1, k))
        c.execute("UPDATE items SET name = ? WHERE id = ?", ("w%d" % k, 3 * (1 + (k * 10 + i) % 6000)))
    c.execute("UPDATE counter SET n = ? WHERE id = 1", (k,))
    c.execute("COMMIT")
"""


def concurrent(tmp):
    a = os.path.join(tmp, "a.db")
    b = os.path.join(tmp, "live.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(b + suffix):
            os.remove(b + suffix)
    shutil.copy(a, b)
    c = sqlite3.connect(b)
    c.execute("PRAGMA journal_mode = WAL")
    c.close()
    w = subprocess.Popen([sys.executable, "-c", WRITER, b, "8"])
    problems, runs, seen, filtered = [], 0, set(), 0
    time.sleep(0.3)
    try:
        while w.poll() is None and runs < 25:
            p = run([RS, "diff", "--stats", a, b])
            runs += 1
            if p.returncode:
                problems.append(p.stderr.decode()[:300])
                continue
            filtered += b"page filter: on" in p.stderr
            sql = os.path.join(tmp, "c.sql")
            open(sql, "wb").write(p.stdout)
            res = os.path.join(tmp, "cres.db")
            shutil.copy(a, res)
            ap = run([APPLY, res, sql])
            if ap.returncode:
                problems.append("apply: " + ap.stderr.decode()[:300])
                continue
            x = sqlite3.connect(res)
            n = x.execute("SELECT n FROM counter").fetchone()[0]
            cnt, mx = x.execute("SELECT count(*), coalesce(max(id), 0) FROM seq").fetchone()
            names = x.execute("SELECT count(*) FROM items WHERE name LIKE 'w%'").fetchone()[0]
            x.close()
            seen.add(n)
            if cnt != 10 * n or mx != 10 * n:
                problems.append("run %d: counter %d but %d rows up to id %d (a mix of states)" % (runs, n, cnt, mx))
            if n and not names:
                problems.append("run %d: counter %d but no item renamed" % (runs, n))
    finally:
        w.wait()
    report("diff_of_a_live_wal_database_gives_one_committed_state_%d_runs" % runs,
           not problems and runs >= 3 and len(seen) >= 2 and filtered * 2 >= runs,
           "; ".join(problems[:3]) or "runs %d, states seen %s, page filter used %d times"
           % (runs, sorted(seen), filtered))


def main():
    rnd = random.Random(SEED)
    tmp = tempfile.mkdtemp(prefix="rs-pages-")
    try:
        key_kind_swaps(tmp)
        rounds(tmp, rnd)
        interior_rows(tmp)
        concurrent(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if e2e.failed else 0


if __name__ == "__main__":
    sys.exit(main())
