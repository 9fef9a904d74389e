//! Signed-token key material, a leaf below every engine module: JSON Web Keys and key sets
//! ([`Jwks`]), compact JWS parsing and signature checks ([`CompactJws`]), an ES256 signer for
//! demos and tests ([`Es256Signer`]), and the tenants' issuer keyrings that mint and verify
//! iamlet's session tokens ([`IssuerKeyring`]), with the issuing certificates that let a sidecar
//! mint within a scope ([`IssuingCredential`]).
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

pub mod certificate;
mod json;
mod jwk;
mod jws;
pub mod session;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;

use crate::error::AwsCode;

pub use certificate::{
    CertificateClaims, CertificateError, IssuingCredential, IssuingCredentials, IssuingScope,
    VerifiedCertificate,
};
pub use jwk::{Algorithm, Jwks, MAX_JWKS_CHARS, MAX_JWKS_KEYS};
pub use jws::{CompactJws, Es256Signer, MAX_HEADER_BYTES};
pub use session::{
    constant_time_eq, session_secret_from_seed, token_tenant, token_tenant_field, IssuerKeyError,
    IssuerKeySource, IssuerKeyring, SessionClaims, SessionSubject, SessionTokenError,
    VerifiedToken,
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

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use serde_json::json;

    fn signed() -> (Es256Signer, String) {
        let signer = Es256Signer::generate("k1").unwrap();
        let token = signer.sign(&json!({"sub": "s"})).unwrap();
        (signer, token)
    }

    #[test]
    fn a_signed_jws_verifies_with_its_key_set_only() {
        let (signer, token) = signed();
        let jwks = Jwks::parse(&signer.jwks()).unwrap();
        let (jws, payload) = CompactJws::parse(&token, 1024).unwrap();
        assert_eq!(jws.alg(), Algorithm::Es256);
        assert_eq!(jws.kid(), Some("k1"));
        assert_eq!(payload.get("sub").and_then(|v| v.as_str()), Some("s"));
        jws.verify(&jwks).unwrap();

        let other = Jwks::parse(&Es256Signer::generate("k1").unwrap().jwks()).unwrap();
        assert_eq!(jws.verify(&other), Err(JoseError::BadSignature));
        let renamed = Jwks::parse(&Es256Signer::generate("k2").unwrap().jwks()).unwrap();
        assert_eq!(jws.verify(&renamed), Err(JoseError::NoKey));
        assert_eq!(jws.verify(&Jwks::default()), Err(JoseError::NoKey));
    }

    #[test]
    fn malformed_tokens_and_key_sets_are_refused_without_echo() {
        let (_, token) = signed();
        let two_segments: String = token.rsplit_once('.').unwrap().0.to_owned();
        for bad in [two_segments, format!("{token}.x"), format!("{token}=")] {
            let error = CompactJws::parse(&bad, 1024).unwrap_err();
            assert!(matches!(error, JoseError::Malformed(_)), "{bad}: {error:?}");
            assert_eq!(error.code(), AwsCode::InvalidIdentityToken);
        }
        let none = format!(
            "{}.{}.c2ln",
            BASE64URL.encode(r#"{"alg":"none"}"#),
            BASE64URL.encode(r#"{"sub":"s"}"#)
        );
        assert_eq!(
            CompactJws::parse(&none, 1024).unwrap_err(),
            JoseError::UnsupportedAlgorithm
        );
        let private = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA","d":"c2VjcmV0"}]}"#;
        let error = Jwks::parse(private).unwrap_err();
        assert_eq!(error.code(), AwsCode::InvalidInput);
        assert!(error.to_string().starts_with("The JWKS is not valid: "));
        assert!(!error.to_string().contains("c2VjcmV0"));
    }
}
