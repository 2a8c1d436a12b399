"""End-to-end against local D1 (wrangler --local): the snapshot advances page
by page and stays page-identical to the state it records.

  1. After the first sync (a full load), and after each later one, every
     page of the snapshot but the first (whose header carries the chain id
     and the journal mode) is byte-identical to the source database's page
     at the same number: the next cycle's page comparison starts from there.
  2. A cycle that changes three rows of a 10,000-row table writes a small
     fraction of the database to advance the snapshot (the status file's
     last_snapshot_bytes), and local D1 equals the source afterwards.
  3. Rows inserted and deleted again (pages change, rows do not): the cycle
     sends nothing to D1, and the snapshot takes the changed pages, so it is
     page-identical again.  VACUUM of the source (every page moves; rowids
     of tables without an INTEGER PRIMARY KEY may change, which D1 must
     get): D1 equals the source after, the snapshot is page-identical again,
     and a change after it still reaches D1.
  4. A snapshot whose pages have drifted (advanced by SQL, as before this
     change or after a page-size change) still gives a correct diff.
  5. A table re-created with the other key kind (WITHOUT ROWID <-> rowid,
     INTEGER PRIMARY KEY -> WITHOUT ROWID) in the pages it had: that cycle
     and the later ones succeed and D1 equals the source (through
     tests/fixtures/d1/fake_wrangler.py; every cycle after the swap died of
     SIGSEGV in the page comparison before).
"""
import json
import os
import random
import shutil
import sqlite3
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "d1"))
import faults  # noqa: E402
from faults import gen  # noqa: E402

SEED = int(os.environ.get("RS_SEED", random.randrange(1 << 30)))
report = faults.Reporter(SEED)


def checkpointed(env):
    c = sqlite3.connect(env.db)
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.close()


def page_mismatches(env):
    """Page numbers (beyond 1) where the snapshot and the checkpointed source differ."""
    checkpointed(env)
    a = open(env.snapshot, "rb").read()
    b = open(env.db, "rb").read()
    ps = int.from_bytes(b[16:18], "big") or 65536
    if len(a) != len(b):
        return ["sizes %d and %d" % (len(a), len(b))]
    return [i + 1 for i in range(1, len(b) // ps) if a[i * ps:(i + 1) * ps] != b[i * ps:(i + 1) * ps]][:10]


def status(env):
    with open(env.snapshot + ".status.json") as f:
        return json.load(f)


SWAPS = [
    ("without_rowid_to_rowid", "CREATE TABLE w(k TEXT PRIMARY KEY, v) WITHOUT ROWID",
     "CREATE TABLE w(k TEXT, v)"),
    ("rowid_to_without_rowid", "CREATE TABLE w(k TEXT, v)",
     "CREATE TABLE w(k TEXT PRIMARY KEY, v) WITHOUT ROWID"),
    ("integer_primary_key_to_without_rowid", "CREATE TABLE w(k INTEGER PRIMARY KEY, v)",
     "CREATE TABLE w(k INTEGER PRIMARY KEY, v) WITHOUT ROWID"),
]
ROWS = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d) "


def key_kind_swaps():
    for name, before, after in SWAPS:
        tmp = faults.new_tmp("rs-d1-swap-")
        try:
            env = faults.Env(tmp, remote="fake")
            c = env.connect()
            c.execute("PRAGMA journal_mode = WAL")
            c.executescript(before + ";" + "INSERT INTO w " + ROWS % 300 + "SELECT 2 * i, printf('v%05d', i) FROM n;")
            c.close()
            codes = [env.sync().returncode]
            c = env.connect()
            c.executescript("BEGIN; DROP TABLE w;" + after + ";" + "INSERT INTO w " + ROWS % 200 +
                            "SELECT 2 * i + 1, printf('n%05d', i) FROM n; COMMIT;")
            c.close()
            p = env.sync()
            codes.append(p.returncode)
            c = env.connect()
            c.execute("UPDATE w SET v = 'later' WHERE k = 11")
            c.commit()
            c.close()
            codes.append(env.sync().returncode)
            d1 = faults.dbcompare.compare(env.d1_path(), env.db, ignore=faults.IGNORE) if env.d1_path() else ["no D1"]
            report("key_kind_swap_%s_syncs" % name, codes == [0, 0, 0] and not d1,
                   "exit codes %s; %s; %s" % (codes, d1[:3], p.stderr[-300:]))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def main():
    key_kind_swaps()
    tmp = faults.new_tmp("rs-d1-pages-")
    rnd = random.Random(SEED)
    try:
        env = faults.Env(tmp, remote="real")
        g = gen.Gen(random.Random(SEED))
        env.build(g)
        c = env.connect()
        c.execute("CREATE TABLE bulk(id INTEGER PRIMARY KEY, v TEXT, r REAL)")
        c.executemany("INSERT INTO bulk VALUES(?,?,?)",
                      ((i, "row %d %s" % (i, "x" * rnd.randrange(50, 250)), rnd.random()) for i in range(1, 10001)))
        c.commit()
        c.close()
        p = env.sync()
        d1 = env.d1_differences() if p.returncode == 0 else [p.stderr[-500:]]
        report("first_full_load", p.returncode == 0 and not d1, d1[:5])
        report("full_load_snapshot_page_identical", not page_mismatches(env), page_mismatches(env))

        # 2. three rows
        c = env.connect()
        for i in rnd.sample(range(1, 10001), 3):
            c.execute("UPDATE bulk SET v = v || '!', r = ? WHERE id = ?", (rnd.random(), i))
        c.commit()
        c.close()
        size = os.path.getsize(env.db)
        p = env.sync()
        d1 = env.d1_differences() if p.returncode == 0 else [p.stderr[-500:]]
        report("three_rows_reach_d1", p.returncode == 0 and not d1, d1[:5])
        st = status(env)
        wrote = st.get("last_snapshot_bytes", -1)
        report("three_rows_advance_writes_little", st.get("last_mode") == "diff" and 0 < wrote < size // 20,
               "mode %s, %d bytes written for a %d-byte database" % (st.get("last_mode"), wrote, size))
        report("diff_snapshot_page_identical", not page_mismatches(env), page_mismatches(env))
        report("nothing_left_behind", not env.leftovers(), env.leftovers())

        # 3. pages change, rows do not; then VACUUM
        calls = len(env.calls())
        c = env.connect()
        c.executemany("INSERT INTO bulk VALUES(?, 'temporary', 0)", ((20000 + i,) for i in range(2000)))
        c.commit()
        c.execute("DELETE FROM bulk WHERE id >= 20000")
        c.commit()
        c.close()
        p = env.sync()
        report("no_row_change_sends_nothing", p.returncode == 0 and len(env.calls()) == calls and
               status(env).get("last_status") == "skipped", "rc %d, calls %d -> %d, %s" % (
                   p.returncode, calls, len(env.calls()), p.stderr[-300:]))
        report("no_row_change_snapshot_page_identical_again", not page_mismatches(env), page_mismatches(env))
        c = env.connect()
        c.execute("VACUUM")
        c.close()
        p = env.sync()
        d1 = env.d1_differences() if p.returncode == 0 else [p.stderr[-500:]]
        report("vacuum_d1_equals_source", p.returncode == 0 and not d1, d1[:5])
        report("vacuum_snapshot_page_identical_again", not page_mismatches(env), page_mismatches(env))
        env.mutate(g)
        p = env.sync()
        d1 = env.d1_differences() if p.returncode == 0 else [p.stderr[-500:]]
        report("change_after_vacuum_reaches_d1", p.returncode == 0 and not d1, d1[:5])
        snap = env.snapshot_differences()
        report("snapshot_equals_source", not snap, snap[:5])

        # 4. a snapshot that is no longer page-identical (its rows rewritten by SQL)
        s = sqlite3.connect(env.snapshot)
        s.execute("PRAGMA journal_mode = DELETE")
        s.execute("CREATE TEMP TABLE keep AS SELECT * FROM main.bulk")
        s.execute("DELETE FROM main.bulk")
        s.execute("INSERT INTO main.bulk SELECT * FROM temp.keep ORDER BY id DESC")
        s.commit()
        s.close()
        report("drifted_snapshot_setup", page_mismatches(env) != [], "the snapshot did not drift")
        c = env.connect()
        c.execute("DELETE FROM bulk WHERE id % 997 = 0")
        c.execute("UPDATE bulk SET r = -r WHERE id % 1009 = 0")
        c.commit()
        c.close()
        p = env.sync()
        d1 = env.d1_differences() if p.returncode == 0 else [p.stderr[-500:]]
        report("drifted_snapshot_diff_is_right", p.returncode == 0 and not d1, d1[:5])
        report("drifted_snapshot_page_identical_again", not page_mismatches(env), page_mismatches(env))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
