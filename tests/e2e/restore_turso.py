"""End-to-end: `resort-sync restore` in Turso mode, against `tursodb --sync-server`.

  - our client seeds the server (every type, REAL bits, 64-bit edges, rowid gaps, TEXT
    that is not UTF-8, a composite key, an index); the database and every file of the
    replica's family are deleted; `restore --dry-run` writes nothing; `restore` rebuilds
    a database whose tables equal the server's value by value (read through
    /v2/pipeline) and the source's (tests/lib/dbcompare.py), without writing to the
    server (no new watermark); the next sync pushes nothing and pulls nothing; a row
    another client then writes arrives with the next sync, and nothing is pushed;
  - the official client (@tursodatabase/sync) writes the server first: a fresh
    configuration restores its rows, and the next sync pushes nothing;
  - the log's progress lines (`turso restore progress`, the test build logging one per
    row): rows counting up to the server's, tables and bytes;
  - a database holding tables is refused without --force (untouched, no temporary
    file); with --force the old file is kept as <db>.before-restore; a running daemon's
    lock is respected.
"""
import glob
import hashlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.environ.get("ROOT", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import dbcompare  # noqa: E402
import e2e  # noqa: E402
from e2e import report  # noqa: E402
import turso_sync as ts  # noqa: E402


def restore(cl, *args, prog=None, env=None):
    p = subprocess.run([prog or ts.RS, "-c", cl.cfg] + list(args[:1] if args and args[0] == "-v" else []) + ["restore"]
                       + [a for a in args if a != "-v"], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, **(env or {})))
    return p.returncode, p.stdout + p.stderr


PROGRESS = re.compile(r'msg="turso restore progress" tables=(\d+) total_tables=(\d+) rows=(\d+) total=(\d+) pct=(\d+) '
                      r'bytes=(\d+) calls=\d+ table=(\S+)')


def forget(cl):
    for f in glob.glob(cl.db + "*"):
        if not f.endswith(".toml"):
            os.remove(f)


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def bookkeeping(*dbs):
    out = set()
    for db in dbs:
        c = sqlite3.connect(db)
        out |= {n for (n,) in c.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")
                if n.startswith("_resort_sync_") or n.startswith("turso_")}
        c.close()
    return tuple(out)


def objects(db):
    """Indexes, views and triggers, their SQL without white space (tursodb re-renders it)."""
    c = sqlite3.connect(db)
    out = sorted((t, n, re.sub(r"\s+", "", q)) for t, n, q in c.execute(
        "SELECT type, name, sql FROM sqlite_schema WHERE type IN ('index', 'view', 'trigger') AND sql IS NOT NULL"))
    c.close()
    return out


def watermarks(srv):
    try:
        return len(srv.pipeline("SELECT client_id FROM turso_sync_last_change_id")[0])
    except RuntimeError:
        return 0


def t_restore_ours(d, srv):
    a = ts.Client(d, "a", srv)
    ts.seed(a)
    rc, out = a.sync()
    report("seeded", rc == 0, out[-500:])
    if rc != 0:
        return
    source = os.path.join(d, "source.db")
    src, dst = sqlite3.connect(a.db), sqlite3.connect(source)
    src.backup(dst)
    src.close()
    dst.close()
    forget(a)
    marks = watermarks(srv)

    rc, out = restore(a, "--dry-run")
    report("dry_run_prints_and_writes_nothing", rc == 0 and "table    users: 4 rows" in out and "nothing was written" in out
           and not os.path.exists(a.db) and not glob.glob(a.db + "*.db"), out[-600:])

    # the progress lines of the log (every 10 s; every row with the test build's RS_RESTORE_PROGRESS_SECONDS=0)
    rc, out = restore(a, "-v", "--dry-run", prog=ts.RS_HOOKS, env={"RS_RESTORE_PROGRESS_SECONDS": "0"})
    lines = [tuple(int(x) if x.isdigit() else x for x in m.groups()) for m in PROGRESS.finditer(out)]
    want = sum(int(n) for n in re.findall(r"^table +\S+: (\d+) rows", out, re.M))
    print("  %d progress lines, the last: %s" % (len(lines), lines[-1:]))
    # the total counts every table the merge writes: the user tables the dry run lists, and
    # _resort_sync_schema (views and triggers)
    report("progress_lines_in_the_log", rc == 0 and len(lines) >= 2 and len({x[3] for x in lines}) == 1
           and lines[0][3] >= want > 0 and lines[-1][2] == lines[-1][3] and lines[-1][4] == 100
           and lines[-1][1] >= 2 and lines[-1][0] >= 1 and lines[-1][5] > 0
           and [x[2] for x in lines] == sorted(x[2] for x in lines) and not os.path.exists(a.db),
           "rc=%d want=%d lines=%r %s" % (rc, want, lines[-3:], out[-600:]))

    rc, out = restore(a, "-v")
    ok, why = ts.all_same(a, srv) if rc == 0 else (False, out[-800:])
    report("restored_equals_the_server", ok, why)
    # tursodb re-renders CREATE TABLE text (README: tables are compared by their columns), so the
    # source's tables are compared row by row and value by value; everything else by dbcompare
    diffs = ["no restore"] if rc != 0 else [
        x for x in dbcompare.compare(source, a.db, ignore=bookkeeping(source, a.db))
        if "definition differs" not in x and "schema objects differ" not in x]
    if rc == 0 and objects(source) != objects(a.db):
        diffs.append("indexes, views or triggers differ: %s vs %s" % (objects(source), objects(a.db)))
    diffs += ["%s: rows differ" % t for t in ts.TABLES if rc == 0 and ts.local_rows(source, t) != ts.local_rows(a.db, t)]
    report("restored_equals_the_source", not diffs, diffs[:4])
    report("restore_writes_nothing_to_the_server", watermarks(srv) == marks, "watermarks %d -> %d" % (marks, watermarks(srv)))
    report("no_temporary_files_left", not glob.glob(a.db + ".restore-tmp*"), glob.glob(a.db + ".restore-tmp*"))

    rc, out = a.sync("-v")
    report("next_sync_pushes_and_pulls_nothing", rc == 0 and "pushed=0 pulled=0" in out and "pushed=1" not in out,
           out[-600:])
    b = ts.Client(d, "b", srv)
    rc1, _ = b.sync()
    b.sql("INSERT INTO items VALUES (77, 7, 7.5)")
    rc2, out2 = b.sync()
    rc, out = a.sync("-v")
    c = sqlite3.connect(a.db)
    got = c.execute("SELECT n, r FROM items WHERE id = 77").fetchall()
    c.close()
    report("a_later_remote_change_is_pulled_and_nothing_pushed",
           rc == 0 and got == [(7, 7.5)] and "pushed=0" in out, "%r %s" % (got, (out2 + out)[-600:]))

    # refusals and --force
    before = digest(a.db)
    rc, out = restore(a)
    report("refuses_existing_database_without_force", rc == 1 and "--force" in out and digest(a.db) == before
           and not glob.glob(a.db + ".restore-tmp*"), out[-500:])
    rc, out = restore(a, "--force")
    ok, why = ts.all_same(a, srv) if rc == 0 else (False, out[-800:])
    report("force_restores_and_keeps_the_old_file", ok and digest(a.db + ".before-restore") == before, why)
    rc, out = a.sync("-v")
    report("sync_after_forced_restore_pushes_nothing", rc == 0 and "pushed=0 pulled=0" in out, out[-500:])

    # a daemon syncing the database holds its lock: refused, nothing touched
    dmn = subprocess.Popen([ts.RS, "-c", a.cfg, "run"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lockf = os.path.realpath(a.db) + ".resort-sync.lock"
    for _ in range(100):
        if os.path.exists(lockf) and open(lockf).read().strip() == str(dmn.pid):
            break
        time.sleep(0.1)
    before = digest(a.db)
    rc, out = restore(a, "--force")
    dmn.send_signal(signal.SIGTERM)
    dmn.wait(timeout=60)
    report("refuses_beside_a_running_daemon", rc == 1 and "another resort-sync (pid %d)" % dmn.pid in out
           and digest(a.db) == before and not glob.glob(a.db + ".restore-tmp*"), out[-500:])


def t_restore_after_official(d, srv):
    env = dict(os.environ, ROOT=ROOT)
    js = os.path.join(d, "js.db")
    p = subprocess.run(["node", ts.OFFICIAL, "exec", srv.url, js,
                        "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, data BLOB, r REAL)",
                        "INSERT INTO t VALUES (1, 'from-js', x'cafe', 2.5), (5, 'gap', NULL, -0.5)",
                        "CREATE TABLE k(a TEXT, b INTEGER, PRIMARY KEY(a, b))",
                        "INSERT INTO k VALUES ('x', 1), ('y', 9007199254740993)"],
                       capture_output=True, text=True, env=env, timeout=60)
    report("official_client_wrote_first", p.returncode == 0, p.stderr[-500:])
    if p.returncode != 0:
        return
    a = ts.Client(d, "a", srv)
    rc, out = restore(a)
    ok = rc == 0
    why = out[-600:]
    for t in ("t", "k"):
        if ok:
            ok, why = ts.same_table(a.db, srv, t)
    report("restored_what_the_official_client_wrote", ok, why)
    rc, out = a.sync("-v")
    report("next_sync_pushes_nothing_after_official", rc == 0 and "pushed=0" in out, out[-500:])


def main():
    if not os.path.exists(ts.TURSODB) or not shutil.which("node"):
        print("SKIP restore_turso: tursodb or node missing (run scripts/deps.sh)")
        return 0
    for fn in (t_restore_ours, t_restore_after_official):
        ts.case(fn)
    return 1 if e2e.failed else 0


if __name__ == "__main__":
    sys.exit(main())
