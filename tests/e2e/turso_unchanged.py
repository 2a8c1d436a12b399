"""End-to-end (real tursodb --sync-server): a start-up push skips its diff
only when nothing it would find has changed.

Each `sync` process starts with a push.  It skips the diff of the whole
database when the database, the replica and the exclusions are exactly as
the last complete push left them (<replica>-unchanged).  A wrong skip loses
a write silently, so every case here is a write the skip must not hide:

  idle_sync_skips_the_diff      nothing written since: the skip is logged
  other_process_write_pushed    a row written by another process (sqlite3
                                here) between two syncs reaches the server
  same_size_update_pushed       an UPDATE that keeps every page count and
                                the file size: pushed
  written_and_undone_is_equal   a row added and deleted again: no row sent
                                (a diff may run: the pages differ)
  excluded_table_no_skip        exclude_tables changed: the diff runs again
                                (the other tables' rows still reach the
                                server afterwards)
  mark_file_tampered            a damaged or foreign mark: the diff runs
  vacuum_then_write             VACUUM (new page layout, same rows) and a
                                write: pushed
  fresh_client_skips_push       a client with no database takes the server's
                                rows; its first sync records the database as
                                it then is, so the start-up push skips
  fresh_client_write_pushed     a row written by another process after that
                                first sync reaches the server
"""
import os
import shutil
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from turso_sync import Client, TURSODB, case  # noqa: E402
import e2e  # noqa: E402
from e2e import report  # noqa: E402

SKIP = "as the last complete push left it"


def server_v(srv, k):
    rows = srv.pipeline(("SELECT v FROM t WHERE k = ?", [k]))[0]
    v = rows[0][0][1] if rows else None
    return v.decode() if isinstance(v, bytes) else v


def write(db, *stmts):
    c = sqlite3.connect(db, isolation_level=None)
    for s in stmts:
        c.execute(s) if isinstance(s, str) else c.execute(*s)
    c.close()


def settle(cl):
    """Sync until a start-up push skips (the second sync after a push: its own rows came back)."""
    out = ""
    for _ in range(3):
        rc, out = cl.sync("-v")
        if rc != 0 or SKIP in out:
            break
    return out


def t_unchanged(d, srv):
    a = Client(d, "a", srv)
    write(a.db, "PRAGMA journal_mode=wal", "CREATE TABLE t(k TEXT PRIMARY KEY, v TEXT)",
          "CREATE TABLE side(id INTEGER PRIMARY KEY, x TEXT)", "INSERT INTO t VALUES ('a', 'one')")
    out = settle(a)
    report("idle_sync_skips_the_diff", SKIP in out and server_v(srv, "a") == "one", out[-800:])

    write(a.db, "INSERT INTO t VALUES ('b', 'two')")  # another process
    rc, out = a.sync("-v")
    report("other_process_write_pushed", rc == 0 and SKIP not in out and server_v(srv, "b") == "two", out[-800:])

    settle(a)
    write(a.db, "UPDATE t SET v = 'ONE' WHERE k = 'a'")  # same length: no page count or size change
    rc, out = a.sync("-v")
    report("same_size_update_pushed", rc == 0 and server_v(srv, "a") == "ONE", out[-800:])

    settle(a)
    write(a.db, "INSERT INTO t VALUES ('c', 'three')", "DELETE FROM t WHERE k = 'c'")
    rc, out = a.sync("-v")
    report("written_and_undone_is_equal", rc == 0 and server_v(srv, "c") is None, out[-800:])

    settle(a)
    ex = Client(d, "a", srv, extra="")
    with open(ex.cfg, "a") as f:
        f.write('exclude_tables = ["side"]\n')
    rc, out = a.sync("-v")
    write(a.db, "INSERT INTO t VALUES ('d', 'four')")
    rc2, out2 = a.sync("-v")
    report("excluded_table_no_skip", rc == 0 and SKIP not in out and rc2 == 0 and server_v(srv, "d") == "four",
           (out + out2)[-800:])

    settle(a)
    mark = a.db + ".turso-replica.db-unchanged"
    text = open(mark).read() if os.path.exists(mark) else ""
    with open(mark, "w") as f:
        f.write(text.replace("v1", "v1x"))
    write(a.db, "INSERT INTO t VALUES ('e', 'five')")
    rc, out = a.sync("-v")
    report("mark_file_tampered", bool(text) and rc == 0 and SKIP not in out and server_v(srv, "e") == "five",
           "mark %r %s" % (text[:80], out[-600:]))

    settle(a)
    write(a.db, "VACUUM", "INSERT INTO t VALUES ('f', 'six')")
    rc, out = a.sync("-v")
    report("vacuum_then_write", rc == 0 and SKIP not in out and server_v(srv, "f") == "six", out[-800:])


def t_fresh(d, srv):
    a = Client(d, "a", srv)
    write(a.db, "PRAGMA journal_mode=wal", "CREATE TABLE t(k TEXT PRIMARY KEY, v TEXT)",
          "INSERT INTO t VALUES ('a', 'one'), ('b', 'two')")
    rc0, out0 = a.sync()
    c = Client(d, "c", srv)
    rc, out = c.sync("-v")
    rows = sqlite3.connect(c.db).execute("SELECT k, v FROM t ORDER BY k").fetchall() if rc == 0 else []
    report("fresh_client_skips_push", rc0 == 0 and rc == 0 and SKIP in out and rows == [("a", "one"), ("b", "two")],
           "rows %r %s" % (rows, out[-800:]))
    write(c.db, "INSERT INTO t VALUES ('c', 'three')")
    rc, out = c.sync("-v")
    report("fresh_client_write_pushed", rc == 0 and SKIP not in out and server_v(srv, "c") == "three", out[-800:])


def main():
    if not os.path.exists(TURSODB) or not shutil.which("node"):
        print("SKIP turso_unchanged: tursodb or node missing (run scripts/deps.sh)")
        return 0
    case(t_unchanged)
    case(t_fresh)
    return 1 if e2e.failed else 0


if __name__ == "__main__":
    sys.exit(main())
