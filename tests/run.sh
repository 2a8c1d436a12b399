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
#
# RS_TEST_JOBS=N runs N programs at once (default: one more than the number
# of CPUs, at most 4).  Every test works in directories of its own and on ports it asks
# the kernel for, so they do not meet; much of an end-to-end test's time is
# spent waiting on node, workerd or tursodb, which leaves a CPU to another.
# The slowest programs of the previous run start first (their times are
# kept in $BUILD/test-times), so that one long test does not finish alone.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${1:-build}
FILTER=${2:-}
export ROOT BUILD RS_BIN="$ROOT/$BUILD/resort-sync"
export PATH="$ROOT/tools/node_modules/.bin:$ROOT/tools/node_modules/@tursodatabase/cli-linux-x64-gnu:$PATH"
export WRANGLER_SEND_METRICS=false
logs=$BUILD/test-logs
times=$BUILD/test-times
rm -rf "$logs" && mkdir -p "$logs"
jobs=${RS_TEST_JOBS:-$(( $(nproc 2>/dev/null || echo 1) + 1 ))}
((jobs > 4)) && [[ -z ${RS_TEST_JOBS:-} ]] && jobs=4
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: RS_TEST_JOBS must be a positive integer" >&2; exit 2; }

progs=()
for t in "$BUILD"/tests/test_*; do [[ -x $t ]] && progs+=("$t"); done
for t in tests/e2e/*.sh tests/e2e/*.py; do [[ -f $t ]] && progs+=("$t"); done
sel=()
for t in "${progs[@]}"; do
  name=$(basename "$t")
  [[ -n $FILTER && $name != *$FILTER* ]] && continue
  sel+=("$t")
done
# Longest first, by the previous run's times (unknown ones count as long).
if [[ -f $times ]]; then
  mapfile -t sel < <(for t in "${sel[@]}"; do
    s=$(awk -v n="$(basename "$t")" '$1 == n { print $2 }' "$times"); echo "${s:-9999} $t"
  done | sort -s -k1,1nr | cut -d' ' -f2-)
fi

# One program: its log, then a result line "name pass fail skip seconds" in
# $logs/<name>.result (written last: its presence means the program ended).
run_one() {
  local t=$1 name log t0 rc p f s
  name=$(basename "$t") log=$logs/$name.log t0=$(date +%s)
  case $t in
    *.py) timeout 900 python3 "$t" >"$log" 2>&1 ;;
    *.sh) timeout 900 bash "$t" >"$log" 2>&1 ;;
    *)    timeout 900 "$t" >"$log" 2>&1 ;;
  esac
  rc=$?
  p=$(grep -c '^PASS ' "$log"); f=$(grep -c '^FAIL ' "$log"); s=$(grep -c '^SKIP ' "$log")
  if ((rc != 0 && f == 0)); then
    f=1; { echo "FAIL $name: exited $rc without a FAIL line (see $log)"; tail -n 15 "$log" | sed 's/^/    /'; } >"$logs/$name.extra"
  fi
  echo "$name $p $f $s $(( $(date +%s) - t0 ))" >"$logs/$name.result.tmp" && mv "$logs/$name.result.tmp" "$logs/$name.result"
}

report() {
  local t=$1 name p f s secs
  name=$(basename "$t")
  read -r _ p f s secs <"$logs/$name.result"
  [[ -f $logs/$name.extra ]] && cat "$logs/$name.extra"
  grep -E '^(FAIL|SKIP) ' "$logs/$name.log" | sed "s|^|$name: |"
  printf '%-28s %3d passed %3d failed %3d skipped  %3ds\n' "$name" "$p" "$f" "$s" "$secs"
  pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
}

pass=0 fail=0 skip=0
start=$(date +%s)
running=0
declare -A reported=()
for t in "${sel[@]}"; do
  while ((running >= jobs)); do
    wait -n 2>/dev/null
    running=$((running - 1))
  done
  run_one "$t" &
  running=$((running + 1))
  # Report what has ended so far, as it ends.
  for u in "${sel[@]}"; do
    n=$(basename "$u")
    [[ -z ${reported[$n]:-} && -f $logs/$n.result ]] && { report "$u"; reported[$n]=1; }
  done
done
wait
for u in "${sel[@]}"; do
  n=$(basename "$u")
  [[ -z ${reported[$n]:-} ]] && { report "$u"; reported[$n]=1; }
done
# Keep this run's times for the next one's order (merged with older ones).
{ cat "$logs"/*.result 2>/dev/null | awk '{ print $1, $5 }'
  if [[ -f $times ]]; then cat "$times"; fi; } | awk '!seen[$1]++' >"$times.tmp" && mv "$times.tmp" "$times"
echo "total time $(( $(date +%s) - start ))s ($jobs at a time)"
if ((skip)); then echo "$pass passed, $fail failed, $skip skipped"; else echo "$pass passed, $fail failed"; fi
((fail == 0))
