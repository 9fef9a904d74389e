//! Immutable, compiled tenant snapshots: what a sidecar decides from.
//!
//! ```text
//! directory::Tenant ──TenantSnapshot::compile──▶ TenantSnapshot ──SnapshotStore::apply──▶ one atomic swap
//!   (as stored by the      (every document parsed and compiled once;   (monotonic version per tenant;
//!    control plane)         principals resolved to their policies;      a request loads the tenant
//!                           dangling references refused)                once and sees one version)
//! ```
//!
//! A snapshot is built completely before it is published, so a request never sees a half-applied
//! tenant (RELIABILITY G1), and an invalid tenant is refused as a whole: no statement is ever
//! dropped, since dropping a `Deny` would grant more (G3). The last snapshot of each tenant is
//! persisted atomically so a sidecar can start without its control plane (G5).

mod compile;
mod persist;
pub mod sign;
mod store;
mod wire;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use compile::{
    AccessKeyEntry, AwsManagedCatalog, AwsManagedLookup, KeyMaterial, OidcEntry, PodIdentityEntry,
    Resolved, RoleEntry, SnapshotError, TenantSnapshot, UserEntry,
};
pub use persist::{
    read_last_known_good, remove_last_known_good, write_last_known_good,
    write_signed_last_known_good, PersistError, PersistedTenant, StoreRef,
};
pub use sign::{
    SignatureError, SignatureRefusals, SigningKey, SnapshotKeyError, SnapshotSignature,
    SnapshotTrust, TrustedKeys,
};
pub use store::{ApplyError, ApplyOutcome, Served, SnapshotStore};
pub use wire::{for_sidecars, sha256_hex, TenantUpdate};

/// Tenants and helpers for other modules' tests.
#[cfg(test)]
pub(crate) use compile::tests as test_support;

/// A tenant's version: `(epoch, seq)`, compared lexicographically. The control plane bumps the
/// epoch after a restore, so a rollback is never mistaken for a regression.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct SnapshotVersion {
    /// Bumped when the control plane's history restarts.
    pub epoch: u64,
    /// The tenant's change number within the epoch.
    pub seq: u64,
}

// === impl SnapshotVersion ===

impl SnapshotVersion {
    /// The version `(epoch, seq)`.
    pub fn new(epoch: u64, seq: u64) -> Self {
        Self { epoch, seq }
    }
}

impl fmt::Display for SnapshotVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.epoch, self.seq)
    }
}
