//! The control plane: it keeps every tenant's IAM directory durably, records each change as a
//! numbered entry of an append-only log (the audit trail, and the versions sidecars follow),
//! and serves the admin and sync APIs.

mod admin_auth;
mod core;
mod declare;
mod dispatch;
mod grpc;
mod seal;
mod store;

pub use self::core::{system_clock, ControlPlane, ShippedTenant, TenantSummary};
/// The admin client side lives in [`crate::client`]; kept at this path for the serving code
/// (the sidecar, its sync stream, `serve` and `up`) that reads profiles.
pub use crate::client::{
    find_credentials, parse_credentials_file, render_profile, sign_admin_call,
    CredentialsFileError, Profile,
};
pub use admin_auth::{
    defaults_to_caller, is_operator_only, target, AdminAuth, AdminAuthCounters, AdminCaller,
    AdminCredentials, CallEnv, Checker, FailureLimit, OperatorKey, Target, ADMIN_SIGNING_HOST,
};
pub use declare::{
    export, plan, GroupSpec, ManagedPolicySpec, OidcProviderSpec, PlanError, PlannedAction,
    RoleSpec, SpecError, TenantSpec, UserSpec,
};
pub use dispatch::{dispatch, Dispatched};
pub use grpc::{
    aws_error_code, serve_control_plane, serve_control_plane_with, signed_admin_request, status,
    AdminService, ServeOptions, SyncAdmission, SyncService, DEFAULT_HEARTBEAT,
    MAX_RESPONSE_PAYLOAD, MAX_SYNC_MESSAGE,
};
pub(crate) use seal::write_new_private;
pub use seal::{SealError, SecretSealer};
pub use store::{
    AuditEvent, ChangeDraft, ChangeRecord, SqliteStore, StoreError, StoredTenant, TenantStore,
};

use crate::directory::DirectoryError;
use crate::error::AwsCode;

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
    /// `AccessDenied`: the caller's policies do not allow the action (AWS's message).
    #[error("{0}")]
    AccessDenied(String),
    /// `MissingAuthenticationToken`: the call presented no credentials.
    #[error("Request is missing Authentication Token")]
    MissingAuthenticationToken,
    /// `InvalidClientTokenId`, `SignatureDoesNotMatch`, `IncompleteSignature` or
    /// `ExpiredToken`: the credentials do not authenticate.
    #[error("{message}")]
    Authentication {
        /// AWS's code.
        code: crate::error::AwsCode,
        /// AWS's message.
        message: String,
    },
    /// `Throttling`: too many failed authentications from this source; try again later.
    #[error("Rate exceeded")]
    Throttling,
}

// === impl AdminError ===

impl AdminError {
    /// AWS's error code.
    pub fn code(&self) -> AwsCode {
        match self {
            Self::Directory(e) => e.code(),
            Self::InvalidAction(_) => AwsCode::InvalidAction,
            Self::MissingParameter(_) => AwsCode::MissingParameter,
            Self::InvalidParameterValue { .. } => AwsCode::InvalidParameterValue,
            Self::NoSuchTenant(_) => AwsCode::NoSuchEntity,
            Self::TenantExists(_) => AwsCode::EntityAlreadyExists,
            Self::Store(_) => AwsCode::ServiceFailure,
            Self::Spec(_) => AwsCode::MalformedTenantSpec,
            Self::Plan(_) => AwsCode::InvalidTenantSpec,
            Self::AccessDenied(_) => AwsCode::AccessDenied,
            Self::MissingAuthenticationToken => AwsCode::MissingAuthenticationToken,
            Self::Authentication { code, .. } => *code,
            Self::Throttling => AwsCode::Throttling,
        }
    }

    /// `InvalidClientTokenId`, with AWS's message.
    pub fn invalid_client_token() -> Self {
        Self::Authentication {
            code: crate::error::AwsCode::InvalidClientTokenId,
            message: "The security token included in the request is invalid.".into(),
        }
    }

    /// True for a failed authentication (the caller is unknown).
    pub fn is_authentication(&self) -> bool {
        matches!(
            self,
            Self::MissingAuthenticationToken | Self::Authentication { .. } | Self::Throttling
        )
    }
}
