//! OpenID Connect web-identity tokens (JWTs) for `AssumeRoleWithWebIdentity`, verified offline
//! against the JWKS stored with the tenant's IAM OIDC provider (IAM-SEMANTICS §4.6).
//!
//! A token goes through two steps. [`UnverifiedToken::parse`] splits and decodes it and
//! exposes only its issuer, which names the provider to look up. [`UnverifiedToken::verify`]
//! then checks the signature against the provider's [`Jwks`] and, only after that, the claims:
//! `iss`, `exp`/`nbf`/`iat` (with [`CLOCK_SKEW_SECONDS`]) and `aud` against the provider's
//! client ids.
//!
//! Decisions worth knowing:
//! - Algorithms: RS256, RS384, RS512, ES256 and ES384. `none`, the HMAC family and anything
//!   else are refused. ES512 is refused too: *ring* has no P-521. The header's `alg` only
//!   *asks*; the key selected by `kid` must be of the matching type and curve, and must agree
//!   with its own `alg` when it has one, so a token can never steer verification to HMAC or to
//!   a key of another type.
//! - Parsing is strict, because a lenient parser is how two verifiers come to disagree about
//!   one token: exactly three segments (compact JWS, no JWE); base64url without padding,
//!   whitespace or non-canonical trailing bits; JSON bounded in size and depth and with
//!   duplicate member names rejected (RFC 7515 §5.2 allows either that or last-wins; we
//!   take the safe one); any `crit` header is refused, since we understand no extension.
//! - Timestamps must be JSON integers: `1.7e9`, `1700000000.0` and `"1700000000"` are all
//!   refused, as AWS documents.
//! - Open point U10 (the error for an audience mismatch): AWS answers `InvalidIdentityToken`
//!   with "Incorrect token audience", as countless reports show (for example
//!   aws-actions/configure-aws-credentials#775, awslabs/amazon-eks-irsa-cfn#18, Atlassian's
//!   Bitbucket OIDC troubleshooting page). `IDPRejectedClaim` is therefore not used here.
//! - Open point U11 (skew): 60 seconds, both for `exp` and for `nbf`/`iat` in the future.
//! - Messages are AWS's where AWS's are known ("No OpenIDConnect provider found in your
//!   account for …", "Incorrect token audience", "Couldn't retrieve verification key …",
//!   "Token expired: …"); elsewhere they are ours, in the same voice. No message ever contains
//!   the token, a segment of it or its signature; the issuer is echoed (as AWS does) only as
//!   printable text of at most 255 characters.
//!
//! The JOSE layer under this (JWKS parsing, compact JWS decoding, signature checks) is
//! [`crate::jose`]; this module adds STS's constraints and words its errors as STS does.
//! Hand-written, not a JWT crate, for the reasons given there: *ring* only, and strictness.

use std::fmt;

use serde_json::{Map, Value};

use crate::error::AwsCode;
use crate::jose::{CompactJws, JoseError, Jwks};
use crate::policy::Timestamp;

/// The longest `WebIdentityToken` STS accepts, in characters.
pub const MAX_TOKEN_CHARS: usize = 20_000;

/// The shortest `WebIdentityToken` STS accepts, in characters.
pub const MIN_TOKEN_CHARS: usize = 4;

/// How far the token's clock may be from ours, in seconds: `exp` may have passed by this
/// much, and `nbf`/`iat` may lie this far in the future.
pub const CLOCK_SKEW_SECONDS: i64 = 60;

/// The claim that carries session tags.
pub const SESSION_TAGS_CLAIM: &str = "https://aws.amazon.com/tags";

/// The longest issuer echoed in an error: IAM provider URLs have at most 255 characters.
const MAX_ECHOED_ISSUER_CHARS: usize = 255;

const NANOS_PER_SECOND: i128 = 1_000_000_000;

const MSG_NO_KEY: &str = "Couldn't retrieve verification key from your identity provider,  \
                          please reference AssumeRoleWithWebIdentity documentation for requirements";
const MSG_BAD_SIGNATURE: &str = "The signature of the web identity token is invalid";
const MSG_AUDIENCE: &str = "Incorrect token audience";
const MSG_KEY_MISMATCH: &str =
    "The signing algorithm of the web identity token does not match its verification key";
const MSG_UNSUPPORTED_ALG: &str = "The web identity token must be signed with RS256, RS384, \
                                   RS512, ES256 or ES384";

/// Why a web identity token (or a JWKS) was refused, with STS's error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// `InvalidIdentityToken` (400): the token is malformed, unsigned or badly signed, names
    /// an unknown key, is not yet valid, or its issuer or audience do not match the provider.
    #[error("{0}")]
    InvalidIdentityToken(String),
    /// `ExpiredTokenException` (400): `exp` has passed, even allowing for clock skew.
    #[error(
        "Token expired: current date/time {now} must be before the expiration date/time \
         {expires_at}"
    )]
    ExpiredToken {
        /// The verifier's time (whole seconds).
        now: Timestamp,
        /// The token's `exp`.
        expires_at: Timestamp,
    },
    /// `ValidationError` (400): the token is shorter than 4 or longer than 20000 characters,
    /// the API's constraint on `WebIdentityToken`.
    #[error("{0}")]
    Validation(String),
    /// `InvalidInput` (400): the JWKS text is not a usable key set. Raised when a provider's
    /// keys are registered; a provider whose stored JWKS cannot be parsed should verify
    /// against [`Jwks::default`] (no keys), which answers tokens as AWS does when it cannot
    /// fetch the keys.
    #[error("{0}")]
    InvalidJwks(String),
    /// `InternalFailure` (500): the signer could not generate a key or sign.
    #[error("{0}")]
    Signing(&'static str),
}

// === impl JwtError ===

impl JwtError {
    /// AWS's error code.
    pub fn code(&self) -> AwsCode {
        match self {
            Self::InvalidIdentityToken(_) => AwsCode::InvalidIdentityToken,
            Self::ExpiredToken { .. } => AwsCode::ExpiredTokenException,
            Self::Validation(_) => AwsCode::ValidationError,
            Self::InvalidJwks(_) => AwsCode::InvalidInput,
            Self::Signing(_) => AwsCode::InternalFailure,
        }
    }

    /// AWS's answer when the token's issuer is not a provider of the account: for the caller
    /// that looks the provider up by [`UnverifiedToken::issuer`] and finds none.
    pub fn no_provider(issuer: &str) -> Self {
        let printable: String = issuer
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_ECHOED_ISSUER_CHARS)
            .collect();
        Self::InvalidIdentityToken(format!(
            "No OpenIDConnect provider found in your account for {printable}"
        ))
    }

    fn invalid(message: &str) -> Self {
        Self::InvalidIdentityToken(message.to_owned())
    }

    fn malformed(what: &str) -> Self {
        Self::InvalidIdentityToken(format!("The web identity token is not a valid JWT: {what}"))
    }
}

impl From<JoseError> for JwtError {
    /// STS's words for each way a token or a key set is refused.
    fn from(error: JoseError) -> Self {
        match error {
            JoseError::Malformed(what) => Self::malformed(&what),
            JoseError::UnsupportedAlgorithm => Self::invalid(MSG_UNSUPPORTED_ALG),
            JoseError::NoKey => Self::invalid(MSG_NO_KEY),
            JoseError::KeyMismatch => Self::invalid(MSG_KEY_MISMATCH),
            JoseError::BadSignature => Self::invalid(MSG_BAD_SIGNATURE),
            error @ JoseError::InvalidJwks(_) => Self::InvalidJwks(error.to_string()),
            JoseError::Signing(what) => Self::Signing(what),
        }
    }
}

/// The claims of a token, typed but not yet trusted.
#[derive(Clone)]
struct Claims {
    issuer: String,
    subject: String,
    audiences: Vec<String>,
    expires_at: i64,
    not_before: Option<i64>,
    issued_at: Option<i64>,
    strings: Vec<(String, Vec<String>)>,
    session_tags: Vec<(String, String)>,
    transitive_tag_keys: Vec<String>,
}

/// A JWT split and decoded but not verified: only `issuer()` may be read before
/// verification (to find the provider).
pub struct UnverifiedToken {
    jws: CompactJws,
    claims: Claims,
}

// === impl UnverifiedToken ===

impl UnverifiedToken {
    /// Splits and decodes a compact JWS, checking its shape, its algorithm and the types of
    /// its claims (`iss`, `sub`, `aud` and `exp` are required; `exp`, `nbf` and `iat` must
    /// be integers). Nothing is trusted yet.
    pub fn parse(token: &str) -> Result<Self, JwtError> {
        check_token_length(token)?;
        let (jws, payload) = CompactJws::parse(token, MAX_TOKEN_CHARS)?;
        let claims = Claims::parse(&payload)?;
        Ok(Self { jws, claims })
    }

    /// The `iss` claim, unverified: use it only to find the provider whose keys verify the
    /// token.
    pub fn issuer(&self) -> &str {
        &self.claims.issuer
    }

    /// Verifies the token: `iss == issuer_url` (exact, case-sensitive), the signature with
    /// `jwks` (the provider's keys), `exp`/`nbf`/`iat` against `now` with
    /// [`CLOCK_SKEW_SECONDS`] of skew, and that `aud` holds one of `client_ids`. No claim is
    /// acted on before the signature has verified.
    pub fn verify(
        self,
        jwks: &Jwks,
        issuer_url: &str,
        client_ids: &[String],
        now: Timestamp,
    ) -> Result<WebIdentityClaims, JwtError> {
        let Self { jws, claims } = self;
        // The issuer names the provider, and so the keys; a mismatch is AWS's "no provider".
        if claims.issuer != issuer_url {
            return Err(JwtError::no_provider(&claims.issuer));
        }
        jws.verify(jwks)?;

        let skew = i128::from(CLOCK_SKEW_SECONDS) * NANOS_PER_SECOND;
        let expires_at = Timestamp::from_epoch_seconds(claims.expires_at);
        if now.0 >= expires_at.0.saturating_add(skew) {
            return Err(JwtError::ExpiredToken {
                now: Timestamp::from_epoch_seconds(now.epoch_seconds()),
                expires_at,
            });
        }
        let latest_start = now.0.saturating_add(skew);
        if let Some(nbf) = claims.not_before {
            if Timestamp::from_epoch_seconds(nbf).0 > latest_start {
                return Err(JwtError::invalid(
                    "The web identity token is not valid yet: its \"nbf\" is in the future",
                ));
            }
        }
        if let Some(iat) = claims.issued_at {
            if Timestamp::from_epoch_seconds(iat).0 > latest_start {
                return Err(JwtError::invalid(
                    "The web identity token is not valid yet: its \"iat\" is in the future",
                ));
            }
        }
        let audience = claims
            .audiences
            .iter()
            .find(|aud| client_ids.contains(aud))
            .cloned()
            .ok_or_else(|| JwtError::invalid(MSG_AUDIENCE))?;

        Ok(WebIdentityClaims {
            issuer: claims.issuer,
            subject: claims.subject,
            audience,
            issued_at: claims.issued_at.map(Timestamp::from_epoch_seconds),
            expires_at,
            claims: claims.strings,
            session_tags: claims.session_tags,
            transitive_tag_keys: claims.transitive_tag_keys,
        })
    }
}

impl fmt::Debug for UnverifiedToken {
    /// The algorithm, key id and issuer only: never the token, its claims or its signature.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnverifiedToken")
            .field("alg", &self.jws.alg().name())
            .field("kid", &self.jws.kid())
            .field("issuer", &self.claims.issuer)
            .finish_non_exhaustive()
    }
}

// === impl Claims ===

impl Claims {
    fn parse(payload: &Map<String, Value>) -> Result<Self, JwtError> {
        let issuer = required_claim_string(payload, "iss")?;
        let subject = required_claim_string(payload, "sub")?;
        let audiences = match payload.get("aud") {
            None => return Err(JwtError::malformed("the claim \"aud\" is missing")),
            Some(value) => string_values(value).ok_or_else(|| {
                JwtError::malformed("the claim \"aud\" must be a string or an array of strings")
            })?,
        };
        let expires_at = numeric_date(payload, "exp")?
            .ok_or_else(|| JwtError::malformed("the claim \"exp\" is missing"))?;
        let not_before = numeric_date(payload, "nbf")?;
        let issued_at = numeric_date(payload, "iat")?;
        let (session_tags, transitive_tag_keys) = match payload.get(SESSION_TAGS_CLAIM) {
            None => (Vec::new(), Vec::new()),
            Some(value) => parse_session_tags(value)?,
        };
        let strings = payload
            .iter()
            .filter_map(|(name, value)| string_values(value).map(|values| (name.clone(), values)))
            .collect();
        Ok(Self {
            issuer,
            subject,
            audiences,
            expires_at,
            not_before,
            issued_at,
            strings,
            session_tags,
            transitive_tag_keys,
        })
    }
}

/// Verified claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebIdentityClaims {
    /// `iss`: the provider URL.
    pub issuer: String,
    /// `sub` (STS's `SubjectFromWebIdentityToken`).
    pub subject: String,
    /// The matched client id (STS's `Audience`).
    pub audience: String,
    /// `iat`, when present.
    pub issued_at: Option<Timestamp>,
    /// `exp`.
    pub expires_at: Timestamp,
    /// String-valued claims usable as condition keys `<issuer host/path>:<claim>` (aud, sub,
    /// amr, azp, oaud, email, ... every top-level string or string-array claim), name →
    /// values, in token order.
    pub claims: Vec<(String, Vec<String>)>,
    /// Session tags from the claim `https://aws.amazon.com/tags`:
    /// `{"principal_tags": {"K": ["v"]}, "transitive_tag_keys": ["K"]}`, in token order.
    pub session_tags: Vec<(String, String)>,
    /// The keys of the session tags marked transitive.
    pub transitive_tag_keys: Vec<String>,
}

/// The condition-key prefix of an issuer: the URL without `https://` (e.g.
/// `oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE`).
pub fn condition_key_prefix(issuer_url: &str) -> &str {
    issuer_url.strip_prefix("https://").unwrap_or(issuer_url)
}

// === helpers ===

/// STS's length constraint on `WebIdentityToken`, counted in characters.
fn check_token_length(token: &str) -> Result<(), JwtError> {
    let chars = token.chars().take(MAX_TOKEN_CHARS + 1).count();
    if chars > MAX_TOKEN_CHARS {
        return Err(JwtError::Validation(
            "1 validation error detected: Value at 'webIdentityToken' failed to satisfy \
             constraint: Member must have length less than or equal to 20000"
                .to_owned(),
        ));
    }
    if chars < MIN_TOKEN_CHARS {
        return Err(JwtError::Validation(
            "1 validation error detected: Value at 'webIdentityToken' failed to satisfy \
             constraint: Member must have length greater than or equal to 4"
                .to_owned(),
        ));
    }
    Ok(())
}

/// A string, or an array of strings, as a list; `None` for anything else.
fn string_values(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

fn required_claim_string(payload: &Map<String, Value>, name: &str) -> Result<String, JwtError> {
    match payload.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(_) => Err(JwtError::malformed(&format!(
            "the claim \"{name}\" must be a non-empty string"
        ))),
        None => Err(JwtError::malformed(&format!(
            "the claim \"{name}\" is missing"
        ))),
    }
}

/// A NumericDate claim: whole seconds since the epoch, as a JSON integer.
fn numeric_date(payload: &Map<String, Value>, name: &str) -> Result<Option<i64>, JwtError> {
    match payload.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| JwtError::malformed(&format!("the claim \"{name}\" is out of range"))),
        Some(_) => Err(JwtError::malformed(&format!(
            "the claim \"{name}\" must be an integer number of seconds"
        ))),
    }
}

/// Session tags as key-value pairs, in token order.
type TagList = Vec<(String, String)>;

/// The tags claim: `{"principal_tags": {"K": ["v"]}, "transitive_tag_keys": ["K"]}`. A tag
/// value is a one-element array (AWS's documented form) or a plain string; session tags are
/// single-valued, so longer arrays are refused. Tag limits (count, lengths, transitive keys
/// being tag keys) are for the session layer to enforce with STS's own errors.
fn parse_session_tags(value: &Value) -> Result<(TagList, Vec<String>), JwtError> {
    let invalid = || {
        JwtError::malformed(&format!(
            "the claim \"{SESSION_TAGS_CLAIM}\" must be {{\"principal_tags\": {{\"Key\": \
             [\"value\"]}}, \"transitive_tag_keys\": [\"Key\"]}}"
        ))
    };
    let Value::Object(claim) = value else {
        return Err(invalid());
    };
    let mut tags = Vec::new();
    match claim.get("principal_tags") {
        None => {}
        Some(Value::Object(principal_tags)) => {
            for (key, value) in principal_tags {
                let tag_value = match value {
                    Value::String(s) => s.clone(),
                    Value::Array(items) => match items.as_slice() {
                        [Value::String(s)] => s.clone(),
                        _ => return Err(invalid()),
                    },
                    _ => return Err(invalid()),
                };
                tags.push((key.clone(), tag_value));
            }
        }
        Some(_) => return Err(invalid()),
    }
    let transitive = match claim.get("transitive_tag_keys") {
        None => Vec::new(),
        Some(value @ Value::Array(_)) => string_values(value).ok_or_else(invalid)?,
        Some(_) => return Err(invalid()),
    };
    Ok((tags, transitive))
}

#[cfg(test)]
mod tests;
