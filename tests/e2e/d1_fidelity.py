"""End-to-end: D1 mode on schemas and change patterns that D1's own rules
make hard, against Cloudflare's local D1 (foreign keys always on there, and
its SQLite is stricter about FTS5 than Debian's).  Each case builds a
source database, syncs it (a full load), changes it the way an application
would, syncs again, and compares local D1's file with the source
(tests/lib/dbcompare.py: rows with types and rowids, sqlite_sequence,
schema objects, FTS MATCH results), plus FTS5 integrity-check on a copy of
D1's file.  The cases (issue numbers of the fidelity and D1-in-production
issues):

  - RustResort's own migrations (read from ../shared/fixtures; skipped with
    the reason when absent): an external-content FTS5 table with an
    UNINDEXED column its content table lacks and content_rowid='rowid';
  - a child re-parented, then its old parent deleted, under CASCADE chains
    (the cascade must not take the moved child and its own children);
  - a parent delete whose cascade reaches a table with FTS triggers;
  - UNIQUE hand-overs in tables with children: a handle swap, a rotation
    under COLLATE NOCASE, a list reordered under UNIQUE(list_id, position);
  - INTEGER PRIMARY KEY DESC (not a rowid alias);
  - a value of 360 KB in an FTS5 content table, updated, then deleted;
  - a table with two cascading parents, synced again from scratch (the
    snapshot deleted) over a D1 that holds everything;
  - a long primary key with a large value;
  - a table dropped while another still refers to it: refused, naming both;
  - FTS5 with detail=, prefix= and tokenizer options, fts5vocab;
  - an rtree table (local D1 refuses to create one: SQLITE_AUTH): refused
    before anything is sent, naming the table and exclude_tables;
  - `dump | sqlite3` of values holding CR LF.
"""
import glob
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile

ROOT = os.environ.get("ROOT", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BUILD = os.environ.get("BUILD", "build")
RS = os.environ.get("RS_BIN", os.path.join(ROOT, BUILD, "resort-sync"))
WRANGLER = os.path.join(ROOT, "tools", "node_modules", ".bin", "wrangler")
FIXTURES = os.path.join(ROOT, "..", "shared", "fixtures", "rustresort", "migrations")
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import d1env  # noqa: E402
import dbcompare  # noqa: E402
from e2e import report  # noqa: E402
import e2e  # noqa: E402

IGNORE = ("_rustresort_sync_history", "_cf_KV", "_cf_METADATA", "d1_migrations")


class Case:
    def __init__(self, name):
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix="rs-fid-")
        self.proj = os.path.join(self.tmp, "proj")
        d1env.wrangler_project(self.proj, "fid")
        self.db = os.path.join(self.tmp, "app.db")
        self.snap = os.path.join(self.tmp, "state", "app.snapshot.db")
        self.cfg = os.path.join(self.tmp, "resort-sync.toml")
        with open(self.cfg, "w") as f:
            f.write('[database]\npath = "%s"\n[database.sync]\nmode = "d1"\ninterval_seconds = 60\n'
                    '[database.sync.d1]\ndatabase = "fid"\nwrangler = "%s"\nwrangler_config = "%s"\n'
                    'snapshot_path = "%s"\n' % (self.db, WRANGLER, os.path.join(self.proj, "wrangler.toml"),
                                               self.snap))

    def sql(self, script):
        c = sqlite3.connect(self.db)
        c.execute("PRAGMA foreign_keys = ON")
        c.executescript(script)
        c.commit()
        c.close()

    def sync(self):
        env = dict(os.environ, WRANGLER_SEND_METRICS="false")
        return subprocess.run([RS, "-c", self.cfg, "sync"], capture_output=True, text=True, env=env, timeout=600)

    def state(self):
        files = [f for f in glob.glob(os.path.join(self.proj, ".wrangler", "state", "v3", "d1", "*", "*.sqlite"))
                 if "metadata" not in os.path.basename(f)]
        return files[0] if files else None

    def check(self, step, fts=()):
        """Sync, then compare D1 with the source; one PASS/FAIL line."""
        r = self.sync()
        what = "%s %s" % (self.name, step)
        if r.returncode != 0:
            report(what, False, "sync exited %d: %s" % (r.returncode, (r.stderr or r.stdout).strip()[-600:]))
            return False
        state = self.state()
        diffs = dbcompare.compare(state, self.db, ignore=IGNORE, fts_queries=[tuple(x.split(':', 1)) for x in fts]) if state else ["no D1 file"]
        if not diffs:
            diffs = integrity(state, self.db)
        report(what, not diffs, "; ".join(diffs[:5]))
        return not diffs

    def done(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


def integrity(state, db):
    """FTS5 integrity-check of every FTS5 table on a copy of D1's file."""
    out = []
    tmp = tempfile.mkdtemp(prefix="rs-fid-ic-")
    try:
        copy = os.path.join(tmp, "d1.sqlite")
        shutil.copy(state, copy)
        c = sqlite3.connect(copy)
        for (name,) in c.execute("SELECT name FROM sqlite_schema WHERE sql LIKE 'CREATE VIRTUAL TABLE%USING fts5(%'"):
            try:
                c.execute('INSERT INTO "%s"("%s") VALUES (\'integrity-check\')' % (name, name))
            except sqlite3.Error as e:
                out.append("%s: integrity-check: %s" % (name, e))
        c.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


BIG = "<p>" + " ".join("w%d 'q' \"d\"" % i for i in range(30000)) + "\r\n</p>"

# Every case's schema, in one database: one wrangler call per phase for all of them.
SCHEMA = """
CREATE TABLE p(id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE c(id INTEGER PRIMARY KEY, pid INTEGER REFERENCES p ON DELETE CASCADE, v TEXT);
CREATE TABLE g(id INTEGER PRIMARY KEY, cid INTEGER REFERENCES c ON DELETE CASCADE, w TEXT);
CREATE TABLE n(id INTEGER PRIMARY KEY, cid INTEGER REFERENCES c ON DELETE SET NULL, x TEXT);
INSERT INTO p VALUES (1, 'one'), (2, 'two');
INSERT INTO c VALUES (10, 1, 'a'), (11, 1, 'b'), (12, 2, 'c');
INSERT INTO g VALUES (100, 10, 'ga'), (101, 11, 'gb'), (102, 12, 'gc');
INSERT INTO n VALUES (200, 10, 'na'), (201, 11, 'nb');

CREATE TABLE fa(id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE fs(id INTEGER PRIMARY KEY, aid INTEGER REFERENCES fa ON DELETE CASCADE, body TEXT);
CREATE VIRTUAL TABLE fs_fts USING fts5(body, content='fs', content_rowid='id');
CREATE TRIGGER fs_ai AFTER INSERT ON fs BEGIN INSERT INTO fs_fts(rowid, body) VALUES (new.id, new.body); END;
CREATE TRIGGER fs_ad AFTER DELETE ON fs BEGIN
  INSERT INTO fs_fts(fs_fts, rowid, body) VALUES ('delete', old.id, old.body); END;
CREATE TRIGGER fs_au AFTER UPDATE ON fs BEGIN
  INSERT INTO fs_fts(fs_fts, rowid, body) VALUES ('delete', old.id, old.body);
  INSERT INTO fs_fts(rowid, body) VALUES (new.id, new.body); END;
INSERT INTO fa VALUES (1, 'x'), (2, 'y');
INSERT INTO fs VALUES (1, 1, 'alpha beta'), (2, 1, 'gamma'), (3, 2, 'delta alpha');

CREATE TABLE users(id INTEGER PRIMARY KEY, handle TEXT NOT NULL UNIQUE COLLATE NOCASE, email TEXT UNIQUE);
CREATE TABLE posts(id INTEGER PRIMARY KEY, uid INTEGER NOT NULL REFERENCES users ON DELETE CASCADE, t TEXT);
CREATE TABLE ulists(id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE items(id INTEGER PRIMARY KEY, list_id INTEGER NOT NULL REFERENCES ulists ON DELETE CASCADE,
  position INTEGER NOT NULL, label TEXT, UNIQUE(list_id, position));
CREATE TABLE notes(id INTEGER PRIMARY KEY, item INTEGER REFERENCES items ON DELETE CASCADE, n TEXT);
INSERT INTO users VALUES (1, 'alice', 'a@x'), (2, 'bob', 'b@x'), (3, 'carol', 'c@x');
INSERT INTO posts VALUES (1, 1, 'p1'), (2, 2, 'p2'), (3, 3, 'p3'), (4, 1, 'p4');
INSERT INTO ulists VALUES (1, 'l');
INSERT INTO items VALUES (1, 1, 1, 'one'), (2, 1, 2, 'two'), (3, 1, 3, 'three'), (4, 1, 4, 'four');
INSERT INTO notes VALUES (1, 1, 'n1'), (2, 2, 'n2'), (3, 3, 'n3'), (4, 4, 'n4');

CREATE TABLE td(id INTEGER PRIMARY KEY DESC, v TEXT);
INSERT INTO td(rowid, id, v) VALUES (1, 5, 'a'), (2, 3, 'b'), (7, 9, 'c');

CREATE TABLE bs(id INTEGER PRIMARY KEY, body TEXT);
CREATE VIRTUAL TABLE bs_fts USING fts5(body, content='bs', content_rowid='id');
CREATE TRIGGER bs_ai AFTER INSERT ON bs BEGIN INSERT INTO bs_fts(rowid, body) VALUES (new.id, new.body); END;
CREATE TRIGGER bs_au AFTER UPDATE ON bs BEGIN
  INSERT INTO bs_fts(bs_fts, rowid, body) VALUES ('delete', old.id, old.body);
  INSERT INTO bs_fts(rowid, body) VALUES (new.id, new.body); END;
CREATE TRIGGER bs_ad AFTER DELETE ON bs BEGIN
  INSERT INTO bs_fts(bs_fts, rowid, body) VALUES ('delete', old.id, old.body); END;
INSERT INTO bs VALUES (2, 'small');

CREATE TABLE ta(id INTEGER PRIMARY KEY); CREATE TABLE tb(id INTEGER PRIMARY KEY);
CREATE TABLE tc(id INTEGER PRIMARY KEY, aid REFERENCES ta ON DELETE CASCADE, bid REFERENCES tb ON DELETE CASCADE);
INSERT INTO ta VALUES (1), (2); INSERT INTO tb VALUES (1); INSERT INTO tc VALUES (1, 1, 1), (2, 2, 1);

CREATE TABLE cache(url TEXT PRIMARY KEY, body TEXT) WITHOUT ROWID; INSERT INTO cache VALUES ('x', 'y');

CREATE VIRTUAL TABLE ft USING fts5(a, b UNINDEXED, detail=column, prefix='2 3',
  tokenize='porter unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE ftv USING fts5vocab(ft, row);
INSERT INTO ft(rowid, a, b) VALUES (1, 'hello worlds', 'x'), (2, 'naïve café', NULL);

CREATE TABLE u(id INTEGER PRIMARY KEY);
CREATE TABLE tag(id INTEGER PRIMARY KEY, uid INTEGER REFERENCES u ON DELETE CASCADE);
INSERT INTO u VALUES (1); INSERT INTO tag VALUES (1, NULL);
"""

# (what the phase tests, the changes, FTS queries compared)
PHASES = [
    ("moved child survives its old parent's delete; parent delete cascading into FTS content; two users swap "
     "handles; INTEGER PRIMARY KEY DESC rows changed; a 439 KB FTS value; a 2,000-byte key with a 150 KB value; "
     "RustResort statuses",
     "UPDATE c SET pid = 2 WHERE id = 10; DELETE FROM p WHERE id = 1;"
     "DELETE FROM fa WHERE id = 1;"
     "UPDATE users SET handle = 'tmp' WHERE id = 1; UPDATE users SET handle = 'alice' WHERE id = 2;"
     "UPDATE users SET handle = 'bob' WHERE id = 1;"
     "UPDATE td SET v = 'changed' WHERE id = 5; DELETE FROM td WHERE id = 3; INSERT INTO td(id, v) VALUES (1, 'n');"
     "INSERT INTO bs VALUES (1, '%s');"
     "INSERT INTO cache VALUES ('%s', '%s');" % (BIG.replace("'", "''"), "u" * 2000, "b" * 150000),
     ["fs_fts:alpha", "fs_fts:gamma", "bs_fts:w29999", "bs_fts:small"]),
    ("key reused, then its new children moved back; a rotation of NOCASE handles and emails; the big FTS value "
     "updated",
     "INSERT INTO p VALUES (1, 'one again'); UPDATE c SET pid = 1 WHERE id = 12; DELETE FROM p WHERE id = 2;"
     "UPDATE users SET handle = 'x1', email = 'z1' WHERE id = 1; UPDATE users SET handle = 'x2', email = 'z2' WHERE id = 2;"
     "UPDATE users SET handle = 'x3', email = 'z3' WHERE id = 3;"
     "UPDATE users SET handle = 'ALICE', email = 'b@x' WHERE id = 3;"
     "UPDATE users SET handle = 'Carol', email = 'a@x' WHERE id = 1;"
     "UPDATE users SET handle = 'BOB', email = 'c@x' WHERE id = 2;"
     "UPDATE bs SET body = body || ' tail' WHERE id = 1;"
     "UPDATE ft SET a = 'worlds apart' WHERE rowid = 1; INSERT INTO ft(rowid, a) VALUES (5, 'cafe hello');",
     ["bs_fts:tail", "bs_fts:w5", "ft:world", "ft:cafe", "ft:he*"]),
    ("a list reversed under UNIQUE(list_id, position); a hand-over chain; the big FTS value deleted",
     "UPDATE items SET position = position + 100; UPDATE items SET position = 5 - (position - 100);"
     "UPDATE users SET email = NULL WHERE id = 3; UPDATE users SET email = 'b@x' WHERE id = 2;"
     "UPDATE users SET email = 'c@x' WHERE id = 1;"
     "DELETE FROM bs WHERE id = 1;",
     ["bs_fts:w5", "bs_fts:small"]),
]


def main_d1():
    k = Case("d1")
    try:
        files = sorted(glob.glob(os.path.join(FIXTURES, "*.sql")))
        if files:
            for f in files:
                k.sql(open(f).read())
        else:
            print("SKIP d1_fidelity rustresort: RustResort's migrations are not at %s" % FIXTURES)
        k.sql(SCHEMA)
        if not k.check("full load (RustResort's migrations and every case's schema)", fts=["fs_fts:alpha"]):
            return
        rr = ["statuses_fts:word7", "statuses_fts:hello"] if files else []
        for i, (what, changes, fts) in enumerate(PHASES):
            if files and i == 0:
                body = "<p>it's a \"test\"\r\n" + " ".join("word%d" % j for j in range(20)) + "</p>"
                changes += ("INSERT INTO statuses(id, uri, content) VALUES ('s1', 'u1', '%s'), ('s2', 'u2', "
                            "'hello world'), ('s3', 'u3', 'other words');" % body.replace("'", "''"))
            elif files and i == 1:
                changes += ("UPDATE statuses SET content = 'changed hello' WHERE id = 's1';"
                            "DELETE FROM statuses WHERE id = 's3';"
                            "INSERT INTO statuses(id, uri, content) VALUES ('s4', 'u4', 'fresh words');")
            k.sql(changes)
            k.check(what, fts=fts + rr)
        for f in glob.glob(k.snap + "*"):
            os.remove(f)
        k.sql("INSERT INTO tc VALUES (3, 1, NULL);")
        k.check("snapshot deleted: a full load again over a D1 holding every table (tc has two cascading parents)",
                fts=rr)
        c = sqlite3.connect(k.db)
        c.execute("DROP TABLE u")
        c.commit()
        c.close()
        r = k.sync()
        msg = r.stderr + r.stdout
        report("d1 a table dropped while tag still refers to it: refused, naming both",
               r.returncode != 0 and "table tag" in msg and "table u" in msg and "foreign key" in msg,
               "exit %d: %s" % (r.returncode, msg.strip()[-400:]))
    finally:
        k.done()


def rtree_refused():
    k = Case("rtree")
    try:
        k.sql("CREATE VIRTUAL TABLE rt USING rtree(id, minx, maxx); INSERT INTO rt VALUES (1, 0.5, 1.25);")
        r = k.sync()
        msg = r.stderr + r.stdout
        report("rtree refused for D1, naming the table and exclude_tables",
               r.returncode != 0 and "table rt" in msg and "rtree" in msg and "exclude_tables" in msg,
               "exit %d: %s" % (r.returncode, msg.strip()[-400:]))
    finally:
        k.done()


def dump_crlf():
    tmp = tempfile.mkdtemp(prefix="rs-fid-dump-")
    try:
        src = os.path.join(tmp, "a.db")
        c = sqlite3.connect(src)
        c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        for i, v in enumerate(["a\r\nb", "\r", "x\ry", "\n\r\n", "end\r\n"]):
            c.execute("INSERT INTO t VALUES (?, ?)", (i, v))
        c.commit()
        c.close()
        dump = subprocess.run([RS, "dump", src], capture_output=True, check=True).stdout
        out = os.path.join(tmp, "b.db")
        r = subprocess.run(["sqlite3", out], input=dump, capture_output=True)
        diffs = dbcompare.compare(out, src) if r.returncode == 0 else ["sqlite3: %s" % r.stderr.decode()]
        report("dump_crlf dump | sqlite3 keeps CR", not diffs, "; ".join(diffs[:3]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# Issue 13's reproductions one at a time, each in a database of its own, so
# that each can be shown failing on a build from before the fix (8702110)
# and passing now: `RS_BIN=old/resort-sync python3 tests/e2e/d1_fidelity.py
# --repro`.  Not part of `make test`: the phases above hold the same changes.
REPROS = [
    ("1 RustResort's migrations load", None, "", []),
    ("2 a moved child survives its old parent's delete",
     "CREATE TABLE p(id INTEGER PRIMARY KEY); CREATE TABLE c(id INTEGER PRIMARY KEY, pid REFERENCES p ON DELETE CASCADE);"
     "CREATE TABLE g(id INTEGER PRIMARY KEY, cid REFERENCES c ON DELETE CASCADE);"
     "INSERT INTO p VALUES (1), (2); INSERT INTO c VALUES (10, 1), (11, 1); INSERT INTO g VALUES (100, 10), (101, 11);",
     "UPDATE c SET pid = 2 WHERE id = 10; DELETE FROM p WHERE id = 1;", []),
    ("3 a parent delete cascading into a table with FTS triggers",
     SCHEMA[SCHEMA.index("CREATE TABLE fa"):SCHEMA.index("CREATE TABLE users")],
     "DELETE FROM fa WHERE id = 1;", ["fs_fts:alpha", "fs_fts:delta"]),
    ("4 two users swap handles in a table with children",
     SCHEMA[SCHEMA.index("CREATE TABLE users"):SCHEMA.index("CREATE TABLE td")],
     "UPDATE users SET handle = 'tmp' WHERE id = 1; UPDATE users SET handle = 'alice' WHERE id = 2;"
     "UPDATE users SET handle = 'bob' WHERE id = 1;"
     "UPDATE items SET position = position + 100; UPDATE items SET position = 5 - (position - 100);", []),
    ("5 INTEGER PRIMARY KEY DESC keeps rowids",
     SCHEMA[SCHEMA.index("CREATE TABLE td"):SCHEMA.index("CREATE TABLE bs")],
     "UPDATE td SET v = 'changed' WHERE id = 5; DELETE FROM td WHERE id = 3; INSERT INTO td(id, v) VALUES (1, 'n');",
     []),
]


def repro():
    files = sorted(glob.glob(os.path.join(FIXTURES, "*.sql")))
    for what, schema, changes, fts in REPROS:
        k = Case("repro")
        try:
            if schema is None:
                if not files:
                    print("SKIP repro %s: RustResort's migrations are not at %s" % (what, FIXTURES))
                    continue
                for f in files:
                    k.sql(open(f).read())
                k.check(what)
                continue
            k.sql(schema)
            if k.check(what + ": full load"):
                k.sql(changes)
                k.check(what, fts=fts)
        finally:
            k.done()
    dump_crlf()


def main():
    if not os.path.exists(WRANGLER):
        print("SKIP d1_fidelity: wrangler is not installed in tools/ (make deps)")
        return 0
    if sys.argv[1:] == ["--repro"]:
        repro()
        return 1 if e2e.failed else 0
    dump_crlf()
    rtree_refused()
    main_d1()
    return 1 if e2e.failed else 0


if __name__ == "__main__":
    sys.exit(main())
