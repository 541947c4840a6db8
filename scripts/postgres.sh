#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on loopback for the test suite, installing Debian's
# package first when the machine has none. Prints the connection URL on stdout.
#   scripts/postgres.sh start   -> postgresql://polysync@127.0.0.1:PORT/polysync_test
#   scripts/postgres.sh stop
set -euo pipefail
PGPORT=${POLYSYNC_TEST_PGPORT:-54329}
PGDATA_DIR=${POLYSYNC_TEST_PGDATA:-/tmp/polysync-test-pg}
action=${1:-start}

find_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [[ -x "$d/initdb" ]] && { echo "$d"; return 0; }
  done
  return 1
}

as_pg() {
  # PostgreSQL refuses to run as root: run its tools as the `postgres` user when we are root.
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

if [[ $action == stop ]]; then
  bin=$(find_bin) || exit 0
  as_pg "$bin/pg_ctl" -D "$PGDATA_DIR" -m immediate stop >/dev/null 2>&1 || true
  exit 0
fi

if ! bin=$(find_bin); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "PostgreSQL is not installed and this user cannot apt-get install it." >&2
    exit 1
  fi
  echo "Installing PostgreSQL (Debian package)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
  bin=$(find_bin)
fi

if as_pg "$bin/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; then
  echo "postgresql://polysync@127.0.0.1:$PGPORT/polysync_test"
  exit 0
fi
rm -rf "$PGDATA_DIR"
mkdir -p "$PGDATA_DIR"
[[ $(id -u) -eq 0 ]] && chown postgres "$PGDATA_DIR"
as_pg "$bin/initdb" -D "$PGDATA_DIR" -U polysync --auth=trust >/dev/null
# Loopback only; fsync off because this cluster is thrown away after the tests.
as_pg "$bin/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $PGPORT -c fsync=off -c unix_socket_directories=$PGDATA_DIR -c max_connections=200" \
  start >/dev/null
as_pg "$bin/createdb" -h 127.0.0.1 -p "$PGPORT" -U polysync polysync_test
echo "postgresql://polysync@127.0.0.1:$PGPORT/polysync_test"
