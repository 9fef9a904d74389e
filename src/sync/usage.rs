//! Usage aggregation: what this sidecar decided, per tenant, shipped to the control plane on
//! the sync stream so that it can answer "when was this key, role or service last used".
//!
//! Every decision (a cache hit too: it is still a use of the key) and every STS call that
//! authenticated its caller is a *use*: a tenant, the caller as presented (an access key id or
//! a principal ARN), an action and a region. [`Usage::record`] coalesces uses in a sharded
//! table keyed by those four: a use of an existing entry only raises its time (one hash, one
//! uncontended lock, no allocation); what the use says about the caller (its principal's ARN,
//! the role of a session) is derived once, when the entry is created. The table is bounded per
//! tenant and overall; a use that would create an entry past a bound is dropped and counted.
//!
//! A cached decision is of one caller, action and region, so it keeps a [`UsageSlot`], a handle
//! on its entry's time: a hit then records its use with [`Usage::raise`], a relaxed load of
//! that time and a store at most once a second (no hash, no lock, no allocation). An entry that
//! leaves the table marks its time as detached, atomically with the check that it was idle, so
//! a hit either lands before (and keeps the entry) or sees the mark and records through the
//! table again, creating a new entry: no use is lost.
//!
//! At each interval the stream [`Usage::collect`]s the table into the report's shapes (per
//! long-term access key, per principal and service with its actions, per role) and
//! [`Usage::take`]s them as messages under a byte budget. A message is kept until the control
//! plane answers anything after it; a stream that ends first puts it back
//! ([`Usage::restore`]), to be sent again on the next stream. The control plane merges by
//! taking the latest time, so a message sent twice is harmless (at-least-once).
//!
//! Only aggregates leave the sidecar: no request, resource, context value or secret.

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hashbrown::{DefaultHashBuilder, HashTable};
use parking_lot::Mutex;
use prost::Message;

use crate::authz::Principal;
use crate::proto::v1 as pb;
use crate::snapshot::TenantSnapshot;

/// How often usage is shipped by default.
pub const DEFAULT_USAGE_INTERVAL: Duration = Duration::from_secs(60);

/// Entries kept at most, over every tenant, by default.
pub const DEFAULT_MAX_ENTRIES: usize = 200_000;

/// Entries kept at most for one tenant by default: a tenant with runaway distinct callers or
/// actions cannot crowd out the others.
pub const DEFAULT_MAX_ENTRIES_PER_TENANT: usize = 50_000;

/// The largest usage message by default: a sixteenth of gRPC's default 4 MiB limit, so a
/// report never competes with snapshot traffic for a large frame.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// The smallest budget a message may be given: one entry (an ARN is at most 2,048
/// characters) always fits.
const MIN_MESSAGE_BYTES: usize = 16 * 1024;

/// What waits to be sent is bounded at this many times the table's bounds: one entry of the
/// table becomes at most four of a report (its key, its service, its action, its role), so a
/// full table always fits once, and what is put back after a failed send competes with newer
/// uses for the rest.
const PENDING_SCALE: usize = 4;

/// Shards of the table: uses by different callers rarely wait on one another.
const SHARDS: usize = 16;

/// Stripes of the count of uses recorded through slots: each thread adds to its own, so that
/// hits on different cores do not contend for one counter.
const STRIPES: usize = 16;

/// The time of a slot whose entry has left the table: no use raises it any more (a maximum
/// stays a maximum), and a hit that finds it records through the table instead.
const DETACHED: i64 = i64::MAX;

/// How usage is aggregated and shipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageConfig {
    /// How often the aggregates are shipped.
    pub interval: Duration,
    /// Entries kept at most, over every tenant (in the table, and again in what waits to be
    /// sent).
    pub max_entries: usize,
    /// Entries kept at most for one tenant.
    pub max_entries_per_tenant: usize,
    /// The largest message (encoded `WatchRequest`); at least 16 KiB.
    pub max_message_bytes: usize,
}

impl Default for UsageConfig {
    fn default() -> Self {
        Self {
            interval: DEFAULT_USAGE_INTERVAL,
            max_entries: DEFAULT_MAX_ENTRIES,
            max_entries_per_tenant: DEFAULT_MAX_ENTRIES_PER_TENANT,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }
}

/// One use, as the decision path sees it: borrowed, so that recording a known use allocates
/// nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Use<'a> {
    /// The caller's tenant.
    pub tenant: &'a str,
    /// The caller as presented: an access key id, or the principal ARN an application named.
    pub caller: &'a str,
    /// The action (`s3:GetObject`).
    pub action: &'a str,
    /// The request's region (empty when nothing says).
    pub region: &'a str,
}

/// What a use says about its caller, derived once per entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    /// The user or role whose service usage this is (a role session's role); none for a
    /// caller Access Advisor does not track (a federated user).
    pub principal_arn: Option<Arc<str>>,
    /// The role, when the caller is a session of one.
    pub role_arn: Option<Arc<str>>,
}

impl Subject {
    /// The subject of `principal`, a caller of tenant `snapshot`: a role session's role is
    /// read from the snapshot, since a session ARN omits the role's path.
    pub fn of(principal: &Principal, snapshot: &TenantSnapshot) -> Self {
        match principal {
            Principal::User { arn, .. } | Principal::Role { arn, .. } => Self {
                principal_arn: Some(Arc::from(&**arn)),
                role_arn: None,
            },
            Principal::AssumedRole {
                account, role_name, ..
            } => {
                let arn: Arc<str> = match snapshot.role(role_name) {
                    Some(role) => Arc::from(&*role.arn),
                    None => Arc::from(format!("arn:aws:iam::{account}:role/{role_name}")),
                };
                Self {
                    principal_arn: Some(Arc::clone(&arn)),
                    role_arn: Some(arn),
                }
            }
            Principal::Root { account } => Self {
                principal_arn: Some(Arc::from(format!("arn:aws:iam::{account}:root"))),
                role_arn: None,
            },
            _ => Self::default(),
        }
    }
}

/// The region of an authorization request: the `aws:RequestedRegion` the application
/// supplied, else the region of the signature that authenticated it, else the resource ARN's
/// region segment; empty when nothing says.
pub fn region_of<'a>(
    requested: Option<&'a str>,
    signed: Option<&'a str>,
    resource: &'a str,
) -> &'a str {
    requested
        .or(signed)
        .or_else(|| {
            resource
                .get(..4)
                .filter(|p| p.eq_ignore_ascii_case("arn:"))?;
            resource.split(':').nth(3)
        })
        .unwrap_or("")
}

/// Whether an access key id is a long-term key (`AKIA…`): only those are reported as keys;
/// a session's key (`ASIA…`) counts as a use of its role.
fn is_long_term_key(caller: &str) -> bool {
    caller.starts_with("AKIA")
}

/// The latest use of an entry, Unix seconds, shared by the table and the cached decisions
/// that raise it; [`DETACHED`] once the entry has left the table.
#[derive(Debug)]
struct Slot {
    last: AtomicI64,
}

/// A handle on one entry's time, kept by a cached decision so that its hits are recorded with
/// [`Usage::raise`].
#[derive(Debug, Clone)]
pub struct UsageSlot(Arc<Slot>);

/// Slots are the same when they are handles on one entry (cached decisions that share one
/// are one value to the decision cache).
impl PartialEq for UsageSlot {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for UsageSlot {}

impl std::hash::Hash for UsageSlot {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::ptr::hash(Arc::as_ptr(&self.0), state);
    }
}

/// A use coalesced in the table.
#[derive(Debug)]
struct Entry {
    tenant: Box<str>,
    caller: Box<str>,
    action: Box<str>,
    region: Box<str>,
    subject: Arc<Subject>,
    /// The latest use.
    slot: Arc<Slot>,
    /// The latest use already collected.
    collected: i64,
}

impl Entry {
    fn key(&self) -> Use<'_> {
        Use {
            tenant: &self.tenant,
            caller: &self.caller,
            action: &self.action,
            region: &self.region,
        }
    }
}

#[derive(Debug, Default)]
struct Shard {
    table: HashTable<Entry>,
    /// Uses recorded through this shard (counted under its lock, so the decision path shares
    /// no counter between cores).
    uses: u64,
}

/// Entries per tenant and in all: consulted only when an entry is created or removed.
#[derive(Debug, Default)]
struct Counts {
    per_tenant: BTreeMap<Box<str>, usize>,
    total: usize,
}

impl Counts {
    /// Counts one more entry of `tenant`, unless a bound (times `scale`) forbids it.
    fn admit(&mut self, tenant: &str, config: &UsageConfig, scale: usize) -> bool {
        if self.total >= config.max_entries.saturating_mul(scale) {
            return false;
        }
        match self.per_tenant.get_mut(tenant) {
            Some(n) if *n >= config.max_entries_per_tenant.saturating_mul(scale) => false,
            Some(n) => {
                *n += 1;
                self.total += 1;
                true
            }
            None if config.max_entries_per_tenant == 0 => false,
            None => {
                self.per_tenant.insert(tenant.into(), 1);
                self.total += 1;
                true
            }
        }
    }

    fn release(&mut self, tenant: &str) {
        if let Some(n) = self.per_tenant.get_mut(tenant) {
            *n = n.saturating_sub(1);
            self.total = self.total.saturating_sub(1);
            if *n == 0 {
                self.per_tenant.remove(tenant);
            }
        }
    }
}

/// A time with what it was of; a later time replaces the rest, an equal one keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Stamp {
    at: i64,
    service: String,
    region: String,
}

impl Stamp {
    fn raise(&mut self, at: i64, service: &str, region: &str) {
        if at > self.at {
            self.at = at;
            service.clone_into(&mut self.service);
            region.clone_into(&mut self.region);
        }
    }
}

#[derive(Debug, Default)]
struct ServiceAggregate {
    last: Stamp,
    actions: BTreeMap<String, Stamp>,
}

/// One tenant's aggregates waiting to be sent.
#[derive(Debug, Default)]
struct TenantAggregate {
    access_keys: BTreeMap<String, Stamp>,
    /// By principal ARN and service namespace (lowercase).
    services: BTreeMap<(String, String), ServiceAggregate>,
    roles: BTreeMap<String, Stamp>,
}

/// What waits to be sent, bounded as the table is.
#[derive(Debug, Default)]
struct Pending {
    tenants: BTreeMap<String, TenantAggregate>,
    counts: Counts,
}

/// Merges `at` into `map[key]`, creating the entry if the bounds allow; false when they do
/// not.
fn raise_in(
    map: &mut BTreeMap<String, Stamp>,
    key: &str,
    stamp: (i64, &str, &str),
    admit: &mut dyn FnMut() -> bool,
) -> bool {
    let (at, service, region) = stamp;
    if let Some(s) = map.get_mut(key) {
        s.raise(at, service, region);
        return true;
    }
    if !admit() {
        return false;
    }
    let mut s = Stamp::default();
    s.raise(at, service, region);
    map.insert(key.to_owned(), s);
    true
}

impl Pending {
    /// Folds one use (or one entry of a report put back) in; returns the entries dropped for
    /// the bounds.
    fn fold(&mut self, config: &UsageConfig, at: Use<'_>, time: i64, subject: &Subject) -> u64 {
        let (service, action) = split_action(at.action);
        let mut dropped = 0;
        if is_long_term_key(at.caller) {
            dropped +=
                u64::from(!self.raise_key(config, at.tenant, at.caller, time, &service, at.region));
        }
        if let Some(principal) = &subject.principal_arn {
            dropped += self.raise_service(
                config,
                at.tenant,
                principal,
                &service,
                (time, at.region),
                std::iter::once((action, time, at.region)),
            );
        }
        if let Some(role) = &subject.role_arn {
            dropped += u64::from(!self.raise_role(config, at.tenant, role, time, at.region));
        }
        dropped
    }

    fn tenant(&mut self, tenant: &str) -> (&mut TenantAggregate, &mut Counts) {
        let aggregate = self.tenants.entry(tenant.to_owned()).or_default();
        (aggregate, &mut self.counts)
    }

    fn raise_key(
        &mut self,
        config: &UsageConfig,
        tenant: &str,
        key: &str,
        at: i64,
        service: &str,
        region: &str,
    ) -> bool {
        let (aggregate, counts) = self.tenant(tenant);
        raise_in(
            &mut aggregate.access_keys,
            key,
            (at, service, region),
            &mut || counts.admit(tenant, config, PENDING_SCALE),
        )
    }

    fn raise_role(
        &mut self,
        config: &UsageConfig,
        tenant: &str,
        role: &str,
        at: i64,
        region: &str,
    ) -> bool {
        let (aggregate, counts) = self.tenant(tenant);
        raise_in(&mut aggregate.roles, role, (at, "", region), &mut || {
            counts.admit(tenant, config, PENDING_SCALE)
        })
    }

    /// Raises a principal's service and its actions; returns the entries dropped.
    fn raise_service<'a>(
        &mut self,
        config: &UsageConfig,
        tenant: &str,
        principal: &str,
        service: &str,
        last: (i64, &str),
        actions: impl Iterator<Item = (&'a str, i64, &'a str)>,
    ) -> u64 {
        let (aggregate, counts) = self.tenant(tenant);
        let key = (principal.to_owned(), service.to_owned());
        if !aggregate.services.contains_key(&key) {
            if !counts.admit(tenant, config, PENDING_SCALE) {
                return 1;
            }
            aggregate
                .services
                .insert(key.clone(), ServiceAggregate::default());
        }
        let Some(entry) = aggregate.services.get_mut(&key) else {
            return 1;
        };
        entry.last.raise(last.0, "", last.1);
        let mut dropped = 0;
        for (action, at, region) in actions.filter(|(a, _, _)| !a.is_empty()) {
            if !raise_in(&mut entry.actions, action, (at, "", region), &mut || {
                counts.admit(tenant, config, PENDING_SCALE)
            }) {
                dropped += 1;
            }
        }
        dropped
    }

    /// Folds a report back in (one that was taken but not delivered); returns the entries
    /// dropped for the bounds.
    fn restore(&mut self, config: &UsageConfig, report: &pb::UsageReport) -> u64 {
        let tenant = report.tenant.as_str();
        let mut dropped = 0;
        for k in &report.access_keys {
            dropped += u64::from(!self.raise_key(
                config,
                tenant,
                &k.access_key_id,
                k.last_used,
                &k.service,
                &k.region,
            ));
        }
        for s in &report.services {
            dropped += self.raise_service(
                config,
                tenant,
                &s.principal_arn,
                &s.service,
                (s.last_authenticated, &s.region),
                s.actions
                    .iter()
                    .map(|a| (a.action.as_str(), a.last_accessed, a.region.as_str())),
            );
        }
        for r in &report.roles {
            dropped +=
                u64::from(!self.raise_role(config, tenant, &r.role_arn, r.last_used, &r.region));
        }
        dropped
    }
}

/// `s3:GetObject` → (`s3`, `GetObject`); the service namespace lowercased, as IAM compares it.
fn split_action(action: &str) -> (String, &str) {
    match action.split_once(':') {
        Some((service, name)) => (service.to_ascii_lowercase(), name),
        None => (action.to_ascii_lowercase(), ""),
    }
}

/// The bytes a length-delimited field of `len` bytes takes (its tag is one byte: every field
/// number here is below 16).
fn field_bytes(len: usize) -> usize {
    1 + prost::encoding::encoded_len_varint(len as u64) + len
}

/// Packs reports into messages under a byte budget, tenant by tenant.
struct Packer {
    max: usize,
    messages: Vec<Vec<pb::UsageReport>>,
    current: Vec<pb::UsageReport>,
    /// The encoded size of `current` as a `WatchRequest`, counting each report's length
    /// prefix at its largest (5 bytes), so the estimate is never below the truth.
    size: usize,
}

enum Item {
    Key(pb::AccessKeyUsage),
    Service(pb::ServiceUsage),
    Role(pb::RoleUsage),
}

impl Item {
    fn len(&self) -> usize {
        field_bytes(match self {
            Self::Key(k) => k.encoded_len(),
            Self::Service(s) => s.encoded_len(),
            Self::Role(r) => r.encoded_len(),
        })
    }
}

impl Packer {
    fn new(max: usize) -> Self {
        Self {
            max,
            messages: Vec::new(),
            current: Vec::new(),
            size: 0,
        }
    }

    fn push(&mut self, tenant: &str, item: Item) {
        let len = item.len();
        // A new report costs its field's tag, its length prefix at the largest, and its tenant.
        let opening = 1 + 5 + field_bytes(tenant.len());
        let open = |current: &[pb::UsageReport]| current.last().is_some_and(|r| r.tenant == tenant);
        let cost = if open(&self.current) {
            len
        } else {
            opening + len
        };
        if self.size + cost > self.max && !self.current.is_empty() {
            self.messages.push(std::mem::take(&mut self.current));
            self.size = 0;
        }
        if !open(&self.current) {
            self.current.push(pb::UsageReport {
                tenant: tenant.to_owned(),
                ..pb::UsageReport::default()
            });
            self.size += opening;
        }
        self.size += len;
        if let Some(report) = self.current.last_mut() {
            match item {
                Item::Key(k) => report.access_keys.push(k),
                Item::Service(s) => report.services.push(s),
                Item::Role(r) => report.roles.push(r),
            }
        }
    }

    fn finish(mut self) -> Vec<Vec<pb::UsageReport>> {
        if !self.current.is_empty() {
            self.messages.push(self.current);
        }
        self.messages
    }
}

/// One stripe of a count, on a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe(AtomicU64);

/// The stripe of the calling thread: threads take stripes in turn, once each.
fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    STRIPE.with(|s| *s)
}

/// A sidecar's usage aggregates: recorded by the decision path, shipped by the sync stream.
#[derive(Debug)]
pub struct Usage {
    config: UsageConfig,
    hasher: DefaultHashBuilder,
    shards: Box<[Mutex<Shard>]>,
    /// Uses recorded through slots, by thread stripe (those through the table count in its
    /// shards).
    raised: Box<[Stripe]>,
    counts: Mutex<Counts>,
    pending: Mutex<Pending>,
    created: AtomicU64,
    dropped: AtomicU64,
    messages_sent: AtomicU64,
    bytes_sent: AtomicU64,
}

/// The counters of [`Usage`], for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UsageStats {
    /// Uses recorded (decisions and STS calls).
    pub recorded: u64,
    /// Of which raised in place through a cached decision's slot, without the table.
    pub raised: u64,
    /// Entries created in the table (a new tenant, caller, action and region).
    pub entries_created: u64,
    /// Entries held in the table now.
    pub entries: u64,
    /// Entries dropped because a bound was reached.
    pub dropped: u64,
    /// Usage messages handed to the stream.
    pub messages_sent: u64,
    /// Their encoded bytes.
    pub bytes_sent: u64,
}

impl Usage {
    /// An empty aggregate.
    pub fn new(config: UsageConfig) -> Self {
        let config = UsageConfig {
            max_message_bytes: config.max_message_bytes.max(MIN_MESSAGE_BYTES),
            ..config
        };
        Self {
            config,
            hasher: DefaultHashBuilder::default(),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            raised: (0..STRIPES).map(|_| Stripe::default()).collect(),
            counts: Mutex::new(Counts::default()),
            pending: Mutex::new(Pending::default()),
            created: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            messages_sent: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
        }
    }

    /// How it is configured.
    pub fn config(&self) -> &UsageConfig {
        &self.config
    }

    /// Records one use at `now` (Unix seconds). `subject` runs only when the use creates an
    /// entry: a known use costs a hash, a lock and a comparison.
    pub fn record(&self, at: Use<'_>, now: i64, subject: impl FnOnce() -> Subject) {
        self.enter(at, now, subject, |_| ());
    }

    /// Records one use at `now` as [`Usage::record`] does, and returns a handle on its entry
    /// with which later uses of the same tenant, caller, action and region are recorded by
    /// [`Usage::raise`]; none when a bound dropped the use.
    pub fn record_slot(
        &self,
        at: Use<'_>,
        now: i64,
        subject: impl FnOnce() -> Subject,
    ) -> Option<UsageSlot> {
        self.enter(at, now, subject, |slot| UsageSlot(Arc::clone(slot)))
    }

    /// Records one use in the table and hands its entry's slot to `then`.
    fn enter<R>(
        &self,
        at: Use<'_>,
        now: i64,
        subject: impl FnOnce() -> Subject,
        then: impl FnOnce(&Arc<Slot>) -> R,
    ) -> Option<R> {
        // No use may look like the mark of a detached slot.
        let now = now.min(DETACHED - 1);
        let hash = self.hasher.hash_one(at);
        // The middle bits: the table itself indexes by the low bits and tags by the high ones.
        let index = (hash >> 32) as usize % SHARDS;
        let mut shard = self.shards.get(index)?.lock();
        shard.uses += 1;
        if let Some(entry) = shard.table.find_mut(hash, |e| e.key() == at) {
            // An entry in the table is never detached: it leaves the table as it is marked.
            entry.slot.last.fetch_max(now, Ordering::Relaxed);
            return Some(then(&entry.slot));
        }
        if !self.counts.lock().admit(at.tenant, &self.config, 1) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let slot = Arc::new(Slot {
            last: AtomicI64::new(now),
        });
        let handed = then(&slot);
        let entry = Entry {
            tenant: at.tenant.into(),
            caller: at.caller.into(),
            action: at.action.into(),
            region: at.region.into(),
            subject: Arc::new(subject()),
            slot,
            collected: i64::MIN,
        };
        let hasher = &self.hasher;
        shard
            .table
            .insert_unique(hash, entry, |e| hasher.hash_one(e.key()));
        self.created.fetch_add(1, Ordering::Relaxed);
        Some(handed)
    }

    /// Records one more use at `now` of the entry `slot` is a handle on: a relaxed load, and
    /// a relaxed `fetch_max` only when `now` is later than the entry's time (once a second
    /// for a steady caller). False when the entry has left the table: nothing was recorded,
    /// and the use is to be recorded with [`Usage::record_slot`], which makes a new entry.
    #[inline]
    pub fn raise(&self, slot: &UsageSlot, now: i64) -> bool {
        let now = now.min(DETACHED - 1);
        let last = slot.0.last.load(Ordering::Relaxed);
        // A use no later than the entry's time adds nothing to it: were the entry leaving the
        // table now, that time was collected, and the control plane merges by the latest.
        let live = if last >= now {
            last != DETACHED
        } else {
            slot.0.last.fetch_max(now, Ordering::Relaxed) != DETACHED
        };
        if live {
            if let Some(count) = self.raised.get(stripe()) {
                count.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        live
    }

    /// Moves what was used since the last collection into what waits to be sent. An entry
    /// not used since the last collection leaves the table (its key is likely gone or idle);
    /// one in use stays, so that a steady caller never allocates.
    pub fn collect(&self) {
        let mut released = Vec::new();
        let mut dropped = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            let mut pending = self.pending.lock();
            shard.table.retain(|e| {
                let mut last = e.slot.last.load(Ordering::Relaxed);
                if last <= e.collected {
                    // Idle: it leaves, unless a hit raised it since the load. The exchange
                    // and a hit's `fetch_max` are ordered on the one atomic: a hit before it
                    // keeps the entry, a hit after it sees the mark and records anew.
                    match e.slot.last.compare_exchange(
                        last,
                        DETACHED,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => {
                            released.push(std::mem::take(&mut e.tenant));
                            return false;
                        }
                        Err(raised) => last = raised,
                    }
                }
                dropped += pending.fold(&self.config, e.key(), last, &e.subject);
                e.collected = last;
                true
            });
        }
        let mut counts = self.counts.lock();
        for tenant in &released {
            counts.release(tenant);
        }
        self.dropped.fetch_add(dropped, Ordering::Relaxed);
    }

    /// Takes everything waiting, as the `usage` of messages of at most the configured size.
    pub fn take(&self) -> Vec<Vec<pb::UsageReport>> {
        let pending = std::mem::take(&mut *self.pending.lock());
        let mut packer = Packer::new(self.config.max_message_bytes);
        // What one ServiceUsage may take: a message's budget less its envelope, so that a
        // principal with very many actions is split over several ServiceUsage.
        let service_budget = self.config.max_message_bytes / 2;
        for (tenant, aggregate) in pending.tenants {
            for (access_key_id, s) in aggregate.access_keys {
                packer.push(
                    &tenant,
                    Item::Key(pb::AccessKeyUsage {
                        access_key_id,
                        last_used: s.at,
                        service: s.service,
                        region: s.region,
                    }),
                );
            }
            for ((principal_arn, service), s) in aggregate.services {
                let mut usage = pb::ServiceUsage {
                    principal_arn,
                    service,
                    last_authenticated: s.last.at,
                    region: s.last.region,
                    actions: Vec::new(),
                };
                let mut size = usage.encoded_len();
                for (action, a) in s.actions {
                    let action = pb::ActionUsage {
                        action,
                        last_accessed: a.at,
                        region: a.region,
                    };
                    let len = field_bytes(action.encoded_len());
                    if size + len > service_budget && !usage.actions.is_empty() {
                        let next = pb::ServiceUsage {
                            actions: Vec::new(),
                            ..usage.clone()
                        };
                        packer.push(&tenant, Item::Service(std::mem::replace(&mut usage, next)));
                        size = usage.encoded_len();
                    }
                    size += len;
                    usage.actions.push(action);
                }
                packer.push(&tenant, Item::Service(usage));
            }
            for (role_arn, s) in aggregate.roles {
                packer.push(
                    &tenant,
                    Item::Role(pb::RoleUsage {
                        role_arn,
                        last_used: s.at,
                        region: s.region,
                    }),
                );
            }
        }
        packer.finish()
    }

    /// Puts back reports that were taken but not delivered.
    pub fn restore(&self, reports: &[pb::UsageReport]) {
        let mut pending = self.pending.lock();
        let dropped: u64 = reports
            .iter()
            .map(|r| pending.restore(&self.config, r))
            .sum();
        drop(pending);
        self.dropped.fetch_add(dropped, Ordering::Relaxed);
    }

    /// Counts a message of `bytes` handed to the stream.
    pub fn sent(&self, bytes: usize) {
        self.messages_sent.fetch_add(1, Ordering::Relaxed);
        self.bytes_sent
            .fetch_add(u64::try_from(bytes).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The counters.
    pub fn stats(&self) -> UsageStats {
        let through_table: u64 = self.shards.iter().map(|s| s.lock().uses).sum();
        let raised = self
            .raised
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .fold(0, u64::saturating_add);
        UsageStats {
            recorded: through_table.saturating_add(raised),
            raised,
            entries_created: self.created.load(Ordering::Relaxed),
            entries: u64::try_from(self.counts.lock().total).unwrap_or(u64::MAX),
            dropped: self.dropped.load(Ordering::Relaxed),
            messages_sent: self.messages_sent.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests;
