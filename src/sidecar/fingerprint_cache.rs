//! The sidecar's hot caches (decisions, verified credentials): values by their key's
//! fingerprint, looked up without allocating.
//!
//! A general-purpose cache (moka) cost a hit more than evaluating the policies did: SipHash of
//! the key, an epoch guard, a clock read, a read-log entry, and some 350 bytes of bookkeeping
//! per entry (an `Arc` of the key, bucket, entry info, two deque nodes); a credential lookup
//! also allocated its key. This one holds what an entry needs and no more: shards of a
//! `hashbrown` table of slot indexes under a read-write lock, each slot the key's
//! fingerprint, the value, its expiry and a referenced bit, evicted by CLOCK (second chance)
//! when a shard is over its weight.
//!
//! A slot keeps a fingerprint of its key, not the key's bytes (about 110 for an ordinary
//! request, plus the allocator's header: more than half of what an entry cost). The
//! fingerprint is SipHash-1-3's 128-bit output under a key drawn at random per process: a
//! keyed pseudorandom function, so without the process's key nobody can make two keys
//! collide on purpose, and by chance two of the cache's keys share a fingerprint with odds
//! of about n² / 2¹²⁹ (10⁻²⁹ for 100,000 entries). A collision would answer one request with
//! another's decision, which is why the hash is a keyed cryptographic one and not the fast
//! hash a map of trusted keys would use; the random key also spreads a caller's keys over
//! the buckets (no HashDoS).
//!
//! SipHash-1-3 rather than 2-4. The threat here is the one SipHash-1-3 guards Rust's
//! `HashMap` against: inputs an attacker chooses, outputs the attacker never sees, a win
//! only by a collision (here a full 128-bit one, not a shared bucket). 2-4 is the variant its
//! designers proposed for a MAC, whose tags an attacker does see; the published attacks on
//! fewer rounds (distinguishers on SipHash-2-1 and 2-2, He and Yu, ePrint 2019/865) read
//! outputs, which never leave this process, and none reaches 1-3. One of the designers
//! wrote that he "would be very surprised if SipHash-1-3 introduced weaknesses for hash
//! tables" (rust-lang/rust#29754). On this project's machine 2-4 hashed an ordinary key
//! (~120 bytes) in 61 ns, a third of a cache hit, and 1-3 in 30 ns.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hashbrown::{DefaultHashBuilder, HashSet, HashTable};
use parking_lot::{Mutex, RwLock};
use siphasher::sip128::SipHasher13;

use super::clock::{self, Instant};

/// The bytes one unit of capacity stands for: an entry weighs its value and its slot in units
/// of this, at least one, so that a capacity of `n` decisions bounds the memory at about
/// `n × UNIT_BYTES` whatever the values hold. Keys are not held (a fingerprint is), so a key
/// of kilobytes of context values weighs no more than any other.
pub(super) const UNIT_BYTES: usize = 512;

/// What a slot costs besides its value's heap: the slot, and the table's index and control
/// byte at its load factor.
pub(super) const SLOT_BYTES: usize = std::mem::size_of::<Slot<usize>>() + 8;

/// Shards at most: enough that two cores rarely meet on one lock.
const MAX_SHARDS: usize = 64;

/// A bounded, expiring map from key bytes to values, safe to share between threads.
pub(super) struct FingerprintCache<V> {
    shards: Box<[RwLock<Shard<V>>]>,
    /// Makes fingerprints: keyed at random per process.
    hasher: SipHasher13,
    ttl_ms: u64,
    /// Expiry is measured from here, on the monotonic clock: a wall-clock step neither keeps
    /// an entry past its time nor drops the cache.
    epoch: Instant,
    /// The distinct values held, so that entries deciding alike share one (see
    /// [`FingerprintCache::share`]).
    shared: Mutex<Shared<V>>,
}

/// The values entries share: a set of them, pruned of those no entry (and no answer in
/// flight) holds any more.
struct Shared<V> {
    values: HashSet<V, DefaultHashBuilder>,
    /// The set's size after its last pruning: it is pruned again when it has doubled.
    pruned_at: usize,
    /// The most values kept; past it (after pruning), a value is held unshared.
    max: usize,
}

/// A value whose holders can be counted, so that a set of them can drop the unheld ones.
pub(super) trait Countable {
    /// True when the caller's is the only handle on the value.
    fn is_unique(&self) -> bool;
}

impl<T> Countable for Arc<T> {
    fn is_unique(&self) -> bool {
        Arc::strong_count(self) == 1
    }
}

/// A key's fingerprint (see the module's docs): equal for equal keys, and for distinct keys
/// only by a chance nobody can raise without the process's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Fingerprint {
    /// Files the slot in its shard's table.
    hash: u64,
    /// Picks the shard; with `hash`, the 128 bits compared on a lookup.
    high: u64,
}

struct Shard<V> {
    /// Indexes into `slots`, by the slot's fingerprint's `hash`.
    index: HashTable<u32>,
    slots: Vec<Slot<V>>,
    /// Where the CLOCK hand points.
    hand: usize,
    /// The units held and the most this shard may hold.
    weight: usize,
    max_weight: usize,
}

struct Slot<V> {
    fingerprint: Fingerprint,
    value: V,
    /// Milliseconds since the cache's epoch after which the slot answers no lookup.
    expires_ms: u64,
    weight: u32,
    /// Set by a hit, cleared as the CLOCK hand passes: a slot hit since the hand last passed
    /// is kept one more round.
    referenced: AtomicBool,
}

impl<V> std::fmt::Debug for FingerprintCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FingerprintCache")
            .field("shards", &self.shards.len())
            .field("entries", &self.entry_count())
            .field("ttl_ms", &self.ttl_ms)
            .finish_non_exhaustive()
    }
}

// === impl FingerprintCache ===

impl<V> FingerprintCache<V> {
    /// Entries held now (expired ones included until they are evicted).
    pub(super) fn entry_count(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| u64::try_from(s.read().slots.len()).unwrap_or(u64::MAX))
            .sum()
    }
}

impl<V: Clone> FingerprintCache<V> {
    /// A cache of `capacity` units (an ordinary decision weighs one) whose entries answer for
    /// `ttl` after their insertion.
    pub(super) fn new(capacity: u64, ttl: Duration) -> Self {
        let capacity = usize::try_from(capacity).unwrap_or(usize::MAX);
        // One shard per 64 units at least, so that a small cache keeps its bound exactly.
        let shards = (capacity / 64).clamp(1, MAX_SHARDS).next_power_of_two();
        let shards = if shards > MAX_SHARDS {
            MAX_SHARDS
        } else {
            shards
        };
        let base = capacity / shards;
        let extra = capacity % shards;
        Self {
            shards: (0..shards)
                .map(|i| {
                    RwLock::new(Shard {
                        index: HashTable::new(),
                        slots: Vec::new(),
                        hand: 0,
                        weight: 0,
                        max_weight: base + usize::from(i < extra),
                    })
                })
                .collect(),
            hasher: random_sip_key(),
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            epoch: clock::now(),
            shared: Mutex::new(Shared {
                values: HashSet::default(),
                pruned_at: 0,
                // Never more distinct values than entries.
                max: capacity,
            }),
        }
    }

    /// The fingerprint `key` is filed under.
    pub(super) fn fingerprint(&self, key: &[u8]) -> Fingerprint {
        let (hash, high) = self.hasher.hash(key).as_u64();
        Fingerprint { hash, high }
    }

    fn shard(&self, fingerprint: Fingerprint) -> Option<&RwLock<Shard<V>>> {
        // The table files by `hash`; the shard is picked by other bits, so that a shard's
        // table still sees its hashes spread.
        let n = self.shards.len();
        let at = usize::try_from(fingerprint.high >> 58).unwrap_or(0) & (n - 1);
        self.shards.get(at)
    }

    fn now_ms(&self, now: Instant) -> u64 {
        // Seconds and milliseconds apart: `as_millis` goes through a 128-bit product.
        let since = now.saturating_duration_since(self.epoch);
        since
            .as_secs()
            .saturating_mul(1000)
            .saturating_add(u64::from(since.subsec_millis()))
    }

    /// The value under the key of `fingerprint`, unless it expired by `now`.
    #[inline]
    pub(super) fn get(&self, fingerprint: Fingerprint, now: Instant) -> Option<V> {
        let now_ms = self.now_ms(now);
        let shard = self.shard(fingerprint)?.read();
        let slot = shard.find(fingerprint)?;
        if slot.expires_ms <= now_ms {
            return None;
        }
        // A load before the store: a hot entry's line is not written on every hit.
        if !slot.referenced.load(Ordering::Relaxed) {
            slot.referenced.store(true, Ordering::Relaxed);
        }
        Some(slot.value.clone())
    }

    /// Files `value` under the key of `fingerprint`, replacing what was there, evicting as
    /// the shard's bound requires. `heap_bytes` is what the value holds on the heap, for its
    /// weight; an entry heavier than its shard's whole bound is not kept.
    pub(super) fn insert(
        &self,
        fingerprint: Fingerprint,
        value: V,
        heap_bytes: usize,
        now: Instant,
    ) {
        let expires_ms = self.now_ms(now).saturating_add(self.ttl_ms);
        let bytes = SLOT_BYTES.saturating_add(heap_bytes);
        let weight = bytes.div_ceil(UNIT_BYTES).max(1);
        let Some(shard) = self.shard(fingerprint) else {
            return;
        };
        let mut shard = shard.write();
        shard.remove(fingerprint);
        if weight > shard.max_weight {
            return;
        }
        let now_ms = self.now_ms(now);
        while shard.weight + weight > shard.max_weight {
            if !shard.evict_one(now_ms) {
                return;
            }
        }
        let Ok(at) = u32::try_from(shard.slots.len()) else {
            return;
        };
        shard.reserve_slot();
        shard.weight += weight;
        shard.slots.push(Slot {
            fingerprint,
            value,
            expires_ms,
            weight: u32::try_from(weight).unwrap_or(u32::MAX),
            referenced: AtomicBool::new(false),
        });
        let Shard { index, slots, .. } = &mut *shard;
        index.insert_unique(fingerprint.hash, at, |&i| slot_hash(slots, i));
    }
}

impl<V: Countable + Clone + Hash + Eq> FingerprintCache<V> {
    /// The value held for `value`: an equal one already held, when there is one, or `value`
    /// itself, now held for later ones. Many requests decide alike (one caller's reads of
    /// one prefix allowed by one statement of one snapshot): their entries then differ only
    /// in their keys, and share one value instead of each holding a copy. Called on a miss
    /// only: a hash of the value and a lock.
    pub(super) fn share(&self, value: V) -> V {
        let mut shared = self.shared.lock();
        if let Some(held) = shared.values.get(&value) {
            return held.clone();
        }
        if shared.values.len() >= shared.pruned_at.saturating_mul(2).max(64) {
            // Values no entry holds any more go, amortized over the inserts that doubled the
            // set.
            shared.values.retain(|v| !v.is_unique());
            shared.pruned_at = shared.values.len();
        }
        if shared.values.len() < shared.max {
            shared.values.insert(value.clone());
        }
        value
    }

    /// Distinct values held for sharing now.
    #[cfg(test)]
    fn shared_count(&self) -> usize {
        self.shared.lock().values.len()
    }
}

fn slot_hash<V>(slots: &[Slot<V>], at: u32) -> u64 {
    usize::try_from(at)
        .ok()
        .and_then(|i| slots.get(i))
        .map_or(0, |s| s.fingerprint.hash)
}

/// A SipHash-1-3 keyed at random: the key is two outputs of std's `RandomState`, itself
/// keyed from the operating system's random source (infallibly: it never fails at run time).
fn random_sip_key() -> SipHasher13 {
    let state = RandomState::new();
    SipHasher13::new_with_keys(state.hash_one(0u8), state.hash_one(1u8))
}

// === impl Shard ===

impl<V> Shard<V> {
    /// Makes room for one more slot, growing the slots by doubling as a `Vec` does but never
    /// past the most the shard can hold (each slot weighs one unit at least), so that a full
    /// shard carries no unused half of a doubled allocation.
    fn reserve_slot(&mut self) {
        let len = self.slots.len();
        if len < self.slots.capacity() {
            return;
        }
        let wanted = len
            .saturating_mul(2)
            .max(4)
            .min(self.max_weight)
            .max(len + 1);
        self.slots.reserve_exact(wanted - len);
    }

    fn find(&self, fingerprint: Fingerprint) -> Option<&Slot<V>> {
        let at = self.index.find(fingerprint.hash, |&i| {
            self.slot(i).is_some_and(|s| s.fingerprint == fingerprint)
        })?;
        self.slot(*at)
    }

    fn slot(&self, at: u32) -> Option<&Slot<V>> {
        self.slots.get(usize::try_from(at).ok()?)
    }

    /// Removes the slot under `fingerprint`, if there is one.
    fn remove(&mut self, fingerprint: Fingerprint) {
        let Shard { index, slots, .. } = self;
        let found = index.find(fingerprint.hash, |&i| {
            usize::try_from(i)
                .ok()
                .and_then(|i| slots.get(i))
                .is_some_and(|s| s.fingerprint == fingerprint)
        });
        if let Some(&at) = found {
            self.remove_at(at);
        }
    }

    /// Removes the slot at `at`: its index entry goes, and the last slot moves into its place
    /// (its index entry follows it).
    fn remove_at(&mut self, at: u32) {
        let Ok(position) = usize::try_from(at) else {
            return;
        };
        let Some(hash) = self.slots.get(position).map(|s| s.fingerprint.hash) else {
            return;
        };
        if let Ok(entry) = self.index.find_entry(hash, |&i| i == at) {
            entry.remove();
        }
        let last = self.slots.len().saturating_sub(1);
        let removed = self.slots.swap_remove(position);
        self.weight = self
            .weight
            .saturating_sub(usize::try_from(removed.weight).unwrap_or(usize::MAX));
        if position != last {
            let (Ok(from), Some(moved)) = (u32::try_from(last), self.slots.get(position)) else {
                return;
            };
            if let Some(i) = self.index.find_mut(moved.fingerprint.hash, |&i| i == from) {
                *i = at;
            }
        }
    }

    /// Evicts one slot: the first expired or unreferenced one from the hand on, clearing the
    /// referenced bits it passes. False when the shard is empty.
    fn evict_one(&mut self, now_ms: u64) -> bool {
        let len = self.slots.len();
        if len == 0 {
            return false;
        }
        // Two rounds at most: the first clears every bit it passes.
        for _ in 0..2 * len {
            if self.hand >= self.slots.len() {
                self.hand = 0;
            }
            let Some(slot) = self.slots.get(self.hand) else {
                return false;
            };
            let stale = slot.expires_ms <= now_ms;
            if stale || !slot.referenced.swap(false, Ordering::Relaxed) {
                let Ok(at) = u32::try_from(self.hand) else {
                    return false;
                };
                self.remove_at(at);
                return true;
            }
            self.hand += 1;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(cache: &FingerprintCache<u32>, key: &[u8], value: u32, now: Instant) {
        cache.insert(cache.fingerprint(key), value, 0, now);
    }

    fn get(cache: &FingerprintCache<u32>, key: &[u8], now: Instant) -> Option<u32> {
        cache.get(cache.fingerprint(key), now)
    }

    #[test]
    fn fingerprints_are_keyed_per_cache_and_tell_keys_apart() {
        let (a, b) = (
            FingerprintCache::<u32>::new(1, Duration::from_secs(1)),
            FingerprintCache::<u32>::new(1, Duration::from_secs(1)),
        );
        let key = b"arn:aws:iam::111122223333:user/alice|s3:GetObject|arn:aws:s3:::b/k";
        assert_eq!(a.fingerprint(key), a.fingerprint(key));
        // Another key (of this process), or one byte more or less: another fingerprint.
        assert_ne!(a.fingerprint(key), b.fingerprint(key));
        let mut longer = key.to_vec();
        longer.push(0);
        assert_ne!(a.fingerprint(key), a.fingerprint(&longer));
        assert_ne!(a.fingerprint(key), a.fingerprint(&key[..key.len() - 1]));
        // Distinct keys differ in both halves, each spread over its bits.
        let prints: Vec<_> = (0..4096u32)
            .map(|i| a.fingerprint(&i.to_le_bytes()))
            .collect();
        let hashes: HashSet<u64> = prints.iter().map(|f| f.hash).collect();
        let highs: HashSet<u64> = prints.iter().map(|f| f.high).collect();
        assert_eq!((hashes.len(), highs.len()), (4096, 4096));
        let shards: HashSet<u64> = prints.iter().map(|f| f.high >> 58).collect();
        assert_eq!(shards.len(), 64, "every shard is used");
    }

    #[test]
    fn a_hit_matches_the_whole_fingerprint_and_a_replaced_value_is_the_new_one() {
        let cache = FingerprintCache::new(100, Duration::from_secs(60));
        let now = Instant::now();
        put(&cache, b"alice|s3:GetObject|a", 1, now);
        put(&cache, b"alice|s3:GetObject|b", 2, now);
        assert_eq!(get(&cache, b"alice|s3:GetObject|a", now), Some(1));
        assert_eq!(get(&cache, b"alice|s3:GetObject|b", now), Some(2));
        assert_eq!(get(&cache, b"alice|s3:GetObject|", now), None);
        // Half a fingerprint is a miss, never the other entry's value.
        let print = cache.fingerprint(b"alice|s3:GetObject|a");
        let colliding = Fingerprint {
            high: print.high ^ 1,
            ..print
        };
        assert_eq!(cache.get(colliding, now), None);
        put(&cache, b"alice|s3:GetObject|a", 3, now);
        assert_eq!(get(&cache, b"alice|s3:GetObject|a", now), Some(3));
        assert_eq!(cache.entry_count(), 2);
    }

    #[test]
    fn an_entry_answers_until_its_time_to_live_and_not_after() {
        let cache = FingerprintCache::new(100, Duration::from_secs(60));
        let now = Instant::now();
        put(&cache, b"k", 1, now);
        assert_eq!(get(&cache, b"k", now + Duration::from_secs(59)), Some(1));
        assert_eq!(get(&cache, b"k", now + Duration::from_secs(60)), None);
    }

    #[test]
    fn the_bound_holds_and_a_hit_entry_outlives_one_never_hit() {
        let cache = FingerprintCache::new(8, Duration::from_secs(60));
        let now = Instant::now();
        for i in 0..8u32 {
            put(&cache, &i.to_le_bytes(), i, now);
        }
        assert_eq!(cache.entry_count(), 8);
        // Entry 0 is hit: the hand spares it and evicts 1, the next one never hit.
        assert_eq!(get(&cache, &0u32.to_le_bytes(), now), Some(0));
        put(&cache, &100u32.to_le_bytes(), 100, now);
        assert_eq!(cache.entry_count(), 8);
        assert_eq!(get(&cache, &0u32.to_le_bytes(), now), Some(0));
        assert_eq!(get(&cache, &1u32.to_le_bytes(), now), None);
        assert_eq!(get(&cache, &100u32.to_le_bytes(), now), Some(100));
        for i in 2..8u32 {
            assert_eq!(get(&cache, &i.to_le_bytes(), now), Some(i), "entry {i}");
        }
        // Many more inserts never pass the bound, and every entry left still answers.
        for i in 200..1200u32 {
            put(&cache, &i.to_le_bytes(), i, now);
        }
        assert_eq!(cache.entry_count(), 8);
        // The newest answers; every entry held answers with its own value.
        assert_eq!(get(&cache, &1199u32.to_le_bytes(), now), Some(1199));
        let held = (0..1200u32)
            .filter(|i| get(&cache, &i.to_le_bytes(), now).is_some_and(|v| v == *i))
            .count();
        assert_eq!(held, 8);
    }

    #[test]
    fn a_large_entry_weighs_by_its_bytes_and_a_large_key_does_not() {
        let cache = FingerprintCache::new(8, Duration::from_secs(60));
        let now = Instant::now();
        for i in 0..8u32 {
            put(&cache, &i.to_le_bytes(), i, now);
        }
        // A key of kilobytes is not held: it displaces one entry.
        let big_key = vec![7u8; 6 * UNIT_BYTES];
        put(&cache, &big_key, 98, now);
        assert_eq!(get(&cache, &big_key, now), Some(98));
        assert_eq!(cache.entry_count(), 8);
        // A value holding six units' bytes displaces six ordinary entries, not one.
        let big = cache.fingerprint(b"big");
        cache.insert(big, 99, 6 * UNIT_BYTES - SLOT_BYTES, now);
        assert_eq!(cache.get(big, now), Some(99));
        assert_eq!(cache.entry_count(), 3);
        // One heavier than the whole bound is not kept.
        let huge = cache.fingerprint(b"huge");
        cache.insert(huge, 1, 9 * UNIT_BYTES, now);
        assert_eq!(cache.get(huge, now), None);
    }

    #[test]
    fn equal_values_are_shared_and_unheld_ones_are_pruned() {
        let cache: FingerprintCache<Arc<String>> =
            FingerprintCache::new(1000, Duration::from_secs(60));
        let now = Instant::now();
        let first = cache.share(Arc::new("allowed by s1".to_owned()));
        let second = cache.share(Arc::new("allowed by s1".to_owned()));
        assert!(
            Arc::ptr_eq(&first, &second),
            "an equal value is the one held"
        );
        let other = cache.share(Arc::new("denied".to_owned()));
        assert!(!Arc::ptr_eq(&first, &other));
        for (i, v) in [first, second, other].into_iter().enumerate() {
            let key = u32::try_from(i).unwrap_or(0).to_le_bytes();
            cache.insert(cache.fingerprint(&key), v, 0, now);
        }
        assert_eq!(cache.shared_count(), 2);
        // Values held by no entry go when the set has doubled; held ones stay shared.
        for i in 0..200 {
            drop(cache.share(Arc::new(format!("transient {i}"))));
        }
        assert!(cache.shared_count() < 200, "{}", cache.shared_count());
        let again = cache.share(Arc::new("allowed by s1".to_owned()));
        let held = cache.get(cache.fingerprint(&0u32.to_le_bytes()), now);
        assert!(held.is_some_and(|h| Arc::ptr_eq(&h, &again)));
    }

    #[test]
    fn sharing_stops_at_the_bound_and_the_value_is_still_returned() {
        let cache: FingerprintCache<Arc<u32>> = FingerprintCache::new(2, Duration::from_secs(60));
        let held: Vec<_> = (0..100u32).map(|i| cache.share(Arc::new(i))).collect();
        assert!(cache.shared_count() <= 2, "{}", cache.shared_count());
        for (i, v) in (0..100u32).zip(&held) {
            assert_eq!(**v, i);
        }
    }

    #[test]
    fn a_full_shard_holds_no_doubled_slack() {
        let cache = FingerprintCache::new(100, Duration::from_secs(60));
        let now = Instant::now();
        for i in 0..1000u32 {
            put(&cache, &i.to_le_bytes(), i, now);
        }
        for shard in cache.shards.iter() {
            let shard = shard.read();
            assert!(
                shard.slots.capacity() <= shard.max_weight,
                "{} slots for a bound of {}",
                shard.slots.capacity(),
                shard.max_weight
            );
        }
    }

    #[test]
    fn a_large_cache_is_sharded_and_keeps_its_bound() {
        let cache = FingerprintCache::new(10_000, Duration::from_secs(60));
        assert_eq!(cache.shards.len(), 64);
        let now = Instant::now();
        for i in 0..30_000u32 {
            put(&cache, &i.to_le_bytes(), i, now);
        }
        assert!(cache.entry_count() <= 10_000, "{}", cache.entry_count());
        assert!(cache.entry_count() >= 9_000, "{}", cache.entry_count());
        // Every entry held answers with its own value.
        let mut found = 0;
        for i in 0..30_000u32 {
            if let Some(v) = get(&cache, &i.to_le_bytes(), now) {
                assert_eq!(v, i);
                found += 1;
            }
        }
        assert_eq!(found, cache.entry_count());
    }
}
