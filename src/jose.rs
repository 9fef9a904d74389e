//! Signed-token key material, a leaf below every engine module: JSON Web Keys and key sets
//! ([`Jwks`]), compact JWS parsing and signature checks ([`CompactJws`]), an ES256 signer for
//! demos and tests ([`Es256Signer`]), and the tenants' issuer keyrings that mint and verify
//! iamlet's session tokens ([`IssuerKeyring`]).
//!
//! `snapshot` compiles keys with this module when a tenant is loaded, `directory` checks a
//! provider's JWKS when it is registered, and `sts` verifies tokens with both; none of them
//! imports another for it.
//!
//! Hand-written on purpose: the JOSE crates either pull a second crypto provider (the project
//! builds on *ring* alone) or parse leniently (padding, duplicate members, `crit`), and a
//! lenient parser is how two verifiers come to disagree about one token. What is here is the
//! strict subset STS accepts, verified with *ring*.
//!
//! Errors ([`JoseError`]) say what is wrong without quoting a token, a key or a signature;
//! `sts` words them as STS does.

mod json;
mod jwk;
mod jws;
pub mod session;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;

use crate::error::AwsCode;

pub use jwk::{Algorithm, Jwks, MAX_JWKS_CHARS, MAX_JWKS_KEYS};
pub use jws::{CompactJws, Es256Signer, MAX_HEADER_BYTES};
pub use session::{
    constant_time_eq, token_tenant, IssuerKeyError, IssuerKeySource, IssuerKeyring, SessionClaims,
    SessionSubject, SessionTokenError, VerifiedToken,
};

/// base64url as JOSE requires it (RFC 7515 §2): no padding, and (spelled out rather than
/// left to the defaults) no padding accepted and no non-zero trailing bits, so that each
/// byte string has exactly one encoding.
pub(crate) const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// Why a JWS, a JWKS or a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoseError {
    /// The token is not a well-formed compact JWS; says what is wrong, never quoting it.
    #[error("not a valid JWS: {0}")]
    Malformed(String),
    /// The header asks for an algorithm this module does not verify.
    #[error("the JWS algorithm is not supported")]
    UnsupportedAlgorithm,
    /// No key of the set is the one the header selects.
    #[error("no verification key matches the JWS")]
    NoKey,
    /// The selected key is of another type or bound to another algorithm.
    #[error("the JWS algorithm does not match its verification key")]
    KeyMismatch,
    /// The signature does not verify.
    #[error("the JWS signature is invalid")]
    BadSignature,
    /// The JWKS text is not a usable key set.
    #[error("The JWKS is not valid: {0}")]
    InvalidJwks(String),
    /// A key could not be generated, or a token signed.
    #[error("{0}")]
    Signing(&'static str),
}

// === impl JoseError ===

impl JoseError {
    /// AWS's error code: tokens are verified for `AssumeRoleWithWebIdentity`, key sets are
    /// registered with IAM.
    pub fn code(&self) -> AwsCode {
        match self {
            Self::Malformed(_)
            | Self::UnsupportedAlgorithm
            | Self::NoKey
            | Self::KeyMismatch
            | Self::BadSignature => AwsCode::InvalidIdentityToken,
            Self::InvalidJwks(_) => AwsCode::InvalidInput,
            Self::Signing(_) => AwsCode::InternalFailure,
        }
    }

    fn malformed(what: &str) -> Self {
        Self::Malformed(what.to_owned())
    }

    fn jwks(what: &str) -> Self {
        Self::InvalidJwks(what.to_owned())
    }
}
