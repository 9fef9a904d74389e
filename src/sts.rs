//! The security token service's core: authenticating callers, and `AssumeRole`,
//! `AssumeRoleWithWebIdentity`, `GetSessionToken` and `GetCallerIdentity` over a tenant
//! snapshot. Synchronous and free of any runtime, like the rest of the engine.
//!
//! # Trust model
//!
//! - **Who can mint.** Session tokens are signed with the tenant's Ed25519 issuer keys. The
//!   control plane generates them and streams them, private part included, to every sidecar
//!   that serves the tenant, because `AssumeRole` runs beside the workload with no round trip.
//!   So the control plane and every sidecar serving tenant A can mint tokens for A's roles,
//!   and no one else can: a sidecar never receives another tenant's keys.
//! - **Who can verify.** The same sidecars. A token names its tenant and key id in clear and
//!   the signature covers both, so a token of tenant A never verifies as tenant B's, a key id
//!   of B inside an A token finds no key, and an unknown key id fails closed.
//! - **What the secret is.** A session's secret access key is derived from the issuer key, the
//!   tenant, the access key id and the token's random id (see [`crate::jose::session`]): never stored, it can
//!   be re-derived by any verifier, which SigV4 needs since its signatures are symmetric.
//!   Long-term secrets are held by the control plane and the tenant's sidecars.
//! - **What a token cannot do.** Permissions are read from the snapshot at each request: a
//!   token fixes only the session policy, the session tags, the source identity and the
//!   times. Revoking sessions (`RevokeSessions`, AWS's `AWSRevokeOlderSessions`) is a deny on
//!   `aws:TokenIssueTime` in the role's policies, effective at the next snapshot. Rotating the
//!   issuer key keeps retired keys for verification; dropping a key invalidates its tokens.
//! - **Clock.** Expiry and issue times are checked with 60 s of skew; SigV4 request times with
//!   5 minutes, as AWS does.
//! - **What never leaks.** Secrets, tokens and signatures are compared in constant time and
//!   never appear in errors, logs, metrics or `Debug` output; every way a token can be wrong
//!   gives the same error.

mod authenticate;
mod issue;
pub mod jwt;
mod params;
pub mod sigv4;

use crate::error::AwsCode;

pub use crate::jose::{
    IssuerKeyring, IssuingCredential, IssuingCredentials, IssuingScope, SessionClaims,
    SessionSubject, VerifiedToken,
};
pub use authenticate::{
    authenticate, credential_tenant, fill_session_context, resolve_credentials, Caller, Presented,
    Verified,
};
pub use issue::{
    assume_role, assume_role_for_service, assume_role_with_web_identity, caller_identity,
    get_session_token, pod_session_name, pod_session_tags, verify_pod_token, AssumeRoleParams,
    CallerIdentity, GetSessionTokenParams, IssueEnv, Issued, Issuing, MfaReplayGuard, PodToken,
    PodTokenError, ServiceRoleParams, WebIdentityIssued, WebIdentityParams,
};

/// Why an STS operation or an authentication failed. Each has AWS's error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StsError {
    /// A parameter breaks a constraint.
    #[error("{0}")]
    Validation(String),
    /// The session policy is not a valid policy.
    #[error("{0}")]
    MalformedPolicyDocument(String),
    /// Session policies and tags exceed the packed allowance.
    #[error("{0}")]
    PackedPolicyTooLarge(String),
    /// The caller may not do this.
    #[error("{0}")]
    AccessDenied(String),
    /// Unknown, inactive, forged, tampered or foreign credentials: one message for all.
    #[error("The security token included in the request is invalid.")]
    InvalidToken,
    /// A genuine session token past its expiry.
    #[error("The security token included in the request is expired")]
    ExpiredToken,
    /// A SigV4 signature that does not verify or cannot be read.
    #[error("{0}")]
    Signature(#[from] sigv4::SigV4Error),
    /// A web identity token that does not verify.
    #[error("{0}")]
    WebIdentity(#[from] jwt::JwtError),
    /// The server cannot do it (no issuer key, ...).
    #[error("{0}")]
    ServiceFailure(String),
}

// === impl StsError ===

impl StsError {
    /// AWS's error code.
    pub fn code(&self) -> AwsCode {
        match self {
            Self::Validation(_) => AwsCode::ValidationError,
            Self::MalformedPolicyDocument(_) => AwsCode::MalformedPolicyDocument,
            Self::PackedPolicyTooLarge(_) => AwsCode::PackedPolicyTooLarge,
            Self::AccessDenied(_) => AwsCode::AccessDenied,
            Self::InvalidToken => AwsCode::InvalidClientTokenId,
            Self::ExpiredToken => AwsCode::ExpiredToken,
            Self::Signature(e) => e.code(),
            Self::WebIdentity(e) => e.code(),
            Self::ServiceFailure(_) => AwsCode::ServiceFailure,
        }
    }

    /// True for errors about the caller's credentials (as opposed to the request).
    pub fn is_authentication(&self) -> bool {
        matches!(
            self,
            Self::InvalidToken | Self::ExpiredToken | Self::Signature(_)
        )
    }
}

impl From<crate::jose::SessionTokenError> for StsError {
    fn from(error: crate::jose::SessionTokenError) -> Self {
        use crate::jose::SessionTokenError;
        match error {
            SessionTokenError::Invalid => Self::InvalidToken,
            SessionTokenError::Expired => Self::ExpiredToken,
            e @ SessionTokenError::Certificate(crate::jose::CertificateError::OutOfScope) => {
                Self::AccessDenied(e.to_string())
            }
            e @ (SessionTokenError::NoActiveKey
            | SessionTokenError::Encode
            | SessionTokenError::NoIssuingCertificate
            | SessionTokenError::Certificate(_)) => Self::ServiceFailure(e.to_string()),
        }
    }
}

impl From<crate::directory::DirectoryError> for StsError {
    fn from(error: crate::directory::DirectoryError) -> Self {
        Self::Validation(error.to_string())
    }
}
