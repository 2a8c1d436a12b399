"""End-to-end: database.sync.d1.exclude_tables changed between cycles (wrangler d1 execute --local).

An excluded table is not sent; D1's copy of it stays as it was.  What the
config says later must still leave D1 exact:

  1. a table taken back into sync (removed from exclude_tables) after the
     application changed it for several cycles: D1's stale copy is replaced,
     and the table equals the source afterwards (the snapshot, advanced page
     by page meanwhile, holds the table's newest rows, so a plain diff would
     send nothing of what changed while it was out);
  2. a table added to exclude_tables while a full load in parts is
     interrupted (test build, RS_D1_TEST_CRASH=part:2): the next `sync` must
     not send the rest of the load built when the table was still in it;
     it starts over, says so, and the table's rows on D1 stay what the
     interrupted load left;
  3. the same for a pending diff of unknown fate (wrangler killed before it
     ran): built when the table was in, it is not sent again once the table
     is excluded;
  4. an excluded table on D1 whose foreign key (ON DELETE CASCADE) refers
     to a synced table: a full load, which drops and re-creates the parent,
     would make D1 empty the excluded table; it is refused naming both, and
     the excluded table keeps its rows.

Every case checks D1's file against the source (other tables equal, rows,
types and rowids).  Env: RS_SEED.
"""
import glob
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))
import d1env  # noqa: E402
import dbcompare  # noqa: E402
from e2e import report  # noqa: E402
import e2e  # noqa: E402

RS = os.path.join(d1env.ROOT, os.environ.get("BUILD", "build"), "resort-sync")
RS_HOOKS = os.path.join(d1env.ROOT, os.environ.get("BUILD", "build"), "resort-sync-hooks")
SEED = int(os.environ.get("RS_SEED", random.randrange(1 << 30)))
IGNORE = ("_rustresort_sync_history", "_cf_KV", "_cf_METADATA", "d1_migrations")


class Env:
    def __init__(self, tmp, name, schema):
        self.tmp = os.path.join(tmp, name)
        self.proj = os.path.join(self.tmp, "proj")
        d1env.wrangler_project(self.proj, "testdb")
        self.db = os.path.join(self.tmp, "app.db")
        self.snapshot = os.path.join(self.tmp, "app.snapshot.db")
        self.cfg = os.path.join(self.tmp, "resort-sync.toml")
        self.calls = os.path.join(self.tmp, "calls.log")
        # Logs every file wrangler is given; with RS_TEST_WRANGLER_DIE_BEFORE=1 it dies by SIGKILL
        # before running it (resort-sync cannot tell whether D1 ran it).
        self.wrangler = os.path.join(self.tmp, "wrangler-logged")
        with open(self.wrangler, "w") as f:
            f.write("#!/bin/sh\nprev=\nfile=\nfor a in \"$@\"; do\n"
                    "  if [ \"$prev\" = --file ]; then file=$a; fi; prev=$a\ndone\n"
                    "if [ -z \"$file\" ]; then exec %s \"$@\"; fi\n"
                    "cat \"$file\" >> %s\n"
                    "if [ -n \"$RS_TEST_WRANGLER_DIE_BEFORE\" ]; then kill -9 $$; fi\n"
                    "exec %s \"$@\"\n" % (d1env.WRANGLER, self.calls, d1env.WRANGLER))
        os.chmod(self.wrangler, 0o755)
        c = sqlite3.connect(self.db)
        c.executescript(schema)
        c.commit()
        c.close()
        self.configure([])

    def configure(self, exclude, part_kb=16384):
        with open(self.cfg, "w") as f:
            f.write('[database]\npath = "%s"\n[database.sync]\nmode = "d1"\n'
                    '[database.sync.d1]\ndatabase = "testdb"\nwrangler = "%s"\nwrangler_config = "%s"\n'
                    'snapshot_path = "%s"\nfull_load_part_kb = %d\nexclude_tables = [%s]\n'
                    % (self.db, self.wrangler, os.path.join(self.proj, "wrangler.toml"), self.snapshot, part_kb,
                       ", ".join('"%s"' % t for t in exclude)))

    def sync(self, binary=None, extra=None):
        env = dict(os.environ, WRANGLER_SEND_METRICS="false")
        env.update(extra or {})
        return subprocess.run([binary or RS, "-c", self.cfg, "sync"], capture_output=True, text=True, env=env,
                              timeout=900)

    def sent(self):
        """Everything wrangler was given as files so far (one text)."""
        return open(self.calls).read() if os.path.exists(self.calls) else ""

    def d1(self):
        files = [f for f in glob.glob(os.path.join(self.proj, ".wrangler", "state", "v3", "d1", "*", "*.sqlite"))
                 if "metadata" not in os.path.basename(f)]
        return files[0] if files else None

    def d1_rows(self, table):
        p = self.d1()
        if not p:
            return None
        c = sqlite3.connect("file:%s?mode=ro" % p, uri=True)
        try:
            return c.execute("SELECT rowid, * FROM \"%s\" ORDER BY rowid" % table).fetchall()
        except sqlite3.OperationalError:
            return None
        finally:
            c.close()

    def src_rows(self, table):
        c = sqlite3.connect(self.db)
        try:
            return c.execute("SELECT rowid, * FROM \"%s\" ORDER BY rowid" % table).fetchall()
        finally:
            c.close()

    def write(self, sql, params=()):
        c = sqlite3.connect(self.db)
        c.execute(sql, params)
        c.commit()
        c.close()

    def differences(self, leave_out=()):
        p = self.d1()
        if not p:
            return ["no D1 database"]
        return dbcompare.compare(p, self.db, ignore=IGNORE + tuple(leave_out))


def case_table_back_in_sync(tmp, rng):
    env = Env(tmp, "back", "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
              "CREATE TABLE secret(id INTEGER PRIMARY KEY, v TEXT, n REAL);"
              "INSERT INTO t VALUES (1, 'one'); INSERT INTO secret VALUES (1, 's1', 1.5), (2, 's2', 2.5);")
    env.configure(["secret"])
    p = env.sync()
    report("excluded_table_not_sent", p.returncode == 0 and env.d1_rows("secret") is None and env.d1_rows("t"),
           "rc=%d secret on D1: %r %s" % (p.returncode, env.d1_rows("secret"), p.stderr[-400:]))
    for step in range(3):  # changes while it is out, each cycle advancing the snapshot
        env.write("INSERT INTO t(v) VALUES (?)", ("t%d" % step,))
        env.write("INSERT INTO secret(v, n) VALUES (?, ?)", ("new%d" % step, rng.random()))
        env.write("UPDATE secret SET v = ? WHERE id = 1", ("changed%d" % step,))
        p = env.sync()
        if p.returncode != 0:
            break
    env.write("DELETE FROM secret WHERE id = 2")
    p1 = env.sync()
    report("excluded_table_cycles_ok", p.returncode == 0 and p1.returncode == 0 and env.d1_rows("secret") is None,
           "rc=%d/%d %s" % (p.returncode, p1.returncode, (p.stderr + p1.stderr)[-600:]))
    env.configure([])
    p = env.sync()
    d = env.differences()
    report("table_back_in_sync_equals_source", p.returncode == 0 and not d and
           env.d1_rows("secret") == env.src_rows("secret"),
           "rc=%d D1 %r source %r diffs %s %s" % (p.returncode, env.d1_rows("secret"), env.src_rows("secret"),
                                                  d[:3], p.stderr[-600:]))
    report("table_back_in_sync_logged", "secret" in p.stderr and "exclude_tables" in p.stderr, p.stderr[-600:])
    env.write("UPDATE secret SET v = 'after' WHERE id = 1")
    p = env.sync()
    d = env.differences()
    report("table_back_in_sync_later_diff", p.returncode == 0 and not d and "mode=diff" in p.stderr,
           "rc=%d %s %s" % (p.returncode, d[:3], p.stderr[-400:]))


def big_schema(rng):
    rows = ["INSERT INTO a VALUES (%d, '%s');" % (i, "a%d-" % i + "x" * rng.randrange(2000, 4000))
            for i in range(1, 121)]
    rows += ["INSERT INTO b VALUES (%d, '%s');" % (i, "b%d-" % i + "y" * rng.randrange(2000, 4000))
             for i in range(1, 121)]
    return ("CREATE TABLE a(id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE b(id INTEGER PRIMARY KEY, v TEXT);"
            + "".join(rows))


def case_excluded_during_interrupted_load(tmp, rng):
    env = Env(tmp, "load", big_schema(rng))
    env.configure([], part_kb=96)
    p = env.sync(binary=RS_HOOKS, extra={"RS_D1_TEST_CRASH": "part:2"})
    b_then = env.d1_rows("b")
    report("load_killed_after_part_2", p.returncode == -9 and "test hook: crash at part" in p.stderr,
           "rc=%d %s" % (p.returncode, p.stderr[-400:]))
    sent_before = len(env.sent())
    env.configure(["b"], part_kb=96)
    p = env.sync()
    later = env.sent()[sent_before:]
    report("excluded_meanwhile_not_sent", p.returncode == 0 and "INTO \"b\"" not in later and "INTO b" not in later
           and env.d1_rows("b") == b_then,
           "rc=%d b rows on D1 before %s after %s; statements on b sent: %s %s" % (
               p.returncode, None if b_then is None else len(b_then),
               None if env.d1_rows("b") is None else len(env.d1_rows("b")), "INTO \"b\"" in later or "INTO b" in later,
               p.stderr[-600:]))
    report("excluded_meanwhile_starts_over_logged", "exclude_tables" in p.stderr and "starting over" in p.stderr,
           p.stderr[-600:])
    d = env.differences(leave_out=("b",))
    report("excluded_meanwhile_others_equal", not d, d[:3])


def case_excluded_while_diff_pending(tmp, rng):
    """A diff that holds changes to b is pending when b is excluded: b on D1 must stay as it was."""
    env = Env(tmp, "diff", "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE b(id INTEGER PRIMARY KEY,"
              " v TEXT); INSERT INTO t VALUES (1, 'one'); INSERT INTO b VALUES (1, 'b1');")
    p = env.sync()
    env.write("INSERT INTO b VALUES (2, 'b2')")
    env.write("UPDATE b SET v = 'changed' WHERE id = 1")
    env.write("INSERT INTO t VALUES (2, 'two')")
    p1 = env.sync(extra={"RS_TEST_WRANGLER_DIE_BEFORE": "1"})  # the diff's fate is unknown to resort-sync
    b_then = env.d1_rows("b")
    report("diff_fate_unknown", p.returncode == 0 and p1.returncode != 0 and b_then == [(1, 1, 'b1')]
           and "may or may not" in p1.stderr,
           "rc=%d/%d b on D1 %r %s" % (p.returncode, p1.returncode, b_then, p1.stderr[-400:]))
    env.write("DELETE FROM b WHERE id = 2")
    env.write("INSERT INTO t VALUES (3, 'three')")
    sent_before = len(env.sent())
    env.configure(["b"])
    p = env.sync()
    later = env.sent()[sent_before:]
    d = env.differences(leave_out=("b",))
    report("pending_diff_not_resent_after_exclusion", p.returncode == 0 and "\"b\"" not in later and not d
           and env.d1_rows("b") == b_then,
           "rc=%d statements on b sent: %s diffs %s %s" % (p.returncode, "\"b\"" in later, d[:3], p.stderr[-600:]))


def case_excluded_child_full_load(tmp, rng):
    env = Env(tmp, "fk", "CREATE TABLE a(id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE b(id INTEGER PRIMARY KEY,"
              " aid INTEGER REFERENCES a(id) ON DELETE CASCADE, v TEXT); CREATE TABLE c(id INTEGER PRIMARY KEY);"
              + "".join("INSERT INTO a VALUES (%d, 'p%d'); INSERT INTO b VALUES (%d, %d, 'c%d');" % (i, i, i, i, i)
                        for i in range(10)))
    p0 = env.sync()
    env.configure(["b", "c"])
    p1 = env.sync()
    b_then = env.d1_rows("b")
    env.configure(["b"])  # c comes back: a full load, which drops a on D1
    p = env.sync()
    report("excluded_child_full_load_refused", p0.returncode == 0 and p1.returncode == 0 and p.returncode == 1
           and "foreign key refers to table a" in p.stderr and "nothing was sent" in p.stderr,
           "rc=%d/%d/%d %s" % (p0.returncode, p1.returncode, p.returncode, p.stderr[-600:]))
    report("excluded_child_keeps_its_rows", b_then is not None and len(b_then) == 10 and env.d1_rows("b") == b_then,
           "b on D1 before %s after %s" % (None if b_then is None else len(b_then),
                                          None if env.d1_rows("b") is None else len(env.d1_rows("b"))))


def main():
    for b in (RS, RS_HOOKS):
        if not os.access(b, os.X_OK):
            report("binaries", False, "%s is missing (make all-tests)" % b)
            return 1
    if not os.access(d1env.WRANGLER, os.X_OK):
        print("SKIP d1_exclude: wrangler is not installed (%s)" % d1env.WRANGLER)
        return 0
    tmp = tempfile.mkdtemp(prefix="rs-d1-exclude-")
    rng = random.Random(SEED)
    try:
        case_table_back_in_sync(tmp, rng)
        case_excluded_during_interrupted_load(tmp, rng)
        case_excluded_while_diff_pending(tmp, rng)
        case_excluded_child_full_load(tmp, rng)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if e2e.failed:
        print("seed %d" % SEED)
    return 1 if e2e.failed else 0


if __name__ == "__main__":
    sys.exit(main())
