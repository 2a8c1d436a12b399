"""End-to-end: the local side misbehaves (D1 played by tests/fixtures/d1/fake_wrangler.py).

  - a writer holds an exclusive lock on a rollback-journal database: the
    cycle gives up after the busy timeout with a message naming the file
    and the timeout, sends nothing, and converges once the lock is gone;
  - a writer holds a long write transaction on a WAL database: the cycle
    sends the committed state only, and the rest once it is committed;
  - a damaged table page, a file that is not a database, a file truncated
    to half: an error naming the file and what integrity_check (or SQLite)
    found, nothing sent, convergence once the file is restored;
  - the file truncated to zero bytes: refused (it would delete every table
    on D1), nothing sent;
  - the file replaced by another database: D1 follows the new file;
  - a damaged snapshot: reported, moved aside, and the next cycle is a full
    load that converges;
  - the disk fills (a small tmpfs holding the snapshot and its files)
    while the payload is written, while the snapshot advances after D1
    accepted the payload, and while a full load's new snapshot is written:
    a clear error, the snapshot intact, nothing lost, and convergence once
    there is room (D1 then calls the re-sent payload a duplicate).
"""
import glob
import os
import random
import shutil
import sqlite3
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "d1"))
import faults  # noqa: E402
from faults import dbcompare, gen  # noqa: E402

SEED = int(os.environ.get("RS_SEED", random.randrange(1 << 30)))
report = faults.Reporter(SEED)

HOLDER = r"""
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
c.execute(sys.argv[2])
c.execute("INSERT INTO textpk(k, v) VALUES ('held', 'by the long transaction')")
print("holding", flush=True)
sys.stdin.read()
c.execute("COMMIT")
"""


def holder(env, begin):
    p = subprocess.Popen([sys.executable, "-c", HOLDER, env.db, begin], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline().strip() == "holding"
    return p


def release(p):
    p.stdin.close()
    p.wait(timeout=60)


def converge(env, name):
    p = env.sync()
    d1 = env.d1_differences() if p.returncode == 0 else [p.stderr[-500:]]
    snap = env.snapshot_differences() if p.returncode == 0 else []
    report(name, p.returncode == 0 and not d1 and not snap and not env.leftovers(),
           "%s %s %s" % (d1[:4], snap[:4], env.leftovers()))


def fails_without_sending(env, name, texts):
    n = len(env.calls())
    digest = env.snapshot_digest()
    p = env.sync()
    missing = [t for t in texts if t not in p.stderr]
    print("  %s: %s" % (name, p.stderr.strip().splitlines()[-1] if p.stderr.strip() else "(no message)"))
    report(name, p.returncode == 1 and not missing and len(env.calls()) == n and env.snapshot_digest() == digest,
           "rc=%d missing %r calls %d -> %d stderr=%r" % (p.returncode, missing, n, len(env.calls()), p.stderr[-500:]))
    return p


def page_of(db, table):
    c = sqlite3.connect(db)
    root = c.execute("SELECT rootpage FROM sqlite_schema WHERE name = ?", (table,)).fetchone()[0]
    size = c.execute("PRAGMA page_size").fetchone()[0]
    c.close()
    return root, size


def smash(path, page, size):
    with open(path, "r+b") as f:
        f.seek((page - 1) * size)
        f.write(bytes((i * 37 + 11) & 0xff for i in range(size)))


def lock_and_damage(tmp, g):
    env = faults.Env(os.path.join(tmp, "rollback"), journal="delete")
    env.build(g)
    converge(env, "first_sync_rollback_journal")
    good = os.path.join(tmp, "good.db")

    env.mutate(g)
    p = holder(env, "BEGIN EXCLUSIVE")
    try:
        fails_without_sending(env, "exclusive_lock_times_out_clearly",
                              [env.db, "database is locked", "busy timeout"])
    finally:
        release(p)
    converge(env, "after_lock_released_converges")

    env.mutate(g)
    env.copy_source(good)
    root, size = page_of(env.db, "parent")
    smash(env.db, root, size)
    fails_without_sending(env, "damaged_page_reported", [env.db, "malformed", "nothing was sent"])
    shutil.copyfile(good, env.db)
    converge(env, "after_damaged_page_restored_converges")

    env.mutate(g)
    env.copy_source(good)
    with open(env.db, "r+b") as f:
        f.write(b"this is not a database file, it only pretends to be one")
    fails_without_sending(env, "not_a_database_reported", [env.db, "file is not a database", "nothing was sent"])
    shutil.copyfile(good, env.db)
    converge(env, "after_not_a_database_restored_converges")

    env.mutate(g)
    env.copy_source(good)
    os.truncate(env.db, os.path.getsize(env.db) // 2)
    fails_without_sending(env, "truncated_to_half_reported", [env.db, "nothing was sent"])
    shutil.copyfile(good, env.db)
    converge(env, "after_truncation_restored_converges")

    env.copy_source(good)
    os.truncate(env.db, 0)
    fails_without_sending(env, "truncated_to_zero_refused", [env.db, "refusing to delete them on D1"])
    shutil.copyfile(good, env.db)

    # Replaced by another database (an older copy, changed): D1 follows the new file.
    other = os.path.join(tmp, "other.db")
    env.copy_source(other)
    c = sqlite3.connect(other)
    c.execute("DELETE FROM child WHERE id % 2 = 0")
    c.execute("INSERT INTO textpk(k, v) VALUES ('from', 'the replacement')")
    c.commit()
    c.close()
    os.replace(other, env.db)
    converge(env, "replaced_database_followed")

    # A damaged snapshot: reported and removed; a full load follows.
    c = env.connect()
    c.execute("UPDATE parent SET v = 'after the snapshot broke' WHERE id = (SELECT min(id) FROM parent)")
    c.commit()
    c.close()
    root, size = page_of(env.snapshot, "parent")
    smash(env.snapshot, root, size)
    n = len(env.calls())
    p = env.sync()
    aside = glob.glob(env.snapshot + ".damaged-*")
    report("damaged_snapshot_reported_and_moved_aside", p.returncode == 1 and "the snapshot %s is damaged" % env.snapshot
           in p.stderr and "the next cycle does a full load" in p.stderr and not os.path.exists(env.snapshot)
           and len(aside) == 1 and "moved to %s" % aside[0] in p.stderr
           and len(env.calls()) == n, "rc=%d %r %s" % (p.returncode, p.stderr[-400:], aside))
    for f in aside:  # kept for a person to look at; not part of what a cycle leaves
        os.remove(f)
    converge(env, "after_damaged_snapshot_full_load_converges")


def long_writer(tmp, g):
    env = faults.Env(os.path.join(tmp, "wal"), journal="wal")
    env.build(g)
    converge(env, "first_sync_wal")
    env.mutate(g)
    committed = os.path.join(tmp, "committed.db")
    env.copy_source(committed)
    p = holder(env, "BEGIN IMMEDIATE")
    try:
        r = env.sync()
        d = dbcompare.compare(env.d1_path(), committed, ignore=faults.IGNORE, fts_queries=gen.FTS_QUERIES)
        report("long_write_transaction_committed_state_sent", r.returncode == 0 and not d, "%r %s" %
               (r.stderr[-300:], d[:3]))
    finally:
        release(p)
    converge(env, "after_long_transaction_commit_converges")


def disk_full(tmp, g):
    mnt = os.path.join(tmp, "small")
    if not faults.try_tmpfs(mnt, "4m"):
        for n in ("disk_full_payload", "disk_full_snapshot_advance", "disk_full_full_load"):
            report.skip(n, "cannot mount a tmpfs here (needs root)")
        return
    try:
        env = faults.Env(os.path.join(tmp, "full"), state_dir=mnt)
        env.build(g)
        converge(env, "first_sync_small_disk")
        filler = os.path.join(mnt, "filler")

        def fill(leave):
            st = os.statvfs(mnt)
            free = st.f_bavail * st.f_frsize
            with open(filler, "ab") as f:
                f.write(b"\0" * max(0, free - leave))

        # 1. The payload does not fit.
        c = env.connect()
        c.executemany("INSERT INTO textpk(k, v) VALUES (?, ?)", [("big%d" % i, "x" * 4000) for i in range(200)])
        c.commit()
        c.close()
        fill(64 << 10)
        fails_without_sending(env, "disk_full_payload", ["pending.sql.new", "No space left on device"])
        report("disk_full_payload_leaves_nothing", not env.leftovers(), env.leftovers())
        os.remove(filler)
        converge(env, "disk_full_payload_then_converges")

        # 2. D1 accepts the payload, then the disk fills before the snapshot advances.
        env.mutate(g)
        digest = env.snapshot_digest()
        env.script("apply-fill:%s" % mnt)
        p = env.sync()
        copy, integrity = faults.recovered_copy(env.snapshot, os.path.join(tmp, "check"))
        # (the snapshot advances by pages behind a journal: the OS's ENOSPC; by SQL: SQLite's message)
        full = "No space left on device" in p.stderr or "database or disk is full" in p.stderr
        report("disk_full_snapshot_advance", p.returncode == 1 and full
               and "stays pending" in p.stderr and env.snapshot_digest() == digest and integrity == "ok"
               and os.path.exists(env.pending), "rc=%d integrity=%s %r" % (p.returncode, integrity, p.stderr[-400:]))
        os.remove(filler)
        n = len(env.calls())
        converge(env, "disk_full_snapshot_advance_then_converges")
        # D1's history is asked for the pending key: the payload is not sent again.
        asked = open(os.path.join(env.proj, "queries.jsonl")).read().count("_rustresort_sync_history WHERE sync_key")
        report("disk_full_snapshot_advance_settled_by_asking_d1",
               asked >= 1 and all(c["outcome"] != "duplicate" for c in env.calls()[n:]), (asked, env.calls()[n:]))

        # 3. A full load whose new snapshot does not fit (the payload does).
        os.remove(env.snapshot)
        os.remove(env.d1_path())
        c = env.connect()
        size = c.execute("PRAGMA page_count").fetchone()[0] * c.execute("PRAGMA page_size").fetchone()[0]
        c.close()
        dump = subprocess.run([faults.RS, "dump", env.db], capture_output=True).stdout
        fill(len(dump) + (48 << 10))
        if len(dump) + (48 << 10) < size:
            fails_without_sending(env, "disk_full_full_load", [".next", "database or disk is full"])
        else:
            report.skip("disk_full_full_load", "the database is not larger than its SQL here")
        os.remove(filler)
        converge(env, "disk_full_full_load_then_converges")
    finally:
        faults.unmount(mnt)


def main():
    tmp = faults.new_tmp("rs-d1-local-")
    try:
        g = gen.Gen(random.Random(SEED))
        lock_and_damage(tmp, g)
        long_writer(tmp, g)
        disk_full(tmp, g)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
