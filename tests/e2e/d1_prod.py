"""End-to-end: D1 mode in production (the issue "D1 mode in production"), against local D1.

  - files that are not ours: a snapshot_path naming a database of the user's,
    a file that is not SQLite, a foreign file where one of the snapshot's
    companions would go: refused, left byte for byte as they were, nothing
    sent; a damaged snapshot of ours is moved aside, never removed; a
    snapshot from before the owner mark is adopted;
  - one lock per database: a second sync or run on the same database with
    another snapshot path fails at once naming the holder's pid; a sync of a
    missing database leaves no file behind;
  - liveness after D1 rejects a diff (a row only D1 has breaks a foreign
    key): the next cycle sends a full load, logs D1's error and counts it;
    the decision survives a restart;
  - the full load as an exit from any state of D1: two cascading parents,
    the snapshot deleted; a table and a view only D1 has;
  - a pending payload D1 already applied is settled by asking D1, not by
    sending it again;
  - a table over D1's column limit is left out with an error naming it, the
    other tables go on; exclude_tables.
Each case names what it checks; every one fails on the build before the fix.
"""
import glob
import hashlib
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "d1"))
import faults  # noqa: E402
from faults import RS, RS_HOOKS, d1env  # noqa: E402

report = faults.Reporter()


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def run(env, *args, extra_env=None, binary=None, timeout=600):
    e = dict(os.environ, WRANGLER_SEND_METRICS="false")
    e.update(extra_env or {})
    return subprocess.run([binary or RS, "-v", "-c", env.cfg] + list(args), capture_output=True, text=True,
                          env=e, timeout=timeout)


def wrangler_sql(env, sql):
    """Run SQL on local D1 behind resort-sync's back; the parsed --json answer."""
    p = subprocess.run([d1env.WRANGLER, "d1", "execute", "testdb", "--local", "--json", "--yes",
                        "--config", os.path.join(env.proj, "wrangler.toml"), "--command", sql],
                       capture_output=True, text=True, cwd=env.proj, timeout=300,
                       env=dict(os.environ, WRANGLER_SEND_METRICS="false"))
    if p.returncode != 0:
        raise RuntimeError("wrangler: %s %s" % (p.stdout[-500:], p.stderr[-500:]))
    return json.loads(p.stdout)


def new_env(tmp, name, extra_d1="", rows=None):
    """A fresh Env in tmp/name with a small source database (two tables)."""
    d = os.path.join(tmp, name)
    os.makedirs(d)
    env = faults.Env(d, remote="real")
    env.write_config()
    if extra_d1:
        with open(env.cfg, "a") as f:
            f.write(extra_d1)
    c = env.connect()
    c.execute("PRAGMA journal_mode = WAL")
    c.executescript(rows or "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
                    "INSERT INTO t VALUES (1, 'one'), (2, 'two');")
    c.commit()
    c.close()
    return env


def d1_tables(env):
    p = env.d1_path()
    if not p:
        return set()
    c = sqlite3.connect("file:%s?mode=ro" % p, uri=True)
    try:
        return {r[0] for r in c.execute("SELECT name FROM sqlite_schema WHERE type IN ('table', 'view')"
                                        " AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\'")}
    finally:
        c.close()


def equal(env):
    """Differences between local D1 and the source ([] when equal)."""
    p = env.d1_path()
    if not p:
        return ["no D1 database yet"]
    return faults.dbcompare.compare(p, env.db, ignore=faults.IGNORE)


# ---- 1. files that are not ours ----------------------------------------------

def case_foreign_files(tmp):
    # A database of the user's at snapshot_path.
    env = new_env(tmp, "precious")
    precious = os.path.join(env.state, "precious.db")
    c = sqlite3.connect(precious)
    c.executescript("CREATE TABLE keep(x); INSERT INTO keep VALUES ('the user''s data');")
    c.close()
    before = digest(precious)
    env.snapshot = precious
    env.write_config()
    p = run(env, "sync")
    report("snapshot_path_user_database_refused",
           p.returncode != 0 and precious in p.stderr and "snapshot_path" in p.stderr and digest(precious) == before
           and not env.d1_path() and sorted(os.listdir(env.state)) == ["precious.db"],
           "rc=%d stderr=%s files=%s" % (p.returncode, p.stderr[-600:], os.listdir(env.state)))

    # Not SQLite at all: once deleted as a "damaged snapshot".
    notes = os.path.join(env.state, "notes.txt")
    with open(notes, "w") as f:
        f.write("not a database, and not resort-sync's\n" * 100)
    before = digest(notes)
    env.snapshot = notes
    env.write_config()
    p = run(env, "sync")
    report("snapshot_path_non_sqlite_file_kept",
           p.returncode != 0 and notes in p.stderr and os.path.exists(notes) and digest(notes) == before
           and not env.d1_path(),
           "rc=%d stderr=%s" % (p.returncode, p.stderr[-600:]))

    # A file of the user's where a companion of the snapshot would go.
    env.snapshot = os.path.join(env.state, "fresh.db")
    companion = env.snapshot + ".next"
    with open(companion, "w") as f:
        f.write("mine\n")
    env.write_config()
    p = run(env, "sync")
    report("snapshot_companion_user_file_refused",
           p.returncode != 0 and companion in p.stderr and open(companion).read() == "mine\n"
           and not os.path.exists(env.snapshot),
           "rc=%d stderr=%s" % (p.returncode, p.stderr[-600:]))
    os.remove(companion)

    # Our own snapshot, damaged: moved aside (kept), then a full load.
    p = run(env, "sync")
    ok = p.returncode == 0 and os.path.exists(env.snapshot + ".owner")
    with open(env.snapshot, "r+b") as f:
        f.seek(0)
        f.write(b"garbage, not a header" * 8)
    c = env.connect()
    c.execute("INSERT INTO t VALUES (3, 'three')")
    c.commit()
    c.close()
    p1 = run(env, "sync")
    damaged = glob.glob(env.snapshot + ".damaged-*")
    p2 = run(env, "sync")
    report("damaged_own_snapshot_moved_aside",
           ok and p1.returncode != 0 and len(damaged) == 1 and "moved to" in p1.stderr and p2.returncode == 0
           and "mode full" in p2.stdout and not equal(env),
           "first=%s rc1=%d %s damaged=%s rc2=%d %s %s" % (ok, p1.returncode, p1.stderr[-400:], damaged,
                                                           p2.returncode, p2.stderr[-300:], equal(env)[:3]))

    # A snapshot of an earlier version (no owner mark, its status file there): adopted.
    os.remove(env.snapshot + ".owner")
    c = env.connect()
    c.execute("INSERT INTO t VALUES (4, 'four')")
    c.commit()
    c.close()
    p = run(env, "sync")
    report("snapshot_without_mark_but_own_status_adopted",
           p.returncode == 0 and "mode diff" in p.stdout and os.path.exists(env.snapshot + ".owner")
           and not equal(env), "rc=%d %s %s" % (p.returncode, p.stdout, p.stderr[-400:]))

    # The same snapshot path configured for another database: refused.
    other = os.path.join(tmp, "precious", "data", "other.db")
    sqlite3.connect(other).executescript("CREATE TABLE o(x);")
    cfg_text = open(env.cfg).read()
    with open(env.cfg, "w") as f:
        f.write(cfg_text.replace(env.db, other))
    p = run(env, "sync")
    report("snapshot_of_another_database_refused",
           p.returncode != 0 and "belongs to the database" in p.stderr and env.db in p.stderr,
           "rc=%d %s" % (p.returncode, p.stderr[-500:]))
    with open(env.cfg, "w") as f:
        f.write(cfg_text)


# ---- 2. one lock per database --------------------------------------------------

def case_lock_per_database(tmp):
    env = new_env(tmp, "lock")
    env.snapshot = os.path.join(env.state, "a.snapshot.db")
    env.write_config()
    with open(env.cfg, "a") as f:
        f.write("")
    daemon = subprocess.Popen([RS, "-c", env.cfg, "run"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=dict(os.environ, WRANGLER_SEND_METRICS="false"))
    try:
        deadline = time.time() + 20
        lockf = env.db + ".resort-sync.lock"
        while time.time() < deadline and not (os.path.exists(lockf) and open(lockf).read().strip()):
            time.sleep(0.1)
        time.sleep(0.3)
        env.snapshot = os.path.join(env.state, "b.snapshot.db")
        env.write_config()
        t0 = time.time()
        p = run(env, "sync", timeout=60)
        quick = time.time() - t0 < 10
        report("second_sync_other_snapshot_busy",
               p.returncode != 0 and "pid %d" % daemon.pid in p.stderr and quick
               and not os.path.exists(env.snapshot),
               "rc=%d quick=%s stderr=%s" % (p.returncode, quick, p.stderr[-400:]))
        t0 = time.time()
        p = run(env, "run", timeout=60)
        report("second_run_other_snapshot_busy",
               p.returncode != 0 and "pid %d" % daemon.pid in p.stderr and time.time() - t0 < 10,
               "rc=%d stderr=%s" % (p.returncode, p.stderr[-400:]))
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)

    # A missing database: the sync fails and leaves nothing behind.
    env2 = new_env(tmp, "missing")
    os.remove(env2.db)
    for f in glob.glob(env2.db + "*"):
        os.remove(f)
    p = run(env2, "sync")
    left = sorted(os.listdir(env2.state)) + sorted(os.listdir(os.path.dirname(env2.db)))
    report("sync_missing_database_leaves_nothing",
           p.returncode != 0 and env2.db in p.stderr and left == [],
           "rc=%d left=%s stderr=%s" % (p.returncode, left, p.stderr[-300:]))


CASES = [
    case_foreign_files,
    case_lock_per_database,
]


def main():
    tmp = faults.new_tmp("rs-d1-prod-")
    only = os.environ.get("RS_CASE")
    try:
        for case in CASES:
            if only and only not in case.__name__:
                continue
            try:
                case(tmp)
            except Exception as e:  # a broken case is a failure, the others still run
                report(case.__name__, False, "%s: %s" % (type(e).__name__, e))
    finally:
        faults.kill_tree_of(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
