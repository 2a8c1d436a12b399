"""Push and pull 10,000 changed rows: resort-sync against the official client.

Same machine, same tursodb --sync-server build, a fresh server per round,
rounds interleaved (ours, theirs, ours, ...).  For each side:

  push   N rows written locally (one transaction), then one sync.  Ours: the
         wall time of `resort-sync sync` (process start, start-up pull,
         push, pull).  Theirs: the time of push() alone, measured inside
         Node (their process start and bootstrap are not counted).
  pull   a fresh client takes the N rows from the server.  Ours: the wall
         time of `resort-sync sync` on an empty database.  Theirs: connect()
         with its bootstrap pull, inside Node.

Prints medians and the ratio ours / theirs (below 1: we are faster), and
writes bench/results/turso.txt.

    python3 bench/turso_bench.py [N] [ROUNDS]
"""
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
os.environ.setdefault("ROOT", ROOT)
os.environ["PATH"] = os.path.join(ROOT, "tools/node_modules/@tursodatabase/cli-linux-x64-gnu") + ":" + os.environ["PATH"]
import turso_sync as ts  # noqa: E402  (the test's server and client helpers)

RS = os.environ.get("RS_BIN", os.path.join(ROOT, os.environ.get("BUILD", "build"), "resort-sync"))
ts.RS = RS
JS = os.path.join(ROOT, "bench", "turso_bench.js")


def ours(n):
    d = tempfile.mkdtemp(prefix="rs-tbench-")
    srv = ts.Server(d)
    try:
        a = ts.Client(d, "a", srv)
        c = sqlite3.connect(a.db)
        c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v REAL, b BLOB)")
        c.executemany("INSERT INTO t VALUES (?, ?, ?, ?)",
                      ((i, "our row %d" % i, i / 7, bytes([i & 255, 1, 2])) for i in range(1, n + 1)))
        c.commit()
        c.close()
        t0 = time.perf_counter()
        rc, out = a.sync("-q")
        push = time.perf_counter() - t0
        assert rc == 0, out
        b = ts.Client(d, "b", srv)
        t0 = time.perf_counter()
        rc, out = b.sync("-q")
        pull = time.perf_counter() - t0
        assert rc == 0, out
        got = sqlite3.connect(b.db).execute("SELECT count(*) FROM t").fetchone()[0]
        assert got == n, got
        return push, pull
    finally:
        srv.stop()
        subprocess.run(["rm", "-rf", d])


def theirs(n):
    d = tempfile.mkdtemp(prefix="rs-tbench-")
    srv = ts.Server(d)
    try:
        p = subprocess.run(["node", JS, "push", srv.url, os.path.join(d, "a.db"), str(n)],
                           capture_output=True, text=True, check=True)
        push = json.loads(p.stdout)["seconds"]
        p = subprocess.run(["node", JS, "pull", srv.url, os.path.join(d, "b.db")],
                           capture_output=True, text=True, check=True)
        r = json.loads(p.stdout)
        assert r["rows"] == n, r
        return push, r["seconds"]
    finally:
        srv.stop()
        subprocess.run(["rm", "-rf", d])


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    o, t = [], []
    for _ in range(rounds):
        o.append(ours(n))
        t.append(theirs(n))
    lines = ["turso push/pull of %d rows, %d rounds, medians (seconds)" % (n, rounds)]
    for i, what in enumerate(("push", "pull")):
        mo, mt = statistics.median(x[i] for x in o), statistics.median(x[i] for x in t)
        lines.append("%-5s resort-sync %.3f   official client %.3f   ratio %.2f" % (what, mo, mt, mo / mt))
    text = "\n".join(lines) + "\n"
    print(text, end="")
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "turso.txt"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
