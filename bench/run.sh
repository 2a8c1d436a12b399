#!/usr/bin/env bash
# bench/run.sh [BUILD_DIR]: side-by-side benchmarks of resort-sync against
# sqldiff and `sqlite3 .dump` (see bench/README.md).
#
#   BUILD_DIR          where resort-sync was built (default: build)
#   BENCH_RUNS=5       timed runs per command (median reported)
#   BENCH_QUICK=1      ~1/20 scale databases: a smoke run, seconds not minutes
#   BENCH_SCALE=6.4    another size (6.4: a 2 GB old.db; subdir scale6.4/)
#   BENCH_DIR=...      scratch dir for generated databases (reused across runs;
#                      default /tmp/resort-sync-bench, subdirs full/ and quick/)
#   BENCH_CHECK_DUMP=0 skip the untimed dump round trip (~2 min at full size)
#   BENCH_CHECK_SQLDIFF=1  also check sqldiff's own round trip at full size
#                      (informational; always done in quick mode)
#   BENCH_OUT=...      markdown report (default bench/results/latest.md)
#   BENCH_BASELINE=BIN an earlier resort-sync build: its diff, diff --plain and
#                      dump timed against this build's in the same run
#
# Nothing here writes outside BENCH_DIR except the report.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
bin=$build/resort-sync
runs=${BENCH_RUNS:-5}
base=${BENCH_DIR:-/tmp/resort-sync-bench}
out=${BENCH_OUT:-$here/results/latest.md}

if [[ -n ${BENCH_SCALE:-} ]]; then
	[[ $BENCH_SCALE =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "bench: BENCH_SCALE must be a number" >&2; exit 1; }
	mode=scale$BENCH_SCALE scale=$BENCH_SCALE
elif [[ ${BENCH_QUICK:-0} != 0 ]]; then
	mode=quick scale=0.05
else
	mode=full scale=1
fi
dir=$base/$mode

die() { echo "bench: $*" >&2; exit 1; }
[[ -x $bin ]] || die "$bin not found; build it first (make BUILD=${1:-build} all)"
for t in sqldiff sqlite3 python3; do
	command -v "$t" >/dev/null || die "$t not found (Debian: sqlite3 sqlite3-tools python3)"
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer"

echo "bench: $mode size, $runs runs, databases in $dir"
python3 "$here/gen.py" --out "$dir" --scale "$scale"

# ---- correctness checks: once, untimed --------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/resort-sync-bench-work.XXXXXX")
trap 'rm -rf "$work"' EXIT
checks=$work/checks.txt
: >"$checks"
fail=0

# Apply an SQL file to a database in one transaction: the project's test tool
# when it is built, else python's sqlite3 (same semantics for these files).
apply_sql() {
	local db=$1 file=$2
	if [[ -x $build/tools/apply_sql ]]; then
		"$build/tools/apply_sql" "$db" "$file"
	else
		python3 - "$db" "$file" <<-'EOF'
			import sqlite3, sys
			c = sqlite3.connect(sys.argv[1], isolation_level=None)
			c.executescript("BEGIN;\n" + open(sys.argv[2]).read() + "\nCOMMIT;")
		EOF
	fi
}
# apply_and_compare DB SQLFILE EXPECTED_DB [APPLIER]: apply, then dbcompare.
apply_and_compare() {
	local db=$1 file=$2 want=$3 how=${4:-apply_sql}
	if [[ $how == sqlite3 ]]; then
		sqlite3 "$db" <"$file" || return 1
	else
		apply_sql "$db" "$file" || return 1
	fi
	python3 "$root/tests/lib/dbcompare.py" "$db" "$want"
}
applier() { [[ -x $build/tools/apply_sql ]] && echo "tools/apply_sql" || echo "python sqlite3 executescript"; }

check() { # check [--info] DESCRIPTION COMMAND...  (--info: report, never fail)
	local info=0
	[[ $1 == --info ]] && { info=1; shift; }
	local what=$1; shift
	local t0=$SECONDS
	if "$@" >"$work/check.log" 2>&1; then
		echo "bench: ok   $what ($((SECONDS - t0)) s)"
		echo "ok: $what" >>"$checks"
	elif [[ $info == 1 ]]; then
		echo "bench: info $what: no (${info_why:-see log})"
		echo "no (informational, ${info_why:-}): $what" >>"$checks"
	else
		echo "bench: FAIL $what" >&2
		sed 's/^/    /' "$work/check.log" | cut -c1-300 | head -20 >&2
		echo "**FAILED**: $what" >>"$checks"
		fail=1
	fi
}

"$bin" diff "$dir/old.db" "$dir/new.db" >"$work/rs.sql"
"$bin" diff --plain "$dir/old.db" "$dir/new.db" >"$work/rs-plain.sql"
sqldiff "$dir/old.db" "$dir/new.db" >"$work/sqldiff.sql"
check "resort-sync diff (page comparison) and diff --plain (every row) print the same bytes" \
	cmp "$work/rs.sql" "$work/rs-plain.sql"
check "resort-sync diff is non-empty ($(wc -c <"$work/rs.sql") bytes)" test -s "$work/rs.sql"
check "sqldiff output is non-empty ($(wc -l <"$work/sqldiff.sql") statements)" test -s "$work/sqldiff.sql"

cp "$dir/old.db" "$work/copy.db"
check "resort-sync diff applied to a copy of old.db ($(applier)) equals new.db (tests/lib/dbcompare.py)" \
	apply_and_compare "$work/copy.db" "$work/rs.sql" "$dir/new.db"
cp "$dir/old.db" "$work/copy2.db"
# sqldiff 3.40 prints REAL values with 15 significant digits, so its output
# does not reproduce every double bit for bit; dbcompare compares exact bits.
# Reported, not a failure: it is the reference tool's limitation.  It does not
# depend on size, so by default it only runs in quick mode (a minute saved).
if [[ $mode == quick || ${BENCH_CHECK_SQLDIFF:-0} != 0 ]]; then
	cp "$dir/old.db" "$work/copy2.db"
	info_why="sqldiff rounds REAL values to 15 significant digits"
	check --info "sqldiff output applied to a copy of old.db equals new.db exactly" \
		apply_and_compare "$work/copy2.db" "$work/sqldiff.sql" "$dir/new.db" sqlite3
fi
rm -f "$work/copy.db" "$work/copy2.db"

if [[ ${BENCH_CHECK_DUMP:-1} != 0 ]]; then
	"$bin" dump "$dir/old.db" >"$work/dump.sql"
	check "resort-sync dump of old.db ($(wc -c <"$work/dump.sql") bytes) loaded into an empty database equals old.db" \
		apply_and_compare "$work/empty.db" "$work/dump.sql" "$dir/old.db"
	rm -f "$work/dump.sql" "$work/empty.db"
fi

# ---- timed part ---------------------------------------------------------------
head=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
eng=$(git -C "$root" log -1 --format=%h -- src/engine src/emit/sql.c src/emit/sql.h src/emit/real.c src/emit/real.h 2>/dev/null || echo unknown)
commit="HEAD $head; the measured code (src/engine, src/emit/sql.c, src/emit/real.c) last changed in $eng"
if [[ -n $(git -C "$root" status --porcelain -- src/engine src/emit/sql.c src/emit/sql.h src/emit/real.c src/emit/real.h 2>/dev/null) ]]; then
	commit="$commit (with uncommitted changes there)"
fi
commit="$commit; binary built $(date -u -r "$bin" '+%Y-%m-%d %H:%M UTC')"
python3 "$here/measure.py" --bin "$bin" --dir "$dir" --runs "$runs" --mode "$mode" \
	--out "$out" --checks "$checks" --commit "$commit" ${BENCH_BASELINE:+--baseline "$BENCH_BASELINE"}

# A whole D1 cycle's local work against the original strategy's (appends to the report).
if [[ -x $build/tools/apply_sql ]]; then
	python3 "$here/d1_cycle.py" --bin "$bin" --dir "$dir" --runs "$runs" --out "$out"
	if [[ -n ${BENCH_BASELINE:-} && -x $(dirname "$BENCH_BASELINE")/tools/apply_sql ]]; then
		python3 "$here/d1_cycle.py" --bin "$BENCH_BASELINE" --dir "$dir" --runs "$runs" --out "$out" \
			--label "baseline $BENCH_BASELINE"
	fi
else
	echo "bench: d1 cycle skipped: $build/tools/apply_sql not built (make BUILD=... all-tests)"
fi

if [[ $fail != 0 ]]; then
	die "a correctness check failed (see above and $out)"
fi
