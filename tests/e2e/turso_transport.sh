#!/usr/bin/env bash
# turso_transport.sh: the Turso transport layer against a real local server.
#
# For every case: a fresh `tursodb --sync-server` on a free loopback port and
# a non-existent database file, seeded only through /v2/pipeline; the C tool
# $BUILD/tools/turso_transport runs the case; this script then checks the
# files it left (byte equality with cmp, PRAGMA integrity_check through
# python3's sqlite3, read-only) and stops the server with SIGINT.
# Also: a server started on an existing database (must be refused), an
# unreachable port, and interop with the official JS client.
set -uo pipefail
ROOT=${ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${BUILD:-build}
cd "$ROOT"
export PATH="$ROOT/tools/node_modules/.bin:$ROOT/tools/node_modules/@tursodatabase/cli-linux-x64-gnu:$PATH"
TOOL=$ROOT/$BUILD/tools/turso_transport
CASES="e2e_bootstrap e2e_incremental e2e_crash_recovery e2e_push_all_or_nothing e2e_watermark
       e2e_values_round_trip e2e_http_errors e2e_large_body e2e_revision_backwards
       e2e_main_file_server"

if ! command -v tursodb >/dev/null || [[ ! -x $TOOL ]]; then
  for c in $CASES e2e_unreachable e2e_interop; do echo "SKIP $c: tursodb or $TOOL missing"; done
  exit 0
fi

WORK=$(mktemp -d /tmp/rs-turso-e2e-XXXXXX)
SERVER_PID=
stop_server() {
  if [[ -n $SERVER_PID ]]; then
    kill -INT "$SERVER_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=
  fi
}
cleanup() { stop_server; [[ -n ${KEEP:-} ]] || rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# start_server DIR: sets URL; fails after 10 s without a listening port.
start_server() {
  local d=$1 port
  port=$(free_port)
  tursodb --sync-server "127.0.0.1:$port" "$d/server.db" >"$d/server.log" 2>&1 &
  SERVER_PID=$!
  URL=http://127.0.0.1:$port
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "server did not start:"; cat "$d/server.log"
  return 1
}

integrity() { # integrity FILE -> prints "ok" or the problems
  python3 - "$1" <<'EOF'
import sqlite3, sys
c = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
print(" ".join(r[0] for r in c.execute("PRAGMA integrity_check")))
c.close()
EOF
}

query() { # query FILE SQL -> first column of the first row
  python3 - "$1" "$2" <<'EOF'
import sqlite3, sys
c = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
r = c.execute(sys.argv[2]).fetchone()
print(r[0] if r else "")
c.close()
EOF
}

check() { # check NAME COMMAND...: PASS/FAIL line from the command's status
  local name=$1; shift
  if "$@" >/dev/null 2>&1; then echo "PASS $name"; else echo "FAIL $name: $*"; fi
}

check_eq() { # check_eq NAME GOT WANT
  if [[ $2 == "$3" ]]; then echo "PASS $1"; else echo "FAIL $1: got '$2', want '$3'"; fi
}

run_case() { # run_case CASE -> DIR in $D, server stopped afterwards
  D=$WORK/$1
  mkdir -p "$D"
  if [[ $1 == e2e_main_file_server ]]; then
    # The one case that must NOT start on a fresh file: data in the main file.
    python3 -c 'import sqlite3, sys
c = sqlite3.connect(sys.argv[1]); c.execute("CREATE TABLE x (a)")
c.executemany("INSERT INTO x VALUES (?)", [("y" * 500,)] * 50); c.commit()' "$D/server.db"
  fi
  if ! start_server "$D"; then echo "FAIL $1: server did not start"; stop_server; return 1; fi
  "$TOOL" "$1" "$URL" "$D" 2>"$D/tool.err"
  local rc=$?
  ((rc == 0)) || sed 's/^/    /' "$D/tool.err"
  return 0
}

for c in $CASES; do
  run_case "$c"
  case $c in
    e2e_bootstrap)
      check_eq bootstrap_integrity "$(integrity "$D/a.db")" ok
      check bootstrap_identical cmp "$D/a.db" "$D/b.db"
      check_eq bootstrap_rows "$(query "$D/a.db" 'SELECT count(*) FROM t')" 200
      check bootstrap_read_only_left_file_alone cmp "$D/a.db" "$D/b.db"
      check_eq bootstrap_empty_db "$(stat -c %s "$D/empty.db")" 0
      ;;
    e2e_incremental)
      check_eq incremental_integrity "$(integrity "$D/a.db")" ok
      check incremental_identical cmp "$D/a.db" "$D/c.db"
      check_eq incremental_rows "$(query "$D/a.db" 'SELECT count(*) FROM t')" 351
      ;;
    e2e_crash_recovery)
      check_eq crash_recovery_integrity "$(integrity "$D/a.db")" ok
      check crash_recovery_identical cmp "$D/a.db" "$D/b.db"
      ;;
  esac
  # The server must have stayed a sync server: its WAL never checkpointed.
  stop_server
done

# Unreachable: a port nobody listens on gives RS_ETRANSPORT quickly.
D=$WORK/unreachable; mkdir -p "$D"
PORT=$(free_port)
"$TOOL" e2e_unreachable "http://127.0.0.1:$PORT" "$D" 2>"$D/tool.err" ||
  sed 's/^/    /' "$D/tool.err"

# Interop with the official client (@tursodatabase/sync): it pushes, we pull; we write, it pulls.
if command -v node >/dev/null && [[ -d $ROOT/tools/node_modules/@tursodatabase/sync ]]; then
  D=$WORK/interop; mkdir -p "$D"
  if start_server "$D"; then
    "$TOOL" e2e_interop_seed "$URL" "$D" 2>"$D/tool.err" || sed 's/^/    /' "$D/tool.err"
    out=$(cd "$D" && timeout 60 node "$ROOT/tests/e2e/turso_interop.js" write "$URL" "$D/js.db" 2>&1)
    check_eq interop_js_push "$(tail -n1 <<<"$out")" "pushed"
    "$TOOL" e2e_interop_pull "$URL" "$D" 2>"$D/tool.err" || sed 's/^/    /' "$D/tool.err"
    check_eq interop_row_in_replica "$(query "$D/a.db" 'SELECT name || hex(data) FROM t WHERE id = 4242')" "from-jsBEEF"
    check_eq interop_js_watermark "$(query "$D/a.db" "SELECT count(*) FROM turso_sync_last_change_id WHERE client_id LIKE 'rs-interop-%'")" 1
    check_eq interop_replica_integrity "$(integrity "$D/a.db")" ok
    out=$(cd "$D" && timeout 60 node "$ROOT/tests/e2e/turso_interop.js" read "$URL" "$D/js.db" 2>&1)
    check_eq interop_js_pull_sees_our_row "$(tail -n1 <<<"$out")" "from-c cafe"
  else
    echo "FAIL interop: server did not start"
  fi
  stop_server
else
  echo "SKIP interop: node or @tursodatabase/sync missing"
fi
exit 0
