#!/usr/bin/env python3
"""restore_bench.py: `resort-sync restore` against the ways back the peers offer.

D1: bench/gen.py's 50,000-row database (items: a rowid table with an index,
no virtual table, ~13 MB) is loaded into wrangler's local D1 by a full sync;
then, interleaved, in the same run:

  ours    resort-sync restore --to OUT --force   (wrangler --command reads, a new file)
  theirs  wrangler d1 export DB --local --output X.sql, then sqlite3 OUT BEGIN ".read X.sql" COMMIT
          (one transaction: without it sqlite3 commits, and syncs, every INSERT)

Reported: median wall time, peak RSS (the largest process of each side's tree, which
is wrangler's node on both; and resort-sync's own), the ratio, and that both results
hold the same rows.

Turso: a server seeded with N rows (bench/turso_bench.js), then
resort-sync restore into a fresh configuration against the official client's
bootstrap (connect(), timed inside Node: its process start is not counted).

    python3 bench/restore_bench.py [ROUNDS] [TURSO_ROWS]

Writes bench/results/restore.md.
"""
import datetime
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("ROOT", ROOT)
os.environ["PATH"] = os.path.join(ROOT, "tools/node_modules/@tursodatabase/cli-linux-x64-gnu") + ":" + os.environ["PATH"]
os.environ["WRANGLER_SEND_METRICS"] = "false"
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import d1env  # noqa: E402
import gen  # noqa: E402
import turso_sync as ts  # noqa: E402

RS = os.environ.get("RS_BIN", os.path.join(ROOT, os.environ.get("BUILD", "build"), "resort-sync"))
ts.RS = RS


def timed(argv, stdin=None):
    """Wall seconds, peak RSS of the whole process tree and of the command's own process (KiB).

    The tree's peak is wait4's ru_maxrss (the largest of the command and every process it
    waited for: wrangler's node and workerd included); the command's own is its VmHWM, read
    from /proc every 20 ms while it runs.
    """
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdin=open(stdin) if stdin else None, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    own = 0
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        try:
            with open("/proc/%d/status" % p.pid) as f:
                for line in f:
                    if line.startswith("VmHWM"):
                        own = max(own, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace")[-400:]
    p.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError("%s exited %d: %s" % (" ".join(argv), os.waitstatus_to_exitcode(status), err))
    return wall, ru.ru_maxrss, own


def rows_of(db):
    c = sqlite3.connect(db)
    n = c.execute("SELECT count(*), sum(length(payload)), total(price) FROM items").fetchone()
    c.close()
    return n


def d1(rounds, lines):
    work = tempfile.mkdtemp(prefix="rs-restore-bench-")
    try:
        src = os.path.join(work, "src.db")
        gen.build_small(src, 50000, gen.SEED)
        proj = os.path.join(work, "proj")
        wcfg = d1env.wrangler_project(proj, "bench")
        cfg = os.path.join(work, "rs.toml")
        with open(cfg, "w") as f:
            f.write('[database]\npath = "%s"\n[database.sync]\nmode = "d1"\n[database.sync.d1]\ndatabase = "bench"\n'
                    'wrangler = "%s"\nwrangler_config = "%s"\ntimeout_seconds = 1800\n' % (src, d1env.WRANGLER, wcfg))
        t0 = time.perf_counter()
        subprocess.run([RS, "-q", "-c", cfg, "sync"], check=True)
        print("full load into local D1: %.1f s" % (time.perf_counter() - t0), flush=True)
        out, sqlf, ref = os.path.join(work, "ours.db"), os.path.join(work, "export.sql"), os.path.join(work, "theirs.db")
        ours_argv = [RS, "-q", "-c", cfg, "restore", "--to", out, "--force"]
        export_argv = [d1env.WRANGLER, "d1", "export", "bench", "--local", "--config", wcfg, "--output", sqlf]
        res = {"ours": [], "theirs": []}
        for i in range(rounds):
            for side in (("ours", "theirs") if i % 2 == 0 else ("theirs", "ours")):
                for f in ((out, out + ".before-restore") if side == "ours" else (ref, sqlf)):
                    if os.path.exists(f):
                        os.remove(f)
                if side == "ours":
                    res["ours"].append(timed(ours_argv))
                else:
                    w1, m1, o1 = timed(export_argv)
                    # loaded in one transaction (the fast way; without it every INSERT commits)
                    w2, m2, o2 = timed(["sqlite3", ref, "BEGIN", ".read " + sqlf, "COMMIT"])
                    res["theirs"].append((w1 + w2, max(m1, m2), max(o1, o2)))
                print("  %s %.2f s, tree %.0f MiB, own %.0f MiB" % (side, res[side][-1][0], res[side][-1][1] / 1024,
                                                                 res[side][-1][2] / 1024), flush=True)
        same = rows_of(out) == rows_of(ref) == rows_of(src)
        mo = statistics.median(x[0] for x in res["ours"])
        mt = statistics.median(x[0] for x in res["theirs"])
        ro = max(x[1] for x in res["ours"]) / 1024
        rt = max(x[1] for x in res["theirs"]) / 1024
        oo = max(x[2] for x in res["ours"]) / 1024
        lines += ["## D1: 50,000 rows (bench/gen.py small.db, %.1f MB), %d rounds" % (os.path.getsize(src) / 1e6, rounds),
                  "",
                  "| | resort-sync restore | wrangler d1 export --local + sqlite3 | ratio |",
                  "|---|---:|---:|---:|",
                  "| median wall time | %.2f s | %.2f s | ours / theirs %.2f |" % (mo, mt, mo / mt),
                  "| peak RSS, largest process (wrangler's node on both sides) | %.0f MiB | %.0f MiB | %.2f |"
                  % (ro, rt, ro / rt),
                  "| peak RSS of resort-sync itself | %.0f MiB | | |" % oo,
                  "",
                  "Times: %s (ours), %s (theirs: export + sqlite3 in one transaction)."
                  % (", ".join("%.1f s" % x[0] for x in res["ours"]), ", ".join("%.1f s" % x[0] for x in res["theirs"])),
                  "",
                  "Both results hold the source's rows: %s." % ("yes" if same else "NO"), ""]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def turso(n, rounds, lines):
    js = os.path.join(ROOT, "bench", "turso_bench.js")
    o, t = [], []
    for _ in range(rounds):
        d = tempfile.mkdtemp(prefix="rs-restore-tbench-")
        srv = ts.Server(d)
        try:
            subprocess.run(["node", js, "push", srv.url, os.path.join(d, "seed.db"), str(n)], capture_output=True,
                           check=True)
            a = ts.Client(d, "a", srv)
            t0 = time.perf_counter()
            subprocess.run([RS, "-q", "-c", a.cfg, "restore"], check=True)
            o.append(time.perf_counter() - t0)
            p = subprocess.run(["node", js, "pull", srv.url, os.path.join(d, "b.db")], capture_output=True, text=True,
                               check=True)
            r = json.loads(p.stdout)
            assert r["rows"] == n, r
            t.append(r["seconds"])
            got = sqlite3.connect(a.db).execute("SELECT count(*) FROM t").fetchone()[0]
            assert got == n, got
        finally:
            srv.stop()
            shutil.rmtree(d, ignore_errors=True)
    mo, mt = statistics.median(o), statistics.median(t)
    lines += ["## Turso: %d rows, %d rounds" % (n, rounds), "",
              "| | resort-sync restore (whole process) | official client's bootstrap (connect(), inside Node) | ratio |",
              "|---|---:|---:|---:|",
              "| median wall time | %.3f s | %.3f s | ours / theirs %.2f |" % (mo, mt, mo / mt), ""]


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    lines = ["# restore benchmark, %s" % datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"), "",
             "Machine: %d CPUs, load average %s at the start (shared with other work)." % (
                 os.cpu_count(), open("/proc/loadavg").read().split()[0]), ""]
    d1(rounds, lines)
    turso(n, rounds, lines)
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "restore.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
