#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for DurableQueue's tests (MultiprocessingPostgres).
#   Scripts/postgres.sh start   installs Debian's postgresql if initdb is missing, creates the
#                               cluster in /tmp/swift-multiprocessing-postgres-$PORT, starts it on
#                               127.0.0.1:$PORT with trust auth, creates the database, and
#                               prints the URL (export SWIFT_MULTIPROCESSING_POSTGRES_URL=...).
#   Scripts/postgres.sh restart restarts it (fast: clients are disconnected), for the tests of reconnection.
#   Scripts/postgres.sh stop    stops it and deletes the directory.
# The server runs as the `postgres` user: it refuses to run as root, and these machines run as
# root. Environment: SWIFT_MULTIPROCESSING_POSTGRES_PORT (default 54329).
set -euo pipefail

PORT="${SWIFT_MULTIPROCESSING_POSTGRES_PORT:-54329}"
# Under /tmp, not in the work tree: the postgres user cannot reach a clone under /root.
BASE="/tmp/swift-multiprocessing-postgres-$PORT"
DATA="$BASE/data"
DATABASE="durable_queue_tests"
URL="postgres://postgres@127.0.0.1:$PORT/$DATABASE?sslmode=disable"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

bindir() {
    local initdb
    initdb="$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1 || true)"
    [ -n "$initdb" ] && dirname "$initdb"
}

# Runs a server program as the postgres user (root cannot; a non-root caller uses sudo).
as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

start() {
    local bin
    bin="$(bindir || true)"
    if [ -z "$bin" ]; then
        echo "installing postgresql (apt-get)" >&2
        export DEBIAN_FRONTEND=noninteractive
        $SUDO apt-get update -qq >&2
        $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
        bin="$(bindir)" || { echo "initdb is still missing after apt-get install postgresql" >&2; exit 1; }
    fi
    # A cluster left by a run that was killed: stop it and start over.
    if [ -d "$BASE" ]; then stop >/dev/null 2>&1 || true; fi
    mkdir -p "$BASE"
    $SUDO chown postgres: "$BASE"
    # The postgres user must be able to reach the directory through the work tree.
    as_postgres test -x "$BASE" || { echo "the postgres user cannot reach $BASE" >&2; exit 1; }
    as_postgres "$bin/initdb" -D "$DATA" -U postgres --auth=trust --no-sync -E UTF8 >"$BASE/initdb.log" 2>&1 \
        || { cat "$BASE/initdb.log" >&2; exit 1; }
    # Only 127.0.0.1, a socket in our own directory (not /var/run/postgresql), no fsync: a test cluster.
    as_postgres "$bin/pg_ctl" -D "$DATA" -l "$BASE/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -c unix_socket_directories=$BASE -c fsync=off -c max_connections=200" \
        start >/dev/null || { cat "$BASE/server.log" >&2; exit 1; }
    as_postgres "$bin/createdb" -h 127.0.0.1 -p "$PORT" -U postgres "$DATABASE"
    echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT" >&2
    echo "export SWIFT_MULTIPROCESSING_POSTGRES_URL='$URL'"
}

stop() {
    local bin
    bin="$(bindir || true)"
    if [ -n "$bin" ] && [ -f "$DATA/postmaster.pid" ]; then
        as_postgres "$bin/pg_ctl" -D "$DATA" -m immediate -w stop >/dev/null || true
    fi
    rm -rf "$BASE"
}

restart() {
    local bin
    bin="$(bindir)" || { echo "PostgreSQL is not installed" >&2; exit 1; }
    # pg_ctl restart starts the server again with the options it was started with.
    as_postgres "$bin/pg_ctl" -D "$DATA" -m fast -w -t 60 restart >/dev/null
}

case "${1:-}" in
start) start ;;
restart) restart ;;
stop) stop ;;
url) echo "$URL" ;;
*) echo "usage: $0 start|restart|stop|url" >&2; exit 2 ;;
esac
