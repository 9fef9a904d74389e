//! The control plane: it keeps every tenant's IAM directory durably, records each change as a
//! numbered entry of an append-only log (the audit trail, and the versions sidecars follow),
//! and serves the admin and sync APIs.

mod core;
mod declare;
mod dispatch;
mod grpc;
mod store;

pub use self::core::{system_clock, ControlPlane, TenantSummary};
pub use declare::{
    export, plan, GroupSpec, ManagedPolicySpec, OidcProviderSpec, PlanError, PlannedAction,
    RoleSpec, SpecError, TenantSpec, UserSpec,
};
pub use dispatch::{dispatch, Dispatched};
pub use grpc::{
    aws_error_code, serve_control_plane, serve_control_plane_with, status, AdminService,
    ServeOptions, SyncService, DEFAULT_HEARTBEAT, MAX_RESPONSE_PAYLOAD, MAX_SYNC_MESSAGE,
};
pub use store::{ChangeDraft, ChangeRecord, SqliteStore, StoreError, StoredTenant, TenantStore};

use crate::directory::DirectoryError;

/// Why an admin call failed, with AWS's error code.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// An IAM error from the directory (`NoSuchEntity`, `LimitExceeded`, ...).
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// `InvalidAction`: the action is not one of the IAM API's.
    #[error("The action {0} is not valid for this web service.")]
    InvalidAction(String),
    /// `MissingParameter`: a required parameter is absent.
    #[error("The request must contain the parameter {0}.")]
    MissingParameter(String),
    /// `InvalidParameterValue`: a parameter has the wrong type or form.
    #[error("Invalid value for parameter {name}: {reason}")]
    InvalidParameterValue {
        /// The parameter.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// `NoSuchEntity`: the tenant does not exist.
    #[error("The tenant {0} cannot be found.")]
    NoSuchTenant(String),
    /// `EntityAlreadyExists`: the tenant exists.
    #[error("Tenant {0} already exists.")]
    TenantExists(String),
    /// `ServiceFailure`: the change could not be made durable; nothing changed.
    #[error("The change could not be stored: {0}")]
    Store(#[from] StoreError),
    /// `MalformedTenantSpec`: a declared tenant could not be read.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// `InvalidTenantSpec`: a declared tenant cannot be applied; nothing changed.
    #[error(transparent)]
    Plan(#[from] PlanError),
}

// === impl AdminError ===

impl AdminError {
    /// AWS's error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Directory(e) => e.code(),
            Self::InvalidAction(_) => "InvalidAction",
            Self::MissingParameter(_) => "MissingParameter",
            Self::InvalidParameterValue { .. } => "InvalidParameterValue",
            Self::NoSuchTenant(_) => "NoSuchEntity",
            Self::TenantExists(_) => "EntityAlreadyExists",
            Self::Store(_) => "ServiceFailure",
            Self::Spec(_) => "MalformedTenantSpec",
            Self::Plan(_) => "InvalidTenantSpec",
        }
    }
}
