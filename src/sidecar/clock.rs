//! The clock a request reads: once, and cheaply.
//!
//! A request needs two times: a monotonic one, for its caches' expiry and its latency, and the
//! wall-clock one, for `aws:CurrentTime`, credentials' expiry and the decision log. Each read
//! of the system's clocks is a vDSO call of 25–35 ns on the VMs this was measured on, and a
//! cache hit read three of them: a third of its time. Here:
//!
//! - the monotonic time is the CPU's time-stamp counter scaled to nanoseconds (`quanta`,
//!   ~10 ns a read), or the kernel's monotonic clock where the counter is not invariant;
//! - the wall-clock time is derived from it: each thread keeps the wall-clock time it read at
//!   a monotonic instant and adds the monotonic time since, reading the wall clock again once
//!   that reading is [`REREAD`] old. Between two reads the derived time is off by the two
//!   clocks' drift over at most that interval (microseconds at NTP's largest slew), and a step
//!   of the system clock shows within it. Every use of the wall clock here has a resolution of
//!   a millisecond or coarser.

use std::cell::Cell;
use std::time::Duration;

use crate::policy::Timestamp;

/// A monotonic instant: `quanta`'s, of its one global clock, calibrated once per process
/// (within 200 ms, its bound; a fraction of a millisecond where measured).
pub(crate) type Instant = quanta::Instant;

/// How long a thread derives the wall-clock time from the monotonic clock before it reads the
/// wall clock again.
pub(crate) const REREAD: Duration = Duration::from_millis(100);

/// The monotonic time now.
#[inline]
pub(crate) fn now() -> Instant {
    Instant::now()
}

/// A request's times, read when it starts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reading {
    /// The monotonic instant the request started.
    pub(crate) started: Instant,
    /// The wall-clock time it started.
    pub(crate) now: Timestamp,
}

impl Reading {
    /// Reads the clock: one read of the monotonic clock, and of the wall clock when this
    /// thread's last is [`REREAD`] old.
    #[inline]
    pub(crate) fn take() -> Self {
        let started = now();
        let now = WALL.with(|wall| wall_at(wall, started, Timestamp::now));
        Self { started, now }
    }

    /// The time since the request started.
    #[inline]
    pub(crate) fn elapsed(&self) -> Duration {
        now().duration_since(self.started)
    }
}

thread_local! {
    /// This thread's last read of the wall clock and the monotonic instant it was read at.
    static WALL: Cell<Option<(Instant, Timestamp)>> = const { Cell::new(None) };
}

/// The wall-clock time at `at`: derived from `wall`'s reading while it is younger than
/// [`REREAD`], else read from `read_wall` and kept.
fn wall_at(
    wall: &Cell<Option<(Instant, Timestamp)>>,
    at: Instant,
    read_wall: impl FnOnce() -> Timestamp,
) -> Timestamp {
    if let Some((read_at, read)) = wall.get() {
        // `None` when `at` is before the reading: a thread that moved to a core whose counter
        // is behind reads the wall clock again rather than subtract.
        if let Some(since) = at.checked_duration_since(read_at) {
            if since < REREAD {
                // INVARIANT: `since` is under `REREAD`, so its nanoseconds fit an `i128`.
                let since = i128::try_from(since.as_nanos()).unwrap_or(0);
                return Timestamp(read.0.saturating_add(since));
            }
        }
    }
    let read = read_wall();
    wall.set(Some((at, read)));
    read
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wall_clock_is_derived_until_its_reading_is_reread_old() {
        let wall = Cell::new(None);
        let t0 = now();
        let base = Timestamp::from_epoch_seconds(1_800_000_000);
        let mut reads = 0;
        let mut read = |at: Timestamp| {
            reads += 1;
            at
        };
        // The first request reads the wall clock.
        assert_eq!(wall_at(&wall, t0, || read(base)), base);
        // Later ones within REREAD add the monotonic time since.
        let later = t0 + Duration::from_millis(40) + Duration::from_nanos(7);
        let derived = wall_at(&wall, later, || read(Timestamp(0)));
        assert_eq!(derived.0 - base.0, 40_000_007);
        // At REREAD the wall clock is read again: a step of the system clock shows.
        let stepped = Timestamp::from_epoch_seconds(1_700_000_000);
        let reread = wall_at(&wall, t0 + REREAD, || read(stepped));
        assert_eq!(reread, stepped);
        let after = wall_at(&wall, t0 + REREAD + Duration::from_millis(1), || {
            read(Timestamp(0))
        });
        assert_eq!(after.0 - stepped.0, 1_000_000);
        assert_eq!(reads, 2, "read at the start and at REREAD only");
    }

    #[test]
    fn an_instant_before_the_reading_reads_the_wall_clock_again() {
        let wall = Cell::new(None);
        let t0 = now() + Duration::from_secs(1);
        let base = Timestamp::from_epoch_seconds(1_800_000_000);
        assert_eq!(wall_at(&wall, t0, || base), base);
        let earlier = t0 - Duration::from_millis(1);
        let other = Timestamp::from_epoch_seconds(1_800_000_005);
        assert_eq!(wall_at(&wall, earlier, || other), other);
    }

    #[test]
    fn a_reading_is_the_system_clocks_within_a_reread() {
        for _ in 0..3 {
            let before = Timestamp::now();
            let reading = Reading::take();
            let after = Timestamp::now();
            // Derived from a read at most REREAD old, so off by at most the two clocks' drift
            // over it: a millisecond is generous.
            let slack = 1_000_000;
            assert!(
                reading.now.0 >= before.0 - slack && reading.now.0 <= after.0 + slack,
                "{reading:?} between {before:?} and {after:?}"
            );
            std::thread::sleep(Duration::from_millis(60));
        }
        let reading = Reading::take();
        std::thread::sleep(Duration::from_millis(5));
        assert!(reading.elapsed() >= Duration::from_millis(5));
    }
}
