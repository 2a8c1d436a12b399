#!/usr/bin/env bash
# bench/write_throughput.sh [BUILD_DIR]: does `resort-sync run` slow down the
# application writing the database?  An application-like writer
# (bench/write_throughput_writer.c: small transactions into a WAL database,
# as fast as it can) runs for a fixed time alone and beside the daemon (d1
# mode, local wrangler, interval 1 s, a payload every cycle), in interleaved
# rounds; medians and ratios, where the writer's time went (on a CPU,
# waiting for one, in COMMIT), and where the daemon's CPU went (resort-sync,
# node, workerd).  Then the daemon's CPU time over an idle period.  See
# bench/README.md.
#
#   WT_SECONDS=10     length of one writer run
#   WT_ROUNDS=8       rounds (each runs every configuration once)
#   WT_SYNC=FULL      the writer's PRAGMA synchronous (FULL or NORMAL)
#   WT_OPS=4          statements per transaction (at least 2)
#   WT_IDLE=30        seconds of idle daemon to measure (0: skip)
#   WT_CONFIGS=off,d1,stub   which configurations (see write_throughput.py:
#                     also d1idle, d1normal; diagnostic: d1ioidle, d1nice, stubshm)
#   WT_SESSION=own    start the daemon in a session of its own, as systemd
#                     does (own), or in the writer's (shared)
#   WT_INTERVAL=1     the daemon's interval_seconds
#   WT_IDLE_DB=...    also measure the idle cost on this (larger) database,
#                     read only (default: bench/run.sh's full-size old.db
#                     when it exists; empty: skip)
#   WT_OUT=...        markdown report (default: $TMPDIR/resort-sync-write-throughput.md)
#
# Scratch files live in a temporary directory, removed at the end.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
bin=$build/resort-sync
die() { echo "write_throughput: $*" >&2; exit 1; }
[[ -x $bin ]] || die "$bin not found; build it first (make BUILD=${1:-build} all)"
[[ -x $root/tools/node_modules/.bin/wrangler ]] || die "wrangler missing: run scripts/deps.sh"
export WRANGLER_SEND_METRICS=false
work=$(mktemp -d "${TMPDIR:-/tmp}/resort-sync-wt.XXXXXX")
trap 'rm -rf "$work"' EXIT
${CC:-cc} -std=c11 -O2 -Wall -Wextra -o "$work/writer" "$here/write_throughput_writer.c" -lsqlite3
big_default=${BENCH_DIR:-/tmp/resort-sync-bench}/full/old.db
[[ -f $big_default ]] || big_default=
head=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
python3 "$here/write_throughput.py" --bin "$bin" --writer "$work/writer" --work "$work" \
	--seconds "${WT_SECONDS:-10}" --rounds "${WT_ROUNDS:-8}" --sync "${WT_SYNC:-FULL}" \
	--ops "${WT_OPS:-4}" --idle "${WT_IDLE:-30}" --configs "${WT_CONFIGS:-off,d1,stub}" \
	--interval "${WT_INTERVAL:-1}" --idle-db "${WT_IDLE_DB-$big_default}" --session "${WT_SESSION:-own}" \
	--out "${WT_OUT:-${TMPDIR:-/tmp}/resort-sync-write-throughput.md}" \
	--commit "HEAD $head, binary built $(date -u -r "$bin" '+%Y-%m-%d %H:%M UTC')"
