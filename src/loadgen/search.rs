//! `--find-max`: the highest rate a target sustains within a p99 bound, without errors.

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::report::RunReport;
use super::BenchError;

/// The binary search stops when the bracket is narrower than this share of its lower end.
const RESOLUTION: f64 = 0.03;

/// What the search looks for, and its bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchConfig {
    /// A rate passes when its run's p99 is at most this, with no error.
    pub p99_bound: Duration,
    /// The first rate tried.
    pub min_rate: f64,
    /// The search never tries more than this.
    pub max_rate: f64,
    /// Rates tried at most.
    pub max_steps: usize,
    /// Runs at a rate before it counts as failed. On a shared machine another process can
    /// stall a run; that only ever makes an open-loop run slower, never faster, so a rate that
    /// passes once is within the target's reach.
    pub attempts: usize,
}

impl SearchConfig {
    /// Refuses bounds that cannot make a search.
    pub fn validate(&self) -> Result<(), BenchError> {
        super::engine::check_rate(self.min_rate)?;
        super::engine::check_rate(self.max_rate)?;
        if self.max_rate < self.min_rate {
            return Err(BenchError::Usage(format!(
                "invalid --max-rate {}: below --min-rate {}",
                self.max_rate, self.min_rate
            )));
        }
        if self.p99_bound.is_zero() || self.max_steps == 0 || self.attempts == 0 {
            return Err(BenchError::Usage(
                "invalid search: the p99 bound, the steps and the attempts must be positive".into(),
            ));
        }
        Ok(())
    }

    /// Whether a run meets the bound.
    pub fn passes(&self, report: &RunReport) -> bool {
        let bound_us = self.p99_bound.as_secs_f64() * 1e6;
        report.error_count() == 0
            && report.completed > 0
            && report.latency_us.p99 as f64 <= bound_us
    }
}

/// One run of the search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchStep {
    /// The rate tried.
    pub rate: f64,
    /// Which attempt at this rate (1 for the first).
    pub attempt: usize,
    /// Whether it met the bound.
    pub passed: bool,
    /// Its run.
    pub report: RunReport,
}

/// The runs of a search and its answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchOutcome {
    /// The p99 bound, in microseconds.
    pub p99_bound_us: f64,
    /// Every run, in order.
    pub steps: Vec<SearchStep>,
    /// The highest rate that passed (none when even the first failed).
    pub max_rate: Option<f64>,
}

impl SearchOutcome {
    /// The run at the highest passing rate.
    pub fn best(&self) -> Option<&SearchStep> {
        self.steps
            .iter()
            .filter(|s| s.passed)
            .max_by(|a, b| a.rate.total_cmp(&b.rate))
    }
}

/// Doubles the rate from `min_rate` until a rate fails (or `max_rate` passes), then halves the
/// bracket between the last pass and the first failure until it is within 3 % or the steps
/// run out. A rate fails when all its `attempts` runs do. `run` makes one run at a rate;
/// `on_step` sees each as it ends.
pub async fn find_max<F, Fut>(
    config: &SearchConfig,
    mut run: F,
    mut on_step: impl FnMut(&SearchStep),
) -> Result<SearchOutcome, BenchError>
where
    F: FnMut(f64) -> Fut,
    Fut: Future<Output = Result<RunReport, BenchError>>,
{
    config.validate()?;
    let mut steps: Vec<SearchStep> = Vec::new();
    let mut passed: Option<f64> = None;
    let mut failed: Option<f64> = None;
    let mut rate = config.min_rate;
    let mut tried = 0;
    while tried < config.max_steps {
        tried += 1;
        let mut ok = false;
        for attempt in 1..=config.attempts {
            let report = run(rate).await?;
            ok = config.passes(&report);
            let step = SearchStep {
                rate,
                attempt,
                passed: ok,
                report,
            };
            on_step(&step);
            steps.push(step);
            if ok {
                break;
            }
        }
        if ok {
            passed = Some(rate);
        } else {
            failed = Some(rate);
        }
        rate = match (passed, failed) {
            // The first run failed: nothing lower is tried.
            (None, _) => break,
            (Some(p), None) if p >= config.max_rate => break,
            (Some(p), None) => (p * 2.0).min(config.max_rate),
            (Some(p), Some(f)) => {
                if (f - p) / p <= RESOLUTION {
                    break;
                }
                ((p + f) / 2.0).round()
            }
        };
    }
    Ok(SearchOutcome {
        p99_bound_us: config.p99_bound.as_secs_f64() * 1e6,
        steps,
        max_rate: passed,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::engine::{LatencyRecorder, Measurement};
    use super::super::report::RunSettings;
    use super::*;

    /// A run whose p99 is `p99_us`, with `errors` failures.
    fn report(rate: f64, p99_us: u64, errors: u64) -> RunReport {
        let mut latency = LatencyRecorder::try_new().unwrap();
        for _ in 0..100 {
            latency.record(Duration::from_micros(p99_us));
        }
        let m = Measurement {
            latency,
            sent: 100,
            completed: 100,
            denied: 0,
            errors: if errors > 0 {
                BTreeMap::from([("Unavailable".to_owned(), errors)])
            } else {
                BTreeMap::new()
            },
            late_starts: 0,
            elapsed: Duration::from_secs(1),
        };
        RunReport::new(RunSettings::one_second("fake", rate), "t".into(), &m, None)
    }

    fn config(max_steps: usize) -> SearchConfig {
        SearchConfig {
            p99_bound: Duration::from_micros(500),
            min_rate: 1000.0,
            max_rate: 100_000.0,
            max_steps,
            attempts: 1,
        }
    }

    /// A fake target that meets the bound up to 5,000/s.
    async fn target(rate: f64) -> Result<RunReport, BenchError> {
        Ok(report(rate, if rate <= 5000.0 { 300 } else { 900 }, 0))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn doubles_then_bisects_to_the_highest_passing_rate() {
        let mut seen = Vec::new();
        let outcome = find_max(&config(8), target, |s| seen.push((s.rate, s.passed)))
            .await
            .unwrap();
        assert_eq!(
            seen,
            [
                (1000.0, true),
                (2000.0, true),
                (4000.0, true),
                (8000.0, false),
                (6000.0, false),
                (5000.0, true),
                (5500.0, false),
                (5250.0, false),
            ]
        );
        assert_eq!(outcome.max_rate, Some(5000.0));
        assert_eq!(outcome.best().unwrap().rate, 5000.0);
        assert_eq!(outcome.steps.len(), 8);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn stops_at_the_resolution_or_the_step_limit() {
        let outcome = find_max(&config(4), target, |_| {}).await.unwrap();
        assert_eq!(outcome.steps.len(), 4);
        assert_eq!(outcome.max_rate, Some(4000.0));
        // With steps to spare, the bracket closes to 3 %: 5000 passes, 5125 fails.
        let outcome = find_max(&config(20), target, |_| {}).await.unwrap();
        assert_eq!(outcome.max_rate, Some(5000.0));
        let last = outcome.steps.last().unwrap().rate;
        assert!((last - 5000.0) / 5000.0 <= 0.07, "{last}");
        assert!(outcome.steps.len() < 20);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn errors_fail_a_step_and_a_failing_start_finds_nothing() {
        let outcome = find_max(
            &config(8),
            |rate| async move { Ok(report(rate, 100, 1)) },
            |_| {},
        )
        .await
        .unwrap();
        assert_eq!(outcome.steps.len(), 1);
        assert_eq!(outcome.max_rate, None);
        assert!(outcome.best().is_none());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_maximum_rate_caps_the_search() {
        let outcome = find_max(
            &SearchConfig {
                max_rate: 3000.0,
                ..config(8)
            },
            target,
            |_| {},
        )
        .await
        .unwrap();
        let rates: Vec<f64> = outcome.steps.iter().map(|s| s.rate).collect();
        assert_eq!(rates, [1000.0, 2000.0, 3000.0]);
        assert_eq!(outcome.max_rate, Some(3000.0));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_rate_fails_only_when_every_attempt_does() {
        // Every second run at 4,000/s is disturbed (p99 900 µs); all runs above 5,000 fail.
        let runs = std::cell::Cell::new(0u32);
        let flaky = |rate: f64| {
            runs.set(runs.get() + 1);
            let disturbed = rate == 4000.0 && runs.get() % 2 == 1;
            async move {
                let ok = rate <= 5000.0 && !disturbed;
                Ok(report(rate, if ok { 300 } else { 900 }, 0))
            }
        };
        let mut seen = Vec::new();
        let outcome = find_max(
            &SearchConfig {
                attempts: 2,
                ..config(3)
            },
            flaky,
            |s| seen.push((s.rate, s.attempt, s.passed)),
        )
        .await
        .unwrap();
        assert_eq!(
            seen,
            [
                (1000.0, 1, true),
                (2000.0, 1, true),
                (4000.0, 1, false),
                (4000.0, 2, true),
            ]
        );
        assert_eq!(outcome.max_rate, Some(4000.0));
        // With one attempt the same disturbance ends the search at 2,000/s.
        runs.set(0);
        let outcome = find_max(&config(3), flaky, |_| {}).await.unwrap();
        assert_eq!(outcome.max_rate, Some(2000.0));
    }

    #[test]
    fn bad_bounds_are_usage_errors() {
        for bad in [
            SearchConfig {
                min_rate: 0.0,
                ..config(8)
            },
            SearchConfig {
                max_rate: 10.0,
                ..config(8)
            },
            SearchConfig {
                max_steps: 0,
                ..config(8)
            },
            SearchConfig {
                p99_bound: Duration::ZERO,
                ..config(8)
            },
        ] {
            assert_eq!(bad.validate().unwrap_err().exit_code(), 2, "{bad:?}");
        }
    }
}
