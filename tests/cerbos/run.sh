#!/usr/bin/env bash
# Issue 19's peer over the wire (P9): the real Cerbos PDP (npm @cerbos/cerbos-linux-x64 0.55.0,
# pinned) beside iamlet's sidecar, driven by `iamlet bench compare`.
#
#   tests/cerbos/run.sh          the suite (.ci/run): a debug build, the agreement check on the
#                                demo tenant and its Cerbos translation (tests/cerbos/policies),
#                                a short comparison that must end without an error, and a
#                                mistranslated caller (no roles) that the check must refuse.
#   tests/cerbos/run.sh bench    the measurement of benches/README.md: a release build, the
#                                sidecar (its own process, no decision log) and Cerbos pinned to
#                                core 0, the generator to core 1, 5 alternating runs of 10 s at
#                                BENCH_RATE (default 2000/s) for hits and for the default mix's
#                                hit/miss ratio. Extra arguments go to `iamlet bench compare`.
#   IAMLET_BIN=path              use that binary instead of building one.
#
# Cerbos and its policies are installed by the script (npm into target/cerbos; Node.js from the
# machine's package manager if missing); every process runs on free loopback ports and is
# stopped on exit; a watchdog bounds the whole script by SUITE_TIMEOUT seconds (default 900).
# Never skips: a missing tool is installed or the suite fails.
set -euo pipefail
cd "$(dirname "$0")/../.."

MODE=${1:-suite}
[[ $# -gt 0 ]] && shift
CERBOS_VERSION=0.55.0
RIG_NAME="cerbos suite"
# The Envoy rig's process handling: rig_pids stopped on exit, logs of a failed run kept in
# rig_work, the watchdog (SUITE_TIMEOUT), rig_apt_install and rig_wait_ready. Its venv and
# Envoy are not used here.
# shellcheck source=tests/envoy/rig.sh
source tests/envoy/rig.sh
work=$rig_work

rig_step "Cerbos $CERBOS_VERSION"
command -v python3 >/dev/null 2>&1 || rig_apt_install python3
command -v npm >/dev/null 2>&1 || rig_apt_install nodejs npm
cerbos=target/cerbos/node_modules/@cerbos/cerbos-linux-x64/cerbos-linux-x64
if [[ ! -x $cerbos ]] || [[ $("$cerbos" --version | head -1) != "$CERBOS_VERSION" ]]; then
    mkdir -p target/cerbos
    timeout 300 npm install --prefix target/cerbos --no-audit --no-fund --silent \
        "@cerbos/cerbos-linux-x64@$CERBOS_VERSION"
fi
version=$("$cerbos" --version | head -1)
[[ $version == "$CERBOS_VERSION" ]] || { echo "$RIG_NAME: $cerbos is $version, not $CERBOS_VERSION" >&2; exit 1; }
export CERBOS_NO_TELEMETRY=1
# The translation compiles, and its own tests (none besides the agreement) do not fail.
"$cerbos" compile tests/cerbos/policies >"$work/compile.log" 2>&1 \
    || { cat "$work/compile.log" >&2; echo "$RIG_NAME: the Cerbos policies do not compile" >&2; exit 1; }

if [[ $MODE == bench ]]; then
    profile=release
    core0=(taskset -c 0)
    core1=(taskset -c 1)
    command -v taskset >/dev/null 2>&1 || rig_apt_install util-linux
else
    profile=debug
    core0=()
    core1=()
fi
rig_step "iamlet ($profile)"
if [[ -n ${IAMLET_BIN:-} ]]; then
    # A binary built beforehand (to measure a given commit without rebuilding).
    bin=$IAMLET_BIN
elif [[ $profile == release ]]; then
    cargo build --quiet --release --bin iamlet
    bin="$PWD/target/release/iamlet"
else
    cargo build --quiet --bin iamlet
    bin="$PWD/target/debug/iamlet"
fi

read -r cp_port cp_http_port sc_port sc_http_port bench_port bench_http_port bench_health_port \
    cerbos_grpc cerbos_http < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(9)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
for s in socks:
    s.close()
PY
)

rig_step "iamlet up (the control plane with the demo tenant)"
IAMLET_LOG=${IAMLET_LOG:-info} "$bin" up --data-dir "$work" \
    --control-plane-listen "127.0.0.1:$cp_port" \
    --control-plane-http-listen "127.0.0.1:$cp_http_port" \
    --listen "127.0.0.1:$sc_port" \
    --http-listen "127.0.0.1:$sc_http_port" >"$work/up.log" 2>&1 &
rig_pids+=($!)
rig_wait_ready "iamlet up" "$!" "http://127.0.0.1:$cp_http_port/readyz" "http://127.0.0.1:$sc_http_port/readyz"

# The measured sidecar is a process of its own (without the control plane, and without the
# decision log `up` turns on), so that its CPU time is the decisions' alone. It runs its
# default runtime, one thread (the current-thread scheduler).
rig_step "iamlet sidecar (measured)"
IAMLET_LOG=${IAMLET_LOG:-warn} "${core0[@]}" "$bin" sidecar \
    --control-plane "http://127.0.0.1:$cp_port" \
    --tenants 111122223333 --state-dir "$work/bench-sidecar" \
    --snapshot-keys "$work/snapshot-keys.pub" \
    --listen "127.0.0.1:$bench_port" \
    --http-listen "127.0.0.1:$bench_http_port" \
    --health-listen "127.0.0.1:$bench_health_port" >"$work/sidecar.log" 2>&1 &
sidecar_pid=$!
rig_pids+=($sidecar_pid)
rig_wait_ready "iamlet sidecar" "$sidecar_pid" "http://127.0.0.1:$bench_http_port/readyz"

rig_step "cerbos server"
"${core0[@]}" "$cerbos" server --config tests/cerbos/config.yaml --log-level=warn \
    --set="server.grpcListenAddr=127.0.0.1:$cerbos_grpc" \
    --set="server.httpListenAddr=127.0.0.1:$cerbos_http" >"$work/cerbos.log" 2>&1 &
cerbos_pid=$!
rig_pids+=($cerbos_pid)
rig_wait_ready cerbos "$cerbos_pid" "http://127.0.0.1:$cerbos_http/_cerbos/health"

compare=("$bin" bench compare --iamlet "http://127.0.0.1:$bench_port" \
    --cerbos "http://127.0.0.1:$cerbos_grpc" --iamlet-pid "$sidecar_pid" --cerbos-pid "$cerbos_pid")

if [[ $MODE == bench ]]; then
    rate=${BENCH_RATE:-2000}
    rig_step "hits: 5 alternating runs of 10 s at $rate/s"
    "${core1[@]}" "${compare[@]}" --rate "$rate" --duration 10s --warmup 2s --runs 5 \
        --mix authorize-hit=1 "$@"
    rig_step "hits and misses (7:2): 5 alternating runs of 10 s at $rate/s"
    "${core1[@]}" "${compare[@]}" --rate "$rate" --duration 10s --warmup 2s --runs 5 \
        --mix authorize-hit=7,authorize-miss=2 "$@"
    rig_step "done"
    exit 0
fi

rig_step "agreement, then two short runs of each server"
"${compare[@]}" --rate 200 --duration 2s --warmup 500ms --runs 2 \
    --mix authorize-hit=7,authorize-miss=2 | tee "$work/compare.out"
grep -Eq "both servers decide the [0-9]+ probes alike \\([1-9][0-9]* allowed, [1-9][0-9]* denied\\)" "$work/compare.out" \
    || { echo "$RIG_NAME: the agreement line is missing" >&2; exit 1; }
grep -q "the decisions per core of Cerbos" "$work/compare.out" \
    || { echo "$RIG_NAME: no CPU ratio was reported" >&2; exit 1; }

rig_step "a mistranslated caller is refused before anything is timed"
set +e
"${compare[@]}" --roles nobody --rate 200 --duration 1s --warmup 0s --runs 1 \
    >"$work/refused.out" 2>&1
status=$?
set -e
cat "$work/refused.out"
[[ $status -ne 0 ]] || { echo "$RIG_NAME: a disagreement was not refused" >&2; exit 1; }
grep -q "the servers do not agree" "$work/refused.out" \
    || { echo "$RIG_NAME: the refusal does not say the servers disagree" >&2; exit 1; }
if grep -q "CPU µs/decision" "$work/refused.out"; then
    echo "$RIG_NAME: runs were timed despite the disagreement" >&2
    exit 1
fi

rig_step "passed"
