"""End-to-end: RustResort's real schema synced into local D1 (wrangler d1 execute --local).

The schema is built from RustResort's own migrations, read at run time from
$ROOT/../shared/fixtures/rustresort/migrations (AGPL test data, never copied
into this project; the test prints SKIP when they are absent), applied in
name order with foreign keys ON.  Every table is filled with rows that
respect its foreign keys: statuses feeding `statuses_fts` through the
schema's own triggers (an external-content FTS5 table whose UNINDEXED
status_id column is not a column of statuses), long HTML-like statuses
(some over 100 KB, one over 300 KB, quotes and CRLF), TEXT keys and values
with quotes, NULLs, integers beyond 2^53, REALs.

Then: a full load into local D1, and RS_RR_ROUNDS (default 4) rounds of
application-style changes made with foreign keys ON, each followed by
`resort-sync sync` and a comparison of local D1's file with the source
(tests/lib/dbcompare.py: rows with types and rowids, sqlite_sequence,
indexes, views, triggers, FTS MATCH results, plus the FTS5 'integrity-check'
command on a copy of the D1 file). The rounds are adversarial: cascading
deletes of statuses, polls, conversations, lists, apps and hashtags with
their children; reparenting followed by deleting the old parent (OAuth apps
merged, their tokens trading UNIQUE access tokens); UNIQUE swaps and
rotations (usernames, follow addresses, NOCASE hashtag names, access tokens,
list members under UNIQUE(list_id, account_address)); key reuse (a status
deleted and another inserted with the same id, or on the same rowid);
primary key changes; long values grown and shrunk. Each change runs in a
savepoint: one the schema refuses is rolled back, as the application would
see it fail. D1 stores DDL without its SQL comments (wrangler's statement
splitter drops them); the comparison takes a definition that differs only so
as equal and says so in a NOTE line, and compares every row of those tables.
Finally the snapshot files are deleted and the next sync is a full load over
a D1 that already holds everything: it must succeed and D1 must still equal
the source.

Env: RS_SEED (seed), RS_RR_ROWS (rows in all, default 3000), RS_RR_ROUNDS
(default 4), RS_BIN.  On a failure the source, the snapshot before the
cycle, the D1 file and the diff are kept in a directory named in the FAIL
line.
"""
import glob
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
MIGRATIONS = os.path.join(ROOT, "..", "shared", "fixtures", "rustresort", "migrations")
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import d1env  # noqa: E402
import dbcompare  # noqa: E402

SEED = int(os.environ.get("RS_SEED", random.randrange(1 << 30)))
ROWS = int(os.environ.get("RS_RR_ROWS", "3000"))
ROUNDS = int(os.environ.get("RS_RR_ROUNDS", "4"))
IGNORE = ("_rustresort_sync_history", "_cf_KV", "_cf_METADATA", "d1_migrations")
WORDS = ["alpha", "beta", "gamma", "delta", "resort", "fediverse", "toot", "kitten", "quokka", "zeppelin"]
FTS_QUERIES = [("statuses_fts", "alpha"), ("statuses_fts", "quokka OR zeppelin"), ("statuses_fts", "kitten gamma"),
               ("statuses_fts", "\"it s\""), ("statuses_fts", "fediverse NOT toot")]
failed = 0
started = time.time()


def report(name, ok, why=""):
    global failed
    if ok:
        print("PASS %s" % name)
    else:
        failed += 1
        print("FAIL %s: %s (seed %d)" % (name, why, SEED))
    sys.stdout.flush()


# ---- data -------------------------------------------------------------------

class Data:
    """Row generator and the application-style changes, on one connection."""

    def __init__(self, c, r):
        self.c, self.r, self.n = c, r, 0
        self.log = []  # what the current round did, for a failure report

    def key(self, prefix):
        """A fresh TEXT key; some hold quotes, a semicolon, non-ASCII."""
        self.n += 1
        deco = self.r.choice(["", "", "", "", "it's-", 'q"', "semi;", "ü-", " sp "])
        return "%s%s%07d" % (deco, prefix, self.n)

    def words(self, k=None):
        return " ".join(self.r.choice(WORDS) for _ in range(k or self.r.randrange(1, 8)))

    def html(self, size):
        """HTML-like text of about `size` bytes with quotes and CRLF."""
        r, parts, n = self.r, [], 0
        while n < size:
            p = r.choice([
                '<p class="status">%s</p>\r\n' % self.words(),
                "<a href='https://ex.ample/@%s' rel=\"nofollow\">it's %s</a>\r\n" % (r.choice(WORDS), self.words(2)),
                "<br/>%s \"%s\" %s\n" % (self.words(3), self.words(1), self.words(2)),
                "<span>%s &amp; %s</span>\r" % (self.words(2), self.words(2)),
            ])
            parts.append(p)
            n += len(p)
        return "".join(parts)

    def content(self):
        return self.html(self.r.randrange(20, 600))

    def maybe(self, v, p=0.3):
        return None if self.r.random() < p else v

    def ts(self):
        return "2026-%02d-%02dT%02d:%02d:%02d.%03dZ" % (self.r.randrange(1, 13), self.r.randrange(1, 29),
                                                       self.r.randrange(24), self.r.randrange(60),
                                                       self.r.randrange(60), self.r.randrange(1000))

    def bigint(self):
        return self.r.choice([2**53 + 1, 2**63 - 1, -2**63, -(2**53) - 3, 9007199254740993, 2**62 + 12345,
                              self.r.randrange(-2**63, 2**63), self.r.randrange(1000)])

    def real(self):
        return self.r.choice([0.1 + 0.2, -0.5, 1 / 3, 1e-310, 5e-324, 1.7976931348623157e308, -0.0,
                              0.30000000000000004, self.r.uniform(-1, 1), 123456789.125])

    def ins(self, table, row):
        cols = list(row)
        self.c.execute("INSERT INTO %s(%s) VALUES(%s)" % (table, ", ".join(cols), ", ".join("?" * len(cols))),
                       [row[k] for k in cols])

    def ids(self, table, where="1"):
        return [x[0] for x in self.c.execute("SELECT id FROM %s WHERE %s ORDER BY id" % (table, where))]

    def pick(self, table, where="1"):
        ids = self.ids(table, where)
        return self.r.choice(ids) if ids else None

    # -- row makers (each respects its foreign keys) --
    def account(self):
        k = self.key("acct")
        self.ins("account", {"id": k, "username": "user%s" % k, "display_name": self.maybe("Name \"%s\" it's" % k),
                             "note": self.maybe(self.html(200)), "avatar_s3_key": self.maybe("av/%s.png" % k),
                             "header_s3_key": None, "private_key_pem": "-----BEGIN PRIVATE KEY-----\r\n%s\r\n" % k,
                             "public_key_pem": "-----BEGIN PUBLIC KEY-----\n%s\n" % k, "created_at": self.ts()})
        return k

    def status(self, content=None, sid=None):
        k = sid or self.key("st")
        self.ins("statuses", {"id": k, "uri": "https://ex.ample/s/%s/%d" % (k, self.n), "content": content or self.content(),
                              "content_warning": self.maybe("cw 'x'", 0.8),
                              "visibility": self.r.choice(["public", "unlisted", "private", "direct"]),
                              "language": self.maybe("en"), "account_address": self.r.choice(["", "a@b", "O'Neil@x"]),
                              "is_local": self.r.randrange(2), "in_reply_to_uri": self.maybe("https://x/%d" % self.n),
                              "boost_of_uri": self.maybe(None, 0.9), "created_at": self.ts(),
                              "fetched_at": self.maybe(self.ts())})
        return k

    def media(self, sid):
        k = self.key("media")
        self.ins("media_attachments", {"id": k, "status_id": sid, "s3_key": "m/%s" % k,
                                       "thumbnail_s3_key": self.maybe("t/%s" % k), "content_type": "image/png",
                                       "file_size": self.bigint(), "description": self.maybe("alt \"text\" it's"),
                                       "blurhash": self.maybe("LKO2?U%2Tw=w]~RBVZRi};RPxuwH"),
                                       "width": self.maybe(self.r.randrange(4000)), "height": self.maybe(2**53 + 7),
                                       "created_at": self.ts(), "focus_x": self.maybe(self.real()),
                                       "focus_y": self.maybe(self.real())})

    def one_per_status(self, table, sid):
        k = self.key(table[:3])
        row = {"id": k, "status_id": sid, "created_at": self.ts()}
        if table == "reposts":
            row["uri"] = "https://ex.ample/r/%s" % k
        self.ins(table, row)

    def poll(self, sid):
        k = self.key("poll")
        self.ins("polls", {"id": k, "status_id": sid, "expires_at": self.ts(), "expired": self.r.randrange(2),
                           "multiple": self.r.randrange(2), "votes_count": self.r.randrange(100),
                           "voters_count": self.bigint(), "created_at": self.ts()})
        opts = []
        for i in range(self.r.randrange(2, 5)):
            o = self.key("opt")
            self.ins("poll_options", {"id": o, "poll_id": k, "title": "option '%d' \"%s\"" % (i, self.words(2)),
                                      "votes_count": self.r.randrange(50), "option_index": i})
            opts.append(o)
        for v in range(self.r.randrange(0, 5)):
            self.ins("poll_votes", {"id": self.key("vote"), "poll_id": k, "option_id": self.r.choice(opts),
                                    "voter_address": "voter%d@x" % v})
        return k

    def hashtag(self):
        k = self.key("tag")
        self.ins("hashtags", {"id": k, "name": "Tag%s%s" % (self.r.choice(WORDS), k.replace(" ", "")), "created_at": self.ts()})
        return k

    def fill(self, total):
        r, f = self.r, max(total / 3000.0, 0.02)

        def n(x):
            return max(2, int(x * f))
        accts = [self.account() for _ in range(n(10))]
        sts = [self.status() for _ in range(n(500))]
        # long statuses: several over 100 KB, one over 300 KB
        sts.append(self.status(self.html(330_000)))
        for _ in range(3):
            sts.append(self.status(self.html(r.randrange(101_000, 160_000))))
        for _ in range(n(300)):
            self.media(r.choice(sts))
        for t in ("favourites", "bookmarks", "reposts", "pinned_statuses"):
            for s in r.sample(sts, min(len(sts), n(100) if t != "pinned_statuses" else n(10))):
                self.one_per_status(t, s)
        for _ in range(n(100)):
            self.ins("status_edits", {"id": self.key("edit"), "status_id": r.choice(sts), "content": self.html(300),
                                      "content_warning": self.maybe("w"), "created_at": self.ts()})
        for t, col in (("follows", "target_address"), ("followers", "follower_address"),
                       ("account_blocks", "target_address"), ("account_mutes", "target_address"),
                       ("follow_requests", "requester_address")):
            cnt = n(150) if t in ("follows", "followers") else n(20)
            for i in range(cnt):
                k = self.key(t[:4])
                row = {"id": k, col: "%s@host%d.example" % (k, i % 7), "created_at": self.ts()}
                if t in ("follows", "followers", "follow_requests"):
                    row["uri"] = "https://x/%s" % k
                if t in ("followers", "follow_requests"):
                    row["inbox_uri"] = "https://x/inbox/%s" % k
                if t == "account_mutes":
                    row["duration"] = self.maybe(self.bigint())
                self.ins(t, row)
        for _ in range(n(200)):
            self.ins("notifications", {"id": self.key("notif"), "notification_type": r.choice(["mention", "follow"]),
                                       "origin_account_address": "o'%d@x" % r.randrange(99),
                                       "status_uri": self.maybe("https://x/s"), "read": r.randrange(2),
                                       "created_at": self.ts()})
        for _ in range(n(30)):
            self.ins("domain_blocks", {"id": self.key("dom"), "domain": "bad%d.example" % self.n})
        for i in range(n(10)):
            self.ins("settings", {"key": "setting'%d" % i, "value": self.html(50)})
        apps = []
        for _ in range(n(10)):
            k = self.key("app")
            apps.append(k)
            self.ins("oauth_apps", {"id": k, "name": "App \"%s\"" % k, "website": self.maybe("https://a"),
                                    "redirect_uri": "urn:ietf:wg:oauth:2.0:oob", "client_id": "cid-" + k,
                                    "client_secret": "sec-" + k, "scopes": "read write", "created_at": self.ts()})
        for _ in range(n(40)):
            k = self.key("tok")
            self.ins("oauth_tokens", {"id": k, "app_id": r.choice(apps), "access_token": "at-" + k, "scopes": "read",
                                      "created_at": self.ts(), "revoked": r.randrange(2),
                                      "grant_type": r.choice(["client_credentials", "authorization_code"]),
                                      "expires_at": self.maybe(self.ts())})
        for _ in range(n(20)):
            k = self.key("code")
            self.ins("oauth_authorization_codes", {"id": k, "app_id": r.choice(apps), "code": "c-" + k,
                                                   "redirect_uri": "https://cb", "scopes": "read",
                                                   "created_at": self.ts(), "expires_at": self.ts()})
        lists = []
        for _ in range(n(10)):
            k = self.key("list")
            lists.append(k)
            self.ins("lists", {"id": k, "title": "List '%s'" % k, "replies_policy": "list"})
        for lst in lists:
            for i in range(n(10)):
                self.ins("list_accounts", {"id": self.key("la"), "list_id": lst, "account_address": "m%d@x" % i})
        for _ in range(n(10)):
            k = self.key("filt")
            self.ins("filters", {"id": k, "phrase": "phrase \"%s\"" % k, "context": '["home","public"]',
                                 "expires_at": self.maybe(self.ts())})
            for _ in range(3):
                self.ins("filter_keywords", {"id": self.key("kw"), "filter_id": k, "keyword": self.words(1)})
        for s in r.sample(sts, min(len(sts), n(40))):
            self.poll(s)
        for _ in range(n(20)):
            self.ins("scheduled_statuses", {"id": self.key("sch"), "scheduled_at": self.ts(),
                                            "status_text": self.html(100), "media_ids": self.maybe('["a","b"]'),
                                            "poll_options": self.maybe('["x"]'), "poll_expires_in": self.maybe(self.bigint())})
        for _ in range(n(30)):
            k = self.key("conv")
            self.ins("conversations", {"id": k, "last_status_id": self.maybe(r.choice(sts)), "unread": r.randrange(2)})
            for i in range(r.randrange(1, 4)):
                self.ins("conversation_participants", {"id": self.key("cp"), "conversation_id": k,
                                                       "account_address": "p%d@x" % i})
            for s in r.sample(sts, 2):
                self.ins("conversation_statuses", {"id": self.key("cs"), "conversation_id": k, "status_id": s})
        tags = [self.hashtag() for _ in range(n(50))]
        for s in r.sample(sts, min(len(sts), n(150))):
            for t in r.sample(tags, r.randrange(1, 3)):
                self.ins("status_hashtags", {"id": self.key("sh"), "status_id": s, "hashtag_id": t})
        for _ in range(n(30)):
            self.ins("idempotency_keys", {"endpoint": "/api/v1/statuses", "key": self.key("idem"),
                                          "response_json": self.maybe('{"id":"%d","t":"it\'s"}' % self.n)})
        for _ in range(n(20)):
            self.ins("muted_conversations", {"id": self.key("mc"), "thread_uri": "https://x/t/%d" % self.n})

    # -- application-style changes --
    def swap(self, table, col, where="1"):
        """Swap a UNIQUE column's values between two rows (through a temporary value)."""
        ids = self.ids(table, where)
        if len(ids) < 2:
            return
        a, b = self.r.sample(ids, 2)
        va = self.c.execute("SELECT %s FROM %s WHERE id=?" % (col, table), (a,)).fetchone()[0]
        vb = self.c.execute("SELECT %s FROM %s WHERE id=?" % (col, table), (b,)).fetchone()[0]
        self.c.execute("UPDATE %s SET %s = '#tmp' WHERE id=?" % (table, col), (a,))
        self.c.execute("UPDATE %s SET %s = ? WHERE id=?" % (table, col), (va, b))
        self.c.execute("UPDATE %s SET %s = ? WHERE id=?" % (table, col), (vb, a))
        self.log.append("swap %s.%s %r<->%r" % (table, col, a, b))

    def op_insert_status_tree(self):
        s = self.status()
        self.media(s)
        self.poll(s)
        self.one_per_status(self.r.choice(["favourites", "bookmarks", "reposts"]), s)
        self.log.append("insert status %r with children" % s)

    def op_delete_status_cascade(self):
        # a status with as many children as possible
        s = self.c.execute("SELECT s.id FROM statuses s ORDER BY (SELECT count(*) FROM media_attachments m "
                           "WHERE m.status_id = s.id) + (SELECT count(*) FROM polls p WHERE p.status_id = s.id) "
                           "+ (SELECT count(*) FROM status_hashtags h WHERE h.status_id = s.id) DESC, s.id "
                           "LIMIT 5").fetchall()
        if s:
            s = self.r.choice(s)
            self.c.execute("DELETE FROM statuses WHERE id=?", s)
            self.log.append("delete status %r (cascade)" % s)

    def op_reparent_then_delete(self):
        old, new = self.r.sample(self.ids("statuses"), 2)
        self.c.execute("UPDATE media_attachments SET status_id=? WHERE status_id=?", (new, old))
        self.c.execute("UPDATE polls SET status_id=? WHERE status_id=?", (new, old))
        self.c.execute("UPDATE status_edits SET status_id=? WHERE status_id=?", (new, old))
        self.c.execute("UPDATE OR IGNORE status_hashtags SET status_id=? WHERE status_id=?", (new, old))
        self.c.execute("DELETE FROM statuses WHERE id=?", (old,))
        self.log.append("reparent children of %r to %r, delete %r" % (old, new, old))

    def op_move_poll_option_then_delete_poll(self):
        polls = self.ids("polls")
        if len(polls) < 2:
            return
        a, b = self.r.sample(polls, 2)
        o = self.c.execute("SELECT id FROM poll_options WHERE poll_id=? LIMIT 1", (a,)).fetchone()
        if o:
            self.c.execute("UPDATE poll_options SET poll_id=?, option_index=option_index+100 WHERE id=?", (b, o[0]))
        self.c.execute("DELETE FROM polls WHERE id=?", (a,))  # votes of the moved option go with poll a
        self.log.append("move option %r from poll %r to %r, delete poll %r" % (o, a, b, a))

    def op_delete_parents(self):
        for t in ("conversations", "lists", "oauth_apps", "hashtags", "filters"):
            k = self.pick(t)
            if k:
                self.c.execute("DELETE FROM %s WHERE id=?" % t, (k,))
                self.log.append("delete %s %r (cascade)" % (t, k))

    def op_swaps(self):
        self.swap("account", "username")
        self.swap("follows", "target_address")
        self.swap("followers", "follower_address")
        self.swap("oauth_tokens", "access_token")
        self.swap("oauth_apps", "client_id")
        self.swap("statuses", "uri")
        self.swap("favourites", "status_id")
        self.swap("pinned_statuses", "status_id")

    def op_merge_apps(self):
        # two OAuth apps merged: the tokens of one move to the other, two of them trade their access
        # tokens (UNIQUE) on the way, and the emptied app is deleted
        apps = self.ids("oauth_apps")
        if len(apps) < 2:
            return
        old, new = self.r.sample(apps, 2)
        toks = self.c.execute("SELECT id, access_token FROM oauth_tokens WHERE app_id=? ORDER BY id", (old,)).fetchall()
        self.c.execute("UPDATE oauth_tokens SET app_id=? WHERE app_id=?", (new, old))
        self.c.execute("UPDATE oauth_authorization_codes SET app_id=? WHERE app_id=?", (new, old))
        if len(toks) >= 2:
            (i1, v1), (i2, v2) = toks[0], toks[1]
            self.c.execute("UPDATE oauth_tokens SET access_token='#tmp' WHERE id=?", (i1,))
            self.c.execute("UPDATE oauth_tokens SET access_token=? WHERE id=?", (v1, i2))
            self.c.execute("UPDATE oauth_tokens SET access_token=? WHERE id=?", (v2, i1))
        self.c.execute("DELETE FROM oauth_apps WHERE id=?", (old,))
        self.log.append("merge app %r into %r (%d tokens, two trading access tokens)" % (old, new, len(toks)))

    def op_hashtag_case(self):
        # NOCASE UNIQUE: change the case of a name; swap two names changing case on the way
        k = self.pick("hashtags")
        if k:
            self.c.execute("UPDATE hashtags SET name = upper(name) WHERE id=?", (k,))
            self.log.append("hashtag %r upper-cased" % k)
        ids = self.ids("hashtags")
        if len(ids) >= 2:
            a, b = self.r.sample(ids, 2)
            na = self.c.execute("SELECT name FROM hashtags WHERE id=?", (a,)).fetchone()[0]
            nb = self.c.execute("SELECT name FROM hashtags WHERE id=?", (b,)).fetchone()[0]
            self.c.execute("UPDATE hashtags SET name='#tmp' WHERE id=?", (a,))
            self.c.execute("UPDATE hashtags SET name=? WHERE id=?", (na.lower(), b))
            self.c.execute("UPDATE hashtags SET name=? WHERE id=?", (nb.swapcase(), a))
            self.log.append("hashtag names swapped with case change %r %r" % (a, b))

    def op_list_rotate(self):
        # rotate members of one list under UNIQUE(list_id, account_address), and move one to another list
        lst = self.pick("lists")
        if not lst:
            return
        rows = self.c.execute("SELECT id, account_address FROM list_accounts WHERE list_id=? ORDER BY id",
                              (lst,)).fetchall()
        if len(rows) >= 3:
            ids = [x[0] for x in rows]
            vals = [x[1] for x in rows]
            for i in ids:
                self.c.execute("UPDATE list_accounts SET account_address = '#' || id WHERE id=?", (i,))
            for i, v in zip(ids, vals[1:] + vals[:1]):
                self.c.execute("UPDATE list_accounts SET account_address=? WHERE id=?", (v, i))
            self.log.append("rotate members of list %r" % lst)
        other = self.pick("lists", "id <> '%s'" % lst.replace("'", "''"))
        if other and rows:
            self.c.execute("UPDATE OR IGNORE list_accounts SET list_id=? WHERE id=?", (other, rows[0][0]))
            self.c.execute("DELETE FROM lists WHERE id=?", (lst,))
            self.log.append("move member %r to list %r, delete list %r" % (rows[0][0], other, lst))
        # conversation participants: rotate under UNIQUE(conversation_id, account_address)
        conv = self.c.execute("SELECT conversation_id FROM conversation_participants GROUP BY 1 "
                              "HAVING count(*) >= 2 ORDER BY 1").fetchall()
        if conv:
            conv = self.r.choice(conv)
            rows = self.c.execute("SELECT id, account_address FROM conversation_participants WHERE conversation_id=?",
                                  conv).fetchall()
            (i1, v1), (i2, v2) = rows[0], rows[1]
            self.c.execute("UPDATE conversation_participants SET account_address='#t' WHERE id=?", (i1,))
            self.c.execute("UPDATE conversation_participants SET account_address=? WHERE id=?", (v1, i2))
            self.c.execute("UPDATE conversation_participants SET account_address=? WHERE id=?", (v2, i1))

    def op_key_reuse(self):
        # a status deleted (cascading) and another inserted with the same id: new rowid, new content
        s = self.pick("statuses")
        if s:
            self.c.execute("DELETE FROM statuses WHERE id=?", (s,))
            self.status(sid=s)
            self.media(s)
            self.log.append("status %r deleted and re-inserted" % s)
        # the newest rowid deleted and the rowid taken by another id
        row = self.c.execute("SELECT id, rowid FROM statuses ORDER BY rowid DESC LIMIT 1").fetchone()
        if row:
            self.c.execute("DELETE FROM statuses WHERE id=?", (row[0],))
            k = self.status()
            self.one_per_status("bookmarks", k)
            self.log.append("rowid %d of %r reused by %r" % (row[1], row[0], k))
        # hashtag id reused with another name, the old name reused by another id
        t = self.pick("hashtags")
        if t:
            name = self.c.execute("SELECT name FROM hashtags WHERE id=?", (t,)).fetchone()[0]
            self.c.execute("DELETE FROM hashtags WHERE id=?", (t,))
            self.ins("hashtags", {"id": t, "name": "Reused" + self.key("n"), "created_at": self.ts()})
            self.ins("hashtags", {"id": self.key("tag"), "name": name.upper(), "created_at": self.ts()})
            self.log.append("hashtag %r reused" % t)

    def op_pk_change(self):
        # primary key changes of rows without children (ON UPDATE is NO ACTION in this schema)
        s = self.c.execute("SELECT id FROM statuses s WHERE NOT EXISTS (SELECT 1 FROM media_attachments WHERE "
                           "status_id=s.id) AND NOT EXISTS (SELECT 1 FROM polls WHERE status_id=s.id) AND NOT EXISTS "
                           "(SELECT 1 FROM favourites WHERE status_id=s.id) AND NOT EXISTS (SELECT 1 FROM bookmarks "
                           "WHERE status_id=s.id) AND NOT EXISTS (SELECT 1 FROM reposts WHERE status_id=s.id) AND "
                           "NOT EXISTS (SELECT 1 FROM status_hashtags WHERE status_id=s.id) AND NOT EXISTS (SELECT 1 "
                           "FROM conversation_statuses WHERE status_id=s.id) AND NOT EXISTS (SELECT 1 FROM "
                           "status_edits WHERE status_id=s.id) AND NOT EXISTS (SELECT 1 FROM pinned_statuses WHERE "
                           "status_id=s.id) ORDER BY id").fetchall()
        if s:
            s = self.r.choice(s)
            k = self.key("moved")
            self.c.execute("UPDATE statuses SET id=? WHERE id=?", (k, s[0]))
            self.log.append("status key %r -> %r" % (s[0], k))
        self.c.execute("UPDATE settings SET key = key || '+' WHERE key = (SELECT min(key) FROM settings)")

    def op_grow_shrink(self):
        big = self.c.execute("SELECT id FROM statuses WHERE length(content) > 100000 ORDER BY id").fetchall()
        if big:
            big = self.r.choice(big)
            self.c.execute("UPDATE statuses SET content = ? WHERE id=?", (self.html(40), big[0]))
            self.log.append("shrink %r" % big)
        small = self.c.execute("SELECT id FROM statuses WHERE length(content) < 1000 ORDER BY id").fetchall()
        small = self.r.sample(small, min(2, len(small)))
        for i, s in enumerate(small):
            self.c.execute("UPDATE statuses SET content = content || ? WHERE id=?",
                           (self.html(101_000 if i == 0 else 3_000), s[0]))
            self.log.append("grow %r" % s)
        self.c.execute("UPDATE media_attachments SET file_size = ?, focus_x = ?, description = NULL WHERE id = ?",
                       (self.bigint(), self.real(), self.pick("media_attachments")))

    def op_small(self):
        r = self.r
        for _ in range(r.randrange(5, 20)):
            k = r.randrange(8)
            if k == 0:
                self.c.execute("UPDATE statuses SET content=?, content_warning=NULL WHERE id=?",
                               (self.content(), self.pick("statuses")))
            elif k == 1:
                self.c.execute("UPDATE notifications SET read = 1 - read WHERE id=?", (self.pick("notifications"),))
            elif k == 2:
                self.ins("idempotency_keys", {"endpoint": "/e", "key": self.key("idem"), "response_json": None,
                                              "created_at": r.choice(["2000-01-01 00:00:00", "2999-01-01 00:00:00"])})
            elif k == 3:
                self.c.execute("DELETE FROM followers WHERE id=?", (self.pick("followers"),))
                self.ins("followers", {"id": self.key("foll"), "follower_address": "new%d@x" % self.n,
                                       "inbox_uri": "i", "uri": "u"})
            elif k == 4:
                s = self.pick("statuses")
                t = self.pick("hashtags")
                if s and t:
                    self.c.execute("INSERT OR IGNORE INTO status_hashtags(id, status_id, hashtag_id) VALUES(?,?,?)",
                                   (self.key("sh"), s, t))
            elif k == 5:
                self.c.execute("UPDATE account SET display_name=?, note=NULL WHERE id=?",
                               (self.maybe("D'isplay \"x\""), self.pick("account")))
            elif k == 6:
                self.c.execute("UPDATE oauth_tokens SET revoked=1, expires_at=? WHERE id=?", (self.ts(), self.pick("oauth_tokens")))
            else:
                self.status()
        self.log.append("small changes")

    OPS = ["op_insert_status_tree", "op_delete_status_cascade", "op_reparent_then_delete",
           "op_move_poll_option_then_delete_poll", "op_delete_parents", "op_swaps", "op_hashtag_case",
           "op_list_rotate", "op_key_reuse", "op_pk_change", "op_grow_shrink", "op_small", "op_merge_apps"]

    def round(self):
        self.log = []
        # the application's transaction: foreign keys checked at its end (swaps of referencing columns)
        self.c.execute("BEGIN")
        self.c.execute("PRAGMA defer_foreign_keys = ON")
        ops = list(self.OPS) + [self.r.choice(self.OPS) for _ in range(6)]
        self.r.shuffle(ops)
        for i, op in enumerate(ops):
            # each change in a savepoint: one the schema's constraints refuse is rolled back, as the
            # application would see it fail
            self.c.execute("SAVEPOINT op%d" % i)
            try:
                getattr(self, op)()
            except sqlite3.IntegrityError as e:
                self.c.execute("ROLLBACK TO op%d" % i)
                self.log.append("%s refused (%s), rolled back" % (op, e))
            self.c.execute("RELEASE op%d" % i)


# ---- harness ----------------------------------------------------------------

def d1_state(proj):
    files = [f for f in glob.glob(os.path.join(proj, ".wrangler", "state", "v3", "d1", "*", "*.sqlite"))
             if "metadata" not in os.path.basename(f)]
    return files[0] if files else None


def fts_integrity(path, tmp):
    """'integrity-check' of statuses_fts on a copy of `path` (with its -wal, if any)."""
    cp = os.path.join(tmp, "ic.db")
    copy_db(path, cp)
    c = sqlite3.connect(cp)
    try:
        c.execute("INSERT INTO statuses_fts(statuses_fts) VALUES('integrity-check')")
        n = c.execute("SELECT count(*) FROM statuses").fetchone()[0]
        m = c.execute("SELECT count(*) FROM statuses_fts_docsize").fetchone()[0]
        return "" if n == m else "statuses has %d rows, statuses_fts indexes %d" % (n, m)
    except sqlite3.DatabaseError as e:
        return "integrity-check: %s" % e
    finally:
        c.close()


def strip_comments(sql):
    """SQL text as wrangler's statement splitter leaves it: `--` comments become a newline,
    `/* */` comments go, quoted strings and names are kept (wrangler/src/d1/splitter.ts)."""
    out, i, n = [], 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            j = sql.find(ch, i + 1)
            j = n if j < 0 else j + 1
            out.append(sql[i:j])
            i = j
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            out.append("\n")
            i = n if j < 0 else j + 1
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
        else:
            out.append(ch)
            i += 1
    return "".join(out).strip()


def copy_db(src, dst):
    for sfx in ("", "-wal"):
        if os.path.exists(dst + sfx):
            os.remove(dst + sfx)
        if os.path.exists(src + sfx):
            shutil.copy(src + sfx, dst + sfx)


def normalized_d1(state, db, tmp):
    """A copy of the D1 file in which schema text that differs from the source's only by the
    comments wrangler strips is replaced by the source's text (so that dbcompare compares every
    row of those tables); returns (path, names replaced, names differing otherwise)."""
    cp = os.path.join(tmp, "d1norm.db")
    copy_db(state, cp)
    src = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    want = dict(src.execute("SELECT name, sql FROM sqlite_schema WHERE sql IS NOT NULL"))
    src.close()
    c = sqlite3.connect(cp)
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    fixed, other = [], []
    for name, sql in c.execute("SELECT name, sql FROM sqlite_schema WHERE sql IS NOT NULL").fetchall():
        if name in want and want[name] != sql:
            if strip_comments(want[name]) == strip_comments(sql):
                fixed.append(name)
            else:
                other.append(name)
    if fixed:
        c.execute("PRAGMA writable_schema = ON")
        for name in fixed:
            c.execute("UPDATE sqlite_schema SET sql = ? WHERE name = ?", (want[name], name))
        c.commit()
        c.execute("PRAGMA writable_schema = OFF")
    c.close()
    return cp, fixed, other


comment_only = set()


def compare(proj, db, tmp):
    state = d1_state(proj)
    if not state:
        return ["no D1 state file"]
    norm, fixed, _ = normalized_d1(state, db, tmp)
    comment_only.update(fixed)
    d = dbcompare.compare(norm, db, ignore=IGNORE, fts_queries=FTS_QUERIES)
    ic = fts_integrity(state, tmp)
    if ic:
        d.append("D1 file: " + ic)
    return d


def main():
    if not os.path.isdir(MIGRATIONS) or not glob.glob(os.path.join(MIGRATIONS, "*.sql")):
        print("SKIP d1_rustresort: RustResort migrations not found at %s" % os.path.normpath(MIGRATIONS))
        return 0
    if not os.path.exists(d1env.WRANGLER):
        print("SKIP d1_rustresort: wrangler not installed (%s)" % d1env.WRANGLER)
        return 0
    tmp = tempfile.mkdtemp(prefix="rs-rr-")
    keep = False
    try:
        ptmp = os.path.join(tmp, "tmp")
        os.makedirs(ptmp)
        proj = os.path.join(tmp, "proj")
        wcfg = d1env.wrangler_project(proj, "rrdb")
        db = os.path.join(tmp, "data", "rustresort.db")
        os.makedirs(os.path.dirname(db))
        snap = os.path.join(tmp, "state", "rr.snapshot.db")
        cfg = os.path.join(tmp, "resort-sync.toml")
        with open(cfg, "w") as f:
            f.write('[database]\npath = "%s"\n[database.sync]\nmode = "d1"\ninterval_seconds = 60\n'
                    '[database.sync.d1]\ndatabase = "rrdb"\nwrangler = "%s"\nwrangler_config = "%s"\n'
                    'snapshot_path = "%s"\n' % (db, d1env.WRANGLER, wcfg, snap))
        env = dict(os.environ, TMPDIR=ptmp, WRANGLER_SEND_METRICS="false")

        c = sqlite3.connect(db)
        c.execute("PRAGMA foreign_keys = ON")
        for m in sorted(glob.glob(os.path.join(MIGRATIONS, "*.sql"))):
            c.executescript(open(m).read())
        c.execute("PRAGMA foreign_keys = ON")
        data = Data(c, random.Random(SEED))
        data.fill(ROWS)
        c.commit()
        total = sum(c.execute("SELECT count(*) FROM %s" % t).fetchone()[0] for (t,) in c.execute(
            "SELECT name FROM sqlite_schema WHERE type='table' AND name NOT LIKE 'statuses_fts%'").fetchall())
        fk = c.execute("PRAGMA foreign_key_check").fetchall()
        c.close()
        ic = fts_integrity(db, tmp)
        report("source_built_from_%d_migrations_%d_rows" % (len(glob.glob(os.path.join(MIGRATIONS, "*.sql"))), total),
               not fk and not ic, "foreign_key_check %s %s" % (fk[:3], ic))

        def cycle(name):
            nonlocal keep
            prev = os.path.join(tmp, "prev.db")
            if os.path.exists(snap):
                shutil.copy(snap, prev)
            elif os.path.exists(prev):
                os.remove(prev)
            t0 = time.time()
            p = subprocess.run([RS, "-c", cfg, "sync"], capture_output=True, text=True, env=env, timeout=600)
            d = compare(proj, db, tmp) if p.returncode == 0 else ["sync exited %d: %s" % (p.returncode, p.stderr[-1500:])]
            why = "; ".join(d)[:1500]
            if d:
                keep = True
                fdir = tempfile.mkdtemp(prefix="rs-rr-fail-%s-" % name)
                shutil.copy(db, os.path.join(fdir, "source.db"))
                if os.path.exists(prev):
                    shutil.copy(prev, os.path.join(fdir, "snapshot_before.db"))
                    q = subprocess.run([RS, "diff", prev, db], capture_output=True)
                    open(os.path.join(fdir, "diff.sql"), "wb").write(q.stdout + q.stderr)
                else:
                    q = subprocess.run([RS, "dump", db], capture_output=True)
                    open(os.path.join(fdir, "dump.sql"), "wb").write(q.stdout + q.stderr)
                st = d1_state(proj)
                if st:
                    copy_db(st, os.path.join(fdir, "d1.sqlite"))
                open(os.path.join(fdir, "log.txt"), "w").write("seed %d\n%s\nstdout:\n%s\nstderr:\n%s\nround:\n%s\n"
                                                                % (SEED, why, p.stdout, p.stderr, "\n".join(data.log)))
                why += " [kept in %s]" % fdir
            report(name, not d, why)
            print("  %s: %.1fs, %s" % (name, time.time() - t0, p.stdout.strip().replace("\n", " | ")[:200]))
            return p

        cycle("full_load_equals_source")
        for rnd in range(ROUNDS):
            c = sqlite3.connect(db)
            c.execute("PRAGMA foreign_keys = ON")
            data.c = c
            data.round()
            c.commit()
            fk = c.execute("PRAGMA foreign_key_check").fetchall()
            c.close()
            if fk:
                report("round_%d_source_foreign_keys" % (rnd + 1), False, str(fk[:3]))
            cycle("round_%d_%s" % (rnd + 1, "diff_equals_source"))

        # The snapshot lost: the next sync is a full load over a D1 that holds everything already.
        gone = [f for f in glob.glob(snap + "*") if not f.endswith(".lock")]
        for f in gone:
            os.remove(f)
        p = cycle("full_load_over_filled_d1_equals_source")
        report("full_load_over_filled_d1_was_full", "full" in p.stdout, "stdout %r" % p.stdout[-300:])
        # and one more round after it, diffed against the new snapshot
        c = sqlite3.connect(db)
        c.execute("PRAGMA foreign_keys = ON")
        data.c = c
        data.round()
        c.commit()
        c.close()
        cycle("round_after_reload_diff_equals_source")
        # wrangler's statement splitter drops SQL comments, so D1 stores the DDL of tables declared
        # with comments without them; the comparisons above take that (and only that) as equal.
        if comment_only:
            print("NOTE d1_rustresort: D1 keeps the DDL of %d objects without its SQL comments "
                  "(wrangler strips them): %s" % (len(comment_only), ", ".join(sorted(comment_only))))
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("  work directory kept: %s" % tmp)
    print("  total %.1fs" % (time.time() - started))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
