"""Property test of the diff engine under foreign keys.

Each case generates a random schema from adversarial shapes: parent/child/
grandchild chains whose children are parents themselves, with ON DELETE and
ON UPDATE CASCADE, SET NULL, SET DEFAULT, NO ACTION and RESTRICT; self-
referencing tables (reply chains); two tables referencing each other; tables
with two cascading parents; WITHOUT ROWID tables (TEXT, INTEGER, composite
and NOCASE keys); TEXT PRIMARY KEY in rowid tables (NULL keys included);
INTEGER PRIMARY KEY DESC; UNIQUE columns (some COLLATE NOCASE, some NOT
NULL, composite UNIQUE(list_id, position)); an FTS5 external-content table
with an UNINDEXED column that is not in its content table, fed by triggers
(RustResort's statuses_fts shape); TEXT with \\r and \\r\\n.

A is filled (foreign keys ON), copied to B, and B gets random adversarial
changes with foreign keys ON, as the application makes them: reparent then
delete the old parent, cascading deletes, key reuse after delete, parent key
moves (UPDATE of the key), swaps and rotations of UNIQUE values among rows
with children (some with deferred foreign keys), list reorders under
UNIQUE(list_id, position), case changes of NOCASE unique values, reply
chains cut in the middle.  Each change runs in a savepoint; one the
application's constraints refuse is rolled back, as the application would.

Checks, per case:
  1. `resort-sync diff A B` applied to a copy of A with build/tools/apply_sql
     (one transaction, foreign keys on, defensive: as D1 runs it) gives a
     database equal to B (dbcompare: rows with types and rowids,
     sqlite_sequence, schema objects, FTS MATCH results), FTS5
     'integrity-check' passes on the result, and diff(result, B) is empty;
  2. `resort-sync dump B | sqlite3 new.db` (the sqlite3 shell as the
     oracle) gives a database equal to B (in the ~10% of cases whose DDL is
     written with CRLF, against B's DDL with LF: the shell reads by lines
     and drops the CR of a CRLF even inside CREATE TABLE; a NOTE line
     counts them; the diff and D1 checks compare that DDL exactly);
  3. every RS_D1_EVERY-th case (default 25; 0 = never) also through real
     local D1: A's dump loaded with `wrangler d1 execute --local --file`,
     then the diff, and local D1's file compared with B.

RS_SEED fixes the seed, RS_CASES the number of cases (default 200),
RS_CASE=N runs only case N of the seed's sequence.  A failing case is saved
(a.db, b.db, the SQL, the changes made to B, what apply_sql/sqlite3/D1
said) under the directory named in its FAIL line.
"""
import glob
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.environ.get("ROOT", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BUILD = os.environ.get("BUILD", "build")
RS = os.environ.get("RS_BIN", os.path.join(ROOT, BUILD, "resort-sync"))
APPLY = os.path.join(ROOT, BUILD, "tools", "apply_sql")
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import d1env  # noqa: E402
import dbcompare  # noqa: E402

SEED = int(os.environ.get("RS_SEED", random.randrange(1 << 30)))
CASES = int(os.environ.get("RS_CASES", "200"))
ONLY = int(os.environ["RS_CASE"]) if os.environ.get("RS_CASE") else None
D1_EVERY = int(os.environ.get("RS_D1_EVERY", "25"))
D1_IGNORE = ("_rustresort_sync_history", "_cf_KV", "_cf_METADATA", "d1_migrations")
MAX_FAIL_LINES = 40

TEXTS = ["", "a", "it's", 'q"d', "line\r\nbreak", "cr\ronly", "lf\nonly", "\r\n", "trail\r", "\r", "na\u00efve",
         "x;y", "-- c", "/* c */", "END;", "BEGIN x"]
WORDS = ["alpha", "beta", "gamma", "delta", "sync", "resort"]
INTS = [0, 1, -1, 2**63 - 1, -2**63, 2**53 + 1, 42]
REALS = [0.1 + 0.2, -0.5, 1 / 3, 1e-310, 1e300, -0.0, 2.5]
ACTIONS = ["CASCADE", "CASCADE", "SET NULL", "SET DEFAULT", "NO ACTION", "RESTRICT"]
FTS_QUERIES = [("posts_fts", "alpha"), ("posts_fts", "beta OR gamma"), ("posts_fts", "sync resort"),
               ("posts_fts", "delta NOT alpha")]


def q(n):
    return '"' + n.replace('"', '""') + '"'


def lit(v):
    if v is None:
        return "NULL"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, bytes):
        return "X'%s'" % v.hex()
    return "'" + v.replace("'", "''") + "'"


class Table:
    def __init__(self, name, kind):
        self.name, self.kind = name, kind
        self.cols = []        # (name, declaration)
        self.pk = []          # declared primary key columns
        self.ptype = {}       # column -> "int" | "text"
        self.nocase = set()   # TEXT columns compared NOCASE (key or unique)
        self.u = None         # single UNIQUE column, if any
        self.u_notnull = False
        self.uniques = []     # composite UNIQUE column lists
        self.fks = []         # dicts: cols, parent, pcols, on_delete, on_update, notnull
        self.extra = []       # table constraints
        self.fts = False
        self.crlf = False     # DDL text with CRLF line ends (migrations written on Windows)

    @property
    def rowid(self):
        return not self.kind.startswith("wr")

    def keycols(self):
        return ["rowid"] if self.rowid else self.pk

    def sql(self):
        body = [c[1] for c in self.cols] + self.extra
        for fk in self.fks:
            body.append("FOREIGN KEY(%s) REFERENCES %s(%s) ON DELETE %s ON UPDATE %s"
                        % (", ".join(fk["cols"]), fk["parent"], ", ".join(fk["pcols"]), fk["on_delete"],
                           fk["on_update"]))
        nl = "\r\n" if self.crlf else "\n"
        return "CREATE TABLE %s(%s  %s%s)%s" % (self.name, nl, ",\n  ".join(body), nl,
                                                " WITHOUT ROWID" if not self.rowid else "")


class Case:
    def __init__(self, r):
        self.r = r
        self.tables = {}
        self.order = []
        self.n = 0
        self.log = []      # (op name, [statements]) of the changes to B
        self.rawlog = []   # (op name, [(sql, args)]) of the changes that B kept (ops.json: replay, shrink)
        self.cur = None

    # ---- values ----------------------------------------------------------
    def fresh(self, typ, nocase=False):
        self.n += 1
        if typ == "int":
            return self.r.choice([self.n, self.n * 1000003, -self.n, 2**62 + self.n])
        deco = self.r.choice(["", "", "", "it's", 'q"', "cr\r", "crlf\r\n", "\u00fc"])
        base = "K%d" % self.n if nocase and self.r.random() < 0.5 else "k%d" % self.n
        return deco + base

    def value(self):
        r = self.r
        k = r.randrange(6)
        if k == 0:
            return r.choice(INTS + [r.randrange(-1000, 1000)])
        if k == 1:
            return r.choice(REALS)
        if k == 2:
            return None
        if k == 3:
            return bytes(r.randrange(256) for _ in range(r.randrange(0, 8)))
        return r.choice(TEXTS) + r.choice(["", " " + r.choice(WORDS)])

    def words(self):
        return r_join(self.r, [self.r.choice(WORDS) for _ in range(self.r.randrange(1, 5))],
                      ["  ", " ", "\r\n", "\r", "\n", " 'q' ", ' "dq" '])

    # ---- schema ----------------------------------------------------------
    def build(self):
        r = self.r
        ntab = r.randrange(2, 6)
        for i in range(ntab):
            kind = r.choice(["ipk", "ipk", "ipkdesc", "textpk", "textpk", "wr_text", "wr_int", "wr_comp", "nopk"])
            t = Table("t%d" % i, kind)
            if kind == "ipk":
                t.cols.append(("id", "id INTEGER PRIMARY KEY%s" % (" AUTOINCREMENT" if r.random() < 0.2 else "")))
                t.pk, t.ptype["id"] = ["id"], "int"
            elif kind == "ipkdesc":
                t.cols.append(("id", "id INTEGER PRIMARY KEY DESC"))
                t.pk, t.ptype["id"] = ["id"], "int"
            elif kind in ("textpk", "wr_text"):
                nc = r.random() < 0.35
                t.cols.append(("id", "id TEXT %sPRIMARY KEY%s" % ("NOT NULL " if kind == "wr_text" or r.random() < .5
                                                                  else "", " COLLATE NOCASE" if nc else "")))
                t.pk, t.ptype["id"] = ["id"], "text"
                if nc:
                    t.nocase.add("id")
            elif kind == "wr_int":
                t.cols.append(("id", "id INTEGER NOT NULL"))
                t.extra.append("PRIMARY KEY(id%s)" % (" DESC" if r.random() < 0.5 else ""))
                t.pk, t.ptype["id"] = ["id"], "int"
            elif kind == "wr_comp":
                t.cols += [("a", "a TEXT NOT NULL"), ("b", "b INTEGER NOT NULL")]
                t.extra.append("PRIMARY KEY(a, b)")
                t.pk, t.ptype["a"], t.ptype["b"] = ["a", "b"], "text", "int"
            if kind == "nopk" or r.random() < 0.6:
                nc = r.random() < 0.4
                nn = kind == "nopk" or r.random() < 0.5
                t.cols.append(("u", "u TEXT%s UNIQUE%s" % (" NOT NULL" if nn else "", " COLLATE NOCASE" if nc else "")))
                t.u, t.u_notnull, t.ptype["u"] = "u", nn, "text"
                if nc:
                    t.nocase.add("u")
            t.cols += [("v", "v"), ("s", "s TEXT")]
            # parents: earlier tables, by their primary key or their UNIQUE column
            cands = list(self.order)
            for j in range(r.choice([0, 1, 1, 2, 2]) if cands else 0):
                p = self.tables[r.choice(cands)]
                self.add_fk(t, p, "f%d" % j)
            if t.pk and len(t.pk) == 1 and r.random() < 0.3:  # reply chains
                self.add_fk(t, t, "up", self_ref=True)
            self.tables[t.name] = t
            self.order.append(t.name)
        # two tables referring to each other
        if len(self.order) >= 2 and r.random() < 0.4:
            a, b = r.sample(self.order, 2)
            ta, tb = self.tables[a], self.tables[b]
            if tb.pk or tb.u:
                self.add_fk(ta, tb, "back", nullable=True)
        # a list under UNIQUE(list_id, position)
        if r.random() < 0.5:
            lst = Table("lists", "ipk")
            lst.cols = [("id", "id INTEGER PRIMARY KEY"), ("u", "u TEXT NOT NULL UNIQUE COLLATE NOCASE"), ("v", "v"),
                        ("s", "s TEXT")]
            lst.pk, lst.ptype, lst.u, lst.u_notnull, lst.nocase = ["id"], {"id": "int", "u": "text"}, "u", True, {"u"}
            if self.order and r.random() < 0.5:
                self.add_fk(lst, self.tables[r.choice(self.order)], "owner")
            self.tables["lists"] = lst
            self.order.append("lists")
            it = Table("items", r.choice(["ipk", "textpk", "wr_int"]))
            if it.kind == "ipk":
                it.cols.append(("id", "id INTEGER PRIMARY KEY"))
                it.ptype["id"] = "int"
            elif it.kind == "textpk":
                it.cols.append(("id", "id TEXT PRIMARY KEY"))
                it.ptype["id"] = "text"
            else:
                it.cols.append(("id", "id INTEGER PRIMARY KEY"))
                it.ptype["id"] = "int"
            it.pk = ["id"]
            it.cols += [("list_id", "list_id INTEGER NOT NULL"), ("position", "position INTEGER NOT NULL"),
                        ("v", "v"), ("s", "s TEXT")]
            it.fks.append({"cols": ["list_id"], "parent": "lists", "pcols": ["id"], "on_delete": "CASCADE",
                           "on_update": r.choice(["CASCADE", "CASCADE", "NO ACTION"]), "notnull": True, "default": None})
            it.extra.append("UNIQUE(list_id, position)")
            it.uniques.append(["list_id", "position"])
            self.tables["items"] = it
            self.order.append("items")
        # RustResort's statuses/statuses_fts shape
        if r.random() < 0.6:
            p = Table("posts", "textpk")
            p.cols = [("id", "id TEXT PRIMARY KEY"), ("uri", "uri TEXT NOT NULL UNIQUE"), ("content", "content TEXT NOT NULL"),
                      ("v", "v"), ("s", "s TEXT")]
            p.pk, p.ptype, p.u, p.u_notnull, p.fts = ["id"], {"id": "text", "uri": "text"}, "uri", True, True
            cands = [x for x in self.order if x != "items"]
            if cands and r.random() < 0.7:
                self.add_fk(p, self.tables[r.choice(cands)], "owner", action="CASCADE")
            self.tables["posts"] = p
            self.order.append("posts")
            # a child of posts that is itself a parent (grandchildren cascade through it)
            if r.random() < 0.6:
                m = Table("media", "textpk")
                m.cols = [("id", "id TEXT PRIMARY KEY"), ("v", "v"), ("s", "s TEXT")]
                m.pk, m.ptype = ["id"], {"id": "text"}
                self.add_fk(m, p, "post", action="CASCADE")
                self.tables["media"] = m
                self.order.append("media")
                for x in self.order[:-2]:
                    if r.random() < 0.3 and x not in ("posts", "media"):
                        self.add_fk(self.tables[x], m, "media", nullable=True)
                        break

    def add_fk(self, t, p, prefix, self_ref=False, nullable=None, action=None):
        r = self.r
        if p.pk and (not p.u or r.random() < 0.6):
            pcols = list(p.pk)
        elif p.u:
            pcols = [p.u]
        else:
            return
        cols = ["%s_%s" % (prefix, c) for c in pcols]
        if any(c in [x[0] for x in t.cols] for c in cols):
            return
        od = action or r.choice(ACTIONS)
        ou = action or r.choice(ACTIONS + ["CASCADE"])
        notnull = False if (self_ref or nullable) else r.random() < 0.25
        default = None
        if "SET DEFAULT" in (od, ou) and r.random() < 0.7:
            default = [self.sentinel(p, c) for c in pcols]
        for i, c in enumerate(cols):
            decl = "%s %s" % (c, "INTEGER" if p.ptype[pcols[i]] == "int" else "TEXT")
            if notnull:
                decl += " NOT NULL"
            if default:
                decl += " DEFAULT %s" % lit(default[i])
            t.cols.append((c, decl))
            t.ptype.setdefault(c, p.ptype[pcols[i]])
        t.fks.append({"cols": cols, "parent": p.name, "pcols": pcols, "on_delete": od, "on_update": ou,
                      "notnull": notnull, "default": default, "self": self_ref})

    def sentinel(self, t, col):
        """The values of every table's first row (what SET DEFAULT columns default to)."""
        return {"int": 1, "text": "root"}[t.ptype[col]] if col != "u" else "Root"

    def create(self, c):
        crlf = self.r.random() < 0.1
        for name in self.order:
            self.tables[name].crlf = crlf
            c.execute(self.tables[name].sql())
        if "posts" in self.tables:
            c.executescript("""
                CREATE VIRTUAL TABLE posts_fts USING fts5(post_id UNINDEXED, content, content='posts', content_rowid='rowid');
                CREATE TRIGGER posts_ai AFTER INSERT ON posts BEGIN
                    INSERT INTO posts_fts(rowid, post_id, content) VALUES (new.rowid, new.id, new.content);
                END;
                CREATE TRIGGER posts_au AFTER UPDATE ON posts BEGIN
                    INSERT INTO posts_fts(posts_fts, rowid, post_id, content) VALUES('delete', old.rowid, old.id, old.content);
                    INSERT INTO posts_fts(rowid, post_id, content) VALUES (new.rowid, new.id, new.content);
                END;
                CREATE TRIGGER posts_ad AFTER DELETE ON posts BEGIN
                    INSERT INTO posts_fts(posts_fts, rowid, post_id, content) VALUES('delete', old.rowid, old.id, old.content);
                END;""")
        if self.r.random() < 0.5:
            t = self.r.choice(self.order)
            c.execute("CREATE INDEX %s_s ON %s(s)" % (t, t))

    def schema_sql(self, c):
        return ";\n".join(x[0] for x in c.execute("SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL")) + ";\n"

    # ---- rows ------------------------------------------------------------
    def x(self, c, sql, args=()):
        if self.cur is not None:
            self.cur.append(render(sql, args))
            self.raw.append((sql, [{"hex": v.hex()} if isinstance(v, bytes) else v for v in args]))
        return c.execute(sql, args)

    def keys(self, c, t, cols=None):
        cols = cols or t.keycols()
        where = " AND ".join("%s IS NOT NULL" % x for x in cols)
        return c.execute("SELECT %s FROM %s WHERE %s ORDER BY %s" % (", ".join(cols), t.name, where,
                                                                     ", ".join(cols))).fetchall()

    def new_row(self, c, t, first=False):
        r, row = self.r, {}
        for col, decl in t.cols:
            if col in t.pk:
                row[col] = self.sentinel(t, col) if first else self.fresh(t.ptype[col], col in t.nocase)
                if t.kind == "textpk" and not first and "NOT NULL" not in decl and r.random() < 0.05:
                    row[col] = None  # a rowid table's TEXT PRIMARY KEY may be NULL
            elif col == t.u:
                row[col] = "Root" if first else (self.fresh("text", True) if r.random() < .9 or t.u_notnull else None)
            elif col == "uri":
                row[col] = "https://x/%d" % self.n
            elif col == "content":
                row[col] = self.words()
            elif col in ("v",):
                row[col] = self.value()
            elif col == "s":
                row[col] = r.choice(TEXTS) + r.choice(WORDS)
            elif col == "position":
                pass
        for fk in t.fks:
            if fk.get("self") and first:
                vals = None
            else:
                pt = self.tables[fk["parent"]]
                opts = self.keys(c, pt, fk["pcols"])
                vals = r.choice(opts) if opts and (fk["notnull"] or r.random() < 0.85) else None
            if vals is None and fk["notnull"]:
                return None
            for i, col in enumerate(fk["cols"]):
                if col in ("list_id",):
                    continue
                row[col] = vals[i] if vals else None
        if t.name == "items":
            lists = self.keys(c, self.tables["lists"], ["id"])
            if not lists:
                return None
            lid = r.choice(lists)[0]
            pos = c.execute("SELECT coalesce(max(position), 0) + 1 FROM items WHERE list_id=?", (lid,)).fetchone()[0]
            row["list_id"], row["position"] = lid, pos
        return row

    def insert(self, c, t, row, rowid=None):
        cols = list(row)
        args = [row[k] for k in cols]
        if rowid is not None:
            cols, args = ["rowid"] + cols, [rowid] + args
        self.x(c, "INSERT INTO %s(%s) VALUES(%s)" % (t.name, ", ".join(cols), ", ".join("?" * len(cols))), args)

    def fill(self, c):
        r = self.r
        for name in self.order:
            t = self.tables[name]
            n = r.randrange(3, 9)
            for i in range(n):
                row = self.new_row(c, t, first=(i == 0 and t.name != "items"))
                if row is None:
                    continue
                try:
                    with savepoint(c):
                        self.insert(c, t, row)
                except sqlite3.IntegrityError:
                    pass
            # reply chains: point rows at earlier rows of the same table
            for fk in t.fks:
                if fk.get("self"):
                    ks = self.keys(c, t, fk["pcols"])
                    for k in ks[1:]:
                        if r.random() < 0.7:
                            par = r.choice(ks[:ks.index(k)])
                            try:
                                with savepoint(c):
                                    self.x(c, "UPDATE %s SET %s = ? WHERE %s = ?" % (t.name, fk["cols"][0], fk["pcols"][0]),
                                           (par[0], k[0]))
                            except sqlite3.IntegrityError:
                                pass
        # forward references (two tables referring to each other), filled last
        for name in self.order:
            t = self.tables[name]
            for fk in t.fks:
                if fk["cols"][0].startswith(("back_", "media_")):
                    for k in self.keys(c, t):
                        opts = self.keys(c, self.tables[fk["parent"]], fk["pcols"])
                        if opts and r.random() < 0.7:
                            v = r.choice(opts)
                            try:
                                with savepoint(c):
                                    self.set_where(c, t, fk["cols"], v, k)
                            except sqlite3.IntegrityError:
                                pass

    def set_where(self, c, t, cols, vals, key, kcols=None):
        kcols = kcols or t.keycols()
        self.x(c, "UPDATE %s SET %s WHERE %s" % (t.name, ", ".join("%s = ?" % x for x in cols),
                                                " AND ".join("%s IS ?" % x for x in kcols)), list(vals) + list(key))

    # ---- changes to B ----------------------------------------------------
    def pick_table(self, pred=lambda t: True):
        ts = [self.tables[n] for n in self.order if pred(self.tables[n])]
        return self.r.choice(ts) if ts else None

    def op_insert(self, c):
        t = self.pick_table()
        row = self.new_row(c, t)
        if row:
            self.insert(c, t, row)

    def op_update(self, c):
        t = self.pick_table()
        ks = self.keys(c, t)
        if ks:
            col = self.r.choice(["v", "s"] + (["content"] if t.fts else []))
            val = self.words() if col == "content" else (self.value() if col == "v" else self.r.choice(TEXTS))
            self.set_where(c, t, [col], [val], self.r.choice(ks))

    def op_delete(self, c):
        t = self.pick_table()
        ks = self.keys(c, t)
        if ks:
            k = self.r.choice(ks)
            self.x(c, "DELETE FROM %s WHERE %s" % (t.name, " AND ".join("%s IS ?" % x for x in t.keycols())), k)

    def op_delete_parent_with_children(self, c):
        fks = [(t, fk) for t in self.tables.values() for fk in t.fks]
        if not fks:
            return
        t, fk = self.r.choice(fks)
        p = self.tables[fk["parent"]]
        used = c.execute("SELECT DISTINCT %s FROM %s WHERE %s ORDER BY 1" % (
            ", ".join(fk["cols"]), t.name, " AND ".join("%s IS NOT NULL" % x for x in fk["cols"]))).fetchall()
        if used:
            v = self.r.choice(used)
            self.x(c, "DELETE FROM %s WHERE %s" % (p.name, " AND ".join("%s = ?" % x for x in fk["pcols"])), v)

    def op_reparent_then_delete(self, c):
        fks = [(t, fk) for t in self.tables.values() for fk in t.fks]
        if not fks:
            return
        t, fk = self.r.choice(fks)
        p = self.tables[fk["parent"]]
        used = c.execute("SELECT DISTINCT %s FROM %s WHERE %s ORDER BY 1" % (
            ", ".join(fk["cols"]), t.name, " AND ".join("%s IS NOT NULL" % x for x in fk["cols"]))).fetchall()
        allp = self.keys(c, p, fk["pcols"])
        if not used or len(allp) < 2:
            return
        old = self.r.choice(used)
        new = self.r.choice([k for k in allp if tuple(k) != tuple(old)] or [old])
        self.x(c, "UPDATE %s SET %s WHERE %s" % (t.name, ", ".join("%s = ?" % x for x in fk["cols"]),
                                                " AND ".join("%s = ?" % x for x in fk["cols"])), list(new) + list(old))
        self.x(c, "DELETE FROM %s WHERE %s" % (p.name, " AND ".join("%s = ?" % x for x in fk["pcols"])), old)

    def op_key_reuse(self, c):
        t = self.pick_table()
        ks = self.keys(c, t)
        if not ks:
            return
        k = self.r.choice(ks)
        cols = [x[0] for x in t.cols]
        old = c.execute("SELECT %s%s FROM %s WHERE %s" % ("rowid, " if t.rowid else "", ", ".join(cols), t.name,
                                                         " AND ".join("%s IS ?" % x for x in t.keycols())), k).fetchone()
        if not old:
            return
        oldrow = dict(zip(cols, old[1:] if t.rowid else old))
        self.x(c, "DELETE FROM %s WHERE %s" % (t.name, " AND ".join("%s IS ?" % x for x in t.keycols())), k)
        row = self.new_row(c, t)
        if not row:
            return
        how = self.r.randrange(3)
        if how == 0 or not t.rowid:  # the same primary key (and for a rowid alias, the same rowid)
            for x in t.pk:
                row[x] = oldrow[x]
            if t.u and self.r.random() < 0.5:
                row[t.u] = oldrow[t.u]
            self.insert(c, t, row)
        elif how == 1 and t.kind != "ipk":  # the same rowid, another key
            self.insert(c, t, row, rowid=old[0])
        else:  # the same key, another rowid
            for x in t.pk:
                row[x] = oldrow[x]
            self.insert(c, t, row)

    def op_move_key(self, c):
        t = self.pick_table(lambda t: t.pk or t.u)
        if not t:
            return
        ks = self.keys(c, t)
        if not ks:
            return
        col = self.r.choice(([t.u] if t.u else []) + ([t.pk[0]] if t.pk else []))
        self.set_where(c, t, [col], [self.fresh(t.ptype[col], col in t.nocase)], self.r.choice(ks))

    def rekey(self, t, key, col, val):
        """The key of a row after its column `col` became `val` (the rowid alias moves the rowid)."""
        if t.kind == "ipk" and col == "id":
            return (val,)
        return tuple(val if kc == col else kv for kc, kv in zip(t.keycols(), key))

    def _vals(self, c, t, col):
        return c.execute("SELECT %s, %s FROM %s WHERE %s IS NOT NULL ORDER BY 1" % (
            ", ".join(t.keycols()), col, t.name, col)).fetchall()

    def op_swap(self, c, n=2):
        t = self.pick_table(lambda t: t.pk or t.u)
        if not t:
            return
        col = self.r.choice(([t.u] if t.u else []) + [x for x in t.pk])
        rows = self._vals(c, t, col)
        if len(rows) < n:
            return
        # prefer rows with children
        pick = self.r.sample(rows, n)
        nk = len(t.keycols())
        keys, vals = [p[:nk] for p in pick], [p[nk] for p in pick]
        tmp = self.fresh(t.ptype[col])
        self.set_where(c, t, [col], [tmp], keys[0])
        # rotation: row i takes row i-1's value, row 0 (now keyed by tmp if col is part of its key) the last
        for i in range(n - 1, 0, -1):
            self.set_where(c, t, [col], [vals[i - 1]], keys[i])
        self.set_where(c, t, [col], [vals[n - 1]], self.rekey(t, keys[0], col, tmp))

    def op_rotate(self, c):
        self.op_swap(c, n=3)

    def op_deferred_swap(self, c):
        """Swap parent keys (or child references) with foreign keys checked at the end only."""
        self.x(c, "PRAGMA defer_foreign_keys = ON")
        try:
            fks = [(t, fk) for t in self.tables.values() for fk in t.fks if len(fk["cols"]) == 1]
            if fks and self.r.random() < 0.5:
                t, fk = self.r.choice(fks)
                rows = c.execute("SELECT %s, %s FROM %s WHERE %s IS NOT NULL ORDER BY 1" % (
                    ", ".join(t.keycols()), fk["cols"][0], t.name, fk["cols"][0])).fetchall()
                if len(rows) >= 2:
                    a, b = self.r.sample(rows, 2)
                    nk = len(t.keycols())
                    self.set_where(c, t, fk["cols"], [b[nk]], a[:nk])
                    self.set_where(c, t, fk["cols"], [a[nk]], b[:nk])
            else:
                self.op_swap(c)
            bad = c.execute("PRAGMA foreign_key_check").fetchall()
            if bad:
                raise sqlite3.IntegrityError("foreign key violations after a deferred swap")
        finally:
            self.x(c, "PRAGMA defer_foreign_keys = OFF")

    def op_nocase(self, c):
        t = self.pick_table(lambda t: t.nocase)
        if not t:
            return
        col = self.r.choice(sorted(t.nocase))
        rows = self._vals(c, t, col)
        if rows:
            row = self.r.choice(rows)
            nk = len(t.keycols())
            f = self.r.choice(["upper", "lower", "swapcase"])
            v = row[nk]
            nv = {"upper": v.upper(), "lower": v.lower(), "swapcase": v.swapcase()}[f]
            self.set_where(c, t, [col], [nv], row[:nk])
            # and a swap of two values that differ from each other only by case on the way
            if len(rows) >= 2 and col not in t.pk:
                a, b = self.r.sample(rows, 2)
                self.set_where(c, t, [col], [b[nk].swapcase() + "#"], a[:nk])
                self.set_where(c, t, [col], [a[nk].upper()], b[:nk])
                self.set_where(c, t, [col], [b[nk].lower()], a[:nk])

    def op_list_reorder(self, c):
        if "items" not in self.tables:
            return self.op_insert(c)
        lists = [x[0] for x in c.execute("SELECT DISTINCT list_id FROM items ORDER BY 1")]
        if not lists:
            return
        lid = self.r.choice(lists)
        ids = [x[0] for x in c.execute("SELECT id FROM items WHERE list_id=? ORDER BY position", (lid,))]
        how = self.r.randrange(3)
        if how == 0:  # reverse, through negative positions
            for i, k in enumerate(ids):
                self.x(c, "UPDATE items SET position = ? WHERE id = ?", (-(i + 1), k))
            for i, k in enumerate(reversed(ids)):
                self.x(c, "UPDATE items SET position = ? WHERE id = ?", (i + 1, k))
        elif how == 1:  # move the first to the end: shift everything by one in one statement
            self.x(c, "UPDATE items SET position = position + 1000 WHERE list_id = ?", (lid,))
            self.x(c, "UPDATE items SET position = position - 1001 WHERE list_id = ? AND id <> ?", (lid, ids[0]))
            self.x(c, "UPDATE items SET position = ? WHERE id = ?", (len(ids), ids[0]))
        else:  # move an item to another list, then delete the list it left
            other = [x[0] for x in c.execute("SELECT id FROM lists WHERE id <> ? ORDER BY 1", (lid,))]
            if other:
                o = self.r.choice(other)
                pos = c.execute("SELECT coalesce(max(position), 0) + 1 FROM items WHERE list_id=?", (o,)).fetchone()[0]
                self.x(c, "UPDATE items SET list_id = ?, position = ? WHERE id = ?", (o, pos, ids[-1]))
                if self.r.random() < 0.5:
                    self.x(c, "DELETE FROM lists WHERE id = ?", (lid,))

    def op_chain(self, c):
        """Reply chains: a new chain, then cut one in the middle or move replies to the root."""
        fks = [(t, fk) for t in self.tables.values() for fk in t.fks if fk.get("self")]
        if not fks:
            return self.op_delete_parent_with_children(c)
        t, fk = self.r.choice(fks)
        prev = None
        for _ in range(self.r.randrange(2, 5)):
            row = self.new_row(c, t)
            if not row:
                return
            row[fk["cols"][0]] = prev
            self.insert(c, t, row)
            prev = row[fk["pcols"][0]]
        mids = c.execute("SELECT %s FROM %s WHERE %s IS NOT NULL AND %s IN (SELECT %s FROM %s) ORDER BY 1" % (
            fk["pcols"][0], t.name, fk["cols"][0], fk["pcols"][0], fk["cols"][0], t.name)).fetchall()
        if mids:
            m = self.r.choice(mids)[0]
            if self.r.random() < 0.5:
                self.x(c, "DELETE FROM %s WHERE %s = ?" % (t.name, fk["pcols"][0]), (m,))
            else:
                root = self.keys(c, t, fk["pcols"])[0][0]
                self.x(c, "UPDATE %s SET %s = ? WHERE %s = ?" % (t.name, fk["cols"][0], fk["cols"][0]), (root, m))
                self.x(c, "DELETE FROM %s WHERE %s = ?" % (t.name, fk["pcols"][0]), (m,))

    OPS = ["op_insert", "op_update", "op_delete", "op_delete_parent_with_children", "op_reparent_then_delete",
           "op_key_reuse", "op_move_key", "op_swap", "op_rotate", "op_deferred_swap", "op_nocase",
           "op_list_reorder", "op_chain"]

    def mutate(self, c):
        for _ in range(self.r.randrange(4, 14)):
            op = self.r.choice(self.OPS)
            self.cur, self.raw = [], []
            try:
                with savepoint(c):
                    getattr(self, op)(c)
                self.log.append((op, self.cur))
                self.rawlog.append((op, self.raw))
            except sqlite3.IntegrityError as e:
                self.log.append((op + " (refused: %s, rolled back)" % e, self.cur))
            self.cur = None


def r_join(r, words, seps):
    out = words[0]
    for w in words[1:]:
        out += r.choice(seps) + w
    return out


def render(sql, args):
    out, i = [], 0
    for ch in sql:
        if ch == "?":
            out.append(lit(args[i]))
            i += 1
        else:
            out.append(ch)
    return "".join(out)


class savepoint:
    n = 0

    def __init__(self, c):
        self.c = c

    def __enter__(self):
        savepoint.n += 1
        self.name = "sp%d" % savepoint.n
        self.c.execute("SAVEPOINT %s" % self.name)

    def __exit__(self, typ, val, tb):
        if typ is not None:
            self.c.execute("ROLLBACK TO %s" % self.name)
        self.c.execute("RELEASE %s" % self.name)
        return False


# ---- checks -------------------------------------------------------------

def run(args, **kw):
    return subprocess.run(args, capture_output=True, timeout=300, **kw)


def fts_check(path):
    c = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        if not c.execute("SELECT 1 FROM sqlite_schema WHERE name='posts_fts'").fetchone():
            return ""
        c.close()
        tmp = path + ".ic"
        copy_db(path, tmp)
        c = sqlite3.connect(tmp)
        try:
            c.execute("INSERT INTO posts_fts(posts_fts) VALUES('integrity-check')")
            n = c.execute("SELECT count(*) FROM posts").fetchone()[0]
            m = c.execute("SELECT count(*) FROM posts_fts_docsize").fetchone()[0]
            return "" if n == m else "posts has %d rows, posts_fts indexes %d" % (n, m)
        except sqlite3.DatabaseError as e:
            return "FTS integrity-check: %s" % e
        finally:
            c.close()
            fresh_db(tmp)
    finally:
        c.close()


def fresh_db(path):
    for sfx in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(path + sfx):
            os.remove(path + sfx)


def copy_db(src, dst):
    fresh_db(dst)
    for sfx in ("", "-wal"):
        if os.path.exists(src + sfx):
            shutil.copy(src + sfx, dst + sfx)


def d1_state(proj):
    files = [f for f in glob.glob(os.path.join(proj, ".wrangler", "state", "v3", "d1", "*", "*.sqlite"))
             if "metadata" not in os.path.basename(f)]
    return files[0] if files else None


def wrangler(proj, sql, tmp):
    env = dict(os.environ, TMPDIR=tmp, WRANGLER_SEND_METRICS="false")
    p = run([d1env.WRANGLER, "d1", "execute", "DB", "--local", "--file", sql, "--config",
             os.path.join(proj, "wrangler.toml"), "--json", "--yes"], env=env, cwd=proj)
    return p.returncode, (p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace"))[-1500:]


def check_d1(tmp, a, b, dsql, work):
    """Load A's dump into a fresh local D1, apply the diff, compare with B; '' when equal."""
    proj = os.path.join(tmp, "d1proj")
    shutil.rmtree(proj, ignore_errors=True)
    d1env.wrangler_project(proj, "DB")
    p = run([RS, "dump", a])
    if p.returncode != 0:
        return "dump A failed: %s" % p.stderr.decode()[:300]
    asql = os.path.join(work, "dumpA.sql")
    open(asql, "wb").write(p.stdout)
    rc, out = wrangler(proj, asql, work)
    if rc != 0:
        return "D1 refused A's dump: %s" % out
    # An empty diff (every change of the case refused and rolled back) is
    # not sent, as `sync` sends nothing then; wrangler refuses an empty file.
    rc, out = wrangler(proj, dsql, work) if os.path.getsize(dsql) else (0, "")
    if rc != 0:
        return "D1 refused the diff: %s" % out
    state = d1_state(proj)
    if not state:
        return "no D1 state file"
    cp = os.path.join(work, "d1.db")
    copy_db(state, cp)
    d = dbcompare.compare(cp, b, ignore=D1_IGNORE, fts_queries=fts_queries(b))
    ic = fts_check(cp)
    if ic:
        d.append("D1: " + ic)
    return "; ".join(d)


crlf_ddl_cases = [0]


def lf_schema(path, copy):
    """`path`, or a copy of it whose schema text has LF for CRLF when it has any."""
    c = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    has = c.execute("SELECT count(*) FROM sqlite_schema WHERE instr(sql, char(13, 10))").fetchone()[0]
    c.close()
    if not has:
        return path
    crlf_ddl_cases[0] += 1
    copy_db(path, copy)
    c = sqlite3.connect(copy)
    c.execute("PRAGMA writable_schema = ON")
    c.execute("UPDATE sqlite_schema SET sql = replace(sql, char(13, 10), char(10)) WHERE instr(sql, char(13, 10))")
    c.commit()
    c.close()
    return copy


def fts_queries(path):
    c = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    has = c.execute("SELECT 1 FROM sqlite_schema WHERE name='posts_fts'").fetchone()
    c.close()
    return FTS_QUERIES if has else []


def main():
    rnd = random.Random(SEED)
    tmp = tempfile.mkdtemp(prefix="rs-fkprop-")
    work = os.path.join(tmp, "w")
    os.makedirs(work)
    stats = {"diff": [0, 0], "dump": [0, 0], "d1": [0, 0], "refused": 0, "ops": 0, "rows_changed": 0}
    fail_lines = [0]
    t0 = time.time()

    def fail(kind, case, cseed, why, files, ops, schema, raw=None):
        stats[kind][1] += 1
        fdir = tempfile.mkdtemp(prefix="rs-fkprop-fail-%s-%d-" % (kind, case))
        for name, path in files.items():
            if path and os.path.exists(path):
                shutil.copy(path, os.path.join(fdir, name))
        with open(os.path.join(fdir, "case.txt"), "w") as f:
            f.write("RS_SEED=%d RS_CASE=%d (case seed %d)\n%s\n\n-- schema\n%s\n-- changes made to B "
                    "(foreign keys ON, each in a savepoint)\n" % (SEED, case, cseed, why, schema))
            for op, stmts in ops:
                f.write("-- %s\n%s\n" % (op, "".join(s + ";\n" for s in stmts)))
        if raw is not None:
            with open(os.path.join(fdir, "ops.json"), "w") as f:
                json.dump(raw, f)
        fail_lines[0] += 1
        if fail_lines[0] <= MAX_FAIL_LINES:
            print("FAIL %s_case_%d: %s [saved in %s] (RS_SEED=%d RS_CASE=%d)"
                  % (kind, case, " ".join(why.split())[:700], fdir, SEED, case))
            sys.stdout.flush()

    try:
        for case in range(CASES):
            cseed = rnd.randrange(1 << 30)
            if ONLY is not None and case != ONLY:
                continue
            g = Case(random.Random(cseed))
            a, b = os.path.join(work, "a.db"), os.path.join(work, "b.db")
            fresh_db(a)
            c = sqlite3.connect(a, isolation_level=None)
            c.execute("PRAGMA foreign_keys = ON")
            g.build()
            g.create(c)
            c.execute("BEGIN")
            g.fill(c)
            c.execute("COMMIT")
            schema = g.schema_sql(c)
            c.close()
            fresh_db(b)
            shutil.copy(a, b)
            c = sqlite3.connect(b, isolation_level=None)
            c.execute("PRAGMA foreign_keys = ON")
            c.execute("BEGIN")
            g.mutate(c)
            c.execute("COMMIT")
            bad = c.execute("PRAGMA foreign_key_check").fetchall()
            c.close()
            stats["ops"] += len(g.log)
            stats["refused"] += sum(1 for op, _ in g.log if "refused" in op)
            if bad:
                print("FAIL generator_case_%d: B violates its foreign keys: %s (RS_SEED=%d)" % (case, bad[:3], SEED))
                continue

            # 1. diff applied with apply_sql
            dsql = os.path.join(work, "d.sql")
            res = os.path.join(work, "res.db")
            p = run([RS, "diff", a, b])
            open(dsql, "wb").write(p.stdout)
            why = ""
            if p.returncode != 0:
                why = "diff exited %d: %s" % (p.returncode, p.stderr.decode(errors="replace")[:500])
            else:
                copy_db(a, res)
                ap = run([APPLY, res, dsql])
                if ap.returncode != 0:
                    why = "apply_sql refused the diff: %s" % ap.stderr.decode(errors="replace")[:500]
                else:
                    d = dbcompare.compare(res, b, fts_queries=fts_queries(b))
                    ic = fts_check(res)
                    if ic:
                        d.append(ic)
                    again = run([RS, "diff", res, b])
                    if again.returncode != 0 or again.stdout.strip():
                        d.append("diff(result, B) not empty: %r" % again.stdout[:300])
                    why = "; ".join(d)
            stats["diff"][0] += 1
            if why:
                fail("diff", case, cseed, why, {"a.db": a, "b.db": b, "d.sql": dsql,
                                                  "result.db": res if os.path.exists(res) else None}, g.log, schema, g.rawlog)

            # 2. dump B through the sqlite3 shell
            new = os.path.join(work, "new.db")
            fresh_db(new)
            p = run([RS, "dump", b])
            dump = os.path.join(work, "dump.sql")
            open(dump, "wb").write(p.stdout)
            why = ""
            if p.returncode != 0:
                why = "dump exited %d: %s" % (p.returncode, p.stderr.decode(errors="replace")[:500])
            else:
                sh = run(["sqlite3", "-bail", new], input=p.stdout)
                if sh.returncode != 0 or sh.stderr.strip():
                    why = "sqlite3 shell: rc %d %s" % (sh.returncode, sh.stderr.decode(errors="replace")[:500])
                else:
                    # The shell reads its input by lines and drops the CR of each CRLF, also inside a
                    # CREATE statement: DDL written with CRLF (migrations from Windows) cannot come
                    # through it unchanged.  Compare with B's DDL so normalized, and only there.
                    d = dbcompare.compare(new, lf_schema(b, os.path.join(work, "b_lf.db")),
                                          fts_queries=fts_queries(b))
                    ic = fts_check(new)
                    if ic:
                        d.append(ic)
                    why = "; ".join(d)
            stats["dump"][0] += 1
            if why:
                fail("dump", case, cseed, why, {"b.db": b, "dump.sql": dump, "new.db": new}, g.log, schema, g.rawlog)

            # 3. real local D1, every D1_EVERY-th case
            if D1_EVERY and case % D1_EVERY == D1_EVERY - 1 and os.path.exists(d1env.WRANGLER):
                stats["d1"][0] += 1
                why = check_d1(tmp, a, b, dsql, work)
                if why:
                    fail("d1", case, cseed, why, {"a.db": a, "b.db": b, "d.sql": dsql,
                                                   "dumpA.sql": os.path.join(work, "dumpA.sql"),
                                                   "d1.db": os.path.join(work, "d1.db")}, g.log, schema, g.rawlog)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if D1_EVERY and not os.path.exists(d1env.WRANGLER):
        print("SKIP engine_fk_property_local_d1: wrangler not installed (%s)" % d1env.WRANGLER)
    n = 1 if ONLY is not None else CASES
    for kind, name in (("diff", "diff_applied_equals_b"), ("dump", "dump_via_sqlite3_shell_equals_b"),
                       ("d1", "diff_on_local_d1_equals_b")):
        ran, bad = stats[kind]
        if kind == "d1" and ran == 0:
            print("SKIP %s: no case went through local D1 (RS_D1_EVERY=%d)" % (name, D1_EVERY))
            continue
        ok = bad == 0
        print(("PASS %s_%d_of_%d_cases" % (name, ran, n)) if ok else
              ("FAIL %s: %d of %d cases failed (RS_SEED=%d)" % (name, bad, ran, SEED)))
    if crlf_ddl_cases[0]:
        print("NOTE engine_fk_property: %d cases had CRLF in their DDL; the sqlite3 shell turns it into LF "
              "(dump checked against B's DDL with LF there; diff and D1 checked exactly)" % crlf_ddl_cases[0])
    print("  seed %d, %d cases, %d changes (%d refused by constraints and rolled back), %.1fs"
          % (SEED, n, stats["ops"], stats["refused"], time.time() - t0))
    return 1 if (stats["diff"][1] or stats["dump"][1] or stats["d1"][1] or fail_lines[0]) else 0


if __name__ == "__main__":
    sys.exit(main())
