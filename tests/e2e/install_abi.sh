#!/usr/bin/env bash
# install_abi.sh: the shared library exports exactly the functions that
# include/resortsync.h declares (nm -D --defined-only against the header,
# read through scripts/abi-symbols.sh), under the soname libresortsync.so.MAJOR,
# and the header's version macros agree with rs_version() and the file name.
set -uo pipefail
ROOT=${ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${BUILD:-build}
cd "$ROOT" || exit 1
B=$ROOT/$BUILD
major=$(sed -n 's/^#define RS_VERSION_MAJOR \([0-9]*\)$/\1/p' include/resortsync.h)
minor=$(sed -n 's/^#define RS_VERSION_MINOR \([0-9]*\)$/\1/p' include/resortsync.h)
patch=$(sed -n 's/^#define RS_VERSION_PATCH \([0-9]*\)$/\1/p' include/resortsync.h)
lib=$B/libresortsync.so.$major.$minor
for t in nm readelf; do
  command -v $t >/dev/null || { echo "SKIP install_abi: $t not installed"; exit 0; }
done
if [[ -z $major || -z $minor || -z $patch ]]; then
  echo "FAIL install_abi: version macros: RS_VERSION_MAJOR/MINOR/PATCH not found in include/resortsync.h"
  exit 1
fi
if [[ ! -f $lib ]]; then
  echo "FAIL install_abi: $lib missing (make all builds it)"
  exit 1
fi
fail=0
ok() { echo "PASS install_abi: $1"; }
bad() { echo "FAIL install_abi: $1"; fail=1; }

version=$(sed -n 's/^#define RS_VERSION "\(.*\)"$/\1/p' include/resortsync.h)
[[ $version == "$major.$minor.$patch" ]] && ok "RS_VERSION $version matches MAJOR.MINOR.PATCH" ||
  bad "RS_VERSION \"$version\" but MAJOR.MINOR.PATCH $major.$minor.$patch"

if ! declared=$(scripts/abi-symbols.sh include/resortsync.h); then
  bad "scripts/abi-symbols.sh failed"
  exit 1
fi
# defined dynamic symbols, without their version suffix and without the
# version node itself (type A)
exported=$(nm -D --defined-only "$lib" | awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }' | sort -u)
if [[ $exported == "$declared" ]]; then
  ok "exports exactly the $(wc -l <<<"$declared") functions resortsync.h declares"
else
  bad "exported symbols differ from the header's declarations (< header, > library):"
  diff <(echo "$declared") <(echo "$exported") | grep '^[<>]' | sed 's/^/    /'
fi

soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[[ $soname == "libresortsync.so.$major" ]] && ok "soname $soname" || bad "soname \"$soname\", expected libresortsync.so.$major"
[[ $(readlink "$B/libresortsync.so.$major") == "libresortsync.so.$major.$minor" &&
   $(readlink "$B/libresortsync.so") == "libresortsync.so.$major" ]] &&
  ok "links libresortsync.so -> .so.$major -> .so.$major.$minor" || bad "development links in $B"

# the library resolves on its own: no undefined symbol outside its NEEDED libraries
if ldd -r "$lib" 2>&1 | grep -q 'undefined symbol'; then
  bad "undefined symbols: $(ldd -r "$lib" 2>&1 | grep 'undefined symbol' | head -3)"
else
  ok "no undefined symbols (ldd -r)"
fi
# rs_version() of the built library equals the header's RS_VERSION
if [[ -n ${RS_SANITIZED:-} ]]; then
  echo "SKIP install_abi: rs_version() program: sanitizer build"
  exit $fail
fi
W=$(mktemp -d /tmp/rs-abi-XXXXXX)
trap 'rm -rf "$W"' EXIT
cat >"$W/v.c" <<'C'
#include <stdio.h>
#include <string.h>
#include "resortsync.h"
int main(void)
{
	const char *v = rs_version();
	if (printf("%s\n", v) < 0)
		return 1;
	return strcmp(v, RS_VERSION) == 0 ? 0 : 3;
}
C
if ${CC:-cc} -std=c11 -Wall -Wextra -Werror -I include -o "$W/v" "$W/v.c" -L "$B" -lresortsync 2>"$W/cc.log" &&
   out=$(LD_LIBRARY_PATH=$B "$W/v") && [[ $out == "$version" ]]; then
  ok "rs_version() = \"$out\" through the shared library"
else
  bad "rs_version() program: $(head -5 "$W/cc.log") ${out:-}"
fi
exit $fail
