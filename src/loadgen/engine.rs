//! The open-loop engine: a fixed schedule of send times, one task per request, latency from
//! the intended send time into an HDR histogram.
//!
//! A closed-loop generator waits for a reply before it sends the next request, so while the
//! server stalls it sends nothing, and the stall shows up as one slow sample instead of every
//! request that should have been sent meanwhile (coordinated omission). Here request `i` is due
//! at `start + i / rate` whatever happened before, and its latency counts from then: a request
//! the generator sent late, because the in-flight limit was reached or the generator itself
//! could not keep up, carries its lateness in its latency.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use tokio::sync::Semaphore;

use super::BenchError;

/// Sleeping is left for the timer when the next send is further away than this; closer, the
/// pacer yields in a loop: tokio's timer has a 1 ms resolution, far coarser than the gap between
/// two requests at 10k/s.
const COARSE: Duration = Duration::from_millis(2);
/// A request that starts later than this after its intended time counts as a late start: the
/// generator (or the in-flight limit), not the server, held it back.
pub const LATE: Duration = Duration::from_millis(1);
/// How long a run waits for its last replies once everything is sent.
const DRAIN: Duration = Duration::from_secs(30);
/// The histogram's range: 1 µs to one hour, with 3 significant digits.
const HISTOGRAM_MAX_US: u64 = 3_600_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

/// When each request of a run is due: request `i` at `start + i / rate`.
///
/// Each time is computed from `i` alone, never by adding an interval to the previous time, so
/// rounding cannot accumulate into drift however long the run.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start: Instant,
    rate: f64,
}

impl Schedule {
    /// A schedule of `rate` requests per second from `start`; the rate must be positive and
    /// finite.
    pub fn try_new(start: Instant, rate: f64) -> Result<Self, BenchError> {
        check_rate(rate)?;
        Ok(Self { start, rate })
    }

    /// Request `i`'s offset from the start, to the nearest nanosecond.
    pub fn offset(&self, i: u64) -> Duration {
        Duration::from_nanos((i as f64 * 1e9 / self.rate).round() as u64)
    }

    /// When request `i` is due.
    pub fn at(&self, i: u64) -> Instant {
        self.start + self.offset(i)
    }

    /// How many requests are due in `span` (the first at its start, none at its end).
    pub fn count_in(&self, span: Duration) -> u64 {
        (span.as_secs_f64() * self.rate).round() as u64
    }

    /// The first request's time.
    pub fn start(&self) -> Instant {
        self.start
    }
}

/// Refuses a rate that is not a positive, finite number of requests per second.
pub fn check_rate(rate: f64) -> Result<(), BenchError> {
    if rate.is_finite() && rate > 0.0 {
        Ok(())
    } else {
        Err(BenchError::Usage(format!(
            "invalid rate {rate}: expected a positive number of requests per second"
        )))
    }
}

/// The shape of one run: how fast, how long, how many in flight at most.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// Requests per second.
    pub rate: f64,
    /// Sent first and not measured: connections warm, caches filled.
    pub warmup: Duration,
    /// The measured part.
    pub duration: Duration,
    /// Requests in flight at most; when reached, the next request waits (and its wait counts
    /// in its latency).
    pub concurrency: usize,
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Answered, and allowed where a decision was asked.
    Ok,
    /// Answered with a deny (a normal answer, counted apart).
    Denied,
    /// Failed, with the gRPC code's name (`Unavailable`, `DeadlineExceeded`, ...).
    Failed(String),
}

/// Latencies in microseconds, with HDR's bounded relative error.
#[derive(Debug, Clone)]
pub struct LatencyRecorder {
    histogram: Histogram<u64>,
}

impl LatencyRecorder {
    /// An empty recorder, 1 µs to one hour at 3 significant digits.
    pub fn try_new() -> Result<Self, BenchError> {
        Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, SIGNIFICANT_DIGITS)
            .map(|histogram| Self { histogram })
            .map_err(|e| BenchError::Histogram(format!("{e:?}")))
    }

    /// Records one latency (clamped to the range: under 1 µs counts as 1 µs).
    pub fn record(&mut self, latency: Duration) {
        // Only a latency of 584,000 years overflows; it saturates into the top bucket.
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.histogram.saturating_record(us.max(1));
    }

    /// The underlying histogram.
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.histogram
    }

    /// How many latencies were recorded.
    pub fn len(&self) -> u64 {
        self.histogram.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.histogram.is_empty()
    }
}

/// What a run measured (its warm-up left out).
#[derive(Debug, Clone)]
pub struct Measurement {
    /// Latency of every answered request (ok or denied), from its intended send time.
    pub latency: LatencyRecorder,
    /// Requests sent in the measured part.
    pub sent: u64,
    /// Of those, answered (ok or denied) or failed, before the drain timeout.
    pub completed: u64,
    /// Of the answered, denied.
    pub denied: u64,
    /// Failures by gRPC code.
    pub errors: BTreeMap<String, u64>,
    /// Requests that started more than [`LATE`] after their intended time.
    pub late_starts: u64,
    /// From the first measured request's intended time to the last measured completion (at
    /// least the planned duration).
    pub elapsed: Duration,
}

impl Measurement {
    /// Completed requests per second over [`Measurement::elapsed`].
    pub fn achieved_rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.completed as f64 / secs
        } else {
            0.0
        }
    }

    /// Failures of every code.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// What the request tasks write into, under one lock (uncontended on a one-thread runtime).
#[derive(Debug)]
struct Tally {
    latency: LatencyRecorder,
    completed: u64,
    denied: u64,
    errors: BTreeMap<String, u64>,
    late_starts: u64,
    last_done: Option<Instant>,
}

/// Runs `plan`, calling `call(i)` for request `i` at its intended time, and measures the replies.
///
/// `call` builds the request's future, which the engine runs in its own task; the future starts
/// when the task does, and its completion ends the request's latency. The warm-up requests are
/// sent on the same schedule, first, and not measured. Must run inside a tokio runtime.
pub async fn drive<F, Fut>(plan: &Plan, call: F) -> Result<Measurement, BenchError>
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Reply> + Send + 'static,
{
    check_rate(plan.rate)?;
    let permits = u32::try_from(plan.concurrency)
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| {
            BenchError::Usage(format!(
                "invalid concurrency {}: expected 1 or more",
                plan.concurrency
            ))
        })?;
    // A short head start, so that the first request is not late by the setup below.
    let schedule = Schedule::try_new(Instant::now() + Duration::from_millis(5), plan.rate)?;
    let warmup = schedule.count_in(plan.warmup);
    let total = warmup + schedule.count_in(plan.duration);
    let measured_start = schedule.at(warmup);
    let tally = Arc::new(Mutex::new(Tally {
        latency: LatencyRecorder::try_new()?,
        completed: 0,
        denied: 0,
        errors: BTreeMap::new(),
        late_starts: 0,
        last_done: None,
    }));
    let in_flight = Arc::new(Semaphore::new(permits as usize));
    for i in 0..total {
        let intended = schedule.at(i);
        wait_until(intended).await;
        // At the limit, this request waits for a reply; its latency still counts from
        // `intended`, and the requests after it are due at their own times, not later.
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            break;
        };
        let request = call(i);
        let measured = i >= warmup;
        let tally = Arc::clone(&tally);
        tokio::spawn(async move {
            let started = Instant::now();
            let reply = request.await;
            let done = Instant::now();
            if measured {
                let mut t = tally.lock();
                if started.saturating_duration_since(intended) > LATE {
                    t.late_starts += 1;
                }
                t.completed += 1;
                t.last_done = Some(t.last_done.map_or(done, |last| last.max(done)));
                match reply {
                    Reply::Ok => t.latency.record(done.saturating_duration_since(intended)),
                    Reply::Denied => {
                        t.denied += 1;
                        t.latency.record(done.saturating_duration_since(intended));
                    }
                    Reply::Failed(code) => *t.errors.entry(code).or_insert(0) += 1,
                }
            }
            // Returned only once the reply is tallied: the drain below waits for every
            // permit, and must then find every reply counted.
            drop(permit);
        });
    }
    // Every permit back means every request has ended.
    let _ = tokio::time::timeout(DRAIN, in_flight.acquire_many(permits)).await;
    let t = tally.lock();
    let elapsed = t
        .last_done
        .map_or(Duration::ZERO, |d| {
            d.saturating_duration_since(measured_start)
        })
        .max(plan.duration);
    Ok(Measurement {
        latency: t.latency.clone(),
        sent: total - warmup,
        completed: t.completed,
        denied: t.denied,
        errors: t.errors.clone(),
        late_starts: t.late_starts,
        elapsed,
    })
}

/// Returns at `at` (or at once when it is past), to within a few microseconds.
async fn wait_until(at: Instant) {
    loop {
        let wait = at.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            return;
        }
        if wait > COARSE {
            tokio::time::sleep(wait - COARSE).await;
        } else {
            // Yielding lets the replies of earlier requests be read while we wait.
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intended_times_are_exact_and_do_not_drift() {
        let start = Instant::now();
        let s = Schedule::try_new(start, 1000.0).unwrap();
        assert_eq!(s.at(0), start);
        assert_eq!(s.offset(1), Duration::from_millis(1));
        assert_eq!(s.offset(1234), Duration::from_millis(1234));
        // Ten days at 1000/s: still exact to the nanosecond.
        assert_eq!(s.offset(864_000_000), Duration::from_secs(864_000));

        // A rate whose interval is not a whole number of nanoseconds (333,333.33 ns): each
        // time is within half a nanosecond of i/3 s, so after a million requests the schedule
        // is where it should be, where adding a rounded interval would be 333 µs off.
        let s = Schedule::try_new(start, 3.0).unwrap();
        assert_eq!(s.offset(3), Duration::from_secs(1));
        assert_eq!(s.offset(3_000_000), Duration::from_secs(1_000_000));
        assert_eq!(s.offset(1), Duration::from_nanos(333_333_333));
        assert_eq!(s.offset(2), Duration::from_nanos(666_666_667));
        let s = Schedule::try_new(start, 7.0).unwrap();
        for i in [1u64, 10, 1_000, 1_000_000, 7_000_000] {
            let exact = i as u128 * 1_000_000_000;
            let got = s.offset(i).as_nanos() * 7;
            assert!(got.abs_diff(exact) <= 7, "i = {i}: {got} vs {exact}");
        }
        assert_eq!(s.count_in(Duration::from_secs(2)), 14);
    }

    #[test]
    fn rates_must_be_positive_and_finite() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let e = Schedule::try_new(Instant::now(), rate).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{rate}");
        }
    }

    #[test]
    fn the_recorder_keeps_three_significant_digits_in_microseconds() {
        let mut r = LatencyRecorder::try_new().unwrap();
        r.record(Duration::from_nanos(300)); // under 1 µs: counted as 1 µs
        r.record(Duration::from_micros(123_456));
        assert_eq!(r.len(), 2);
        assert_eq!(r.histogram().min(), 1);
        let max = r.histogram().max();
        assert!((123_000..=123_600).contains(&max), "{max}");
    }

    fn plan(rate: f64, duration_ms: u64, concurrency: usize) -> Plan {
        Plan {
            rate,
            warmup: Duration::ZERO,
            duration: Duration::from_millis(duration_ms),
            concurrency,
        }
    }

    /// The coordinated-omission test. A one-at-a-time "server" (concurrency 1, as a
    /// closed-loop client would be) stalls 50 ms once, on request 200 of 1000 sent at 1000/s.
    /// The ~50 requests due during the stall go out late; measured from their intended times
    /// they took 50, 49, ... 1 ms, so the stall fills the top 5 % of the distribution. A
    /// generator that timed from the actual send would see one 50 ms sample among 999 fast
    /// ones: its p99 and p99.9 would stay near zero.
    #[tokio::test(flavor = "current_thread")]
    async fn a_stall_shows_in_the_tail_although_requests_were_sent_late() {
        let m = drive(&plan(1000.0, 1000, 1), |i| async move {
            if i == 200 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Reply::Ok
        })
        .await
        .unwrap();
        assert_eq!(m.sent, 1000);
        assert_eq!(m.completed, 1000);
        assert_eq!(m.error_count(), 0);
        let h = m.latency.histogram();
        assert!(h.max() >= 50_000, "max {} µs", h.max());
        let p999 = h.value_at_quantile(0.999);
        let p99 = h.value_at_quantile(0.99);
        assert!(p999 >= 45_000, "p99.9 {p999} µs");
        assert!(p99 >= 35_000, "p99 {p99} µs");
        // Those requests were held back by the limit, and say so.
        assert!(m.late_starts >= 40, "late starts {}", m.late_starts);
    }

    /// Without a binding limit, one request stalling 300 ms delays no other: had the stall
    /// held the schedule back, the ~150 requests due meanwhile would all be 150 ms or more
    /// late and fill the p99. (The bound leaves room for the test process itself being
    /// descheduled on a busy machine, which an open-loop measurement rightly counts.)
    #[tokio::test(flavor = "current_thread")]
    async fn without_a_limit_a_slow_request_does_not_delay_the_others() {
        let m = drive(&plan(500.0, 400, 1000), |i| async move {
            if i == 20 {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Reply::Ok
        })
        .await
        .unwrap();
        assert_eq!(m.sent, 200);
        assert_eq!(m.completed, 200);
        let h = m.latency.histogram();
        assert!(h.max() >= 300_000, "max {}", h.max());
        let p99 = h.value_at_quantile(0.99);
        assert!(p99 < 150_000, "p99 {p99}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn warmup_is_sent_but_not_measured_and_replies_are_tallied() {
        let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let seen = Arc::clone(&calls);
        let m = drive(
            &Plan {
                rate: 1000.0,
                warmup: Duration::from_millis(100),
                duration: Duration::from_millis(200),
                concurrency: 64,
            },
            move |i| {
                seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                async move {
                    match i % 4 {
                        0 => Reply::Denied,
                        1 => Reply::Failed("Unavailable".into()),
                        _ => Reply::Ok,
                    }
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 300);
        assert_eq!(m.sent, 200);
        assert_eq!(m.completed, 200);
        assert_eq!(m.denied, 50);
        assert_eq!(m.errors.get("Unavailable"), Some(&50));
        // Failures are counted, not timed.
        assert_eq!(m.latency.len(), 150);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_zero_concurrency_is_refused() {
        let e = drive(&plan(10.0, 10, 0), |_| async { Reply::Ok })
            .await
            .unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }
}
