"""End-to-end: a D1 full load sent in parts, interrupted, and resumed (wrangler d1 execute --local).

A RustResort-shaped source (a hand-written look-alike of its schema:
accounts, statuses with long HTML bodies of 5-50 KB, an external-content
FTS5 table `statuses_fts` fed by triggers and holding an UNINDEXED column
the content table lacks, favourites and media with ON DELETE CASCADE, an
AUTOINCREMENT table, and a self-referencing `conversations` table whose
rows refer to rows written after them, so a part cut inside it would fail
D1's foreign-key check at the end of the part) is loaded with
database.sync.d1.full_load_part_kb lowered so that the load needs several
parts.  Two interruptions:

  1. resort-sync is SIGKILLed after D1 accepted its 3rd part (test build,
     RS_D1_TEST_CRASH=part:3); the application then writes; the next
     `sync` (shipped program) must resume at part 4, and the same cycle
     sends the application's writes as a diff;
  2. a fresh full load whose wrangler applies part 2 and is then killed
     (its answer lost); the next `sync` must find part 2 in D1's history
     and go on at part 3.

After each resume: local D1 equals the source (rows with types and rowids,
sqlite_sequence, indexes, views, triggers, FTS MATCH results; FTS5
'integrity-check' on a copy of D1's file), no part D1 had was sent again
(the sync keys of the files wrangler was given, logged by a wrapper), D1's
history holds no 'part' record any more (the marker of a load under way
was there while it was), and the metrics of the daemon (`run`), which
makes the second resume, count the parts and the resume.

Env: RS_FULLLOAD_STATUSES (long statuses, default 26), RS_FULLLOAD_ROWS
(other rows, default 1600), RS_FULLLOAD_PART_KB (default 320),
RS_FULLLOAD_QUICK=1 (only the first interruption; `make soak-d1` runs it
with 200,000 rows), RS_SEED.
"""
import glob
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.environ.get("ROOT", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BUILD = os.environ.get("BUILD", "build")
RS = os.environ.get("RS_BIN", os.path.join(ROOT, BUILD, "resort-sync"))
RS_HOOKS = os.path.join(ROOT, BUILD, "resort-sync-hooks")
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import d1env  # noqa: E402
import dbcompare  # noqa: E402
from e2e import report  # noqa: E402
import e2e  # noqa: E402

SEED = int(os.environ.get("RS_SEED", random.randrange(1 << 30)))
STATUSES = int(os.environ.get("RS_FULLLOAD_STATUSES", "26"))
ROWS = int(os.environ.get("RS_FULLLOAD_ROWS", "1600"))
PART_KB = int(os.environ.get("RS_FULLLOAD_PART_KB", "320"))
QUICK = os.environ.get("RS_FULLLOAD_QUICK") == "1"
IGNORE = ("_rustresort_sync_history", "_cf_KV", "_cf_METADATA", "d1_migrations")
FTS_QUERIES = [("statuses_fts", "resort"), ("statuses_fts", "federation"), ("statuses_fts", "quote")]

SCHEMA = """
CREATE TABLE account (id TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE, display_name TEXT,
  note TEXT, created_at TEXT NOT NULL, followers_count INTEGER NOT NULL DEFAULT 0);
CREATE TABLE statuses (id TEXT PRIMARY KEY, account_id TEXT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
  content TEXT NOT NULL, content_warning TEXT, visibility TEXT NOT NULL DEFAULT 'public',
  created_at TEXT NOT NULL, score REAL);
CREATE INDEX idx_statuses_created ON statuses(created_at);
CREATE VIRTUAL TABLE statuses_fts USING fts5(status_id UNINDEXED, content, content_warning,
  content='statuses', content_rowid='rowid');
CREATE TRIGGER statuses_ai AFTER INSERT ON statuses BEGIN
  INSERT INTO statuses_fts(rowid, status_id, content, content_warning)
  VALUES (new.rowid, new.id, new.content, new.content_warning);
END;
CREATE TRIGGER statuses_ad AFTER DELETE ON statuses BEGIN
  INSERT INTO statuses_fts(statuses_fts, rowid, status_id, content, content_warning)
  VALUES ('delete', old.rowid, old.id, old.content, old.content_warning);
END;
CREATE TRIGGER statuses_au AFTER UPDATE ON statuses BEGIN
  INSERT INTO statuses_fts(statuses_fts, rowid, status_id, content, content_warning)
  VALUES ('delete', old.rowid, old.id, old.content, old.content_warning);
  INSERT INTO statuses_fts(rowid, status_id, content, content_warning)
  VALUES (new.rowid, new.id, new.content, new.content_warning);
END;
CREATE TABLE favourites (id INTEGER PRIMARY KEY AUTOINCREMENT,
  status_id TEXT NOT NULL REFERENCES statuses(id) ON DELETE CASCADE,
  account_address TEXT NOT NULL, created_at TEXT NOT NULL, UNIQUE(status_id, account_address));
CREATE TABLE media_attachments (id TEXT PRIMARY KEY,
  status_id TEXT REFERENCES statuses(id) ON DELETE CASCADE, url TEXT NOT NULL, blurhash BLOB);
CREATE TABLE conversations (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES conversations(id),
  topic TEXT NOT NULL);
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
CREATE VIEW public_statuses AS SELECT id, account_id, created_at FROM statuses WHERE visibility = 'public';
"""

WORDS = ["resort", "federation", "timeline", "boost", "fediverse", "instance", "relay", "quote", "mention"]


def html(rng, size):
    parts, n = [], 0
    while n < size:
        p = "<p>%s &amp; <a href=\"https://example.social/@u%d\">@u%d</a> it's \"%s\"</p>\r\n" % (
            " ".join(rng.choice(WORDS) for _ in range(12)), rng.randrange(1000), rng.randrange(1000),
            rng.choice(WORDS))
        parts.append(p)
        n += len(p)
    return "".join(parts)[:size]


def fill(db, rng, statuses, rows):
    c = sqlite3.connect(db)
    c.execute("PRAGMA journal_mode = WAL")
    c.execute("PRAGMA foreign_keys = ON")
    c.executescript(SCHEMA)
    naccounts = max(10, rows // 6)
    c.executemany("INSERT INTO account VALUES (?, ?, ?, ?, ?, ?)",
                  [("acct%06d" % i, "user_%d" % i, "User 'quoted' %d" % i, None if i % 3 else "note %d" % i,
                    "2026-01-%02dT00:00:00Z" % (1 + i % 28), rng.randrange(1 << 40)) for i in range(naccounts)])
    sts = []
    nshort = max(0, rows // 3)
    for i in range(statuses + nshort):
        size = rng.randrange(5000, 50000) if i < statuses else rng.randrange(20, 400)
        sts.append(("st%07d" % i, "acct%06d" % rng.randrange(naccounts), html(rng, size),
                    None if i % 4 else "cw %d" % i, rng.choice(["public", "unlisted", "private"]),
                    "2026-02-01T%02d:%02d:00Z" % (i % 24, i % 60), rng.random() * 1e6))
    c.executemany("INSERT INTO statuses VALUES (?, ?, ?, ?, ?, ?, ?)", sts)
    nst = len(sts)
    c.executemany("INSERT OR IGNORE INTO favourites(status_id, account_address, created_at) VALUES (?, ?, ?)",
                  [("st%07d" % rng.randrange(nst), "u%d@remote.example" % rng.randrange(5000), "2026-03-01")
                   for _ in range(rows // 3)])
    c.executemany("INSERT INTO media_attachments VALUES (?, ?, ?, ?)",
                  [("m%06d" % i, "st%07d" % rng.randrange(nst), "https://cdn.example/%d.png" % i,
                    bytes(rng.randrange(256) for _ in range(24))) for i in range(rows // 10)])
    # Each conversation refers to the next one: in key order every child comes before its parent.
    # A quarter larger than a part, so a cut inside it would fail D1's foreign-key check.
    nconv = max(50, rows // 8)
    pad = "x" * max(100, PART_KB * 1250 // nconv)
    c.execute("PRAGMA defer_foreign_keys = ON")
    c.executemany("INSERT INTO conversations VALUES (?, ?, ?)",
                  [(i, i + 1 if i + 1 < nconv else None, "topic %d %s" % (i, pad)) for i in range(nconv)])
    c.executemany("INSERT INTO settings VALUES (?, ?)", [("k%03d" % i, "v%d" % i) for i in range(20)])
    c.commit()
    c.close()


def mutate(db, rng, step):
    c = sqlite3.connect(db, timeout=30)
    c.execute("PRAGMA foreign_keys = ON")
    c.execute("INSERT INTO statuses VALUES (?, 'acct000001', ?, NULL, 'public', '2026-04-01T00:00:00Z', 1.5)",
              ("new%d" % step, html(rng, 30000)))
    c.execute("UPDATE statuses SET content = content || ' federation edit' WHERE id = 'st0000003'")
    c.execute("DELETE FROM statuses WHERE id = 'st0000005'")  # its favourites and media cascade
    c.execute("INSERT INTO favourites(status_id, account_address, created_at) VALUES ('new%d', 'z@x', 'now')" % step)
    c.commit()
    c.close()


def d1_file(proj):
    files = [f for f in glob.glob(os.path.join(proj, ".wrangler", "state", "v3", "d1", "*", "*.sqlite"))
             if "metadata" not in os.path.basename(f)]
    return files[0] if files else None


def d1_query(proj, sql):
    p = d1_file(proj)
    if not p:
        return []
    c = sqlite3.connect("file:%s?mode=ro" % p, uri=True)
    try:
        return c.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        c.close()


def differences(proj, db, tmp):
    p = d1_file(proj)
    if not p:
        return ["no D1 database"]
    diffs = dbcompare.compare(p, db, ignore=IGNORE, fts_queries=FTS_QUERIES)
    copy = os.path.join(tmp, "d1copy.sqlite")
    for sfx in ("", "-wal"):  # local D1 keeps recent pages in its WAL
        if os.path.exists(copy + sfx):
            os.remove(copy + sfx)
        if os.path.exists(p + sfx):
            shutil.copyfile(p + sfx, copy + sfx)
    c = sqlite3.connect(copy)
    try:
        c.execute("INSERT INTO statuses_fts(statuses_fts) VALUES ('integrity-check')")
        n = c.execute("SELECT count(*) FROM statuses").fetchone()[0]
        m = c.execute("SELECT count(*) FROM statuses_fts_docsize").fetchone()[0]
        if n != m:
            diffs.append("statuses has %d rows, statuses_fts indexes %d" % (n, m))
    except sqlite3.DatabaseError as e:
        diffs.append("FTS integrity-check on D1: %s" % e)
    c.close()
    return [d[:400] for d in diffs]


class Env:
    def __init__(self, tmp):
        self.tmp = tmp
        self.proj = os.path.join(tmp, "proj")
        d1env.wrangler_project(self.proj, "testdb")
        self.calls = os.path.join(tmp, "calls.jsonl")
        # Logs the sync key of every file; with RS_TEST_WRANGLER_DIE_AT=n it runs wrangler for the
        # n-th file and then dies by SIGKILL, its answer lost.
        self.wrangler = os.path.join(tmp, "wrangler-logged")
        with open(self.wrangler, "w") as f:
            f.write("#!/bin/sh\nprev=\nfile=\nfor a in \"$@\"; do\n"
                    "  if [ \"$prev\" = --file ]; then file=$a; fi; prev=$a\ndone\n"
                    "if [ -z \"$file\" ]; then exec %s \"$@\"; fi\n"
                    "printf '{\"key\": \"%%s\", \"mode\": \"%%s\"}\\n' \"$(head -n 1 \"$file\" | cut -d' ' -f8)\""
                    " \"$(head -n 1 \"$file\" | cut -d' ' -f6)\" >> %s\n"
                    "n=$(wc -l < %s)\n"
                    "if [ -n \"$RS_TEST_WRANGLER_DIE_AT\" ] && [ \"$n\" -eq \"$RS_TEST_WRANGLER_DIE_AT\" ]; then\n"
                    "  %s \"$@\" > /dev/null 2>&1; kill -9 $$\nfi\n"
                    "exec %s \"$@\"\n" % (d1env.WRANGLER, self.calls, self.calls, d1env.WRANGLER, d1env.WRANGLER))
        os.chmod(self.wrangler, 0o755)
        self.db = os.path.join(tmp, "app.db")
        self.state = os.path.join(tmp, "state")
        os.makedirs(self.state)
        self.snapshot = os.path.join(self.state, "app.snapshot.db")
        self.metrics = os.path.join(tmp, "metrics.prom")
        self.cfg = os.path.join(tmp, "resort-sync.toml")
        with open(self.cfg, "w") as f:
            f.write('[database]\npath = "%s"\n[database.sync]\nmode = "d1"\ninterval_seconds = 1\n'
                    '[database.sync.d1]\ndatabase = "testdb"\nwrangler = "%s"\nwrangler_config = "%s"\n'
                    'snapshot_path = "%s"\nfull_load_part_kb = %d\ntimeout_seconds = 900\n'
                    % (self.db, self.wrangler, os.path.join(self.proj, "wrangler.toml"), self.snapshot, PART_KB))

    def sync(self, binary=None, extra=None):
        env = dict(os.environ, WRANGLER_SEND_METRICS="false")
        env.update(extra or {})
        return subprocess.run([binary or RS, "-c", self.cfg, "sync"], capture_output=True, text=True, env=env,
                              timeout=3600)

    def sent(self):
        if not os.path.exists(self.calls):
            return []
        return [json.loads(line) for line in open(self.calls) if line.strip()]

    def metric(self, name):
        try:
            text = open(self.metrics).read()
        except OSError:
            return None
        m = re.search(r"^%s(?:\{[^}]*\})? (\S+)$" % re.escape(name), text, re.M)
        return float(m.group(1)) if m else None


def parts_in_log(stderr):
    m = re.search(r"d1 full load built in parts.*?parts=(\d+)", stderr)
    return int(m.group(1)) if m else 0


def payload_bytes(stderr):
    m = re.search(r"d1 full load built in parts.*?bytes=(\d+)", stderr)
    return int(m.group(1)) if m else 0


def scenario_killed(env, rng, tmp):
    t0 = time.time()
    p = env.sync(binary=RS_HOOKS, extra={"RS_D1_TEST_CRASH": "part:3"})
    t1 = time.time()
    nparts, nbytes = parts_in_log(p.stderr), payload_bytes(p.stderr)
    before = env.sent()
    report("load_needs_several_parts", nparts >= 5, "parts=%d (want >= 5); stderr %s" % (nparts, p.stderr[-500:]))
    report("killed_after_part_3", p.returncode == -9 and "test hook: crash at part" in p.stderr and len(before) == 3,
           "rc=%d calls=%d %s" % (p.returncode, len(before), p.stderr[-400:]))
    marker = d1_query(env.proj, "SELECT count(*) FROM _rustresort_sync_history WHERE sync_mode = 'part'")
    report("marker_while_under_way", marker == [(3,)], "part records on D1: %r" % marker)
    mutate(env.db, rng, 1)  # the application writes while the load is interrupted
    t2 = time.time()
    p = env.sync()
    t3 = time.time()
    after = env.sent()[len(before):]
    resent = {c["key"] for c in before} & {c["key"] for c in after}
    report("resumed_run_succeeds", p.returncode == 0, "rc=%d %s" % (p.returncode, p.stderr[-800:]))
    report("resumed_at_part_4", "d1 full load resumed" in p.stderr and "first=4" in p.stderr,
           p.stderr[-800:])
    # the remaining parts, then one diff for what the application wrote meanwhile
    report("no_part_sent_twice", not resent and len([c for c in after if c["mode"] in ("part", "full")]) == nparts - 3,
           "re-sent %d; load files in the resumed run %d, want %d" % (
               len(resent), len([c for c in after if c["mode"] in ("part", "full")]), nparts - 3))
    report("writes_meanwhile_sent_as_diff", [c["mode"] for c in after][-1:] == ["diff"], [c["mode"] for c in after])
    d = differences(env.proj, env.db, tmp)
    report("d1_equals_source_after_resume", not d, d[:5])
    marker = d1_query(env.proj, "SELECT count(*) FROM _rustresort_sync_history WHERE sync_mode = 'part'")
    report("no_marker_after_load", marker == [(0,)], marker)
    src = sqlite3.connect(env.db)
    rows = sum(src.execute("SELECT count(*) FROM \"%s\"" % t).fetchone()[0] for (t,) in src.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite%' AND name NOT LIKE"
        " 'statuses_fts%'").fetchall())
    src.close()
    print("fullload: %d rows, payload %d bytes in %d parts (part size %d KB), %d wrangler file calls; build and"
          " parts 1-3 until the kill %.1f s, resume (parts 4-%d and the diff) %.1f s" % (
              rows, nbytes, nparts, PART_KB, len(env.sent()), t1 - t0, nparts, t3 - t2))
    return nparts


def scenario_wrangler_died(env, rng, tmp):
    os.remove(env.snapshot)
    for f in os.listdir(env.state):  # a first sync again, into a D1 that still holds the old load
        if f.endswith(".status.json"):
            os.remove(os.path.join(env.state, f))
    start = len(env.sent())
    p = env.sync(extra={"RS_TEST_WRANGLER_DIE_AT": str(start + 2)})
    first_log = p.stderr
    first = env.sent()[start:]
    report("wrangler_killed_after_applying_part_2", p.returncode != 0 and len(first) == 2 and
           d1_query(env.proj, "SELECT count(*) FROM _rustresort_sync_history WHERE sync_mode = 'part'") == [(2,)],
           "rc=%d calls=%d %s" % (p.returncode, len(first), p.stderr[-400:]))
    # The resume by the daemon (`run`), whose metrics file counts the parts and the resume.
    status = env.snapshot + ".status.json"
    os.remove(status)
    d = subprocess.Popen([RS, "-c", env.cfg, "run", "--metrics-file", env.metrics], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=dict(os.environ, WRANGLER_SEND_METRICS="false"))
    deadline = time.time() + 1800
    while time.time() < deadline and d.poll() is None:
        try:
            if json.load(open(status)).get("last_status") in ("success", "error"):
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    d.terminate()
    out, err = d.communicate(timeout=120)
    ok = json.load(open(status)).get("last_status") == "success" if os.path.exists(status) else False
    after = env.sent()[start + 2:]
    resent = {c["key"] for c in first} & {c["key"] for c in after}
    report("resume_skips_part_d1_applied_unseen", ok and not resent and "first=3" in err,
           "status ok=%s re-sent %d %s" % (ok, len(resent), err[-600:]))
    nparts = parts_in_log(first_log)
    report("metrics_parts_and_resume", env.metric("resort_sync_d1_full_load_parts") == nparts and
           env.metric("resort_sync_d1_full_load_parts_applied") == nparts and
           env.metric("resort_sync_d1_full_load_resumes_total") == 1,
           "parts=%s (log: %d) applied=%s resumes=%s" % (
               env.metric("resort_sync_d1_full_load_parts"), nparts,
               env.metric("resort_sync_d1_full_load_parts_applied"),
               env.metric("resort_sync_d1_full_load_resumes_total")))
    d = differences(env.proj, env.db, tmp)
    report("d1_equals_source_after_second_resume", not d, d[:5])


def main():
    for b in (RS, RS_HOOKS):
        if not os.access(b, os.X_OK):
            report("binaries", False, "%s is missing (make all-tests)" % b)
            return 1
    if not os.access(d1env.WRANGLER, os.X_OK):
        print("SKIP d1_fullload: wrangler is not installed (%s)" % d1env.WRANGLER)
        return 0
    tmp = tempfile.mkdtemp(prefix="rs-d1-fullload-")
    try:
        rng = random.Random(SEED)
        env = Env(tmp)
        fill(env.db, rng, STATUSES, ROWS)
        scenario_killed(env, rng, tmp)
        if not QUICK:
            scenario_wrangler_died(env, rng, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if e2e.failed:
        print("seed %d" % SEED)
    return 1 if e2e.failed else 0


if __name__ == "__main__":
    sys.exit(main())
