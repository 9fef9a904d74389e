//! The sidecar's end of the snapshot stream, without the transport.
//!
//! [`Applier::apply`] takes one tenant update as it arrives (the tenant's directory, its
//! version and a SHA-256 digest of the payload), and either publishes it or refuses it:
//!
//! ```text
//! update ─▶ digest and account match? ─▶ decode ─▶ compile (every document, every reference)
//!        ─▶ SnapshotStore::apply (one swap; never backwards) ─▶ persist last known good ─▶ ACK
//!    any failure ─▶ NACK with the reason; the previous version keeps serving; other tenants
//!                    are not affected (RELIABILITY G3, G4)
//! ```
//!
//! [`Applier::boot_from_disk`] loads the persisted tenants before the control plane answers
//! (G5, T10), and [`Readiness`] says whether every tenant this sidecar must serve is loaded
//! (G6, T14). The gRPC stream (reconnects, backoff, nonces) drives these.

mod client;

use std::path::PathBuf;
use std::sync::Arc;

use crate::directory::Tenant;
use crate::snapshot::{
    read_last_known_good, write_last_known_good, ApplyOutcome, AwsManagedLookup, SnapshotStore,
    SnapshotVersion, TenantSnapshot,
};

/// The update wire format lives with the snapshots it carries; kept at this path for the
/// stream client and the benches.
pub use crate::snapshot::{for_sidecars, sha256_hex, TenantUpdate};
pub(crate) use client::report;
pub use client::{run_sync, Backoff, SyncConfig, SyncState};

/// What became of an update: the sidecar ACKs the first two and NACKs the last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateResult {
    /// Published.
    Applied(SnapshotVersion),
    /// Already at this version: nothing to do (an idempotent ACK).
    Unchanged(SnapshotVersion),
    /// Refused; the previous version keeps serving.
    Rejected {
        /// The refused version.
        version: SnapshotVersion,
        /// Why, naming the tenant and the entity.
        error: String,
    },
}

/// Which tenants a sidecar must serve before it is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// These tenants (none of them may be missing).
    Tenants(Vec<String>),
    /// Every tenant the control plane has; ready once the first full response arrived.
    All,
}

/// Applies updates to a snapshot store and keeps the last known good files.
pub struct Applier {
    store: Arc<SnapshotStore>,
    state_dir: Option<PathBuf>,
    aws: Arc<dyn AwsManagedLookup + Send + Sync>,
}

// === impl Applier ===

impl Applier {
    /// An applier publishing into `store`, persisting under `state_dir` when given.
    pub fn new(
        store: Arc<SnapshotStore>,
        state_dir: Option<PathBuf>,
        aws: Arc<dyn AwsManagedLookup + Send + Sync>,
    ) -> Self {
        Self {
            store,
            state_dir,
            aws,
        }
    }

    /// The store updates are published into.
    pub fn store(&self) -> &Arc<SnapshotStore> {
        &self.store
    }

    /// Validates, compiles and publishes one update.
    pub fn apply(&self, update: &TenantUpdate) -> UpdateResult {
        let version = update.version;
        let reject = |error: String| UpdateResult::Rejected { version, error };
        if let Some(current) = self.store.version(&update.account_id) {
            if current == version {
                return UpdateResult::Unchanged(version);
            }
            if current > version {
                return reject(format!(
                    "tenant `{}`: version {version} is older than the applied version {current}",
                    update.account_id
                ));
            }
        }
        if sha256_hex(&update.payload) != update.sha256 {
            return reject(format!(
                "tenant `{}`: the payload does not match its digest (torn or corrupted in transit)",
                update.account_id
            ));
        }
        let tenant: Tenant = match serde_json::from_str(&update.payload) {
            Ok(t) => t,
            Err(e) => {
                return reject(format!(
                    "tenant `{}`: the payload does not decode: {e}",
                    update.account_id
                ))
            }
        };
        if tenant.account_id != update.account_id {
            return reject(format!(
                "tenant `{}`: the payload is tenant `{}`",
                update.account_id, tenant.account_id
            ));
        }
        self.publish(tenant, version)
    }

    fn publish(&self, tenant: Tenant, version: SnapshotVersion) -> UpdateResult {
        // Also for what an older control plane sent, or an older sidecar persisted.
        let tenant = Arc::new(for_sidecars(tenant));
        let snapshot =
            match TenantSnapshot::compile(Arc::clone(&tenant), version, self.aws.as_ref()) {
                Ok(s) => s,
                Err(e) => {
                    return UpdateResult::Rejected {
                        version,
                        error: e.to_string(),
                    }
                }
            };
        match self.store.apply(snapshot) {
            Ok(ApplyOutcome::Unchanged) => UpdateResult::Unchanged(version),
            Ok(ApplyOutcome::Applied { .. }) => {
                if let Some(dir) = &self.state_dir {
                    // The new version serves even if it cannot be persisted: the file only
                    // matters for the next start, which then falls back to the stream.
                    if let Err(error) = write_last_known_good(dir, &tenant, version) {
                        report_persist_failure(&error);
                    }
                }
                UpdateResult::Applied(version)
            }
            Err(e) => UpdateResult::Rejected {
                version,
                error: e.to_string(),
            },
        }
    }

    /// Stops serving a tenant the control plane removed, and forgets its last known good
    /// snapshot so that a restart does not bring it back.
    pub fn remove(&self, account_id: &str) {
        self.store.remove(account_id);
        if let Some(dir) = &self.state_dir {
            if let Err(error) = crate::snapshot::remove_last_known_good(dir, account_id) {
                report_persist_failure(&error);
            }
        }
    }

    /// Applies the tenants of one response, several at a time: each tenant is independent, so
    /// a full response (a sidecar's first, or one after a long disconnect) is decoded and
    /// compiled on every core. Results come back in the order of `updates`; an update for a
    /// tenant that appears twice in `updates` is applied in order.
    pub fn apply_all(&self, updates: &[TenantUpdate]) -> Vec<UpdateResult> {
        let workers = std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .min(updates.len());
        let distinct = {
            let mut seen = std::collections::HashSet::new();
            updates.iter().all(|u| seen.insert(u.account_id.as_str()))
        };
        if workers <= 1 || !distinct {
            return updates.iter().map(|u| self.apply(u)).collect();
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let mut results: Vec<(usize, UpdateResult)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(update) = updates.get(i) else {
                                return done;
                            };
                            done.push((i, self.apply(update)));
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| {
                    h.join().unwrap_or_else(|_| {
                        // A worker that panicked applied nothing more; its tenants are
                        // refused below so the control plane sees a NACK, never silence.
                        Vec::new()
                    })
                })
                .collect()
        });
        results.sort_by_key(|(i, _)| *i);
        let mut by_index = results.into_iter().peekable();
        updates
            .iter()
            .enumerate()
            .map(|(i, u)| match by_index.next_if(|(j, _)| *j == i) {
                Some((_, result)) => result,
                None => UpdateResult::Rejected {
                    version: u.version,
                    error: format!("tenant `{}`: applying failed", u.account_id),
                },
            })
            .collect()
    }

    /// Loads the persisted snapshots of `tenants` (before the control plane is reached). A
    /// tenant without a file is skipped silently (a new sidecar has none); a corrupted or
    /// foreign file is reported and skipped, never served.
    pub fn boot_from_disk(&self, tenants: &[String]) -> Vec<(String, UpdateResult)> {
        let Some(dir) = &self.state_dir else {
            return Vec::new();
        };
        tenants
            .iter()
            .filter_map(|account| {
                let result = match read_last_known_good(dir, account) {
                    Ok(persisted) => self.publish(persisted.tenant, persisted.version),
                    Err(crate::snapshot::PersistError::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        return None
                    }
                    Err(e) => UpdateResult::Rejected {
                        version: SnapshotVersion::default(),
                        error: e.to_string(),
                    },
                };
                Some((account.clone(), result))
            })
            .collect()
    }
}

impl std::fmt::Debug for Applier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier")
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

/// Persistence failures are errors in the process's log: the sidecar serves on, but would
/// boot without this version after a restart.
fn report_persist_failure(error: &crate::snapshot::PersistError) {
    tracing::error!("cannot persist the last known good snapshot: {error}");
}

// === impl Readiness ===

impl Readiness {
    /// True when every required tenant is served.
    pub fn is_ready(&self, store: &SnapshotStore, full_response_seen: bool) -> bool {
        match self {
            Self::Tenants(required) => required.iter().all(|t| store.version(t).is_some()),
            Self::All => full_response_seen,
        }
    }

    /// The required tenants that are not served yet.
    pub fn missing(&self, store: &SnapshotStore) -> Vec<String> {
        match self {
            Self::Tenants(required) => required
                .iter()
                .filter(|t| store.version(t).is_none())
                .cloned()
                .collect(),
            Self::All => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
