#!/usr/bin/env bash
# Issue 16's benchmark with its PostgreSQL arms (PERFORMANCE.md P5): builds
# `benches/replication.rs`, makes a throwaway PostgreSQL cluster as tests/ha/run.sh does, and
# runs `cargo bench --bench replication` with IAMLET_TEST_POSTGRES_URL naming a database on it,
# so the SQLite, PostgreSQL 1-replica and 3-replica arms all run. Each arm makes its own schema
# in that database.
#
# The cluster lives in a temporary directory, runs as the unprivileged `postgres` user (initdb
# refuses root), listens on a free loopback port and a socket in that directory, and takes
# password (SCRAM) logins over TCP. Unlike run.sh it keeps PostgreSQL's default durability
# (fsync on): the SQLite arm fsyncs every commit, and the throughput of the two stores is only
# comparable on equal terms. PostgreSQL is installed from the machine's package manager when
# initdb is absent. The cluster and every process are removed on exit.
#
# Usage: tests/ha/bench.sh [ARGS passed to the bench after --bench]. Bounded by BENCH_TIMEOUT
# seconds (default 3600, the release build included). Exit status 0 when the bench passed.
set -euo pipefail
cd "$(dirname "$0")/../.."

deadline=${BENCH_TIMEOUT:-3600}
# The whole run is bounded: a watchdog kills it (and so every process below) on overrun.
( sleep "$deadline" </dev/null >/dev/null 2>&1
  echo "ha bench: timed out after ${deadline}s" >&2
  kill -TERM $$ ) &
watchdog=$!

work=$(mktemp -d "${TMPDIR:-/tmp}/iamlet-ha-bench.XXXXXX")
pg_bin=""
cleanup() {
    local status=$?
    if [[ -n "$pg_bin" && -f "$work/pg/postmaster.pid" ]]; then
        runuser -u postgres -- "$pg_bin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
    fi
    kill "$watchdog" 2>/dev/null || true
    if [[ $status -ne 0 ]]; then
        echo "ha bench: FAILED; logs kept in $work" >&2
        tail -n 20 "$work/pg.log" >&2 2>/dev/null || true
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 124' TERM

step() { printf '\n== ha bench: %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }
fail() { echo "ha bench: $*" >&2; exit 1; }

step "build (release)"
cargo bench --bench replication --no-run

step "PostgreSQL"
# shellcheck source=tests/ha/postgres.sh
source tests/ha/postgres.sh
ensure_pg
read -r pg_port < <(free_ports 1)
password="bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
chown postgres "$work"
chmod 0755 "$work"
mkdir -p "$work/sock" && chown postgres "$work/sock"
# Password (SCRAM) authentication over TCP, as a real deployment; trust on the socket, which
# only this script's directory reaches.
runuser -u postgres -- "$pg_bin/initdb" -D "$work/pg" -U postgres --auth-local=trust \
    --auth-host=scram-sha-256 >"$work/initdb.log" 2>&1 || { cat "$work/initdb.log"; fail "initdb failed"; }
runuser -u postgres -- "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w -t 60 -o \
    "-c listen_addresses=127.0.0.1 -p $pg_port -k $work/sock" \
    start >/dev/null
psql() { runuser -u postgres -- "$pg_bin/psql" -h "$work/sock" -p "$pg_port" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }
psql -c "CREATE ROLE iamlet LOGIN PASSWORD '$password'"
psql -c "CREATE DATABASE iamlet_bench OWNER iamlet"
echo "fsync: $(psql -c 'SHOW fsync'), synchronous_commit: $(psql -c 'SHOW synchronous_commit')"
url="postgres://iamlet:$password@127.0.0.1:$pg_port/iamlet_bench?sslmode=disable"

step "cargo bench --bench replication"
echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), load average $(cut -d' ' -f1-3 /proc/loadavg)"
# pipefail: a failing bench fails the script.
IAMLET_TEST_POSTGRES_URL="$url" cargo bench --bench replication -- "$@" 2>&1 | tee "$work/bench.log"
grep -q "^PostgreSQL, 3 replicas: admin writes, 8 writers, one tenant" "$work/bench.log" ||
    fail "the PostgreSQL arms did not run"
grep -q "$password" "$work/bench.log" && fail "the database password reached the output"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

step "done"
echo "ha bench: passed"
