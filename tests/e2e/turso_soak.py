"""End-to-end soak: two resort-sync clients SIGKILLed at random plus the official client, one tursodb.

Three writers share one `tursodb --sync-server`:

  A, B   a local database each, written by a thread without pause, synced by
         `resort-sync sync` (and now and then `resort-sync run`) processes
         that are killed with SIGKILL after a random delay;
  J      the official client (@tursodatabase/sync through turso_official.js):
         every few seconds one pull, a transaction, one push.

Every write transaction of writer W inserts its own row kv('W-<i>') (disjoint
rows), sets its counter row counters(W) to i, and upserts or deletes one of
a few shared rows (overlapping rows: the last pushed write wins).  A write
is acknowledged when it committed locally (A, B) or its push returned (J).

At the end (writers stopped, clean cycles until nothing moves) the server, A,
B and the official client's copy must be identical, and every acknowledged
write present: for each writer, rows W-1..W-n and counters(W) = n.

RS_TURSO_SOAK_SECONDS (default 30) is the length; `make soak-turso` runs
600.  RS_TURSO_SOAK_HARD=1 adds tables with no declared key, a NOCASE key and
a UNIQUE secondary column (each writer's row takes one of 8 emails with
INSERT OR REPLACE), and checks them too: identical on every side, every
acknowledged no-key row on the server exactly once; the rows set aside in
_resort_sync_conflicts (UNIQUE values two writers took at once) are counted.
Off by default.  RS_SEED fixes the random choices.
"""
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import turso_sync as ts  # noqa: E402
from turso_sync import Client, Server, local_rows, same_table  # noqa: E402
from e2e import report  # noqa: E402

SECONDS = float(os.environ.get("RS_TURSO_SOAK_SECONDS", "30"))
HARD = os.environ.get("RS_TURSO_SOAK_HARD", "") not in ("", "0")
SEED = int(os.environ.get("RS_SEED", random.randrange(1 << 30)))
SHARED = 8

SCHEMA = ["CREATE TABLE kv(id TEXT PRIMARY KEY, writer TEXT, n INTEGER, v TEXT)",
          "CREATE TABLE counters(writer TEXT PRIMARY KEY, n INTEGER NOT NULL)",
          "INSERT INTO counters VALUES ('A', 0), ('B', 0), ('J', 0)"]
HARD_SCHEMA = ["CREATE TABLE nokey(writer TEXT, n INTEGER, v TEXT)",
               "CREATE TABLE nocase(k TEXT COLLATE NOCASE PRIMARY KEY, writer TEXT, n INTEGER)",
               "CREATE TABLE uniq(id INTEGER PRIMARY KEY, email TEXT UNIQUE, writer TEXT)"]
TABLES = ["kv", "counters"] + (["nokey", "nocase", "uniq"] if HARD else [])


def statements(w, i, rng):
    """The SQL of writer w's transaction i (literal values: the official client takes plain SQL)."""
    k = rng.randrange(SHARED)
    out = ["INSERT INTO kv VALUES ('%s-%d', '%s', %d, 'own %d')" % (w, i, w, i, i),
           "UPDATE counters SET n = %d WHERE writer = '%s'" % (i, w)]
    if rng.random() < 0.15:
        out.append("DELETE FROM kv WHERE id = 'shared-%d'" % k)
    else:
        out.append("INSERT INTO kv VALUES ('shared-%d', '%s', %d, 'by %s %d') ON CONFLICT(id) DO UPDATE SET "
                   "writer = excluded.writer, n = excluded.n, v = excluded.v" % (k, w, i, w, i))
    if HARD:
        out.append("INSERT INTO nokey VALUES ('%s', %d, 'x')" % (w, i))
        key = "Key-%d" % rng.randrange(SHARED)
        out.append("INSERT INTO nocase VALUES ('%s', '%s', %d) ON CONFLICT(k) DO UPDATE SET writer = "
                   "excluded.writer, n = excluded.n" % (key.lower() if rng.random() < 0.5 else key.upper(), w, i))
        out.append("INSERT OR REPLACE INTO uniq(id, email, writer) VALUES (%d, 'u%d@x', '%s')"
                   % ({"A": 1, "B": 2, "J": 3}[w] * 1000000 + i, rng.randrange(SHARED), w))
    return out


class Writer(threading.Thread):
    """Commits transactions to a local database until stopped; counts them."""

    def __init__(self, cl, name, seed):
        super().__init__()
        self.cl, self.name_, self.rng = cl, name, random.Random(seed)
        self.acked = 0
        self.stop = threading.Event()
        self.errors = []

    def run(self):
        c = sqlite3.connect(self.cl.db, isolation_level=None, timeout=30)
        while not self.stop.is_set():
            i = self.acked + 1
            try:
                c.execute("BEGIN IMMEDIATE")
                for s in statements(self.name_, i, self.rng):
                    c.execute(s)
                c.execute("COMMIT")
                self.acked = i
            except sqlite3.Error as e:  # busy beyond the timeout: not acknowledged, try again
                if c.in_transaction:
                    c.execute("ROLLBACK")
                self.errors.append(str(e))
            time.sleep(self.rng.uniform(0.002, 0.03))
        c.close()


class Killer(threading.Thread):
    """Starts resort-sync for a client again and again, killing each at a random moment."""

    def __init__(self, cl, seed):
        super().__init__()
        self.cl, self.rng = cl, random.Random(seed)
        self.stop = threading.Event()
        self.kills = self.cycles = self.daemons = 0

    def run(self):
        while not self.stop.is_set():
            daemon = self.rng.random() < 0.15
            cmd = [ts.RS, "-q", "-c", self.cl.cfg, "run" if daemon else "sync"]
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(self.rng.uniform(1.5, 4) if daemon else self.rng.uniform(0, 0.6))
            if p.poll() is None:
                p.kill()
                self.kills += 1
            p.wait()
            self.cycles += 1
            self.daemons += daemon


class Official(threading.Thread):
    """The official client: pull, one transaction, push, every few seconds."""

    def __init__(self, srv, d, seed):
        super().__init__()
        self.srv, self.js, self.rng = srv, os.path.join(d, "js.db"), random.Random(seed)
        self.env = dict(os.environ, ROOT=ts.ROOT)
        self.stop = threading.Event()
        self.acked = 0   # highest i whose push returned
        self.tried = 0
        self.failures = []

    def exec(self, *sql):
        return subprocess.run(["node", ts.OFFICIAL, "exec", self.srv.url, self.js] + list(sql),
                              capture_output=True, text=True, env=self.env, timeout=120)

    def run(self):
        while not self.stop.is_set():
            i = self.tried + 1
            stmts = statements("J", i, self.rng)
            p = self.exec("BEGIN", *stmts, "COMMIT")
            if p.returncode == 0:
                self.acked = self.tried = i
            else:
                # The transaction may be local only: the next exec pushes it with its own.
                self.tried = i
                self.failures.append(p.stderr[-300:])
            self.stop.wait(self.rng.uniform(1, 3))

    def dump(self, table):
        p = subprocess.run(["node", ts.OFFICIAL, "dump", self.srv.url, self.js, table],
                           capture_output=True, text=True, env=self.env, timeout=120)
        return [json.loads(x) for x in p.stdout.splitlines()], p.returncode


def ids(rows):
    return {r[1][1].decode() for r in rows}


def main():
    if not os.path.exists(ts.TURSODB) or not shutil.which("node"):
        print("SKIP turso_soak: tursodb or node missing (run scripts/deps.sh)")
        return 0
    print("soak: seed %d, %.0f s, hard tables %s" % (SEED, SECONDS, "on" if HARD else "off"))
    d = tempfile.mkdtemp(prefix="rs-turso-soak-")
    srv = Server(d)
    try:
        run(d, srv)
    except Exception as e:
        report("soak_ran", False, "exception %r" % (e,))
    finally:
        srv.stop()
        shutil.rmtree(d, ignore_errors=True)
    return 1 if ts.e2e.failed else 0


def run(d, srv):
    a, b = Client(d, "a", srv), Client(d, "b", srv)
    a.sql(*(SCHEMA + (HARD_SCHEMA if HARD else [])))
    rc, out = a.sync()
    rc2, out2 = b.sync()
    if rc or rc2:
        report("soak_setup", False, out[-300:] + out2[-300:])
        return
    off = Official(srv, d, SEED + 3)
    p = off.exec("SELECT 1")          # the official client's first pairing
    if p.returncode != 0:
        report("soak_setup_official", False, p.stderr[-300:])
        return
    wa, wb = Writer(a, "A", SEED + 1), Writer(b, "B", SEED + 2)
    ka, kb = Killer(a, SEED + 4), Killer(b, SEED + 5)
    threads = [wa, wb, ka, kb, off]
    for t in threads:
        t.start()
    time.sleep(SECONDS)
    for t in threads:
        t.stop.set()
    for t in threads:
        t.join()
    # Settle: clean cycles on every side until two rounds in a row change nothing.
    last = None
    for rnd in range(8):
        for cl in (a, b):
            rc, out = cl.sync()
            if rc:
                print("settle: %s: %s" % (cl.db, out[-300:]))
        off.exec("SELECT 1")
        now = [srv.rows(t) for t in TABLES]
        if now == last:
            break
        last = now
    print("soak: A %d writes, %d cycles (%d daemons), %d killed; B %d writes, %d cycles (%d daemons), %d killed; "
          "official %d pushed of %d, %d failed; settled in %d rounds"
          % (wa.acked, ka.cycles, ka.daemons, ka.kills, wb.acked, kb.cycles, kb.daemons, kb.kills,
             off.acked, off.tried, len(off.failures), rnd + 1))
    for f in off.failures[:3]:
        print("official push failed: %s" % f.replace("\n", " | "))
    # Every side identical.
    diffs = []
    for t in TABLES:
        for cl in (a, b):
            ok, why = same_table(cl.db, srv, t)
            if not ok:
                diffs.append((t, "%s %s" % (os.path.basename(cl.db), why)))
        theirs, jrc = off.dump(t)
        mine = [[r[0]] + [(c[0], c[1]) for c in r[1:]] for r in srv.rows(t)]
        if jrc != 0 or len(theirs) != len(mine) or [r[0] for r in theirs] != [r[0][1] for r in mine]:
            diffs.append((t, "official %s: %d rows vs %d on the server" % (t, len(theirs), len(mine))))
    core = [x for t, x in diffs if t in ("kv", "counters")]
    report("soak_every_side_identical", not core, "; ".join(core)[:1500])
    # Every acknowledged write present, by per-writer counters and own rows.
    rows = srv.rows("kv")
    have = ids(rows)
    counters = {r[1][1].decode(): r[2][1] for r in srv.rows("counters")}
    lost = []
    for w, n in (("A", wa.acked), ("B", wb.acked), ("J", off.acked)):
        missing = [i for i in range(1, n + 1) if "%s-%d" % (w, i) not in have]
        if missing:
            lost.append("%s: %d of %d own rows missing (first %s)" % (w, len(missing), n, missing[:5]))
        if counters.get(w, -1) < n:
            lost.append("%s: counter %r below %d acknowledged" % (w, counters.get(w), n))
    report("soak_every_acknowledged_write_present", not lost and wa.acked > 0 and wb.acked > 0 and off.acked > 0,
           "; ".join(lost) or "a writer wrote nothing: A %d B %d J %d" % (wa.acked, wb.acked, off.acked))
    report("soak_clients_were_killed", ka.kills > 3 and kb.kills > 3, "kills A %d B %d" % (ka.kills, kb.kills))
    if HARD:
        hard = [x for t, x in diffs if t not in ("kv", "counters")]
        print("soak hard tables: %s" % ("; ".join(hard) if hard else "identical on every side"))
        for t in HARD_SCHEMA:
            name = t.split()[2].split("(")[0]
            print("soak hard %s: server %d, A %d, B %d rows" % (name, len(srv.rows(name)), len(local_rows(a.db, name)),
                                                                len(local_rows(b.db, name))))
        for cl in (a, b):
            c = sqlite3.connect(cl.db)
            try:
                aside = c.execute("SELECT tbl, count(*) FROM _resort_sync_conflicts GROUP BY tbl").fetchall()
            except sqlite3.Error:
                aside = []
            c.close()
            print("soak hard %s: rows set aside in _resort_sync_conflicts: %r"
                  % (os.path.basename(cl.db), aside))
        seen = {}
        for r in srv.rows("nokey"):
            k = (r[1][1].decode(), int(r[2][1]))
            seen[k] = seen.get(k, 0) + 1
        twice = sorted(k for k, n in seen.items() if n > 1 and k[0] in "AB")  # ours (J's retries are its own)
        gone = [(w, i) for w, n in (("A", wa.acked), ("B", wb.acked), ("J", off.acked))
                for i in range(1, n + 1) if (w, i) not in seen]
        print("soak hard nokey: %d acknowledged rows missing on the server %r, %d rows there more than once %r"
              % (len(gone), gone[:5], len(twice), twice[:8]))
        report("soak_hard_tables_identical", not hard, "; ".join(hard)[:1500])
        report("soak_hard_nokey_each_acknowledged_row_once", not gone and not twice,
               "%d missing %r, %d twice %r" % (len(gone), gone[:5], len(twice), twice[:8]))
        n_nokey = {w: sum(1 for r in srv.rows("nokey") if r[1][1] == w.encode()) for w in "ABJ"}
        print("soak hard nokey rows per writer on the server: %r (acknowledged A %d B %d J %d)"
              % (n_nokey, wa.acked, wb.acked, off.acked))


if __name__ == "__main__":
    sys.exit(main())
