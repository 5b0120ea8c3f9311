# shellcheck shell=bash
# A throwaway PostgreSQL 15 cluster for one test run: its own data directory under /tmp, a unix
# socket in that directory plus 127.0.0.1 on a free port, stopped and deleted when the script
# exits. Source after common.sh.
#
#   pg_test_cluster_start   # exports DATABASE_URL_TEST (a role with CREATEDB, its own database)
#
# A cluster whose script was killed with SIGKILL is stopped and deleted by the next run.

PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"

# Run a PostgreSQL server program as the owner of the cluster: `postgres` when we are root
# (initdb and postgres refuse to run as root), ourselves otherwise.
_pg_as_owner() {
  if ((EUID == 0)); then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# Stop the cluster in DIR (immediate: it is about to be deleted), kill what is left, delete DIR.
pg_test_cluster_stop() {
  local dir="$1" pid
  [[ -d "$dir" ]] || return 0
  if [[ -f "$dir/data/postmaster.pid" ]]; then
    pid="$(head -n1 "$dir/data/postmaster.pid" 2>/dev/null || true)"
    _pg_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate -w -t 20 stop >/dev/null 2>&1 || true
    # Still there (pg_ctl failed)? Kill it, if that PID is really this cluster's postmaster.
    if [[ "$pid" =~ ^[0-9]+$ ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$dir/data"; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -rf -- "$dir"
}

# Create and start the cluster; export DATABASE_URL_TEST and NETSERVA_PG_DIR.
pg_test_cluster_start() {
  [[ -x "$PG_BIN/initdb" ]] || die "PostgreSQL 15 server binaries not found in $PG_BIN (apt-get install postgresql-15)"
  reap_owned_tmpdirs test-pg pg_test_cluster_stop

  local dir
  owned_tmpdir test-pg
  dir="$REPLY"
  on_exit "pg_test_cluster_stop '$dir'"
  mkdir -p "$dir/data" "$dir/sock" "$dir/log"
  if ((EUID == 0)); then
    chmod 755 "$dir"
    chown postgres:postgres "$dir/data" "$dir/sock" "$dir/log"
  fi
  chmod 700 "$dir/data"

  local password
  password="$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
  _pg_as_owner "$PG_BIN/initdb" -D "$dir/data" -U postgres -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 --no-sync --no-instructions >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; die "initdb failed"; }

  local port try started=0
  for try in 1 2 3 4 5; do
    port="$(free_port)"
    # Settings for a disposable cluster: durability off, enough connections for parallel files.
    cat >"$dir/data/postgresql.auto.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir/sock'
max_connections = 300
shared_buffers = 128MB
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
    if _pg_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/log/postgres.log" -w -t 60 start >/dev/null; then
      started=1; break
    fi
    warn "PostgreSQL did not start on port $port (try $try):"; tail -n 5 "$dir/log/postgres.log" >&2 || true
  done
  ((started)) || die "could not start the test PostgreSQL cluster (log above)"

  "$PG_BIN/psql" -h "$dir/sock" -p "$port" -U postgres -d postgres -X -q -v ON_ERROR_STOP=1 \
    -c "CREATE ROLE netserva LOGIN CREATEDB PASSWORD '$password'" \
    -c "CREATE DATABASE netserva_test OWNER netserva" >/dev/null

  export NETSERVA_PG_DIR="$dir"
  export DATABASE_URL_TEST="postgresql://netserva:$password@127.0.0.1:$port/netserva_test"
}
