#!/usr/bin/env bash
# Install what resort-sync needs to build, test and demo, and nothing that is
# already there.  Quiet when everything is present.
#
#   Debian packages: compiler toolchain pieces, the libraries we link, and the
#                    tools the tests use as independent oracles (sqldiff).
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
