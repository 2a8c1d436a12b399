#!/usr/bin/env bash
# config_check.sh: `resort-sync -c FILE check` end to end.
#
# Writes config files in RustResort's layout into a scratch directory and
# checks the exit status (0 fine, 1 environment problem, 2 configuration
# error), that errors are located (file:line:col), that the effective
# configuration is printed with the token redacted, layered files (-c
# repeated; RustResort's config/default.toml + config/local.toml without -c),
# and the precedence files < environment < -o, validated once after all of
# them.  Prints one PASS/FAIL line per case.
set -uo pipefail
ROOT=${ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${BUILD:-build}
RS_BIN=${RS_BIN:-$ROOT/$BUILD/resort-sync}
if [[ ! -x $RS_BIN ]]; then
  echo "SKIP config_check: $RS_BIN missing"
  exit 0
fi

WORK=$(mktemp -d /tmp/rs-config-e2e-XXXXXX)
trap '[[ -n ${KEEP:-} ]] || rm -rf "$WORK"' EXIT
cd "$WORK" || exit 1
# Nothing from the caller's environment may leak into the cases.
for v in $(env | sed -n 's/^\(RUSTRESORT__[^=]*\|rustresort__[^=]*\|TURSO_AUTH_TOKEN\)=.*/\1/p'); do
  unset "$v"
done

HEAD='# RustResort Configuration
[server]
host = "127.0.0.1"
port = 3000

[database]
path = "data/rustresort.db"

[auth]
session_secret = "change-this-to-a-random-secret-key"

[logging]
level = "info"
format = "pretty"
'

# run NAME WANT_STATUS ARGS...: run the binary, keep stdout/stderr in $out/$err.
out= err= status=
run() {
  local name=$1 want=$2
  shift 2
  out=$("$RS_BIN" "$@" 2>"$WORK/stderr")
  status=$?
  err=$(<"$WORK/stderr")
  if [[ $status -ne $want ]]; then
    echo "FAIL $name: exit $status, wanted $want; stderr: $(head -c 400 "$WORK/stderr")"
    return 1
  fi
  return 0
}
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }
has() { grep -qF -- "$2" <<<"$1"; }

mkdir -p data
: >data/rustresort.db   # empty databases (SQLite reads a 0-byte file as one)
: >data/rr.db
# The wrangler the tests pin (tools/package.json); fakes answer --version like it.
TESTED=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["dependencies"]["wrangler"])' \
  "$ROOT/tools/package.json")
fake_wrangler() { # fake_wrangler PATH VERSION
  mkdir -p "$(dirname "$1")"
  printf '#!/bin/sh\nif [ "$1" = --version ]; then echo " ⛅️ wrangler %s"; echo "---"; exit 0; fi\necho fake wrangler\n' "$2" >"$1"
  chmod 755 "$1"
}
fake_wrangler bin/wrangler "$TESTED"

# 1. RustResort's layout, mode none: valid, effective config printed.
printf '%s' "$HEAD" >none.toml
if run mode_none 0 -c none.toml check; then
  if has "$out" 'config ok' && has "$out" 'path = "data/rustresort.db"' && has "$out" 'mode = "none"'; then
    pass mode_none
  else fail mode_none "output lacks config ok or the effective config: $out"; fi
fi

# 2. A bad enum: exit 2, located error.
printf '%s\n[database.sync]\nmode = "d2"\n' "$HEAD" >bad_enum.toml
line=$(grep -n '^mode' bad_enum.toml | cut -d: -f1)
if run bad_enum 2 -c bad_enum.toml check; then
  want="bad_enum.toml:$line:8: database.sync.mode: expected one of none, turso, d1; got \"d2\""
  if has "$err" "$want"; then pass bad_enum; else fail bad_enum "wanted '$want' in: $err"; fi
fi

# 3. A TOML syntax error, and a float where we want an integer: exit 2, located.
printf '[database]\npath = "a.db"\ninterval = 1.5.2\n' >syntax.toml
if run syntax_error 2 -c syntax.toml check; then
  if has "$err" 'syntax.toml:3:15: invalid character '"'.'"' in a float'; then pass syntax_error
  else fail syntax_error "not located: $err"; fi
fi
printf '[database.sync]\ninterval_seconds = 1.5\n' >float.toml
if run float_for_integer 2 -c float.toml check; then
  if has "$err" 'float.toml:2:20: database.sync.interval_seconds: expected an integer; got a float'
  then pass float_for_integer; else fail float_for_integer "$err"; fi
fi

# 3b. The rest of TOML 1.0 in RustResort's other sections: accepted as it is.
printf '%s\n[server.tls]\nratio = 0.5\nrenewed = 2026-01-01T00:00:00Z\nlimits = { rps = 10 }\nmotd = """\nhello\n"""\n[[server.peers]]\nurl = "https://a"\n' \
  "$HEAD" >full.toml
if run full_toml 0 -c full.toml -o database.path="$WORK/data/rr.db" check; then
  if has "$out" 'config ok'; then pass full_toml; else fail full_toml "$out"; fi
fi

# 4. Mode d1 without the database key: exit 2, naming the key.
printf '%s\n[database.sync]\nmode = "d1"\n' "$HEAD" >d1_missing.toml
if run d1_missing_key 2 -c d1_missing.toml check; then
  if has "$err" 'database.sync.d1.database: required'; then pass d1_missing_key
  else fail d1_missing_key "$err"; fi
fi

# 5. Mode d1 with a wrangler that exists: exit 0.
printf '%s\n[database.sync]\nmode = "d1"\n\n[database.sync.d1]\ndatabase = "rr"\nwrangler = "%s"\n' \
  "$HEAD" "$WORK/bin/wrangler" >d1.toml
if run d1_ok 0 -c d1.toml check; then
  if has "$out" 'config ok'; then pass d1_ok; else fail d1_ok "$out"; fi
fi

# 6. wrangler found through PATH, and missing from PATH (exit 1, clear message).
printf '%s\n[database.sync]\nmode = "d1"\n\n[database.sync.d1]\ndatabase = "rr"\n' "$HEAD" >d1_path.toml
if PATH="$WORK/bin:$PATH" run d1_wrangler_in_path 0 -c d1_path.toml check; then pass d1_wrangler_in_path; fi
if PATH=/nonexistent run d1_wrangler_missing 1 -c d1_path.toml check; then
  if has "$err" 'wrangler "wrangler" not found in PATH'; then pass d1_wrangler_missing
  else fail d1_wrangler_missing "$err"; fi
fi

# 7. Turso: token redacted in the printed config.
printf '%s\n[database.sync]\nmode = "turso"\n\n[database.sync.turso]\nremote_url = "libsql://x.turso.io"\nauth_token = "very-secret-token"\n' \
  "$HEAD" >turso.toml
chmod 600 turso.toml
if run turso_redacted 0 -c turso.toml check; then
  if has "$out" 'auth_token = "<redacted>"' && ! has "$out$err" 'very-secret-token'; then pass turso_redacted
  else fail turso_redacted "token not redacted: $out"; fi
fi

# 8. Precedence: environment over file, -o over environment; env errors named.
if RUSTRESORT__DATABASE__SYNC__MODE=none run env_over_file 0 -c turso.toml check; then
  if has "$out" 'mode = "none"'; then pass env_over_file; else fail env_over_file "$out"; fi
fi
if RUSTRESORT__DATABASE__SYNC__MODE=none run cli_over_env 0 -c turso.toml -o database.sync.mode=turso check; then
  if has "$out" 'mode = "turso"'; then pass cli_over_env; else fail cli_over_env "$out"; fi
fi
if RUSTRESORT__DATABASE__SYNC__MODE=d9 run env_error 2 -c none.toml check; then
  if has "$err" 'environment RUSTRESORT__DATABASE__SYNC__MODE: database.sync.mode: expected one of none, turso, d1; got "d9"'
  then pass env_error; else fail env_error "$err"; fi
fi
if run cli_error 2 -c none.toml -o database.sync.interval_seconds=-1 check; then
  if has "$err" 'database.sync.interval_seconds: must not be negative'; then pass cli_error
  else fail cli_error "$err"; fi
fi

# 8b. Precedence is validated once, after every layer: the environment's mode
#     (turso, no remote_url anywhere) overridden by -o is not an error.
if RUSTRESORT__DATABASE__SYNC__MODE=turso run env_mode_overridden_by_cli 0 -c none.toml \
    -o database.path="$WORK/data/rr.db" -o database.sync.mode=d1 -o database.sync.d1.database=rr \
    -o database.sync.d1.wrangler="$WORK/bin/wrangler" check; then
  if has "$out" 'mode = "d1"'; then pass env_mode_overridden_by_cli; else fail env_mode_overridden_by_cli "$out"; fi
fi
# ... and a key the file's mode needs may come from the environment or -o
printf '[database]\npath = "%s"\n[database.sync]\nmode = "d1"\n[database.sync.d1]\nwrangler = "%s"\n' \
  "$WORK/data/rr.db" "$WORK/bin/wrangler" >d1_nodb.toml
if RUSTRESORT__DATABASE__SYNC__D1__DATABASE=rr run required_key_from_env 0 -c d1_nodb.toml check; then
  pass required_key_from_env
fi
if run required_key_from_cli 0 -c d1_nodb.toml -o database.sync.d1.database=rr check; then
  pass required_key_from_cli
fi

# 8c. Layered files: -c repeated, later files win key by key; both are listed.
printf '[database]\npath = "%s"\n[database.sync]\nmode = "none"\ninterval_seconds = 42\n' "$WORK/data/rr.db" >layer1.toml
printf '[database.sync]\nmode = "d1"\n[database.sync.d1]\ndatabase = "rr"\nwrangler = "%s"\n' "$WORK/bin/wrangler" >layer2.toml
if run layered_files 0 -c layer1.toml -c layer2.toml check; then
  if has "$out" 'mode = "d1"' && has "$out" 'interval_seconds = 42' &&
     has "$out" "$(printf '# file: "layer1.toml"\n# file: "layer2.toml"')"; then pass layered_files
  else fail layered_files "$out"; fi
fi
if run layered_order_matters 0 -c layer2.toml -c layer1.toml check; then
  if has "$out" 'mode = "none"'; then pass layered_order_matters; else fail layered_order_matters "$out"; fi
fi
if run layered_missing_file 2 -c layer1.toml -c nowhere.toml check; then
  if has "$err" 'nowhere.toml: cannot open'; then pass layered_missing_file; else fail layered_missing_file "$err"; fi
fi
# 8d. Without -c and without resort-sync.toml: RustResort's config/default.toml
#     then config/local.toml, each when present (as RustResort itself reads them).
mkdir -p rr/config rr/data
: >rr/data/rustresort.db
printf '%s' "$HEAD" >rr/config/default.toml
if (cd rr && run rustresort_default_only 0 check); then
  # (output captured first: grep -q closing the pipe early would make check die of SIGPIPE)
  rr_out=$(cd rr && "$RS_BIN" check 2>/dev/null)
  if has "$rr_out" '# file: "config/default.toml"'; then pass rustresort_default_only
  else fail rustresort_default_only "config/default.toml not read"; fi
fi
printf '[database.sync]\ninterval_seconds = 77\n' >rr/config/local.toml
out=$(cd rr && "$RS_BIN" check 2>&1)
if has "$out" 'interval_seconds = 77' && has "$out" "$(printf '# file: "config/default.toml"\n# file: "config/local.toml"')"; then
  pass rustresort_local_over_default
else fail rustresort_local_over_default "$out"; fi
# RustResort's real files, when they are at hand
FIX=
for d in "$ROOT/../shared/fixtures/rustresort" "$ROOT/../../shared/fixtures/rustresort"; do
  [[ -f $d/default.toml ]] && { FIX=$d; break; }
done
if [[ -z $FIX ]]; then
  echo "SKIP rustresort_fixture_files: RustResort's config files are not at ../shared/fixtures/rustresort"
elif run rustresort_fixture_files 0 -c "$FIX/default.toml" -c "$FIX/local.toml.example" \
    -o database.path="$WORK/rr/data/rustresort.db" check; then
  if has "$out" 'config ok' && ! has "$err" 'unknown configuration key'; then pass rustresort_fixture_files
  else fail rustresort_fixture_files "$out $err"; fi
fi

# 9. A missing -c file is a configuration error.
if run missing_file 2 -c nowhere.toml check; then
  if has "$err" 'nowhere.toml: cannot open'; then pass missing_file; else fail missing_file "$err"; fi
fi

# 10. The snapshot is the database through a symbolic link: exit 2.
: >data/real.db
ln -sf real.db data/link.db
printf '[database]\npath = "data/link.db"\n[database.sync]\nmode = "d1"\n[database.sync.d1]\ndatabase = "x"\nsnapshot_path = "data/real.db"\n' >same.toml
if run snapshot_is_db 2 -c same.toml check; then
  if has "$err" 'same.toml:7:17: database.sync.d1.snapshot_path:'; then pass snapshot_is_db
  else fail snapshot_is_db "$err"; fi
fi

# 11. The database cannot be created (its "directory" is a file; works as root too): exit 1.
printf '[database]\npath = "none.toml/rr.db"\n' >baddir.toml
if run db_dir_not_writable 1 -c baddir.toml check; then
  if has "$err" 'database none.toml/rr.db'; then pass db_dir_not_writable
  else fail db_dir_not_writable "$err"; fi
fi

# 12. Unknown key in our section: a located warning, still exit 0.
printf '%s\n[database.sync]\nmode = "none"\nintervall_seconds = 5\n' "$HEAD" >unknown.toml
line=$(grep -n '^intervall' unknown.toml | cut -d: -f1)
if run unknown_key_warns 0 -c unknown.toml check; then
  if has "$err" "key=database.sync.intervall_seconds where=unknown.toml:$line:1"; then pass unknown_key_warns
  else fail unknown_key_warns "$err"; fi
fi

# 14. The database: missing (exit 1, said plainly), its directory missing,
#     to be created by the migrations (a note, exit 0).
printf '[database]\npath = "data/absent.db"\n' >db_missing.toml
if run db_missing 1 -c db_missing.toml check; then
  if has "$err" 'database data/absent.db does not exist (database.path)' && ! has "$out" 'config ok'; then pass db_missing
  else fail db_missing "$err"; fi
fi
printf '[database]\npath = "nodir/sub/rr.db"\n' >db_nodir.toml
if run db_dir_missing 1 -c db_nodir.toml check; then
  if has "$err" 'database nodir/sub/rr.db does not exist, nor does its directory nodir/sub'; then pass db_dir_missing
  else fail db_dir_missing "$err"; fi
fi
mkdir -p migrations
printf '[database]\npath = "data/absent.db"\nmigrations_dir = "migrations"\n' >db_migrations.toml
if run db_created_by_migrations 0 -c db_migrations.toml check; then
  if has "$out" '# check: database data/absent.db does not exist yet: the migrations in migrations create it'
  then pass db_created_by_migrations; else fail db_created_by_migrations "$out"; fi
fi

# 15. The schema is loaded as sync loads it: a table sync refuses is named (exit 1).
python3 - "$WORK/data/contentless.db" "$WORK/data/fts.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.executescript("CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);"
                "CREATE VIRTUAL TABLE notes_idx USING fts5(body, content='');")
c.close()
c = sqlite3.connect(sys.argv[2])
c.executescript("CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);"
                "CREATE VIRTUAL TABLE notes_fts USING fts5(body);"
                "CREATE TABLE kv(k TEXT PRIMARY KEY, v) WITHOUT ROWID;")
c.close()
PY
printf '[database]\npath = "data/contentless.db"\n[database.sync]\nmode = "d1"\n[database.sync.d1]\ndatabase = "rr"\nwrangler = "%s"\n' \
  "$WORK/bin/wrangler" >schema_d1.toml
if run schema_refused_d1 1 -c schema_d1.toml check; then
  if has "$err" 'database data/contentless.db: table notes_idx (module fts5): a contentless FTS5 table' &&
     has "$err" '(sync refuses it)'; then pass schema_refused_d1
  else fail schema_refused_d1 "$err"; fi
fi
printf '[database]\npath = "data/fts.db"\n[database.sync]\nmode = "d1"\n[database.sync.d1]\ndatabase = "rr"\nwrangler = "%s"\n' \
  "$WORK/bin/wrangler" >schema_d1_ok.toml
if run schema_ok_d1 0 -c schema_d1_ok.toml check; then
  if has "$out" '# check: database data/fts.db: 3 tables, a schema the d1 sync accepts'; then pass schema_ok_d1
  else fail schema_ok_d1 "$out"; fi
fi
printf '[database]\npath = "data/fts.db"\n[database.sync]\nmode = "turso"\n[database.sync.turso]\nremote_url = "http://127.0.0.1:1"\n' >schema_turso.toml
if run schema_refused_turso 1 -c schema_turso.toml check; then
  if has "$err" 'table notes_fts: a full-text (FTS) virtual table cannot sync to Turso; list it in database.sync.turso.exclude_tables' &&
     has "$err" 'table kv: a WITHOUT ROWID table cannot sync to Turso'; then pass schema_refused_turso
  else fail schema_refused_turso "$err"; fi
fi
if run schema_turso_excluded 0 -c schema_turso.toml -o 'database.sync.turso.exclude_tables=notes_fts,kv' check; then
  if has "$out" '# check: database data/fts.db: 1 table, a schema the turso sync accepts'; then pass schema_turso_excluded
  else fail schema_turso_excluded "$out"; fi
fi

# 16. wrangler's version: the pinned one is the one check knows; older is a
#     problem, newer a note; a missing one says where it looked.
if run wrangler_version_pinned 0 -c d1.toml check; then
  if has "$out" "# check: wrangler $WORK/bin/wrangler: version $TESTED (the version tested with: $TESTED)"
  then pass wrangler_version_pinned
  else fail wrangler_version_pinned "check's tested version differs from tools/package.json ($TESTED): $out"; fi
fi
fake_wrangler old/wrangler 3.114.0
if run wrangler_older 1 -c d1.toml -o database.sync.d1.wrangler="$WORK/old/wrangler" check; then
  if has "$err" "wrangler $WORK/old/wrangler is version 3.114.0, older than $TESTED, the version resort-sync is tested with"
  then pass wrangler_older; else fail wrangler_older "$err"; fi
fi
fake_wrangler new/wrangler 99.0.1
if run wrangler_newer 0 -c d1.toml -o database.sync.d1.wrangler="$WORK/new/wrangler" check; then
  if has "$out" "version 99.0.1 (newer than the version tested with, $TESTED)"; then pass wrangler_newer
  else fail wrangler_newer "$out"; fi
fi
printf '#!/bin/sh\necho "something went wrong" >&2\nexit 3\n' >bin/broken
chmod 755 bin/broken
if run wrangler_broken 1 -c d1.toml -o database.sync.d1.wrangler="$WORK/bin/broken" check; then
  if has "$err" "wrangler $WORK/bin/broken --version failed (exit status 3): something went wrong"
  then pass wrangler_broken; else fail wrangler_broken "$err"; fi
fi
if PATH=/nonexistent:/also/not run wrangler_where_looked 1 -c d1_path.toml check; then
  if has "$err" 'not found in PATH (looked in /nonexistent:/also/not); install wrangler' && has "$err" "wrangler@$TESTED"
  then pass wrangler_where_looked; else fail wrangler_where_looked "$err"; fi
fi

# 13. Every command answers --help on standard output with its usage, exit 0,
#     without reading a config file.
bad=
for c in run sync diff dump check status verify; do
  if ! run "help_$c" 0 -c missing.toml "$c" --help || ! has "$out" "usage: resort-sync" || ! has "$out" "$c"; then
    bad="$bad $c"
  fi
done
if [[ -z $bad ]]; then pass every_command_answers_help
else fail every_command_answers_help "no usage on stdout for:$bad"; fi
exit 0
