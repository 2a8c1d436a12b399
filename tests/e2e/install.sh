#!/usr/bin/env bash
# install.sh: `make install DESTDIR=...` end to end (root only: it is how
# a package is built, and the man and systemd checks expect root's tools).
#
#   - the installed file list, modes and links, for the default PREFIX
#     (/usr/local) and for PREFIX=/usr (SYSCONFDIR /etc);
#   - the soname of the installed library (readelf -d);
#   - pkg-config --modversion/--cflags/--libs libresortsync with
#     PKG_CONFIG_PATH into DESTDIR;
#   - a C program built against the installed header and library (shared,
#     and static with pkg-config --static) runs rs_diff and rs_dump on two
#     small databases and prints what the build's resort-sync prints;
#   - the installed man pages render without warnings, the units pass
#     systemd-analyze verify, the completion completes;
#   - make uninstall leaves no file behind.
set -uo pipefail
ROOT=${ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${BUILD:-build}
RS_BIN=${RS_BIN:-$ROOT/$BUILD/resort-sync}
if [[ $(id -u) -ne 0 ]]; then
  echo "SKIP install: not root"
  exit 0
fi
if [[ -n ${RS_SANITIZED:-} ]]; then
  echo "SKIP install: sanitizer build (an installed library is built without sanitizers)"
  exit 0
fi
for t in pkg-config readelf python3 make; do
  command -v $t >/dev/null || { echo "SKIP install: $t not installed"; exit 0; }
done
if [[ ! -x $RS_BIN ]]; then
  echo "SKIP install: $RS_BIN missing"
  exit 0
fi
W=$(mktemp -d /tmp/rs-install-e2e-XXXXXX)
trap '[[ -n ${KEEP:-} ]] || rm -rf "$W"' EXIT
fail=0
ok() { echo "PASS install: $1"; }
bad() { echo "FAIL install: $1"; fail=1; }
major=$(sed -n 's/^#define RS_VERSION_MAJOR \([0-9]*\)$/\1/p' "$ROOT/include/resortsync.h")
minor=$(sed -n 's/^#define RS_VERSION_MINOR \([0-9]*\)$/\1/p' "$ROOT/include/resortsync.h")
version=$(sed -n 's/^#define RS_VERSION "\(.*\)"$/\1/p' "$ROOT/include/resortsync.h")
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)

# What an install holds, relative to DESTDIR: "path type" (f file, l link).
expected() { # PREFIX SYSCONFDIR LIBDIR UNITDIR
  local p=$1 etc=$2 lib=$3 unit=$4
  cat <<LIST | sort
$p/bin/resort-sync f
$lib/libresortsync.so.$major.$minor f
$lib/libresortsync.so.$major l
$lib/libresortsync.so l
$lib/libresortsync.a f
$lib/pkgconfig/libresortsync.pc f
$p/include/resortsync.h f
$p/share/man/man1/resort-sync.1 f
$p/share/man/man5/resort-sync.toml.5 f
$etc/resort-sync/resort-sync.toml.example f
$unit/resort-sync.service f
$unit/resort-sync@.service f
$p/share/bash-completion/completions/resort-sync f
LIST
}
listing() { (cd "$1" && find . \( -type f -o -type l \) -printf '/%P %y\n' | sort); }

# 1. default PREFIX
D=$W/dest
if ! make -s -C "$ROOT" BUILD="$BUILD" install DESTDIR="$D" >"$W/install.log" 2>&1; then
  bad "make install DESTDIR=$D failed: $(tail -5 "$W/install.log")"
  exit 1
fi
got=$(listing "$D")
want=$(expected /usr/local /usr/local/etc /usr/local/lib /usr/local/lib/systemd/system)
[[ $got == "$want" ]] && ok "make install (PREFIX=/usr/local): $(wc -l <<<"$got") files and links where expected" ||
  { bad "installed files differ (< expected, > installed):"; diff <(echo "$want") <(echo "$got") | grep '^[<>]' | sed 's/^/    /'; }
L=$D/usr/local/lib
[[ $(readlink "$L/libresortsync.so.$major") == "libresortsync.so.$major.$minor" && $(readlink "$L/libresortsync.so") == "libresortsync.so.$major" ]] &&
  ok "links libresortsync.so -> .so.$major -> .so.$major.$minor" || bad "library links: $(ls -l "$L" | grep so)"
modes=$(cd "$D" && stat -c '%a %n' usr/local/bin/resort-sync usr/local/include/resortsync.h usr/local/lib/libresortsync.so.$major.$minor usr/local/share/man/man1/resort-sync.1)
[[ $modes == $'755 usr/local/bin/resort-sync\n644 usr/local/include/resortsync.h\n644 usr/local/lib/libresortsync.so.'$major.$minor$'\n644 usr/local/share/man/man1/resort-sync.1' ]] &&
  ok "modes 755 program, 644 header, library, pages" || bad "modes: $modes"
soname=$(readelf -d "$L/libresortsync.so.$major.$minor" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[[ $soname == "libresortsync.so.$major" ]] && ok "installed library's soname $soname" || bad "soname \"$soname\""
grep -q "ExecStart=/usr/local/bin/resort-sync -c /usr/local/etc/resort-sync/resort-sync.toml run" "$D/usr/local/lib/systemd/system/resort-sync.service" &&
  grep -q "ExecStart=/usr/local/bin/resort-sync -c /usr/local/etc/resort-sync/%i.toml run" "$D/usr/local/lib/systemd/system/resort-sync@.service" &&
  ! grep -q '@[A-Z]*@' "$D"/usr/local/lib/systemd/system/* "$L/pkgconfig/libresortsync.pc" &&
  ok "units and .pc name the installed paths" || bad "units or .pc: placeholders left or wrong paths"

# 2. pkg-config, pointed into DESTDIR (the sysroot prefixes -I and -L)
export PKG_CONFIG_PATH=$L/pkgconfig PKG_CONFIG_SYSROOT_DIR=$D
mv=$(pkg-config --modversion libresortsync 2>&1)
cf=$(pkg-config --cflags libresortsync 2>&1 | sed 's/ *$//')
lf=$(pkg-config --libs libresortsync 2>&1 | sed 's/ *$//')
[[ $mv == "$version" ]] && ok "pkg-config --modversion: $mv" || bad "pkg-config --modversion: $mv"
[[ $cf == "-I$D/usr/local/include" ]] && ok "pkg-config --cflags: -I<destdir>/usr/local/include" || bad "pkg-config --cflags: $cf"
[[ $lf == "-L$L -lresortsync" ]] && ok "pkg-config --libs: -L<destdir>/usr/local/lib -lresortsync" || bad "pkg-config --libs: $lf"

# 3. a program against the installed library, compared with the build's own output
python3 - "$W/old.db" "$W/new.db" <<'PY' || bad "could not create the databases"
import sqlite3, sys
for path, rows in ((sys.argv[1], [(1, "one", 1.5), (2, "two", None), (3, "three", 0.1)]),
                   (sys.argv[2], [(1, "one", 1.5), (2, "deux", 2.25), (4, "four", 0.30000000000000004)])):
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL, v REAL)")
    db.execute("CREATE TABLE tags(t_id INTEGER REFERENCES t(id), tag TEXT, PRIMARY KEY(t_id, tag))")
    db.executemany("INSERT INTO t VALUES(?,?,?)", rows)
    db.executemany("INSERT INTO tags VALUES(?,?)", [(r[0], "x") for r in rows])
    db.commit()
    db.close()
PY
cat >"$W/prog.c" <<'C'
/* Against the installed libresortsync: diff OLD NEW, then dump NEW, as SQL. */
#include <stdio.h>
#include <string.h>
#include <resortsync.h>

int main(int argc, char **argv)
{
	rs_error err;
	memset(&err, 0, sizeof err);
	if (argc != 4)
		return 2;
	if (strcmp(rs_version(), RS_VERSION) != 0) {
		fprintf(stderr, "rs_version %s, header %s\n", rs_version(), RS_VERSION);
		return 1;
	}
	int rc = strcmp(argv[1], "diff") == 0 ? rs_diff(argv[2], argv[3], RS_FORMAT_SQL, stdout, &err)
					       : rs_dump(argv[3], RS_FORMAT_SQL, stdout, &err);
	if (rc != RS_OK) {
		fprintf(stderr, "%s: %s\n", rs_strerror(rc), err.message);
		return 1;
	}
	return fflush(stdout) == 0 ? 0 : 1;
}
C
CCMD=${CC:-cc}
if $CCMD -std=c11 -Wall -Wextra -Werror $(pkg-config --cflags libresortsync) -o "$W/prog" "$W/prog.c" \
     $(pkg-config --libs libresortsync) 2>"$W/cc.log"; then
  ok "a C program compiles against the installed header and library"
  needed=$(readelf -d "$W/prog" | sed -n 's/.*(NEEDED).*\[\(libresortsync[^]]*\)\]/\1/p')
  [[ $needed == "libresortsync.so.$major" ]] && ok "it needs libresortsync.so.$major" || bad "NEEDED: $needed"
  for what in diff dump; do
    if [[ $what == diff ]]; then "$RS_BIN" diff "$W/old.db" "$W/new.db" >"$W/want.$what" 2>"$W/err.$what"
    else "$RS_BIN" dump "$W/new.db" >"$W/want.$what" 2>"$W/err.$what"; fi || bad "build's resort-sync $what failed: $(cat "$W/err.$what")"
    if LD_LIBRARY_PATH=$L "$W/prog" $what "$W/old.db" "$W/new.db" >"$W/got.$what" 2>"$W/goterr.$what"; then
      if [[ -s $W/want.$what ]] && cmp -s "$W/want.$what" "$W/got.$what"; then
        ok "rs_$what through the installed library = resort-sync $what ($(wc -l <"$W/got.$what") lines)"
      else
        bad "rs_$what through the installed library differs from resort-sync $what"
        diff "$W/want.$what" "$W/got.$what" | head -5 | sed 's/^/    /'
      fi
    else
      bad "the program's rs_$what failed: $(cat "$W/goterr.$what")"
    fi
  done
  # which library did it load? the installed one
  loaded=$(LD_LIBRARY_PATH=$L ldd "$W/prog" | sed -n 's/.*libresortsync.so.[0-9]* => \([^ ]*\).*/\1/p')
  [[ $loaded == "$L/libresortsync.so.$major" ]] && ok "it loads the installed library" || bad "loaded: $loaded"
else
  bad "compiling against the installed library: $(head -5 "$W/cc.log")"
fi
if $CCMD -std=c11 $(pkg-config --cflags libresortsync) -o "$W/prog-static" "$W/prog.c" \
     "$L/libresortsync.a" $(pkg-config --static --libs-only-l libresortsync | sed 's/-lresortsync//') 2>"$W/ccs.log" &&
   "$W/prog-static" dump "$W/old.db" "$W/new.db" >"$W/got-static" && cmp -s "$W/want.dump" "$W/got-static"; then
  ok "static link with pkg-config --static gives the same dump"
else
  bad "static link: $(head -5 "$W/ccs.log")"
fi
unset PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR

# 4. man pages, units, completion
if command -v man >/dev/null; then
  for p in "$D/usr/local/share/man/man1/resort-sync.1" "$D/usr/local/share/man/man5/resort-sync.toml.5"; do
    w=$(MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -l "$p" 2>&1 >/dev/null)
    lines=$(MANWIDTH=80 man -l "$p" 2>/dev/null | wc -l)
    [[ -z $w && $lines -gt 40 ]] && ok "man -l $(basename "$p"): $lines lines, no warnings" || bad "man -l $(basename "$p"): $lines lines; $w"
  done
else
  bad "man not installed (scripts/deps.sh installs man-db and groff-base)"
fi
if command -v systemd-analyze >/dev/null; then
  # verify wants ExecStart to exist: point it at the installed program
  mkdir -p "$W/units"
  for u in resort-sync.service resort-sync@.service; do
    sed "s|/usr/local/bin/resort-sync|$D/usr/local/bin/resort-sync|" "$D/usr/local/lib/systemd/system/$u" >"$W/units/$u"
  done
  cp "$W/units/resort-sync@.service" "$W/units/resort-sync@demo.service"
  v=$(cd "$W/units" && MANPATH=$D/usr/local/share/man systemd-analyze verify ./resort-sync.service ./resort-sync@demo.service 2>&1 |
      grep -v -e 'ConditionPathExists' -e 'Failed to .* bus' -e 'System has not been booted')
  [[ -z $v ]] && ok "systemd-analyze verify: both units" || bad "systemd-analyze verify: $v"
else
  echo "SKIP install: systemd-analyze not installed"
fi
comp=$D/usr/local/share/bash-completion/completions/resort-sync
out=$(bash -c '
  _init_completion() { cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}; words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD; }
  _filedir() { COMPREPLY=(FILES); }
  compopt() { :; }
  source "$1" || exit 1
  t() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=(); _resort_sync; echo "${COMPREPLY[*]}"; }
  t resort-sync d; t resort-sync -c ""; t resort-sync diff --format ""; t resort-sync -c x.toml run --; t resort-sync -o database.sync.mo
' _ "$comp" 2>&1)
[[ $out == $'diff dump\nFILES\nsql json key\n--final-sync --metrics-file --help\ndatabase.sync.mode=' ]] &&
  ok "bash completion: commands, -c files, --format values, run options, -o keys" || bad "bash completion: $out"

# 5. make uninstall removes every file
if make -s -C "$ROOT" BUILD="$BUILD" uninstall DESTDIR="$D" >"$W/uninstall.log" 2>&1; then
  left=$(listing "$D")
  [[ -z $left ]] && ok "make uninstall leaves no file" || bad "left after uninstall: $left"
else
  bad "make uninstall failed: $(tail -3 "$W/uninstall.log")"
fi

# 6. PREFIX=/usr with a multiarch LIBDIR and the Debian unit directory
D2=$W/dest-usr
if make -s -C "$ROOT" BUILD="$BUILD" install DESTDIR="$D2" PREFIX=/usr LIBDIR=/usr/lib/$arch \
     SYSTEMDUNITDIR=/lib/systemd/system >"$W/install2.log" 2>&1; then
  got=$(listing "$D2")
  want=$(expected /usr /etc /usr/lib/$arch /lib/systemd/system)
  [[ $got == "$want" ]] && ok "make install PREFIX=/usr LIBDIR=/usr/lib/$arch: SYSCONFDIR /etc" ||
    { bad "PREFIX=/usr install differs:"; diff <(echo "$want") <(echo "$got") | grep '^[<>]' | sed 's/^/    /'; }
  grep -qx "libdir=/usr/lib/$arch" "$D2/usr/lib/$arch/pkgconfig/libresortsync.pc" &&
    grep -q 'ExecStart=/usr/bin/resort-sync -c /etc/resort-sync/resort-sync.toml' "$D2/lib/systemd/system/resort-sync.service" &&
    ok "PREFIX=/usr: .pc libdir and unit paths" || bad "PREFIX=/usr: .pc or unit paths"
else
  bad "make install PREFIX=/usr failed: $(tail -5 "$W/install2.log")"
fi
exit $fail
