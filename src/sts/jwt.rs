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

use crate::error::AwsCode;
use std::fmt;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, Engine};
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, RsaPublicKeyComponents, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED, RSA_PKCS1_2048_8192_SHA256,
    RSA_PKCS1_2048_8192_SHA384, RSA_PKCS1_2048_8192_SHA512,
};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

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

/// The longest JWKS text [`Jwks::parse`] reads. Real key sets are a few kilobytes.
pub const MAX_JWKS_CHARS: usize = 1 << 20;

/// The most keys a JWKS may hold (usable or not): selection tries every key with the
/// token's `kid`, so the set must stay small.
pub const MAX_JWKS_KEYS: usize = 100;

/// The largest decoded JOSE header. Headers are tiny; this leaves room for an `x5c` chain,
/// which is read past, never used.
const MAX_HEADER_BYTES: usize = 8 * 1024;

/// The deepest nesting of JSON arrays and objects in a header, payload or JWKS. The tags
/// claim needs four levels; Kubernetes tokens three.
const MAX_JSON_DEPTH: usize = 16;

/// The longest issuer echoed in an error: IAM provider URLs have at most 255 characters.
const MAX_ECHOED_ISSUER_CHARS: usize = 255;

const NANOS_PER_SECOND: i128 = 1_000_000_000;

/// base64url as JOSE requires it (RFC 7515 §2): no padding, and (spelled out rather than
/// left to the defaults) no padding accepted and no non-zero trailing bits, so that each
/// byte string has exactly one encoding.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

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

    fn jwks(what: &str) -> Self {
        Self::InvalidJwks(format!("The JWKS is not valid: {what}"))
    }
}

/// A signing algorithm this module verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    Rs256,
    Rs384,
    Rs512,
    Es256,
    Es384,
}

// === impl Algorithm ===

impl Algorithm {
    /// The algorithm a JOSE `alg` names, when it is one we verify.
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "RS256" => Some(Self::Rs256),
            "RS384" => Some(Self::Rs384),
            "RS512" => Some(Self::Rs512),
            "ES256" => Some(Self::Es256),
            "ES384" => Some(Self::Es384),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
        }
    }
}

/// The curves of the EC keys we verify with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
}

// === impl Curve ===

impl Curve {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "P-256" => Some(Self::P256),
            "P-384" => Some(Self::P384),
            _ => None,
        }
    }

    /// The length of one coordinate, in bytes.
    fn coordinate_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
        }
    }

    fn algorithm(self) -> Algorithm {
        match self {
            Self::P256 => Algorithm::Es256,
            Self::P384 => Algorithm::Es384,
        }
    }
}

/// Public key material, decoded once when the JWKS is parsed.
#[derive(Clone)]
enum KeyMaterial {
    /// Big-endian modulus and exponent, without leading zeros (as *ring* wants them).
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The uncompressed point `0x04 || x || y`.
    Ec { curve: Curve, point: Vec<u8> },
}

/// One usable verification key.
#[derive(Clone)]
struct Jwk {
    kid: Option<String>,
    /// The key's own `alg`, which then binds it to that one algorithm.
    alg: Option<Algorithm>,
    material: KeyMaterial,
}

// === impl Jwk ===

impl Jwk {
    /// Whether this key may verify a signature made with `alg`: the key type (and curve)
    /// must match, and so must the key's own `alg` when it has one.
    fn accepts(&self, alg: Algorithm) -> bool {
        let type_matches = match &self.material {
            KeyMaterial::Rsa { .. } => {
                matches!(alg, Algorithm::Rs256 | Algorithm::Rs384 | Algorithm::Rs512)
            }
            KeyMaterial::Ec { curve, .. } => curve.algorithm() == alg,
        };
        type_matches && self.alg.is_none_or(|own| own == alg)
    }

    fn verifies(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        match (&self.material, alg) {
            (KeyMaterial::Rsa { n, e }, Algorithm::Rs256) => RsaPublicKeyComponents { n, e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
            (KeyMaterial::Rsa { n, e }, Algorithm::Rs384) => RsaPublicKeyComponents { n, e }
                .verify(&RSA_PKCS1_2048_8192_SHA384, message, signature)
                .is_ok(),
            (KeyMaterial::Rsa { n, e }, Algorithm::Rs512) => RsaPublicKeyComponents { n, e }
                .verify(&RSA_PKCS1_2048_8192_SHA512, message, signature)
                .is_ok(),
            (
                KeyMaterial::Ec {
                    curve: Curve::P256,
                    point,
                },
                Algorithm::Es256,
            ) => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                .verify(message, signature)
                .is_ok(),
            (
                KeyMaterial::Ec {
                    curve: Curve::P384,
                    point,
                },
                Algorithm::Es384,
            ) => UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, point)
                .verify(message, signature)
                .is_ok(),
            _ => false,
        }
    }

    /// Reads one member of a JWKS's `keys`: `Ok(None)` for a well-formed key we cannot or
    /// must not use (another `use`, another key type or curve, an algorithm we do not
    /// verify, an RSA size *ring* refuses), an error for a malformed one.
    fn parse(value: &Value) -> Result<Option<Self>, JwtError> {
        let Value::Object(key) = value else {
            return Err(JwtError::jwks("each member of \"keys\" must be an object"));
        };
        // A private or symmetric key in a verification key set is a configuration mistake
        // that leaks a secret; refuse it rather than quietly use the public half.
        if ["d", "p", "q", "dp", "dq", "qi", "oth", "k"]
            .iter()
            .any(|member| key.contains_key(*member))
        {
            return Err(JwtError::jwks("the JWKS must contain public keys only"));
        }
        let kid = optional_jwk_string(key, "kid")?.map(str::to_owned);
        if optional_jwk_string(key, "use")?.is_some_and(|usage| usage != "sig") {
            return Ok(None);
        }
        match key.get("key_ops") {
            None => {}
            Some(Value::Array(ops)) if !ops.iter().any(|op| op.as_str() == Some("verify")) => {
                return Ok(None);
            }
            Some(Value::Array(_)) => {}
            Some(_) => return Err(JwtError::jwks("\"key_ops\" must be an array of strings")),
        }
        let Some(kty) = optional_jwk_string(key, "kty")? else {
            return Err(JwtError::jwks("every key needs a \"kty\""));
        };
        let alg = match optional_jwk_string(key, "alg")? {
            None => None,
            Some(name) => match Algorithm::from_name(name) {
                Some(alg) => Some(alg),
                // PS256, EdDSA, RSA-OAEP, ...: a key for something we do not verify.
                None => return Ok(None),
            },
        };
        let material = match kty {
            "RSA" => match Self::rsa_material(key)? {
                Some(material) => material,
                None => return Ok(None),
            },
            "EC" => {
                let Some(crv) = optional_jwk_string(key, "crv")? else {
                    return Err(JwtError::jwks("an EC key needs a \"crv\""));
                };
                let Some(curve) = Curve::from_name(crv) else {
                    return Ok(None);
                };
                let x = required_b64_member(key, "x")?;
                let y = required_b64_member(key, "y")?;
                if x.len() != curve.coordinate_len() || y.len() != curve.coordinate_len() {
                    return Err(JwtError::jwks(
                        "the coordinates of an EC key must have the curve's full length",
                    ));
                }
                let mut point = Vec::with_capacity(1 + 2 * curve.coordinate_len());
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                KeyMaterial::Ec { curve, point }
            }
            _ => return Ok(None),
        };
        let jwk = Self { kid, alg, material };
        if let Some(alg) = alg {
            if !jwk.accepts(alg) {
                return Err(JwtError::jwks(&format!(
                    "a key with \"alg\": \"{}\" must be of the matching type and curve",
                    alg.name()
                )));
            }
        }
        Ok(Some(jwk))
    }

    fn rsa_material(key: &Map<String, Value>) -> Result<Option<KeyMaterial>, JwtError> {
        let n = strip_leading_zeros(required_b64_member(key, "n")?);
        let e = strip_leading_zeros(required_b64_member(key, "e")?);
        let Some(first) = n.first() else {
            return Err(JwtError::jwks("an RSA modulus cannot be zero"));
        };
        // *ring* verifies with 2048- to 8192-bit moduli and odd exponents from 3 to 2^33 - 1;
        // any other key could never verify, so it is not kept.
        let bits = n.len() * 8 - first.leading_zeros() as usize;
        let exponent =
            (e.len() <= 5).then(|| e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)));
        let usable = (2048..=8192).contains(&bits)
            && exponent.is_some_and(|x| (3..(1 << 33)).contains(&x) && x % 2 == 1);
        Ok(usable.then_some(KeyMaterial::Rsa { n, e }))
    }
}

impl fmt::Debug for Jwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.material {
            KeyMaterial::Rsa { n, .. } => format!("RSA-{}", n.len() * 8),
            KeyMaterial::Ec { curve, .. } => format!("EC-{curve:?}"),
        };
        f.debug_struct("Jwk")
            .field("kid", &self.kid)
            .field("alg", &self.alg.map(Algorithm::name))
            .field("kind", &kind)
            .finish()
    }
}

/// A parsed JWKS with its verification keys decoded (parse once, e.g. when a snapshot is
/// built). Keys that cannot verify JWS signatures here (`use` other than `sig`, `key_ops`
/// without `verify`, other key types or curves, other algorithms) are left out.
#[derive(Debug, Clone, Default)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

// === impl Jwks ===

impl Jwks {
    /// Parses a JWKS document: `{"keys": [{"kty": "RSA", "n": …, "e": …}, {"kty": "EC",
    /// "crv": "P-256", "x": …, "y": …}]}`, each key with an optional `kid`, `alg`, `use` and
    /// `key_ops`.
    pub fn parse(text: &str) -> Result<Self, JwtError> {
        if text.len() > MAX_JWKS_CHARS {
            return Err(JwtError::jwks("the document is larger than 1 MiB"));
        }
        let Ok(Value::Object(document)) = parse_json(text.as_bytes()) else {
            return Err(JwtError::jwks("the document must be a JSON object"));
        };
        let Some(Value::Array(members)) = document.get("keys") else {
            return Err(JwtError::jwks("the document must have a \"keys\" array"));
        };
        if members.len() > MAX_JWKS_KEYS {
            return Err(JwtError::jwks("the document may hold at most 100 keys"));
        }
        let mut keys = Vec::with_capacity(members.len());
        for member in members {
            if let Some(key) = Jwk::parse(member)? {
                keys.push(key);
            }
        }
        Ok(Self { keys })
    }

    /// The number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is usable.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The `kid`s of the usable keys, in document order (keys without one are skipped).
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().filter_map(|key| key.kid.as_deref())
    }

    /// Checks `signature` over `message`. The key is the one named by `kid`; a token without
    /// a `kid` may use the only key of the right type. Every key with that `kid` and the
    /// right type is tried, since nothing forbids a JWKS from repeating a `kid`.
    fn verify(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), JwtError> {
        let candidates: Vec<&Jwk> = match kid {
            Some(kid) => {
                let named: Vec<&Jwk> = self
                    .keys
                    .iter()
                    .filter(|key| key.kid.as_deref() == Some(kid))
                    .collect();
                if named.is_empty() {
                    return Err(JwtError::invalid(MSG_NO_KEY));
                }
                let fitting: Vec<&Jwk> = named.into_iter().filter(|key| key.accepts(alg)).collect();
                if fitting.is_empty() {
                    return Err(JwtError::invalid(MSG_KEY_MISMATCH));
                }
                fitting
            }
            None => {
                let fitting: Vec<&Jwk> = self.keys.iter().filter(|key| key.accepts(alg)).collect();
                if fitting.len() != 1 {
                    return Err(JwtError::invalid(MSG_NO_KEY));
                }
                fitting
            }
        };
        if candidates
            .iter()
            .any(|key| key.verifies(alg, message, signature))
        {
            Ok(())
        } else {
            Err(JwtError::invalid(MSG_BAD_SIGNATURE))
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
    alg: Algorithm,
    kid: Option<String>,
    /// `header.payload`, the bytes the signature covers.
    signing_input: String,
    signature: Vec<u8>,
    claims: Claims,
}

// === impl UnverifiedToken ===

impl UnverifiedToken {
    /// Splits and decodes a compact JWS, checking its shape, its algorithm and the types of
    /// its claims (`iss`, `sub`, `aud` and `exp` are required; `exp`, `nbf` and `iat` must
    /// be integers). Nothing is trusted yet.
    pub fn parse(token: &str) -> Result<Self, JwtError> {
        check_token_length(token)?;
        let mut segments = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(JwtError::malformed(
                "it must be three base64url segments separated by '.'",
            ));
        };
        let header = decode_object(header_b64, MAX_HEADER_BYTES, "header")?;
        let payload = decode_object(payload_b64, MAX_TOKEN_CHARS, "payload")?;
        let Some(Value::String(alg)) = header.get("alg") else {
            return Err(JwtError::malformed("the header has no \"alg\""));
        };
        let alg =
            Algorithm::from_name(alg).ok_or_else(|| JwtError::invalid(MSG_UNSUPPORTED_ALG))?;
        let signature = BASE64URL
            .decode(signature_b64)
            .map_err(|_| JwtError::malformed("the signature is not base64url"))?;
        if signature.is_empty() {
            return Err(JwtError::malformed("the signature is empty"));
        }
        if header.contains_key("crit") {
            return Err(JwtError::malformed(
                "the header lists critical extensions, which are not supported",
            ));
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err(JwtError::malformed("the header's \"kid\" must be a string")),
        };
        let claims = Claims::parse(&payload)?;
        let signing_input = token
            .get(..header_b64.len() + 1 + payload_b64.len())
            .ok_or_else(|| JwtError::malformed("its segments could not be delimited"))?
            .to_owned();
        Ok(Self {
            alg,
            kid,
            signing_input,
            signature,
            claims,
        })
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
        let Self {
            alg,
            kid,
            signing_input,
            signature,
            claims,
        } = self;
        // The issuer names the provider, and so the keys; a mismatch is AWS's "no provider".
        if claims.issuer != issuer_url {
            return Err(JwtError::no_provider(&claims.issuer));
        }
        jwks.verify(alg, kid.as_deref(), signing_input.as_bytes(), &signature)?;

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
            .field("alg", &self.alg.name())
            .field("kid", &self.kid)
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

/// Signs ES256 JWTs with a key generated at runtime: used by `iamlet up` to give its demo
/// tenant an OIDC provider and a token to try, and by tests.
pub struct Es256Signer {
    kid: String,
    key_pair: EcdsaKeyPair,
    rng: SystemRandom,
    jwks: String,
}

// === impl Es256Signer ===

impl Es256Signer {
    /// Generates a P-256 key named `kid`.
    pub fn generate(kid: &str) -> Result<Self, JwtError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| JwtError::Signing("could not generate an ES256 signing key"))?;
        let key_pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .map_err(|_| JwtError::Signing("could not load the generated ES256 signing key"))?;
        // ring encodes the public key as the uncompressed point 0x04 || x || y.
        let (x, y) = match ring::signature::KeyPair::public_key(&key_pair)
            .as_ref()
            .split_first()
        {
            Some((0x04, xy)) => xy
                .split_at_checked(32)
                .filter(|(x, y)| x.len() == 32 && y.len() == 32)
                .ok_or(JwtError::Signing("unexpected ES256 public key encoding"))?,
            _ => return Err(JwtError::Signing("unexpected ES256 public key encoding")),
        };
        let jwks = serde_json::json!({
            "keys": [{
                "kty": "EC",
                "crv": "P-256",
                "kid": kid,
                "use": "sig",
                "alg": "ES256",
                "x": BASE64URL.encode(x),
                "y": BASE64URL.encode(y),
            }]
        })
        .to_string();
        Ok(Self {
            kid: kid.to_owned(),
            key_pair,
            rng,
            jwks,
        })
    }

    /// The key's id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWKS document, for the provider that trusts this signer.
    pub fn jwks(&self) -> String {
        self.jwks.clone()
    }

    /// Signs `claims` (a JSON object) under the header `{"alg":"ES256","typ":"JWT","kid":…}`.
    pub fn sign(&self, claims: &Value) -> Result<String, JwtError> {
        if !claims.is_object() {
            return Err(JwtError::Signing("JWT claims must be a JSON object"));
        }
        self.sign_payload(claims.to_string().as_bytes())
    }

    /// Signs raw payload bytes, so tests can also sign JSON that `Value` cannot hold.
    fn sign_payload(&self, payload: &[u8]) -> Result<String, JwtError> {
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let mut token = BASE64URL.encode(header.to_string());
        token.push('.');
        token.push_str(&BASE64URL.encode(payload));
        let signature = self
            .key_pair
            .sign(&self.rng, token.as_bytes())
            .map_err(|_| JwtError::Signing("could not sign the JWT"))?;
        token.push('.');
        token.push_str(&BASE64URL.encode(signature.as_ref()));
        Ok(token)
    }
}

impl fmt::Debug for Es256Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Es256Signer")
            .field("kid", &self.kid)
            .field("key", &"<redacted>")
            .finish()
    }
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

/// Decodes one base64url segment holding a JSON object of at most `max_bytes`.
fn decode_object(
    segment: &str,
    max_bytes: usize,
    name: &str,
) -> Result<Map<String, Value>, JwtError> {
    // Four characters carry three bytes: refuse before decoding anything too large.
    if segment.len() / 4 * 3 > max_bytes {
        return Err(JwtError::malformed(&format!("the {name} is too large")));
    }
    let bytes = BASE64URL
        .decode(segment)
        .map_err(|_| JwtError::malformed(&format!("the {name} is not base64url")))?;
    match parse_json(&bytes) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(JwtError::malformed(&format!(
            "the {name} is not a JSON object (or nests too deep or repeats a member name)"
        ))),
    }
}

/// Parses JSON strictly: at most [`MAX_JSON_DEPTH`] levels, no repeated member names, nothing
/// after the value. The error carries no detail, since serde's could quote the input.
fn parse_json(bytes: &[u8]) -> Result<Value, ()> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue {
        depth_left: MAX_JSON_DEPTH,
    }
    .deserialize(&mut deserializer)
    .map_err(|_| ())?;
    deserializer.end().map_err(|_| ())?;
    Ok(value)
}

/// A [`Value`] seed that refuses duplicate member names and nesting deeper than
/// `depth_left`.
#[derive(Clone, Copy)]
struct StrictValue {
    depth_left: usize,
}

impl StrictValue {
    /// The seed for the members of an array or object, if one more level is allowed.
    fn nested<E: de::Error>(self) -> Result<Self, E> {
        self.depth_left
            .checked_sub(1)
            .map(|depth_left| Self { depth_left })
            .ok_or_else(|| E::custom("JSON nests too deep"))
    }
}

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let mut object = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            if object.contains_key(&name) {
                return Err(de::Error::custom("repeated member name"));
            }
            let value = map.next_value_seed(inner)?;
            object.insert(name, value);
        }
        Ok(Value::Object(object))
    }
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

fn optional_jwk_string<'a>(
    key: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, JwtError> {
    match key.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(JwtError::jwks(&format!("\"{name}\" must be a string"))),
    }
}

fn required_b64_member(key: &Map<String, Value>, name: &str) -> Result<Vec<u8>, JwtError> {
    let Some(text) = optional_jwk_string(key, name)? else {
        return Err(JwtError::jwks(&format!("a key is missing \"{name}\"")));
    };
    BASE64URL
        .decode(text)
        .map_err(|_| JwtError::jwks(&format!("\"{name}\" must be unpadded base64url")))
}

fn strip_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use proptest::prelude::*;
    use ring::signature::{
        RsaEncoding, RsaKeyPair, RSA_PKCS1_SHA256, RSA_PKCS1_SHA384, RSA_PKCS1_SHA512,
    };
    use serde_json::json;

    // A 2048-bit RSA key for these tests only; it protects nothing. Generated once with
    // `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -outform DER`, converted
    // to PKCS#8 with `openssl pkcs8 -topk8 -nocrypt -inform DER -outform DER`, then base64.
    const TEST_ONLY_RSA_PKCS8_B64: &str = "\
        MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCqL9/G1MmTFe8D7ORevldAFYV5655/EV8FAr1i\
        B+dUFIFb+HTH1xR5MifXcTUCLcrpE8cJWYmdpWy19VZRRe6y4h3N5WtR+ruXY1sJvzYBtfcMIhuV/0RosA7mxA3K\
        msIcPkj1GZqo/zBbXh8kouxHKZre7HgsnR0vooVXJWCGZnl7IFTywLi/6EfsH3OH+mG7nf07/Jx16tsaM2nyK+Fa\
        Q5K2zsmIOQBtRNrKLoWa/c2YDwTwo3PvCqUpvrmI1Y4qN8RGFz8ZdVKDlSGN7LarG6V7CMJlX+rhWt2gzoPSMVDk\
        6R6Rqpsddhkj02iPwCyWQJUW55beRsnenE5jVXmfAgMBAAECggEARXtDNNWmMG9ZhHRAbm/uhkLjGjo4nO82KIEM\
        WcwZRUoT4D0pTHeCq9Ju0rYs6qVQfOUusyIDncGuhwFRit/uysinW2rpbHBeCzosrmeLAJrOcH0yXwR3ZPhQNSXg\
        7ZFOY6KIPc0EyC9bikn8lAQSTCFv0cigbbJ9enezUbd4V5Yu+LfD1h+1aYppybCaZOneWKnPBDO5FqpeBSkqgBT/\
        dGdR13X02cwjRQI1ND1cthJph/AAXaw6aFFNA9nP/mmBIISwTwqD5WL+Dl/vah0DqSo6mXXU6E5zRQV3S65mwRJK\
        XomfTAca4dmiOdrg+s1gDlFTyaf3xkbejOdo3q5a7QKBgQDfcS0I8gdp0KUkRM2La4OmzXz7HSlFU//Su54CEtjs\
        E4ujOUDpTbgzzjCUJKPW+PGO0V/Ad+X5weD/YxXOo7qelXFWHwYQiIbGHwCNlc+KRonA/OmB/L5LM1eB2FULtOxu\
        aIF5rZ0JQ7vCNaAcZ9d26G7UgGWPbIyr6H6/gKs3KwKBgQDC/C4aysVSAOR95BmpaJ2tl6ijpe4B+vy9qMZst0/J\
        Oih+QNMhE5Ez3aSfc0z9WjnoCntF96L1nBlWC916xdyXh1zlCOMkdDXgbYkwiSNaAC0lbWOCYwCHzvUdJq1GRXQK\
        Pxg87Q/fI61RLiti8wn2vOscVCELyltOkCNFs1/NXQKBgQDCYxyR1rWaWfkBh5XmP//FwqmDcUgxVzWNaMm69hif\
        sRVfR/TvwzyIXU4n44RiBitoW0BZGjYJxaDvrY0QO6KkSlDSYqUNBylw/RGnG3j1zA4VxjGDc5U9qQntHX5Hc/vo\
        xaQ2blLa94FGIQ8NB04M1YNt/dHdJ8tt1xNFmTPbBwKBgBfihFNL23f8HAE/29Tgt8/37/R78vfTIvqongXbPq7L\
        rQIqNrKqjvLnh67wlNHEJ6vA/PDJMPEdOg1MTsknS6pULpDv0cM5aRAg2tlTMz1nICChkbr7HamFNIlpn3goMdq/\
        d9yevX78A9MZ8L6iPuo2oiZKN/IVy7GH/oofOvERAoGBAKagCKfce3ymXLyXKq1Du2ecGojI3zKPX00OWjOlqYG1\
        2NXldJA5CmcO43tMXumytyGOlaAQltFfEd1yAJmYOJz7namE+CIXfVovKxgwEd4v3/OG+2lmOfesfRSVlsPd1zZC\
        KQLw2RcFUoG77FjN1Mw7x7s88Umqj7bOAIm3ML+H\
    ";

    // Interop vectors from another implementation: PyJWT 2.15.1 on cryptography 48.0.0, run
    // once. It generated an RSA-2048 key (e = 65537) and a P-256 key, exported both with
    // `RSAAlgorithm.to_jwk` / `ECAlgorithm.to_jwk` (adding kid, use and, for RSA, alg), and
    // signed with `jwt.encode(claims, key, algorithm=…, headers={"kid": …})` the claims
    // {"iss": "https://interop.example.com/oidc", "aud": ["other-client",
    // "sts.amazonaws.com"], "sub": "interop-subject", "iat": 1700000000, "nbf": 1700000000,
    // "exp": 4102444800} (RS256, kid py-rsa-1) and the same with aud "sts.amazonaws.com" and
    // sub "system:serviceaccount:default:py" (ES256, kid py-ec-1). exp is 2100-01-01.
    const INTEROP_JWKS: &str = "\
        {\"keys\":[{\"kty\":\"RSA\",\"key_ops\":[\"verify\"],\"n\":\"27movjZ2P-pT7RSxPgUmDYMM\
        y_PXw8WrNv-H2e8MaUjlj6iMd62EhGTdVbEMvWFNpdOx5psqmHrQRFTzFJgy9zbQvmwBVF_u\
        apeS2VX3vSSfbQpGWF6bbJkG5tSDlOZLUZyWADMiKtrcs5f-4JoJJ6XKuRzwLgqOnNz8flio\
        0hljcRi6z-MIzpTNWqR9wY6y_m2Rvs1JopdZvSsAuGrCGVN2He5Pmd98XJJsZm5WWhEnl8K8\
        Y_m1nW-vGA7B_NjVwYqJecg6zSNT9giXfKyfuGsmbf9RqgcHYekN1CLcEMtnJ7mCp29ywQTh\
        tQl1W27rk8MTv9f_NckJ3hs-fRTEBw\",\"e\":\"AQAB\",\"kid\":\"py-rsa-1\",\"use\":\"sig\",\
        \"alg\":\"RS256\"},{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"ZFw6HQqfvTaeIyzgsWorgfUBQV\
        EABOE8NX0ESCZJ7mo\",\"y\":\"rkDKy7hZGlkyd8yz5MIs6nqyjb2FToEyfjd9dOvKqag\",\"ki\
        d\":\"py-ec-1\",\"use\":\"sig\"}]}\
    ";
    const INTEROP_RS256_TOKEN: &str = "\
        eyJhbGciOiJSUzI1NiIsImtpZCI6InB5LXJzYS0xIiwidHlwIjoiSldUIn0.eyJpc3MiOiJodHRwczovL2ludGVy\
        b3AuZXhhbXBsZS5jb20vb2lkYyIsImF1ZCI6WyJvdGhlci1jbGllbnQiLCJzdHMuYW1hem9uYXdzLmNvbSJdLCJz\
        dWIiOiJpbnRlcm9wLXN1YmplY3QiLCJpYXQiOjE3MDAwMDAwMDAsIm5iZiI6MTcwMDAwMDAwMCwiZXhwIjo0MTAy\
        NDQ0ODAwfQ.YSHhBFaFCyW1qx9f5iroXeCwNVWCBwJXi6fjzAzfP_GhVALt4K5wlrfM7Spkfsrn77j-AjtBseh3m\
        55IcaNNumpg6Xp9B9ua9j0PUInNIF0aKQlzN1lZDtNfmgucwLcv9fdZvRtXoiVhH43-1pT8B2tIAdGqSaNNevcJc\
        aVkPn8mRW2HS0J5m8eiSdXvHbg08Kl6FL6fMAhP9QSV04xoTpJHxrRtc7vNRzlxaJqm89t8E_GzELdcvElirTGRY\
        hPFwsdoK9jK8QNJj--j1u1WI0EaLEkI_eGuaTWLPU2g1B5Gz3CLaFOpaRkzN0fPc6YKqfgOrUNZMhksMLSVH4PEV\
        Q\
    ";
    const INTEROP_ES256_TOKEN: &str = "\
        eyJhbGciOiJFUzI1NiIsImtpZCI6InB5LWVjLTEiLCJ0eXAiOiJKV1QifQ.eyJpc3MiOiJodHRwczovL2ludGVyb\
        3AuZXhhbXBsZS5jb20vb2lkYyIsImF1ZCI6InN0cy5hbWF6b25hd3MuY29tIiwic3ViIjoic3lzdGVtOnNlcnZpY\
        2VhY2NvdW50OmRlZmF1bHQ6cHkiLCJpYXQiOjE3MDAwMDAwMDAsIm5iZiI6MTcwMDAwMDAwMCwiZXhwIjo0MTAyN\
        DQ0ODAwfQ.UPV8TUlUpFcKJr3iVzpNSZtX5gwme2_6evudEDFJExcC3A66adDjESFVpGn_phoy5ySybEurVJonJm\
        gNAkA7EQ\
    ";

    const INTEROP_ISSUER: &str = "https://interop.example.com/oidc";

    /// 2025-06-15T15:06:40Z.
    const NOW: i64 = 1_750_000_000;
    const ISSUER: &str = "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE";
    const CLIENT: &str = "sts.amazonaws.com";
    const NO_KEY: &str = "Couldn't retrieve verification key from your identity provider,  \
                          please reference AssumeRoleWithWebIdentity documentation for \
                          requirements";

    fn now() -> Timestamp {
        Timestamp::from_epoch_seconds(NOW)
    }

    fn clients() -> Vec<String> {
        vec![CLIENT.to_owned()]
    }

    fn irsa_claims() -> Value {
        json!({
            "iss": ISSUER,
            "aud": CLIENT,
            "sub": "system:serviceaccount:default:my-sa",
            "iat": NOW - 10,
            "exp": NOW + 3600,
        })
    }

    fn with(mut claims: Value, name: &str, value: Value) -> Value {
        claims[name] = value;
        claims
    }

    fn without(mut claims: Value, name: &str) -> Value {
        claims.as_object_mut().unwrap().remove(name);
        claims
    }

    fn check(token: &str, jwks: &Jwks) -> Result<WebIdentityClaims, JwtError> {
        UnverifiedToken::parse(token)?.verify(jwks, ISSUER, &clients(), now())
    }

    fn b64(bytes: impl AsRef<[u8]>) -> String {
        BASE64URL.encode(bytes)
    }

    fn unsigned_input(header: &Value, claims: &Value) -> String {
        format!("{}.{}", b64(header.to_string()), b64(claims.to_string()))
    }

    fn signer(kid: &str) -> (Es256Signer, Jwks) {
        let signer = Es256Signer::generate(kid).unwrap();
        let jwks = Jwks::parse(&signer.jwks()).unwrap();
        (signer, jwks)
    }

    fn rsa_key() -> RsaKeyPair {
        RsaKeyPair::from_pkcs8(&STANDARD.decode(TEST_ONLY_RSA_PKCS8_B64).unwrap()).unwrap()
    }

    fn rsa_components(key: &RsaKeyPair) -> RsaPublicKeyComponents<Vec<u8>> {
        key.public().into()
    }

    /// The public JWK of `key`, built from ring's own view of the key.
    fn rsa_jwk(key: &RsaKeyPair, kid: Option<&str>) -> Value {
        let components = rsa_components(key);
        let mut jwk = json!({"kty": "RSA", "n": b64(&components.n), "e": b64(&components.e)});
        if let Some(kid) = kid {
            jwk["kid"] = json!(kid);
        }
        jwk
    }

    fn jwks_of(keys: &[Value]) -> Jwks {
        Jwks::parse(&json!({ "keys": keys }).to_string()).unwrap()
    }

    fn rsa_sign(
        key: &RsaKeyPair,
        encoding: &'static dyn RsaEncoding,
        header: &Value,
        claims: &Value,
    ) -> String {
        let input = unsigned_input(header, claims);
        let mut signature = vec![0; key.public().modulus_len()];
        key.sign(
            encoding,
            &SystemRandom::new(),
            input.as_bytes(),
            &mut signature,
        )
        .unwrap();
        format!("{input}.{}", b64(signature))
    }

    fn assert_invalid(result: Result<WebIdentityClaims, JwtError>, message: &str) {
        let error = result.unwrap_err();
        assert_eq!(error.code(), "InvalidIdentityToken");
        assert_eq!(error.to_string(), message);
    }

    fn assert_malformed(result: Result<WebIdentityClaims, JwtError>) {
        let error = result.unwrap_err();
        assert_eq!(error.code(), "InvalidIdentityToken");
        assert!(
            error
                .to_string()
                .starts_with("The web identity token is not a valid JWT: "),
            "{error}"
        );
    }

    #[test]
    fn es256_round_trip() {
        let (signer, jwks) = signer("k1");
        let token = signer.sign(&irsa_claims()).unwrap();
        let parsed = UnverifiedToken::parse(&token).unwrap();
        assert_eq!(parsed.issuer(), ISSUER);
        let claims = parsed.verify(&jwks, ISSUER, &clients(), now()).unwrap();
        assert_eq!(claims.issuer, ISSUER);
        assert_eq!(claims.subject, "system:serviceaccount:default:my-sa");
        assert_eq!(claims.audience, CLIENT);
        assert_eq!(
            claims.issued_at,
            Some(Timestamp::from_epoch_seconds(NOW - 10))
        );
        assert_eq!(claims.expires_at, Timestamp::from_epoch_seconds(NOW + 3600));
        assert_eq!(jwks.len(), 1);
        assert_eq!(jwks.kids().collect::<Vec<_>>(), ["k1"]);
        // The header is the documented one.
        let header = token.split('.').next().unwrap();
        let header: Value = serde_json::from_slice(&BASE64URL.decode(header).unwrap()).unwrap();
        assert_eq!(header, json!({"alg": "ES256", "typ": "JWT", "kid": "k1"}));
    }

    #[test]
    fn rs256_rs384_rs512_round_trip_with_fixed_key() {
        let key = rsa_key();
        let jwks = jwks_of(&[rsa_jwk(&key, Some("rsa-1"))]);
        let encodings: [(&str, &'static dyn RsaEncoding); 3] = [
            ("RS256", &RSA_PKCS1_SHA256),
            ("RS384", &RSA_PKCS1_SHA384),
            ("RS512", &RSA_PKCS1_SHA512),
        ];
        for (alg, encoding) in encodings {
            let header = json!({"alg": alg, "kid": "rsa-1", "typ": "JWT"});
            let token = rsa_sign(&key, encoding, &header, &irsa_claims());
            let claims = check(&token, &jwks).unwrap();
            assert_eq!(
                claims.subject, "system:serviceaccount:default:my-sa",
                "{alg}"
            );
        }
        // A signature made with one hash does not pass as another.
        let header = json!({"alg": "RS384", "kid": "rsa-1"});
        let forged = rsa_sign(&key, &RSA_PKCS1_SHA256, &header, &irsa_claims());
        assert_invalid(
            check(&forged, &jwks),
            "The signature of the web identity token is invalid",
        );
    }

    #[test]
    fn pyjwt_interop_vectors_verify() {
        let jwks = Jwks::parse(INTEROP_JWKS).unwrap();
        assert_eq!(jwks.len(), 2);
        let at = now();
        let clients = clients();

        let rs = UnverifiedToken::parse(INTEROP_RS256_TOKEN).unwrap();
        assert_eq!(rs.issuer(), INTEROP_ISSUER);
        let rs = rs.verify(&jwks, INTEROP_ISSUER, &clients, at).unwrap();
        assert_eq!(rs.subject, "interop-subject");
        assert_eq!(rs.audience, "sts.amazonaws.com");
        assert_eq!(rs.expires_at, Timestamp::from_epoch_seconds(4_102_444_800));
        assert_eq!(
            rs.issued_at,
            Some(Timestamp::from_epoch_seconds(1_700_000_000))
        );
        assert!(rs.claims.contains(&(
            "aud".to_owned(),
            vec!["other-client".to_owned(), "sts.amazonaws.com".to_owned()]
        )));

        let es = UnverifiedToken::parse(INTEROP_ES256_TOKEN).unwrap();
        let es = es.verify(&jwks, INTEROP_ISSUER, &clients, at).unwrap();
        assert_eq!(es.subject, "system:serviceaccount:default:py");
        assert_eq!(es.audience, "sts.amazonaws.com");

        // Each verifies only with its own key.
        let rsa_only = Jwks::parse(&{
            let mut doc: Value = serde_json::from_str(INTEROP_JWKS).unwrap();
            doc["keys"].as_array_mut().unwrap().truncate(1);
            doc.to_string()
        })
        .unwrap();
        let es = UnverifiedToken::parse(INTEROP_ES256_TOKEN).unwrap();
        assert_invalid(es.verify(&rsa_only, INTEROP_ISSUER, &clients, at), NO_KEY);
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        let (signer, jwks) = signer("k");
        let issuer = "https://i.example";
        let claims = json!({"iss": issuer, "aud": "a", "sub": "s", "exp": NOW + 100});
        let token = signer.sign(&claims).unwrap();
        let clients = vec!["a".to_owned()];
        let verify = |text: &str| {
            UnverifiedToken::parse(text).and_then(|t| t.verify(&jwks, issuer, &clients, now()))
        };
        assert!(verify(&token).is_ok());
        let signature_segment = token.rsplit('.').next().unwrap().to_owned();
        let mut tried = 0;
        for index in 0..token.len() {
            for bit in 0..8 {
                let mut bytes = token.clone().into_bytes();
                bytes[index] ^= 1 << bit;
                // A flip into a non-ASCII byte is not UTF-8; a caller could only ever hand
                // us its lossy form, so that is what is tried.
                let flipped = String::from_utf8_lossy(&bytes).into_owned();
                assert_ne!(flipped, token);
                let error = verify(&flipped).expect_err("a flipped token verified");
                assert!(!error.to_string().contains(&signature_segment));
                tried += 1;
            }
        }
        assert_eq!(tried, token.len() * 8);
    }

    #[test]
    fn padding_whitespace_and_non_canonical_base64_are_rejected() {
        let (signer, jwks) = signer("k1");
        let token = signer.sign(&irsa_claims()).unwrap();
        assert!(check(&token, &jwks).is_ok());
        let (input, signature) = token.rsplit_once('.').unwrap();
        // 64 signature bytes take 86 characters; padded base64 would add "==".
        assert_eq!(signature.len(), 86);
        for bad in [
            format!("{token}=="),
            format!("{input}.\n{signature}"),
            format!("{input}. {signature}"),
            format!("{token} "),
            format!(" {token}"),
            token.replacen('.', "=.", 1),
            // The standard alphabet's '+' and '/' are not base64url.
            format!("{input}.{}+", &signature[..signature.len() - 1]),
            format!("{input}.{}/", &signature[..signature.len() - 1]),
        ] {
            assert_malformed(check(&bad, &jwks));
        }
        // The last character carries 2 bits of data and 4 zero bits. Setting one of those
        // zero bits gives a string a lenient decoder maps to the same signature.
        const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = signature.chars().last().unwrap();
        let position = ALPHABET.find(last).unwrap();
        let twin = ALPHABET.chars().nth(position ^ 1).unwrap();
        let twin_signature = format!("{}{twin}", &signature[..signature.len() - 1]);
        let lenient = GeneralPurpose::new(
            &alphabet::URL_SAFE,
            GeneralPurposeConfig::new()
                .with_encode_padding(false)
                .with_decode_padding_mode(DecodePaddingMode::Indifferent)
                .with_decode_allow_trailing_bits(true),
        );
        assert_eq!(
            lenient.decode(&twin_signature).unwrap(),
            lenient.decode(signature).unwrap()
        );
        assert_malformed(check(&format!("{input}.{twin_signature}"), &jwks));
    }

    #[test]
    fn unknown_kid_and_foreign_key_are_rejected() {
        let (signer_1, _) = signer("k1");
        let (_, jwks_2) = signer("k2");
        let (_, other_k1) = signer("k1");
        let token = signer_1.sign(&irsa_claims()).unwrap();
        assert_invalid(check(&token, &jwks_2), NO_KEY);
        assert_invalid(
            check(&token, &other_k1),
            "The signature of the web identity token is invalid",
        );
        assert_invalid(check(&token, &Jwks::default()), NO_KEY);
    }

    #[test]
    fn alg_none_is_rejected() {
        let (_, jwks) = signer("k1");
        for alg in ["none", "None", "NONE", ""] {
            let header = json!({"alg": alg, "kid": "k1"});
            let input = unsigned_input(&header, &irsa_claims());
            for signature in ["", "AAAA"] {
                let result = check(&format!("{input}.{signature}"), &jwks);
                assert_invalid(
                    result,
                    "The web identity token must be signed with RS256, RS384, RS512, ES256 or ES384",
                );
            }
        }
        // Without an alg at all.
        let input = unsigned_input(&json!({"kid": "k1"}), &irsa_claims());
        assert_malformed(check(&format!("{input}.AAAA"), &jwks));
    }

    #[test]
    fn hs256_with_the_rsa_public_key_as_secret_is_rejected() {
        let key = rsa_key();
        let jwk = rsa_jwk(&key, Some("rsa-1"));
        let jwks_text = json!({ "keys": [jwk] }).to_string();
        let jwks = Jwks::parse(&jwks_text).unwrap();
        let components = rsa_components(&key);
        let n_text = jwk["n"].as_str().unwrap().to_owned();
        for (alg, hmac_alg) in [
            ("HS256", ring::hmac::HMAC_SHA256),
            ("HS384", ring::hmac::HMAC_SHA384),
        ] {
            let header = json!({"alg": alg, "kid": "rsa-1"});
            let input = unsigned_input(&header, &irsa_claims());
            for secret in [
                components.n.as_slice(),
                n_text.as_bytes(),
                jwks_text.as_bytes(),
            ] {
                let tag =
                    ring::hmac::sign(&ring::hmac::Key::new(hmac_alg, secret), input.as_bytes());
                let token = format!("{input}.{}", b64(tag.as_ref()));
                assert_invalid(
                    check(&token, &jwks),
                    "The web identity token must be signed with RS256, RS384, RS512, ES256 or ES384",
                );
            }
        }
    }

    #[test]
    fn algorithm_must_match_the_key() {
        let key = rsa_key();
        let (signer, ec_jwks) = signer("k1");
        let mismatch = "The signing algorithm of the web identity token does not match its \
                        verification key";
        // RS256 naming the EC key, with a genuine RSA signature.
        let token = rsa_sign(
            &key,
            &RSA_PKCS1_SHA256,
            &json!({"alg": "RS256", "kid": "k1"}),
            &irsa_claims(),
        );
        assert_invalid(check(&token, &ec_jwks), mismatch);
        // Without a kid there is no key of the right type at all.
        let token = rsa_sign(
            &key,
            &RSA_PKCS1_SHA256,
            &json!({"alg": "RS256"}),
            &irsa_claims(),
        );
        assert_invalid(check(&token, &ec_jwks), NO_KEY);
        // An RSA key pinned to RS384 refuses RS256.
        let mut jwk = rsa_jwk(&key, Some("rsa-1"));
        jwk["alg"] = json!("RS384");
        let pinned = jwks_of(&[jwk]);
        let token = rsa_sign(
            &key,
            &RSA_PKCS1_SHA256,
            &json!({"alg": "RS256", "kid": "rsa-1"}),
            &irsa_claims(),
        );
        assert_invalid(check(&token, &pinned), mismatch);
        // ES384 against a P-256 key.
        let es = signer.sign(&irsa_claims()).unwrap();
        let (_, payload) = es.split_once('.').unwrap();
        let relabelled = format!(
            "{}.{payload}",
            b64(json!({"alg": "ES384", "kid": "k1"}).to_string())
        );
        assert_invalid(check(&relabelled, &ec_jwks), mismatch);
        // A key whose alg contradicts its type is a broken JWKS.
        let mut doc: Value = serde_json::from_str(&signer.jwks()).unwrap();
        doc["keys"][0]["alg"] = json!("RS256");
        let error = Jwks::parse(&doc.to_string()).unwrap_err();
        assert_eq!(error.code(), "InvalidInput");
    }

    #[test]
    fn token_without_kid_uses_the_only_key_of_its_type() {
        let key = rsa_key();
        let (ec_signer, ec_jwks) = signer("ec");
        let ec_jwk = serde_json::from_str::<Value>(&ec_signer.jwks()).unwrap()["keys"][0].clone();
        // One RSA key (without a kid) next to an EC key.
        let one_rsa = jwks_of(&[rsa_jwk(&key, None), ec_jwk]);
        assert_eq!(one_rsa.len(), 2);
        let token = rsa_sign(
            &key,
            &RSA_PKCS1_SHA256,
            &json!({"alg": "RS256"}),
            &irsa_claims(),
        );
        assert!(check(&token, &one_rsa).is_ok());
        let two_rsa = jwks_of(&[rsa_jwk(&key, None), rsa_jwk(&key, Some("other"))]);
        assert_invalid(check(&token, &two_rsa), NO_KEY);
        assert_invalid(check(&token, &ec_jwks), NO_KEY);
    }

    #[test]
    fn rsa_modulus_with_leading_zero_is_accepted() {
        let key = rsa_key();
        let components = rsa_components(&key);
        let mut n = vec![0u8];
        n.extend_from_slice(&components.n);
        let jwks =
            jwks_of(&[json!({"kty": "RSA", "kid": "z", "n": b64(&n), "e": b64(&components.e)})]);
        let token = rsa_sign(
            &key,
            &RSA_PKCS1_SHA256,
            &json!({"alg": "RS256", "kid": "z"}),
            &irsa_claims(),
        );
        assert!(check(&token, &jwks).is_ok());
    }

    #[test]
    fn expiry_allows_sixty_seconds_of_skew() {
        let (signer, jwks) = signer("k1");
        let expired = signer
            .sign(&with(irsa_claims(), "exp", json!(NOW - 61)))
            .unwrap();
        let error = check(&expired, &jwks).unwrap_err();
        assert_eq!(error.code(), "ExpiredTokenException");
        assert_eq!(
            error.to_string(),
            "Token expired: current date/time 2025-06-15T15:06:40Z must be before the \
             expiration date/time 2025-06-15T15:05:39Z"
        );
        let late = signer
            .sign(&with(irsa_claims(), "exp", json!(NOW - 59)))
            .unwrap();
        assert!(check(&late, &jwks).is_ok());
        // Exactly at exp + skew the token is expired: "on or after" exp, as RFC 7519 says.
        let boundary = signer
            .sign(&with(irsa_claims(), "exp", json!(NOW - 60)))
            .unwrap();
        assert_eq!(
            check(&boundary, &jwks).unwrap_err().code(),
            "ExpiredTokenException"
        );
        // `now` with a fraction is reported in whole seconds.
        let fraction = Timestamp(now().0 + 500_000_000);
        let error = UnverifiedToken::parse(&expired)
            .unwrap()
            .verify(&jwks, ISSUER, &clients(), fraction)
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("current date/time 2025-06-15T15:06:40Z "),
            "{error}"
        );
    }

    #[test]
    fn nbf_and_iat_may_be_at_most_sixty_seconds_ahead() {
        let (signer, jwks) = signer("k1");
        for claim in ["nbf", "iat"] {
            let ahead = signer
                .sign(&with(irsa_claims(), claim, json!(NOW + 90)))
                .unwrap();
            assert_invalid(
                check(&ahead, &jwks),
                &format!(
                    "The web identity token is not valid yet: its \"{claim}\" is in the future"
                ),
            );
            let slightly = signer
                .sign(&with(irsa_claims(), claim, json!(NOW + 30)))
                .unwrap();
            assert!(check(&slightly, &jwks).is_ok(), "{claim}");
            // The bounds themselves: 60 s ahead passes, 61 s does not.
            let at_bound = signer
                .sign(&with(irsa_claims(), claim, json!(NOW + 60)))
                .unwrap();
            assert!(check(&at_bound, &jwks).is_ok(), "{claim}");
            let past_bound = signer
                .sign(&with(irsa_claims(), claim, json!(NOW + 61)))
                .unwrap();
            assert!(check(&past_bound, &jwks).is_err(), "{claim}");
        }
    }

    #[test]
    fn issuer_must_match_exactly() {
        let (signer, jwks) = signer("k1");
        let token = signer.sign(&irsa_claims()).unwrap();
        let expected = "No OpenIDConnect provider found in your account for \
                        https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE";
        for url in [
            "https://other.example",
            "https://OIDC.eks.us-east-1.amazonaws.com/id/EXAMPLE",
            "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE/",
            "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE",
        ] {
            let result =
                UnverifiedToken::parse(&token)
                    .unwrap()
                    .verify(&jwks, url, &clients(), now());
            assert_invalid(result, expected);
        }
        // The echoed issuer is printable and bounded.
        let long = format!("https://x.example/{}\n", "a".repeat(400));
        let error = JwtError::no_provider(&long);
        let message = error.to_string();
        assert!(!message.contains('\n'));
        assert_eq!(
            message.chars().count(),
            "No OpenIDConnect provider found in your account for ".len() + 255
        );
    }

    #[test]
    fn audience_must_hold_a_client_id() {
        let (signer, jwks) = signer("k1");
        let token = signer.sign(&irsa_claims()).unwrap();
        let result = UnverifiedToken::parse(&token).unwrap().verify(
            &jwks,
            ISSUER,
            &["other".to_owned()],
            now(),
        );
        assert_invalid(result, "Incorrect token audience");
        let result = UnverifiedToken::parse(&token)
            .unwrap()
            .verify(&jwks, ISSUER, &[], now());
        assert_invalid(result, "Incorrect token audience");

        let listed = signer
            .sign(&with(
                irsa_claims(),
                "aud",
                json!(["first", CLIENT, "last"]),
            ))
            .unwrap();
        let claims = check(&listed, &jwks).unwrap();
        assert_eq!(claims.audience, CLIENT);
        let many = vec!["last".to_owned(), "first".to_owned()];
        let claims = UnverifiedToken::parse(&listed)
            .unwrap()
            .verify(&jwks, ISSUER, &many, now())
            .unwrap();
        assert_eq!(
            claims.audience, "first",
            "the first audience of the token that is a client id"
        );

        let empty = signer.sign(&with(irsa_claims(), "aud", json!([]))).unwrap();
        assert_invalid(check(&empty, &jwks), "Incorrect token audience");
        let numeric = signer
            .sign(&with(irsa_claims(), "aud", json!([CLIENT, 1])))
            .unwrap();
        assert_malformed(check(&numeric, &jwks));
    }

    #[test]
    fn timestamps_must_be_integers() {
        let (signer, jwks) = signer("k1");
        for claim in ["exp", "nbf", "iat"] {
            let base = NOW + if claim == "exp" { 3600 } else { 0 };
            for value in [
                json!(base as f64),
                json!(base.to_string()),
                json!(null),
                json!(true),
            ] {
                let token = signer
                    .sign(&with(irsa_claims(), claim, value.clone()))
                    .unwrap();
                assert_malformed(check(&token, &jwks));
            }
        }
        // Exponent and fraction spellings, which `Value` would not keep as written.
        for exp in [
            "1.7500036e9",
            "1750003600.0",
            "1750003600.5",
            "18446744073709551615",
        ] {
            let payload = format!(r#"{{"iss":"{ISSUER}","aud":"{CLIENT}","sub":"s","exp":{exp}}}"#);
            let token = signer.sign_payload(payload.as_bytes()).unwrap();
            assert_malformed(check(&token, &jwks));
        }
        let payload =
            format!(r#"{{"iss":"{ISSUER}","aud":"{CLIENT}","sub":"s","exp":1750003600}}"#);
        assert!(check(&signer.sign_payload(payload.as_bytes()).unwrap(), &jwks).is_ok());
    }

    #[test]
    fn required_claims_must_be_present() {
        let (signer, jwks) = signer("k1");
        for claim in ["iss", "sub", "aud", "exp"] {
            let token = signer.sign(&without(irsa_claims(), claim)).unwrap();
            let error = UnverifiedToken::parse(&token).unwrap_err();
            assert_eq!(error.code(), "InvalidIdentityToken");
            assert!(
                error.to_string().contains(&format!("\"{claim}\"")),
                "{error}"
            );
        }
        let empty_sub = signer.sign(&with(irsa_claims(), "sub", json!(""))).unwrap();
        assert_malformed(check(&empty_sub, &jwks));
        let numeric_sub = signer.sign(&with(irsa_claims(), "sub", json!(7))).unwrap();
        assert_malformed(check(&numeric_sub, &jwks));
        // iat and nbf are optional.
        let bare = signer.sign(&without(irsa_claims(), "iat")).unwrap();
        assert_eq!(check(&bare, &jwks).unwrap().issued_at, None);
    }

    #[test]
    fn token_length_follows_the_api_constraint() {
        let long = "a".repeat(MAX_TOKEN_CHARS + 1);
        let error = UnverifiedToken::parse(&long).unwrap_err();
        assert_eq!(error.code(), "ValidationError");
        assert!(error.to_string().ends_with("less than or equal to 20000"));
        // Characters, not bytes, are counted.
        let wide = "é".repeat(MAX_TOKEN_CHARS);
        assert_eq!(
            UnverifiedToken::parse(&wide).unwrap_err().code(),
            "InvalidIdentityToken"
        );
        let at_limit = "a".repeat(MAX_TOKEN_CHARS);
        assert_eq!(
            UnverifiedToken::parse(&at_limit).unwrap_err().code(),
            "InvalidIdentityToken"
        );
        for short in ["", "a.b"] {
            assert_eq!(
                UnverifiedToken::parse(short).unwrap_err().code(),
                "ValidationError"
            );
        }
        // A signed token past the limit is refused before anything is decoded.
        let (signer, _) = signer("k1");
        let padded = with(irsa_claims(), "pad", json!("x".repeat(MAX_TOKEN_CHARS)));
        let token = signer.sign(&padded).unwrap();
        assert_eq!(
            UnverifiedToken::parse(&token).unwrap_err().code(),
            "ValidationError"
        );
    }

    #[test]
    fn keys_not_for_signatures_are_ignored() {
        let (signer, _) = signer("k1");
        let token = signer.sign(&irsa_claims()).unwrap();
        let mut doc: Value = serde_json::from_str(&signer.jwks()).unwrap();
        doc["keys"][0]["use"] = json!("enc");
        let enc = Jwks::parse(&doc.to_string()).unwrap();
        assert!(enc.is_empty());
        assert_invalid(check(&token, &enc), NO_KEY);

        let mut doc: Value = serde_json::from_str(&signer.jwks()).unwrap();
        doc["keys"][0]["key_ops"] = json!(["encrypt"]);
        assert!(Jwks::parse(&doc.to_string()).unwrap().is_empty());
        doc["keys"][0]["key_ops"] = json!(["verify"]);
        assert!(check(&token, &Jwks::parse(&doc.to_string()).unwrap()).is_ok());

        // Unknown key types, curves and algorithms are skipped, not fatal.
        let other = json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"},
            {"kty": "RSA", "alg": "PS256", "n": "AQAB", "e": "AQAB"},
        ]});
        assert!(Jwks::parse(&other.to_string()).unwrap().is_empty());
    }

    #[test]
    fn broken_jwks_are_refused() {
        let (signer, _) = signer("k1");
        let mut doc: Value = serde_json::from_str(&signer.jwks()).unwrap();
        let mut with_private = doc.clone();
        with_private["keys"][0]["d"] = json!("c2VjcmV0");
        let mut short_x = doc.clone();
        short_x["keys"][0]["x"] = json!("AAAA");
        let mut padded_y = doc.clone();
        padded_y["keys"][0]["y"] = json!(format!("{}=", doc["keys"][0]["y"].as_str().unwrap()));
        doc["keys"][0]["x"] = json!(null);
        let oct = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]});
        let too_many = json!({ "keys": vec![json!({"kty": "OKP"}); MAX_JWKS_KEYS + 1] });
        for text in [
            "not json".to_owned(),
            "[]".to_owned(),
            "{}".to_owned(),
            r#"{"keys": {}}"#.to_owned(),
            r#"{"keys": [1]}"#.to_owned(),
            r#"{"keys": [{}]}"#.to_owned(),
            r#"{"keys": [], "keys": []}"#.to_owned(),
            with_private.to_string(),
            short_x.to_string(),
            padded_y.to_string(),
            doc.to_string(),
            oct.to_string(),
            too_many.to_string(),
        ] {
            let error = Jwks::parse(&text).unwrap_err();
            assert_eq!(error.code(), "InvalidInput", "{text}");
            assert!(!error.to_string().contains("c2VjcmV0"));
        }
        assert!(Jwks::parse(r#"{"keys": []}"#).unwrap().is_empty());
    }

    #[test]
    fn json_is_parsed_strictly() {
        let (signer, jwks) = signer("k1");
        // Repeated claim names, also when spelled with an escape.
        for payload in [
            format!(
                r#"{{"iss":"{ISSUER}","aud":"{CLIENT}","sub":"a","sub":"b","exp":{}}}"#,
                NOW + 60
            ),
            format!(
                r#"{{"iss":"{ISSUER}","aud":"{CLIENT}","sub":"a","\u0073ub":"b","exp":{}}}"#,
                NOW + 60
            ),
            // Something after the object.
            format!(
                r#"{{"iss":"{ISSUER}","aud":"{CLIENT}","sub":"a","exp":{}}}x"#,
                NOW + 60
            ),
            format!(r#"[{{"iss":"{ISSUER}"}}]"#),
        ] {
            let token = signer.sign_payload(payload.as_bytes()).unwrap();
            assert_malformed(check(&token, &jwks));
        }
        // Nesting: the payload object plus 15 arrays is allowed, plus 16 is not.
        let nested = |levels: usize| {
            serde_json::from_str::<Value>(&format!("{}{}", "[".repeat(levels), "]".repeat(levels)))
                .unwrap()
        };
        let ok = signer
            .sign(&with(irsa_claims(), "deep", nested(15)))
            .unwrap();
        assert!(check(&ok, &jwks).is_ok());
        let deep = signer
            .sign(&with(irsa_claims(), "deep", nested(16)))
            .unwrap();
        assert_malformed(check(&deep, &jwks));
    }

    #[test]
    fn crit_headers_and_other_shapes_are_rejected() {
        let (signer, jwks) = signer("k1");
        let token = signer.sign(&irsa_claims()).unwrap();
        let (_, rest) = token.split_once('.').unwrap();
        let crit = format!(
            "{}.{rest}",
            b64(json!({"alg": "ES256", "kid": "k1", "crit": ["exp"]}).to_string())
        );
        assert_malformed(check(&crit, &jwks));
        let kid_number = format!(
            "{}.{rest}",
            b64(json!({"alg": "ES256", "kid": 1}).to_string())
        );
        assert_malformed(check(&kid_number, &jwks));
        // JWE compact serialization has five segments; two or four are nothing at all.
        assert_malformed(check(&format!("{token}.AAAA.AAAA"), &jwks));
        assert_malformed(check(&format!("{token}.AAAA"), &jwks));
        assert_malformed(check(rest, &jwks));
        assert_malformed(check(&format!("{token}."), &jwks));
    }

    #[test]
    fn irsa_example() {
        let (signer, jwks) = signer("irsa");
        let claims = with(
            irsa_claims(),
            SESSION_TAGS_CLAIM,
            json!({
                "principal_tags": {"Project": ["Automation"], "CostCenter": "987654"},
                "transitive_tag_keys": ["Project"],
            }),
        );
        let claims = with(claims, "amr", json!(["pwd", "mfa"]));
        let claims = with(claims, "kubernetes.io", json!({"namespace": "default"}));
        let token = signer.sign(&claims).unwrap();
        let verified = check(&token, &jwks).unwrap();
        assert!(verified.claims.contains(&(
            "sub".to_owned(),
            vec!["system:serviceaccount:default:my-sa".to_owned()]
        )));
        assert!(verified
            .claims
            .contains(&("aud".to_owned(), vec!["sts.amazonaws.com".to_owned()])));
        assert!(verified
            .claims
            .contains(&("amr".to_owned(), vec!["pwd".to_owned(), "mfa".to_owned()])));
        let names: Vec<&str> = verified
            .claims
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(
            names,
            ["iss", "aud", "sub", "amr"],
            "numbers and objects are not string claims"
        );
        assert_eq!(
            condition_key_prefix(ISSUER),
            "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE"
        );
        assert_eq!(
            condition_key_prefix(&verified.issuer),
            "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE"
        );
        assert_eq!(
            verified.session_tags,
            [
                ("Project".to_owned(), "Automation".to_owned()),
                ("CostCenter".to_owned(), "987654".to_owned())
            ]
        );
        assert_eq!(verified.transitive_tag_keys, ["Project"]);
    }

    #[test]
    fn malformed_session_tags_are_rejected() {
        let (signer, jwks) = signer("k1");
        for tags in [
            json!({"principal_tags": {"K": ["a", "b"]}}),
            json!({"principal_tags": {"K": []}}),
            json!({"principal_tags": {"K": 1}}),
            json!({"principal_tags": ["K"]}),
            json!({"transitive_tag_keys": "K"}),
            json!({"transitive_tag_keys": [1]}),
            json!([{"principal_tags": {"K": ["v"]}}]),
        ] {
            let token = signer
                .sign(&with(irsa_claims(), SESSION_TAGS_CLAIM, tags.clone()))
                .unwrap();
            assert_malformed(check(&token, &jwks));
        }
    }

    #[test]
    fn debug_output_hides_token_and_key() {
        let (signer, _) = signer("k1");
        let token = signer.sign(&irsa_claims()).unwrap();
        let parsed = UnverifiedToken::parse(&token).unwrap();
        let debug = format!("{parsed:?}");
        for segment in token.split('.') {
            assert!(!debug.contains(segment), "{debug}");
        }
        assert!(!debug.contains("my-sa"));
        assert_eq!(
            format!("{signer:?}"),
            r#"Es256Signer { kid: "k1", key: "<redacted>" }"#
        );
        assert_eq!(signer.kid(), "k1");
        assert!(signer.sign(&json!(["not", "an", "object"])).is_err());
    }

    #[test]
    fn error_codes_and_statuses() {
        assert_eq!(JwtError::Signing("x").code(), "InternalFailure");
        assert_eq!(JwtError::Signing("x").code().http_status(), 500);
        assert_eq!(JwtError::invalid("x").code().http_status(), 400);
        assert_eq!(JwtError::Validation("x".into()).code().http_status(), 400);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            if let Ok(token) = UnverifiedToken::parse(&text) {
                let _ = token.verify(&Jwks::default(), ISSUER, &clients(), now());
            }
            let _ = Jwks::parse(&text);
        }

        #[test]
        fn token_shaped_text_never_verifies(text in "[A-Za-z0-9_-]{0,120}\\.[A-Za-z0-9_-]{0,200}\\.[A-Za-z0-9_-]{0,100}") {
            let jwks = Jwks::parse(INTEROP_JWKS).unwrap();
            if let Ok(token) = UnverifiedToken::parse(&text) {
                prop_assert!(token.verify(&jwks, INTEROP_ISSUER, &clients(), now()).is_err());
            }
        }

        #[test]
        fn json_shaped_segments_never_panic(header in "\\{[ -~]{0,60}\\}", payload in "\\{[ -~]{0,120}\\}") {
            let text = format!("{}.{}.AAAA", b64(&header), b64(&payload));
            if let Ok(token) = UnverifiedToken::parse(&text) {
                prop_assert!(token.verify(&Jwks::default(), ISSUER, &clients(), now()).is_err());
            }
        }
    }
}
