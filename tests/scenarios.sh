#!/usr/bin/env bash
# Issue #13, end to end: the real `iamlet` binary on loopback, four bad days.
#
#   1. empty database  - the control plane loses iamlet.db: it refuses to start without
#                        --new-store; started with it, the sidecar keeps every tenant.
#   2. staleness       - the control plane is down and the sidecar crash-loops: each restart
#                        is as stale as the last contact it persisted, so it fails closed.
#   3. half-open       - a proxy stops forwarding without closing: the sidecar notices within
#                        keepalive interval + timeout, reconnects, and serves throughout.
#   4. update storm    - 200 changes to a 5,000-statement tenant from four writers at once:
#                        the applied version only moves forward, reaches the latest within
#                        2 s of the burst, and the sidecar's peak RSS stays under its
#                        baseline + 2 x snapshot x 2 (RELIABILITY T09).
#
# Usage: tests/scenarios.sh [--release]. Builds the binary with cargo, uses only loopback and
# python3's standard library (for the proxy and free ports), and stops within SCENARIO_TIMEOUT
# seconds (default 300). Exit status 0 when every scenario passed.
set -euo pipefail
cd "$(dirname "$0")/.."

# Never skipped: python3 is installed from the machine's package manager when absent.
if ! command -v python3 >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq python3 >/dev/null
fi

profile=debug
build=(cargo build --bin iamlet)
if [[ "${1:-}" == "--release" ]]; then
    profile=release
    build+=(--release)
fi
"${build[@]}"
bin="$PWD/target/$profile/iamlet"

# The whole script is bounded: a watchdog kills it (and so every process below) on overrun.
deadline=${SCENARIO_TIMEOUT:-300}
# (The sleep gets no terminal or pipe: killing the watchdog must release this script's output.)
( sleep "$deadline" </dev/null >/dev/null 2>&1
  echo "scenarios: timed out after ${deadline}s" >&2
  kill -TERM $$ ) &
watchdog=$!

work=$(mktemp -d "${TMPDIR:-/tmp}/iamlet-scenarios.XXXXXX")
pids=()
cleanup() {
    local status=$?
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    kill "$watchdog" 2>/dev/null || true
    if [[ $status -ne 0 ]]; then
        echo "scenarios: FAILED; logs kept in $work" >&2
        tail -n 20 "$work"/*.log >&2 2>/dev/null || true
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

A=111122223333
ALICE="arn:aws:iam::$A:user/eng/alice"
SPEC="$PWD/tests/fixtures/tenant-spec.yaml"
export IAMLET_LOG=info

say() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# Waits up to $1 seconds for the command after it to succeed.
wait_for() {
    local bound=$1; shift
    local until=$((SECONDS + bound))
    until "$@" >/dev/null 2>&1; do
        [[ $SECONDS -lt $until ]] || return 1
        sleep 0.1
    done
}
start() { # start NAME ARGS... : runs the binary in the background, logging to NAME.log
    local name=$1; shift
    "$bin" "$@" >"$work/$name.log" 2>&1 &
    last_pid=$!
    pids+=("$last_pid")
    disown "$last_pid" # killed on purpose: no "Killed" notices
}
status_field() { # status_field SIDECAR_PORT PYTHON_EXPR (on `s`, the status JSON)
    "$bin" status --sidecar "http://127.0.0.1:$1" 2>/dev/null |
        python3 -c "import json,sys; s=json.load(sys.stdin); print($2)"
}
ready() { [[ "$(status_field "$1" 's["Ready"]')" == True ]]; }
connected() { [[ "$(status_field "$1" 's["Connected"]')" == True ]]; }
allowed() { "$bin" authorize --sidecar "http://127.0.0.1:$1" --principal "$ALICE" \
    --action s3:GetObject --resource arn:aws:s3:::reports/q3.csv >/dev/null 2>&1; }
control_plane() { # control_plane NAME DATA PORT ARGS...
    local name=$1 data=$2 port=$3; shift 3
    start "$name" control-plane --data-dir "$data" --listen "127.0.0.1:$port" "$@"
}
# The control plane in "$data" writes the sidecars' snapshot trust file once its store is open.
trust_file() {
    wait_for 60 test -s "$data/snapshot-keys.pub" || fail "no snapshot trust file in $data"
    echo "$data/snapshot-keys.pub"
}
sidecar() { # sidecar NAME STATE CP_PORT PORT ARGS...
    local name=$1 state=$2 cp=$3 port=$4; shift 4
    start "$name" sidecar --control-plane "http://127.0.0.1:$cp" --state-dir "$state" \
        --listen "127.0.0.1:$port" --snapshot-keys "$(trust_file)" "$@"
}

# ---------------------------------------------------------------------------------------------
say "1. empty database: never empties the fleet"
data="$work/cp1" state="$work/sc1" cp=$(free_port) sc=$(free_port)
control_plane cp1 "$data" "$cp" --apply "$SPEC"; cp_pid=$last_pid
sidecar sc1 "$state" "$cp" "$sc" --tenants '*'
wait_for 60 ready "$sc" || fail "the sidecar never became ready"
allowed "$sc" || fail "alice is not allowed before the loss"
kill -KILL "$cp_pid"
rm -f "$data"/iamlet.db "$data"/iamlet.db-wal "$data"/iamlet.db-shm
set +e
timeout 30 "$bin" control-plane --data-dir "$data" --listen "127.0.0.1:$cp" \
    >"$work/cp1-refused.log" 2>&1
refused=$?
set -e
[[ $refused -eq 64 ]] || fail "a control plane without its database exited $refused, not 64"
grep -q -- "--new-store" "$work/cp1-refused.log" || fail "the refusal does not name --new-store"
echo "refused to start without its database (exit 64)"
control_plane cp1-new "$data" "$cp" --new-store
wait_for 60 grep -q "kept tenant $A" "$work/sc1.log" ||
    fail "the sidecar did not report keeping tenant $A"
[[ -f "$state/tenant-$A.json" ]] || fail "the tenant's state file was deleted"
allowed "$sc" || fail "alice is no longer allowed: the tenant was removed"
grep -q "removing tenant $A" "$work/sc1.log" && fail "the sidecar removed tenant $A"
echo "the sidecar kept tenant $A and still allows alice"
for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
pids=()

# ---------------------------------------------------------------------------------------------
say "2. staleness survives restarts"
data="$work/cp2" state="$work/sc2" cp=$(free_port) sc=$(free_port)
stale=(--tenants "$A" --max-serve-stale 3s --max-issue-stale 1s)
control_plane cp2 "$data" "$cp" --apply "$SPEC"; cp_pid=$last_pid
sidecar sc2 "$state" "$cp" "$sc" "${stale[@]}"; sc_pid=$last_pid
wait_for 60 ready "$sc" || fail "the sidecar never became ready"
allowed "$sc" || fail "alice is not allowed while fresh"
sleep 1.5 # the last contact is persisted at most once a second
kill -KILL "$cp_pid"
lost=$SECONDS
for round in 1 2 3; do
    kill -KILL "$sc_pid"
    sleep 1.2
    sidecar "sc2-restart$round" "$state" "$cp" "$sc" "${stale[@]}"; sc_pid=$last_pid
    wait_for 30 ready "$sc" || fail "restart $round: not ready from its state files"
    if [[ $((SECONDS - lost)) -ge 4 ]]; then
        allowed "$sc" && fail "restart $round: allowed $((SECONDS - lost))s after the last contact"
        ms=$(status_field "$sc" 's["StalenessMs"]')
        [[ "$ms" != None && "$ms" -ge 3000 ]] || fail "restart $round: StalenessMs is $ms"
        echo "restart $round: refused as stale, StalenessMs $ms"
    fi
done
"$bin" authorize --sidecar "http://127.0.0.1:$sc" --principal "$ALICE" --action s3:GetObject \
    --resource arn:aws:s3:::reports/q3.csv >"$work/stale-answer.txt" 2>&1 || true
grep -q StalePolicy "$work/stale-answer.txt" || fail "the refusal is not StalePolicy"
for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
pids=()

# ---------------------------------------------------------------------------------------------
say "3. a half-open connection is noticed"
data="$work/cp3" state="$work/sc3" cp=$(free_port) px=$(free_port) sc=$(free_port)
cat >"$work/proxy.py" <<'PY'
# A TCP proxy that, on SIGUSR1, stops forwarding on its open connections without closing
# them (a half-open link); new connections forward normally. It writes how many it accepted.
import signal, socket, sys, threading
listen, upstream, count_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
cut, accepted, lock = [], [0], threading.Lock()
def blackhole(*_):
    with lock:
        for flag in cut: flag.set()
        cut.clear()
signal.signal(signal.SIGUSR1, blackhole)
def pipe(src, dst, flag):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                if flag.is_set(): threading.Event().wait()  # swallow the close too
                return
            if not flag.is_set(): dst.sendall(data)
    except OSError:
        return
server = socket.socket(); server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", listen)); server.listen(16)
while True:
    down, _ = server.accept()
    try:
        up = socket.create_connection(("127.0.0.1", upstream))
    except OSError:
        # The control plane is not listening yet: refuse this one, as it would, and go on
        # (only forwarded connections are counted).
        down.close()
        continue
    flag = threading.Event()
    with lock:
        cut.append(flag); accepted[0] += 1
        open(count_file, "w").write(str(accepted[0]))
    for a, b in ((down, up), (up, down)):
        threading.Thread(target=pipe, args=(a, b, flag), daemon=True).start()
PY
control_plane cp3 "$data" "$cp" --apply "$SPEC"
python3 "$work/proxy.py" "$px" "$cp" "$work/accepted" >"$work/proxy.log" 2>&1 &
proxy=$!; pids+=("$proxy"); disown "$proxy"
start sc3 sidecar --control-plane "http://127.0.0.1:$px" --state-dir "$state" \
    --listen "127.0.0.1:$sc" --tenants "$A" --snapshot-keys "$(trust_file)" \
    --keepalive-interval 2s --keepalive-timeout 2s --sync-idle-timeout 10m
wait_for 60 ready "$sc" || fail "the sidecar never became ready"
connected "$sc" || fail "not connected"
[[ "$(cat "$work/accepted")" == 1 ]] || fail "expected one connection through the proxy"
kill -USR1 "$proxy"
cut_at=$(date +%s.%N)
until [[ "$(cat "$work/accepted")" -ge 2 ]]; do
    allowed "$sc" || fail "a decision failed while the link was dead"
    elapsed=$(python3 -c "import time; print(time.time() - $cut_at)")
    python3 -c "import sys; sys.exit(0 if $elapsed < 30 else 1)" ||
        fail "the dead connection was not noticed in 30 s"
    sleep 0.1
done
elapsed=$(python3 -c "import time; print(round(time.time() - $cut_at, 2))")
# keepalive interval + timeout = 4 s, with 3 s of slack for a loaded machine.
python3 -c "import sys; sys.exit(0 if $elapsed < 7 else 1)" ||
    fail "noticed after ${elapsed}s, past keepalive interval + timeout"
wait_for 30 connected "$sc" || fail "not connected again"
allowed "$sc" || fail "alice is not allowed after the reconnection"
echo "noticed and reconnected after ${elapsed}s (keepalive 2s + 2s), serving throughout"

for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
pids=()

# ---------------------------------------------------------------------------------------------
say "4. an update storm: versions only move forward, memory stays bounded (T09)"
data="$work/cp4" state="$work/sc4" cp=$(free_port) sc=$(free_port)
# A large tenant: 200 managed policies of 25 statements each (5,000 statements, each policy
# under IAM's 6,144-character quota), ten of them attached to one of alice's groups.
python3 - "$work/big.yaml" <<'PY'
import json, sys
policies = [{
    "PolicyName": f"Big{p}",
    "PolicyDocument": {"Version": "2012-10-17", "Statement": [
        {"Sid": f"S{p}x{i}", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
         "Resource": f"arn:aws:s3:::bucket-{p}-{i}/prefix/*",
         "Condition": {"StringEquals": {"aws:PrincipalTag/team": f"team-{i}"}}}
        for i in range(25)]},
} for p in range(200)]
spec = {
    "AccountId": "111122223333",
    "ManagedPolicies": policies + [{"PolicyName": "ReadReports", "PolicyDocument": {
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::reports/*"}]}}],
    "Groups": [{"GroupName": "analysts", "ManagedPolicyArns":
        ["arn:aws:iam::111122223333:policy/ReadReports"]},
        {"GroupName": "big", "ManagedPolicyArns":
        [f"arn:aws:iam::111122223333:policy/Big{p}" for p in range(10)]}],
    "Users": [{"UserName": "alice", "Path": "/eng/", "Groups": ["analysts", "big"]}],
}
open(sys.argv[1], "w").write(json.dumps(spec))
PY
admin() {
    AWS_SHARED_CREDENTIALS_FILE="$data/operator-credentials" "$bin" admin \
        --endpoint "http://127.0.0.1:$cp" --profile iamlet-operator "$@"
}
# The sidecar starts before its tenant exists, so that the tenant's cost in memory can be read:
# its resident size once the tenant is served, less its size before.
control_plane cp4 "$data" "$cp"
wait_for 30 test -f "$data/operator-credentials" || fail "the control plane did not start"
sidecar sc4 "$state" "$cp" "$sc" --tenants "$A"; sc_pid=$last_pid
wait_for 30 connected "$sc" || fail "the sidecar did not connect"
rss_kib() { awk "/^$1:/ {print \$2}" "/proc/$sc_pid/status"; }
empty=$(rss_kib VmRSS)
admin apply -f "$work/big.yaml" >/dev/null || fail "the large tenant was not applied"
wait_for 60 ready "$sc" || fail "the sidecar never became ready"
allowed "$sc" || fail "alice is not allowed before the storm"
baseline=$(rss_kib VmRSS)
snapshot_kib=$((baseline - empty))
applied() { status_field "$sc" '[t["Version"] for t in s["Tenants"] if t["Tenant"] == "'"$A"'"][0]'; }
first=$(applied)
# 200 changes from four writers at once, each a new version of the whole large tenant.
storm() { for i in $(seq "$1" 4 200); do admin create-user --tenant "$A" --user-name "u$i" >/dev/null; done; }
versions="$work/storm-versions"
( while sleep 0.05; do applied >>"$versions" 2>/dev/null || true; done ) &
sampler=$!; pids+=("$sampler"); disown "$sampler"
storm_started=$SECONDS
storm 1 & w1=$!; storm 2 & w2=$!; storm 3 & w3=$!; storm 4 & w4=$!
wait "$w1" "$w2" "$w3" "$w4" || fail "a write of the storm failed"
burst_s=$((SECONDS - storm_started))
latest=$(admin list-tenants | python3 -c "import json,sys
for t in json.load(sys.stdin)['Tenants']:
    if t['AccountId'] == '$A': print(f\"{t['Version']['Epoch']}.{t['Version']['Seq']}\")")
caught_up() { [[ "$(applied)" == "$latest" ]]; }
burst_end=$(date +%s.%N)
wait_for 60 caught_up || fail "the sidecar did not reach $latest within 60 s of the burst (at $(applied))"
catch_up=$(python3 -c "import time; print(round(time.time() - $burst_end, 2))")
echo "caught up with $latest ${catch_up}s after the burst"
kill -KILL "$sampler" 2>/dev/null || true
python3 - "$versions" "$first" <<'PY' || fail "the applied version went backwards"
import sys
seen = [l.strip() for l in open(sys.argv[1]) if l.strip()]
key = lambda v: tuple(int(x) for x in v.split("."))
seen = [sys.argv[2]] + seen
assert all(key(a) <= key(b) for a, b in zip(seen, seen[1:])), seen
print(f"{len(set(seen))} distinct versions applied of 201 written (coalesced), never backwards")
PY
peak=$(rss_kib VmHWM)
bound=$((baseline + 4 * snapshot_kib))
echo "200 changes in ${burst_s}s; sidecar RSS: ${empty} KiB without the tenant, ${baseline} KiB with it (the snapshot: ${snapshot_kib} KiB), peak ${peak} KiB; bound ${bound} KiB"
[[ $peak -lt $bound ]] || fail "peak RSS ${peak} KiB over baseline + 2 x snapshot x 2 = ${bound} KiB"
allowed "$sc" || fail "alice is not allowed after the storm"

say "all scenarios passed"
