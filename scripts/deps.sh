#!/usr/bin/env bash
# Install what resort-sync needs to build, test and demo, and nothing that is
# already there.  Quiet when everything is present.
#
#   Debian packages: compiler toolchain pieces, the libraries we link, the
#                    tools the tests use as independent oracles (sqldiff), and
#                    man-db + groff-base, which render the manual pages.
#   npm peers:       tools/package.json + package-lock.json, installed with
#                    `npm ci` into tools/node_modules (wrangler, tursodb, the
#                    official @tursodatabase/sync client).
set -euo pipefail
cd "$(dirname "$0")/.."

# package -> a file that proves it is installed
declare -A PROBE=(
  [pkg-config]=/usr/bin/pkg-config
  [libsqlite3-dev]=/usr/include/sqlite3.h
  [libcurl4-openssl-dev]=/usr/include/x86_64-linux-gnu/curl/curl.h
  [libjansson-dev]=/usr/include/jansson.h
  [libprotobuf-c-dev]=/usr/include/protobuf-c/protobuf-c.h
  [protobuf-c-compiler]=/usr/bin/protoc-c
  [libmicrohttpd-dev]=/usr/include/microhttpd.h
  [libssl-dev]=/usr/include/openssl/sha.h
  [libsystemd-dev]=/usr/include/systemd/sd-daemon.h
  [sqlite3]=/usr/bin/sqlite3
  [sqlite3-tools]=/usr/bin/sqldiff
  [python3]=/usr/bin/python3
  [procps]=/usr/bin/pkill
  [valgrind]=/usr/bin/valgrind
  [man-db]=/usr/bin/man
  [groff-base]=/usr/bin/groff
)
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
PROBE[libcurl4-openssl-dev]=/usr/include/$arch/curl/curl.h

missing=()
for p in "${!PROBE[@]}"; do
  [[ -e ${PROBE[$p]} ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "deps: missing Debian packages: ${missing[*]}" >&2
    echo "deps: run as root, or: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# promtool, which the metrics tests use to check the exposition text (they
# SKIP without it).  Debian 12 ships it only inside the prometheus package,
# which would also install a Prometheus server, start it on :9090 and pull in
# a dozen JavaScript packages; so as root we take just the one binary from
# that package (apt-get download, then dpkg-deb) into /usr/local/bin.
if [[ $(id -u) -eq 0 ]] && ! command -v promtool >/dev/null; then
  tmpd=$(mktemp -d)
  chmod 755 "$tmpd"  # apt's download user must be able to write there
  get_prometheus() { (cd "$tmpd" && apt-get download -qq prometheus >/dev/null 2>&1); }
  if get_prometheus || { apt-get update -qq >/dev/null && get_prometheus; }; then
    echo "deps: promtool from Debian's prometheus package into /usr/local/bin"
    dpkg-deb --fsys-tarfile "$tmpd"/prometheus_*.deb | tar -x -C "$tmpd" ./usr/bin/promtool
    install -m 0755 "$tmpd/usr/bin/promtool" /usr/local/bin/promtool
  else
    echo "deps: no prometheus package to take promtool from; the promtool checks will SKIP" >&2
  fi
  rm -rf "$tmpd"
fi

# npm peers: reinstall when the lock file changed since the last install.
if ! command -v npm >/dev/null; then
  echo "deps: npm is needed for the test peers (wrangler, tursodb, @tursodatabase/sync)" >&2
  exit 1
fi
stamp=tools/node_modules/.resort-sync-lock
if [[ ! -f $stamp ]] || ! cmp -s tools/package-lock.json "$stamp"; then
  echo "deps: npm ci in tools/ (wrangler, turso, @tursodatabase/sync)"
  (cd tools && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  cp tools/package-lock.json "$stamp"
fi
