#!/usr/bin/env bash
# make demo: a sample database synced into Cloudflare's local D1, on local
# defaults, with no account.  Everything lives in ./demo (removed and made
# anew each run).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
RS=$PWD/$BUILD/resort-sync
DEMO=$PWD/demo
WRANGLER=$PWD/tools/node_modules/.bin/wrangler
export WRANGLER_SEND_METRICS=false
rm -rf "$DEMO" && mkdir -p "$DEMO/data" "$DEMO/d1"

cat > "$DEMO/d1/wrangler.toml" <<'TOML'
name = "resort-sync-demo"
[[d1_databases]]
binding = "DB"
database_name = "demo"
database_id = "00000000-0000-0000-0000-000000000000"
TOML

cat > "$DEMO/resort-sync.toml" <<TOML
# The same layout as RustResort's config/default.toml.
[database]
path = "$DEMO/data/app.db"

[database.sync]
mode = "d1"
interval_seconds = 300

[database.sync.d1]
database = "demo"
remote = false                       # true: the real D1 (needs CLOUDFLARE_API_TOKEN, CLOUDFLARE_ACCOUNT_ID)
wrangler = "$WRANGLER"
wrangler_config = "$DEMO/d1/wrangler.toml"
history_retention_count = 10000
TOML

python3 - "$DEMO/data/app.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.executescript("""
PRAGMA journal_mode = WAL;
CREATE TABLE accounts(id INTEGER PRIMARY KEY AUTOINCREMENT, username TEXT UNIQUE NOT NULL, display_name TEXT);
CREATE TABLE statuses(id TEXT PRIMARY KEY, account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
                      content TEXT NOT NULL, created_at TEXT NOT NULL) WITHOUT ROWID;
CREATE VIRTUAL TABLE statuses_fts USING fts5(content);
CREATE TABLE counters(name TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TRIGGER count_statuses AFTER INSERT ON statuses BEGIN
  INSERT INTO counters VALUES ('statuses', 1) ON CONFLICT(name) DO UPDATE SET n = n + 1; END;
CREATE VIEW timeline AS SELECT s.created_at, a.username, s.content FROM statuses s JOIN accounts a ON a.id = s.account_id;
""")
for i in range(1, 201):
    c.execute("INSERT INTO accounts(username, display_name) VALUES (?, ?)", ("user%d" % i, "User %d" % i))
for i in range(1, 2001):
    text = "post %d: it's a \"demo\" with pi=%r" % (i, 3.141592653589793 * i)
    c.execute("INSERT INTO statuses VALUES (?, ?, ?, ?)", ("s%05d" % i, 1 + i % 200, text, "2026-11-25T10:%02d:00Z" % (i % 60)))
    c.execute("INSERT INTO statuses_fts(rowid, content) VALUES (?, ?)", (i, text))
c.commit()
PY
echo "== sample database: $DEMO/data/app.db (200 accounts, 2000 statuses, FTS5, a trigger, a view)"
echo
echo "== resort-sync check"
"$RS" -c "$DEMO/resort-sync.toml" check | sed 's/^/   /'
echo
echo "== first sync: full load into local D1 (wrangler d1 execute --local)"
"$RS" -c "$DEMO/resort-sync.toml" sync
echo
python3 - "$DEMO/data/app.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("PRAGMA foreign_keys = ON")
c.execute("UPDATE accounts SET display_name = 'Renamed' WHERE id = 7")
c.execute("INSERT INTO statuses VALUES ('s99999', 7, 'a new post', '2026-11-25T11:00:00Z')")
c.execute("DELETE FROM accounts WHERE id = 200")  # cascades to its statuses
c.commit()
PY
echo "== three changes made locally (an update, an insert, a delete that cascades); the diff:"
"$RS" diff --format json "$DEMO/data/app.db.d1-sync-snapshot.db" "$DEMO/data/app.db" | cut -c1-150 | head -8
echo
echo "== second sync: only the difference"
"$RS" -c "$DEMO/resort-sync.toml" sync
echo
echo "== third sync: nothing changed, so no wrangler call"
"$RS" -c "$DEMO/resort-sync.toml" sync
echo
echo "== what local D1 holds now (through wrangler):"
(cd "$DEMO/d1" && "$WRANGLER" d1 execute demo --local --json --command \
  "SELECT (SELECT count(*) FROM accounts) AS accounts, (SELECT count(*) FROM statuses) AS statuses,
          (SELECT display_name FROM accounts WHERE id = 7) AS renamed,
          (SELECT count(*) FROM statuses_fts WHERE statuses_fts MATCH 'demo') AS fts_hits,
          (SELECT count(*) FROM _rustresort_sync_history) AS syncs" 2>/dev/null |
  python3 -c 'import json,sys; r=json.load(sys.stdin)[0]["results"][0]; print("   " + ", ".join("%s=%s" % kv for kv in r.items()))')
echo
"$RS" -c "$DEMO/resort-sync.toml" status | sed 's/^/   /'
cat <<TXT

== To point this at the real D1: create the database (wrangler d1 create NAME), put its
   name and id in wrangler.toml, set remote = true in resort-sync.toml, export
   CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID, and run: resort-sync -c resort-sync.toml run

TXT

# ---- Turso: the same database, two-way with a local tursodb sync server ----
TURSODB=$PWD/tools/node_modules/@tursodatabase/cli-linux-x64-gnu/tursodb
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$DEMO/turso"
cp "$DEMO/data/app.db" "$DEMO/turso/app.db"
"$TURSODB" --sync-server "127.0.0.1:$PORT" "$DEMO/turso/server.db" >"$DEMO/turso/server.log" 2>&1 &
SERVER=$!
trap 'kill -INT $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
cat > "$DEMO/turso/resort-sync.toml" <<TOML
[database]
path = "$DEMO/turso/app.db"
[database.sync]
mode = "turso"
interval_seconds = 300
[database.sync.turso]
remote_url = "http://127.0.0.1:$PORT"
# The server has no FTS module and refuses WITHOUT ROWID tables: they stay local.
exclude_tables = ["statuses_fts", "statuses"]
TOML
echo
echo "== Turso: a copy of the database, synced two-way with tursodb --sync-server on port $PORT"
"$RS" -c "$DEMO/turso/resort-sync.toml" sync
echo
echo "== the official client (@tursodatabase/sync) renames an account and pushes"
ROOT=$PWD node tests/e2e/turso_official.js exec "http://127.0.0.1:$PORT" "$DEMO/turso/official.db" \
  "UPDATE accounts SET display_name = 'Set by the official client' WHERE id = 1" | sed 's/^/   /'
echo "== resort-sync pulls it into the local file:"
"$RS" -c "$DEMO/turso/resort-sync.toml" sync
python3 -c 'import sqlite3,sys; print("   accounts[1].display_name = %r" % sqlite3.connect(sys.argv[1]).execute("SELECT display_name FROM accounts WHERE id = 1").fetchone()[0])' "$DEMO/turso/app.db"
"$RS" -c "$DEMO/turso/resort-sync.toml" status | sed 's/^/   /'
