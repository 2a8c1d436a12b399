"""Property tests of the diff engine.

For random databases A and B (generated schemas with rowid, INTEGER
PRIMARY KEY, AUTOINCREMENT, WITHOUT ROWID, STRICT, UNIQUE, generated
columns, foreign keys with cascades, FTS5 content-owning and
external-content tables kept by triggers, audit triggers, views, indexes,
hostile names and values; random inserts, updates, deletes, key changes,
UNIQUE swaps and schema changes):

  1. applying `resort-sync diff A B` to a copy of A (one transaction,
     foreign keys on, defensive mode: as D1 runs it) gives a database equal
     to B (tests/lib/dbcompare.py) and sqldiff prints nothing for its
     ordinary tables;
  2. applying `resort-sync dump B` to an empty database gives B, through
     apply_sql and through the sqlite3 shell (`dump B | sqlite3 new.db`);
  3. the sync key depends only on the two states: the state reached by
     applying the diff (other statements, same content) gives the same key,
     and a different B gives a different key;
  4. the page comparison changes nothing: `diff` (only rows on pages that
     differ) and `diff --plain` (every row) print the same bytes, and the
     page comparison was used (not fallen back from) in most cases.

RS_SEED fixes the seed; RS_CASES the number of cases (default 40).
Prints PASS/FAIL lines for tests/run.sh.
"""
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
APPLY = os.path.join(ROOT, BUILD, "tools", "apply_sql")
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import dbcompare  # noqa: E402

SEED = int(os.environ.get("RS_SEED", random.randrange(1 << 30)))
CASES = int(os.environ.get("RS_CASES", "40"))

NAMES = ["plain", "we\"ird", "sp ace", "select", "tâble", "semi;colon", "dash--x", "brack]et"]
REALS = [0.0, -0.0, 1.0 / 3, 0.1 + 0.2, 1e308, -1e-308, 5e-324, 2.2250738585072014e-308,
         float("inf"), float("-inf"), 123456789.125, -2.5, 1.7976931348623157e308,
         -1.1103322999393838e-302, 5.9501188884963053e-300]
INTS = [0, 1, -1, 2**63 - 1, -2**63, 2**53 + 1, 42, -7]
TEXTS = ["", "x", "it's", "two\nlines", "quote\"d", "naïve ☃", "-- comment", "/* c */", "a;b",
         "'); DROP TABLE x; --", "tab\there", "\r\n"]


def q(n):
    return '"' + n.replace('"', '""') + '"'


class Gen:
    def __init__(self, rnd):
        self.r = rnd

    def value(self, kind="any"):
        r = self.r
        k = kind if kind != "any" else r.choice(["int", "real", "text", "blob", "null", "rawtext"])
        if k == "int":
            return r.choice(INTS + [r.randrange(-10**6, 10**6)])
        if k == "real":
            return r.choice(REALS + [r.uniform(-1e6, 1e6), r.random() * 10 ** r.randrange(-300, 300)])
        if k == "text":
            return r.choice(TEXTS + ["w%d" % r.randrange(1000)])
        if k == "blob":
            return bytes(r.randrange(256) for _ in range(r.randrange(0, 20)))
        if k == "rawtext":  # text with NUL or invalid UTF-8: stored via CAST
            return ("raw", r.choice([b"a\x00b", b"\xff\xfe", b"ok\x00", b"\xc3("]))
        return None

    def words(self):
        return " ".join(self.r.choice(["alpha", "beta", "gamma", "delta", "sync", "resort"])
                        for _ in range(self.r.randrange(1, 5)))


def ins(c, table, cols, vals, rowid=None):
    """Insert with raw-text support (CAST(? AS TEXT) for bytes that are text)."""
    ph, args = [], []
    for v in vals:
        if isinstance(v, tuple) and v[0] == "raw":
            ph.append("CAST(? AS TEXT)")
            args.append(v[1])
        else:
            ph.append("?")
            args.append(v)
    names = list(cols)
    if rowid is not None:
        names = ["rowid"] + names
        ph = ["?"] + ph
        args = [rowid] + args
    c.execute("INSERT OR IGNORE INTO %s(%s) VALUES(%s)" % (q(table), ", ".join(q(x) for x in names),
                                                          ", ".join(ph)), args)


def build_schema(c, g):
    r = g.r
    n1, n2 = r.sample(NAMES, 2)
    t = {}
    c.executescript("""
        PRAGMA foreign_keys = ON;
        CREATE TABLE parent(id INTEGER PRIMARY KEY, code TEXT UNIQUE, v);
        CREATE TABLE child(id INTEGER PRIMARY KEY, pid INTEGER REFERENCES parent(id) ON DELETE CASCADE, note);
        CREATE TABLE norowid(a, b);
        CREATE TABLE auto(id INTEGER PRIMARY KEY AUTOINCREMENT, v);
        CREATE TABLE wr(k1 TEXT, k2 INTEGER, v, PRIMARY KEY(k1, k2)) WITHOUT ROWID;
        CREATE TABLE st(id INTEGER PRIMARY KEY, n INTEGER, r REAL, s TEXT, b BLOB) STRICT;
        CREATE TABLE gen(id INTEGER PRIMARY KEY, a INTEGER, b INTEGER GENERATED ALWAYS AS (a * 2) VIRTUAL,
                         c TEXT GENERATED ALWAYS AS (a || 'x') STORED);
        CREATE TABLE uniq(id INTEGER PRIMARY KEY, u TEXT UNIQUE NOT NULL, w);
        CREATE TABLE textpk(k TEXT PRIMARY KEY, v);
        CREATE TABLE audit(tbl TEXT PRIMARY KEY, n INTEGER);
        CREATE TRIGGER count_norowid AFTER INSERT ON norowid BEGIN
            INSERT INTO audit VALUES('norowid', 1) ON CONFLICT(tbl) DO UPDATE SET n = n + 1; END;
        CREATE TABLE docs(id INTEGER PRIMARY KEY, title TEXT, body TEXT);
        CREATE VIRTUAL TABLE docs_fts USING fts5(title, body, content='docs', content_rowid='id');
        CREATE TRIGGER docs_ai AFTER INSERT ON docs BEGIN
          INSERT INTO docs_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END;
        CREATE TRIGGER docs_ad AFTER DELETE ON docs BEGIN
          INSERT INTO docs_fts(docs_fts, rowid, title, body) VALUES('delete', old.id, old.title, old.body); END;
        CREATE TRIGGER docs_au AFTER UPDATE ON docs BEGIN
          INSERT INTO docs_fts(docs_fts, rowid, title, body) VALUES('delete', old.id, old.title, old.body);
          INSERT INTO docs_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END;
        CREATE VIRTUAL TABLE notes USING fts5(text);
        CREATE INDEX child_pid ON child(pid);
        CREATE VIEW parent_view AS SELECT p.id, count(c.id) AS n FROM parent p LEFT JOIN child c ON c.pid = p.id GROUP BY p.id;
    """)
    c.execute("CREATE TABLE %s(%s INTEGER PRIMARY KEY, %s)" % (q(n1), q(n2), q("v v")))
    t["hostile"] = (n1, n2)
    return t


def fill(c, g, names, n):
    r = g.r
    for i in range(n):
        ins(c, "parent", ["id", "code", "v"], [i + 1, "c%d" % i, g.value()])
        ins(c, "child", ["id", "pid", "note"], [i + 1, r.randrange(1, i + 2), g.value()])
        ins(c, "norowid", ["a", "b"], [g.value(), g.value()])
        c.execute("INSERT INTO auto(v) VALUES(?)", (g.value("text"),))
        ins(c, "wr", ["k1", "k2", "v"], [r.choice(["a", "b", "c", "A"]), r.randrange(5), g.value()])
        c.execute("INSERT OR IGNORE INTO st VALUES(?,?,?,?,?)",
                  (i, g.value("int"), g.value("real") if r.random() < .9 else None, g.value("text"), g.value("blob")))
        c.execute("INSERT OR IGNORE INTO gen(id, a) VALUES(?,?)", (i, r.randrange(100)))
        ins(c, "uniq", ["id", "u", "w"], [i, "u%d" % i, g.value()])
        ins(c, "textpk", ["k", "v"], [g.value("text"), g.value()])
        c.execute("INSERT INTO docs(title, body) VALUES(?,?)", (g.words(), g.words()))
        c.execute("INSERT INTO notes(text) VALUES(?)", (g.words(),))
        n1, n2 = names["hostile"]
        ins(c, n1, [n2, "v v"], [None, g.value()])
    # gaps in rowids of the table without a primary key
    c.execute("DELETE FROM norowid WHERE rowid % 3 = 0")


def mutate(c, g, names, n):
    r = g.r
    ops = r.randrange(3, 15)
    for _ in range(ops):
        op = r.randrange(16)
        try:
            if op == 0:
                c.execute("UPDATE parent SET v = ? WHERE id = ?", (g.value("real"), r.randrange(1, n + 1)))
            elif op == 1:
                c.execute("DELETE FROM parent WHERE id = ?", (r.randrange(1, n + 1),))  # cascades
            elif op == 2:
                ins(c, "norowid", ["a", "b"], [g.value(), g.value()])
                c.execute("DELETE FROM norowid WHERE rowid = ?", (r.randrange(1, 2 * n),))
            elif op == 3:
                c.execute("UPDATE norowid SET b = ? WHERE rowid = ?", (g.value("blob"), r.randrange(1, 2 * n)))
            elif op == 4:  # key change in a WITHOUT ROWID table
                c.execute("UPDATE OR IGNORE wr SET k2 = k2 + 10 WHERE rowid IN (SELECT rowid FROM wr LIMIT 1)"
                          if False else "UPDATE OR IGNORE wr SET k2 = k2 + 10 WHERE k1 = ?", (r.choice("abcA"),))
            elif op == 5:  # UNIQUE swap
                a, b = r.sample(range(n), 2)
                ua = c.execute("SELECT u FROM uniq WHERE id=?", (a,)).fetchone()
                ub = c.execute("SELECT u FROM uniq WHERE id=?", (b,)).fetchone()
                if ua and ub:
                    c.execute("UPDATE uniq SET u = '#tmp' WHERE id=?", (a,))
                    c.execute("UPDATE uniq SET u = ? WHERE id=?", (ua[0], b))
                    c.execute("UPDATE uniq SET u = ? WHERE id=?", (ub[0], a))
            elif op == 6:
                c.execute("UPDATE st SET r = ?, s = ? WHERE id = ?", (g.value("real"), g.value("text"), r.randrange(n)))
            elif op == 7:
                c.execute("UPDATE docs SET body = ? WHERE id = ?", (g.words(), r.randrange(1, n + 1)))
                c.execute("DELETE FROM docs WHERE id = ?", (r.randrange(1, n + 1),))
                c.execute("INSERT INTO docs(title, body) VALUES(?,?)", (g.words(), g.words()))
            elif op == 8:
                c.execute("DELETE FROM notes WHERE rowid = ?", (r.randrange(1, n + 1),))
                c.execute("INSERT INTO notes(rowid, text) VALUES(?, ?)", (n + r.randrange(100), g.words()))
            elif op == 9:
                c.execute("INSERT INTO auto(v) VALUES('new')")
                c.execute("DELETE FROM auto WHERE id = (SELECT max(id) FROM auto)")
            elif op == 10:  # schema: add a column (a name the table does not have yet)
                have = {row[1] for row in c.execute("PRAGMA table_info(textpk)")}
                name = "extra%d" % r.randrange(1000)
                if name not in have:
                    c.execute("ALTER TABLE textpk ADD COLUMN %s TEXT DEFAULT 'd'" % name)
            elif op == 11:  # schema: new table, index, view
                k = r.randrange(1000)
                c.execute("CREATE TABLE IF NOT EXISTS fresh%d(a PRIMARY KEY, b)" % k)
                ins(c, "fresh%d" % k, ["a", "b"], [g.value("int"), g.value()])
                c.execute("CREATE INDEX IF NOT EXISTS st_n ON st(n)")
                c.execute("CREATE VIEW IF NOT EXISTS v%d AS SELECT * FROM uniq" % k)
            elif op == 12:  # schema: drop things
                c.execute("DROP VIEW IF EXISTS parent_view")
                c.execute("DROP INDEX IF EXISTS child_pid")
            elif op == 13:  # schema: change a table's definition (rebuild)
                c.executescript("""
                    CREATE TABLE gen2(id INTEGER PRIMARY KEY, a INTEGER, z TEXT DEFAULT 'q',
                                      b INTEGER GENERATED ALWAYS AS (a * 3) VIRTUAL);
                    INSERT INTO gen2(id, a) SELECT id, a FROM gen;
                    DROP TABLE gen; ALTER TABLE gen2 RENAME TO gen;""")
            elif op == 14:  # change a trigger
                c.executescript("""DROP TRIGGER IF EXISTS count_norowid;
                    CREATE TRIGGER count_norowid AFTER INSERT ON norowid BEGIN
                      INSERT INTO audit VALUES('norowid*', 1) ON CONFLICT(tbl) DO UPDATE SET n = n + 2; END;""")
            else:
                n1, n2 = names["hostile"]
                c.execute("UPDATE %s SET %s = ? WHERE rowid = ?" % (q(n1), q("v v")), (g.value("text"), r.randrange(1, n)))
                c.execute("DELETE FROM %s WHERE rowid = ?" % q(n1), (r.randrange(1, n),))
        except sqlite3.IntegrityError:
            pass


def run(args, **kw):
    return subprocess.run(args, capture_output=True, **kw)


FTS_QUERIES = [("docs_fts", "alpha"), ("docs_fts", "sync OR resort"), ("notes", "beta"), ("notes", "gamma delta")]

results = {"pass": 0, "fail": 0}


def check(name, ok, why=""):
    if ok:
        print("PASS %s" % name)
        results["pass"] += 1
    else:
        print("FAIL %s: %s (seed %d)" % (name, why, SEED))
        results["fail"] += 1
    sys.stdout.flush()


def ordinary_tables(path):
    c = sqlite3.connect(path)
    out = [n for (n, t) in c.execute("SELECT name, type FROM pragma_table_list WHERE schema='main'")
           if t == "table" and not n.startswith("sqlite_")]
    c.close()
    return out


def sqldiff_clean(a, b):
    """sqldiff, table by table (not FTS shadow tables, whose layout may differ)."""
    for t in ordinary_tables(b):
        p = run(["sqldiff", "--table", t, a, b])
        if p.returncode != 0 or p.stdout.strip():
            return "sqldiff --table %s: %s%s" % (t, p.stdout[:300], p.stderr[:300])
    return ""


def main():
    rnd = random.Random(SEED)
    tmp = tempfile.mkdtemp(prefix="rs-prop-")
    failures = {"diff": [], "dump": [], "key": [], "fast": []}
    fast_used = 0
    try:
        for case in range(CASES):
            g = Gen(random.Random(rnd.randrange(1 << 30)))
            a, b = os.path.join(tmp, "a.db"), os.path.join(tmp, "b.db")
            for f in (a, b):
                if os.path.exists(f):
                    os.remove(f)
            c = sqlite3.connect(a)
            names = build_schema(c, g)
            n = g.r.randrange(3, 30)
            fill(c, g, names, n)
            c.commit()
            c.close()
            shutil.copy(a, b)
            c = sqlite3.connect(b)
            c.execute("PRAGMA foreign_keys = ON")
            mutate(c, g, names, n)
            c.commit()
            c.close()

            # 1. diff A B applied to A gives B
            p = run([RS, "diff", "--stats", a, b])
            if p.returncode != 0:
                failures["diff"].append("case %d: diff failed: %s" % (case, p.stderr.decode()[:300]))
                continue
            # 4. with and without the page comparison: the same bytes
            plain = run([RS, "diff", "--plain", a, b])
            if plain.returncode != 0 or plain.stdout != p.stdout:
                failures["fast"].append("case %d: diff and diff --plain differ (%d vs %d bytes) %s"
                                        % (case, len(p.stdout), len(plain.stdout), p.stderr.decode()[-200:]))
            if b"page filter: on" in p.stderr:
                fast_used += 1
            sql = os.path.join(tmp, "d.sql")
            open(sql, "wb").write(p.stdout)
            res = os.path.join(tmp, "res.db")
            shutil.copy(a, res)
            ap = run([APPLY, res, sql])
            if ap.returncode != 0:
                failures["diff"].append("case %d: apply failed: %s" % (case, ap.stderr.decode()[:300]))
                shutil.copy(sql, os.path.join(ROOT, BUILD, "test-logs", "failed-diff.sql"))
                continue
            d = dbcompare.compare(res, b, fts_queries=FTS_QUERIES)
            s = sqldiff_clean(res, b)
            if d or s:
                failures["diff"].append("case %d: %s %s" % (case, "; ".join(d)[:600], s))
                shutil.copy(sql, os.path.join(ROOT, BUILD, "test-logs", "failed-diff.sql"))
            again = run([RS, "diff", res, b])
            if again.stdout.strip():
                failures["diff"].append("case %d: diff of the result and B is not empty: %s"
                                        % (case, again.stdout[:300]))

            # 2. dump B into an empty database gives B
            p = run([RS, "dump", b])
            dsql = os.path.join(tmp, "dump.sql")
            open(dsql, "wb").write(p.stdout)
            empty = os.path.join(tmp, "empty.db")
            if os.path.exists(empty):
                os.remove(empty)
            ap = run([APPLY, empty, dsql])
            if p.returncode != 0 or ap.returncode != 0:
                failures["dump"].append("case %d: %s %s" % (case, p.stderr.decode()[:200], ap.stderr.decode()[:300]))
            else:
                d = dbcompare.compare(empty, b, fts_queries=FTS_QUERIES)
                if d:
                    failures["dump"].append("case %d: %s" % (case, "; ".join(d)[:600]))
            # ... and so does piping it into the sqlite3 shell, which users do
            shell = os.path.join(tmp, "shell.db")
            if os.path.exists(shell):
                os.remove(shell)
            sh = subprocess.run(["sqlite3", "-bail", shell], input=p.stdout, capture_output=True)
            if sh.returncode != 0:
                failures["dump"].append("case %d: sqlite3 shell: %s" % (case, sh.stderr.decode()[:300]))
            else:
                d = dbcompare.compare(shell, b, fts_queries=FTS_QUERIES)
                if d:
                    failures["dump"].append("case %d: through the sqlite3 shell: %s" % (case, "; ".join(d)[:600]))

            # 3. the key depends on the states only
            k1 = run([RS, "diff", "--format", "key", a, b]).stdout
            k2 = run([RS, "diff", "--format", "key", a, res]).stdout
            c = sqlite3.connect(b)
            c.execute("UPDATE st SET s = 'one more change' WHERE id = (SELECT min(id) FROM st)")
            c.commit()
            c.close()
            k3 = run([RS, "diff", "--format", "key", a, b]).stdout
            if len(k1.strip()) != 64 or k1 != k2 or k1 == k3:
                failures["key"].append("case %d: keys %r %r %r" % (case, k1, k2, k3))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    check("diff_applied_equals_target_%d_cases" % CASES, not failures["diff"], " | ".join(failures["diff"][:3]))
    check("dump_loaded_equals_source_%d_cases" % CASES, not failures["dump"], " | ".join(failures["dump"][:3]))
    check("sync_key_depends_on_states_only", not failures["key"], " | ".join(failures["key"][:3]))
    check("page_comparison_same_output_%d_cases" % CASES, not failures["fast"], " | ".join(failures["fast"][:3]))
    check("page_comparison_used_in_most_cases", fast_used * 2 > CASES,
          "used in %d of %d cases" % (fast_used, CASES))
    return 1 if results["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
