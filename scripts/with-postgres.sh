#!/usr/bin/env bash
# Runs the given command with a throwaway PostgreSQL server on 127.0.0.1 and its address in
# UPLOAD_STATUS_TEST_POSTGRES, unless that variable is already set (then it uses that server).
# The server lives in a temporary data folder and is stopped and removed afterwards.
# Without a PostgreSQL it installs Debian's `postgresql` package when it can (root + apt-get);
# otherwise the Postgres tests are skipped, except under CI=true, where that is an error.
set -euo pipefail

if [[ -n "${UPLOAD_STATUS_TEST_POSTGRES:-}" ]]; then
    exec "$@"
fi

find_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

bindir=$(find_bindir)
if [[ -z "$bindir" ]]; then
    "$(dirname "$0")/install-debian.sh" postgresql
    bindir=$(find_bindir)
fi
if [[ -z "$bindir" ]]; then
    exec "$(dirname "$0")/without-server.sh" with-postgres PostgreSQL "$@"
fi

data=$(mktemp -d "${TMPDIR:-/tmp}/upload-status-pg.XXXXXX")
as_pg=()
if [[ $(id -u) -eq 0 ]]; then  # the server refuses to run as root
    chown postgres "$data"
    as_pg=(runuser -u postgres --)
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

stop() {
    "${as_pg[@]}" "$bindir/pg_ctl" -D "$data/db" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$data"
}
trap stop EXIT

"${as_pg[@]}" "$bindir/initdb" -D "$data/db" -U postgres -A trust --no-sync >/dev/null
"${as_pg[@]}" "$bindir/pg_ctl" -D "$data/db" -l "$data/server.log" -w -o \
    "-c listen_addresses=127.0.0.1 -p $port -k $data -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null
echo "with-postgres: PostgreSQL on 127.0.0.1:$port (data in $data)" >&2

# trust authentication on loopback only; dlt insists on a password, which trust ignores
export UPLOAD_STATUS_TEST_POSTGRES="postgresql://postgres:unused@127.0.0.1:$port/postgres"
"$@"
