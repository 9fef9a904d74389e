"""What Envoy's ext_authz check by iamlet adds to a request: `iamlet bench http` replays one
SigV4-signed GET at a fixed rate (open loop) through the `protected` listener (checked by
`iamlet up`'s sidecar over loopback TCP), the `protected-uds` listener (checked by an
`iamlet sidecar` over its Unix socket) and the `direct` listener (the same Envoy and filters,
the check disabled on the route), in alternating rounds of the same run, and prints each
round and the median of the rounds.

Run by tests/envoy/bench.sh (and, briefly, by run.sh), which start the rig and set the
variables common.py reads.
"""

import argparse
import json
import statistics
import subprocess
import sys

from common import API, BIN, ENVOY_DIRECT_URL, ENVOY_UDS_URL, ENVOY_URL, eventually, new_user, policy, signed, signed_headers, statement

PATH = "/signed/bench/item"


def once(url, headers, args, label):
    command = [
        BIN, "bench", "http", "--url", url, "--rate", args.rate, "--duration", args.duration,
        "--warmup", args.warmup, "--label", label, "--json",
    ]
    for name, value in headers.items():
        if name.lower() != "host":
            command += ["--header", f"{name}: {value}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        sys.exit(f"iamlet bench http exited {done.returncode}: {done.stderr.strip()}")
    return json.loads(done.stdout)


def line(report):
    l = report["latency_us"]
    errors = sum(report["errors"].values())
    return (f"{report['settings']['label']:<20} {report['achieved_rate']:>8.1f}/s  p50 {l['p50']:>6} µs  "
            f"p99 {l['p99']:>6} µs  p99.9 {l['p999']:>6} µs  max {l['max']:>6} µs  "
            f"errors {errors}{' ' + json.dumps(report['errors']) if errors else ''}  "
            f"denied {report['denied']}  late {report['late_starts']}  connections {report['settings']['connections']}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rate", default="1000")
    p.add_argument("--duration", default="10s")
    p.add_argument("--warmup", default="2s")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--require-no-errors", action="store_true")
    args = p.parse_args()

    _, creds = new_user(policy(statement("Allow", "execute-api:Invoke", f"{API}/GET/signed/bench/*")))
    protected = ENVOY_URL + PATH
    arms = {"ext_authz": protected, "ext_authz-uds": ENVOY_UDS_URL + PATH, "none": ENVOY_DIRECT_URL + PATH}
    for url in arms.values():
        eventually(lambda: signed(creds, "GET", url), lambda r: r.status == 200, f"the bench user's request to {url}")
    results = {name: [] for name in arms}
    for _ in range(args.rounds):
        for name, url in arms.items():
            # Signed for each run (the host, 127.0.0.1:PORT, is signed; a signature is valid
            # for 15 minutes). The direct listener gets the same headers, unchecked.
            headers = signed_headers(creds, "GET", url)
            report = once(url, headers, args, f"envoy+{name}")
            results[name].append(report)
            print(line(report), flush=True)
    print()
    failed = False
    for name, reports in results.items():
        p50 = statistics.median(r["latency_us"]["p50"] for r in reports)
        p99 = statistics.median(r["latency_us"]["p99"] for r in reports)
        errors = sum(sum(r["errors"].values()) + r["denied"] for r in reports)
        failed |= errors > 0
        print(f"median of {len(reports)} round(s), envoy+{name:<13}  p50 {p50:>7.0f} µs  p99 {p99:>7.0f} µs  errors+denied {errors}")
    def median(name, q):
        return statistics.median(r["latency_us"][q] for r in results[name])

    for name in ("ext_authz", "ext_authz-uds"):
        print(f"{name} adds  p50 {median(name, 'p50') - median('none', 'p50'):+.0f} µs  "
              f"p99 {median(name, 'p99') - median('none', 'p99'):+.0f} µs")
    if args.require_no_errors and failed:
        sys.exit("bench: some requests failed or were denied")


main()
