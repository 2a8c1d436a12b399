"""End-to-end: Turso mode at the edges of what one push can carry.

Each case starts a fresh `tursodb --sync-server` (helpers shared with
turso_sync.py) and reads the server through /v2/pipeline, independently of
our replica:

  push_split_*           past the 20,000 statements one request carries, a push
                         is staged on the server (says so) and lands whole
                         (turso_staged.py: what staging guarantees)
  push_atomic_*          a 5,000-row local transaction whose last row a server
                         trigger rejects: nothing of it on the server (another
                         client pulls none of it), the local rows kept, the
                         error names the table; the trigger removed, all land
  large_value_*          a 7 MB blob goes (the official client pushes one on
                         the same server); a value over our per-row cap is
                         refused naming table and key (exit 1, not the usage
                         exit 2) while other rows and tables still flow
  generated_column_*     a table with a generated column is left out with a
                         warning in the log and status naming it; the other
                         tables keep syncing
  restored_backup_*      an older copy of the database put back is refused
                         before anything is sent; nothing other clients wrote
                         is deleted on the server
"""
import json
import os
import shutil
import sqlite3
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import turso_sync as ts  # noqa: E402
from turso_sync import Client, case, local_rows, same_table  # noqa: E402
from e2e import report  # noqa: E402


def count(db, table):
    c = sqlite3.connect(db)
    n = c.execute('SELECT count(*) FROM "%s"' % table).fetchone()[0]
    c.close()
    return n


def t_push_atomic(d, srv):
    a, b = Client(d, "a", srv), Client(d, "b", srv)
    a.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", "CREATE TABLE other(k INTEGER PRIMARY KEY)")
    rc, out = a.sync()
    b.sync()
    srv.pipeline("CREATE TRIGGER reject_last BEFORE INSERT ON t WHEN NEW.id = 5000 "
                 "BEGIN SELECT RAISE(ABORT, 'rejected by the server'); END")
    c = sqlite3.connect(a.db, isolation_level=None)
    c.execute("BEGIN")
    c.executemany("INSERT INTO t VALUES (?, ?)", [(i, "row %d " % i + "x" * 900) for i in range(1, 5001)])
    c.execute("COMMIT")
    c.close()
    rc, out = a.sync()
    on_server = srv.pipeline("SELECT count(*) FROM t")[0][0][0][1]
    b.sync()
    report("push_atomic_rejected_row_leaves_nothing_on_server",
           rc == 1 and on_server == 0 and count(b.db, "t") == 0 and count(a.db, "t") == 5000,
           "rc %d server %d b %d a %d %s" % (rc, on_server, count(b.db, "t"), count(a.db, "t"), out[-600:]))
    report("push_atomic_error_names_table", rc == 1 and '"t"' in out and "rejected by the server" in out,
           out[-600:])
    srv.pipeline("DROP TRIGGER reject_last")
    rc, out = a.sync()
    ok, why = same_table(a.db, srv, "t") if rc == 0 else (False, out[-600:])
    rc2, out2 = b.sync()
    report("push_atomic_lands_whole_once_allowed",
           ok and count(a.db, "t") == 5000 and rc2 == 0 and count(b.db, "t") == 5000, why + out2[-300:])


def t_push_split(d, srv):
    """Past the one-request bound (20,000 statements) a push is staged, says so, and lands whole."""
    a, b = Client(d, "a", srv), Client(d, "b", srv)
    a.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    a.sync()
    c = sqlite3.connect(a.db)
    c.executemany("INSERT INTO t VALUES (?, ?)", [(i, "v%d" % i) for i in range(1, 25001)])
    c.commit()
    c.close()
    rc, out = a.sync()
    rc2, _ = b.sync()
    report("push_split_past_one_request_staged_and_lands",
           rc == 0 and "staging it on the server" in out and srv.pipeline("SELECT count(*) FROM t")[0][0][0][1] == 25000
           and rc2 == 0 and count(b.db, "t") == 25000, out[-500:])


def t_large_value(d, srv):
    a = Client(d, "a", srv)
    a.sql("CREATE TABLE files(id TEXT PRIMARY KEY, data BLOB)", "CREATE TABLE notes(id INTEGER PRIMARY KEY, v TEXT)")
    a.sync()
    big = os.urandom(7 << 20)
    a.sql(("INSERT INTO files VALUES (?, ?)", ("seven", big)), "INSERT INTO notes VALUES (1, 'small')")
    rc, out = a.sync()
    ok, why = same_table(a.db, srv, "files") if rc == 0 else (False, out[-600:])
    report("large_value_7mb_blob_pushed", ok and same_table(a.db, srv, "notes")[0], why)
    # The official client on the same server: it pushes a 7 MB blob too, and pulls ours.
    env = dict(os.environ, ROOT=ts.ROOT)
    js = os.path.join(d, "js.db")
    p = subprocess.run(["node", ts.OFFICIAL, "exec", srv.url, js,
                        "INSERT INTO files VALUES ('js-seven', zeroblob(7340032))"],
                       capture_output=True, text=True, env=env, timeout=120)
    rc, out = a.sync()
    c = sqlite3.connect(a.db)
    got = c.execute("SELECT length(data) FROM files WHERE id = 'js-seven'").fetchone()
    c.close()
    report("large_value_official_client_pushes_7mb_we_pull_it",
           p.returncode == 0 and rc == 0 and got == (7340032,), "%r %s %s" % (got, p.stderr[-300:], out[-300:]))
    # Over our per-row cap: refused by name, the other rows still go.
    huge = b"\x01" * ((64 << 20) + 1)
    a.sql(("INSERT INTO files VALUES (?, ?)", ("too-big", huge)), "INSERT INTO notes VALUES (2, 'also small')",
          "INSERT INTO files VALUES ('small-file', x'00ff')")
    del huge
    rc, out = a.sync()
    names = srv.pipeline("SELECT id FROM files ORDER BY id")[0]
    notes = srv.pipeline("SELECT count(*) FROM notes")[0][0][0][1]
    report("large_value_over_cap_refused_by_name_exit_1",
           rc == 1 and "files" in out and "too-big" in out and "exclude_tables" not in out.split("too-big")[0][-10:],
           out[-600:])
    report("large_value_over_cap_others_flow",
           notes == 2 and [n[0][1] for n in names] == [b"js-seven", b"seven", b"small-file"], "%r %r" % (names, notes))
    srv.pipeline("INSERT INTO notes VALUES (3, 'from another client')")
    rc, out = a.sync()
    report("large_value_over_cap_refused_every_cycle_row_kept",
           rc == 1 and "too-big" in out and count(a.db, "files") == 4, out[-400:])
    report("large_value_over_cap_pull_still_runs", count(a.db, "notes") == 3, out[-400:])
    # A row on the server that grows past the cap under a new key: its old version stays there.
    c = sqlite3.connect(a.db)
    c.execute("UPDATE files SET id = 'moved', data = ? WHERE id = 'small-file'", (b"\x02" * ((64 << 20) + 1),))
    c.commit()
    c.close()
    rc, out = a.sync()
    names = [n[0][1] for n in srv.pipeline("SELECT id FROM files ORDER BY id")[0]]
    report("large_value_over_cap_key_move_keeps_old_row", rc == 1 and b"small-file" in names and b"moved" not in names,
           "%r %s" % (names, out[-300:]))


def t_generated_column(d, srv):
    a, b = Client(d, "a", srv), Client(d, "b", srv)
    a.sql("CREATE TABLE plain(id INTEGER PRIMARY KEY, v TEXT)",
          "CREATE TABLE gen(id INTEGER PRIMARY KEY, a INTEGER, twice INTEGER GENERATED ALWAYS AS (a * 2))",
          "INSERT INTO plain VALUES (1, 'one')", "INSERT INTO gen(id, a) VALUES (1, 21)")
    rc, out = a.sync("-v")
    ok, why = same_table(a.db, srv, "plain") if rc == 0 else (False, out[-600:])
    report("generated_column_table_left_out_others_sync", ok, why)
    report("generated_column_named_in_log_with_way_out", "gen" in out and "generated" in out and
           "exclude_tables" in out, out[-600:])
    p = subprocess.run([ts.RS, "-c", a.cfg, "status"], capture_output=True, text=True, timeout=30)
    report("generated_column_named_in_status", "left out" in p.stdout and " gen " in p.stdout and
           "generated" in p.stdout and "last error" not in p.stdout, p.stdout[-600:])
    tables = [r[0][1] for r in srv.pipeline("SELECT name FROM sqlite_schema WHERE type = 'table'")[0]]
    a.sql("INSERT INTO plain VALUES (2, 'two')")
    b.sql("CREATE TABLE IF NOT EXISTS plain(id INTEGER PRIMARY KEY, v TEXT)")
    rc, out = a.sync()
    rc2, out2 = b.sync()
    report("generated_column_other_tables_keep_flowing",
           rc == 0 and rc2 == 0 and b"gen" not in tables and count(b.db, "plain") == 2,
           "%r %s %s" % (tables, out[-300:], out2[-300:]))


def t_restored_backup(d, srv):
    a, b = Client(d, "a", srv), Client(d, "b", srv)
    a.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", "INSERT INTO t VALUES (1, 'a1')")
    a.sync()
    b.sync()
    c = sqlite3.connect(a.db)
    bk = sqlite3.connect(a.db + ".bak")
    c.backup(bk)
    bk.close()
    c.close()
    b.sql("INSERT INTO t VALUES (2, 'from b')", "INSERT INTO t VALUES (3, 'from b too')")
    b.sync()
    a.sync()   # a takes b's rows
    a.sql("INSERT INTO t VALUES (4, 'a4')")
    a.sync()
    before = srv.rows("t")
    # Put the old copy back (the replica stays).
    for suf in ("-wal", "-shm"):
        if os.path.exists(a.db + suf):
            os.unlink(a.db + suf)
    shutil.copy(a.db + ".bak", a.db)
    a.sql("INSERT INTO t VALUES (6, 'written after the restore')")
    rc, out = a.sync()
    report("restored_backup_refused_nothing_deleted",
           rc == 1 and "older" in out and srv.rows("t") == before and len(before) == 4, out[-600:])
    report("restored_backup_message_gives_way_out", "--prefer-remote" in out and "replica" in out, out[-600:])
    # The way out: remove the replica's files, pair again taking the server's copy.
    for f in os.listdir(d):
        if f.startswith("a.db.turso-replica"):
            os.unlink(os.path.join(d, f))
    rc, out = a.sync("--prefer-remote")
    ok, why = same_table(a.db, srv, "t") if rc == 0 else (False, out[-600:])
    report("restored_backup_way_out_converges", ok and count(a.db, "t") == 4, why)
    b.sync()
    # A database that simply moved on (no restore) is never refused.
    a.sql("INSERT INTO t VALUES (5, 'a5')")
    rc1, o1 = a.sync()
    b.sql("DELETE FROM t WHERE id = 2")
    b.sync()
    rc2, o2 = a.sync()
    report("restored_backup_no_false_alarm", rc1 == 0 and rc2 == 0 and count(a.db, "t") == 4, o1[-300:] + o2[-300:])


def main():
    if not os.path.exists(ts.TURSODB) or not shutil.which("node"):
        print("SKIP turso_limits: tursodb or node missing (run scripts/deps.sh)")
        return 0
    only = sys.argv[1:]
    for fn in (t_push_atomic, t_push_split, t_large_value, t_generated_column, t_restored_backup):
        if not only or fn.__name__ in only:
            case(fn)
    return 1 if ts.e2e.failed else 0


if __name__ == "__main__":
    sys.exit(main())
