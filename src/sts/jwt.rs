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
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidIdentityToken(_) => "InvalidIdentityToken",
            Self::ExpiredToken { .. } => "ExpiredTokenException",
            Self::Validation(_) => "ValidationError",
            Self::InvalidJwks(_) => "InvalidInput",
            Self::Signing(_) => "InternalFailure",
        }
    }

    /// The HTTP status AWS answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Signing(_) => 500,
            Self::InvalidIdentityToken(_)
            | Self::ExpiredToken { .. }
            | Self::Validation(_)
            | Self::InvalidJwks(_) => 400,
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
            Some(Value::Array(ops)) => {
                if !ops.iter().any(|op| op.as_str() == Some("verify")) {
                    return Ok(None);
                }
            }
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
            && exponent.is_some_and(|x| x >= 3 && x < (1 << 33) && x % 2 == 1);
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
            .ok_or_else(|| JwtError::malformed("it must be ASCII"))?
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

    /// Verifies the signature with `jwks` (the provider's keys), then `iss == issuer_url`,
    /// that `aud` holds one of `client_ids`, and `exp`/`nbf`/`iat` against `now` with
    /// [`CLOCK_SKEW_SECONDS`] of skew.
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

/// The tags claim: `{"principal_tags": {"K": ["v"]}, "transitive_tag_keys": ["K"]}`. A tag
/// value is a one-element array (AWS's documented form) or a plain string; session tags are
/// single-valued, so longer arrays are refused. Tag limits (count, lengths, transitive keys
/// being tag keys) are for the session layer to enforce with STS's own errors.
fn parse_session_tags(value: &Value) -> Result<(Vec<(String, String)>, Vec<String>), JwtError> {
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
mod tests {}
