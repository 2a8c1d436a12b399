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

Appends a dated section to bench/results/restore.md.

Large databases (the memory curve):

    python3 bench/restore_bench.py --size-mb 256 [--size-mb 512 ...] [--work DIR]
        [--load-timeout S] [--export-timeout S] [--part-kb KB]

builds bench/gen.py's items table at about SIZE MB, loads it into local D1 with
resort-sync's own full load (in parts of --part-kb, `database.sync.d1.full_load_part_kb`,
timed and time-boxed by --load-timeout), then, in the same run, restores it once
(`restore -v`: total time, wrangler calls from the `d1 restore done` line, resort-sync's
RSS sampled every 0.25 s and set against the rows restored so far) and exports it once
(`wrangler d1 export --local` time-boxed by --export-timeout, then sqlite3).  The
loaded D1 state is kept in DIR/SIZE (default /tmp/rs-restore-big) and reused by a later
run.  --prebuilt builds the local D1 state directly instead of the full load (one
`wrangler d1 execute --local` to create its SQLite file, then INSERT ... SELECT into it
from the generated database): about 25 s for 1 GB against about 90 minutes.
Prints a Markdown section; appends it to bench/results/restore.md with --write.
"""
import argparse
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


LAST_CALLS = None  # wrangler calls of the last timed() restore (its `d1 restore done` line)


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
    full = p.stderr.read().decode(errors="replace")
    err = full[-400:]
    p.stderr.close()
    global LAST_CALLS
    done = [l for l in full.splitlines() if "d1 restore done" in l]
    LAST_CALLS = int(done[-1].split("wrangler_calls=")[1].split()[0]) if done else None
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError("%s exited %d: %s" % (" ".join(argv), os.waitstatus_to_exitcode(status), err))
    return wall, ru.ru_maxrss, own


def rows_of(db):
    c = sqlite3.connect(db)
    n = c.execute("SELECT count(*), sum(length(payload)), total(price) FROM items").fetchone()
    c.close()
    return n


def same_sampled(out, src, every=1000):
    """Per table of src: equal row counts in out, and equal rows at every `every`-th rowid.

    Returns (ok, what was compared)."""
    c = sqlite3.connect(out)
    c.execute("ATTACH ? AS src", (src,))
    ok, n, sampled = True, 0, 0
    for (name,) in c.execute("SELECT name FROM src.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'"
                             ).fetchall():
        q = '"%s"' % name.replace('"', '""')
        a = c.execute("SELECT count(*) FROM main.%s" % q).fetchone()[0]
        b = c.execute("SELECT count(*) FROM src.%s" % q).fetchone()[0]
        ok = ok and a == b
        n += b
        sel = "SELECT rowid, * FROM {db}.%s WHERE rowid %% %d = 0" % (q, every)
        s, m = sel.format(db="src"), sel.format(db="main")
        diff = c.execute("SELECT count(*) FROM (%s EXCEPT %s)" % (s, m)).fetchone()[0]
        diff += c.execute("SELECT count(*) FROM (%s EXCEPT %s)" % (m, s)).fetchone()[0]
        sampled += c.execute("SELECT count(*) FROM (%s)" % s).fetchone()[0]
        ok = ok and diff == 0
    c.close()
    return ok, "%d rows counted, %d rows (every %d-th rowid) compared column by column" % (n, sampled, every)


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
        ours_argv = [RS, "-v", "-c", cfg, "restore", "--to", out, "--force"]
        export_argv = [d1env.WRANGLER, "d1", "export", "bench", "--local", "--config", wcfg, "--output", sqlf]
        res = {"ours": [], "theirs": []}
        calls = []
        for i in range(rounds):
            for side in (("ours", "theirs") if i % 2 == 0 else ("theirs", "ours")):
                for f in ((out, out + ".before-restore") if side == "ours" else (ref, sqlf)):
                    if os.path.exists(f):
                        os.remove(f)
                if side == "ours":
                    res["ours"].append(timed(ours_argv))
                    calls.append(LAST_CALLS)
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
                  "| wrangler calls | %s | 1 | |" % ", ".join(str(c) for c in calls),
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


ROW_BYTES = 258  # bytes of small.db per items row (12.9 MB / 50,000)


def sample_run(argv, log, total_rows):
    """Run argv (stderr to `log`); sample its own RSS every 0.25 s against the rows restored.

    Returns wall seconds, tree peak RSS (KiB, wait4), own peak (VmHWM, KiB) and the samples
    [(seconds, rss KiB, rows so far)] (rows from the latest `restore progress` log line).
    """
    t0 = time.perf_counter()
    with open(log, "w") as lf:
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=lf)
        samples, own, rows, pos = [], 0, 0, 0
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            try:
                with open("/proc/%d/status" % p.pid) as f:
                    st = {l.split(":")[0]: l.split()[1] for l in f if l.startswith(("VmRSS", "VmHWM"))}
                own = max(own, int(st.get("VmHWM", 0)))
                with open(log) as f:
                    f.seek(pos)
                    for line in f.read().splitlines():
                        if "restore progress" in line:
                            rows = int(line.split(" rows=")[1].split()[0])
                    pos = f.tell()
                samples.append((time.perf_counter() - t0, int(st.get("VmRSS", 0)), rows))
            except (OSError, ValueError, IndexError):
                pass
            time.sleep(0.25)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError("%s exited %d: %s" % (" ".join(argv), os.waitstatus_to_exitcode(status),
                                                 open(log).read()[-600:]))
    return wall, ru.ru_maxrss, own, samples


def timed_box(argv, timeout):
    """timed() with a time box: (wall, tree peak KiB, 0), or (None, why) when it failed or ran out of time."""
    t0 = time.perf_counter()
    errf = tempfile.TemporaryFile()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=errf, start_new_session=True)
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - t0 > timeout:
            os.killpg(p.pid, 9)
            os.wait4(p.pid, 0)
            return None, "stopped after the time box of %d s" % timeout
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    errf.seek(0)
    err = errf.read().decode(errors="replace").strip()[-300:]
    if os.waitstatus_to_exitcode(status) != 0:
        return None, "exited %d after %.0f s (peak RSS %.0f MiB): %s" % (
            os.waitstatus_to_exitcode(status), wall, ru.ru_maxrss / 1024, err)
    return wall, ru.ru_maxrss, 0


def prebuild(src, proj, wcfg):
    """Fill local D1 (wrangler 4.x) with src's tables without resort-sync's full load.

    One `wrangler d1 execute --local` creates the database's SQLite file under
    proj/.wrangler/state/v3/d1/miniflare-D1DatabaseObject/; the rows are then copied into it
    with INSERT ... SELECT (rowids kept), indexes last; wrangler's _cf_* tables stay as they
    are.  Far faster than a full load through wrangler (1 GB: about 90 minutes here), and what
    restore reads is the same.  Returns the wrangler calls made (1).
    """
    subprocess.run([d1env.WRANGLER, "d1", "execute", "bench", "--local", "--config", wcfg, "--command", "SELECT 1"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=proj)
    state = os.path.join(proj, ".wrangler", "state", "v3", "d1", "miniflare-D1DatabaseObject")
    files = [f for f in os.listdir(state) if f.endswith(".sqlite") and f != "metadata.sqlite"]
    if len(files) != 1:
        raise RuntimeError("%s: expected one database file, found %s" % (state, files))
    db = sqlite3.connect(os.path.join(state, files[0]), isolation_level=None)
    db.execute("ATTACH ? AS src", (src,))
    objs = db.execute("SELECT type, name, sql FROM src.sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE "
                      "'sqlite_%' AND name NOT LIKE '_cf_%' ORDER BY type = 'table' DESC, rowid").fetchall()
    db.execute("BEGIN")
    for typ, name, sql in objs:
        if typ != "table":
            continue
        db.execute(sql)
        q = '"%s"' % name.replace('"', '""')
        try:
            db.execute("SELECT rowid FROM src.%s LIMIT 0" % q)
            cols = ", ".join('"%s"' % r[1].replace('"', '""') for r in db.execute("PRAGMA src.table_info(%s)" % q))
            db.execute("INSERT INTO main.%s(rowid, %s) SELECT rowid, %s FROM src.%s" % (q, cols, cols, q))
        except sqlite3.OperationalError:  # WITHOUT ROWID
            db.execute("INSERT INTO main.%s SELECT * FROM src.%s" % (q, q))
    for typ, name, sql in objs:
        if typ != "table":
            db.execute(sql)
    db.execute("COMMIT")
    db.execute("DETACH src")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return 1


def big(size_mb, args, lines):
    work = os.path.join(args.work, "%d" % size_mb)
    os.makedirs(work, exist_ok=True)
    src = os.path.join(work, "src.db")
    n = int(size_mb * 1e6 / ROW_BYTES)
    proj = os.path.join(work, "proj")
    wcfg = d1env.wrangler_project(proj, "bench")
    cfg = os.path.join(work, "rs.toml")
    with open(cfg, "w") as f:
        f.write('[database]\npath = "%s"\n[database.sync]\nmode = "d1"\n[database.sync.d1]\ndatabase = "bench"\n'
                'wrangler = "%s"\nwrangler_config = "%s"\ntimeout_seconds = 3600\nfull_load_part_kb = %d\n'
                % (src, d1env.WRANGLER, wcfg, args.part_kb))
    loaded = os.path.join(work, "loaded.json")
    if args.prebuilt and not os.path.exists(loaded):
        if not os.path.exists(src):
            gen.build_small(src + ".tmp", n, gen.SEED)
            os.rename(src + ".tmp", src)
        t0 = time.perf_counter()
        calls = prebuild(src, proj, wcfg)
        with open(loaded, "w") as f:
            json.dump({"seconds": time.perf_counter() - t0, "rows": n, "prebuilt": calls}, f)
    if not os.path.exists(loaded):
        t0 = time.perf_counter()
        if not os.path.exists(src):
            gen.build_small(src + ".tmp", n, gen.SEED)
            os.rename(src + ".tmp", src)
        tgen = time.perf_counter() - t0
        print("%d MB: %d rows generated in %.0f s (%.1f MB)" % (size_mb, n, tgen, os.path.getsize(src) / 1e6),
              flush=True)
        t0 = time.perf_counter()
        try:
            subprocess.run([RS, "-v", "-c", cfg, "sync"], check=True, timeout=args.load_timeout,
                           stderr=open(os.path.join(work, "load.log"), "w"))
        except subprocess.TimeoutExpired:
            lines += ["## D1 restore of %d MB: not measured" % size_mb, "",
                      "Loading it into local D1 with `resort-sync sync` did not end within the time box of %d s"
                      % args.load_timeout, ""]
            return
        with open(loaded, "w") as f:
            json.dump({"seconds": time.perf_counter() - t0, "rows": n}, f)
    load = json.load(open(loaded))
    if args.load_only:
        return
    mb = os.path.getsize(src) / 1e6
    print("%d MB: loaded into local D1 in %.0f s" % (size_mb, load["seconds"]), flush=True)
    out, log = os.path.join(work, "ours.db"), os.path.join(work, "restore.log")
    for f in (out, out + ".before-restore"):
        if os.path.exists(f):
            os.remove(f)
    wall, tree, own, samples = sample_run([RS, "-v", "-c", cfg, "restore", "--to", out, "--force"], log, n)
    done = [l for l in open(log) if "d1 restore done" in l]
    calls = done[-1].split("wrangler_calls=")[1].split()[0] if done else "?"
    same = rows_of(out) == rows_of(src)
    sampled_ok, sampled = same_sampled(out, src)
    same = same and sampled_ok
    print("%d MB: restore %.1f s, %s calls, own peak %.0f MiB" % (size_mb, wall, calls, own / 1024), flush=True)
    os.remove(out)
    # the memory curve: RSS at each tenth of the rows (the first sample at or past it)
    curve = []
    for tenth in range(1, 11):
        at = [s for s in samples if s[2] >= n * tenth / 10]
        s = at[0] if at else (samples[-1] if tenth == 10 and samples else None)
        if s:
            curve.append("%d%%: %.0f MiB at %.0f s" % (tenth * 10, s[1] / 1024, s[0]))
    rss = [s[1] for s in samples if s[0] > 5 and s[1] > 0]  # 0: sampled as the process ended
    # theirs: export, then sqlite3
    sqlf, ref = os.path.join(work, "export.sql"), os.path.join(work, "theirs.db")
    for f in (sqlf, ref):
        if os.path.exists(f):
            os.remove(f)
    exp = "not run (--no-export)"
    if not args.no_export:
        r = timed_box([d1env.WRANGLER, "d1", "export", "bench", "--local", "--config", wcfg, "--output", sqlf],
                      args.export_timeout)
        if r[0] is None:
            exp = "failed: " + r[1]
        else:
            w2, m2, _ = timed(["sqlite3", ref, "BEGIN", ".read " + sqlf, "COMMIT"])
            exp = "%.1f s (export %.1f s, %.0f MB of SQL; sqlite3 %.1f s); largest process %.0f MiB; rows equal: %s" % (
                r[0] + w2, r[0], os.path.getsize(sqlf) / 1e6, w2, max(r[1], m2) / 1024,
                "yes" if rows_of(ref) == rows_of(src) else "NO")
        for f in (sqlf, ref):
            if os.path.exists(f):
                os.remove(f)
    lines += ["## D1 restore of %.0f MB (%d rows of bench/gen.py's items)" % (mb, n), "",
              ("Local D1 state built directly (--prebuilt: %d `wrangler d1 execute --local` call to create it, "
               "then the rows copied into its SQLite file with INSERT ... SELECT): %.0f s." % (
                   load["prebuilt"], load["seconds"]) if "prebuilt" in load else
               "Loaded into local D1 first by `resort-sync sync` (full load in parts of %d KB): %.0f s." % (
                   args.part_kb, load["seconds"])), "",
              "| | resort-sync restore | wrangler d1 export --local + sqlite3 |",
              "|---|---|---|",
              "| wall time | %.1f s | %s |" % (wall, exp),
              "| wrangler calls | %s | 1 |" % calls,
              "| peak RSS of resort-sync itself | %.0f MiB | |" % (own / 1024),
              "| resort-sync's RSS after the first 5 s, min / median / max | %.0f / %.0f / %.0f MiB | |" % (
                  min(rss) / 1024 if rss else 0, statistics.median(rss) / 1024 if rss else 0,
                  max(rss) / 1024 if rss else 0),
              "| peak RSS, largest process (wrangler's node) | %.0f MiB | |" % (tree / 1024), "",
              "resort-sync's RSS by rows restored (from the `restore progress` log lines, every 10 s): " +
              "; ".join(curve) + ".", "",
              "Result holds the source's rows: %s (count, sum of payload lengths and total of prices; %s)." % (
                  "yes" if same else "NO", sampled), ""]


def main():
    if len(sys.argv) > 1 and sys.argv[1].startswith("--"):
        ap = argparse.ArgumentParser()
        ap.add_argument("--size-mb", type=int, action="append", required=True)
        ap.add_argument("--work", default="/tmp/rs-restore-big")
        ap.add_argument("--part-kb", type=int, default=16000)
        ap.add_argument("--load-timeout", type=int, default=3600)
        ap.add_argument("--export-timeout", type=int, default=1800)
        ap.add_argument("--no-export", action="store_true")
        ap.add_argument("--prebuilt", action="store_true",
                        help="build the local D1 state directly (one wrangler call, then sqlite3), not by a full load")
        ap.add_argument("--load-only", action="store_true", help="generate and load into local D1, measure nothing")
        ap.add_argument("--write", action="store_true", help="append the section to bench/results/restore.md")
        args = ap.parse_args()
        lines = ["# restore of large databases, %s" % datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"), "",
                 "Machine: %d CPUs, load average %s at the start; resort-sync %s." % (
                     os.cpu_count(), open("/proc/loadavg").read().split()[0],
                     subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True).stdout.strip()), ""]
        for size in args.size_mb:
            big(size, args, lines)
        text = "\n".join(lines) + "\n"
        print(text)
        if args.write:
            with open(os.path.join(ROOT, "bench", "results", "restore.md"), "a") as f:
                f.write("\n" + text)
        return
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
    path = os.path.join(ROOT, "bench", "results", "restore.md")
    with open(path, "a") as f:  # a new dated section below the earlier ones
        f.write(("\n" if os.path.exists(path) and os.path.getsize(path) else "") + text)


if __name__ == "__main__":
    main()
