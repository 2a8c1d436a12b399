"""End-to-end: a Turso push larger than one request is still all or nothing.

A push of more statements than one request carries is staged on the server
and applied by one final transaction.  The test build's knob
RS_TEST_PUSH_STEPS=2000 lowers the one-request bound (20,000) so the push of
21,000 rows here goes as ten requests and more; the shipped bound is crossed
too, so a client that splits a push into transactions fails these checks
even without the knob.  Each case uses a fresh `tursodb --sync-server`, reads
the server through /v2/pipeline, and asks the official `@tursodatabase/sync`
client what another client sees:

  staged_success_*      21,000 keyed rows, 300 rows of a table without a key
                        (the server picks their rowids), updates and deletes:
                        all land once, identical, and reach another client
  staged_rejected_*     the last of 21,000 rows rejected by a server trigger:
                        the server is unchanged, another client (ours and the
                        official one) sees none of it, the rows stay local
                        and the error names the table; trigger dropped, the
                        next cycle lands them all once
  staged_refused_row_*  one row refused by a server rule (a constraint error):
                        that row is named and left local, the others land
  staged_sigkill_*      the client SIGKILLed between two staging requests:
                        nothing on the server or at another client; the next
                        cycle converges with nothing lost or doubled and the
                        scratch tables gone
  staged_lost_answer_*  the final batch committed, its answer lost: the
                        next cycle reads the watermark; nothing doubled
"""
import os
import shutil
import sqlite3
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import turso_sync as ts  # noqa: E402
from turso_sync import Client, case, same_table  # noqa: E402
from e2e import report  # noqa: E402

N = 21000            # rows: past the shipped one-request bound (20,000 statements)
KNOB = {"RS_TEST_PUSH_STEPS": "2000"}


def count(db, table):
    c = sqlite3.connect(db)
    n = c.execute('SELECT count(*) FROM "%s"' % table).fetchone()[0]
    c.close()
    return n


def server_count(srv, table):
    return srv.pipeline('SELECT count(*) FROM "%s"' % table)[0][0][0][1]


def sync(cl, env=None, *args):
    """sync with the test build (the knob and crash points), returning (rc, output)."""
    e = dict(os.environ, **KNOB)
    e.update(env or {})
    p = subprocess.run([ts.RS_HOOKS, "-c", cl.cfg, "sync"] + list(args), capture_output=True, text=True,
                       env=e, timeout=120)
    return p.returncode, p.stdout + p.stderr


def official_count(d, srv, table):
    """Rows of `table` the official client gets from a fresh pull (None when it fails)."""
    js = os.path.join(d, "official-%d.db" % len(os.listdir(d)))
    p = subprocess.run(["node", ts.OFFICIAL, "dump", srv.url, js, table], capture_output=True, text=True,
                       env=dict(os.environ, ROOT=ts.ROOT), timeout=120)
    return len(p.stdout.splitlines()) if p.returncode == 0 else None


def scratch(srv):
    """Names of this test's clients' scratch tables on the server's connection."""
    return [r[0][1] for r in srv.pipeline("SELECT name FROM temp.sqlite_schema WHERE name LIKE '_resort_sync_push_%'")[0]]


def insert_many(db, n, start=1):
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("BEGIN")
    c.executemany("INSERT INTO t VALUES (?, ?, ?)", [(i, "row %d" % i, None) for i in range(start, start + n)])
    c.execute("COMMIT")
    c.close()


def setup(d, srv):
    a, b = Client(d, "a", srv), Client(d, "b", srv)
    a.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, u TEXT UNIQUE)")
    rc, out = sync(a)
    rc2, out2 = sync(b)
    if rc or rc2:
        raise RuntimeError(out[-300:] + out2[-300:])
    return a, b


def t_success(d, srv):
    a, b = setup(d, srv)
    a.sql("CREATE TABLE log(msg TEXT)", "CREATE TABLE k(name TEXT PRIMARY KEY, n INTEGER)")
    insert_many(a.db, N)
    c = sqlite3.connect(a.db, isolation_level=None)
    c.execute("BEGIN")
    c.executemany("INSERT INTO log VALUES (?)", [("line %d" % i,) for i in range(300)])
    c.executemany("INSERT INTO k VALUES (?, ?)", [("key-%05d" % i, i) for i in range(3000)])
    c.execute("COMMIT")
    c.close()
    rc, out = sync(a)
    report("staged_success_push_staged_in_several_requests", rc == 0 and out.count("turso push: staged") >= 10,
           out[-600:])
    ok = rc == 0 and server_count(srv, "t") == N and server_count(srv, "log") == 300 and server_count(srv, "k") == 3000
    for tab in ("t", "log", "k"):
        good, why = same_table(a.db, srv, tab) if ok else (False, out[-400:])
        ok = ok and good
    report("staged_success_lands_whole_and_identical", ok, why if not ok else "")
    # Updates and deletes past one request too, plus new rows of the table without a key.
    c = sqlite3.connect(a.db, isolation_level=None)
    c.execute("BEGIN")
    c.execute("UPDATE t SET v = v || ' changed' WHERE id % 2 = 0")
    c.execute("DELETE FROM t WHERE id % 7 = 0")
    c.execute("UPDATE k SET n = -n")
    c.executemany("INSERT INTO log VALUES (?)", [("later %d" % i,) for i in range(200)])
    c.execute("COMMIT")
    c.close()
    rc, out = sync(a)
    ok = rc == 0
    why = out[-400:]
    for tab in ("t", "log", "k"):
        good, w = same_table(a.db, srv, tab) if ok else (False, out[-400:])
        ok, why = ok and good, why if good else w
    report("staged_success_updates_deletes_land_identical", ok and count(a.db, "log") == 500, why)
    rc2, out2 = sync(b)
    report("staged_success_other_client_gets_it_all",
           rc2 == 0 and count(b.db, "t") == count(a.db, "t") and count(b.db, "log") == 500
           and count(b.db, "k") == 3000 and same_table(b.db, srv, "t")[0], out2[-400:])
    report("staged_success_official_client_gets_it_all", official_count(d, srv, "t") == count(a.db, "t"), "")
    report("staged_success_scratch_tables_dropped", scratch(srv) == [], "%r" % scratch(srv))


def t_rejected(d, srv):
    a, b = setup(d, srv)
    srv.pipeline("CREATE TRIGGER reject_last BEFORE INSERT ON t WHEN NEW.id = %d "
                 "BEGIN SELECT RAISE(ABORT, 'rejected by the server'); END" % N)
    before = srv.pipeline("SELECT count(*) FROM sqlite_schema")[0]
    insert_many(a.db, N)
    rc, out = sync(a)
    staged = "turso push: staged" in out
    report("staged_rejected_last_row_leaves_server_unchanged",
           rc == 1 and staged and server_count(srv, "t") == 0
           and srv.pipeline("SELECT count(*) FROM sqlite_schema")[0] == before, "rc %d %s" % (rc, out[-600:]))
    report("staged_rejected_error_names_table_and_reason",
           '"t"' in out and "rejected by the server" in out, out[-600:])
    rc2, out2 = sync(b)
    report("staged_rejected_other_client_sees_none", rc2 == 0 and count(b.db, "t") == 0, out2[-300:])
    report("staged_rejected_official_client_sees_none", official_count(d, srv, "t") == 0, "")
    report("staged_rejected_rows_stay_local", count(a.db, "t") == N, "")
    srv.pipeline("DROP TRIGGER reject_last")
    rc, out = sync(a)
    ok, why = same_table(a.db, srv, "t") if rc == 0 else (False, out[-600:])
    rc2, out2 = sync(b)
    report("staged_rejected_trigger_dropped_lands_whole_once",
           ok and server_count(srv, "t") == N and rc2 == 0 and count(b.db, "t") == N, why + out2[-300:])
    report("staged_rejected_scratch_tables_dropped", scratch(srv) == [], "%r" % scratch(srv))


def t_refused_row(d, srv):
    a, b = setup(d, srv)
    srv.pipeline("CREATE TRIGGER server_rule BEFORE INSERT ON t WHEN NEW.id = %d "
                 "BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: server rule'); END" % (N // 2))
    insert_many(a.db, N)
    rc, out = sync(a)
    refused = "refused a row" in out and "rowid=%d" % (N // 2) in out and "table=t" in out
    report("staged_refused_row_named", refused, out[-600:])
    rows = srv.pipeline("SELECT count(*), sum(id = %d) FROM t" % (N // 2))[0][0]
    report("staged_refused_row_others_land", rows[0][1] == N - 1 and rows[1][1] == 0, "%r %s" % (rows, out[-300:]))
    report("staged_refused_row_stays_local", count(a.db, "t") == N, "")


def t_sigkill(d, srv):
    a, b = setup(d, srv)
    a.sql("CREATE TABLE log(msg TEXT)")
    insert_many(a.db, N)
    a.sql("INSERT INTO log VALUES ('one')")
    rc, out = sync(a, {"RS_TEST_CRASH": "push-staged"})
    killed = rc == -9
    left = scratch(srv)
    report("staged_sigkill_killed_between_requests", killed and left != [], "rc %d %r %s" % (rc, left, out[-300:]))
    report("staged_sigkill_nothing_on_server", server_count(srv, "t") == 0, "")
    rc2, out2 = sync(b)
    report("staged_sigkill_nothing_at_other_clients",
           rc2 == 0 and count(b.db, "t") == 0 and official_count(d, srv, "t") == 0, out2[-300:])
    rc, out = sync(a)
    ok, why = same_table(a.db, srv, "t") if rc == 0 else (False, out[-600:])
    report("staged_sigkill_next_cycle_converges_once",
           ok and server_count(srv, "t") == N and server_count(srv, "log") == 1, why)
    rc2, out2 = sync(b)
    report("staged_sigkill_other_client_converges", rc2 == 0 and count(b.db, "t") == N and count(b.db, "log") == 1,
           out2[-300:])
    report("staged_sigkill_scratch_tables_dropped", scratch(srv) == [], "%r" % scratch(srv))


def t_lost_answer(d, srv):
    """The final batch committed but its answer was lost: the next cycle settles it through the watermark."""
    a, b = setup(d, srv)
    a.sql("CREATE TABLE log(msg TEXT)")
    insert_many(a.db, N)
    c = sqlite3.connect(a.db)
    c.executemany("INSERT INTO log VALUES (?)", [("line %d" % i,) for i in range(2500)])
    c.commit()
    c.close()
    rc, out = sync(a, {"RS_TEST_CRASH": "push-sent"})
    landed = rc != 0 and server_count(srv, "t") == N and server_count(srv, "log") == 2500
    rc, out2 = sync(a)
    ok, why = same_table(a.db, srv, "t") if rc == 0 else (False, out2[-600:])
    report("staged_lost_answer_settled_nothing_doubled",
           landed and ok and server_count(srv, "log") == 2500 and count(a.db, "log") == 2500
           and "had committed" in out2, why + out[-300:])


def main():
    if not os.path.exists(ts.TURSODB) or not shutil.which("node"):
        print("SKIP turso_staged: tursodb or node missing (run scripts/deps.sh)")
        return 0
    if not os.path.exists(ts.RS_HOOKS):
        print("SKIP turso_staged: %s missing (make all-tests builds it)" % ts.RS_HOOKS)
        return 0
    only = sys.argv[1:]
    for fn in (t_success, t_rejected, t_refused_row, t_sigkill, t_lost_answer):
        if not only or fn.__name__ in only:
            case(fn)
    return 1 if ts.e2e.failed else 0


if __name__ == "__main__":
    sys.exit(main())
