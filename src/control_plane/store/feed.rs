//! Change notices from other writers of the same store (issue #16, item 2).
//!
//! A store shared by several control-plane replicas tells each of them about the changes the
//! others commit: PostgreSQL delivers a notice (`<account>:<seq>`) on the
//! [`CHANGES_CHANNEL`] channel when, and only when, a commit's transaction commits. A
//! [`ChangeFeed`] is the receiving end: blocking, read by the control plane's follower thread
//! (the engine stays free of async runtimes). Notices are hints, never the data: the replica
//! reads the committed state, and a periodic catch-up poll makes a lost notice a delay only.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// The PostgreSQL channel commits notify on.
pub const CHANGES_CHANNEL: &str = "iamlet_changes";

/// A change another writer committed: the tenant and the number of its change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeNotice {
    /// The tenant.
    pub account_id: String,
    /// The change's number (the tenant's version within the store's epoch).
    pub seq: u64,
}

impl ChangeNotice {
    /// The notice's payload as sent on the channel: `<account>:<seq>`.
    pub fn payload(&self) -> String {
        format!("{}:{}", self.account_id, self.seq)
    }

    /// Reads a payload; `None` for one that is not `<account>:<seq>` (never sent by iamlet).
    pub fn parse(payload: &str) -> Option<Self> {
        let (account, seq) = payload.rsplit_once(':')?;
        if account.is_empty() {
            return None;
        }
        Some(Self {
            account_id: account.to_owned(),
            seq: seq.parse().ok()?,
        })
    }
}

/// What a feed delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedEvent {
    /// A change was committed.
    Change(ChangeNotice),
    /// The feed is (again) listening: changes committed while it was not were not notified,
    /// so the reader catches up by polling now.
    Listening,
}

/// The receiving end of a store's change notices: a blocking receiver. Dropping it stops the
/// producer (its listening connection is closed within a moment).
#[derive(Debug)]
pub struct ChangeFeed {
    events: mpsc::Receiver<FeedEvent>,
    stop: Arc<AtomicBool>,
}

/// The producing end of a [`ChangeFeed`].
#[derive(Debug, Clone)]
pub struct FeedSender {
    events: mpsc::Sender<FeedEvent>,
    stop: Arc<AtomicBool>,
}

/// Why [`ChangeFeed::next_timeout`] returned no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedIdle {
    /// Nothing arrived in time.
    Timeout,
    /// The producer is gone: nothing will arrive any more.
    Closed,
}

impl ChangeFeed {
    /// A connected pair: stores hand the sender to the thread that listens; tests feed it.
    pub fn channel() -> (FeedSender, Self) {
        let (events, receiver) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        (
            FeedSender {
                events,
                stop: Arc::clone(&stop),
            },
            Self {
                events: receiver,
                stop,
            },
        )
    }

    /// The next event, waiting at most `timeout`.
    pub fn next_timeout(&self, timeout: Duration) -> Result<FeedEvent, FeedIdle> {
        self.events.recv_timeout(timeout).map_err(|e| match e {
            mpsc::RecvTimeoutError::Timeout => FeedIdle::Timeout,
            mpsc::RecvTimeoutError::Disconnected => FeedIdle::Closed,
        })
    }
}

impl Drop for ChangeFeed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl FeedSender {
    /// Delivers `event`; false when the feed was dropped (the producer should stop).
    pub fn send(&self, event: FeedEvent) -> bool {
        !self.is_closed() && self.events.send(event).is_ok()
    }

    /// True once the feed was dropped.
    pub fn is_closed(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_round_trips_and_a_foreign_one_is_refused() {
        let notice = ChangeNotice {
            account_id: "111122223333".into(),
            seq: 42,
        };
        assert_eq!(notice.payload(), "111122223333:42");
        assert_eq!(ChangeNotice::parse(&notice.payload()), Some(notice));
        for bad in ["", "111122223333", ":4", "111122223333:", "a:b", "a:-1"] {
            assert_eq!(ChangeNotice::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn dropping_the_feed_closes_the_sender_and_a_dropped_sender_closes_the_feed() {
        let (sender, feed) = ChangeFeed::channel();
        assert!(sender.send(FeedEvent::Listening));
        assert_eq!(
            feed.next_timeout(Duration::from_millis(10)),
            Ok(FeedEvent::Listening)
        );
        assert_eq!(
            feed.next_timeout(Duration::from_millis(10)),
            Err(FeedIdle::Timeout)
        );
        drop(feed);
        assert!(sender.is_closed());
        assert!(!sender.send(FeedEvent::Listening));

        let (sender, feed) = ChangeFeed::channel();
        drop(sender);
        assert_eq!(
            feed.next_timeout(Duration::from_millis(10)),
            Err(FeedIdle::Closed)
        );
    }
}
