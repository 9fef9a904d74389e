#!/usr/bin/env bash
# Issue 15's latency bench: what Envoy adds with iamlet as its ext_authz service, against the
# same Envoy with the check disabled on the route, p50/p99 at a fixed rate, in alternating
# rounds of one run (tests/envoy/bench.py). Starts the rig of tests/envoy/run.sh
# (tests/envoy/rig.sh) on a release build of iamlet. Not run by .ci/run; the results are
# recorded in benches/README.md.
#
# Usage: tests/envoy/bench.sh [--rate 1000] [--duration 10s] [--warmup 2s] [--rounds 3]
# Bounded by SUITE_TIMEOUT seconds (default 900).
set -euo pipefail
cd "$(dirname "$0")/../.."

RIG_NAME="envoy bench"
RIG_PROFILE=release
# shellcheck source=tests/envoy/rig.sh
source tests/envoy/rig.sh

rig_venv
rig_start

rig_step "bench"
echo "envoy $("$envoy_bin" --version | sed -n 's/.*version: //p'), iamlet $("$bin" --version 2>/dev/null || echo '?'), $(nproc) cores"
"$venv/bin/python" tests/envoy/bench.py "$@" &
rig_tests_pid=$!
wait "$rig_tests_pid"
rig_tests_pid=""
