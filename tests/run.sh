#!/usr/bin/env bash
# Run every test program and end-to-end test; count their PASS/FAIL/SKIP lines.
#
#   tests/run.sh [BUILD_DIR] [FILTER]
#
# Unit tests are $BUILD/tests/test_*; end-to-end tests are tests/e2e/*.sh and
# tests/e2e/*.py (run with BUILD, ROOT and PATH to the peers in the
# environment).  A program that exits non-zero without printing FAIL counts
# as one failure.  Output of each program goes to $BUILD/test-logs/<name>.log;
# failures and skips are echoed.  Last line: "N passed, N failed[, N skipped]".
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${1:-build}
FILTER=${2:-}
export ROOT BUILD RS_BIN="$ROOT/$BUILD/resort-sync"
export PATH="$ROOT/tools/node_modules/.bin:$ROOT/tools/node_modules/@tursodatabase/cli-linux-x64-gnu:$PATH"
export WRANGLER_SEND_METRICS=false
logs=$BUILD/test-logs
rm -rf "$logs" && mkdir -p "$logs"
pass=0 fail=0 skip=0
progs=()
for t in "$BUILD"/tests/test_*; do [[ -x $t ]] && progs+=("$t"); done
for t in tests/e2e/*.sh tests/e2e/*.py; do [[ -f $t ]] && progs+=("$t"); done
start=$(date +%s)
for t in "${progs[@]}"; do
  name=$(basename "$t")
  [[ -n $FILTER && $name != *$FILTER* ]] && continue
  log=$logs/$name.log
  t0=$(date +%s)
  case $t in
    *.py) timeout 900 python3 "$t" >"$log" 2>&1 ;;
    *.sh) timeout 900 bash "$t" >"$log" 2>&1 ;;
    *)    timeout 900 "$t" >"$log" 2>&1 ;;
  esac
  rc=$?
  p=$(grep -c '^PASS ' "$log"); f=$(grep -c '^FAIL ' "$log"); s=$(grep -c '^SKIP ' "$log")
  if ((rc != 0 && f == 0)); then
    f=1; echo "FAIL $name: exited $rc without a FAIL line (see $log)"; tail -n 15 "$log" | sed 's/^/    /'
  fi
  grep -E '^(FAIL|SKIP) ' "$log" | sed "s|^|$name: |"
  pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
  printf '%-28s %3d passed %3d failed %3d skipped  %3ds\n' "$name" "$p" "$f" "$s" $(( $(date +%s) - t0 ))
done
echo "total time $(( $(date +%s) - start ))s"
if ((skip)); then echo "$pass passed, $fail failed, $skip skipped"; else echo "$pass passed, $fail failed"; fi
((fail == 0))
