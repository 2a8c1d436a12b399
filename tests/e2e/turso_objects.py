"""End-to-end: views and triggers travel between Turso clients (src/turso/objects.c).

  objects_second_instance_*   two instances sharing migrations_dir: the second
                              gets the first's view and trigger, skips the
                              migration (recorded once), and a write there
                              fires the trigger once, nowhere twice
  objects_from_server_*       a client starting from the server with no local
                              file gets the server's views and triggers
  objects_drop_travels        a trigger dropped on one client goes on the other
  objects_excluded_left_out   a trigger on an excluded table and a view reading
                              it do not travel, and the log names them
"""
import os
import shutil
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import turso_sync as ts  # noqa: E402
from turso_sync import Client, case, same_table  # noqa: E402
from e2e import report  # noqa: E402


def objects(db):
    c = sqlite3.connect(db)
    out = {r[0]: r[1] for r in c.execute("SELECT name, type FROM sqlite_schema WHERE type IN ('view', 'trigger')")}
    c.close()
    return out


def q(db, sql):
    c = sqlite3.connect(db)
    out = c.execute(sql).fetchall()
    c.close()
    return out


MIGRATION = """CREATE TABLE accounts(id TEXT PRIMARY KEY, handle TEXT);
CREATE TABLE audit(id INTEGER PRIMARY KEY, what TEXT);
CREATE VIEW handles AS SELECT handle FROM accounts ORDER BY handle;
CREATE TRIGGER accounts_audit AFTER INSERT ON accounts BEGIN INSERT INTO audit(what) VALUES ('new ' || NEW.id); END;
"""


def t_second_instance(d, srv):
    mig = os.path.join(d, "migrations")
    os.mkdir(mig)
    with open(os.path.join(mig, "001_init.sql"), "w") as f:
        f.write(MIGRATION)
    extra = 'migrations_dir = "%s"\n' % mig
    a, b = Client(d, "a", srv, extra=extra), Client(d, "b", srv, extra=extra)
    rc, out = a.sync()
    rc2, out2 = b.sync()
    want = {"handles": "view", "accounts_audit": "trigger"}
    report("objects_second_instance_gets_view_and_trigger", rc == 0 and rc2 == 0 and objects(b.db) == want,
           "%r %s %s" % (objects(b.db), out[-300:], out2[-400:]))
    migs = q(b.db, "SELECT count(*) FROM _resort_sync_migrations")[0][0]
    report("objects_second_instance_migration_recorded_once", migs == 1 and
           q(b.db, "SELECT count(*) FROM accounts")[0][0] == 0, "migrations rows %r" % migs)
    b.sql("INSERT INTO accounts VALUES ('1', 'bob')")
    b.sync()
    rc, out = a.sync()
    audit = q(a.db, "SELECT what FROM audit")
    report("objects_second_instance_trigger_fires_once",
           rc == 0 and audit == [("new 1",)] and same_table(a.db, srv, "audit")[0] and
           q(a.db, "SELECT * FROM handles") == [("bob",)], "%r %s" % (audit, out[-300:]))
    # A second cycle on each side changes nothing.
    rc, out = a.sync()
    report("objects_steady_state_sends_nothing", rc == 0 and "push: sending" not in out and
           "reconciled" not in out, out[-400:])
    # Dropped on one side: gone on the other.
    a.sql("DROP TRIGGER accounts_audit")
    a.sync()
    rc, out = b.sync()
    report("objects_drop_travels", rc == 0 and objects(b.db) == {"handles": "view"}, "%r %s" % (objects(b.db), out[-300:]))


def t_from_server(d, srv):
    srv.pipeline("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", "CREATE TABLE log(id INTEGER PRIMARY KEY, msg TEXT)",
                 "CREATE VIEW v_t AS SELECT id, upper(v) AS u FROM t",
                 "CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN INSERT INTO log(msg) VALUES ('ins ' || NEW.id); END")
    c = Client(d, "c", srv)
    rc, out = c.sync()
    report("objects_from_server_fresh_client_gets_them", rc == 0 and objects(c.db) == {"v_t": "view", "t_ins": "trigger"},
           "%r %s" % (objects(c.db) if os.path.exists(c.db) else None, out[-400:]))
    # Nothing to reconcile: a cycle never waits for the application's write lock.
    hold = sqlite3.connect(c.db, isolation_level=None)
    hold.execute("BEGIN IMMEDIATE")
    hold.execute("INSERT INTO log(msg) VALUES ('uncommitted')")
    rc, out = c.sync()
    hold.execute("ROLLBACK")
    hold.close()
    report("objects_idle_cycle_takes_no_write_lock", rc == 0, out[-400:])


def t_excluded(d, srv):
    a = Client(d, "a", srv, extra="")
    with open(a.cfg, "a") as f:
        f.write('exclude_tables = ["secret"]\n')
    a.sql("CREATE TABLE pub(id INTEGER PRIMARY KEY, v TEXT)", "CREATE TABLE secret(id INTEGER PRIMARY KEY, v TEXT)",
          "CREATE VIEW sv AS SELECT v FROM secret", "CREATE VIEW pv AS SELECT v FROM pub",
          "CREATE TRIGGER st AFTER INSERT ON secret BEGIN SELECT 1; END",
          "CREATE TRIGGER pt AFTER INSERT ON pub BEGIN SELECT 1; END", "CREATE INDEX secret_v ON secret(v)")
    rc, out = a.sync("-v")
    sent = sorted(r[0][1].decode() for r in srv.pipeline("SELECT name FROM _resort_sync_schema")[0]) if rc == 0 else []
    report("objects_excluded_left_out", rc == 0 and sent == ["pt", "pv"] and "sv (reads secret)" in out and
           "st (reads secret)" in out and "left out" in out, "%r %s" % (sent, out[-600:]))
    idx = [r[0][1] for r in srv.pipeline("SELECT name FROM sqlite_schema WHERE type = 'index'")[0]]
    report("objects_excluded_index_named_in_log", b"secret_v" not in idx and "secret_v (on secret)" in out,
           "%r %s" % (idx, out[-600:]))


def main():
    if not os.path.exists(ts.TURSODB) or not shutil.which("node"):
        print("SKIP turso_objects: tursodb or node missing (run scripts/deps.sh)")
        return 0
    only = sys.argv[1:]
    for fn in (t_second_instance, t_from_server, t_excluded):
        if not only or fn.__name__ in only:
            case(fn)
    return 1 if ts.e2e.failed else 0


if __name__ == "__main__":
    sys.exit(main())
