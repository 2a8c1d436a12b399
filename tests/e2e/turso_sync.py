"""End-to-end: the Turso sync strategy against `tursodb --sync-server`.

Each case starts a fresh server on loopback (a non-existent file, seeded only
through /v2/pipeline, as the protocol notes require) and drives
`resort-sync sync` on local databases.  The server's content is read through
/v2/pipeline, independently of our replica, and compared with the local
database value by value: types, exact REAL bits, bytes of TEXT and BLOB,
rowids.  The properties of the issue:

  1 identical tables after a cycle with no other writer
  2 no local write lost, even when it races the cycle
  3 other clients' rows arrive; a row changed on both sides ends with the
    last pushed write
  4 crash points and SIGKILL: the next cycle converges, nothing applied twice
  5 interoperability with the official @tursodatabase/sync client

plus first pairing, excluded and unsupported tables (FTS5), migrations,
status, and a server that answers 500.
"""
import base64
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.environ.get("ROOT", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BUILD = os.environ.get("BUILD", "build")
RS = os.environ.get("RS_BIN", os.path.join(ROOT, BUILD, "resort-sync"))
RS_HOOKS = RS + "-hooks"  # the test build: RS_TEST_CRASH points
TURSODB = shutil.which("tursodb") or os.path.join(
    ROOT, "tools/node_modules/@tursodatabase/cli-linux-x64-gnu/tursodb")
OFFICIAL = os.path.join(ROOT, "tests/e2e/turso_official.js")
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import e2e  # noqa: E402
from e2e import free_port, report  # noqa: E402
class Server:
    def __init__(self, d):
        self.d = d
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.start()

    def start(self):
        self.log = open(os.path.join(self.d, "server.log"), "a")
        self.p = subprocess.Popen([TURSODB, "--sync-server", "127.0.0.1:%d" % self.port,
                                   os.path.join(self.d, "server.db")], stdout=self.log, stderr=self.log)
        end = time.time() + 10
        while time.time() < end:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("tursodb did not start")

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
        self.log.close()

    def wipe(self):
        """Stop, delete the server's files, start a brand-new server on the same port."""
        self.stop()
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(os.path.join(self.d, "server.db" + suffix)):
                os.unlink(os.path.join(self.d, "server.db" + suffix))
        self.start()

    def pipeline(self, *stmts):
        """Run statements (sql or (sql, args)) as separate execute requests; raise on any error."""
        reqs = []
        for s in stmts:
            sql, args = (s, []) if isinstance(s, str) else s
            reqs.append({"type": "execute", "stmt": {"sql": sql, "args": [enc(a) for a in args]}})
        body = json.dumps({"requests": reqs}).encode()
        r = urllib.request.Request(self.url + "/v2/pipeline", body, {"content-type": "application/json"})
        out = json.loads(urllib.request.urlopen(r, timeout=10).read())
        res = []
        for x in out["results"]:
            if x["type"] != "ok":
                raise RuntimeError(x["error"]["message"])
            res.append([[dec(c) for c in row] for row in x["response"]["result"]["rows"]])
        return res

    def rows(self, table):
        return self.pipeline('SELECT rowid, * FROM "%s" ORDER BY rowid' % table.replace('"', '""'))[0]


def enc(v):
    if v is None:
        return {"type": "null"}
    if isinstance(v, bool) or isinstance(v, int):
        return {"type": "integer", "value": str(int(v))}
    if isinstance(v, float):
        return {"type": "float", "value": v}
    if isinstance(v, bytes):
        return {"type": "blob", "base64": base64.b64encode(v).decode()}
    return {"type": "text", "value": v}


def dec(c):
    t = c["type"]
    if t == "null":
        return ("null", None)
    if t == "integer":
        return ("integer", int(c["value"]))
    if t == "float":
        if c["value"] is None:  # JSON has no infinity: the server sends null
            return ("real", "non-finite")  # (sign lost on the wire)
        return ("real", struct.pack("<d", float(c["value"])))
    if t == "blob":
        b = c["base64"]
        return ("blob", base64.b64decode(b + "=" * (-len(b) % 4)))
    return ("text", c["value"].encode("utf-8", "surrogatepass"))


def local_rows(db, table):
    c = sqlite3.connect(db)
    c.text_factory = bytes
    q = table.replace('"', '""')
    cols = [r[1].decode() for r in c.execute('PRAGMA table_info("%s")' % q)]
    sel = ", ".join('typeof("{0}"), "{0}"'.format(x.replace('"', '""')) for x in cols)
    out = []
    for r in c.execute('SELECT rowid, %s FROM "%s" ORDER BY rowid' % (sel, q)):
        row = [("integer", r[0])]
        for i in range(len(cols)):
            t, v = r[1 + 2 * i].decode(), r[2 + 2 * i]
            if t == "real":
                v = struct.pack("<d", v) if abs(v) != float("inf") else "non-finite"
            row.append((t, v))
        out.append(row)
    c.close()
    return out


def same_table(db, server, table):
    a, b = local_rows(db, table), server.rows(table)
    if a == b:
        return True, ""
    for x, y in zip(a, b):
        if x != y:
            return False, "%s: first difference local %r vs server %r" % (table, x[:4], y[:4])
    return False, "%s: %d local rows vs %d on the server" % (table, len(a), len(b))


class Client:
    def __init__(self, d, name, server, extra=""):
        self.db = os.path.join(d, name + ".db")
        self.cfg = os.path.join(d, name + ".toml")
        with open(self.cfg, "w") as f:
            f.write('[database]\npath = "%s"\n%s[database.sync]\nmode = "turso"\ninterval_seconds = 1\n'
                    '[database.sync.turso]\nremote_url = "%s"\n' % (self.db, extra, server.url))

    def sql(self, *stmts):
        c = sqlite3.connect(self.db, isolation_level=None)
        c.execute("PRAGMA journal_mode=wal")
        for s in stmts:
            if isinstance(s, str):
                c.execute(s)
            else:
                c.execute(*s)
        c.close()

    def sync(self, *args, env=None):
        e = dict(os.environ)
        e.update(env or {})
        glob = [x for x in args if x in ("-v", "-q")]
        args = [x for x in args if x not in glob]
        prog = RS_HOOKS if "RS_TEST_CRASH" in (env or {}) else RS
        p = subprocess.run([prog] + glob + ["-c", self.cfg, "sync"] + args, capture_output=True, text=True,
                           env=e, timeout=60)
        return p.returncode, p.stdout + p.stderr


def case(fn):
    d = tempfile.mkdtemp(prefix="rs-turso-")
    srv = Server(d)
    try:
        fn(d, srv)
    except Exception as e:  # a broken case is a failure, not a crash of the suite
        report(fn.__name__, False, "exception %r" % (e,))
    finally:
        srv.stop()
        shutil.rmtree(d, ignore_errors=True)


SCHEMA = [
    'CREATE TABLE users(id TEXT PRIMARY KEY, name TEXT, score REAL, avatar BLOB)',
    'CREATE TABLE "odd ""name"" ; --"(v TEXT)',      # no declared key: rowid identity
    'CREATE TABLE items(id INTEGER PRIMARY KEY, n INTEGER, r REAL)',
    'CREATE TABLE pairs(a TEXT, b INTEGER, c TEXT, PRIMARY KEY(a, b))',
    'CREATE INDEX items_n ON items(n)',
]
ODD = 'odd "name" ; --'


def seed(cl):
    cl.sql(*SCHEMA)
    cl.sql(("INSERT INTO users VALUES (?,?,?,?)", ("u1", "Zoë \"q\" 'x'\nline", 0.1 + 0.2, b"\x00\xff")),
           ("INSERT INTO users VALUES (?,?,?,?)", ("u2", None, 1e-310, None)),
           ("INSERT INTO users VALUES (?,?,?,?)", ("u3", "'); DROP TABLE users; --", float("inf"), b"")),
           ("INSERT INTO items VALUES (?,?,?)", (1, -2 ** 63, 1.0 / 3)),
           ("INSERT INTO items VALUES (?,?,?)", (2 ** 62, 2 ** 63 - 1, -0.5)),
           ("INSERT INTO pairs VALUES (?,?,?)", ("k", 1, "one")),
           ("INSERT INTO pairs VALUES (?,?,?)", ("k", 2, "two")))
    for i in range(6):
        cl.sql(('INSERT INTO "odd ""name"" ; --" VALUES (?)', ("v%d" % i,)))
    cl.sql('DELETE FROM "odd ""name"" ; --" WHERE rowid IN (2, 3)')   # rowid gaps must survive
    # TEXT that is not valid UTF-8, byte for byte
    cl.sql("INSERT INTO users VALUES ('u4', CAST(x'c328ff41' AS TEXT), 2.5, NULL)")


TABLES = ["users", ODD, "items", "pairs"]


def all_same(cl, srv):
    for t in TABLES:
        ok, why = same_table(cl.db, srv, t)
        if not ok:
            return False, why
    return True, ""


def t_identical(d, srv):
    cl = Client(d, "a", srv)
    seed(cl)
    rc, out = cl.sync()
    ok, why = all_same(cl, srv) if rc == 0 else (False, out[-600:])
    report("p1_identical_after_cycle", ok, why)
    # An update, a key change, a delete, and an idle cycle.
    cl.sql("UPDATE users SET score = 1e300, name = 'renamed' WHERE id = 'u1'",
           "UPDATE pairs SET b = 3 WHERE a = 'k' AND b = 2",
           "DELETE FROM items WHERE id = 1",
           'UPDATE "odd ""name"" ; --" SET v = \'changed\' WHERE rowid = 5')
    rc, out = cl.sync()
    ok, why = all_same(cl, srv) if rc == 0 else (False, out[-600:])
    report("p1_identical_after_changes", ok, why)
    rc, out = cl.sync("-v")
    # `sync` is start-up (pull, push) plus one cycle (push, pull): with nothing
    # to send, the two pulls are the only requests.
    idle_ok = rc == 0 and "pushed=0 pulled=0" in out and "2 remote calls" in out
    report("p1_idle_cycle_one_request", idle_ok, out[-400:])
    # The server does not hold our bookkeeping, and holds our watermark.
    wm = srv.pipeline("SELECT client_id, change_id FROM turso_sync_last_change_id")[0]
    report("p1_watermark_recorded", len(wm) == 1 and wm[0][0][1].startswith(b"resort-sync-"), repr(wm))


def t_no_write_lost(d, srv):
    cl = Client(d, "a", srv)
    cl.sql("CREATE TABLE w(id INTEGER PRIMARY KEY, v TEXT)")
    stop = threading.Event()
    written = []

    def writer():
        c = sqlite3.connect(cl.db, isolation_level=None, timeout=10)
        i = 0
        while not stop.is_set():
            i += 1
            c.execute("INSERT INTO w VALUES (?, ?)", (i, "row%d" % i))
            written.append(i)
            time.sleep(0.002)
        c.close()

    th = threading.Thread(target=writer)
    th.start()
    errors = []
    for _ in range(8):
        rc, out = cl.sync()
        if rc != 0:
            errors.append(out[-300:])
    stop.set()
    th.join()
    for _ in range(2):
        cl.sync()
    on_server = {r[1][1] for r in srv.rows("w")}
    lost = [i for i in written if i not in on_server]
    report("p2_no_local_write_lost", not errors and not lost and len(written) > 50,
           "errors %r lost %d of %d" % (errors[:1], len(lost), len(written)))


def t_other_clients(d, srv):
    a, b = Client(d, "a", srv), Client(d, "b", srv)
    a.sql("CREATE TABLE t(id TEXT PRIMARY KEY, v TEXT)", "INSERT INTO t VALUES ('x', 'from-a')")
    a.sync()
    rc, out = b.sync()
    got = local_rows(b.db, "t") if rc == 0 else []
    report("p3_rows_from_another_client_arrive", rc == 0 and len(got) == 1 and got[0][2] == ("text", b"from-a"),
           out[-400:] if rc else repr(got))
    # Both change the same row; b pushes last and wins everywhere.
    a.sql("UPDATE t SET v = 'a-wins?' WHERE id = 'x'")
    b.sql("UPDATE t SET v = 'b-wins' WHERE id = 'x'")
    a.sync()
    b.sync()
    a.sync()
    va, vb = local_rows(a.db, "t"), local_rows(b.db, "t")
    vs = srv.rows("t")
    report("p3_last_pushed_write_wins", va == vb == vs and va[0][2] == ("text", b"b-wins"),
           "a %r b %r server %r" % (va, vb, vs))
    # Both insert other keys under the same local rowid: both rows survive, rowids converge.
    a.sql("INSERT INTO t VALUES ('ya', 'a')")
    b.sql("INSERT INTO t VALUES ('yb', 'b')")
    a.sync()
    b.sync()
    a.sync()
    va, vb, vs = local_rows(a.db, "t"), local_rows(b.db, "t"), srv.rows("t")
    report("p3_concurrent_inserts_converge_with_rowids", va == vb == vs and len(vs) == 3,
           "a %r b %r server %r" % (va, vb, vs))
    # A third party writes through the pipeline; a local write since the push is kept.
    srv.pipeline("INSERT INTO t VALUES ('z', 'third')", "UPDATE t SET v = 'remote' WHERE id = 'ya'")
    a.sql("UPDATE t SET v = 'local-newer' WHERE id = 'ya'")
    a.sync()
    va, vs = local_rows(a.db, "t"), srv.rows("t")
    ya = [r for r in va if r[1] == ("text", b"ya")]
    report("p3_third_party_rows_and_local_write_kept",
           va == vs and any(r[1] == ("text", b"z") for r in va) and ya and ya[0][2] == ("text", b"local-newer"),
           "a %r server %r" % (va, vs))


def t_crash_points(d, srv):
    a = Client(d, "a", srv)
    # The shipped program ignores the test variable.
    a.sql("CREATE TABLE probe(x)")
    p = subprocess.run([RS, "-c", a.cfg, "sync"], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, RS_TEST_CRASH="pull-fetched"))
    report("crash_hook_absent_from_shipped_program", p.returncode == 0, p.stderr[-300:])
    a.sql("CREATE TABLE t(id TEXT PRIMARY KEY, v TEXT)", "INSERT INTO t VALUES ('k', 'v0')")
    a.sync()
    # push-sent: the server committed, we died before reading the answer.  Then a
    # third party overwrites the row.  The retry must not push our value again.
    a.sql("UPDATE t SET v = 'ours' WHERE id = 'k'")
    rc1, out1 = a.sync(env={"RS_TEST_CRASH": "push-sent"})
    srv.pipeline("UPDATE t SET v = 'theirs-later' WHERE id = 'k'")
    rc2, out2 = a.sync()
    va, vs = local_rows(a.db, "t"), srv.rows("t")
    report("p4_crash_after_push_sent_not_applied_twice",
           rc1 != 0 and rc2 == 0 and va == vs and vs[0][2] == ("text", b"theirs-later"),
           "rc %d/%d local %r server %r %s" % (rc1, rc2, va, vs, out2[-300:]))
    for point in ("pull-fetched", "pull-merged"):
        srv.pipeline(("INSERT INTO t VALUES (?, 'remote')", [point]))
        a.sql(("INSERT INTO t VALUES (?, 'local')", ["L-" + point]))
        rc1, out1 = a.sync(env={"RS_TEST_CRASH": point})
        a.sql(("INSERT INTO t VALUES (?, 'local2')", ["L2-" + point]))
        rc2, out2 = a.sync()
        va, vs = local_rows(a.db, "t"), srv.rows("t")
        keys = {r[1][1] for r in va}
        report("p4_crash_%s_converges" % point,
               rc1 != 0 and rc2 == 0 and va == vs and {point.encode(), b"L-" + point.encode(),
                                                        b"L2-" + point.encode()} <= keys,
               "rc %d/%d local %r server %r %s" % (rc1, rc2, va, vs, out2[-300:]))

    # pull-applying: a pull stopped while the replica takes its pages (the next run rolls
    # the replica back).  The rows pushed just before (no key: the server picks their
    # rowids) are still only in the overlay: they must not be pushed a second time.
    a.sql("CREATE TABLE nk(v TEXT)")
    a.sync()
    a.sql("INSERT INTO nk VALUES ('n1')", "INSERT INTO nk VALUES ('n2')")
    rc1, out1 = a.sync(env={"RS_TEST_CRASH": "pull-applying"})
    rc2, out2 = a.sync()
    rc3, out3 = a.sync()
    vs, va = srv.rows("nk"), local_rows(a.db, "nk")
    report("p4_crash_pull_applying_rows_not_pushed_twice",
           rc1 != 0 and "simulated crash during apply" in out1 and rc2 == 0 and rc3 == 0 and
           sorted(r[1][1] for r in vs) == [b"n1", b"n2"] and va == vs,
           "rc %d/%d/%d server %r local %r %s" % (rc1, rc2, rc3, vs, va, (out1 + out2)[-400:]))


def t_sigkill_soak(d, srv):
    a = Client(d, "a", srv)
    a.sql("CREATE TABLE s(id INTEGER PRIMARY KEY, v INTEGER)", "INSERT INTO s VALUES (1, 0)")
    a.sync()
    stop = threading.Event()
    written = []

    def writer():
        c = sqlite3.connect(a.db, isolation_level=None, timeout=10)
        i = 1
        while not stop.is_set():
            i += 1
            c.execute("BEGIN IMMEDIATE")
            c.execute("INSERT INTO s VALUES (?, ?)", (i, i))
            c.execute("UPDATE s SET v = v + 1 WHERE id = 1")
            c.execute("COMMIT")
            written.append(i)
            time.sleep(0.003)
        c.close()

    th = threading.Thread(target=writer)
    th.start()
    rng = random.Random(7)
    kills = cycles = 0
    deadline = time.time() + float(os.environ.get("RS_TURSO_SOAK_SECONDS", "12"))
    while time.time() < deadline:
        p = subprocess.Popen([RS, "-q", "-c", a.cfg, "sync"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0, 0.3))
        if p.poll() is None:
            p.kill()
            kills += 1
        p.wait()
        cycles += 1
    stop.set()
    th.join()
    for _ in range(3):
        rc, out = a.sync()
    ok, why = same_table(a.db, srv, "s")
    on_server = {r[1][1] for r in srv.rows("s")}
    lost = [i for i in written if i not in on_server]
    counter = [r for r in srv.rows("s") if r[1][1] == 1][0][2][1]
    print("soak: %d cycles, %d killed, %d rows written" % (cycles, kills, len(written)))
    report("p4_sigkill_soak_converges", rc == 0 and ok and not lost and counter == len(written) and kills > 5,
           "%s lost %d counter %r/%d kills %d %s" % (why, len(lost), counter, len(written), kills, out[-300:]))


def t_official_client(d, srv):
    a = Client(d, "a", srv)
    a.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, data BLOB, r REAL)",
          "INSERT INTO t VALUES (1, 'from-c', x'cafe', 2.5), (2, 'second', NULL, -0.5)")
    a.sync()
    env = dict(os.environ, ROOT=ROOT)
    js = os.path.join(d, "js.db")

    def dump():
        p = subprocess.run(["node", OFFICIAL, "dump", srv.url, js, "t"], capture_output=True, text=True,
                           env=env, timeout=60)
        return [json.loads(x) for x in p.stdout.splitlines()], p.stderr

    def ours():
        c = sqlite3.connect(a.db)
        rows = [list(r) for r in c.execute("SELECT rowid, typeof(id), quote(id), typeof(name), quote(name), "
                                           "typeof(data), quote(data), typeof(r), quote(r) FROM t ORDER BY rowid")]
        c.close()
        return rows

    theirs, err = dump()
    report("p5_official_client_sees_our_rows", theirs == ours(), "official %r ours %r %s" % (theirs, ours(), err[-300:]))
    p = subprocess.run(["node", OFFICIAL, "exec", srv.url, js, "INSERT INTO t VALUES (3, 'from-js', x'beef', 0.25)",
                        "UPDATE t SET name = 'js-renamed' WHERE id = 1", "DELETE FROM t WHERE id = 2"],
                       capture_output=True, text=True, env=env, timeout=60)
    rc, out = a.sync()
    theirs, err = dump()
    mine = ours()
    report("p5_our_database_takes_official_pushes",
           p.returncode == 0 and rc == 0 and mine == theirs and len(mine) == 2 and "'js-renamed'" in mine[0][4],
           "official %r ours %r %s %s" % (theirs, mine, p.stderr[-300:], out[-300:]))


def t_first_pairing(d, srv):
    srv.pipeline("CREATE TABLE t(id TEXT PRIMARY KEY, v TEXT)", "INSERT INTO t VALUES ('r', 'remote')")
    a = Client(d, "a", srv)
    a.sql("CREATE TABLE t(id TEXT PRIMARY KEY, v TEXT)", "INSERT INTO t VALUES ('l', 'local')")
    rc, out = a.sync()
    untouched = srv.rows("t") == [[("integer", 1), ("text", b"r"), ("text", b"remote")]] and \
        len(local_rows(a.db, "t")) == 1
    report("pairing_refused_when_both_hold_data",
           rc == 1 and "--prefer-local" in out and "--prefer-remote" in out and untouched, out[-500:])
    rc, out = a.sync("--prefer-remote")
    ok, why = same_table(a.db, srv, "t")
    report("pairing_prefer_remote", rc == 0 and ok and [r[1][1] for r in local_rows(a.db, "t")] == [b"r"],
           why or out[-400:])
    b = Client(d, "b", srv)
    b.sql("CREATE TABLE t(id TEXT PRIMARY KEY, v TEXT)", "INSERT INTO t VALUES ('b', 'from-b')")
    rc, out = b.sync("--prefer-local")
    ok, why = same_table(b.db, srv, "t")
    report("pairing_prefer_local", rc == 0 and ok and [r[1][1] for r in srv.rows("t")] == [b"b"],
           why or out[-400:])
    c = Client(d, "c", srv)    # an empty local side simply takes the server's content
    rc, out = c.sync()
    ok, why = same_table(c.db, srv, "t") if rc == 0 else (False, out[-400:])
    report("pairing_empty_side_takes_other", ok, why)


def t_fts_and_exclude(d, srv):
    a = Client(d, "a", srv)
    a.sql("CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)",
          "CREATE VIRTUAL TABLE notes_fts USING fts5(body, content='notes', content_rowid='id')",
          "CREATE TRIGGER notes_ai AFTER INSERT ON notes BEGIN INSERT INTO notes_fts(rowid, body) "
          "VALUES (new.id, new.body); END",
          "CREATE TRIGGER notes_ad AFTER DELETE ON notes BEGIN INSERT INTO notes_fts(notes_fts, rowid, body) "
          "VALUES ('delete', old.id, old.body); END",
          "CREATE TRIGGER notes_au AFTER UPDATE ON notes BEGIN INSERT INTO notes_fts(notes_fts, rowid, body) "
          "VALUES ('delete', old.id, old.body); INSERT INTO notes_fts(rowid, body) VALUES (new.id, new.body); END",
          "INSERT INTO notes VALUES (1, 'hello local world')")
    rc, out = a.sync()
    report("fts_table_refused_with_its_name", rc != 0 and "notes_fts" in out and "exclude_tables" in out, out[-400:])
    a2 = Client(d, "a", srv, extra="")
    with open(a2.cfg, "a") as f:
        f.write('exclude_tables = ["notes_fts"]\n')
    rc, out = a2.sync()
    srv.pipeline("INSERT INTO notes VALUES (2, 'remote zebra text')", "UPDATE notes SET body = 'hello giraffe' WHERE id = 1")
    rc2, out2 = a2.sync()
    c = sqlite3.connect(a2.db)
    hits = [r[0] for r in c.execute("SELECT rowid FROM notes_fts WHERE notes_fts MATCH 'zebra OR giraffe' ORDER BY rowid")]
    stale = [r[0] for r in c.execute("SELECT rowid FROM notes_fts WHERE notes_fts MATCH 'local'")]
    integrity = c.execute("INSERT INTO notes_fts(notes_fts, rank) VALUES ('integrity-check', 1)") and "ok"
    trig = c.execute("SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'").fetchone()[0]
    c.close()
    ok, why = same_table(a2.db, srv, "notes")
    report("fts_excluded_kept_current_on_pull", rc == 0 and rc2 == 0 and ok and hits == [1, 2] and not stale
           and trig == 3 and integrity == "ok", "%s hits %r stale %r triggers %d %s" % (why, hits, stale, trig, out2[-300:]))


def t_migrations(d, srv):
    mig = os.path.join(d, "migrations")
    os.mkdir(mig)
    with open(os.path.join(mig, "001_init.sql"), "w") as f:
        f.write("CREATE TABLE accounts(id TEXT PRIMARY KEY, handle TEXT);\nCREATE INDEX accounts_h ON accounts(handle);\n")
    with open(os.path.join(mig, "002_seed.sql"), "w") as f:
        f.write("INSERT INTO accounts VALUES ('1', 'admin');\n")
    a = Client(d, "a", srv, extra='migrations_dir = "%s"\n' % mig)
    rc, out = a.sync("-v")
    order = [m for m in ("start-up pull", "migrations", "checkpoint", "start-up push") if m in out]
    pos = [out.find("turso " + m) for m in order]
    ok, why = same_table(a.db, srv, "accounts")
    report("migrations_applied_in_startup_order", rc == 0 and ok and len(order) == 4 and pos == sorted(pos),
           why or out[-500:])
    rc, out = a.sync()
    c = sqlite3.connect(a.db)
    n = c.execute("SELECT count(*) FROM accounts").fetchone()[0]
    c.close()
    report("migrations_applied_once", rc == 0 and n == 1, out[-300:])
    with open(os.path.join(mig, "003_bad.sql"), "w") as f:
        f.write("ALTER TABLE nope ADD COLUMN x;\n")
    rc, out = a.sync()
    report("migration_failure_names_file", rc != 0 and "003_bad.sql" in out and "no such table" in out, out[-400:])


def t_status(d, srv):
    a = Client(d, "a", srv)
    a.sql("CREATE TABLE t(id INTEGER PRIMARY KEY)", "INSERT INTO t VALUES (1)")
    # Before the first sync, status reads and creates nothing.
    p = subprocess.run([RS, "-c", a.cfg, "status"], capture_output=True, text=True, timeout=30)
    made = [f for f in os.listdir(d) if f.startswith("a.db.turso-replica")]
    report("status_before_first_sync_creates_no_file", p.returncode == 0 and not made
           and "no sync has run yet" in p.stdout, "%s %s" % (made, p.stdout[-300:]))
    a.sync()
    a.sql("INSERT INTO t VALUES (2)", "INSERT INTO t VALUES (3)")
    p = subprocess.run([RS, "-c", a.cfg, "status"], capture_output=True, text=True, timeout=30)
    out = p.stdout + p.stderr
    report("status_shows_revision_push_pull_pending",
           p.returncode == 0 and "revision" in out and "last push" in out and "last pull" in out
           and "pending local changes: 2" in out, out[-600:])
    # --remote: our watermark on the server, read through the pipeline; it moves with a push.
    wm = srv.pipeline("SELECT change_id FROM turso_sync_last_change_id")[0][0][0][1]
    p = subprocess.run([RS, "-c", a.cfg, "status", "--remote"], capture_output=True, text=True, timeout=30)
    before = p.returncode == 0 and ("server watermark       change %d," % wm) in p.stdout
    a.sync()
    p2 = subprocess.run([RS, "-c", a.cfg, "status", "--remote"], capture_output=True, text=True, timeout=30)
    report("status_remote_shows_server_watermark", before and p2.returncode == 0
           and ("server watermark       change %d," % (wm + 1)) in p2.stdout,
           "watermark %d: %s | %s" % (wm, p.stdout[-200:], p2.stdout[-200:] + p2.stderr[-200:]))
    srv.stop()
    p = subprocess.run([RS, "-c", a.cfg, "status", "--remote"], capture_output=True, text=True, timeout=30)
    srv.start()
    report("status_remote_server_down_exit_1_local_part_shown", p.returncode == 1 and "revision" in p.stdout
           and "cannot connect" in p.stderr, p.stdout[-200:] + p.stderr[-300:])


def t_push_rejected(d, srv):
    a = Client(d, "a", srv)
    a.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", "INSERT INTO t VALUES (1, 'x')")
    a.sync()
    # A rule only the server has (triggers are not merged): the batch fails there
    # and rolls back whole.
    srv.pipeline("CREATE TRIGGER t_no BEFORE INSERT ON t WHEN new.v = 'x' BEGIN "
                 "SELECT RAISE(ABORT, 'rejected by the server'); END")
    a.sql("INSERT INTO t VALUES (2, 'new')", "INSERT INTO t VALUES (3, 'x')")
    rc, out = a.sync()
    rows = srv.rows("t")
    report("push_rejected_rolls_back_whole_batch", rc != 0 and "push" in out and "rejected by the server" in out and len(rows) == 1,
           "%r %s" % (rows, out[-400:]))
    a.sql("DELETE FROM t WHERE id = 3")
    rc, out = a.sync()
    ok, why = same_table(a.db, srv, "t") if rc == 0 else (False, out[-400:])
    report("push_after_rejection_recovers", ok, why)


def t_server_down_and_reset(d, srv):
    a = Client(d, "a", srv)
    a.sql("CREATE TABLE t(id TEXT PRIMARY KEY, v TEXT)", "INSERT INTO t VALUES ('1', 'one')")
    a.sync()
    srv.stop()
    a.sql("INSERT INTO t VALUES ('2', 'while down')")
    rc, out = a.sync()
    report("server_unreachable_clear_error", rc != 0 and ("connect" in out.lower() or "transport" in out.lower()),
           out[-300:])
    srv.start()
    rc, out = a.sync()
    ok, why = same_table(a.db, srv, "t") if rc == 0 else (False, out[-400:])
    report("server_back_converges", ok and len(srv.rows("t")) == 2, why)
    # The server is replaced by an empty one: its revision goes backwards, and it
    # has not the identity this client recorded (tests/e2e/turso_identity.py):
    # refused, nothing pushed; `sync --merge` takes it as ours, the replica is
    # bootstrapped again and nothing local is dropped: it is pushed.
    srv.wipe()
    a.sql("INSERT INTO t VALUES ('3', 'after reset')")
    rc0, out0 = a.sync()
    refused = rc0 == 1 and "--merge" in out0 and "without a resort-sync identity" in out0
    rc, out = a.sync("--merge")
    ok, why = same_table(a.db, srv, "t") if rc == 0 else (False, out[-400:])
    report("server_reset_keeps_local_rows", refused and ok and len(srv.rows("t")) == 3, why or out0[-300:])


def t_daemon(d, srv):
    a = Client(d, "a", srv)
    a.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", "INSERT INTO t VALUES (1, 'start')")
    p = subprocess.Popen([RS, "-v", "-c", a.cfg, "run"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1.5)
        a.sql("INSERT INTO t VALUES (2, 'while running')")
        srv.pipeline("INSERT INTO t VALUES (3, 'from the server')")
        end = time.time() + 15
        ok = False
        while time.time() < end and not ok:
            time.sleep(0.5)
            ok = len(srv.rows("t")) == 3 and len(local_rows(a.db, "t")) == 3
        time.sleep(3.5)  # idle cycles: no local commit, so no diff of the database
    finally:
        p.send_signal(signal.SIGTERM)
        out = p.communicate(timeout=20)[0]
    same, why = same_table(a.db, srv, "t")
    order = [out.find(x) for x in ("turso start-up pull", "turso start-up push", "turso checkpoint",
                                    "turso push\"", "turso pull\"")]
    report("daemon_cycles_converge_and_exit_0", ok and same and p.returncode == 0 and -1 not in order,
           "%s rc %s %s" % (why, p.returncode, out[-500:]))
    report("daemon_idle_cycle_skips_the_scan", "no commit to the database since the last push" in out, out[-500:])


def t_verify(d, srv):
    a = Client(d, "a", srv)
    seed(a)
    a.sync()
    p = subprocess.run([RS, "-c", a.cfg, "verify"], capture_output=True, text=True, timeout=60)
    report("verify_equal_exit_0", p.returncode == 0 and p.stdout.count("ok ") == 4, p.stdout + p.stderr)
    # A row changed behind our back on the server.
    srv.pipeline("UPDATE items SET n = n + 1 WHERE id = 1")
    prom = os.path.join(d, "verify.prom")
    p = subprocess.run([RS, "-c", a.cfg, "verify", "--metrics-file", prom], capture_output=True, text=True,
                       timeout=60)
    lines = [x for x in p.stdout.splitlines() if x.startswith("DIFFERS")]
    report("verify_catches_a_remote_change", p.returncode == 1 and len(lines) == 1 and " items:" in lines[0],
           p.stdout + p.stderr)
    text = open(prom).read() if os.path.exists(prom) else ""
    report("verify_mismatch_metric_written", 'resort_sync_verify_mismatch{backend="turso"} 1\n' in text
           and 'resort_sync_verify_tables_differing{backend="turso"} 1\n' in text, text)


def t_local_faults(d, srv):
    a = Client(d, "a", srv)
    a.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)",
          *[("INSERT INTO t VALUES (?, ?)", (i, "x" * 200)) for i in range(1, 400)])
    a.sync()
    srv.pipeline("INSERT INTO t VALUES (1000, 'remote')")
    # A writer holds the database past the busy timeout: the merge gives up
    # with a message naming the file, and the next cycle catches up.
    hold = sqlite3.connect(a.db, isolation_level=None)
    hold.execute("BEGIN IMMEDIATE")
    hold.execute("INSERT INTO t VALUES (2000, 'held')")
    t0 = time.time()
    rc, out = a.sync()
    waited = time.time() - t0
    hold.execute("COMMIT")
    hold.close()
    report("locked_database_bounded_wait_clear_error",
           rc != 0 and a.db in out and ("busy" in out or "locked" in out) and waited < 30, out[-400:])
    rc, out = a.sync()
    ok, why = same_table(a.db, srv, "t") if rc == 0 else (False, out[-400:])
    report("locked_database_next_cycle_converges", ok, why)
    # A damaged page: the cycle stops with SQLite's diagnosis, nothing is pushed.
    before = srv.rows("t")
    a.sql("UPDATE t SET v = 'changed' WHERE id = 5")
    c = sqlite3.connect(a.db)
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.close()
    with open(a.db, "r+b") as f:
        f.seek(4096 * 3 + 100)
        f.write(b"\xff" * 1500)
    rc, out = a.sync()
    report("corrupt_database_nothing_pushed", rc != 0 and "malformed" in out and srv.rows("t") == before,
           out[-400:])


def t_emptied_database(d, srv):
    """The database truncated to zero bytes under us: refused, nothing dropped on the server."""
    a = Client(d, "a", srv)
    a.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)",
          *[("INSERT INTO t VALUES (?, ?)", (i, "v%d" % i)) for i in range(1, 50)])
    rc, out = a.sync()
    before = srv.rows("t")
    shutil.copy(a.db, a.db + ".bak")
    os.truncate(a.db, 0)
    rc, out = a.sync()
    report("emptied_database_refused_server_keeps_tables",
           rc == 1 and "refusing to sync" in out and a.db in out and srv.rows("t") == before and len(before) == 49,
           out[-500:])
    # Restored: the next sync is a no-op against the server.
    shutil.copy(a.db + ".bak", a.db)
    rc, out = a.sync()
    ok, why = same_table(a.db, srv, "t") if rc == 0 else (False, out[-400:])
    report("emptied_database_restored_converges", ok, why)
    # Or the replica removed: the empty database starts again from the server's copy.
    os.truncate(a.db, 0)
    for f in os.listdir(d):
        if f.startswith("a.db.turso-replica"):
            os.unlink(os.path.join(d, f))
    rc, out = a.sync()
    ok, why = same_table(a.db, srv, "t") if rc == 0 else (False, out[-400:])
    report("emptied_database_replica_removed_pulls_server_copy", ok and len(local_rows(a.db, "t")) == 49, why)


def t_schema_changes(d, srv):
    a, b = Client(d, "a", srv), Client(d, "b", srv)
    a.sql("CREATE TABLE t(id TEXT PRIMARY KEY, v TEXT)", "INSERT INTO t VALUES ('1', 'one')")
    a.sync()
    b.sync()
    a.sql("ALTER TABLE t ADD COLUMN extra INTEGER DEFAULT 7", "CREATE INDEX t_v ON t(v)",
          "CREATE TABLE more(k INTEGER PRIMARY KEY, w BLOB)", "INSERT INTO more VALUES (1, x'01')",
          "UPDATE t SET extra = 42 WHERE id = '1'")
    rc1, o1 = a.sync()
    rc2, o2 = b.sync()
    bt = local_rows(b.db, "t")
    c = sqlite3.connect(b.db)
    idx = c.execute("SELECT count(*) FROM sqlite_schema WHERE name = 't_v'").fetchone()[0]
    c.close()
    ok = rc1 == 0 and rc2 == 0 and same_table(a.db, srv, "t")[0] and same_table(b.db, srv, "more")[0]
    report("schema_add_column_index_table_travel", ok and bt == local_rows(a.db, "t") and idx == 1
           and bt[0][3] == ("integer", 42), "%r %s %s" % (bt, o1[-300:], o2[-300:]))
    # A second cycle finds nothing: the server's re-rendered DDL is not a change.
    rc, out = a.sync()
    report("schema_rerendered_ddl_is_not_a_change", rc == 0 and "push: sending" not in out, out[-400:])


def main():
    if not os.path.exists(TURSODB) or not shutil.which("node"):
        print("SKIP turso_sync: tursodb or node missing (run scripts/deps.sh)")
        return 0
    only = sys.argv[1:]
    for fn in (t_identical, t_no_write_lost, t_other_clients, t_crash_points, t_sigkill_soak,
               t_official_client, t_first_pairing, t_fts_and_exclude, t_migrations, t_status, t_push_rejected,
               t_server_down_and_reset, t_daemon, t_verify,
               t_local_faults, t_emptied_database, t_schema_changes):
        if not only or fn.__name__ in only:
            case(fn)
    return 1 if e2e.failed else 0


if __name__ == "__main__":
    sys.exit(main())
