"""Turso push and pull: resort-sync against the official client, side by side.

Same machine, same tursodb --sync-server (the pinned build), a fresh server
per side and round, rounds interleaved (ours, theirs, ours, ...).  Two parts.

Part 1, inserts into an empty INTEGER-key table:

  push   N rows written locally (one transaction), then one sync.  Ours: the
         wall time of `resort-sync sync` (process start, start-up pull,
         push, pull).  Theirs: the time of push() alone, measured inside
         Node (their process start and bootstrap are not counted).
  pull   a fresh client takes the N rows from the server.  Ours: the wall
         time of `resort-sync sync` on an empty database.  Theirs: connect()
         with its bootstrap pull, inside Node.

Part 2, edits of a 50,000-row table with a TEXT primary key (k: id TEXT
PRIMARY KEY, name, n, b), written on the server through /v2/pipeline
before either client starts, so both sides start from the same server:

  bootstrap    a fresh client takes the 50,000 rows
  update push  client A updates every 5th row (10,000) in one transaction
               and pushes
  update pull  client B, bootstrapped before, takes those updates
  delete push  A deletes another 10,000 rows and pushes
  delete pull  B takes the deletes
  idle pull    B again, nothing new: for ours the fixed cost of a `sync`
               process, which every figure above includes

Ours: the wall time of each `resort-sync sync` (process start, start-up
pull, push, pull).  Theirs: the operation alone (connect() with its
bootstrap, push(), pull()) timed inside one Node process.  Each side checks
its result (rows on the server and at B).

Prints medians and the ratio ours / theirs (below 1: we are faster), and
writes bench/results/turso.txt and bench/results/<date>-turso.md.

    python3 bench/turso_bench.py [N] [ROUNDS] [TABLE_ROWS]
"""
import datetime
import platform
import re
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
import e2e  # noqa: E402

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
        push = timed_sync(a)
        b = ts.Client(d, "b", srv)
        pull = timed_sync(b)
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


EDITS = ("bootstrap", "update_push", "update_pull", "delete_push", "delete_pull", "idle_pull")


def seed(srv, rows):
    """The TEXT-key table, written on the server directly (neither client's push)."""
    srv.pipeline("CREATE TABLE k(id TEXT PRIMARY KEY, name TEXT, n INTEGER, b BLOB)")
    step = 2000
    for lo in range(0, rows, step):
        hi = min(rows, lo + step)
        reqs = [{"type": "execute", "stmt": {
            "sql": "INSERT INTO k VALUES " + ", ".join(["(?, ?, ?, ?)"] * (hi - lo)),
            "args": [ts.enc(v) for i in range(lo, hi)
                     for v in ("key-%08d" % i, "row %d of the table" % i, i, bytes([i & 255, 7, 9]))]}}]
        body = json.dumps({"requests": reqs}).encode()
        r = ts.urllib.request.Request(srv.url + "/v2/pipeline", body, {"content-type": "application/json"})
        out = json.loads(ts.urllib.request.urlopen(r, timeout=120).read())
        assert out["results"][0]["type"] == "ok", out["results"][0]


def timed_sync(cl):
    """(wall time of the `sync` process, the time its `sync done` line gives: start-up and cycle in process)."""
    t0 = time.perf_counter()
    rc, out = cl.sync()
    dt = time.perf_counter() - t0
    assert rc == 0, out[-2000:]
    m = re.search(r'msg="sync done".* ms=(\d+)', out)
    assert m, out[-2000:]
    return dt, int(m.group(1)) / 1000.0


def count(db, sql):
    c = sqlite3.connect(db)
    n = c.execute(sql).fetchone()[0]
    c.close()
    return n


def ours_edits(rows):
    d = tempfile.mkdtemp(prefix="rs-tbench-")
    srv = ts.Server(d)
    try:
        seed(srv, rows)
        r = {}
        a, b = ts.Client(d, "a", srv), ts.Client(d, "b", srv)
        r["bootstrap"] = timed_sync(a)
        timed_sync(b)
        upd = count(a.db, "SELECT count(*) FROM k WHERE rowid % 5 = 0")
        a.sql("UPDATE k SET name = name || ' updated', n = n + 1 WHERE rowid % 5 = 0")
        r["update_push"] = timed_sync(a)
        r["update_pull"] = timed_sync(b)
        dele = count(a.db, "SELECT count(*) FROM k WHERE rowid % 5 = 1")
        a.sql("DELETE FROM k WHERE rowid % 5 = 1")
        r["delete_push"] = timed_sync(a)
        r["delete_pull"] = timed_sync(b)
        r["idle_pull"] = timed_sync(b)
        on_server = srv.pipeline("SELECT count(*), sum(name LIKE '% updated') FROM k")[0][0]
        assert (on_server[0][1], on_server[1][1]) == (rows - dele, upd), on_server
        assert count(b.db, "SELECT count(*) FROM k") == rows - dele
        assert count(b.db, "SELECT count(*) FROM k WHERE name LIKE '% updated'") == upd
        return r, upd, dele
    finally:
        srv.stop()
        subprocess.run(["rm", "-rf", d])


def theirs_edits(rows):
    d = tempfile.mkdtemp(prefix="rs-tbench-")
    srv = ts.Server(d)
    try:
        seed(srv, rows)
        p = subprocess.run(["node", JS, "edits", srv.url, d], capture_output=True, text=True, check=True)
        r = json.loads(p.stdout)
        on_server = srv.pipeline("SELECT count(*), sum(name LIKE '% updated') FROM k")[0][0]
        assert (on_server[0][1], on_server[1][1]) == (rows - r["deleted"], r["updated"]), (on_server, r)
        assert r["rows_a"] == r["rows_b"] == rows - r["deleted"] and r["updated_b"] == r["updated"], r
        return {k: r[k] for k in EDITS}, r["updated"], r["deleted"]
    finally:
        srv.stop()
        subprocess.run(["rm", "-rf", d])


def version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "?"


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    rows = int(sys.argv[3]) if len(sys.argv) > 3 else 50000
    o, t, oe, te = [], [], [], []
    for _ in range(rounds):
        o.append(ours(n))
        t.append(theirs(n))
        r, upd, dele = ours_edits(rows)
        oe.append(r)
        r2, upd2, dele2 = theirs_edits(rows)
        assert (upd, dele) == (upd2, dele2), (upd, dele, upd2, dele2)
        te.append(r2)
    lines = ["turso push/pull of %d rows, %d rounds, medians (seconds)" % (n, rounds)]
    table = []
    for i, what in enumerate(("push", "pull")):
        mo, mi = (statistics.median(x[i][j] for x in o) for j in (0, 1))
        mt = statistics.median(x[i] for x in t)
        lines.append("%-5s resort-sync %.3f (in process %.3f)   official client %.3f   ratio %.2f (%.2f)" % (
            what, mo, mi, mt, mo / mt, mi / mt))
        table.append(("%s of %d new rows (INTEGER key, empty table)" % (what, n), mo, mi, mt))
    lines.append("edits of a %d-row TEXT-key table (%d updated, %d deleted), medians (seconds)" % (rows, upd, dele))
    label = {"bootstrap": "bootstrap of %d rows" % rows, "update_push": "push of %d updates" % upd,
             "update_pull": "pull of %d updates" % upd, "delete_push": "push of %d deletes" % dele,
             "delete_pull": "pull of %d deletes" % dele,
             "idle_pull": "pull with nothing new (ours: a whole idle `sync`, the fixed cost in every row above)"}
    for k in EDITS:
        mo, mi = (statistics.median(x[k][j] for x in oe) for j in (0, 1))
        mt = statistics.median(x[k] for x in te)
        lines.append("%-12s resort-sync %.3f (in process %.3f)   official client %.3f   ratio %.2f (%.2f)" % (
            k, mo, mi, mt, mo / mt, mi / mt))
        table.append((label[k] + " (TEXT key)", mo, mi, mt))
    text = "\n".join(lines) + "\n"
    print(text, end="")
    res = os.path.join(ROOT, "bench", "results")
    os.makedirs(res, exist_ok=True)
    with open(os.path.join(res, "turso.txt"), "w") as f:
        f.write(text)
    day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    md = ["# Turso: resort-sync against the official client (%s)" % day, "",
          "`python3 bench/turso_bench.py %d %d %d`: %d rounds, one fresh `tursodb --sync-server` per side and "
          "round, rounds interleaved; medians in seconds. Ratio = resort-sync / official client (below 1: "
          "resort-sync takes less time)." % (n, rounds, rows, rounds), "",
          "- resort-sync, process: wall time of the whole `resort-sync sync` process (start, start-up pull, "
          "push, pull), so it carries costs the official column does not.",
          "- resort-sync, in process: the time the same run's `sync done` line gives (`ms=`): start-up and "
          "cycle, without process start, dynamic loading and config parsing; what a daemon's cycle costs, "
          "plus its start-up.",
          "- official client (`@tursodatabase/sync`): the operation alone (`connect()` with its bootstrap, "
          "`push()`, `pull()`), timed inside Node; process start and module load not counted.",
          "- The TEXT-key table is written on the server through `/v2/pipeline` before either client "
          "starts; each side checks the rows on the server and at the second client after its run.", "",
          "| operation | resort-sync, process | resort-sync, in process | official client | ratio, process |"
          " ratio, in process |", "|---|---:|---:|---:|---:|---:|"]
    for what, mo, mi, mt in table:
        md.append("| %s | %.3f s | %.3f s | %.3f s | %.2f | %.2f |" % (what, mo, mi, mt, mo / mt, mi / mt))
    md += ["", "Machine: %s, %d CPUs (shared with other work); %s; tursodb %s; node %s." % (
        platform.platform(), os.cpu_count() or 0, version([RS, "version"]),
        version([ts.TURSODB, "--version"]), version(["node", "--version"]))]
    with open(os.path.join(res, "%s-turso.md" % day), "w") as f:
        f.write("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
