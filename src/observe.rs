//! What a process tells its operators: Prometheus metrics, served at `/metrics` by the HTTP
//! edge ([`crate::http`]) on a port of its own, which the kubelet and Prometheus can reach
//! while the local API stays on loopback.
//!
//! Metrics are a fixed set of atomics: recording one is a couple of relaxed adds, with no lock
//! and no allocation on the request path. Labels never carry a key id, a token or any other
//! caller-supplied text, which keeps their cardinality bounded and secrets out.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The operations whose latency is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `Authorizer.Authorize`.
    Authorize,
    /// One request of `Authorizer.BatchAuthorize`.
    BatchAuthorize,
    /// `SecurityTokenService.AssumeRole`.
    AssumeRole,
    /// `SecurityTokenService.AssumeRoleWithWebIdentity`.
    AssumeRoleWithWebIdentity,
    /// `SecurityTokenService.GetSessionToken`.
    GetSessionToken,
    /// `SecurityTokenService.GetCallerIdentity`.
    GetCallerIdentity,
    /// STS `GetAccessKeyInfo` (the Query API).
    GetAccessKeyInfo,
    /// The container-credentials endpoint (EKS Pod Identity style).
    ContainerCredentials,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Allowed (or credentials issued).
    Allow,
    /// An explicit deny.
    ExplicitDeny,
    /// An implicit deny.
    ImplicitDeny,
    /// An error status.
    Error,
}

const METHODS: [Method; 8] = [
    Method::Authorize,
    Method::BatchAuthorize,
    Method::AssumeRole,
    Method::AssumeRoleWithWebIdentity,
    Method::GetSessionToken,
    Method::GetCallerIdentity,
    Method::GetAccessKeyInfo,
    Method::ContainerCredentials,
];
const RESULTS: [Answer; 4] = [
    Answer::Allow,
    Answer::ExplicitDeny,
    Answer::ImplicitDeny,
    Answer::Error,
];
/// Bucket bounds in microseconds: from a cache hit to a slow credential check.
const BUCKETS_US: [u64; 14] = [
    5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000, 1_000_000,
];

/// A latency histogram with fixed buckets.
///
/// Its count is the sum of its buckets (the last one takes what is over every bound), so that
/// a request costs one atomic add, two when it took a microsecond or more, and a scrape never
/// sees a count that disagrees with the buckets.
#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

/// The process's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: [[Histogram; RESULTS.len()]; METHODS.len()],
    /// Decisions served past the staleness bound because the tenant opted to fail open.
    pub stale_fail_open: AtomicU64,
    /// Requests refused because the tenant's data was older than the staleness bound.
    pub stale_refusals: AtomicU64,
    /// Envoy ext_authz checks and route-table reloads.
    pub ext_authz: ExtAuthzCounters,
}

/// Envoy ext_authz's counters: checks by route and decision (route names come from the route
/// table, decisions from a fixed set, so the series stay bounded), and refused reloads.
#[derive(Debug, Default)]
pub struct ExtAuthzCounters {
    /// Counts by route, then decision. Nested so that counting an existing series looks it up
    /// by `&str` without allocating.
    checks: std::sync::Mutex<
        std::collections::BTreeMap<String, std::collections::BTreeMap<&'static str, u64>>,
    >,
    /// Route tables refused on reload.
    pub reload_failures: AtomicU64,
    /// Set once ext_authz is served: its series appear from then on.
    pub served: std::sync::atomic::AtomicBool,
}

impl ExtAuthzCounters {
    /// Counts one check.
    pub fn check(&self, route: &str, decision: &'static str) {
        let mut checks = self
            .checks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match checks.get_mut(route) {
            Some(decisions) => *decisions.entry(decision).or_insert(0) += 1,
            None => {
                checks.insert(route.to_owned(), [(decision, 1)].into());
            }
        }
    }

    /// The count of `route` and `decision`.
    pub fn checks(&self, route: &str, decision: &'static str) -> u64 {
        self.checks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(route)
            .and_then(|decisions| decisions.get(decision))
            .copied()
            .unwrap_or(0)
    }

    fn render(&self, out: &mut String) {
        if !self.served.load(Ordering::Relaxed) {
            return;
        }
        let name = "iamlet_ext_authz_checks_total";
        let checks = self
            .checks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A family is declared with its first series: the exposition format has no empty
        // families (Prometheus' own parser refuses one).
        if !checks.is_empty() {
            let _ = writeln!(
                out,
                "# HELP {name} Envoy ext_authz checks, by route and decision.\n# TYPE {name} counter"
            );
        }
        for (route, decisions) in checks.iter() {
            for (decision, n) in decisions {
                let _ = writeln!(
                    out,
                    "{name}{{route=\"{}\",decision=\"{decision}\"}} {n}",
                    label(route)
                );
            }
        }
        drop(checks);
        counter(
            out,
            "iamlet_ext_authz_route_table_reload_failures_total",
            "Route tables refused on reload (the previous table was kept).",
            self.reload_failures.load(Ordering::Relaxed),
        );
    }
}

/// Values read at scrape time from the rest of the process.
pub trait Gauges: Send + Sync {
    /// Appends the process's other series, in exposition format.
    fn render(&self, out: &mut String);
}

// === impl Method ===

impl Method {
    fn name(self) -> &'static str {
        match self {
            Self::Authorize => "Authorize",
            Self::BatchAuthorize => "BatchAuthorize",
            Self::AssumeRole => "AssumeRole",
            Self::AssumeRoleWithWebIdentity => "AssumeRoleWithWebIdentity",
            Self::GetSessionToken => "GetSessionToken",
            Self::GetCallerIdentity => "GetCallerIdentity",
            Self::GetAccessKeyInfo => "GetAccessKeyInfo",
            Self::ContainerCredentials => "ContainerCredentials",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Authorize => 0,
            Self::BatchAuthorize => 1,
            Self::AssumeRole => 2,
            Self::AssumeRoleWithWebIdentity => 3,
            Self::GetSessionToken => 4,
            Self::GetCallerIdentity => 5,
            Self::GetAccessKeyInfo => 6,
            Self::ContainerCredentials => 7,
        }
    }
}

impl Answer {
    fn name(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::ExplicitDeny => "explicit_deny",
            Self::ImplicitDeny => "implicit_deny",
            Self::Error => "error",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Allow => 0,
            Self::ExplicitDeny => 1,
            Self::ImplicitDeny => 2,
            Self::Error => 3,
        }
    }
}

// === impl Metrics ===

impl Metrics {
    /// Records one request's latency.
    pub fn record(&self, method: Method, result: Answer, latency: Duration) {
        let Some(h) = self
            .requests
            .get(method.index())
            .and_then(|row| row.get(result.index()))
        else {
            return;
        };
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let at = BUCKETS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(BUCKETS_US.len());
        if let Some(bucket) = h.buckets.get(at) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        // A cache hit takes under a microsecond: nothing to add.
        if us > 0 {
            h.sum_us.fetch_add(us, Ordering::Relaxed);
        }
    }

    /// The exposition text: these metrics, then `gauges`.
    pub fn render(&self, gauges: &dyn Gauges) -> String {
        let mut out = String::with_capacity(16 * 1024);
        out.push_str("# HELP iamlet_request_duration_seconds Latency of local API requests, by method and result.\n");
        out.push_str("# TYPE iamlet_request_duration_seconds histogram\n");
        for method in METHODS {
            for result in RESULTS {
                let Some(h) = self
                    .requests
                    .get(method.index())
                    .and_then(|row| row.get(result.index()))
                else {
                    continue;
                };
                let labels = format!("method=\"{}\",result=\"{}\"", method.name(), result.name());
                let mut cumulative = 0;
                for (bound, bucket) in BUCKETS_US.iter().zip(&h.buckets) {
                    cumulative += bucket.load(Ordering::Relaxed);
                    let _ = writeln!(
                        out,
                        "iamlet_request_duration_seconds_bucket{{{labels},le=\"{}\"}} {cumulative}",
                        seconds(*bound)
                    );
                }
                let over = h
                    .buckets
                    .get(BUCKETS_US.len())
                    .map_or(0, |b| b.load(Ordering::Relaxed));
                let count = cumulative + over;
                let _ = writeln!(
                    out,
                    "iamlet_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}"
                );
                let _ = writeln!(
                    out,
                    "iamlet_request_duration_seconds_sum{{{labels}}} {}",
                    seconds(h.sum_us.load(Ordering::Relaxed))
                );
                let _ = writeln!(
                    out,
                    "iamlet_request_duration_seconds_count{{{labels}}} {count}"
                );
            }
        }
        counter(
            &mut out,
            "iamlet_stale_fail_open_total",
            "Decisions served past the staleness bound by tenants that fail open.",
            self.stale_fail_open.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "iamlet_stale_refusals_total",
            "Requests refused because the tenant's data was past the staleness bound.",
            self.stale_refusals.load(Ordering::Relaxed),
        );
        self.ext_authz.render(&mut out);
        gauges.render(&mut out);
        out
    }
}

/// Seconds from microseconds, in decimal without float rounding noise.
fn seconds(us: u64) -> String {
    let (whole, frac) = (us / 1_000_000, us % 1_000_000);
    if frac == 0 {
        whole.to_string()
    } else {
        let frac = format!("{frac:06}");
        format!("{whole}.{}", frac.trim_end_matches('0'))
    }
}

/// Appends a counter with its help and type lines.
pub fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
    );
}

/// Appends a gauge family: one line per `(labels, value)`.
pub fn gauge(out: &mut String, name: &str, help: &str, values: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (labels, value) in values {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// Escapes a label value (`\`, `"` and newlines).
pub fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// What the probes answer: whether the process should receive traffic, and its metrics page
/// (Prometheus text format).
pub trait Probes: Send + Sync + 'static {
    /// True while the process should receive traffic.
    fn ready(&self) -> bool;
    /// Why the process is not ready, when it can say (`/readyz` shows it to the operator).
    fn not_ready_reason(&self) -> Option<String> {
        None
    }
    /// The metrics page.
    fn metrics(&self) -> String;
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;

    impl Gauges for Fixed {
        fn render(&self, out: &mut String) {
            gauge(
                out,
                "iamlet_test_gauge",
                "A test gauge.",
                &[(String::new(), 1.0)],
            );
        }
    }

    #[test]
    fn histograms_are_cumulative_and_well_formed() {
        let m = Metrics::default();
        m.record(Method::Authorize, Answer::Allow, Duration::from_micros(7));
        m.record(Method::Authorize, Answer::Allow, Duration::from_micros(300));
        m.record(Method::Authorize, Answer::Allow, Duration::from_secs(5));
        // A cache hit's latency: counted in the first bucket, nothing added to the sum.
        m.record(Method::Authorize, Answer::Allow, Duration::from_nanos(300));
        let text = m.render(&Fixed);
        let line = |needle: &str| {
            text.lines()
                .find(|l| l.starts_with(needle))
                .unwrap_or_else(|| panic!("{needle} missing in\n{text}"))
                .rsplit(' ')
                .next()
                .unwrap()
                .to_owned()
        };
        let allow = "iamlet_request_duration_seconds_bucket{method=\"Authorize\",result=\"allow\"";
        assert_eq!(line(&format!("{allow},le=\"0.000005\"}}")), "1");
        assert_eq!(line(&format!("{allow},le=\"0.00001\"}}")), "2");
        assert_eq!(line(&format!("{allow},le=\"0.0005\"}}")), "3");
        assert_eq!(line(&format!("{allow},le=\"1\"}}")), "3");
        assert_eq!(line(&format!("{allow},le=\"+Inf\"}}")), "4");
        assert_eq!(
            line("iamlet_request_duration_seconds_count{method=\"Authorize\",result=\"allow\"}"),
            "4"
        );
        assert_eq!(
            line("iamlet_request_duration_seconds_sum{method=\"Authorize\",result=\"allow\"}"),
            "5.000307"
        );
        // Every sample line is `name{labels} value` or `name value`, and every family has
        // HELP and TYPE lines.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = l.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{l}");
            let name = series.split('{').next().unwrap();
            let family = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(text.contains(&format!("# TYPE {family} ")), "{l}");
        }
        assert!(text.contains("iamlet_test_gauge 1"));
    }

    #[test]
    fn every_method_and_result_has_its_own_row() {
        for (i, m) in METHODS.iter().enumerate() {
            assert_eq!(m.index(), i, "{m:?}");
        }
        for (i, r) in RESULTS.iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?}");
        }
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
