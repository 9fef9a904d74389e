//! The sidecar's end of the snapshot stream, without the transport.
//!
//! [`Applier::apply`] takes one tenant update as it arrives (the tenant's directory, its
//! version and a SHA-256 digest of the payload), and either publishes it or refuses it:
//!
//! ```text
//! update ─▶ digest and account match? ─▶ signature verifies? ─▶ decode ─▶ compile (every document, every reference)
//!        ─▶ SnapshotStore::apply (one swap; never backwards) ─▶ persist last known good ─▶ ACK
//!    any failure ─▶ NACK with the reason; the previous version keeps serving; other tenants
//!                    are not affected (RELIABILITY G3, G4)
//! ```
//!
//! The signature (issue #20) is verified against the trusted keys ([`SnapshotTrust`]) on
//! arrival and again when a state file is loaded: anything that does not verify is refused,
//! logged (tenant, key id, reason) and counted ([`Applier::signature_refusals`]).
//!
//! [`Applier::boot_from_disk`] loads the persisted tenants before the control plane answers
//! (G5, T10), and [`Readiness`] says whether every tenant this sidecar must serve is loaded
//! (G6, T14). The gRPC stream (reconnects, backoff, nonces) drives these.

mod client;
mod endpoints;
pub mod trail;
pub mod usage;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::directory::Tenant;
use crate::snapshot::{
    for_sidecars, read_last_known_good, sha256_hex, write_last_known_good,
    write_signed_last_known_good, ApplyOutcome, AwsManagedLookup, SignatureError,
    SignatureRefusals, SnapshotSignature, SnapshotStore, SnapshotTrust, SnapshotVersion, StoreRef,
    TenantSnapshot, TenantUpdate,
};

/// The update wire format lives with the snapshots it carries; kept at this path for the
/// stream client and the benches.
pub(crate) use client::report;
pub use client::{
    run_sync, run_sync_shipping, run_sync_with_usage, Backoff, Liveness, Shipping, SyncConfig,
    SyncFailure, SyncState, DROP_SPREAD_INITIALS, SYNC_STATE_FILE,
};
pub use endpoints::{ControlPlaneUrl, Endpoint, EndpointError, EndpointList, Rotation};

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
///
/// INVARIANT (issue #13, item 1): a tenant is removed only on an explicit removal from the
/// control-plane store (identity and epoch) it came from; a removal from any other store is
/// refused with a warning, so a control plane that lost its database cannot empty the fleet.
/// Versions are compared within one store identity; a tenant that moves to another store is
/// replaced at that store's version, with a warning, never silently.
pub struct Applier {
    store: Arc<SnapshotStore>,
    state_dir: Option<PathBuf>,
    aws: Arc<dyn AwsManagedLookup + Send + Sync>,
    /// The store each served tenant came from (absent: unknown, from an older control plane
    /// or an older state file).
    origins: Mutex<HashMap<String, StoreRef>>,
    /// Whose signatures are accepted.
    trust: SnapshotTrust,
    /// Updates and state files refused for their signature.
    refusals: Arc<SignatureRefusals>,
}

// === impl Applier ===

impl Applier {
    /// An applier publishing into `store`, persisting under `state_dir` when given. It trusts
    /// no snapshot key until [`Self::with_trust`] says which: fail closed.
    pub fn new(
        store: Arc<SnapshotStore>,
        state_dir: Option<PathBuf>,
        aws: Arc<dyn AwsManagedLookup + Send + Sync>,
    ) -> Self {
        Self {
            store,
            state_dir,
            aws,
            origins: Mutex::default(),
            trust: SnapshotTrust::default(),
            refusals: Arc::default(),
        }
    }

    /// This applier, accepting the snapshots `trust` accepts.
    #[must_use]
    pub fn with_trust(mut self, trust: SnapshotTrust) -> Self {
        self.trust = trust;
        self
    }

    /// The updates and state files refused for their signature, by reason.
    pub fn signature_refusals(&self) -> &Arc<SignatureRefusals> {
        &self.refusals
    }

    /// Verifies a signature, logging and counting a refusal.
    fn verify(
        &self,
        what: &str,
        account_id: &str,
        version: SnapshotVersion,
        sha256: &str,
        signature: Option<&SnapshotSignature>,
        source: Option<&StoreRef>,
    ) -> Result<(), SignatureError> {
        let checked = self
            .trust
            .check(account_id, version, sha256, signature, source);
        if let Err(error) = &checked {
            self.refusals.count(error);
            tracing::warn!(
                tenant = %account_id,
                key_id = signature.map_or("none", |s| s.key_id.as_str()),
                reason = error.reason(),
                "refused {what} of tenant {account_id} (version {version}): {error}",
            );
        }
        checked
    }

    /// The state directory, if any.
    pub fn state_dir(&self) -> Option<&std::path::Path> {
        self.state_dir.as_deref()
    }

    /// The store `account_id` came from, if known.
    pub fn origin(&self, account_id: &str) -> Option<StoreRef> {
        self.origins.lock().get(account_id).cloned()
    }

    /// The store `account_id` came from when `source` is another store: its versions are
    /// not comparable with `source`'s.
    fn moved_from(&self, account_id: &str, source: Option<&StoreRef>) -> Option<StoreRef> {
        let source = source?;
        self.origin(account_id).filter(|o| o.id != source.id)
    }

    /// The store updates are published into.
    pub fn store(&self) -> &Arc<SnapshotStore> {
        &self.store
    }

    /// Validates, compiles and publishes one update, from a control plane whose store is
    /// unknown.
    pub fn apply(&self, update: &TenantUpdate) -> UpdateResult {
        self.apply_from(update, None)
    }

    /// Validates, compiles and publishes one update from the control-plane store `source`.
    pub fn apply_from(&self, update: &TenantUpdate, source: Option<&StoreRef>) -> UpdateResult {
        let version = update.version;
        let reject = |error: String| UpdateResult::Rejected { version, error };
        let moved = self.moved_from(&update.account_id, source);
        if let (Some(current), None) = (self.store.version(&update.account_id), &moved) {
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
        if let Err(error) = self.verify(
            "the update",
            &update.account_id,
            version,
            &update.sha256,
            update.signature.as_ref(),
            source,
        ) {
            return reject(format!("tenant `{}`: refused: {error}", update.account_id));
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
        if let (Some(from), Some(to)) = (&moved, source) {
            tracing::warn!(
                tenant = %update.account_id,
                "tenant {} moves from control-plane {from} to {to}: version {version} replaces \
                 version {} (versions of different stores do not compare)",
                update.account_id,
                self.store
                    .version(&update.account_id)
                    .map_or_else(|| "none".to_owned(), |v| v.to_string()),
            );
        }
        let signed = update
            .signature
            .as_ref()
            .map(|s| (update.payload.as_str(), s));
        self.publish(tenant, version, source, moved.is_some(), signed)
    }

    /// Publishes `tenant`; `signed` is the payload as shipped and its signature, persisted
    /// as they came so that the file verifies at the next start.
    fn publish(
        &self,
        tenant: Tenant,
        version: SnapshotVersion,
        source: Option<&StoreRef>,
        replace: bool,
        signed: Option<(&str, &SnapshotSignature)>,
    ) -> UpdateResult {
        // Also for what an older control plane sent, or an older sidecar persisted.
        let tenant = Arc::new(for_sidecars(tenant));
        // The served version's compiled documents are reused where the text is unchanged.
        let previous = self.store.load(&tenant.account_id);
        let snapshot = match TenantSnapshot::compile_reusing(
            Arc::clone(&tenant),
            version,
            self.aws.as_ref(),
            previous.as_deref(),
        ) {
            Ok(s) => s,
            Err(e) => {
                return UpdateResult::Rejected {
                    version,
                    error: e.to_string(),
                }
            }
        };
        let outcome = if replace {
            Ok(self.store.replace(snapshot))
        } else {
            self.store.apply(snapshot)
        };
        match outcome {
            Ok(ApplyOutcome::Unchanged) => UpdateResult::Unchanged(version),
            Ok(ApplyOutcome::Applied { .. }) => {
                {
                    let mut origins = self.origins.lock();
                    match source {
                        Some(s) => origins.insert(tenant.account_id.clone(), s.clone()),
                        None => origins.remove(&tenant.account_id),
                    };
                }
                if let Some(dir) = &self.state_dir {
                    // The new version serves even if it cannot be persisted: the file only
                    // matters for the next start, which then falls back to the stream.
                    let written = match signed {
                        Some((payload, signature)) => write_signed_last_known_good(
                            dir,
                            &tenant.account_id,
                            payload,
                            version,
                            source,
                            Some(signature),
                        ),
                        None => write_last_known_good(dir, &tenant, version, source),
                    };
                    if let Err(error) = written {
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

    /// Stops serving a tenant that the control plane of store `source` removed, and forgets
    /// its last known good snapshot so that a restart does not bring it back; true when
    /// removed. Refused (false, with a warning) unless the tenant came from that very store
    /// and epoch: a removal by another store (a database lost, replaced, or restored from a
    /// backup) says nothing about tenants it never held. Every removal is logged at WARN.
    pub fn remove_from(&self, account_id: &str, source: Option<&StoreRef>) -> bool {
        let held = self.store.version(account_id);
        let origin = self.origin(account_id);
        let same_store = match (&origin, source) {
            (Some(o), Some(s)) => o == s,
            // A tenant from before identities: the epoch alone tells stores apart, and a new
            // store's epoch is random.
            (None, Some(s)) => held.is_none_or(|v| v.epoch == s.epoch),
            (None, None) => true,
            (Some(_), None) => false,
        };
        let shown = |s: Option<&StoreRef>| {
            s.map_or_else(|| "unknown store".to_owned(), ToString::to_string)
        };
        if !same_store {
            tracing::warn!(
                tenant = %account_id,
                "kept tenant {account_id} (version {}): removed by control-plane {}, but it came \
                 from {}; a removal is taken only from the store a tenant came from",
                held.map_or_else(|| "none".to_owned(), |v| v.to_string()),
                shown(source),
                shown(origin.as_ref()),
            );
            return false;
        }
        if held.is_some() {
            tracing::warn!(
                tenant = %account_id,
                "removing tenant {account_id} (version {}): control-plane {} deleted it",
                held.map_or_else(|| "none".to_owned(), |v| v.to_string()),
                shown(source),
            );
        }
        self.store.remove(account_id);
        self.origins.lock().remove(account_id);
        if let Some(dir) = &self.state_dir {
            if let Err(error) = crate::snapshot::remove_last_known_good(dir, account_id) {
                report_persist_failure(&error);
            }
        }
        true
    }

    /// Applies the tenants of one response, several at a time: each tenant is independent, so
    /// a full response (a sidecar's first, or one after a long disconnect) is decoded and
    /// compiled on every core. Results come back in the order of `updates`; an update for a
    /// tenant that appears twice in `updates` is applied in order.
    pub fn apply_all(&self, updates: &[TenantUpdate]) -> Vec<UpdateResult> {
        self.apply_all_from(updates, None)
    }

    /// [`Self::apply_all`] for a response from the control-plane store `source`.
    pub fn apply_all_from(
        &self,
        updates: &[TenantUpdate],
        source: Option<&StoreRef>,
    ) -> Vec<UpdateResult> {
        let workers = std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .min(updates.len());
        let distinct = {
            let mut seen = std::collections::HashSet::new();
            updates.iter().all(|u| seen.insert(u.account_id.as_str()))
        };
        if workers <= 1 || !distinct {
            return updates.iter().map(|u| self.apply_from(u, source)).collect();
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
                            done.push((i, self.apply_from(update, source)));
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
    /// tenant without a file is skipped silently (a new sidecar has none); a corrupted,
    /// foreign or unverified (edited, unsigned, signed by an untrusted key) file is reported
    /// and skipped, never served.
    pub fn boot_from_disk(&self, tenants: &[String]) -> Vec<(String, UpdateResult)> {
        let Some(dir) = &self.state_dir else {
            return Vec::new();
        };
        tenants
            .iter()
            .filter_map(|account| {
                let result = match read_last_known_good(dir, account) {
                    Ok(persisted) => match self.verify(
                        "the state file",
                        account,
                        persisted.version,
                        &persisted.payload_sha256,
                        persisted.signature.as_ref(),
                        persisted.store.as_ref(),
                    ) {
                        Ok(()) => self.publish(
                            persisted.tenant,
                            persisted.version,
                            persisted.store.as_ref(),
                            false,
                            persisted
                                .signature
                                .as_ref()
                                .map(|s| (persisted.payload.as_str(), s)),
                        ),
                        Err(error) => UpdateResult::Rejected {
                            version: persisted.version,
                            error: format!("tenant `{account}`: state file refused: {error}"),
                        },
                    },
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
