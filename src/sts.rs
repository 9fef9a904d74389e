//! The security token service's core: authenticating callers, and `AssumeRole`,
//! `AssumeRoleWithWebIdentity`, `GetSessionToken` and `GetCallerIdentity` over a tenant
//! snapshot. Synchronous and free of any runtime, like the rest of the engine.
//!
//! # Trust model
//!
//! What each secret is, who holds it, and what an attacker who reads one sidecar's memory and
//! disk (its state directory, its process) obtains, and for how long: before issue #20 and
//! after it.
//!
//! | secret | before | after | a compromised sidecar yields |
//! |---|---|---|---|
//! | **issuer signing key** (Ed25519, per tenant, rotated, 3 kept) | control plane *and* every sidecar of the tenant (streamed, in state files) | control plane only ([`crate::snapshot::for_sidecars`] strips it) | before: minting any session of any role or user of its tenants, until the key is rotated out; after: nothing |
//! | **issuing key** (Ed25519, per sidecar identity and tenant, 48 h) | did not exist | the sidecar it was certified for, in memory only, sent on its own stream | sessions within *its* certificate's scope (role paths/ARNs, `GetSessionToken` or not), issued until the certificate expires (≤ 48 h; renewed below 40 h left, so at most 48 h after the last renewal the sidecar received) |
//! | **session-secret key** (HMAC, per issuer key) | derived from the issuer seed, so held wherever the seed was | every sidecar of the tenant (public keys + this key) | the secret access key of any session token of its tenants it *sees* (on a request, in a log it can read); it cannot mint a token, so it cannot make a session of a role it never saw a token of |
//! | **access-key secrets** (users' `AKIA…`) | every sidecar of the tenant, plain text in state files | control plane only; sidecars get each key's derived SigV4 date keys for the current and next UTC day and a keyed-hash verifier for the key+secret form (issue #20 item 2) | request signatures for those keys for at most two UTC days; no secret |
//! | root keys, password hashes, MFA seeds, snapshot signing keys | control plane only | unchanged | nothing |
//!
//! - **Who can mint.** The control plane, with the tenant's issuer signing key (`iamlet1`
//!   tokens, still verified everywhere). A sidecar mints `iamlet2` tokens with an issuing key
//!   that the control plane generated for its identity and certified with the issuer key
//!   ([`crate::jose::certificate`]): the certificate names the sidecar identity (a client
//!   certificate's DNS name mapped by `--tenant-access`, which may give it a `scope`), the
//!   tenant, the scope and a validity window. Without mTLS (`iamlet up`, sync keys, loopback)
//!   every sidecar is the one identity `anonymous`, unscoped: such sidecars may stream every
//!   tenant anyway, so scoping needs identities. A session outside the scope is refused with
//!   `AccessDenied`, recorded in the decision log (and the trail when it is shipped) and
//!   counted (`iamlet_sts_out_of_scope_refusals_total`). The key reaches only that sidecar's stream and is never written to disk: a
//!   sidecar restarted without the control plane verifies but mints nothing until it
//!   reconnects.
//! - **Who can verify.** Every sidecar of the tenant, offline, with the tenant's issuer public
//!   keys: the token carries its certificate; the verifier checks the certificate's signature
//!   against those keys (a foreign tenant's key, a dropped key, a tampered scope fail), that
//!   it names the tenant, that the session was issued within its window and ends before it
//!   does, that the session's role (or user) is within its scope, then the token's signature
//!   with the certified key. A token names its tenant in clear and the signatures cover it,
//!   so a token of tenant A never verifies as tenant B's; every failure is the one
//!   `InvalidClientTokenId` to the caller and a precise log line for the operator.
//! - **What the secret is.** A session's secret access key is derived from the tenant's
//!   session-secret key, the tenant, the access key id and the token's random id (see
//!   [`crate::jose::session`]): never stored, re-derived by any verifier. SigV4 is symmetric,
//!   so verifiers need this key: hence the row above. Keys stored before issue #20 carry no
//!   session-secret key: it is the HMAC their seed gave, so sessions issued before keep their
//!   secrets. **After upgrading, rotate each tenant's issuer key** (`RotateIssuerKey`): the
//!   previous key was held by sidecars, and it verifies until it ages out of the three kept.
//! - **What a token cannot do.** Permissions are read from the snapshot at each request: a
//!   token fixes only the session policy, the session tags, the source identity and the
//!   times. Revoking sessions (`RevokeSessions`, AWS's `AWSRevokeOlderSessions`) is a deny on
//!   `aws:TokenIssueTime` in the role's policies, effective at the next snapshot. Rotating the
//!   issuer key keeps retired keys for verification; dropping a key invalidates its tokens
//!   and the certificates it signed (the stream certifies new issuing keys with the new key).
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
    authenticate, credential_tenant, fill_session_context, key_day_refusals, resolve_credentials,
    Caller, Presented, Verified, KEY_DAY_REASONS,
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
