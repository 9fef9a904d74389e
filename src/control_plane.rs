//! The control plane: it keeps every tenant's IAM directory durably, records each change as a
//! numbered entry of an append-only log (the audit trail, and the versions sidecars follow),
//! and serves the admin and sync APIs.

mod store;

pub use store::{ChangeDraft, ChangeRecord, SqliteStore, StoreError, StoredTenant, TenantStore};
