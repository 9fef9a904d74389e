//! A run's results: what `--json` prints, `--save` writes and `plot` reads.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::engine::Measurement;
use super::BenchError;

/// The saved percentile curve has this many points per "nine" (`-log10(1 - p)`), so 90 %,
/// 99 % and 99.9 % are points of it.
const CURVE_STEPS_PER_NINE: f64 = 40.0;
/// The curve stops at six nines (99.9999 %) or where the run has too few samples.
const CURVE_MAX_NINES: f64 = 6.0;

/// What was asked of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// The name of the run in reports and plots (default: the target).
    pub label: String,
    /// The sidecar's (or the no-op server's) URL.
    pub target: String,
    /// Requests per second.
    pub rate: f64,
    /// The measured part, in seconds.
    pub duration_s: f64,
    /// The warm-up before it, in seconds.
    pub warmup_s: f64,
    /// gRPC connections, used in turn; for `iamlet bench http`, the HTTP/1.1 connections the
    /// run opened (one request in flight on each).
    pub connections: usize,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// The request mix (`authorize-hit=70,...`).
    pub mix: String,
    /// Requests in each `BatchAuthorize` (0 for `iamlet bench http`, which sends none).
    pub batch_size: usize,
}

/// Latency percentiles of the answered requests, in microseconds from the intended send time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// The fastest.
    pub min: u64,
    /// The median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// The slowest.
    pub max: u64,
    /// The mean, to 0.01 µs.
    pub mean: f64,
}

/// One point of the percentile curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// The percentile (0 to 100).
    pub percentile: f64,
    /// The latency at that percentile, in microseconds.
    pub latency_us: u64,
}

/// What the churn task did during a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChurnReport {
    /// Admin writes made.
    pub attempted: u64,
    /// Of those, accepted by the control plane.
    pub succeeded: u64,
    /// Refused or failed writes by gRPC code.
    pub errors: BTreeMap<String, u64>,
}

/// One run's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// What was asked.
    pub settings: RunSettings,
    /// When the run started (RFC 3339).
    pub started_at: String,
    /// Requests sent in the measured part.
    pub sent: u64,
    /// Of those, ended (answered or failed).
    pub completed: u64,
    /// Completed requests per second, to 0.1/s.
    pub achieved_rate: f64,
    /// Requests answered with a deny (normal answers, not errors).
    pub denied: u64,
    /// Failed requests by gRPC code.
    pub errors: BTreeMap<String, u64>,
    /// Requests that started more than 1 ms after their intended time: the generator (or the
    /// in-flight limit) could not keep up, so the run measures the generator too.
    pub late_starts: u64,
    /// Latency percentiles in microseconds.
    pub latency_us: LatencySummary,
    /// The percentile curve at fine steps (for `iamlet bench plot`).
    pub curve: Vec<CurvePoint>,
    /// The admin writes made during the run, when churn was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub churn: Option<ChurnReport>,
}

/// `value` to `decimals` places (dividing last keeps 99.9 the double nearest to 99.9).
fn round_to(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

impl RunReport {
    /// The report of a measurement.
    pub fn new(
        settings: RunSettings,
        started_at: String,
        m: &Measurement,
        churn: Option<ChurnReport>,
    ) -> Self {
        let h = m.latency.histogram();
        let at = |q: f64| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(q)
            }
        };
        let latency_us = LatencySummary {
            min: if h.is_empty() { 0 } else { h.min() },
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            p999: at(0.999),
            max: h.max(),
            mean: round_to(h.mean(), 2),
        };
        // Beyond log10(samples) nines a percentile is the maximum, not a measurement.
        let max_nines = (h.len().max(1) as f64).log10().min(CURVE_MAX_NINES);
        let steps = (max_nines * CURVE_STEPS_PER_NINE).floor() as u32;
        let curve = if h.is_empty() {
            Vec::new()
        } else {
            (0..=steps)
                .map(|n| {
                    let nines = f64::from(n) / CURVE_STEPS_PER_NINE;
                    let percentile = round_to(100.0 * (1.0 - 10f64.powf(-nines)), 6);
                    CurvePoint {
                        percentile,
                        latency_us: h.value_at_quantile(percentile / 100.0),
                    }
                })
                .collect()
        };
        Self {
            settings,
            started_at,
            sent: m.sent,
            completed: m.completed,
            achieved_rate: round_to(m.achieved_rate(), 1),
            denied: m.denied,
            errors: m.errors.clone(),
            late_starts: m.late_starts,
            latency_us,
            curve,
            churn,
        }
    }

    /// Failures of every code.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Writes the report as JSON to `path`.
    pub fn save(&self, path: &Path) -> Result<(), BenchError> {
        std::fs::write(path, self.to_json() + "\n").map_err(|source| BenchError::Io {
            path: path.to_owned(),
            source,
        })
    }

    /// Reads a report `save` wrote.
    pub fn load(path: &Path) -> Result<Self, BenchError> {
        let text = std::fs::read_to_string(path).map_err(|source| BenchError::Io {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| BenchError::Json {
            path: path.to_owned(),
            source,
        })
    }
}

/// The report for people: settings, counts, then the percentiles.
impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        let l = &self.latency_us;
        let label = if s.label == s.target {
            String::new()
        } else {
            format!(" ({})", s.label)
        };
        writeln!(
            f,
            "target      {}{label}: {}/s for {} s after {} s of warm-up, {} connection{}, at most {} in flight",
            s.target,
            s.rate,
            s.duration_s,
            s.warmup_s,
            s.connections,
            if s.connections == 1 { "" } else { "s" },
            s.concurrency
        )?;
        if s.batch_size == 0 {
            writeln!(f, "mix         {}", s.mix)?;
        } else {
            writeln!(f, "mix         {} (batches of {})", s.mix, s.batch_size)?;
        }
        writeln!(
            f,
            "requests    {} sent, {} completed, {:.1}/s achieved, {} denied",
            self.sent, self.completed, self.achieved_rate, self.denied
        )?;
        let errors = if self.errors.is_empty() {
            "none".to_owned()
        } else {
            self.errors
                .iter()
                .map(|(code, n)| format!("{code} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(f, "errors      {errors}")?;
        writeln!(
            f,
            "late starts {} (started > 1 ms after their time: the generator is saturated when this grows)",
            self.late_starts
        )?;
        if let Some(c) = &self.churn {
            writeln!(
                f,
                "churn       {} admin writes, {} succeeded",
                c.attempted, c.succeeded
            )?;
        }
        write!(
            f,
            "latency µs  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {:.1}",
            l.p50, l.p90, l.p99, l.p999, l.max, l.mean
        )
    }
}

/// Settings of a one-second run of cache hits over one connection (tests).
#[cfg(test)]
impl RunSettings {
    pub(crate) fn one_second(label: &str, rate: f64) -> Self {
        Self {
            label: label.into(),
            target: label.into(),
            rate,
            duration_s: 1.0,
            warmup_s: 0.0,
            connections: 1,
            concurrency: 1,
            mix: "authorize-hit=1".into(),
            batch_size: 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::engine::LatencyRecorder;
    use super::*;

    fn measurement() -> Measurement {
        let mut latency = LatencyRecorder::try_new().unwrap();
        // 1..=1000 µs, once each.
        for us in 1..=1000 {
            latency.record(Duration::from_micros(us));
        }
        Measurement {
            latency,
            sent: 1003,
            completed: 1002,
            denied: 7,
            errors: BTreeMap::from([("Unavailable".to_owned(), 2)]),
            late_starts: 3,
            elapsed: Duration::from_millis(1002),
        }
    }

    fn settings() -> RunSettings {
        RunSettings {
            label: "noop".into(),
            target: "http://127.0.0.1:7171".into(),
            rate: 1000.0,
            duration_s: 1.0,
            warmup_s: 0.5,
            connections: 2,
            concurrency: 64,
            mix: "authorize-hit=1".into(),
            batch_size: 10,
        }
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let r = RunReport::new(
            settings(),
            "2026-11-28T00:00:00Z".into(),
            &measurement(),
            None,
        );
        let l = r.latency_us;
        assert_eq!(
            (l.min, l.p50, l.p90, l.p99, l.max),
            (1, 500, 900, 990, 1000)
        );
        assert_eq!(l.p999, 999);
        assert!((l.mean - 500.5).abs() < 0.01, "{}", l.mean);
        assert!(
            (r.achieved_rate - 1000.0).abs() < 0.05,
            "{}",
            r.achieved_rate
        );
        assert_eq!(r.error_count(), 2);
        // The curve runs from the minimum to three nines (1000 samples), rising.
        let first = r.curve.first().unwrap();
        let last = r.curve.last().unwrap();
        assert_eq!((first.percentile, first.latency_us), (0.0, 1));
        assert_eq!(last.percentile, 99.9);
        assert!(r
            .curve
            .iter()
            .any(|p| p.percentile == 99.0 && p.latency_us == 990));
        assert!(r
            .curve
            .windows(2)
            .all(|w| w[0].latency_us <= w[1].latency_us && w[0].percentile < w[1].percentile));
    }

    #[test]
    fn the_json_round_trips() {
        let churn = ChurnReport {
            attempted: 10,
            succeeded: 9,
            errors: BTreeMap::from([("Unavailable".to_owned(), 1)]),
        };
        let r = RunReport::new(
            settings(),
            "2026-11-28T00:00:00Z".into(),
            &measurement(),
            Some(churn),
        );
        let path = std::env::temp_dir().join(format!("iamlet-loadgen-{}.json", std::process::id()));
        r.save(&path).unwrap();
        let back = RunReport::load(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(back, r);
        // Without churn, the field is left out and reads back as none.
        let plain = RunReport::new(settings(), "t".into(), &measurement(), None);
        assert!(!plain.to_json().contains("churn"));
        assert_eq!(
            serde_json::from_str::<RunReport>(&plain.to_json()).unwrap(),
            plain
        );
    }

    #[test]
    fn loading_a_missing_or_foreign_file_says_which() {
        let e = RunReport::load(Path::new("/nonexistent/run.json")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/run.json"), "{e}");
        let path =
            std::env::temp_dir().join(format!("iamlet-loadgen-bad-{}.json", std::process::id()));
        std::fs::write(&path, "{\"label\": 1}").unwrap();
        let e = RunReport::load(&path).unwrap_err();
        let _ = std::fs::remove_file(&path);
        assert!(matches!(e, BenchError::Json { .. }), "{e:?}");
    }

    #[test]
    fn the_text_report_names_every_figure() {
        let r = RunReport::new(settings(), "t".into(), &measurement(), None);
        let text = r.to_string();
        for needle in [
            "http://127.0.0.1:7171 (noop)",
            "1003 sent, 1002 completed",
            "Unavailable 2",
            "late starts 3",
            "p50 500  p90 900  p99 990  p99.9 999  max 1000  mean 500.5",
        ] {
            assert!(text.contains(needle), "{needle} in\n{text}");
        }
    }
}
