"""Both HTTP edges' /metrics, read by the Prometheus project's own text-format parser
(prometheus_client), after traffic of every kind has passed: every family is typed, every
sample belongs to a declared family, histograms are cumulative with +Inf equal to their count,
and the counters the edges promise are there. iamlet writes the exposition format by hand
(src/observe.rs); this is what keeps it honest."""

import math
import unittest
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

import common


def scrape(base):
    with urllib.request.urlopen(base + "/metrics", timeout=common.COMMAND_TIMEOUT_S) as r:
        assert r.status == 200, r.status
        assert r.headers["Content-Type"].startswith("text/plain"), r.headers["Content-Type"]
        return r.read().decode("utf-8")


def families(text):
    # The parser raises on a line it cannot read; declared types come back as themselves and
    # samples without a TYPE line as "unknown".
    return {f.name: f for f in text_string_to_metric_families(text)}


def refuse_once(base):
    """A Query-protocol request without an Action: refused before the domain, so counted."""
    request = urllib.request.Request(
        base + "/",
        data=b"Version=2011-06-15",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    try:
        urllib.request.urlopen(request, timeout=common.COMMAND_TIMEOUT_S)
    except urllib.error.HTTPError as e:
        assert e.code in (400, 403), e.code
        return
    raise AssertionError("a request without an Action was answered 2xx")


class MetricsParse(unittest.TestCase):
    def check(self, text, required):
        parsed = families(text)
        for name, family in parsed.items():
            self.assertNotEqual(family.type, "unknown", f"{name} has no TYPE line")
            self.assertTrue(family.documentation, f"{name} has no HELP text")
            self.assertTrue(family.samples, f"{name} is declared without samples")
            for sample in family.samples:
                self.assertFalse(math.isnan(sample.value), f"{sample}")
            if family.type == "histogram":
                self.check_histogram(family)
        for name in required:
            self.assertIn(name, parsed, f"{name} missing from:\n{text[:2000]}")
        return parsed

    def check_histogram(self, family):
        series = {}
        for s in family.samples:
            key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
            series.setdefault(key, {"buckets": [], "count": None})
            if s.name.endswith("_bucket"):
                series[key]["buckets"].append((float(s.labels["le"]), s.value))
            elif s.name.endswith("_count"):
                series[key]["count"] = s.value
        for key, one in series.items():
            buckets = sorted(one["buckets"])
            self.assertTrue(buckets and math.isinf(buckets[-1][0]), f"{family.name}{key}: no +Inf")
            counts = [c for _, c in buckets]
            self.assertEqual(counts, sorted(counts), f"{family.name}{key}: not cumulative")
            self.assertEqual(buckets[-1][1], one["count"], f"{family.name}{key}: +Inf != count")

    def test_the_sidecar_edge(self):
        # Traffic first: a decision through the gRPC API and a refusal on the HTTP edge.
        common.iamlet(
            "authorize", "--sidecar", common.SIDECAR_GRPC,
            "--principal", f"arn:aws:iam::{common.ACCOUNT}:user/alice",
            "--action", "s3:GetObject", "--resource", "arn:aws:s3:::demo-data/x",
            check=False,
        )
        refuse_once(common.SIDECAR_HTTP)
        parsed = self.check(
            scrape(common.SIDECAR_HTTP),
            ["iamlet_request_duration_seconds", "iamlet_http_refused"],
        )
        refused = [s for s in parsed["iamlet_http_refused"].samples if s.labels.get("edge") == "sts"]
        self.assertTrue(refused and sum(s.value for s in refused) >= 1, refused)

    def test_the_control_plane_edge(self):
        refuse_once(common.CP_HTTP)
        parsed = self.check(scrape(common.CP_HTTP), ["iamlet_http_refused"])
        refused = [s for s in parsed["iamlet_http_refused"].samples if s.labels.get("edge") == "iam"]
        self.assertTrue(refused and sum(s.value for s in refused) >= 1, refused)


if __name__ == "__main__":
    unittest.main()
