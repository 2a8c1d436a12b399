#!/bin/sh
# abi-symbols.sh: the functions the public header declares, one per line,
# sorted.  They are the shared library's whole ABI: the Makefile turns this
# list into the linker's version script, and tests/e2e/install_abi.sh
# compares it with what the built library exports.
#
#   scripts/abi-symbols.sh [HEADER]        (default include/resortsync.h)
#   scripts/abi-symbols.sh --map [HEADER]  the version script instead
#
# The header goes through the C preprocessor first, so comments (which
# mention functions too) and disabled blocks do not count.
set -eu
map=0
if [ "${1:-}" = "--map" ]; then map=1; shift; fi
header=${1:-include/resortsync.h}
cc=${CC:-cc}
names=$($cc -E -P -x c "$header" | grep -oE '(^|[^A-Za-z0-9_])rs_[a-z0-9_]+[[:space:]]*\(' |
	sed -E 's/^[^r]*//; s/[[:space:]]*\($//' | sort -u)
if [ -z "$names" ]; then
	echo "abi-symbols.sh: no rs_* function declared in $header" >&2
	exit 1
fi
if [ $map -eq 0 ]; then
	printf '%s\n' "$names"
	exit 0
fi
echo "/* Generated from $header by scripts/abi-symbols.sh: only these are exported. */"
echo "LIBRESORTSYNC_0 {"
echo "  global:"
printf '%s\n' "$names" | sed 's/^/    /; s/$/;/'
echo "  local:"
echo "    *;"
echo "};"
