//! STS events: the calls this sidecar's STS handled (`AssumeRole`, `GetSessionToken`, ...),
//! shipped to the control plane on the sync stream as CloudTrail's management events (issue
//! #17, item 7).
//!
//! The STS call [`Trail::record`]s its event into a bounded queue and goes on: recording is one
//! short lock and never waits for the control plane. A full queue (per tenant, or overall)
//! drops the new event and counts it. At each interval the stream [`Trail::take`]s the queue
//! as messages under a byte budget, as usage is shipped (`super::usage`); a message is kept
//! until the control plane answers anything after it, and a stream that ends first puts it
//! back ([`Trail::restore`]) to be sent on the next stream. Each event carries a random id
//! and the control plane keeps one event per id, so a message sent twice is harmless
//! (at-least-once).
//!
//! An event never holds a secret: its builder (`crate::sidecar`'s STS) copies only named,
//! non-secret parameters and the answer's access key id and expiry.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use prost::Message;

use crate::proto::v1 as pb;

/// An STS call as a sidecar handled it, before it is encoded for the stream (the sidecar
/// names no protobuf type): the fields of CloudTrail's record that the sidecar knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrailEvent {
    /// The tenant whose event it is.
    pub tenant: String,
    /// A unique id: the control plane keeps one event per id.
    pub event_id: String,
    /// When the call was handled, in Unix milliseconds.
    pub event_time_ms: i64,
    /// The STS action (`AssumeRole`).
    pub event_name: String,
    /// Who called, when the caller was authenticated.
    pub user_identity: Option<TrailIdentity>,
    /// The caller's address, when the edge has it.
    pub source_ip_address: String,
    /// The caller's `User-Agent`, when the edge has it.
    pub user_agent: String,
    /// The request's named parameters as a JSON object (never a token or an assertion).
    pub request_parameters_json: String,
    /// The answer's public parts as a JSON object (never a secret).
    pub response_elements_json: String,
    /// AWS's error code of a refused call.
    pub error_code: String,
    /// Its message.
    pub error_message: String,
    /// The request's id.
    pub request_id: String,
    /// The region the call was made in.
    pub aws_region: String,
}

/// CloudTrail's `userIdentity` of an STS call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrailIdentity {
    /// `IAMUser`, `Root`, `AssumedRole`, `FederatedUser` or `WebIdentityUser`.
    pub kind: String,
    /// The principal's unique id.
    pub principal_id: String,
    /// The caller's ARN.
    pub arn: String,
    /// The caller's account.
    pub account_id: String,
    /// The access key the caller signed with.
    pub access_key_id: String,
    /// The user's name, for users.
    pub user_name: String,
    /// A session's issuer: its type (`Role`).
    pub session_issuer_type: String,
    /// The issuer's ARN.
    pub session_issuer_arn: String,
    /// The issuer's unique id.
    pub session_issuer_principal_id: String,
    /// The issuer's name.
    pub session_issuer_user_name: String,
    /// When the session was created, in Unix milliseconds (0: not a session).
    pub session_creation_time_ms: i64,
    /// Whether the session was authenticated with MFA.
    pub mfa_authenticated: bool,
    /// The identity provider of a web identity caller.
    pub identity_provider: String,
}

impl From<TrailIdentity> for pb::TrailIdentity {
    fn from(c: TrailIdentity) -> Self {
        Self {
            r#type: c.kind,
            principal_id: c.principal_id,
            arn: c.arn,
            account_id: c.account_id,
            access_key_id: c.access_key_id,
            user_name: c.user_name,
            session_issuer_type: c.session_issuer_type,
            session_issuer_arn: c.session_issuer_arn,
            session_issuer_principal_id: c.session_issuer_principal_id,
            session_issuer_user_name: c.session_issuer_user_name,
            session_creation_time_ms: c.session_creation_time_ms,
            mfa_authenticated: c.mfa_authenticated,
            identity_provider: c.identity_provider,
        }
    }
}

impl From<TrailEvent> for pb::TrailEvent {
    fn from(e: TrailEvent) -> Self {
        Self {
            tenant: e.tenant,
            event_id: e.event_id,
            event_time_ms: e.event_time_ms,
            event_name: e.event_name,
            user_identity: e.user_identity.map(Into::into),
            source_ip_address: e.source_ip_address,
            user_agent: e.user_agent,
            request_parameters_json: e.request_parameters_json,
            response_elements_json: e.response_elements_json,
            error_code: e.error_code,
            error_message: e.error_message,
            request_id: e.request_id,
            aws_region: e.aws_region,
        }
    }
}

/// Events queued at most, over every tenant, by default.
pub const DEFAULT_MAX_EVENTS: usize = 20_000;

/// Events queued at most for one tenant by default: a tenant with a runaway caller cannot
/// crowd out the others.
pub const DEFAULT_MAX_EVENTS_PER_TENANT: usize = 5_000;

/// The largest message of events by default, as usage's (a sixteenth of gRPC's 4 MiB).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// The smallest budget a message may be given: the largest event always fits.
const MIN_MESSAGE_BYTES: usize = 16 * 1024;

/// The longest an event's text fields are kept (an ARN is at most 2,048 characters); what is
/// longer is cut, so that one event always fits in a message.
pub const MAX_FIELD_BYTES: usize = 2_048;

/// The longest an event's JSON parameters or answer are kept; longer ones are dropped whole
/// (a cut would not be JSON).
pub const MAX_JSON_BYTES: usize = 2 * MAX_FIELD_BYTES;

/// How STS events are queued and shipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrailConfig {
    /// How often the events are shipped (the stream ships usage and events at the shorter of
    /// their intervals).
    pub interval: Duration,
    /// Events queued at most, over every tenant.
    pub max_events: usize,
    /// Events queued at most for one tenant.
    pub max_events_per_tenant: usize,
    /// The largest message (encoded `WatchRequest`); at least 16 KiB.
    pub max_message_bytes: usize,
}

impl Default for TrailConfig {
    fn default() -> Self {
        Self {
            interval: super::usage::DEFAULT_USAGE_INTERVAL,
            max_events: DEFAULT_MAX_EVENTS,
            max_events_per_tenant: DEFAULT_MAX_EVENTS_PER_TENANT,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }
}

/// The counters of [`Trail`], for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TrailStats {
    /// Events recorded (queued).
    pub recorded: u64,
    /// Events queued now.
    pub queued: u64,
    /// Events dropped because a bound was reached (new ones, or ones put back).
    pub dropped: u64,
    /// Messages of events handed to the stream.
    pub messages_sent: u64,
    /// Their encoded bytes.
    pub bytes_sent: u64,
}

#[derive(Debug, Default)]
struct Queue {
    events: VecDeque<pb::TrailEvent>,
    per_tenant: BTreeMap<String, usize>,
}

impl Queue {
    fn admits(&self, config: &TrailConfig, tenant: &str) -> bool {
        self.events.len() < config.max_events
            && self.per_tenant.get(tenant).copied().unwrap_or(0) < config.max_events_per_tenant
    }

    fn count(&mut self, tenant: &str) {
        *self.per_tenant.entry(tenant.to_owned()).or_default() += 1;
    }
}

/// A sidecar's STS events waiting to be shipped.
#[derive(Debug)]
pub struct Trail {
    config: TrailConfig,
    queue: Mutex<Queue>,
    recorded: AtomicU64,
    dropped: AtomicU64,
    messages_sent: AtomicU64,
    bytes_sent: AtomicU64,
}

impl Default for Trail {
    fn default() -> Self {
        Self::new(TrailConfig::default())
    }
}

impl Trail {
    /// An empty queue.
    pub fn new(config: TrailConfig) -> Self {
        let config = TrailConfig {
            max_message_bytes: config.max_message_bytes.max(MIN_MESSAGE_BYTES),
            ..config
        };
        Self {
            config,
            queue: Mutex::new(Queue::default()),
            recorded: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            messages_sent: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
        }
    }

    /// How it is configured.
    pub fn config(&self) -> &TrailConfig {
        &self.config
    }

    /// Queues `event`, or drops it (and counts it) when a bound is reached. Never waits for
    /// the stream.
    pub fn record(&self, event: TrailEvent) {
        let mut event = pb::TrailEvent::from(event);
        bound_event(&mut event);
        let mut queue = self.queue.lock();
        if !queue.admits(&self.config, &event.tenant) {
            drop(queue);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        queue.count(&event.tenant);
        queue.events.push_back(event);
        drop(queue);
        self.recorded.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes every queued event, oldest first, as messages of at most the configured size.
    pub fn take(&self) -> Vec<Vec<pb::TrailEvent>> {
        let events = std::mem::take(&mut *self.queue.lock()).events;
        // The envelope: a `WatchRequest` of events only is its events' fields.
        let mut messages = Vec::new();
        let mut current = Vec::new();
        let mut size = 0;
        for event in events {
            let len = field_bytes(event.encoded_len());
            if size + len > self.config.max_message_bytes && !current.is_empty() {
                messages.push(std::mem::take(&mut current));
                size = 0;
            }
            size += len;
            current.push(event);
        }
        if !current.is_empty() {
            messages.push(current);
        }
        messages
    }

    /// Puts back events that were taken but not delivered, ahead of newer ones; those the
    /// bounds no longer admit are dropped and counted.
    pub fn restore(&self, events: &[pb::TrailEvent]) {
        let mut queue = self.queue.lock();
        let mut dropped = 0;
        for event in events.iter().rev() {
            if queue.admits(&self.config, &event.tenant) {
                queue.count(&event.tenant);
                queue.events.push_front(event.clone());
            } else {
                dropped += 1;
            }
        }
        drop(queue);
        self.dropped.fetch_add(dropped, Ordering::Relaxed);
    }

    /// Counts a message of `bytes` handed to the stream.
    pub fn sent(&self, bytes: usize) {
        self.messages_sent.fetch_add(1, Ordering::Relaxed);
        self.bytes_sent
            .fetch_add(u64::try_from(bytes).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The counters.
    pub fn stats(&self) -> TrailStats {
        TrailStats {
            recorded: self.recorded.load(Ordering::Relaxed),
            queued: u64::try_from(self.queue.lock().events.len()).unwrap_or(u64::MAX),
            dropped: self.dropped.load(Ordering::Relaxed),
            messages_sent: self.messages_sent.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
        }
    }
}

/// The bytes a length-delimited field of `len` bytes takes (a one-byte tag: field 8).
fn field_bytes(len: usize) -> usize {
    1 + prost::encoding::encoded_len_varint(len as u64) + len
}

/// Cuts `text` to at most `max` bytes, at a character boundary.
pub fn cut(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
}

/// Keeps every text field of `event` within [`MAX_FIELD_BYTES`], and its JSON parameters
/// whole or not at all (cut JSON is no JSON): the largest event fits in the smallest message.
fn bound_event(event: &mut pb::TrailEvent) {
    for field in [
        &mut event.tenant,
        &mut event.event_id,
        &mut event.event_name,
        &mut event.source_ip_address,
        &mut event.user_agent,
        &mut event.error_code,
        &mut event.error_message,
        &mut event.request_id,
        &mut event.aws_region,
    ] {
        cut(field, MAX_FIELD_BYTES);
    }
    for json in [
        &mut event.request_parameters_json,
        &mut event.response_elements_json,
    ] {
        if json.len() > MAX_JSON_BYTES {
            json.clear();
        }
    }
    if let Some(identity) = &mut event.user_identity {
        for field in [
            &mut identity.r#type,
            &mut identity.principal_id,
            &mut identity.arn,
            &mut identity.account_id,
            &mut identity.access_key_id,
            &mut identity.user_name,
            &mut identity.session_issuer_type,
            &mut identity.session_issuer_arn,
            &mut identity.session_issuer_principal_id,
            &mut identity.session_issuer_user_name,
            &mut identity.identity_provider,
        ] {
            cut(field, MAX_FIELD_BYTES);
        }
    }
}

/// A new event id, in the UUID v4 form CloudTrail's are: 122 random bits, so ids from every
/// sidecar never meet.
pub fn new_event_id() -> String {
    let mut bytes = [0u8; 16];
    crate::directory::IdGenerator::system().fill(&mut bytes);
    if let Some(b) = bytes.get_mut(6) {
        *b = (*b & 0x0f) | 0x40;
    }
    if let Some(b) = bytes.get_mut(8) {
        *b = (*b & 0x3f) | 0x80;
    }
    let hex = data_encoding::HEXLOWER.encode(&bytes);
    let part = |from: usize, to: usize| hex.get(from..to).unwrap_or_default();
    format!(
        "{}-{}-{}-{}-{}",
        part(0, 8),
        part(8, 12),
        part(12, 16),
        part(16, 20),
        part(20, 32)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(tenant: &str, n: usize) -> TrailEvent {
        TrailEvent {
            tenant: tenant.into(),
            event_id: format!("id-{n}"),
            event_time_ms: 1_000,
            event_name: "AssumeRole".into(),
            request_parameters_json: format!("{{\"roleSessionName\":\"s{n}\"}}"),
            ..TrailEvent::default()
        }
    }

    #[test]
    fn events_are_taken_oldest_first_once() {
        let trail = Trail::default();
        for n in 0..3 {
            trail.record(event("111122223333", n));
        }
        let messages = trail.take();
        let ids: Vec<&str> = messages
            .iter()
            .flatten()
            .map(|e| e.event_id.as_str())
            .collect();
        assert_eq!(ids, ["id-0", "id-1", "id-2"]);
        assert!(trail.take().is_empty());
        assert_eq!(trail.stats().recorded, 3);
    }

    #[test]
    fn the_queue_is_bounded_per_tenant_and_overall_and_counts_what_it_drops() {
        let trail = Trail::new(TrailConfig {
            max_events: 5,
            max_events_per_tenant: 3,
            ..TrailConfig::default()
        });
        for n in 0..4 {
            trail.record(event("111122223333", n));
        }
        for n in 0..4 {
            trail.record(event("444455556666", n));
        }
        let stats = trail.stats();
        assert_eq!(stats.queued, 5, "3 of the first tenant, 2 of the second");
        assert_eq!(stats.dropped, 3);
        let taken: Vec<pb::TrailEvent> = trail.take().into_iter().flatten().collect();
        assert_eq!(
            taken.iter().filter(|e| e.tenant == "111122223333").count(),
            3
        );
    }

    #[test]
    fn messages_keep_to_the_byte_budget() {
        let trail = Trail::new(TrailConfig {
            max_message_bytes: 16 * 1024,
            ..TrailConfig::default()
        });
        for n in 0..400 {
            let mut e = event("111122223333", n);
            e.user_agent = "x".repeat(100);
            trail.record(e);
        }
        let messages = trail.take();
        assert!(messages.len() > 1, "{} messages", messages.len());
        for events in &messages {
            let request = pb::WatchRequest {
                events: events.clone(),
                ..pb::WatchRequest::default()
            };
            assert!(
                request.encoded_len() <= 16 * 1024,
                "{}",
                request.encoded_len()
            );
        }
        assert_eq!(messages.iter().map(Vec::len).sum::<usize>(), 400);
    }

    #[test]
    fn what_was_not_delivered_goes_back_first_within_the_bounds() {
        let trail = Trail::new(TrailConfig {
            max_events: 3,
            max_events_per_tenant: 3,
            ..TrailConfig::default()
        });
        trail.record(event("111122223333", 0));
        trail.record(event("111122223333", 1));
        let taken: Vec<pb::TrailEvent> = trail.take().into_iter().flatten().collect();
        trail.record(event("111122223333", 2));
        trail.record(event("111122223333", 3));
        trail.restore(&taken);
        let ids: Vec<String> = trail
            .take()
            .into_iter()
            .flatten()
            .map(|e| e.event_id)
            .collect();
        // One of the two put back fits beside the two newer events; the other is counted.
        assert_eq!(ids, ["id-1", "id-2", "id-3"]);
        assert_eq!(trail.stats().dropped, 1);
    }

    #[test]
    fn long_fields_are_cut_and_oversized_json_left_out() {
        let trail = Trail::default();
        let mut e = event("111122223333", 0);
        e.user_agent = "é".repeat(MAX_FIELD_BYTES);
        e.request_parameters_json = format!("{{\"policy\":\"{}\"}}", "a".repeat(10_000));
        trail.record(e);
        let taken: Vec<pb::TrailEvent> = trail.take().into_iter().flatten().collect();
        let [e] = taken.as_slice() else {
            panic!("one event, got {taken:?}");
        };
        assert!(e.user_agent.len() <= MAX_FIELD_BYTES);
        assert!(e.user_agent.chars().all(|c| c == 'é'));
        assert!(e.request_parameters_json.is_empty());
    }

    #[test]
    fn event_ids_are_uuids_and_differ() {
        let (a, b) = (new_event_id(), new_event_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.chars().nth(14), Some('4'));
        assert!(a
            .chars()
            .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }
}
