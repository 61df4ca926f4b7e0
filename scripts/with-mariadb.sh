#!/usr/bin/env bash
# Runs the given command with a throwaway MariaDB server on 127.0.0.1 and its address in
# UPLOAD_STATUS_TEST_MYSQL (a mysql+pymysql:// URL), unless that variable is already set (then
# it uses that server). The server lives in a temporary data folder and is stopped and removed
# afterwards. Without a MariaDB it installs Debian's `mariadb-server` package when it can (root
# + apt-get); otherwise the MariaDB tests are skipped, except under CI=true, where that is an
# error.
set -euo pipefail

if [[ -n "${UPLOAD_STATUS_TEST_MYSQL:-}" ]]; then
    exec "$@"
fi

server=$(command -v mariadbd || ls /usr/sbin/mariadbd 2>/dev/null || true)
if [[ -z "$server" ]]; then
    "$(dirname "$0")/install-debian.sh" mariadb-server
    server=$(command -v mariadbd || ls /usr/sbin/mariadbd 2>/dev/null || true)
fi
if [[ -z "$server" ]]; then
    exec "$(dirname "$0")/without-server.sh" with-mariadb MariaDB "$@"
fi

data=$(mktemp -d "${TMPDIR:-/tmp}/upload-status-mariadb.XXXXXX")
user=$(id -un)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
pid=""
stop() {
    if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; fi
    rm -rf "$data"
}
trap stop EXIT

mariadb-install-db --no-defaults --datadir="$data/db" --user="$user" --auth-root-authentication-method=normal \
    --skip-test-db >"$data/install.log" 2>&1
"$server" --no-defaults --datadir="$data/db" --user="$user" --bind-address=127.0.0.1 \
    --port="$port" --socket="$data/mysqld.sock" --pid-file="$data/mysqld.pid" \
    --skip-name-resolve --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 \
    --log-error="$data/server.log" >"$data/server.out" 2>&1 &
pid=$!
for _ in $(seq 1 100); do  # up to 20 s for the socket to answer
    mariadb --no-defaults --socket="$data/mysqld.sock" -uroot -e "SELECT 1" >/dev/null 2>&1 && break
    sleep 0.2
done
mariadb --no-defaults --socket="$data/mysqld.sock" -uroot -e "
    CREATE USER 'tester'@'127.0.0.1' IDENTIFIED BY 'unused';
    GRANT ALL PRIVILEGES ON *.* TO 'tester'@'127.0.0.1' WITH GRANT OPTION;
    CREATE DATABASE upload_status_test;"
echo "with-mariadb: MariaDB on 127.0.0.1:$port (data in $data)" >&2

export UPLOAD_STATUS_TEST_MYSQL="mysql+pymysql://tester:unused@127.0.0.1:$port/upload_status_test"
"$@"
