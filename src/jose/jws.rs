//! Compact JWS: splitting and decoding a token, checking its signature with a [`Jwks`], and
//! signing ES256 tokens for demos and tests.

use std::fmt;

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{Map, Value};

use super::json::parse_json;
use super::jwk::{Algorithm, Jwks};
use super::{JoseError, BASE64URL};

/// The largest decoded JOSE header. Headers are tiny; this leaves room for an `x5c` chain,
/// which is read past, never used.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;

/// A compact JWS split and decoded, its signature not yet checked.
pub struct CompactJws {
    alg: Algorithm,
    kid: Option<String>,
    /// `header.payload`, the bytes the signature covers.
    signing_input: String,
    signature: Vec<u8>,
}

// === impl CompactJws ===

impl CompactJws {
    /// Splits and decodes a compact JWS: exactly three segments, a header and a payload that
    /// are JSON objects (the payload at most `max_payload_bytes`), an algorithm we verify, a
    /// non-empty signature and no `crit` extension. Returns the JWS and its payload; nothing
    /// in either is trusted yet.
    pub fn parse(
        token: &str,
        max_payload_bytes: usize,
    ) -> Result<(Self, Map<String, Value>), JoseError> {
        let mut segments = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(JoseError::malformed(
                "it must be three base64url segments separated by '.'",
            ));
        };
        let header = decode_object(header_b64, MAX_HEADER_BYTES, "header")?;
        let payload = decode_object(payload_b64, max_payload_bytes, "payload")?;
        let Some(Value::String(alg)) = header.get("alg") else {
            return Err(JoseError::malformed("the header has no \"alg\""));
        };
        let alg = Algorithm::from_name(alg).ok_or(JoseError::UnsupportedAlgorithm)?;
        let signature = BASE64URL
            .decode(signature_b64)
            .map_err(|_| JoseError::malformed("the signature is not base64url"))?;
        if signature.is_empty() {
            return Err(JoseError::malformed("the signature is empty"));
        }
        if header.contains_key("crit") {
            return Err(JoseError::malformed(
                "the header lists critical extensions, which are not supported",
            ));
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => {
                return Err(JoseError::malformed(
                    "the header's \"kid\" must be a string",
                ))
            }
        };
        let signing_input = token
            .get(..header_b64.len() + 1 + payload_b64.len())
            .ok_or_else(|| JoseError::malformed("its segments could not be delimited"))?
            .to_owned();
        let jws = Self {
            alg,
            kid,
            signing_input,
            signature,
        };
        Ok((jws, payload))
    }

    /// The header's `alg`.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The header's `kid`, when present.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Checks the signature with the key of `jwks` the header selects.
    pub fn verify(&self, jwks: &Jwks) -> Result<(), JoseError> {
        jwks.verify(
            self.alg,
            self.kid.as_deref(),
            self.signing_input.as_bytes(),
            &self.signature,
        )
    }
}

impl fmt::Debug for CompactJws {
    /// The algorithm and key id only: never the token or its signature.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompactJws")
            .field("alg", &self.alg.name())
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
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
    pub fn generate(kid: &str) -> Result<Self, JoseError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| JoseError::Signing("could not generate an ES256 signing key"))?;
        let key_pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .map_err(|_| {
                    JoseError::Signing("could not load the generated ES256 signing key")
                })?;
        // ring encodes the public key as the uncompressed point 0x04 || x || y.
        let (x, y) = match ring::signature::KeyPair::public_key(&key_pair)
            .as_ref()
            .split_first()
        {
            Some((0x04, xy)) => xy
                .split_at_checked(32)
                .filter(|(x, y)| x.len() == 32 && y.len() == 32)
                .ok_or(JoseError::Signing("unexpected ES256 public key encoding"))?,
            _ => return Err(JoseError::Signing("unexpected ES256 public key encoding")),
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
    pub fn sign(&self, claims: &Value) -> Result<String, JoseError> {
        if !claims.is_object() {
            return Err(JoseError::Signing("JWT claims must be a JSON object"));
        }
        self.sign_payload(claims.to_string().as_bytes())
    }

    /// Signs raw payload bytes, so tests can also sign JSON that `Value` cannot hold.
    pub(crate) fn sign_payload(&self, payload: &[u8]) -> Result<String, JoseError> {
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let mut token = BASE64URL.encode(header.to_string());
        token.push('.');
        token.push_str(&BASE64URL.encode(payload));
        let signature = self
            .key_pair
            .sign(&self.rng, token.as_bytes())
            .map_err(|_| JoseError::Signing("could not sign the JWT"))?;
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

/// Decodes one base64url segment holding a JSON object of at most `max_bytes`.
fn decode_object(
    segment: &str,
    max_bytes: usize,
    name: &str,
) -> Result<Map<String, Value>, JoseError> {
    // Four characters carry three bytes: refuse before decoding anything too large.
    if segment.len() / 4 * 3 > max_bytes {
        return Err(JoseError::malformed(&format!("the {name} is too large")));
    }
    let bytes = BASE64URL
        .decode(segment)
        .map_err(|_| JoseError::malformed(&format!("the {name} is not base64url")))?;
    match parse_json(&bytes) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(JoseError::malformed(&format!(
            "the {name} is not a JSON object (or nests too deep or repeats a member name)"
        ))),
    }
}
