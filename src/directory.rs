//! Tenants and their IAM directories: users, groups, roles, managed and inline policies,
//! access keys, MFA devices, OIDC providers, resource policies and session-token issuer keys.
//!
//! A [`Tenant`] is one AWS-style account. Its operations (`create_user`, `attach_role_policy`,
//! ...) validate names, paths, tags, quotas and policy documents as IAM does and fail with
//! IAM's error codes ([`DirectoryError`]); a failed operation changes nothing. Everything here
//! is synchronous and in memory: the control plane persists tenants and logs each change, and
//! sidecars receive tenants as snapshots.

mod analyzer;
mod aws_managed;
mod ids;
mod model;
mod ops;
mod password;
mod sidecar_keys;
pub mod totp;
pub(crate) mod validate;

use crate::error::AwsCode;

pub use analyzer::{
    Analyzer, AnalyzerExclusion, AnalyzerSettings, StatusUpdate, ANALYZER_REGION,
    DEFAULT_UNUSED_ACCESS_AGE, UNUSED_ACCESS_AGE_RANGE, UNUSED_ACCESS_TYPE,
};
pub use aws_managed::{
    aws_managed_policies, aws_managed_policy, is_aws_managed_arn, AwsManagedPolicy,
    AWS_MANAGED_ARN_PREFIX,
};
pub use ids::{IdGenerator, IdPrefix};
pub use model::{
    AccessKey, AccessKeyStatus, Group, InlinePolicies, IssuerKey, LoginProfile, ManagedPolicy,
    OidcProvider, PodIdentityAssociation, PolicyVersionEntry, ResourcePolicy, Role, RootAccessKey,
    SamlPrivateKey, SamlProvider, Secret, ServiceControlPolicy, Tag, Tenant, TenantQuotas, User,
    VirtualMfaDevice,
};
pub use model::{
    DeletionTaskStatus, GlobalEndpointTokenVersion, InstanceProfile, ServiceLinkedRoleDeletion,
};
#[cfg(test)]
pub(crate) use ops::saml_fixtures;
pub use ops::{
    parse_metadata, CreateSamlProviderInput, MfaDeviceInfo, SamlMetadata, UpdateSamlProviderInput,
    MAX_SAML_PROVIDERS,
};
pub use ops::{
    AccessKeyMetadata, AttachedPolicy, CreateOidcProviderInput, CreatePolicyInput, CreateRoleInput,
    CreateUserInput, MfaDeviceMetadata, PasswordPolicy, PasswordPolicyInput,
    PodIdentityAssociationInput, UpdatePodIdentityAssociation, EKS_REGION, POD_IDENTITY_SERVICE,
    RETAINED_ISSUER_KEYS,
};
pub use ops::{
    CreateInstanceProfileInput, CreateServiceLinkedRoleInput, ServiceLinkedRoleSpec,
    RETAINED_DELETION_TASKS, SERVICE_LINKED_ROLES, SERVICE_ROLE_PATH_PREFIX,
};
pub use password::{verify_password, PasswordHasher, PasswordWork};
pub use sidecar_keys::{
    date_key, scope_date, DateKey, DerivedAccessKey, HeldAccessKey, SidecarKeys, DAY_SECONDS,
    ROLL_GRACE_SECONDS, SHIPPED_DAYS,
};

/// Why a directory operation was refused, with IAM's error code. The message is IAM's own
/// text where IAM has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// `NoSuchEntity` (404): the named entity does not exist.
    #[error("{0}")]
    NoSuchEntity(String),
    /// `EntityAlreadyExists` (409): an entity with that name exists (names are
    /// case-insensitive).
    #[error("{0}")]
    EntityAlreadyExists(String),
    /// `LimitExceeded` (409): a quota would be exceeded.
    #[error("{0}")]
    LimitExceeded(String),
    /// `DeleteConflict` (409): the entity still has dependents.
    #[error("{0}")]
    DeleteConflict(String),
    /// `MalformedPolicyDocument` (400) and the other policy-document errors.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    /// `InvalidInput` (400): a parameter breaks IAM's rules.
    #[error("{0}")]
    InvalidInput(String),
    /// `ValidationError` (400): a parameter breaks the API's constraints (length, pattern).
    #[error("{0}")]
    Validation(String),
    /// `InvalidAuthenticationCode` (403): MFA codes did not verify.
    #[error("{0}")]
    InvalidAuthenticationCode(String),
    /// `PasswordPolicyViolation` (400): the password breaks the account's password policy.
    #[error("{0}")]
    PasswordPolicyViolation(String),
    /// `UnmodifiableEntity` (400): AWS-managed entities cannot be changed.
    #[error("{0}")]
    UnmodifiableEntity(String),
    /// `InvalidUserType` (400): the operation is for IAM users only (`ChangePassword`).
    #[error("{0}")]
    InvalidUserType(String),
    /// `AccessDenied` (403): the caller's own proof did not check out (`ChangePassword`'s
    /// old password).
    #[error("{0}")]
    AccessDenied(String),
    /// `ResourceInUseException` (409, EKS): a pod identity association exists for that
    /// (cluster, namespace, service account).
    #[error("{0}")]
    ResourceInUse(String),
    /// `ResourceNotFoundException` (404, EKS): the pod identity association does not exist.
    #[error("{0}")]
    ResourceNotFound(String),
    /// `InvalidParameterException` (400, EKS): a pod identity association's parameter is
    /// invalid.
    #[error("{0}")]
    InvalidParameter(String),
    /// `ConflictException` (409, Access Analyzer): an analyzer of that name exists.
    #[error("{0}")]
    Conflict(String),
    /// `ValidationException` (400, Access Analyzer): a parameter breaks Access Analyzer's
    /// constraints.
    #[error("{0}")]
    RequestValidation(String),
}

// === impl DirectoryError ===

impl DirectoryError {
    /// IAM's error code.
    pub fn code(&self) -> AwsCode {
        match self {
            Self::NoSuchEntity(_) => AwsCode::NoSuchEntity,
            Self::EntityAlreadyExists(_) => AwsCode::EntityAlreadyExists,
            Self::LimitExceeded(_) => AwsCode::LimitExceeded,
            Self::DeleteConflict(_) => AwsCode::DeleteConflict,
            Self::Policy(e) => e.code(),
            Self::InvalidInput(_) => AwsCode::InvalidInput,
            Self::Validation(_) => AwsCode::ValidationError,
            Self::InvalidAuthenticationCode(_) => AwsCode::InvalidAuthenticationCode,
            Self::PasswordPolicyViolation(_) => AwsCode::PasswordPolicyViolation,
            Self::UnmodifiableEntity(_) => AwsCode::UnmodifiableEntity,
            Self::InvalidUserType(_) => AwsCode::InvalidUserType,
            Self::AccessDenied(_) => AwsCode::AccessDenied,
            Self::ResourceInUse(_) => AwsCode::ResourceInUseException,
            Self::ResourceNotFound(_) => AwsCode::ResourceNotFoundException,
            Self::InvalidParameter(_) => AwsCode::InvalidParameterException,
            Self::Conflict(_) => AwsCode::ConflictException,
            Self::RequestValidation(_) => AwsCode::ValidationException,
        }
    }
}
