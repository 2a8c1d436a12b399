#!/usr/bin/env bash
# Build every libFuzzer target and run each for a bounded time.
#
#   scripts/fuzz.sh [SECONDS]        (default 30 seconds per target)
#
# Targets are tests/fuzz/fuzz_X.c (each defines LLVMFuzzerTestOneInput).
# The library is built by the Makefile with clang, AddressSanitizer, UBSan
# and fuzzer coverage into build-fuzz/; each target links against it.
# Seeds come from tests/fuzz/corpus/X/ (read only: inputs libFuzzer finds go
# to build-fuzz/corpus/X/); a crashing input is saved as
# build-fuzz/crashes/X-crash-<sha1>.
# Exit status: 0 when every target ran clean, 1 when one crashed, leaked,
# timed out or failed to build.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN_SECONDS=${1:-30}
B=build-fuzz
SAN="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
mkdir -p "$B/fuzz" "$B/corpus" "$B/crashes" "$B/logs"

# libFuzzer comes with clang's runtime package; install it when missing.
probe_fuzzer() {
  printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' \
    >"$B/probe.c"
  clang $SAN -o "$B/probe" "$B/probe.c" >/dev/null 2>&1
}
if ! command -v clang >/dev/null || ! probe_fuzzer; then
  pkgs="clang libclang-rt-dev"
  if [[ $(id -u) -ne 0 ]]; then
    echo "fuzz: clang with the libFuzzer runtime is needed: sudo apt-get install $pkgs" >&2
    exit 1
  fi
  echo "fuzz: installing $pkgs"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
  probe_fuzzer || { echo "fuzz: clang -fsanitize=fuzzer still does not link" >&2; exit 1; }
fi

# The library, instrumented; flags and libraries come from the Makefile.
make_var() { make -s --no-print-directory BUILD=$B --eval='print-%: ; @echo $($*)' "print-$1"; }
# If some source does not compile, the targets are still linked against the
# objects that did (a target that needs a missing one fails to link), and
# the run fails at the end.
echo "fuzz: building the library into $B/"
failed=0
LIB=$B/libresortsync.a
if ! make -k -s --no-print-directory BUILD=$B CC=clang SAN=1 EXTRA_CFLAGS="-fsanitize=fuzzer-no-link" \
    "$LIB" >"$B/logs/build.log" 2>&1; then
  echo "FAIL library: does not build with clang (see $B/logs/build.log):"
  { grep -E 'error' "$B/logs/build.log" | head -n 5 | sed 's/^/    /'; } || true
  failed=1
  LIB=$B/libpartial.a
  objs=()
  for c in src/*/*.c src/*.c; do
    [[ $c == src/main.c ]] && continue
    o=$B/obj/${c%.c}.o
    [[ -f $o && $o -nt $c ]] && objs+=("$o")
  done
  while IFS= read -r o; do objs+=("$o"); done < <(find "$B/gen" -name '*.o' 2>/dev/null)
  rm -f "$LIB"
  ar rcs "$LIB" "${objs[@]}"
fi
CPPFLAGS_=$(make_var CPPFLAGS)
PKG_CFLAGS_=$(make_var PKG_CFLAGS)
LDLIBS_=$(make_var LDLIBS)

shopt -s nullglob
targets=(tests/fuzz/fuzz_*.c)
if ((${#targets[@]} == 0)); then
  echo "fuzz: no targets in tests/fuzz/"
  exit 0
fi
for src in "${targets[@]}"; do
  name=$(basename "$src" .c)   # fuzz_X
  x=${name#fuzz_}
  bin=$B/fuzz/$name
  log=$B/logs/$name.log
  # shellcheck disable=SC2086  # the flag strings are word lists
  if ! clang -std=c11 -O1 -g -fno-omit-frame-pointer $SAN $CPPFLAGS_ $PKG_CFLAGS_ \
      -o "$bin" "$src" "$LIB" $LDLIBS_ >"$log" 2>&1; then
    echo "FAIL $name: does not build"; tail -n 20 "$log" | sed 's/^/    /'
    failed=1
    continue
  fi
  mkdir -p "$B/corpus/$x"
  dirs=("$B/corpus/$x")
  [[ -d tests/fuzz/corpus/$x ]] && dirs+=("tests/fuzz/corpus/$x")
  if "$bin" -max_total_time="$RUN_SECONDS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$B/crashes/$x-" "${dirs[@]}" >"$log" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1) || true
    echo "PASS $name: ${execs:-?} runs in ${RUN_SECONDS}s, $cov, $(ls "$B/corpus/$x" | wc -l) inputs in $B/corpus/$x"
  else
    echo "FAIL $name: see $log"
    { grep -E 'ERROR|SUMMARY|invariant|Test unit written' "$log" | head -n 10 | sed 's/^/    /'; } || true
    failed=1
  fi
done
exit $failed
