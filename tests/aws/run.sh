#!/usr/bin/env bash
# Issue 14's interop suite: unmodified AWS SDKs and the AWS CLI against the real `iamlet`.
#
# Makes its own virtual environment (${IAMLET_AWS_VENV:-target/aws-venv}) with pinned awscli,
# boto3 and botocore from PyPI, starts `iamlet up` (control plane and sidecar, demo tenant) on
# free loopback ports, waits until both HTTP edges answer /readyz, then runs every
# tests/aws/test_*.py with stdlib unittest. The variables the tests read are listed in
# tests/aws/common.py; every other AWS_* variable is cleared so the caller's AWS setup
# cannot leak in.
#
# Usage: tests/aws/run.sh [TEST…] (unittest names such as test_iam.ErrorsAreAwsErrors; all by
# default). Bounded by SUITE_TIMEOUT seconds (default 900); never skips: a
# missing python3 or venv module is installed from the machine's package manager. Exit status
# 0 when every test passed.
set -euo pipefail
cd "$(dirname "$0")/../.."

# Exactly what `pip install awscli==1.46.2 boto3` resolved to (checked with
# `pip install --dry-run` in a fresh environment).
PINS=(
    awscli==1.46.2
    boto3==1.44.8
    botocore==1.44.8
    s3transfer==0.19.3
    jmespath==1.1.0
    python-dateutil==2.9.0.post0
    six==1.17.0
    urllib3==2.8.0
    colorama==0.4.6
    docutils==0.19
    PyYAML==6.0.4
    rsa==4.7.2
    pyasn1==0.6.5
    # The Prometheus project's own text-format parser, for test_metrics.py.
    prometheus-client==0.26.0
    # The README's Python gRPC client, generated from proto/ (test_clients.py); exactly what
    # `pip install grpcio-tools==1.85.1` resolved to.
    grpcio-tools==1.85.1
    grpcio==1.85.3
    protobuf==7.36.2
    typing_extensions==4.16.0
)

deadline=${SUITE_TIMEOUT:-900}
# The whole suite is bounded: a watchdog kills it (and so every process below) on overrun.
( sleep "$deadline" </dev/null >/dev/null 2>&1
  echo "aws suite: timed out after ${deadline}s" >&2
  kill -TERM $$ ) &
watchdog=$!

work=$(mktemp -d "${TMPDIR:-/tmp}/iamlet-aws.XXXXXX")
iamlet_pid=""
tests_pid=""
cleanup() {
    local status=$?
    [[ -z "$tests_pid" ]] || kill -KILL "$tests_pid" 2>/dev/null || true
    if [[ -n "$iamlet_pid" ]]; then
        kill -TERM "$iamlet_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$iamlet_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$iamlet_pid" 2>/dev/null || true
    fi
    kill "$watchdog" 2>/dev/null || true
    if [[ $status -ne 0 ]]; then
        echo "aws suite: FAILED; logs kept in $work" >&2
        tail -n 30 "$work/up.log" >&2 2>/dev/null || true
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 124' TERM

step() { printf '\n== aws suite: %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

apt_install() {
    if command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && apt-get install -y -qq "$@" >/dev/null
    else
        echo "aws suite: $* is missing and there is no apt-get to install it" >&2
        exit 1
    fi
}

step "virtual environment"
command -v python3 >/dev/null 2>&1 || apt_install python3
venv=${IAMLET_AWS_VENV:-target/aws-venv}
if [[ ! -x "$venv/bin/python" ]]; then
    if ! python3 -m venv "$venv" 2>"$work/venv.log"; then
        rm -rf "$venv"
        apt_install python3-venv
        python3 -m venv "$venv"
    fi
fi
venv=$(cd "$venv" && pwd)
# Idempotent: a venv that already holds the pins installs nothing.
timeout 600 "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}"
"$venv/bin/python" -m pip check
"$venv/bin/aws" --version

step "iamlet up"
bin="$PWD/target/debug/iamlet"
# A no-op after `cargo test` (which builds it); run alone, it keeps a stale binary out.
cargo build --quiet --bin iamlet
read -r cp_port cp_http_port sc_port sc_http_port < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
PY
)
IAMLET_LOG=${IAMLET_LOG:-info} "$bin" up --data-dir "$work" \
    --control-plane-listen "127.0.0.1:$cp_port" \
    --control-plane-http-listen "127.0.0.1:$cp_http_port" \
    --listen "127.0.0.1:$sc_port" \
    --http-listen "127.0.0.1:$sc_http_port" \
    --usage-interval 1s >"$work/up.log" 2>&1 &
iamlet_pid=$!
python3 - "$cp_http_port" "$sc_http_port" "$iamlet_pid" <<'PY'
import os, sys, time, urllib.request
ports, pid = sys.argv[1:3], int(sys.argv[3])
deadline = time.monotonic() + 60
for port in ports:
    while True:
        try:
            os.kill(pid, 0)
        except OSError:
            sys.exit("iamlet up exited before it was ready")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"127.0.0.1:{port}/readyz did not answer 200 within 60 s")
        time.sleep(0.1)
PY
[[ -f "$work/aws-config" ]] || : >"$work/aws-config"
[[ -s "$work/aws-credentials" ]] || { echo "iamlet up wrote no $work/aws-credentials" >&2; exit 1; }

step "tests"
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^AWS_' || true)
export IAMLET_BIN="$bin"
export IAMLET_DATA_DIR="$work"
export IAMLET_CP_GRPC="http://127.0.0.1:$cp_port"
export IAMLET_CP_HTTP="http://127.0.0.1:$cp_http_port"
export IAMLET_SIDECAR_GRPC="http://127.0.0.1:$sc_port"
export IAMLET_SIDECAR_HTTP="http://127.0.0.1:$sc_http_port"
export IAMLET_ACCOUNT=111122223333
export AWS_SHARED_CREDENTIALS_FILE="$work/aws-credentials"
export AWS_CONFIG_FILE="$work/aws-config"
export AWS_DEFAULT_REGION=us-east-1
export IAMLET_WEB_IDENTITY_TOKEN_FILE="$work/web-identity-token"
# The venv's `aws` first on PATH, for tests that run the CLI.
export PATH="$venv/bin:$PATH"
# In the background, so that the watchdog's TERM is handled at once (bash runs a trap only
# after a foreground child ends) and cleanup stops the tests too.
if [[ $# -gt 0 ]]; then
    (cd tests/aws && exec "$venv/bin/python" -m unittest -v "$@") &
else
    "$venv/bin/python" -m unittest discover -s tests/aws -p 'test_*.py' -v &
fi
tests_pid=$!
wait "$tests_pid"
tests_pid=""

step "passed"
