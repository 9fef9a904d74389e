#!/usr/bin/env bash
# Issue 16's PostgreSQL suite: the store's whole test suite against SQLite and PostgreSQL (one
# parametrized suite, src/control_plane/store/tests.rs), then the real `iamlet control-plane
# --store postgres://…`: migrate, an admin write, a restart on an empty data directory that
# keeps the tenant (it lives in the database), a start while the database is unreachable
# that waits rather than exits, and two replicas on one database that follow each other
# (LISTEN/NOTIFY): a write through one is read through the other, and served by a sidecar
# that follows the other, within 2 s.
#
# Makes a throwaway cluster in a temporary directory as the unprivileged `postgres` user
# (initdb refuses root), listening on a free loopback port and a socket in that directory;
# PostgreSQL is installed from the machine's package manager when initdb is absent. The
# cluster and every process are removed on exit.
#
# Usage: tests/ha/run.sh. Bounded by SUITE_TIMEOUT seconds (default 900); never skips. Exit
# status 0 when every check passed.
set -euo pipefail
cd "$(dirname "$0")/../.."

deadline=${SUITE_TIMEOUT:-900}
# The whole suite is bounded: a watchdog kills it (and so every process below) on overrun.
( sleep "$deadline" </dev/null >/dev/null 2>&1
  echo "ha suite: timed out after ${deadline}s" >&2
  kill -TERM $$ ) &
watchdog=$!

work=$(mktemp -d "${TMPDIR:-/tmp}/iamlet-ha.XXXXXX")
pg_bin=""
cp_pid=""
# Replicas and sidecars of the last step.
pids=()
cleanup() {
    local status=$?
    # Newest first: sidecars before the replicas whose streams they hold.
    local all=("$cp_pid")
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do all+=("${pids[i]}"); done
    for pid in "${all[@]}"; do
        [[ -n "$pid" ]] || continue
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [[ -n "$pg_bin" && -f "$work/pg/postmaster.pid" ]]; then
        runuser -u postgres -- "$pg_bin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
    fi
    kill "$watchdog" 2>/dev/null || true
    if [[ $status -ne 0 ]]; then
        echo "ha suite: FAILED; logs kept in $work" >&2
        tail -n 30 "$work"/cp*.log "$work"/replica*.log "$work"/sidecar*.log >&2 2>/dev/null || true
        tail -n 20 "$work/pg.log" >&2 2>/dev/null || true
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 124' TERM

step() { printf '\n== ha suite: %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }
fail() { echo "ha suite: $*" >&2; exit 1; }

step "PostgreSQL"
# shellcheck source=tests/ha/postgres.sh
source tests/ha/postgres.sh
ensure_pg
read -r pg_port cp_port cp_http_port dead_port < <(free_ports 4)
password="ha-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
chown postgres "$work"
chmod 0755 "$work"
mkdir -p "$work/sock" && chown postgres "$work/sock"
printf '%s\n' "$password" >"$work/pwfile" && chown postgres "$work/pwfile"
# Password (SCRAM) authentication over TCP, as a real deployment; trust on the socket, which
# only the suite's directory reaches.
runuser -u postgres -- "$pg_bin/initdb" -D "$work/pg" -U postgres --auth-local=trust \
    --auth-host=scram-sha-256 >"$work/initdb.log" 2>&1 || { cat "$work/initdb.log"; fail "initdb failed"; }
# The TLS database takes no plain connection: the TLS check below cannot pass in the clear.
sed -i '1i hostnossl iamlet_tls all 127.0.0.1/32 reject' "$work/pg/pg_hba.conf"
# TLS for the store's rustls client: a CA made here, a server certificate for localhost.
command -v openssl >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }
tls="$work/tls"
mkdir -p "$tls"
make_ca() {
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$1" -keyout "$tls/$1.key" \
        -out "$tls/$1.pem" -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}
make_ca ca && make_ca other-ca
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$tls/server.key" \
    -out "$tls/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$tls/ext"
openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
    -days 2 -out "$tls/server.pem" -extfile "$tls/ext" 2>/dev/null
chown postgres "$tls/server.key" "$tls/server.pem" && chmod 0600 "$tls/server.key"
pg_start() {
    runuser -u postgres -- "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w -t 60 -o \
        "-c listen_addresses=127.0.0.1 -p $pg_port -k $work/sock -c fsync=off -c ssl=on -c ssl_cert_file=$tls/server.pem -c ssl_key_file=$tls/server.key" \
        start >/dev/null
}
pg_start
psql() { runuser -u postgres -- "$pg_bin/psql" -h "$work/sock" -p "$pg_port" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }
psql -c "CREATE ROLE iamlet LOGIN PASSWORD '$password'"
psql -c "CREATE DATABASE iamlet OWNER iamlet"
psql -c "CREATE DATABASE iamlet_cp OWNER iamlet"
url="postgres://iamlet:$password@127.0.0.1:$pg_port/iamlet?sslmode=disable"

step "the store suite on SQLite and PostgreSQL"
# Every store test, the PostgreSQL variants included (they are ignored without a database).
IAMLET_TEST_POSTGRES_URL="$url" timeout 900 cargo test --lib control_plane::store:: \
    -- --include-ignored 2>&1 | tee "$work/store-tests.log"
passed=$(sed -n 's/^test result: ok\. \([0-9]*\) passed.*/\1/p' "$work/store-tests.log" | tail -n 1)
ran_pg=$(grep -c '^test control_plane::store::tests::postgres.* ok$' "$work/store-tests.log" || true)
[[ "${passed:-0}" -ge 20 && "$ran_pg" -ge 10 ]] ||
    fail "expected the whole suite on both stores, saw ${passed:-0} passed, $ran_pg on PostgreSQL"

step "iamlet control-plane migrate"
cargo build --quiet --bin iamlet
bin="$PWD/target/debug/iamlet"
store="postgres://iamlet@127.0.0.1:$pg_port/iamlet_cp?sslmode=disable"
keys="$work/keys"
mkdir -p "$keys"
timeout 60 "$bin" control-plane migrate --store "$store" --store-password-file "$work/pwfile" \
    >"$work/migrate.log" 2>&1 || { cat "$work/migrate.log"; fail "migrate failed"; }
grep -q "at version 4 (was 0)" "$work/migrate.log" || { cat "$work/migrate.log"; fail "migrate did not report 0 -> 4"; }
timeout 60 "$bin" control-plane migrate --store "$store" --store-password-file "$work/pwfile" \
    >"$work/migrate2.log" 2>&1
grep -q "at version 4 (was 4)" "$work/migrate2.log" || { cat "$work/migrate2.log"; fail "a second migrate was not a no-op"; }

# A control plane on the database: its data directory holds no tenant, only what it is told.
start_cp() {
    local data=$1 log=$2
    IAMLET_LOG=${IAMLET_LOG:-info} "$bin" control-plane --data-dir "$data" \
        --store "$store" --store-password-file "$work/pwfile" \
        --secrets-key-file "$keys/secrets.key" --operator-credentials "$keys/operator-credentials" \
        --listen "127.0.0.1:$cp_port" --http-listen "127.0.0.1:$cp_http_port" >"$log" 2>&1 &
    cp_pid=$!
    for _ in $(seq 300); do
        kill -0 "$cp_pid" 2>/dev/null || fail "the control plane exited: $(tail -n 5 "$log")"
        if curl -fsS "http://127.0.0.1:$cp_http_port/readyz" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    fail "the control plane was not ready within 30s"
}
stop_cp() {
    kill -TERM "$cp_pid"
    for _ in $(seq 100); do kill -0 "$cp_pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$cp_pid" 2>/dev/null && fail "the control plane did not stop"
    cp_pid=""
}
admin() {
    AWS_SHARED_CREDENTIALS_FILE="$keys/operator-credentials" timeout 30 "$bin" admin \
        --endpoint "http://127.0.0.1:$cp_port" --profile iamlet-operator "$@"
}

step "an admin write, then a restart on an empty data directory"
start_cp "$work/cp1" "$work/cp1.log"
admin create-tenant --account-id 111122223333 --alias ha-demo >/dev/null
admin create-user --tenant 111122223333 --user-name alice >/dev/null
stop_cp
[[ ! -e "$work/cp1/iamlet.db" ]] || fail "a SQLite database was made beside the PostgreSQL store"
start_cp "$work/cp2" "$work/cp2.log"
admin list-tenants | grep -q 111122223333 || fail "the tenant did not survive the restart"
admin get-user --tenant 111122223333 --user-name alice | grep -q alice ||
    fail "the user did not survive the restart"
# The version goes on from the database's, never from 1.
admin create-user --tenant 111122223333 --user-name bob >/dev/null
seq=$(psql -d iamlet_cp -c "SELECT seq FROM tenants WHERE account_id = '111122223333'")
[[ "$seq" == 3 ]] || fail "expected change 3 after three writes, the database holds $seq"

step "the database lost, then back"
runuser -u postgres -- "$pg_bin/pg_ctl" -D "$work/pg" -m fast -w stop >/dev/null
admin create-user --tenant 111122223333 --user-name carol >"$work/lost.out" 2>&1 &&
    fail "a write succeeded without its database"
grep -q "ServiceUnavailable" "$work/lost.out" ||
    fail "a write without its database was not a retryable ServiceUnavailable: $(cat "$work/lost.out")"
sed "s/^/  refused as it should be: /" "$work/lost.out"
admin list-tenants | grep -q 111122223333 || fail "reads stopped with the database"
pg_start
admin create-user --tenant 111122223333 --user-name carol >/dev/null ||
    fail "writes did not resume once the database was back"
seq=$(psql -d iamlet_cp -c "SELECT seq FROM tenants WHERE account_id = '111122223333'")
[[ "$seq" == 4 ]] || fail "expected change 4 (the refused write recorded nothing), found $seq"
stop_cp
grep -q "$password" "$work"/cp*.log "$work"/migrate*.log && fail "the database password reached a log"

step "TLS: verified against the CA, refused with another"
psql -c "CREATE DATABASE iamlet_tls OWNER iamlet"
tls_store="postgres://iamlet@localhost:$pg_port/iamlet_tls?sslmode=verify-full&sslrootcert=$tls/ca.pem"
timeout 60 "$bin" control-plane migrate --store "$tls_store" --store-password-file "$work/pwfile" \
    >"$work/migrate-tls.log" 2>&1 || { cat "$work/migrate-tls.log"; fail "migrate over TLS failed"; }
grep -q "at version 4 (was 0)" "$work/migrate-tls.log" || fail "migrate over TLS did not migrate"
timeout 60 "$bin" control-plane migrate --store "${tls_store/ca.pem/other-ca.pem}" \
    --store-password-file "$work/pwfile" >"$work/migrate-bad-ca.log" 2>&1 &&
    fail "a server certificate from another CA was accepted"
sed "s/^/  refused as it should be: /" "$work/migrate-bad-ca.log"
grep -qi "certificate\|TLS" "$work/migrate-bad-ca.log" ||
    fail "the refusal does not name the certificate: $(cat "$work/migrate-bad-ca.log")"
grep -q "$password" "$work"/migrate-*.log && fail "the database password reached a log"

step "a start while the database is unreachable waits and retries"
IAMLET_LOG=info "$bin" control-plane --data-dir "$work/cp3" \
    --store "postgres://iamlet:$password@127.0.0.1:$dead_port/iamlet_cp?sslmode=disable" \
    --secrets-key-file "$keys/secrets.key" --operator-credentials "$keys/operator-credentials" \
    --listen "127.0.0.1:$cp_port" >"$work/cp3.log" 2>&1 &
cp_pid=$!
sleep 3
kill -0 "$cp_pid" 2>/dev/null || fail "the control plane exited instead of waiting: $(tail -n 3 "$work/cp3.log")"
[[ $(grep -c "cannot reach the store.*retrying" "$work/cp3.log") -ge 2 ]] ||
    fail "no retries were logged: $(tail -n 3 "$work/cp3.log")"
grep -q "$password" "$work/cp3.log" && fail "the database password reached a log"
{ kill -KILL "$cp_pid"; wait "$cp_pid"; } 2>/dev/null || true
cp_pid=""

step "two replicas follow each other through the database's notices"
read -r r1_port r1_http r2_port r2_http sc_port < <(free_ports 5)
# The catch-up poll is a minute away: within 2 s, only a notice brings the change.
start_replica() { # start_replica NAME PORT HTTP_PORT
    IAMLET_LOG=info "$bin" control-plane --data-dir "$work/$1" \
        --store "$store" --store-password-file "$work/pwfile" \
        --secrets-key-file "$keys/secrets.key" --operator-credentials "$keys/operator-credentials" \
        --listen "127.0.0.1:$2" --http-listen "127.0.0.1:$3" --catch-up-interval 60s \
        >"$work/$1.log" 2>&1 &
    pids+=("$!")
    local pid=$!
    for _ in $(seq 300); do
        kill -0 "$pid" 2>/dev/null || fail "replica $1 exited: $(tail -n 5 "$work/$1.log")"
        if curl -fsS "http://127.0.0.1:$3/readyz" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    fail "replica $1 was not ready within 30s"
}
admin_at() { # admin_at PORT ARGS...
    local port=$1; shift
    AWS_SHARED_CREDENTIALS_FILE="$keys/operator-credentials" timeout 30 "$bin" admin \
        --endpoint "http://127.0.0.1:$port" --profile iamlet-operator "$@"
}
# Milliseconds since $1 (an $EPOCHREALTIME).
since_ms() { python3 -c "import sys,time; print(int((time.time()-float(sys.argv[1]))*1000))" "$1"; }
# Runs the command after $1 until it succeeds, at most $1 ms; prints the ms it took.
within_ms() {
    local bound=$1 start=$EPOCHREALTIME; shift
    until "$@" >/dev/null 2>&1; do
        [[ $(since_ms "$start") -lt $bound ]] || return 1
        sleep 0.02
    done
    since_ms "$start"
}
start_replica replica1 "$r1_port" "$r1_http"
start_replica replica2 "$r2_port" "$r2_http"
# Replica 2 writes the snapshot trust file of its signing key once its store is open.
for _ in $(seq 300); do [[ -s "$work/replica2/snapshot-keys.pub" ]] && break; sleep 0.1; done
[[ -s "$work/replica2/snapshot-keys.pub" ]] || fail "replica 2 wrote no snapshot trust file"
"$bin" sidecar --control-plane "http://127.0.0.1:$r2_port" --state-dir "$work/sidecar" \
    --snapshot-keys "$work/replica2/snapshot-keys.pub" \
    --listen "127.0.0.1:$sc_port" --tenants '*' >"$work/sidecar.log" 2>&1 &
pids+=("$!")
sidecar_ready() {
    "$bin" status --sidecar "http://127.0.0.1:$sc_port" 2>/dev/null |
        python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["Ready"] else 1)' 2>/dev/null
}
for _ in $(seq 300); do sidecar_ready && break; sleep 0.1; done
sidecar_ready || fail "the sidecar following replica 2 was not ready within 30s"
# Each replica has read the store once; from here on replica 2 takes no write.
admin_at "$r1_port" create-user --tenant 111122223333 --user-name dave >/dev/null
ms=$(within_ms 2000 admin_at "$r2_port" get-user --tenant 111122223333 --user-name dave) ||
    fail "replica 2 did not show the user written through replica 1 within 2 s"
echo "replica 2 showed the write through replica 1 after ${ms} ms"
dave_may_read() {
    "$bin" authorize --sidecar "http://127.0.0.1:$sc_port" \
        --principal arn:aws:iam::111122223333:user/dave \
        --action s3:GetObject --resource arn:aws:s3:::reports/q3.csv
}
dave_may_read >/dev/null 2>&1 && fail "dave was allowed before any policy"
admin_at "$r1_port" put-user-policy --tenant 111122223333 --user-name dave --policy-name read \
    --policy-document '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}' >/dev/null
ms=$(within_ms 2000 dave_may_read) ||
    fail "the sidecar following replica 2 did not serve the policy written through replica 1 within 2 s"
echo "the sidecar following replica 2 allowed dave after ${ms} ms"

step "PostgreSQL restarted: the replicas listen again and catch up"
runuser -u postgres -- "$pg_bin/pg_ctl" -D "$work/pg" -m fast -w stop >/dev/null
pg_start
# A pooled connection the restart closed may fail one write (retryable): the CLI is retried.
wrote=""
for _ in $(seq 20); do
    if admin_at "$r1_port" create-user --tenant 111122223333 --user-name erin >/dev/null 2>&1; then
        wrote=yes; break
    fi
    sleep 0.2
done
[[ -n "$wrote" ]] || fail "replica 1 took no write after the database restarted"
# The listener reconnects with backoff (at most 5 s) and polls as soon as it listens again.
ms=$(within_ms 8000 admin_at "$r2_port" get-user --tenant 111122223333 --user-name erin) ||
    fail "replica 2 did not catch up within 8 s of a write after the database restarted"
echo "after the restart, replica 2 showed the write through replica 1 after ${ms} ms"
grep -q "lost the connection listening for other replicas' changes" "$work/replica2.log" ||
    fail "replica 2 did not notice its listening connection was lost"
grep -q "$password" "$work"/replica*.log && fail "the database password reached a log"

# ==== multi-replica faults (issue #16): tests/ha/replicas.py =====================================
# Three replicas and three sidecars following all of them, on this cluster: concurrent writes
# through two replicas, a SIGKILL during writes, PostgreSQL stopped and started under them, and a
# replica started while it is down. Measured figures go to stderr. The script bounds itself
# (--deadline) and stops its processes; it lists them in replicas.pids for the cleanup above,
# should it be killed itself.
step "multi-replica faults (tests/ha/replicas.py)"
{
    echo '#!/usr/bin/env bash'
    echo '# pgctl start|stop: the suite'"'"'s cluster, for tests/ha/replicas.py.'
    echo 'set -euo pipefail'
    declare -p pg_bin work pg_port tls
    declare -f pg_start
    echo 'case $1 in'
    echo '    start) pg_start ;;'
    echo '    stop) runuser -u postgres -- "$pg_bin/pg_ctl" -D "$work/pg" -m fast -w stop >/dev/null ;;'
    echo '    *) echo "usage: pgctl start|stop" >&2; exit 2 ;;'
    echo 'esac'
} >"$work/pgctl"
chmod +x "$work/pgctl"
replicas_status=0
timeout -k 10 300 python3 tests/ha/replicas.py --bin "$bin" --store "$store" \
    --password-file "$work/pwfile" --keys "$keys" --work "$work" --pgctl "$work/pgctl" \
    --deadline 240 || replicas_status=$?
while read -r pid; do pids+=("$pid"); done < <(cat "$work/replicas.pids" 2>/dev/null || true)
[[ $replicas_status -eq 0 ]] || fail "the multi-replica steps failed (status $replicas_status)"
# ==== end of multi-replica faults ================================================================

step "migrate-store: a SQLite control plane's store moved into PostgreSQL, versions kept"
# A control plane on SQLite (no --store) with a tenant and a change, then stopped. Its key file
# is the one the PostgreSQL steps made (the copy keeps secrets sealed under it), so the data
# directory looks initialized: --new-store says the empty database is meant.
IAMLET_LOG=info "$bin" control-plane --data-dir "$work/cp-sqlite" --new-store \
    --secrets-key-file "$keys/secrets.key" --operator-credentials "$keys/operator-credentials" \
    --listen "127.0.0.1:$cp_port" --http-listen "127.0.0.1:$cp_http_port" >"$work/cp-sqlite.log" 2>&1 &
cp_pid=$!
for _ in $(seq 300); do curl -fsS "http://127.0.0.1:$cp_http_port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "http://127.0.0.1:$cp_http_port/readyz" >/dev/null 2>&1 || fail "the SQLite control plane was not ready within 30s"
admin create-tenant --account-id 444455556666 --alias moved >/dev/null
admin create-user --tenant 444455556666 --user-name frank >/dev/null
admin list-tenants >"$work/tenants-sqlite.json"
stop_cp
psql -c "CREATE DATABASE iamlet_moved OWNER iamlet"
store="postgres://iamlet@127.0.0.1:$pg_port/iamlet_moved?sslmode=disable"
move() {
    timeout 120 "$bin" control-plane migrate-store --from "$work/cp-sqlite" --to "$store" \
        --to-password-file "$work/pwfile" --secrets-key-file "$keys/secrets.key"
}
move >"$work/migrate-store.log" 2>&1 || { cat "$work/migrate-store.log"; fail "migrate-store failed"; }
cat "$work/migrate-store.log"
grep -q "copied 1 tenant(s) (0 of them deleted), 2 change(s)" "$work/migrate-store.log" ||
    fail "migrate-store did not report the tenant and its two changes"
status=0; move >"$work/migrate-store2.log" 2>&1 || status=$?
[[ $status == 64 ]] && grep -q "is not empty" "$work/migrate-store2.log" ||
    fail "a second copy into the database was not refused (status $status): $(cat "$work/migrate-store2.log")"
# The control plane on PostgreSQL serves the tenant at the same versions (store epoch and
# change number), and numbering goes on from there.
start_cp "$work/cp-moved" "$work/cp-moved.log"
admin list-tenants >"$work/tenants-moved.json"
diff "$work/tenants-sqlite.json" "$work/tenants-moved.json" ||
    fail "the tenants' versions on PostgreSQL differ from SQLite's"
admin get-user --tenant 444455556666 --user-name frank | grep -q frank || fail "the user was not moved"
admin create-user --tenant 444455556666 --user-name grace >/dev/null
seq=$(psql -d iamlet_moved -c "SELECT seq FROM tenants WHERE account_id = '444455556666'")
[[ "$seq" == 3 ]] || fail "expected change 3 after the move and one write, the database holds $seq"
stop_cp
grep -q "$password" "$work"/migrate-store*.log && fail "the database password reached a log"

step "done"
echo "ha suite: passed"
