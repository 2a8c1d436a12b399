"""End-to-end: `resort-sync verify` in D1 mode against Cloudflare's own local D1.

A database with every value type at its edges (REALs by random bit
patterns, -0.0, infinities, subnormals, the 64-bit integer range, TEXT with
NUL bytes and invalid UTF-8, a TEXT and a BLOB of the same bytes, values
long enough to be read in chunks), a WITHOUT ROWID table keyed by such
values under NOCASE, a table without a primary key, FTS5 tables, a
30,000-row table and a table whose name and columns are hostile is synced
into local D1.  Then:

- verify finds every table equal (exit 0) and reports true row counts;
- rows are changed behind our back on D1, one table at a time (a TEXT, a
  deleted row, a REAL moved by one ULP, the hostile table), then many at
  once (-0.0 made 0.0, one byte in the last chunk of a 1.2 MB BLOB, TEXT
  made BLOB with the same bytes, a row added to the WITHOUT ROWID table, a
  REAL one ULP away in a 2,000-value table, a row far into the large
  table, an FTS row, a column added, a table dropped, a table only on D1,
  a table made WITHOUT ROWID):
  each time verify exits 1 and names exactly the tables changed so far;
- schema objects, sqlite_sequence and FTS indexes are compared too (an
  index whose DDL holds a comment, which wrangler strips, is still alike):
  a trigger and an index dropped on D1, a view redefined, an index only on
  D1 and a sqlite_sequence entry moved are each named; an external-content
  FTS index made to miss a row on D1 is named by its row count and by
  FTS5's integrity-check, and with the row put back wrong (the right count)
  by the integrity-check alone;
- with the test build's tiny pages (RS_D1_VERIFY_PAGE) a second database
  is read in many pages and calls, cut by rows and by bytes, with cursors
  over every kind of key value: equal, true counts, and a change in a
  middle page is caught;
- wrangler failing (an unknown database) is a clear error, exit 1.
"""
import glob
import os
import random
import re
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.environ.get("ROOT", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BUILD = os.environ.get("BUILD", "build")
RS = os.environ.get("RS_BIN", os.path.join(ROOT, BUILD, "resort-sync"))
HOOKS = os.path.join(ROOT, BUILD, "resort-sync-hooks")
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import d1env  # noqa: E402
import e2e  # noqa: E402
from e2e import report  # noqa: E402

SEED = int(os.environ.get("RS_SEED", random.randrange(1 << 30)))
HOSTILE = "we\"ird;--na\nme /*x*/ 'q' [z] `b` $1 ?2 :x @y \u00fc\u6f22"
HOSTILE_COL = "c\"o;l --\n/*"
LINE = re.compile(r"^(ok|DIFFERS|skipped)\s+(.*?): (.*)$")


def shown(name):
    """A table name as verify prints it: control characters as \\xNN."""
    return "".join("\\x%02x" % ord(ch) if ord(ch) < 0x20 or ord(ch) == 0x7f else ch for ch in name)


def qi(name):
    return '"' + name.replace('"', '""') + '"'


def setup(tmp, name):
    proj = os.path.join(tmp, "proj-" + name)
    wcfg = d1env.wrangler_project(proj, "verifydb")
    db = os.path.join(tmp, name + ".db")
    cfg = os.path.join(tmp, name + ".toml")
    with open(cfg, "w") as f:
        f.write('[database]\npath = "%s"\n[database.sync]\nmode = "d1"\n[database.sync.d1]\n'
                'database = "verifydb"\nwrangler = "%s"\nwrangler_config = "%s"\n'
                % (db, d1env.WRANGLER, wcfg))
    return proj, db, cfg


def wrangler(proj, sql):
    p = subprocess.run([d1env.WRANGLER, "d1", "execute", "verifydb", "--local", "--json", "--yes",
                        "--command", sql], cwd=proj, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, WRANGLER_SEND_METRICS="false"))
    if p.returncode != 0:
        raise RuntimeError("wrangler: %s %s" % (p.stdout[-500:], p.stderr[-500:]))


def d1_state(proj):
    files = [f for f in glob.glob(os.path.join(proj, ".wrangler", "state", "v3", "d1", "*", "*.sqlite"))
             if "metadata" not in os.path.basename(f)]
    return files[0] if files else None


def run(prog, cfg, cmd, env=None, args=(), vargs=()):
    e = dict(os.environ, WRANGLER_SEND_METRICS="false", **(env or {}))
    return subprocess.run([prog, "-c", cfg] + list(args) + [cmd] + list(vargs), capture_output=True, text=True, env=e,
                          timeout=900)


def verify(cfg, prog=RS, env=None, args=(), vargs=()):
    """(exit status, {printed name: (status, rest of line)}, stdout + stderr)."""
    t0 = time.time()
    p = run(prog, cfg, "verify", env, args, vargs)
    calls = re.search(r"wrangler_calls=(\d+)", p.stderr)
    print("verify: exit %d, %.1f s, %s wrangler calls" % (p.returncode, time.time() - t0, calls.group(1) if calls else "?"))
    lines = {}
    for line in p.stdout.splitlines():
        m = LINE.match(line)
        if m:
            lines[m.group(2)] = (m.group(1), m.group(3))
    return p.returncode, lines, p.stdout + p.stderr


def counts_true(lines, db):
    """Every compared table's local and D1 row counts as printed equal its real row count."""
    c = sqlite3.connect(db)
    bad = []
    for (name,) in c.execute("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"):
        st = lines.get(shown(name))
        if not st or st[0] != "ok":
            continue
        n = c.execute("SELECT count(*) FROM " + qi(name)).fetchone()[0]
        m = re.match(r"local (\d+) rows \w+, D1 (\d+) rows", st[1])
        if not m or int(m.group(1)) != n or int(m.group(2)) != n:
            bad.append("%s: %s, really %d" % (name, st[1], n))
    c.close()
    return bad


def check(name, rc, lines, out, differ, expect_rc=None, reasons=None):
    """verify said DIFFERS for exactly `differ` (printed names), ok for the rest."""
    got = {n for n, (s, _) in lines.items() if s == "DIFFERS"}
    want = {shown(n) for n in differ}
    rc_ok = rc == (expect_rc if expect_rc is not None else (1 if differ else 0))
    why = ""
    for n, text in (reasons or {}).items():
        st = lines.get(shown(n))
        if not st or text not in st[1]:
            why += " %s: expected %r, got %r;" % (n, text, st)
    report(name, rc_ok and got == want and not why and lines,
           "rc=%d differ=%s expected=%s%s\n%s" % (rc, sorted(got), sorted(want), why, out[-1500:]))


def real_rows(rr):
    vals = []
    for _ in range(2000):
        x = struct.unpack("<d", struct.pack("<Q", rr.getrandbits(64)))[0]
        if x == x:
            vals.append(x)
    vals += [1.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -1.7976931348623157e308,
             float("inf"), float("-inf"), 0.1, 1e23, 9007199254740993.0, 2.0 ** 62, -(2.0 ** 63)]
    return vals


def build_main(db, rr):
    c = sqlite3.connect(db)
    c.executescript("""
        CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, price REAL, data BLOB, note);
        CREATE TABLE reals(x);
        CREATE TABLE money(id INTEGER PRIMARY KEY, amount REAL);
        CREATE TABLE zeros(id INTEGER PRIMARY KEY, z);
        CREATE TABLE nopk(x, y);
        CREATE TABLE keyed(a TEXT COLLATE NOCASE, b, c, PRIMARY KEY(a, b)) WITHOUT ROWID;
        CREATE TABLE longvals(id INTEGER PRIMARY KEY, t TEXT, b BLOB);
        CREATE TABLE big(id INTEGER PRIMARY KEY, v INTEGER, s TEXT);
        CREATE TABLE types(id INTEGER PRIMARY KEY, v);
        CREATE TABLE extra_col(x);
        CREATE TABLE to_drop(x);
        CREATE TABLE kind_change(id INTEGER PRIMARY KEY, v);
        CREATE VIRTUAL TABLE docs USING fts5(title, body);
        CREATE TABLE posts(id INTEGER PRIMARY KEY, body TEXT);
        CREATE VIRTUAL TABLE posts_fts USING fts5(body, content='posts', content_rowid='id');
        CREATE TABLE seqd(id INTEGER PRIMARY KEY AUTOINCREMENT, v);
        CREATE TABLE audit(msg);
        CREATE INDEX items_name -- by name: a comment wrangler strips
            ON items(name);
        CREATE VIEW v_items AS SELECT id,   name FROM items /* all of them */;
        CREATE TRIGGER items_touch AFTER DELETE ON items BEGIN INSERT INTO audit VALUES (old.id); END;
    """)
    c.execute("CREATE TABLE %s(%s INTEGER PRIMARY KEY, k0, rs_t, c0)" % (qi(HOSTILE), qi(HOSTILE_COL)))
    for i in range(1, 201):
        c.execute("INSERT INTO items VALUES (?, ?, ?, ?, ?)",
                  (i, "item %d \u00e9\u6f22" % i, rr.uniform(-1e6, 1e6), bytes(rr.getrandbits(8) for _ in range(16)),
                   rr.choice([None, 0, -1, 2 ** 63 - 1, -2 ** 63, "x", b"", ""])))
    # TEXT that JSON cannot carry: NUL bytes, invalid UTF-8
    c.execute("INSERT INTO items(id, name, note) VALUES (500, CAST(X'68E9FF00C328' AS TEXT), CAST(X'00' AS TEXT))")
    c.executemany("INSERT INTO reals VALUES (?)", [(x,) for x in real_rows(rr)])
    c.execute("INSERT INTO money VALUES (1, ?)", (0.1 + 0.2,))
    c.execute("INSERT INTO zeros VALUES (1, ?), (2, 0.0), (3, ?)", (-0.0, float("-inf")))
    for i in range(60):
        c.execute("INSERT INTO nopk VALUES (?, ?)", (i, "v%d" % i))
    c.execute("DELETE FROM nopk WHERE x % 7 = 3")
    keyed = [("A", 1), ("a", 2), ("b", 1.5), ("b", 5e-324), ("b", -1e308), ("b", float("inf")),
             ("b", -2 ** 63), ("b", 2 ** 63 - 1), ("c", b"\x00\xff"), ("c", "text"), ("", 0), ("d", -0.0)]
    for i, (a, b) in enumerate(keyed):
        c.execute("INSERT INTO keyed VALUES (?, ?, ?)", (a, b, i))
    c.execute("INSERT INTO keyed VALUES (CAST(X'FF00' AS TEXT), 0.1, 'bad utf8 key')")
    c.execute("INSERT INTO longvals VALUES (1, ?, ?)", ("\u00e9" * 150000, bytes(rr.getrandbits(8) for _ in range(1200000))))
    c.execute("INSERT INTO longvals VALUES (2, 'short', X'00')")
    c.executemany("INSERT INTO big VALUES (?, ?, ?)", [(i, i * 7919 % 100003, "row %d" % i) for i in range(1, 12001)])
    c.execute("INSERT INTO types VALUES (1, 'same bytes'), (2, X'73616D65')")
    c.execute("INSERT INTO extra_col VALUES (1)")
    c.execute("INSERT INTO to_drop VALUES (1)")
    c.execute("INSERT INTO kind_change VALUES (1, 'one')")
    c.execute("INSERT INTO docs VALUES ('hello', 'world'), ('full text', 'search')")
    c.execute("INSERT INTO posts VALUES (1, 'first post'), (2, 'second post')")
    c.execute("INSERT INTO seqd(v) VALUES ('a'), ('b'), ('c')")
    c.execute("DELETE FROM seqd WHERE id = 3")
    c.execute("INSERT INTO %s VALUES (1, 'a;b--c', 'x', NULL), (2, ?, 3.25, X'00')" % qi(HOSTILE), ("\n'); DROP TABLE items; --",))
    c.commit()
    c.close()


def build_small(db, rr):
    """Small tables for the paging cases: keys of every kind, rows of uneven size."""
    c = sqlite3.connect(db)
    c.executescript("""
        CREATE TABLE keyed(a TEXT COLLATE NOCASE, b, c, PRIMARY KEY(a, b)) WITHOUT ROWID;
        CREATE TABLE bkey(k BLOB PRIMARY KEY, v) WITHOUT ROWID;
        CREATE TABLE rows(id INTEGER PRIMARY KEY, v);
        CREATE TABLE nopk(x);
    """)
    keys = [("A", 1), ("a", 2), ("b", 1.5), ("b", 5e-324), ("b", -1e308), ("b", float("inf")), ("b", float("-inf")),
            ("b", -2 ** 63), ("b", 2 ** 63 - 1), ("b", 0.1), ("b", 1e300), ("c", b"\x00\xff"), ("c", "text"),
            ("", 0), ("d", -0.0), ("E", "\u6f22"), ("e", 3)]
    for i, (a, b) in enumerate(keys):
        c.execute("INSERT INTO keyed VALUES (?, ?, ?)", (a, b, "x" * rr.randrange(1, 80)))
    c.execute("INSERT INTO keyed VALUES (CAST(X'FF00' AS TEXT), 0.1, 'bad utf8 key')")
    for i in range(12):
        c.execute("INSERT INTO bkey VALUES (?, ?)", (bytes([i, 0, 255 - i]), i))
    for i in range(1, 13):
        c.execute("INSERT INTO rows VALUES (?, ?)", (i * 3, "y" * rr.randrange(1, 120) if i != 7 else b"\x01" * 300000))
    c.execute("INSERT INTO rows VALUES (-9223372036854775808, 'min'), (9223372036854775807, 'max')")
    for i in range(9):
        c.execute("INSERT INTO nopk VALUES (?)", (i,))
    c.commit()
    c.close()


def main():
    rr = random.Random(SEED)
    print("seed %d" % SEED)
    tmp = tempfile.mkdtemp(prefix="rs-d1-verify-")
    try:
        proj, db, cfg = setup(tmp, "main")
        build_main(db, rr)
        p = run(RS, cfg, "sync")
        report("sync_full_load", p.returncode == 0, p.stderr[-800:])
        if p.returncode != 0:
            return 1

        prom = os.path.join(tmp, "verify.prom")
        rc, lines, out = verify(cfg, vargs=["--metrics-file", prom])
        check("equal_after_sync_exit_0", rc, lines, out, set())
        text = open(prom).read() if os.path.exists(prom) else ""
        report("match_metric_written", 'resort_sync_verify_mismatch{backend="d1"} 0\n' in text, text)
        report("every_table_listed", len(lines) == 22 and lines.get("posts_fts", ("",))[0] == "skipped",
               "%d lines: %s" % (len(lines), sorted(lines)))
        extra = {"schema": "21 objects alike", "sqlite_sequence": "1 entry alike",
                 "posts_fts (FTS index)": "D1 index 2 rows, 2 expected (rows of posts); integrity-check ok",
                 "docs (FTS index)": "D1 index 2 rows, 2 expected (rows of docs); integrity-check ok"}
        report("schema_sequence_fts_alike_after_sync",
               all(lines.get(n, ("",))[0] == "ok" and t in lines[n][1] for n, t in extra.items()),
               "%s" % {n: lines.get(n) for n in extra})
        bad = counts_true(lines, db)
        report("row_counts_are_true", not bad, "; ".join(bad))

        # Four drifts made on D1 in one call and found by one verify run (each table named on a
        # line of its own): changed text, a deleted row, a REAL one ULP off, a hostile name.
        differ = {"items", "nopk", "money", HOSTILE}
        wrangler(proj, ";\n".join([
            "UPDATE items SET name = name || 'x' WHERE id = 7",
            "DELETE FROM nopk WHERE rowid = (SELECT max(rowid) FROM nopk)",
            "UPDATE money SET amount = 0.3 WHERE id = 1",
            "UPDATE %s SET k0 = 'tampered' WHERE %s = 2" % (qi(HOSTILE), qi(HOSTILE_COL)),
        ]))
        state = sqlite3.connect("file:%s?mode=ro" % d1_state(proj), uri=True)
        now = state.execute("SELECT amount FROM money WHERE id = 1").fetchone()[0]
        state.close()
        ulps = struct.unpack("<q", struct.pack("<d", 0.1 + 0.2))[0] - struct.unpack("<q", struct.pack("<d", now))[0]
        report("real_changed_by_one_ulp_on_d1", ulps == 1, "%r is %d ULPs away" % (now, ulps))
        rc, lines, out = verify(cfg)
        n = sqlite3.connect(db).execute("SELECT count(*) FROM nopk").fetchone()[0]
        check("changed_text_deleted_row_one_ulp_hostile_name_caught", rc, lines, out, differ,
              reasons={"nopk": "D1 %d rows" % (n - 1)})

        # Schema objects, sqlite_sequence and an FTS index changed behind our back on D1 (one
        # verify run: each is named on a line of its own). The FTS index misses a row: its row
        # count and FTS5's integrity-check say so.
        wrangler(proj, ";\n".join([
            "DROP TRIGGER items_touch",
            "DROP INDEX items_name",
            "DROP VIEW v_items",
            "CREATE VIEW v_items AS SELECT id FROM items",
            "CREATE INDEX only_d1_idx ON seqd(v)",
            "UPDATE sqlite_sequence SET seq = seq + 5 WHERE name = 'seqd'",
            "INSERT INTO posts_fts(posts_fts, rowid, body) VALUES ('delete', 1, 'first post')",
        ]))
        drift = {"trigger items_touch": "missing on D1 (on table items)",
                 "index items_name": "missing on D1 (on table items)",
                 "view v_items": 'definition differs: local "CREATE VIEW v_items AS SELECT id, name FROM items", '
                                 'D1 "CREATE VIEW v_items AS SELECT id FROM items"',
                 "index only_d1_idx": "only on D1 (on table seqd)",
                 "sqlite_sequence": "seqd: local 3, D1 8",
                 "posts_fts (FTS index)": "D1 index 1 rows, 2 expected (rows of posts); integrity-check failed: "}
        differ |= set(drift)
        rc, lines, out = verify(cfg)
        check("schema_sequence_fts_drift_named", rc, lines, out, differ, reasons=drift)
        # Many at once, and schema differences.
        one = struct.unpack("<d", struct.pack("<Q", struct.unpack("<Q", struct.pack("<d", 1.0))[0] + 1))[0]
        byte = sqlite3.connect(db).execute("SELECT b FROM longvals WHERE id = 1").fetchone()[0][1100000]
        wrangler(proj, ";\n".join([
            "UPDATE zeros SET z = 0.0 WHERE id = 1",
            # one byte of the third 512 KiB chunk
            "UPDATE longvals SET b = CAST(substr(b, 1, 1100000) || X'%02X' || substr(b, 1100002) AS BLOB) WHERE id = 1"
            % (byte ^ 0xff),
            "UPDATE types SET v = CAST(v AS BLOB) WHERE id = 1",
            "INSERT INTO keyed VALUES ('zz', 1, 1)",
            "UPDATE reals SET x = %r WHERE x = 1.0" % one,
            "UPDATE big SET v = v + 1 WHERE id = 11000",
            "INSERT INTO docs VALUES ('behind', 'our back')",
            "ALTER TABLE extra_col ADD COLUMN y",
            "DROP TABLE to_drop",
            "CREATE TABLE only_d1(x)",
            "DROP TABLE kind_change",
            "CREATE TABLE kind_change(id INTEGER PRIMARY KEY, v) WITHOUT ROWID",
            "INSERT INTO kind_change VALUES (1, 'one')",
            # the FTS row put back with other text: the count is right, the integrity-check is not
            "INSERT INTO posts_fts(rowid, body) VALUES (1, 'not the first post')",
        ]))
        state = sqlite3.connect("file:%s?mode=ro" % d1_state(proj), uri=True)
        moved = state.execute("SELECT count(*) FROM reals WHERE x = ?", (one,)).fetchone()[0]
        blob = state.execute("SELECT b FROM longvals WHERE id = 1").fetchone()[0]
        state.close()
        report("d1_holds_the_small_changes", moved == 1 and len(blob) == 1200000 and blob[1100000] == byte ^ 0xff,
               "moved %d, blob %d bytes" % (moved, len(blob)))
        differ |= {"zeros", "longvals", "types", "keyed", "reals", "big", "docs", "extra_col", "to_drop", "only_d1",
                   "kind_change", "docs (FTS index)"}
        rc, lines, out = verify(cfg, vargs=["--metrics-file", prom])
        check("many_changes_caught", rc, lines, out, differ,
              reasons={"to_drop": "missing on D1", "only_d1": "only on D1", "extra_col": "columns differ",
                       "kind_change": "a rowid table locally, a WITHOUT ROWID table on D1",
                       "posts_fts (FTS index)": "D1 index 2 rows, 2 expected (rows of posts); integrity-check "
                                                "failed: database disk image is malformed"})
        text = open(prom).read() if os.path.exists(prom) else ""
        want = ['resort_sync_verify_mismatch{backend="d1"} 1',
                'resort_sync_verify_tables_differing{backend="d1"} %d' % len(differ)]
        report("mismatch_metric_written", all(w + "\n" in text for w in want)
               and "# TYPE resort_sync_verify_mismatch gauge" in text
               and os.stat(prom).st_mode & 0o777 == 0o644, text)
        if shutil.which("promtool"):
            pc = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
            report("verify_metrics_pass_promtool", pc.returncode == 0, pc.stdout + pc.stderr)
        else:
            print("SKIP verify_metrics_pass_promtool: promtool not installed (scripts/deps.sh installs it as root)")

        p = run(RS, cfg, "verify", args=["-o", "database.sync.d1.database=no_such_db"])
        report("wrangler_error_is_clear_exit_1", p.returncode == 1 and "no_such_db" in p.stderr
               and "verify" in p.stderr and not p.stdout, "rc=%d %r %r" % (p.returncode, p.stdout, p.stderr[-400:]))

        # Paging: tiny pages through the test build, a second database.
        if not os.access(HOOKS, os.X_OK):
            print("SKIP paging cases: %s not built" % HOOKS)
            return 0
        proj2, db2, cfg2 = setup(tmp, "small")
        build_small(db2, rr)
        p = run(RS, cfg2, "sync")
        report("small_sync", p.returncode == 0, p.stderr[-800:])
        env = {"RS_D1_VERIFY_PAGE": "3:600"}  # 3 rows, 600 bytes of values shared by a call's statements
        # One run: two changes in the middle of a table's pages are caught, every other
        # table (rows of every key kind, uneven sizes, a 300 KB value) is equal, counts true.
        wrangler(proj2, "UPDATE keyed SET c = c || '!' WHERE a = 'b' AND b = 0.1; "
                        "UPDATE bkey SET v = -1 WHERE k = X'0500FA'")
        rc, lines, out = verify(cfg2, prog=HOOKS, env=env, args=["-v"])
        calls = re.search(r"wrangler_calls=(\d+)", out)
        check("tiny_pages_middle_change_caught_rest_equal", rc, lines, out, {"keyed", "bkey"})
        bad = counts_true(lines, db2)
        report("tiny_pages_true_counts", not bad and calls and int(calls.group(1)) >= 6
               and sum(1 for st, _ in lines.values() if st == "ok") >= 2,
               "%s; calls %s; %s" % ("; ".join(bad), calls.group(1) if calls else None, lines))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    code = main()
    sys.exit(1 if code or e2e.failed else 0)
