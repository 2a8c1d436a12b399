"""End-to-end: Turso mode when the server, the replica or a sync process is not what it was.

Each case runs a fresh `tursodb --sync-server` (turso_sync.Server) and real
`resort-sync sync` runs, and reads the server through /v2/pipeline.  Rows of
tables without a key (`n`, `log`) are compared as multisets, so a row doubled
anywhere is a failure.  The cases (issue "no write lost under concurrency",
the attacker's findings F4-F8):

  kill_after_merge      a sync dies after its merge committed, before the
                        overlay was reset (crash point pull-merged, with a
                        row whose server rowid is not ours): the next sync
                        must not move and push the rows again
  replica_lost_*        the replica file deleted, emptied, cut in half: the
                        re-bootstrap matches rows without a key by value
  server_restored       the server put back from a copy of its files: both
                        clients converge, nothing doubled or lost
  server_reset_ahead    the server wiped and filled past the clients'
                        revisions: refused by name, nothing pushed; the
                        documented ways out (`sync --merge`, with or without
                        the replica files) keep every party's rows and tables
  wrong_server_*        a client pointed at another server (its revision
                        lower, or higher): refused naming both, nothing
                        pushed or pulled; the right URL works again
"""
import glob
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import turso_sync as ts  # noqa: E402
from turso_sync import Client, Server, RS, TURSODB  # noqa: E402
import e2e  # noqa: E402
from e2e import report  # noqa: E402


def local_values(db, table):
    c = sqlite3.connect(db)
    try:
        return Counter(r[0] for r in c.execute('SELECT v FROM "%s"' % table))
    finally:
        c.close()


def server_values(srv, table):
    return Counter(r[0][1].decode() for r in srv.pipeline('SELECT v FROM "%s"' % table)[0])


def server_tables(srv):
    return sorted(r[0][1].decode() for r in srv.pipeline(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite%'")[0])


def replica_files(cl):
    return glob.glob(cl.db + ".turso-replica.db*")


def sync_with(cl, url, *args):
    p = subprocess.run([RS, "-c", cl.cfg, "-o", "database.sync.turso.remote_url=" + url, "sync"] + list(args),
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


def case(fn):
    d = tempfile.mkdtemp(prefix="rs-turso-id-")
    servers = []

    def server(sub=""):
        if sub:
            os.makedirs(os.path.join(d, sub))
        s = Server(os.path.join(d, sub))
        servers.append(s)
        return s
    try:
        fn(d, server)
    except Exception as e:  # a broken case is a failure, not a crash of the suite
        report(fn.__name__, False, "exception %r" % (e,))
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(d, ignore_errors=True)


def t_kill_after_merge(d, server):
    srv = server()
    a, b = Client(d, "a", srv), Client(d, "b", srv)
    a.sql("CREATE TABLE log(v TEXT)")
    a.sync()
    b.sync()
    a.sql("INSERT INTO log VALUES ('a1')")
    a.sync()
    b.sql("INSERT INTO log VALUES ('b1')")  # our rowid 1: the server's 1 is a1, so b1 gets another
    rc1, out1 = b.sync(env={"RS_TEST_CRASH": "pull-merged"})
    rc2, out2 = b.sync()
    a.sync()
    want = Counter({"a1": 1, "b1": 1})
    ok = rc1 != 0 and "simulated crash" in out1 and rc2 == 0 and server_values(srv, "log") == want and \
        local_values(b.db, "log") == want and local_values(a.db, "log") == want
    report("kill_after_merge_nothing_doubled", ok, "server %r b %r a %r %s" % (
        server_values(srv, "log"), local_values(b.db, "log"), local_values(a.db, "log"), out2[-400:]))
    # The same at the crash point of a cycle's pull (after the start-up push was answered).
    a.sql("INSERT INTO log VALUES ('a2')")
    a.sync()
    b.sql("INSERT INTO log VALUES ('b2')")
    rc1, out1 = b.sync(env={"RS_TEST_CRASH": "pull-merged"})
    rc2, out2 = b.sync()
    rc3, out3 = a.sync()
    want = Counter({"a1": 1, "b1": 1, "a2": 1, "b2": 1})
    ok = rc2 == 0 and rc3 == 0 and server_values(srv, "log") == want and local_values(b.db, "log") == want \
        and local_values(a.db, "log") == want
    report("kill_after_merge_again_nothing_doubled", ok, "server %r b %r %s" % (
        server_values(srv, "log"), local_values(b.db, "log"), out2[-400:]))


def t_replica_lost(d, server):
    for mode in ("delete", "truncate", "half"):
        srv = server(mode)
        sub = os.path.join(d, mode)
        a, b = Client(sub, "a", srv), Client(sub, "b", srv)
        a.sql("CREATE TABLE n(v TEXT)", "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)",
              "INSERT INTO n VALUES ('n1'), ('n2'), ('n2')", "INSERT INTO t VALUES (1, 'x')")
        a.sync()
        b.sync()
        a.sql("INSERT INTO n VALUES ('n3')")  # a local row not pushed yet goes once
        rep = a.db + ".turso-replica.db"
        if mode == "delete":
            os.unlink(rep)
        elif mode == "truncate":
            open(rep, "w").close()
        else:
            os.truncate(rep, os.path.getsize(rep) // 2)
        rc, out = a.sync()
        rc2, _ = b.sync()
        want = Counter({"n1": 1, "n2": 2, "n3": 1})
        got = (server_values(srv, "n"), local_values(a.db, "n"), local_values(b.db, "n"))
        report("replica_lost_%s_nothing_doubled" % mode, rc == 0 and rc2 == 0 and all(g == want for g in got),
               "%r %s" % (got, out[-400:]))


def t_server_restored(d, server):
    srv = server()
    a, b = Client(d, "a", srv), Client(d, "b", srv)
    a.sql("CREATE TABLE n(v TEXT)", "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)",
          "INSERT INTO n VALUES ('n1'), ('n2')", "INSERT INTO t VALUES (1, 'x')")
    a.sync()
    b.sync()
    srv.stop()
    bk = os.path.join(d, "bk")
    os.makedirs(bk)
    for s in ("", "-wal"):
        if os.path.exists(os.path.join(d, "server.db" + s)):
            shutil.copy(os.path.join(d, "server.db" + s), bk)
    srv.start()
    a.sql("INSERT INTO n VALUES ('n3')", "INSERT INTO t VALUES (2, 'y')")
    a.sync()
    b.sync()
    srv.stop()
    for s in ("", "-wal", "-shm"):
        if os.path.exists(os.path.join(d, "server.db" + s)):
            os.unlink(os.path.join(d, "server.db" + s))
        if os.path.exists(os.path.join(bk, "server.db" + s)):
            shutil.copy(os.path.join(bk, "server.db" + s), d)
    srv.start()
    rcs = [cl.sync()[0] for cl in (a, b, a, b)]
    want = Counter({"n1": 1, "n2": 1, "n3": 1})
    got = (server_values(srv, "n"), local_values(a.db, "n"), local_values(b.db, "n"))
    tv = [r[0][1] for r in srv.pipeline("SELECT v FROM t ORDER BY id")[0]]
    p = subprocess.run([RS, "-c", b.cfg, "verify"], capture_output=True, text=True, timeout=60)
    report("server_restored_converges_nothing_doubled", rcs == [0, 0, 0, 0] and all(g == want for g in got)
           and tv == [b"x", b"y"] and p.returncode == 0, "rcs %r %r t %r verify %s" % (rcs, got, tv, p.stdout[-300:]))


def t_server_reset_ahead(d, server):
    srv = server()
    a, b = Client(d, "a", srv), Client(d, "b", srv)
    a.sql("CREATE TABLE kv(k TEXT PRIMARY KEY, v INTEGER)", "CREATE TABLE n(v TEXT)",
          "INSERT INTO kv VALUES ('k1', 1), ('k2', 2)", "INSERT INTO n VALUES ('n1')")
    for cl in (a, b, a):
        cl.sync()
    for i in range(3):
        b.sql("INSERT INTO kv VALUES ('b%d', %d)" % (i, i))
        b.sync()
    b.sql("INSERT INTO kv VALUES ('b-unsent', 0)")
    srv.wipe()
    srv.pipeline("CREATE TABLE other(x, y)")  # someone else fills the new server first
    for i in range(30):
        srv.pipeline("INSERT INTO other VALUES (%d, randomblob(3000))" % i)
    outs = [(cl, cl.sync()) for cl in (a, b, a)]
    refused = all(rc == 1 and "without a resort-sync identity" in out and "--merge" in out for _, (rc, out) in outs)
    report("server_reset_ahead_refused_nothing_pushed", refused and server_tables(srv) == ["other"],
           "%r tables %r" % ([o[-300:] for _, (_, o) in outs], server_tables(srv)))
    # The ways out (README, Recovery): `sync --merge` takes this server as ours and merges
    # (A); so does a client whose replica files were removed (B, a first pairing).
    res = [a.sync("--merge")]
    for f in replica_files(b):
        os.unlink(f)
    res.append(b.sync("--merge"))
    for cl in (a, b):
        res.append(cl.sync())
    kv = sorted(r[1][1].decode() for r in srv.rows("kv"))
    other = srv.pipeline("SELECT count(*) FROM other")[0][0][0][1]
    want_kv = sorted(["k1", "k2", "b0", "b1", "b2", "b-unsent"])
    ok = all(rc == 0 for rc, _ in res) and kv == want_kv and other == 30 and \
        server_values(srv, "n") == Counter({"n1": 1}) and local_values(b.db, "n") == Counter({"n1": 1})
    report("server_reset_ahead_merge_keeps_every_party", ok, "kv %r other %r n %r %r" % (
        kv, other, server_values(srv, "n"), [o[-300:] for rc, o in res if rc]))


def t_wrong_server(d, server):
    for ahead in (False, True):
        name = "higher" if ahead else "lower"
        right, wrong = server("right-" + name), server("wrong-" + name)
        sub = os.path.join(d, "right-" + name)
        a = Client(sub, "a", right)
        a.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", "CREATE TABLE secrets(k TEXT PRIMARY KEY, v TEXT)",
              "INSERT INTO t VALUES (1, 'prod-1'), (2, 'prod-2')", "INSERT INTO secrets VALUES ('api', 'prod')")
        a.sync()
        a.sync()
        wrong.pipeline("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        for i in range(40 if ahead else 0):
            wrong.pipeline("INSERT INTO t VALUES (%d, 'filler')" % (100 + i))
        wrong.pipeline("INSERT INTO t VALUES (1, 'staging-1'), (3, 'staging-3')")
        a.sql("INSERT INTO t VALUES (4, 'prod-4')")  # a local write that must not go there
        before = wrong.pipeline("SELECT count(*) FROM t")[0][0][0][1]
        rc, out = sync_with(a, wrong.url)
        named = rc == 1 and wrong.url in out and "was synced with the server rs-" in out
        after = wrong.pipeline("SELECT count(*) FROM t")[0][0][0][1]
        local = sorted(r[2][1].decode() for r in ts.local_rows(a.db, "t"))
        report("wrong_server_%s_refused_nothing_moved" % name,
               named and after == before and server_tables(wrong) == ["t"] and
               local == ["prod-1", "prod-2", "prod-4"], "rc %d after %r tables %r local %r %s" % (
                   rc, after, server_tables(wrong), local, out[-500:]))
        rc2, out2 = a.sync()
        rep = sqlite3.connect(a.db + ".turso-replica.db")
        integrity = rep.execute("PRAGMA integrity_check").fetchone()[0]
        rep.close()
        ok = rc2 == 0 and integrity == "ok" and ts.same_table(a.db, right, "t")[0] and \
            ts.same_table(a.db, right, "secrets")[0]
        report("wrong_server_%s_right_url_works_again" % name, ok, "rc %d integrity %s %s" % (
            rc2, integrity, out2[-400:]))


def main():
    if not os.path.exists(TURSODB) or not shutil.which("node"):
        print("SKIP turso_identity: tursodb or node missing (run scripts/deps.sh)")
        return 0
    if not os.path.exists(RS + "-hooks"):
        print("SKIP turso_identity: %s-hooks missing (make all-tests builds it)" % RS)
        return 0
    only = sys.argv[1:]
    for fn in (t_kill_after_merge, t_replica_lost, t_server_restored, t_server_reset_ahead, t_wrong_server):
        if not only or fn.__name__ in only:
            case(fn)
    return 1 if e2e.failed else 0


if __name__ == "__main__":
    sys.exit(main())
