"""End-to-end: Turso mode under concurrent writers ("no write lost under concurrency").

Every case starts a fresh `tursodb --sync-server` (see turso_sync.py), lets two
resort-sync clients A and B (and sometimes a third party writing straight to
the server) change the same tables before seeing each other's changes, syncs
them, and compares the rows of the server (read through /v2/pipeline), A and B
with the expected outcome.  Where the official client (@tursodatabase/sync) is
the reference, the same scenario runs again on a fresh server with two official
clients (tests/e2e/turso_adversarial.js), and its outcome is printed beside
ours ("official: ...") and checked where the issue says it is right.

Scenarios (issue "Turso mode: no write lost under concurrency"):
  speed_*        1,000 updates of a 50k-row table keyed by a NOT NULL TEXT key
  null_key_*     NULL in a composite PRIMARY KEY of a rowid table
  nokey_*        tables without a PRIMARY KEY: both clients insert at rowid 1
  key_*          a key reused, swapped, changed only in case (COLLATE NOCASE)
  columns_*      concurrent updates of different columns of one row
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import turso_sync as ts  # noqa: E402
from turso_sync import Client, Server, ROOT, TURSODB  # noqa: E402
from e2e import report  # noqa: E402

JS = os.path.join(ROOT, "tests/e2e/turso_adversarial.js")


def quoted_rows_local(db, table):
    import sqlite3
    c = sqlite3.connect(db)
    cols = sorted(r[1] for r in c.execute('PRAGMA table_info("%s")' % table))
    sel = ", ".join('quote("%s")' % x for x in cols)
    rows = sorted(tuple(r) for r in c.execute('SELECT %s FROM "%s"' % (sel, table)))
    c.close()
    return rows


def quoted_rows_server(srv, table):
    cols = sorted(r[1][1].decode() for r in srv.pipeline("SELECT cid, name FROM pragma_table_info('%s')" % table)[0])
    sel = ", ".join('quote("%s")' % x for x in cols)
    return sorted(tuple(c[1].decode() if isinstance(c[1], bytes) else str(c[1]) for c in r)
                  for r in srv.pipeline('SELECT %s FROM "%s"' % (sel, table))[0])


class Official:
    """An official client on its own database file."""

    def __init__(self, d, name, srv):
        self.path = os.path.join(d, name + "-js.db")
        self.srv = srv

    def run(self, mode, *args):
        p = subprocess.run(["node", JS, mode, self.srv.url, self.path] + list(args), capture_output=True,
                           text=True, env=dict(os.environ, ROOT=ROOT), timeout=120)
        if p.returncode != 0:
            raise RuntimeError("official %s: %s" % (mode, p.stderr[-400:]))
        return p.stdout

    def rows(self, table):
        return sorted(tuple(r) for r in (json.loads(x) for x in self.run("dump", table).splitlines()))


def fresh(fn):
    """Run fn(d, srv) on a fresh server and directory; returns fn's value or raises."""
    d = tempfile.mkdtemp(prefix="rs-turso-adv-")
    srv = Server(d)
    try:
        return fn(d, srv)
    finally:
        srv.stop()
        shutil.rmtree(d, ignore_errors=True)


def run_third(srv, third):
    """A third party's writes on the server: a string is one request, a list one transaction
    (BEGIN ... COMMIT as consecutive requests: the server keeps one connection)."""
    for x in third:
        if isinstance(x, list):
            srv.pipeline(*x)
        else:
            srv.pipeline(x)


def scenario(schema, seed, a_writes, b_writes, third=(), tables=("t",), order="aba", a_after_first=()):
    """Ours: A creates and seeds, both sync; A and B write; a third party writes
    on the server; A syncs, B syncs, A syncs (or `order`).  Returns (server, A, B, log)
    rows per table, columns in name order."""
    def body(d, srv):
        a, b = Client(d, "a", srv), Client(d, "b", srv)
        log = []
        a.sql(*(list(schema) + list(seed)))
        for cl in (a, b):
            rc, out = cl.sync()
            log.append("seed rc=%d %s" % (rc, out[-300:] if rc else ""))
        if a_writes:
            a.sql(*a_writes)
        if b_writes:
            b.sql(*b_writes)
        run_third(srv, third)
        for i, cl in enumerate([a if x == "a" else b for x in order]):
            rc, out = cl.sync()
            log.append("rc=%d %s" % (rc, out[-500:] if rc else ""))
            if i == 0 and a_after_first:
                a.sql(*a_after_first)
        res = {t: (quoted_rows_server(srv, t), quoted_rows_local(a.db, t), quoted_rows_local(b.db, t))
               for t in tables}
        return res, log
    return fresh(body)


def official_scenario(schema, seed, a_writes, b_writes, third=(), tables=("t",), order="aba", a_after_first=()):
    """The same with two official clients: A pushes, B pulls and pushes, A and B pull."""
    def body(d, srv):
        a, b = Official(d, "a", srv), Official(d, "b", srv)
        a.run("write", *(list(schema) + list(seed)))
        a.run("push")
        b.run("pull")
        if a_writes:
            a.run("write", *a_writes)
        if b_writes:
            b.run("write", *b_writes)
        run_third(srv, third)
        a.run("push")
        if a_after_first:
            a.run("write", *a_after_first)
        b.run("pull")
        b.run("push")
        a.run("pull")
        b.run("pull")
        return {t: (quoted_rows_server(srv, t), a.rows(t), b.rows(t)) for t in tables}
    try:
        return fresh(body)
    except Exception as e:  # the reference failing is reported, not fatal
        return {"error": repr(e)[:300]}


def check(name, spec, expect, official_right=None):
    """Run spec on ours (and the official client when official_right is not None); expect
    maps table -> sorted rows of quote() values, the same on the server, A and B."""
    res, log = scenario(**spec)
    ok = all(res[t][0] == res[t][1] == res[t][2] == sorted(expect[t]) for t in expect)
    why = "; ".join("%s: server %r A %r B %r" % (t, *res[t]) for t in expect) + " | " + " | ".join(log)
    report(name, ok, why[:3000])
    if official_right is not None:
        off = official_scenario(**spec)
        if "error" in off:
            print("official %s: error %s" % (name, off["error"]))
            return
        oright = all(off[t][0] == off[t][1] == off[t][2] == sorted(expect[t]) for t in expect)
        print("official %s: %s %s" % (name, "right" if oright else "WRONG",
                                      "; ".join("%s: server %r A %r B %r" % (t, *off[t]) for t in expect)))
        if official_right:
            report(name + "_official_reference", oright, "the official client no longer does this right")


# ---- 1. speed ----------------------------------------------------------------

def t_speed(d, srv):
    a = Client(d, "a", srv)
    a.sql("CREATE TABLE big(k TEXT NOT NULL PRIMARY KEY, v INTEGER)",
          "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50000) "
          "INSERT INTO big SELECT printf('key%06d', i), i FROM n")
    rc, out = a.sync()
    if rc != 0:
        report("speed_1000_updates_of_50k_rows", False, out[-500:])
        return
    a.sql("UPDATE big SET v = -v WHERE rowid % 50 = 0")
    t0 = time.time()
    rc, out = a.sync()
    took = time.time() - t0
    on_server = srv.pipeline("SELECT count(*) FROM big WHERE v < 0")[0][0][0][1]
    print("speed: 1,000 updates of a 50k-row table synced in %.2f s" % took)
    report("speed_1000_updates_of_50k_rows", rc == 0 and on_server == 1000 and took < 4.0,
           "rc %d, %d on the server, %.2f s %s" % (rc, on_server, took, out[-300:]))


# ---- 2. NULL in a composite key -------------------------------------------------

def t_null_key():
    spec = dict(schema=["CREATE TABLE t(a TEXT, b INTEGER, v TEXT, PRIMARY KEY(a, b))"],
                seed=["INSERT INTO t VALUES ('k', 1, 's')", "INSERT INTO t VALUES (NULL, 1, 'seed-null')"],
                a_writes=["INSERT INTO t VALUES (NULL, 1, 'a1')", "UPDATE t SET v = 's-a' WHERE a = 'k'"],
                b_writes=["INSERT INTO t VALUES (NULL, 1, 'b1')", "INSERT INTO t VALUES (NULL, NULL, 'b2')",
                          "UPDATE t SET v = 'seed-null-b' WHERE v = 'seed-null'"])
    check("null_key_rows_kept_once", spec,
          {"t": [("'k'", "1", "'s-a'"), ("NULL", "1", "'seed-null-b'"), ("NULL", "1", "'a1'"),
                 ("NULL", "1", "'b1'"), ("NULL", "NULL", "'b2'")]}, official_right=False)


# ---- 3. no declared key ------------------------------------------------------------

def t_nokey():
    spec = dict(schema=["CREATE TABLE t(m TEXT, n INTEGER)"],
                seed=["INSERT INTO t VALUES ('seed', 0)"],
                a_writes=["INSERT INTO t VALUES ('a1', 1)", "INSERT INTO t VALUES ('a2', 2)",
                          "UPDATE t SET n = 10 WHERE m = 'seed'"],
                b_writes=["INSERT INTO t VALUES ('b1', 1)", "UPDATE t SET n = 11 WHERE m = 'b1'",
                          "INSERT INTO t VALUES ('b2', 2)", "DELETE FROM t WHERE m = 'b2'"])
    check("nokey_inserts_updates_deletes", spec,
          {"t": [("'seed'", "10"), ("'a1'", "1"), ("'a2'", "2"), ("'b1'", "11")]}, official_right=False)
    check("nokey_both_inserts_kept", dict(schema=["CREATE TABLE t(m TEXT, n INTEGER)"], seed=[],
                                          a_writes=["INSERT INTO t VALUES ('a1', 1)"],
                                          b_writes=["INSERT INTO t VALUES ('b1', 1)"]),
          {"t": [("'a1'", "1"), ("'b1'", "1")]}, official_right=True)


def t_nokey_many(d, srv):
    """Several rounds of both clients inserting into a table without a key."""
    a, b = Client(d, "a", srv), Client(d, "b", srv)
    a.sql("CREATE TABLE log(m TEXT)")
    a.sync()
    b.sync()
    want = []
    for r in range(4):
        for cl, tag in ((a, "a"), (b, "b")):
            for i in range(5):
                m = "%s-%d-%d" % (tag, r, i)
                cl.sql(("INSERT INTO log VALUES (?)", (m,)))
                want.append(("'%s'" % m,))
        a.sync()
        b.sync()
        a.sql("UPDATE log SET m = m || '+' WHERE m = 'a-%d-0'" % r)
        want = [("'a-%d-0+'" % r,) if w == ("'a-%d-0'" % r,) else w for w in want]
    a.sync()
    b.sync()
    a.sync()
    s, ra, rb = quoted_rows_server(srv, "log"), quoted_rows_local(a.db, "log"), quoted_rows_local(b.db, "log")
    report("nokey_rounds_lose_nothing", s == ra == rb == sorted(want),
           "want %d rows: server %d A %d B %d; missing on server %r" %
           (len(want), len(s), len(ra), len(rb), sorted(set(want) - set(s))[:5]))


# ---- 4. keys reused, swapped, case ------------------------------------------------

def t_keys():
    check("key_reused_keeps_local_update", dict(
        schema=["CREATE TABLE t(k TEXT PRIMARY KEY, v TEXT)"],
        seed=["INSERT INTO t VALUES ('a', 'A')", "INSERT INTO t VALUES ('b', 'Bv')"],
        a_writes=[], b_writes=["UPDATE t SET v = 'B' WHERE k = 'a'"],
        third=["DELETE FROM t WHERE k = 'a'", "UPDATE t SET k = 'a' WHERE k = 'b'"]),
        {"t": [("'a'", "'B'")]}, official_right=True)
    check("key_reused_by_a_client", dict(
        schema=["CREATE TABLE t(k TEXT PRIMARY KEY, v TEXT)"],
        seed=["INSERT INTO t VALUES ('a', 'A')", "INSERT INTO t VALUES ('b', 'Bv')"],
        a_writes=["DELETE FROM t WHERE k = 'a'", "UPDATE t SET k = 'a' WHERE k = 'b'"],
        b_writes=["UPDATE t SET v = 'B' WHERE k = 'a'"]),
        {"t": [("'a'", "'B'")]}, official_right=None)
    swap = ["UPDATE t SET k = 'tmp' WHERE k = 'a'", "UPDATE t SET k = 'a' WHERE k = 'b'",
            "UPDATE t SET k = 'b' WHERE k = 'tmp'"]
    check("key_swap_on_server", dict(
        schema=["CREATE TABLE t(k TEXT PRIMARY KEY, v TEXT)"],
        seed=["INSERT INTO t VALUES ('a', '1')", "INSERT INTO t VALUES ('b', '2')"],
        a_writes=[], b_writes=["UPDATE t SET v = '1x' WHERE k = 'a'"],
        third=[["BEGIN"] + swap + ["COMMIT"]]),
        {"t": [("'a'", "'1x'"), ("'b'", "'1'")]}, official_right=True)
    check("key_swap_by_a_client", dict(
        schema=["CREATE TABLE t(k TEXT PRIMARY KEY, v TEXT)"],
        seed=["INSERT INTO t VALUES ('a', '1')", "INSERT INTO t VALUES ('b', '2')"],
        a_writes=swap, b_writes=["UPDATE t SET v = '1x' WHERE k = 'a'"]),
        {"t": [("'a'", "'1x'"), ("'b'", "'1'")]}, official_right=False)
    check("key_case_change_nocase", dict(
        schema=["CREATE TABLE t(k TEXT PRIMARY KEY COLLATE NOCASE, v TEXT)"],
        seed=["INSERT INTO t VALUES ('Key', 'v')"],
        a_writes=["UPDATE t SET k = 'KEY' WHERE k = 'Key'"], b_writes=[]),
        {"t": [("'KEY'", "'v'")]}, official_right=None)
    check("key_nocase_inserted_on_both", dict(
        schema=["CREATE TABLE t(k TEXT PRIMARY KEY COLLATE NOCASE, v TEXT)"],
        seed=[],
        a_writes=["INSERT INTO t VALUES ('abc', 'A')"], b_writes=["INSERT INTO t VALUES ('ABC', 'B')"]),
        {"t": [("'ABC'", "'B'")]}, official_right=None)


# ---- 5. columns -------------------------------------------------------------------

def t_columns():
    check("columns_both_updates_kept", dict(
        schema=["CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, w TEXT)"],
        seed=["INSERT INTO t VALUES (1, 'v0', 'w0')"],
        a_writes=["UPDATE t SET v = 'vA' WHERE id = 1"], b_writes=["UPDATE t SET w = 'wB' WHERE id = 1"]),
        {"t": [("1", "'vA'", "'wB'")]}, official_right=True)
    check("columns_text_key_both_updates_kept", dict(
        schema=["CREATE TABLE t(k TEXT NOT NULL PRIMARY KEY, v TEXT, w TEXT)"],
        seed=["INSERT INTO t VALUES ('x', 'v0', 'w0')"],
        a_writes=["UPDATE t SET v = 'vA'"], b_writes=["UPDATE t SET w = 'wB'"]),
        {"t": [("'x'", "'vA'", "'wB'")]}, official_right=None)
    check("columns_new_column_value_kept", dict(
        schema=["CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)"],
        seed=["INSERT INTO t VALUES (1, 'v0')"],
        a_writes=["ALTER TABLE t ADD COLUMN c TEXT", "UPDATE t SET c = 'ca' WHERE id = 1"],
        b_writes=["UPDATE t SET v = 'vB' WHERE id = 1"]),
        {"t": [("'ca'", "1", "'vB'")]}, official_right=None)


# ---- 6. UNIQUE hand-over ------------------------------------------------------------

def t_unique():
    schema = ["CREATE TABLE u(id INTEGER PRIMARY KEY, email TEXT UNIQUE, n INTEGER)",
              "CREATE TABLE other(id INTEGER PRIMARY KEY, v TEXT)"]
    seed = ["INSERT INTO u VALUES (1, 'x@', 0)", "INSERT INTO u VALUES (2, 'e@', 0)"]
    # row 2 hands 'e@' over to row 1 (rowid order meets the taker first)
    handover = ["UPDATE u SET email = 'f@' WHERE id = 2", "UPDATE u SET email = 'e@' WHERE id = 1"]
    check("unique_handover_pushed", dict(
        schema=schema, seed=seed, a_writes=handover + ["INSERT INTO other VALUES (1, 'a')"], b_writes=[],
        tables=("u", "other")),
        {"u": [("'e@'", "1", "0"), ("'f@'", "2", "0")], "other": [("1", "'a'")]}, official_right=True)
    check("unique_handover_merged", dict(
        schema=schema, seed=seed, a_writes=[],
        b_writes=["INSERT INTO other VALUES (2, 'b')", "UPDATE u SET n = 5 WHERE id = 1"],
        third=[["BEGIN"] + handover + ["COMMIT"]], tables=("u", "other")),
        {"u": [("'e@'", "1", "5"), ("'f@'", "2", "0")], "other": [("2", "'b'")]}, official_right=True)
    check("unique_swap_not_null_pushed", dict(
        schema=["CREATE TABLE u(id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE)"],
        seed=["INSERT INTO u VALUES (1, 'e@')", "INSERT INTO u VALUES (2, 'f@')"],
        a_writes=["UPDATE u SET email = 'tmp' WHERE id = 1", "UPDATE u SET email = 'e@' WHERE id = 2",
                  "UPDATE u SET email = 'f@' WHERE id = 1"], b_writes=[], tables=("u",)),
        {"u": [("'e@'", "2"), ("'f@'", "1")]}, official_right=True)


def t_unique_conflict(d, srv):
    """A and B give the same UNIQUE value to different new rows: the server keeps A's (pushed
    first); B's row is set aside in _resort_sync_conflicts (named in the log, values kept), and
    B's other writes still reach the server; every sync exits 0."""
    a, b = Client(d, "a", srv), Client(d, "b", srv)
    a.sql("CREATE TABLE u(id INTEGER PRIMARY KEY, email TEXT UNIQUE)", "CREATE TABLE other(id INTEGER PRIMARY KEY, v TEXT)",
          "INSERT INTO u VALUES (1, 'x@')")
    a.sync()
    b.sync()
    a.sql("INSERT INTO u VALUES (3, 'z@')")
    b.sql("INSERT INTO u VALUES (4, 'z@')", "INSERT INTO other VALUES (7, 'b')")
    rcs, outs = [], []
    for cl in (a, b, a, b):
        rc, out = cl.sync()
        rcs.append(rc)
        outs.append(out)
    want_u = [("'x@'", "1"), ("'z@'", "3")]
    import sqlite3
    c = sqlite3.connect(b.db)
    try:
        aside = c.execute("SELECT tbl, row_rowid, row FROM _resort_sync_conflicts").fetchall()
    except sqlite3.Error as e:
        aside = [repr(e)]
    c.close()
    ok = (rcs == [0, 0, 0, 0] and quoted_rows_server(srv, "u") == quoted_rows_local(a.db, "u") ==
          quoted_rows_local(b.db, "u") == want_u and quoted_rows_server(srv, "other") == [("7", "'b'")] ==
          quoted_rows_local(a.db, "other") and len(aside) == 1 and aside[0][0] == "u" and "'z@'" in aside[0][2]
          and "_resort_sync_conflicts" in outs[1] and
          not srv.pipeline("SELECT name FROM sqlite_schema WHERE name LIKE '_resort%'")[0])
    report("unique_conflict_set_aside_named", ok, "rcs %r server u %r B u %r aside %r %s" % (
        rcs, quoted_rows_server(srv, "u"), quoted_rows_local(b.db, "u"), aside, outs[1][-600:]))


def t_unique_index_races_duplicates(d, srv):
    """A creates a UNIQUE index while B inserts a value that duplicates an existing row's: B's
    duplicate is set aside (named), the index reaches B, and B's other writes reach the server."""
    a, b = Client(d, "a", srv), Client(d, "b", srv)
    a.sql("CREATE TABLE u(id INTEGER PRIMARY KEY, email TEXT)", "CREATE TABLE other(id INTEGER PRIMARY KEY, v TEXT)",
          "INSERT INTO u VALUES (1, 'x@')", "INSERT INTO u VALUES (2, 'e@')")
    a.sync()
    b.sync()
    a.sql("CREATE UNIQUE INDEX u_email ON u(email)")
    b.sql("INSERT INTO u VALUES (3, 'e@')", "INSERT INTO other VALUES (7, 'b')")
    rcs, outs = [], []
    for cl in (a, b, a, b):
        rc, out = cl.sync()
        rcs.append(rc)
        outs.append(out)
    import sqlite3
    c = sqlite3.connect(b.db)
    idx = c.execute("SELECT count(*) FROM sqlite_schema WHERE name = 'u_email'").fetchone()[0]
    try:
        aside = c.execute("SELECT tbl, row_rowid, row FROM _resort_sync_conflicts").fetchall()
    except sqlite3.Error as e:
        aside = [repr(e)]
    c.close()
    want_u = [("'e@'", "2"), ("'x@'", "1")]
    report("unique_index_races_duplicates", rcs == [0, 0, 0, 0] and idx == 1 and len(aside) == 1 and
           quoted_rows_server(srv, "u") == quoted_rows_local(b.db, "u") == want_u and
           quoted_rows_server(srv, "other") == [("7", "'b'")],
           "rcs %r idx %d aside %r server u %r B u %r other %r %s" % (
               rcs, idx, aside, quoted_rows_server(srv, "u"), quoted_rows_local(b.db, "u"),
               quoted_rows_server(srv, "other"), outs[1][-700:]))


def t_nokey_answer_lost(d, srv):
    """A push of rows without a key commits but its answer (with the server's rowids) is lost
    (crash right after sending): the next sync inserts nothing twice."""
    a = Client(d, "a", srv)
    a.sql("CREATE TABLE log(m TEXT)", "INSERT INTO log VALUES ('seed')")
    a.sync()
    srv.pipeline("INSERT INTO log VALUES ('other-1')", "INSERT INTO log VALUES ('other-2')")
    a.sql("INSERT INTO log VALUES ('x')", "INSERT INTO log VALUES ('y')", "INSERT INTO log VALUES ('x')")
    rc1, out1 = a.sync(env={"RS_TEST_CRASH": "push-sent"})
    rc2, out2 = a.sync()
    rc3, out3 = a.sync()
    want = sorted([("'seed'",), ("'other-1'",), ("'other-2'",), ("'x'",), ("'y'",), ("'x'",)])
    s = quoted_rows_server(srv, "log")
    # our three rows are recognised at the server's rowids; the next sync sends no row at all
    report("nokey_answer_lost_nothing_twice", rc1 != 0 and rc2 == 0 and s == want == quoted_rows_local(a.db, "log")
           and out2.count("found at the server's rowid") == 3 and "push+pull, 0 rows," in out2,
           "rc %d %d %d server %r local %r %s" % (rc1, rc2, rc3, s, quoted_rows_local(a.db, "log"), out2[-500:]))


def t_push_refused_row(d, srv):
    """The server refuses one row (a constraint: here a server-side trigger raising
    'CHECK constraint failed'): the row is named and stays local, every other write of the
    push still reaches the server, and the row goes out once it is changed."""
    b = Client(d, "b", srv)
    b.sql("CREATE TABLE other(id INTEGER PRIMARY KEY, v TEXT)", "CREATE TABLE u(id INTEGER PRIMARY KEY, e TEXT)")
    b.sync()
    srv.pipeline("CREATE TRIGGER no_bad BEFORE INSERT ON other WHEN NEW.v = 'bad' "
                 "BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: no bad'); END")
    b.sql("INSERT INTO other VALUES (8, 'bad')", "INSERT INTO other VALUES (9, 'good')",
          "INSERT INTO u VALUES (5, 'q@')")
    rc, out = b.sync()
    s_other, s_u = quoted_rows_server(srv, "other"), quoted_rows_server(srv, "u")
    report("push_refused_row_named_others_pushed",
           rc == 0 and s_other == [("9", "'good'")] and s_u == [("'q@'", "5")] and
           ("8", "'bad'") in quoted_rows_local(b.db, "other") and "table=other rowid=8" in out,
           "rc %d server other %r u %r %s" % (rc, s_other, s_u, out[-800:]))
    b.sql("UPDATE other SET v = 'fine' WHERE id = 8")
    rc, out = b.sync()
    report("push_refused_row_goes_once_changed",
           rc == 0 and quoted_rows_server(srv, "other") == quoted_rows_local(b.db, "other") ==
           [("8", "'fine'"), ("9", "'good'")], "rc %d %r %s" % (rc, quoted_rows_server(srv, "other"), out[-400:]))



def t_key_swap_pushed_twice(d, srv):
    """Two rows swap keys; the daemon's start-up push sends the swap, and the application
    commits again before the first cycle, whose push (no pull since the start-up push) diffs
    the same swap again.  The old side of each move (key 'b' leaving row 2) must not go out
    again as a delete: the upsert of 'b' at its new row is already pushed and is not sent
    again, so the delete took 'b' off the server (other clients then deleted it too)."""
    import signal
    import sqlite3
    a, b = Client(d, "a", srv), Client(d, "b", srv)
    a.sql("CREATE TABLE t(k TEXT PRIMARY KEY, v TEXT)", "CREATE TABLE other(id INTEGER PRIMARY KEY)",
          "INSERT INTO t VALUES ('a', '1')", "INSERT INTO t VALUES ('b', '2')")
    a.sync()
    b.sync()
    a.sql("UPDATE t SET k = 'tmp' WHERE k = 'a'", "UPDATE t SET k = 'a' WHERE k = 'b'",
          "UPDATE t SET k = 'b' WHERE k = 'tmp'")
    q = "SELECT quote(k), quote(v) FROM t ORDER BY k"
    want = [("'a'", "'2'"), ("'b'", "'1'")]
    p = subprocess.Popen([ts.RS, "-v", "-c", a.cfg, "run"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    lines, after_cycle = [], None
    try:
        end = time.time() + 30
        for line in p.stdout:
            lines.append(line)
            if "turso push: sending" in line and len([x for x in lines if "push: sending" in x]) == 1:
                # The start-up push's diff is done (its read transaction ends before sending):
                # a commit now is one between the two pushes.
                a.sql("INSERT INTO other VALUES (1)")
            if "turso cycle done" in line:
                after_cycle = [tuple(c[1].decode() for c in r) for r in srv.pipeline(q)[0]]
                break
            if time.time() > end:
                break
    finally:
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=20)
    rc, out = b.sync()
    c = sqlite3.connect(b.db)
    rows_b = [tuple(x) for x in c.execute(q)]
    c.close()
    report("key_swap_pushed_twice_keeps_both_keys",
           after_cycle == want and rc == 0 and rows_b == want,
           "server after the first cycle %r, B %r rc %d %s" % (after_cycle, rows_b, rc, "".join(lines)[-800:]))

# ---- 7. columns added on two clients ------------------------------------------------

def t_add_columns():
    check("add_column_on_both_keeps_rows", dict(
        schema=["CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)"],
        seed=["INSERT INTO t VALUES (1, 'one')"],
        a_writes=["ALTER TABLE t ADD COLUMN a1 TEXT", "INSERT INTO t(id, v, a1) VALUES (2, 'from-a', 'x')"],
        b_writes=["ALTER TABLE t ADD COLUMN b1 TEXT", "INSERT INTO t(id, v, b1) VALUES (3, 'from-b', 'y')"]),
        {"t": [("NULL", "NULL", "1", "'one'"), ("'x'", "NULL", "2", "'from-a'"),
               ("NULL", "'y'", "3", "'from-b'")]}, official_right=None)
    check("add_column_on_both_b_first", dict(
        schema=["CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)"],
        seed=["INSERT INTO t VALUES (1, 'one')"],
        a_writes=["ALTER TABLE t ADD COLUMN a1 TEXT", "INSERT INTO t(id, v, a1) VALUES (2, 'from-a', 'x')"],
        b_writes=["ALTER TABLE t ADD COLUMN b1 TEXT", "INSERT INTO t(id, v, b1) VALUES (3, 'from-b', 'y')"],
        order="bab"),
        {"t": [("NULL", "NULL", "1", "'one'"), ("'x'", "NULL", "2", "'from-a'"),
               ("NULL", "'y'", "3", "'from-b'")]}, official_right=None)
    check("add_column_on_both_unpushed_row_kept", dict(
        schema=["CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)"],
        seed=["INSERT INTO t VALUES (1, 'one')"],
        a_writes=["ALTER TABLE t ADD COLUMN a1 TEXT"],
        b_writes=["ALTER TABLE t ADD COLUMN b1 TEXT", "INSERT INTO t(id, v, b1) VALUES (3, 'from-b', 'y')"],
        a_after_first=["INSERT INTO t(id, v, a1) VALUES (4, 'a-unpushed', 'z')"], order="abab"),
        {"t": [("NULL", "NULL", "1", "'one'"), ("NULL", "'y'", "3", "'from-b'"),
               ("'z'", "NULL", "4", "'a-unpushed'")]}, official_right=None)
    # The server drops a column B still has and B has a row not yet pushed: nothing is lost; B keeps
    # the column and its next push adds it back on the server with B's values (a documented limit:
    # the drop is undone).
    check("server_drops_column_unpushed_row_kept", dict(
        schema=["CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, w TEXT)"],
        seed=["INSERT INTO t VALUES (1, 'one', 'w1')"],
        a_writes=[], b_writes=["INSERT INTO t VALUES (2, 'two', 'w2')"],
        third=["ALTER TABLE t DROP COLUMN w"], order="bab"),
        {"t": [("1", "'one'", "'w1'"), ("2", "'two'", "'w2'")]}, official_right=None)
    check("add_same_column_on_both", dict(
        schema=["CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)"],
        seed=["INSERT INTO t VALUES (1, 'one')", "INSERT INTO t VALUES (2, 'two')"],
        a_writes=["ALTER TABLE t ADD COLUMN c TEXT", "UPDATE t SET c = 'ca' WHERE id = 1"],
        b_writes=["ALTER TABLE t ADD COLUMN c TEXT", "UPDATE t SET c = 'cb' WHERE id = 2"]),
        {"t": [("'ca'", "1", "'one'"), ("'cb'", "2", "'two'")]}, official_right=None)
    # Quoted column names holding a space or a comma: the merge looks columns up by name, never by
    # searching a comma-joined list (which cut "c d" at its space and added it a second time:
    # "duplicate column name").
    for label, col in (("space", '"c d"'), ("comma", '"c, d"'), ("brackets", '[c,d e]')):
        check("add_same_quoted_column_on_both_" + label, dict(
            schema=["CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)"],
            seed=["INSERT INTO t VALUES (1, 'one')", "INSERT INTO t VALUES (2, 'two')"],
            a_writes=["ALTER TABLE t ADD COLUMN %s TEXT" % col, "UPDATE t SET %s = 'ca' WHERE id = 1" % col],
            b_writes=["ALTER TABLE t ADD COLUMN %s TEXT" % col, "UPDATE t SET %s = 'cb' WHERE id = 2" % col]),
            {"t": [("'ca'", "1", "'one'"), ("'cb'", "2", "'two'")]}, official_right=None)
    check("add_quoted_columns_on_both_keeps_rows", dict(
        schema=['CREATE TABLE t(id INTEGER PRIMARY KEY, "v, w" TEXT)'],
        seed=["INSERT INTO t VALUES (1, 'one')"],
        a_writes=['ALTER TABLE t ADD COLUMN "a, 1" TEXT', "INSERT INTO t VALUES (2, 'from-a', 'x')"],
        b_writes=['ALTER TABLE t ADD COLUMN "b 1" TEXT', "INSERT INTO t VALUES (3, 'from-b', 'y')"]),
        {"t": [("NULL", "NULL", "1", "'one'"), ("'x'", "NULL", "2", "'from-a'"),
               ("NULL", "'y'", "3", "'from-b'")]}, official_right=None)


def t_add_column_alters_server(d, srv):
    """B's table ends up (id, v, b1, a1) after it merges A's a1: its push adds b1 to the
    server's table (ALTER TABLE ADD COLUMN: the server's order is id, v, a1, b1) instead of
    dropping and re-creating it with every row."""
    a, b = Client(d, "a", srv), Client(d, "b", srv)
    a.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", "INSERT INTO t VALUES (1, 'one')")
    a.sync()
    b.sync()
    a.sql("ALTER TABLE t ADD COLUMN a1 TEXT")
    b.sql("ALTER TABLE t ADD COLUMN b1 TEXT DEFAULT 'd'", "INSERT INTO t(id, v, b1) VALUES (3, 'from-b', 'y')")
    a.sync()
    srv.pipeline("INSERT INTO t(id, v, a1) VALUES (5, 'third', 'w')")
    rc, out = b.sync("-v")
    cols = [r[0][1].decode() for r in srv.pipeline("SELECT name FROM pragma_table_info('t') ORDER BY cid")[0]]
    rows = quoted_rows_server(srv, "t")
    want = sorted([("NULL", "'d'", "1", "'one'"), ("NULL", "'y'", "3", "'from-b'"), ("'w'", "'d'", "5", "'third'")])
    report("add_column_alters_server_table", rc == 0 and cols == ["id", "v", "a1", "b1"] and rows == want
           and quoted_rows_local(b.db, "t") == want and "DROP" not in out,
           "rc %d columns %r rows %r local %r %s" % (rc, cols, rows, quoted_rows_local(b.db, "t"), out[-600:]))


def t_soak_two_clients(d, srv):
    """Two clients write and sync concurrently for SOAK_SECONDS (default 20): inserts into a
    table without a key and into a keyed one, updates of different columns of shared rows.
    Afterwards every row written is on the server and on both clients exactly once, and every
    column update survives (each client only ever sets its own column)."""
    import threading
    import sqlite3
    secs = float(os.environ.get("SOAK_SECONDS", "20"))
    a, b = Client(d, "a", srv), Client(d, "b", srv)
    a.sql("CREATE TABLE log(who TEXT, n INTEGER)", "CREATE TABLE kv(k TEXT NOT NULL PRIMARY KEY, ca INTEGER, cb INTEGER)",
          *["INSERT INTO kv VALUES ('shared%d', 0, 0)" % i for i in range(20)])
    a.sync()
    b.sync()
    stop = time.time() + secs
    written = {"a": 0, "b": 0}
    last = {"a": {}, "b": {}}
    errors = []

    def writer(cl, tag):
        c = sqlite3.connect(cl.db, timeout=30, isolation_level=None)
        c.execute("PRAGMA journal_mode=wal")
        i = 0
        while time.time() < stop:
            i += 1
            col = "ca" if tag == "a" else "cb"
            try:
                c.execute("BEGIN IMMEDIATE")
                c.execute("INSERT INTO log VALUES (?, ?)", (tag, i))
                c.execute("INSERT INTO kv VALUES (?, ?, ?)", ("%s%d" % (tag, i), i, -i))
                k = "shared%d" % (i % 20)
                c.execute("UPDATE kv SET %s = ? WHERE k = ?" % col, (i, k))
                c.execute("COMMIT")
                written[tag] = i
                last[tag][k] = i
            except sqlite3.Error as e:
                errors.append(repr(e))
                try:
                    c.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            time.sleep(0.01)
        c.close()

    def syncer(cl):
        while time.time() < stop:
            rc, out = cl.sync()
            if rc != 0:
                errors.append(out[-300:])

    ths = [threading.Thread(target=writer, args=(a, "a")), threading.Thread(target=writer, args=(b, "b")),
           threading.Thread(target=syncer, args=(a,)), threading.Thread(target=syncer, args=(b,))]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    for cl in (a, b, a, b):
        rc, out = cl.sync()
        if rc:
            errors.append(out[-300:])
    want_log = sorted([("'a'", str(i)) for i in range(1, written["a"] + 1)] +
                      [("'b'", str(i)) for i in range(1, written["b"] + 1)])
    want_log = sorted((y, x) for x, y in want_log)  # columns in name order: n, who
    s_log = quoted_rows_server(srv, "log")
    kv = {r[2]: r for r in quoted_rows_server(srv, "kv")}  # columns: ca, cb, k
    lost_cols = [k for k in ("shared%d" % i for i in range(20))
                 if kv.get("'%s'" % k, (None, None))[0] != str(last["a"].get(k, 0)) or
                 kv.get("'%s'" % k, (None, None))[1] != str(last["b"].get(k, 0))]
    n_kv = len(kv)
    print("soak: %.0f s, %d + %d rows written, %d rows on the server, %d kv rows, %d errors" % (
        secs, written["a"], written["b"], len(s_log), n_kv, len(errors)))
    ok = (s_log == want_log == quoted_rows_local(a.db, "log") == quoted_rows_local(b.db, "log") and
          n_kv == 20 + written["a"] + written["b"] and not lost_cols and
          quoted_rows_server(srv, "kv") == quoted_rows_local(a.db, "kv") == quoted_rows_local(b.db, "kv") and
          not errors)
    report("soak_two_clients_nothing_lost", ok, "log: server %d want %d; kv %d want %d; columns lost on %r; errors %r" % (
        len(s_log), len(want_log), n_kv, 20 + written["a"] + written["b"], lost_cols[:5], errors[:3]))


def main():
    if not os.path.exists(TURSODB) or not shutil.which("node"):
        print("SKIP turso_adversarial: tursodb or node missing (run scripts/deps.sh)")
        return 0
    only = sys.argv[1:]
    plain = [t_null_key, t_nokey, t_keys, t_columns, t_unique, t_add_columns]
    with_server = [t_speed, t_nokey_many, t_add_column_alters_server, t_unique_conflict,
                   t_push_refused_row, t_key_swap_pushed_twice, t_unique_index_races_duplicates,
                   t_nokey_answer_lost,
                   t_soak_two_clients]
    for fn in plain + with_server:
        if only and fn.__name__ not in only:
            continue
        try:
            if fn in with_server:
                ts.case(fn)
            else:
                fn()
        except Exception as e:
            report(fn.__name__, False, "exception %r" % (e,))
    return 1 if ts.e2e.failed else 0


if __name__ == "__main__":
    sys.exit(main())
