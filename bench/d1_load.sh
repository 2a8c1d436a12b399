#!/usr/bin/env bash
# bench/d1_load.sh [BUILD_DIR]: a first (full) load of a 50,000-row database
# (13 MB, bench/gen.py's small.db) into local D1 through wrangler, side by
# side in one run:
#
#   resort-sync sync          reset preamble + dump as multi-row statements,
#                             with the history record, in one wrangler call
#   the original's payload    reset preamble + `sqlite3 .dump` (one INSERT per
#                             row), applied with one `wrangler d1 execute --file`
#                             (the original also makes two more calls: table
#                             check and key check; not counted here)
#
# Each into a fresh local D1 state; one run each (the original takes about a
# minute).  Prints both times and the ratio.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
small=${BENCH_DIR:-/tmp/resort-sync-bench}/full/small.db
[[ -f $small ]] || { echo "d1_load: $small missing: run bench/run.sh first (it generates it)" >&2; exit 1; }
wrangler=$root/tools/node_modules/.bin/wrangler
export WRANGLER_SEND_METRICS=false
tmp=$(mktemp -d /tmp/rs-d1load-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

project() {
	mkdir -p "$1"
	printf 'name = "b"\n[[d1_databases]]\nbinding = "DB"\ndatabase_name = "bench"\ndatabase_id = "00000000-0000-0000-0000-000000000000"\n' >"$1/wrangler.toml"
}

project "$tmp/ours"
cp "$small" "$tmp/ours/app.db"
cat >"$tmp/ours/rs.toml" <<TOML
[database]
path = "$tmp/ours/app.db"
[database.sync]
mode = "d1"
[database.sync.d1]
database = "bench"
wrangler = "$wrangler"
wrangler_config = "$tmp/ours/wrangler.toml"
TOML
t0=$(date +%s.%N)
"$build/resort-sync" -q -c "$tmp/ours/rs.toml" sync >/dev/null
t1=$(date +%s.%N)
ours=$(python3 -c "print($t1 - $t0)")

project "$tmp/orig"
{
	sqlite3 "$small" "SELECT 'DROP TABLE IF EXISTS \"' || name || '\";' FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
	sqlite3 "$small" .dump
} >"$tmp/orig/payload.sql"
stmts=$(grep -c '^INSERT' "$tmp/orig/payload.sql")
t0=$(date +%s.%N)
(cd "$tmp/orig" && "$wrangler" d1 execute bench --local --file payload.sql --yes >/dev/null 2>&1)
t1=$(date +%s.%N)
orig=$(python3 -c "print($t1 - $t0)")
printf '| full load of small.db (%s INSERTs in the .dump) | resort-sync sync %.1f s | original payload %.1f s | ratio %.2f (resort-sync / original) |\n' \
	"$stmts" "$ours" "$orig" "$(python3 -c "print($ours / $orig)")"
