"""End-to-end: `resort-sync restore` in D1 mode, against Cloudflare's local D1 (wrangler --local).

  - the property-test database (tests/e2e/engine_property.py: every type, REAL bits,
    integers at the 64-bit edges, rowids with gaps in a table without a key,
    sqlite_sequence (one counter beyond 2^53), WITHOUT ROWID and STRICT tables, generated columns, an
    external-content and a content-owning FTS5 table, views, triggers, indexes) is
    synced, then the database and every snapshot file are deleted; `restore --dry-run`
    writes nothing; `restore` rebuilds a database equal to the source
    (tests/lib/dbcompare.py, FTS MATCH, FTS5 integrity-check) and `verify` finds it
    equal to D1 (sqlite_sequence read exactly); the next sync makes no
    wrangler --file call; a later change goes as a diff and D1 equals the source;
  - refusals, each leaving the old file byte for byte and no temporary file: a
    database holding tables without --force; a daemon (`resort-sync run`) holding the
    database's lock; wrangler failing on the third call; D1 changing under every
    read (another syncer's history records, injected by a wrangler wrapper);
  - D1 changing once under the read: the restore reads again and gets the new state;
  - --force keeps the old file as <db>.before-restore;
  - a table of 45,000 small rows is read in one page call: three wrangler calls in all
    (the bounds of before took five);
  - RustResort's migrations (../shared/fixtures; SKIP when absent) filled with data
    (tests/e2e/d1_rustresort.py's filler): restored equal to the source (definitions
    compared without the comments wrangler strips), statuses_fts intact, next sync
    sends nothing.
"""
import glob
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.environ.get("ROOT", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures", "d1"))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import faults  # noqa: E402
from faults import dbcompare, gen  # noqa: E402

SEED = int(os.environ.get("RS_SEED", random.randrange(1 << 30)))
report = faults.Reporter(SEED)
RS = faults.RS

WRAPPER = r'''#!/usr/bin/env python3
# wrangler, misbehaving as wrap.json says: {"real": PATH, "state": GLOB, "fail_at": N, "change_from": N,
# "change_once": bool}.  A change is written into local D1's file directly, before wrangler starts, as
# another syncer's payload would leave it: a history record and a row.
import glob, json, os, sqlite3, sys
here = os.path.dirname(os.path.abspath(__file__))
plan = json.load(open(os.path.join(here, "wrap.json")))
count = os.path.join(here, "wrap.count")
n = (int(open(count).read()) if os.path.exists(count) else 0) + 1
open(count, "w").write(str(n))
if plan.get("fail_at") == n:
    print(json.dumps({"error": {"text": "simulated failure of call %d" % n}}))
    sys.exit(1)
ch = plan.get("change_from")
if ch and (n == ch or (n > ch and not plan.get("change_once"))):
    state = [f for f in glob.glob(plan["state"]) if "metadata" not in os.path.basename(f)][0]
    c = sqlite3.connect(state)
    k = "%d-%d" % (os.getpid(), n)
    c.execute("INSERT INTO _rustresort_sync_history(sync_key, sync_name, sync_at, sync_mode) "
              "VALUES (?, ?, '2030-01-01T00:00:00.000Z', 'diff')", ("injected" + k, "ZZZZZZ" + k))
    c.execute("INSERT INTO parent(code, v) VALUES (?, 'written by another syncer')", ("injected" + k,))
    c.commit()
    c.close()
os.execv(plan["real"], [plan["real"]] + sys.argv[1:])
'''


def sync_settled(env):
    """A sync the case needs to succeed: local D1 itself fails a call now and then on a loaded machine
    (an internal assertion, 'false == true'; resort-sync reports it and keeps the payload), and the next
    cycle completes it."""
    p = env.sync()
    if p.returncode != 0 and "false == true" in p.stderr:
        print("note: local D1 failed a call (%s); syncing once more" % p.stderr.strip()[-200:])
        p = env.sync()
    return p

def run(env, *args, timeout=600):
    e = dict(os.environ, WRANGLER_SEND_METRICS="false")
    return subprocess.run([RS, "-c", env.cfg] + list(args), capture_output=True, text=True, env=e, timeout=timeout)


def digest(path):
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def temporaries(env):
    return sorted(glob.glob(env.db + ".restore-tmp*"))


def forget(env):
    """The database and every file of the snapshot's family gone."""
    for f in glob.glob(env.db) + glob.glob(env.db + "-*") + glob.glob(env.snapshot + "*"):
        os.remove(f)


def fts5_check(path):
    c = sqlite3.connect(path)
    out = []
    for (name,) in c.execute("SELECT name FROM sqlite_schema WHERE sql LIKE 'CREATE VIRTUAL TABLE%USING fts5%'"):
        try:
            c.execute('INSERT INTO "%s"("%s") VALUES (\'integrity-check\')' % (name, name))
        except sqlite3.Error as e:
            out.append("%s: integrity-check: %s" % (name, e))
    c.close()
    return out


def injected(db):
    """Rows the wrapper wrote into D1 as another syncer."""
    c = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    n = c.execute("SELECT count(*) FROM parent WHERE code LIKE 'injected%'").fetchone()[0]
    c.close()
    return n


def wrap(env, **plan):
    """Point the config at a misbehaving wrangler wrapper (plan: see WRAPPER)."""
    path = os.path.join(env.tmp, "wrangler-wrap")
    with open(path, "w") as f:
        f.write(WRAPPER)
    os.chmod(path, 0o755)
    plan["real"] = faults.d1env.WRANGLER
    plan["state"] = os.path.join(env.proj, ".wrangler", "state", "v3", "d1", "*", "*.sqlite")
    with open(os.path.join(env.tmp, "wrap.json"), "w") as f:
        json.dump(plan, f)
    if os.path.exists(os.path.join(env.tmp, "wrap.count")):
        os.remove(os.path.join(env.tmp, "wrap.count"))
    env.write_config(wrangler=path)


def refused(env, name, args, texts):
    """restore with args fails naming texts; the database is untouched; no temporary or backup file."""
    before = digest(env.db)
    p = run(env, "restore", *args)
    missing = [t for t in texts if t not in p.stderr]
    print("  %s: %s" % (name, p.stderr.strip().splitlines()[-1] if p.stderr.strip() else "(no message)"))
    report(name, p.returncode == 1 and not missing and digest(env.db) == before and not temporaries(env)
           and not os.path.exists(env.db + ".before-restore"),
           "rc=%d missing=%r tmp=%r stderr=%r" % (p.returncode, missing, temporaries(env), p.stderr[-800:]))


def property_case():
    tmp = faults.new_tmp("rs-restore-d1-")
    env = faults.Env(tmp, remote="real")
    try:
        g = gen.Gen(random.Random(SEED))
        if not env.first_sync(g, report):
            return
        # an AUTOINCREMENT counter beyond 2^53 (JSON numbers would round it)
        c = env.connect()
        c.execute("UPDATE sqlite_sequence SET seq = 4611686018427387906 WHERE name = 'auto'")
        c.commit()
        c.close()
        p = sync_settled(env)
        if not report("sequence_beyond_2_53_synced", p.returncode == 0, p.stderr[-500:]):
            return
        source = os.path.join(tmp, "source.db")
        env.copy_source(source)
        forget(env)

        p = run(env, "restore", "--dry-run")
        report("dry_run_prints_and_writes_nothing",
               p.returncode == 0 and "nothing was written" in p.stdout and "table    parent:" in p.stdout
               and not os.path.exists(env.db) and not temporaries(env), p.stdout[-600:] + p.stderr[-600:])

        p = run(env, "-v", "restore")
        diffs = dbcompare.compare(source, env.db, fts_queries=gen.FTS_QUERIES) if p.returncode == 0 else [p.stderr[-800:]]
        diffs += fts5_check(env.db) if p.returncode == 0 else []
        report("restored_equals_source", not diffs and not temporaries(env), diffs[:5])
        v = run(env, "verify")
        report("verify_finds_the_restored_database_equal_to_d1", v.returncode == 0 and "DIFFERS" not in v.stdout,
               v.stdout[-800:] + v.stderr[-300:])
        calls = [l for l in p.stderr.splitlines() if "d1 restore done" in l]
        print("  " + (calls[0] if calls else "(no done line)"))
        report("restore_logs_its_wrangler_calls", calls and "wrangler_calls=" in calls[0], p.stderr[-500:])

        n = len(env.calls())
        p = sync_settled(env)
        report("next_sync_is_a_skip_without_apply", p.returncode == 0 and "skipped" in p.stdout and len(env.calls()) == n,
               "rc=%d out=%r calls %d -> %d" % (p.returncode, p.stdout, n, len(env.calls())))
        env.mutate(g)
        p = sync_settled(env)
        d1 = env.d1_differences() if p.returncode == 0 else [p.stderr[-500:]]
        report("later_change_syncs_as_a_diff", p.returncode == 0 and "mode diff" in p.stdout and not d1,
               "%s %s" % (p.stdout.strip(), d1[:4]))

        # refusals: a database holding tables; a daemon holding the lock
        refused(env, "refuses_existing_database_without_force", [], ["holds tables", "--force"])
        cfg2 = os.path.join(tmp, "daemon.toml")
        with open(env.cfg) as f:
            text = f.read().replace("interval_seconds = 1", "interval_seconds = 3600")
        with open(cfg2, "w") as f:
            f.write(text)
        d = subprocess.Popen([RS, "-c", cfg2, "run"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        lockf = os.path.realpath(env.db) + ".resort-sync.lock"
        for _ in range(100):
            if os.path.exists(lockf) and open(lockf).read().strip() == str(d.pid):
                break
            time.sleep(0.1)
        refused(env, "refuses_beside_a_running_daemon", ["--force"], ["another resort-sync (pid %d)" % d.pid])
        d.send_signal(signal.SIGTERM)
        d.wait(timeout=60)

        # wrangler failing midway; D1 changing under every read
        wrap(env, fail_at=3)
        refused(env, "wrangler_failing_midway_leaves_the_old_file", ["--force"], ["simulated failure of call 3"])
        wrap(env, change_from=2, change_once=False)
        refused(env, "remote_changing_under_every_read_is_refused", ["--force"],
                ["changed while it was read, 3 times", "sync history"])

        # D1 changing once: read again, and the result is D1's new state
        wrap(env, change_from=3, change_once=True)
        old = digest(env.db)
        injected_before = injected(env.d1_path())
        p = run(env, "restore", "--force")
        d1 = env.d1_path()
        diffs = dbcompare.compare(d1, env.db, ignore=faults.IGNORE, fts_queries=gen.FTS_QUERIES) \
            if p.returncode == 0 else [p.stderr[-800:]]
        got = (injected_before, injected(d1), injected(env.db))
        report("remote_changing_once_is_read_again", p.returncode == 0 and "reading it again" in p.stderr
               and got[1] == got[0] + 1 == got[2] and not diffs, "%s injected (before, D1, restored) %r %s"
               % (p.stderr[-600:], got, diffs[:4]))
        report("force_keeps_the_old_file", digest(env.db + ".before-restore") == old and not temporaries(env),
               "before-restore %s" % os.path.exists(env.db + ".before-restore"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


BULK_ROWS = 45000


def rows_digest(c):
    """The bulk table's rowids and values, exactly (REAL by its repr), as a count and a SHA-256."""
    rows = c.execute("SELECT id, v, r FROM bulk ORDER BY id").fetchall()
    return len(rows), hashlib.sha256(repr(rows).encode()).hexdigest()


def bulk_case():
    """A table of 45,000 small rows comes back in one page call: three wrangler calls in all
    (the schema; the sizes with the rows; sqlite_sequence with the history and schema again).
    The bounds of before (20,000 rows a page) took five."""
    tmp = faults.new_tmp("rs-restore-bulk-")
    env = faults.Env(tmp, remote="real")
    try:
        c = sqlite3.connect(env.db)
        c.execute("CREATE TABLE bulk(id INTEGER PRIMARY KEY, v INTEGER, r REAL)")
        c.executemany("INSERT INTO bulk VALUES (?, ?, ?)", ((i * 3, i * i - (1 << 62), i / 7) for i in range(BULK_ROWS)))
        c.commit()
        want = rows_digest(c)
        c.close()
        p = sync_settled(env)
        if not report("bulk_full_load", p.returncode == 0, p.stderr[-800:]):
            return
        forget(env)
        p = run(env, "-v", "restore")
        calls = [l for l in p.stderr.splitlines() if "d1 restore done" in l]
        n = int(calls[0].split("wrangler_calls=")[1].split()[0]) if calls else -1
        got = None
        if p.returncode == 0:
            c = sqlite3.connect(env.db)
            got = rows_digest(c)
            c.close()
        print("  %d rows restored in %d wrangler calls" % (BULK_ROWS, n))
        report("bulk_restored_in_at_most_3_wrangler_calls", p.returncode == 0 and got == want and 0 < n <= 3,
               "calls=%d got=%r want=%r %s" % (n, got, want, p.stderr[-600:]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def rustresort_case():
    # beside the project (../shared), or beside the directory of its worktrees (../../shared)
    for up in ("..", os.path.join("..", "..")):
        rr_dir = os.path.normpath(os.path.join(ROOT, up, "shared", "fixtures", "rustresort", "migrations"))
        migrations = sorted(glob.glob(os.path.join(rr_dir, "*.sql")))
        if migrations:
            break
    if not migrations:
        report.skip("rustresort_restored_equal", "RustResort migrations not found at %s" % os.path.normpath(rr_dir))
        return
    import d1_rustresort as rr
    tmp = faults.new_tmp("rs-restore-rr-")
    env = faults.Env(tmp, remote="real")
    try:
        c = sqlite3.connect(env.db)
        c.execute("PRAGMA foreign_keys = ON")
        for m in migrations:
            c.executescript(open(m).read())
        c.execute("PRAGMA foreign_keys = ON")
        rr.Data(c, random.Random(SEED)).fill(int(os.environ.get("RS_RR_ROWS", "1500")))
        c.commit()
        c.close()
        p = sync_settled(env)
        if not report("rustresort_full_load", p.returncode == 0, p.stderr[-800:]):
            return
        source = os.path.join(tmp, "source.db")
        env.copy_source(source)
        forget(env)
        p = run(env, "restore")
        if not report("rustresort_restore_runs", p.returncode == 0, p.stderr[-800:]):
            return
        ptmp = os.path.join(tmp, "cmp")
        os.makedirs(ptmp)
        norm, fixed, other = rr.normalized_d1(env.db, source, ptmp)
        diffs = dbcompare.compare(norm, source, fts_queries=rr.FTS_QUERIES)
        ic = rr.fts_integrity(env.db, ptmp)
        if fixed:
            print("NOTE %d definitions differ from the source's only by the comments wrangler strips" % len(fixed))
        report("rustresort_restored_equal", not diffs and not ic and not other, "%s %s %s" % (diffs[:5], ic, other))
        n = len(env.calls())
        p = sync_settled(env)
        report("rustresort_next_sync_sends_nothing", p.returncode == 0 and "skipped" in p.stdout and len(env.calls()) == n,
               p.stdout + p.stderr[-500:])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    if not os.path.exists(faults.d1env.WRANGLER):
        report.skip("restore_d1", "wrangler not installed (%s)" % faults.d1env.WRANGLER)
        return 0
    property_case()
    bulk_case()
    rustresort_case()
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
