//! The control plane: it keeps every tenant's IAM directory durably, records each change as a
//! numbered entry of an append-only log (the audit trail, and the versions sidecars follow),
//! and offers the admin domain API ([`Admin`]) and the watch service's domain ([`WatchState`],
//! [`SyncAdmission`]); the gRPC and HTTP edges serve them.

mod admin;
mod admin_auth;
pub mod api_model;
mod core;
mod declare;
mod dispatch;
mod seal;
mod snapshot_keys;
mod store;
mod trail;
mod usage;
mod watch;

pub use self::core::{
    system_clock, ControlPlane, Follower, ShippedTenant, TenantSummary, CONFLICT_ATTEMPTS,
    DEFAULT_CATCH_UP, DEFAULT_KEY_ROLL_CHECK,
};
pub use admin::{
    Admin, AdminCall, AdminPresented, SignIn, SignInRequest, SignedIn, CONSOLE_LOGIN,
    CONSOLE_SESSION_SECONDS,
};
pub use admin_auth::{
    defaults_to_caller, is_operator_only, target, AdminAuth, AdminAuthCounters, AdminCaller,
    AdminCredentials, CallEnv, Checker, FailureLimit, OperatorKey, Target, STORE_RETRY_SECONDS,
};
pub use declare::{
    export, plan, GroupSpec, ManagedPolicySpec, OidcProviderSpec, PlanError, PlannedAction,
    PodIdentityAssociationSpec, RoleSpec, SpecError, TenantSpec, UserSpec,
};
pub use dispatch::{dispatch, Dispatched};
pub(crate) use dispatch::{refusal, ACTIONS};
pub(crate) use seal::write_new_private;
pub use seal::{SealError, SecretSealer};
pub use snapshot_keys::{KeyState, SnapshotKeyRing, SnapshotKeyRingError};
pub use store::{
    migrate_store, MigrateStoreError, MigrateStoreOptions, MigrateStoreSummary, StoreLocation,
};
pub use store::{
    redact_url, AuditEvent, AuthFailureLog, ChangeDraft, ChangeFeed, ChangeNotice, ChangeRecord,
    DataDirOptions, FeedEvent, FeedIdle, FeedSender, MigrationReport, PostgresOptions,
    PostgresStore, Prior, SqliteStore, StoreError, StoredTenant, TenantSeq, TenantStore,
    CHANGES_CHANNEL, DATABASE_FILE, IDENTITY_FILE, SCHEMA_VERSION,
};
pub use store::{ActionUsage, KeyUsage, RoleUsage, ServiceUsage, UsageBatch, UsageLog};
pub use store::{TrailLog, TrailRecord};
pub use trail::{
    TrailCounters, TrailEvent, TrailEventError, TrailIdentity, MAX_LOOKUP_RESULTS, MAX_TRAIL_EVENTS,
};
pub use usage::{
    UsageCounters, UsageReportError, MAX_CLOCK_SKEW_SECONDS, MAX_USAGE_ENTRIES,
    REPORT_REUSE_SECONDS, TRACKING_PERIOD_SECONDS,
};
pub use watch::{
    Chunk, IssuingGrant, IssuingIdentity, Subscription, SyncAdmission, SyncClient, SyncRefusal,
    WatchState, DEFAULT_HEARTBEAT, MAX_RESPONSE_PAYLOAD, MAX_SYNC_MESSAGE,
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
    /// `UnsupportedOperation`: an operation of IAM's model that iamlet refuses on purpose.
    #[error("iamlet does not serve {action}: {reason}.")]
    Unsupported {
        /// The operation.
        action: String,
        /// Why.
        reason: &'static str,
    },
    /// `ValidationError`: parameters the operation does not take, or values that break their
    /// shapes' constraints (AWS's list of violations).
    #[error(transparent)]
    Input(api_model::InputError),
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
    /// `ServiceFailure`: the call could not be completed (a task that did not finish, a
    /// result that could not be rendered); logged with its detail, answered without it.
    #[error("{0}")]
    Internal(String),
    /// `Throttling`: too many failed authentications from this source; try again later.
    #[error("Rate exceeded")]
    Throttling,
    /// `ReportNotPresent` or `ReportExpired`: no credential report to return.
    #[error("{message}")]
    Report {
        /// AWS's code.
        code: AwsCode,
        /// AWS's message.
        message: String,
    },
    /// `PolicyEvaluation`: the policy simulator could not evaluate a stored policy.
    #[error("{0}")]
    PolicyEvaluation(String),
    /// CloudTrail's refusals of `LookupEvents` (`InvalidLookupAttributesException`, ...).
    #[error("{message}")]
    Trail {
        /// CloudTrail's code.
        code: AwsCode,
        /// Its message.
        message: String,
    },
}

// === impl AdminError ===

impl From<api_model::InputError> for AdminError {
    /// A missing member is IAM's `MissingParameter` and a value of the wrong type its
    /// `InvalidParameterValue`, as the dispatcher's own reading of parameters says them.
    fn from(e: api_model::InputError) -> Self {
        match e {
            api_model::InputError::Missing(name) => Self::MissingParameter(name),
            api_model::InputError::WrongType { name, expected } => Self::InvalidParameterValue {
                name,
                reason: format!("must be {expected}"),
            },
            other => Self::Input(other),
        }
    }
}

impl AdminError {
    /// AWS's error code.
    pub fn code(&self) -> AwsCode {
        match self {
            Self::Directory(e) => e.code(),
            Self::InvalidAction(_) => AwsCode::InvalidAction,
            Self::Unsupported { .. } => AwsCode::UnsupportedOperation,
            Self::Input(_) => AwsCode::ValidationError,
            Self::MissingParameter(_) => AwsCode::MissingParameter,
            Self::InvalidParameterValue { .. } => AwsCode::InvalidParameterValue,
            Self::NoSuchTenant(_) => AwsCode::NoSuchEntity,
            Self::TenantExists(_) => AwsCode::EntityAlreadyExists,
            Self::Store(e) => e.code(),
            Self::Internal(_) => AwsCode::ServiceFailure,
            Self::Spec(_) => AwsCode::MalformedTenantSpec,
            Self::Plan(_) => AwsCode::InvalidTenantSpec,
            Self::AccessDenied(_) => AwsCode::AccessDenied,
            Self::MissingAuthenticationToken => AwsCode::MissingAuthenticationToken,
            Self::Authentication { code, .. } => *code,
            Self::Throttling => AwsCode::Throttling,
            Self::Report { code, .. } => *code,
            Self::PolicyEvaluation(_) => AwsCode::PolicyEvaluation,
            Self::Trail { code, .. } => *code,
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
