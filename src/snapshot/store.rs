//! The published snapshots: one atomic swap per update, lock-free reads.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::compile::TenantSnapshot;
use super::SnapshotVersion;

/// The served tenants by account. Hashed with hashbrown's default (foldhash, seeded at random
/// per map), not std's SipHash, which made each request's load cost ~160 instructions more:
/// the keys are the tenants the control plane sends, never a caller's, so no caller can crowd
/// the table, and looking up whatever account a caller names is one short probe sequence.
type Tenants = hashbrown::HashMap<Arc<str>, Arc<TenantSnapshot>>;

/// Every tenant a sidecar serves, each at one version.
///
/// INVARIANT (G1): a reader takes one tenant snapshot with [`SnapshotStore::load`] (or one
/// view of them all with [`SnapshotStore::served`]) and decides everything from it; it never
/// loads twice in one request, so it never mixes versions.
/// INVARIANT (G2): a tenant's version never decreases; equal versions are a no-op.
#[derive(Debug, Default)]
pub struct SnapshotStore {
    tenants: ArcSwap<Tenants>,
    /// This sidecar's issuing keys and certificates, per tenant (issue #20): delivered by the
    /// stream beside the tenants, held in memory only.
    issuing: crate::jose::IssuingCredentials,
}

/// Every tenant served at one moment ([`SnapshotStore::served`]): a request's snapshots are
/// borrowed from it rather than counted, so that the hot path does not write each tenant's
/// shared count twice (a clone and a drop) on every request.
pub struct Served(arc_swap::Guard<Arc<Tenants>>);

impl Served {
    /// The snapshot of a tenant, as it was when this view was taken.
    #[inline]
    pub fn get(&self, account_id: &str) -> Option<&Arc<TenantSnapshot>> {
        self.0.get(account_id)
    }
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// What [`SnapshotStore::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The snapshot is now served; `previous` is the version it replaced, if any.
    Applied {
        /// The version replaced.
        previous: Option<SnapshotVersion>,
    },
    /// The tenant is already at this version; nothing changed.
    Unchanged,
}

/// Why a snapshot was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The offered version is older than the one served.
    #[error("tenant `{tenant}`: version {offered} is older than the applied version {current}")]
    Regression {
        /// The tenant.
        tenant: String,
        /// The version served.
        current: SnapshotVersion,
        /// The version offered.
        offered: SnapshotVersion,
    },
}

// === impl SnapshotStore ===

impl SnapshotStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// This sidecar's issuing credentials (what it mints sessions with).
    pub fn issuing(&self) -> &crate::jose::IssuingCredentials {
        &self.issuing
    }

    /// The current snapshot of a tenant: one atomic load, no lock.
    pub fn load(&self, account_id: &str) -> Option<Arc<TenantSnapshot>> {
        self.tenants.load().get(account_id).cloned()
    }

    /// Every tenant's current snapshot, in one atomic load: for a request that reads one or
    /// two tenants and holds them no longer than it runs.
    #[inline]
    pub fn served(&self) -> Served {
        Served(self.tenants.load())
    }

    /// The applied version of a tenant.
    pub fn version(&self, account_id: &str) -> Option<SnapshotVersion> {
        self.tenants.load().get(account_id).map(|s| s.version())
    }

    /// Every tenant and its applied version, sorted by account.
    pub fn versions(&self) -> Vec<(Arc<str>, SnapshotVersion)> {
        let mut out: Vec<_> = self
            .tenants
            .load()
            .iter()
            .map(|(k, v)| (Arc::clone(k), v.version()))
            .collect();
        out.sort();
        out
    }

    /// Publishes a snapshot in one swap, unless its version is not newer than the served one.
    pub fn apply(&self, snapshot: TenantSnapshot) -> Result<ApplyOutcome, ApplyError> {
        let snapshot = Arc::new(snapshot);
        let account: Arc<str> = snapshot.account_id().into();
        let offered = snapshot.version();
        let mut outcome = Ok(ApplyOutcome::Unchanged);
        // `rcu` retries the closure if another writer swapped in between, so the outcome is
        // decided on the map that is finally replaced.
        self.tenants.rcu(|current| {
            let previous = current.get(&account).map(|s| s.version());
            match previous {
                Some(v) if v > offered => {
                    outcome = Err(ApplyError::Regression {
                        tenant: account.to_string(),
                        current: v,
                        offered,
                    });
                    Arc::clone(current)
                }
                Some(v) if v == offered => {
                    outcome = Ok(ApplyOutcome::Unchanged);
                    Arc::clone(current)
                }
                _ => {
                    outcome = Ok(ApplyOutcome::Applied { previous });
                    let mut next = Tenants::clone(current);
                    next.insert(Arc::clone(&account), Arc::clone(&snapshot));
                    Arc::new(next)
                }
            }
        });
        outcome
    }

    /// Publishes a snapshot in one swap whatever the served version: for a tenant that moves
    /// to another control-plane store, whose versions do not compare with its old store's
    /// (the caller logs it; issue #13).
    pub fn replace(&self, snapshot: TenantSnapshot) -> ApplyOutcome {
        let snapshot = Arc::new(snapshot);
        let account: Arc<str> = snapshot.account_id().into();
        let mut previous = None;
        self.tenants.rcu(|current| {
            previous = current.get(&account).map(|s| s.version());
            let mut next = Tenants::clone(current);
            next.insert(Arc::clone(&account), Arc::clone(&snapshot));
            Arc::new(next)
        });
        ApplyOutcome::Applied { previous }
    }

    /// Stops serving a tenant; true when it was served.
    pub fn remove(&self, account_id: &str) -> bool {
        self.issuing.remove(account_id);
        let mut removed = false;
        self.tenants.rcu(|current| {
            removed = current.contains_key(account_id);
            if removed {
                let mut next = Tenants::clone(current);
                next.remove(account_id);
                Arc::new(next)
            } else {
                Arc::clone(current)
            }
        });
        removed
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::super::compile::tests::{compile, compile_at, demo_tenant};
    use super::*;
    use crate::directory::{Tenant, User};

    #[test]
    fn versions_only_move_forward() {
        let store = SnapshotStore::new();
        assert_eq!(
            store.apply(compile(demo_tenant(), 5)),
            Ok(ApplyOutcome::Applied { previous: None })
        );
        let served = store.load("111122223333").unwrap();
        // The same version again: nothing changes, not even the published pointer.
        assert_eq!(
            store.apply(compile(demo_tenant(), 5)),
            Ok(ApplyOutcome::Unchanged)
        );
        assert!(Arc::ptr_eq(&served, &store.load("111122223333").unwrap()));
        assert!(matches!(
            store.apply(compile(demo_tenant(), 4)),
            Err(ApplyError::Regression { .. })
        ));
        assert_eq!(
            store.version("111122223333"),
            Some(SnapshotVersion::new(0, 5))
        );
        // A new epoch is newer whatever its sequence number.
        assert_eq!(
            store.apply(compile_at(demo_tenant(), SnapshotVersion::new(1, 0))),
            Ok(ApplyOutcome::Applied {
                previous: Some(SnapshotVersion::new(0, 5))
            })
        );
        assert!(store.remove("111122223333"));
        assert!(store.load("111122223333").is_none());
        assert!(!store.remove("111122223333"));
    }

    /// A tenant whose only user is `u{seq}`: any mix of two versions would show.
    fn marked(seq: u64) -> super::super::compile::TenantSnapshot {
        let mut t = Tenant::new("111122223333", 0);
        let name = format!("u{seq}");
        t.users.insert(
            name.clone(),
            User {
                name: name.clone(),
                path: "/".into(),
                user_id: format!("AIDA{seq}"),
                arn: format!("arn:aws:iam::111122223333:user/{name}"),
                created_at: 0,
                tags: Vec::new(),
                permissions_boundary: None,
                inline_policies: Default::default(),
                attached_policies: Vec::new(),
                groups: Vec::new(),
                access_keys: Vec::new(),
                login_profile: None,
                mfa_devices: Vec::new(),
            },
        );
        compile(t, seq)
    }

    #[test]
    fn readers_never_see_a_torn_tenant() {
        // RELIABILITY T15: readers hammer the store while a writer publishes new versions;
        // every snapshot a reader loads must be internally consistent and versions it sees
        // must never go backwards.
        let store = Arc::new(SnapshotStore::new());
        store.apply(marked(1)).unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (store, done) = (Arc::clone(&store), Arc::clone(&done));
                std::thread::spawn(move || {
                    let mut last = 0;
                    let mut reads = 0u64;
                    while !done.load(Ordering::Relaxed) || reads < 1_000 {
                        let snap = store.load("111122223333").unwrap();
                        let seq = snap.version().seq;
                        assert!(seq >= last, "version went back from {last} to {seq}");
                        assert!(
                            snap.user(&format!("u{seq}")).is_some(),
                            "torn snapshot at {seq}"
                        );
                        assert_eq!(snap.tenant().users.len(), 1);
                        last = seq;
                        reads += 1;
                    }
                    reads
                })
            })
            .collect();
        for seq in 2..=2_000 {
            store.apply(marked(seq)).unwrap();
        }
        done.store(true, Ordering::Relaxed);
        for r in readers {
            assert!(r.join().unwrap() >= 1_000);
        }
        assert_eq!(
            store.version("111122223333"),
            Some(SnapshotVersion::new(0, 2_000))
        );
    }
}
