//! JSON Web Keys: a JWKS parsed once into verification keys, and signature checks with them.

use std::fmt;

use base64::Engine as _;
use ring::signature::{
    RsaPublicKeyComponents, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED,
    RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_2048_8192_SHA384, RSA_PKCS1_2048_8192_SHA512,
};
use serde_json::{Map, Value};

use super::json::parse_json;
use super::{JoseError, BASE64URL};

/// The longest JWKS text [`Jwks::parse`] reads. Real key sets are a few kilobytes.
pub const MAX_JWKS_CHARS: usize = 1 << 20;

/// The most keys a JWKS may hold (usable or not): selection tries every key with the
/// token's `kid`, so the set must stay small.
pub const MAX_JWKS_KEYS: usize = 100;

/// A signing algorithm this module verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// ECDSA on P-384 with SHA-384.
    Es384,
}

// === impl Algorithm ===

impl Algorithm {
    /// The algorithm a JOSE `alg` names, when it is one we verify.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "RS256" => Some(Self::Rs256),
            "RS384" => Some(Self::Rs384),
            "RS512" => Some(Self::Rs512),
            "ES256" => Some(Self::Es256),
            "ES384" => Some(Self::Es384),
            _ => None,
        }
    }

    /// The JOSE name (`RS256`, ...).
    pub fn name(self) -> &'static str {
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
    fn parse(value: &Value) -> Result<Option<Self>, JoseError> {
        let Value::Object(key) = value else {
            return Err(JoseError::jwks("each member of \"keys\" must be an object"));
        };
        // A private or symmetric key in a verification key set is a configuration mistake
        // that leaks a secret; refuse it rather than quietly use the public half.
        if ["d", "p", "q", "dp", "dq", "qi", "oth", "k"]
            .iter()
            .any(|member| key.contains_key(*member))
        {
            return Err(JoseError::jwks("the JWKS must contain public keys only"));
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
            Some(_) => return Err(JoseError::jwks("\"key_ops\" must be an array of strings")),
        }
        let Some(kty) = optional_jwk_string(key, "kty")? else {
            return Err(JoseError::jwks("every key needs a \"kty\""));
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
                    return Err(JoseError::jwks("an EC key needs a \"crv\""));
                };
                let Some(curve) = Curve::from_name(crv) else {
                    return Ok(None);
                };
                let x = required_b64_member(key, "x")?;
                let y = required_b64_member(key, "y")?;
                if x.len() != curve.coordinate_len() || y.len() != curve.coordinate_len() {
                    return Err(JoseError::jwks(
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
                return Err(JoseError::jwks(&format!(
                    "a key with \"alg\": \"{}\" must be of the matching type and curve",
                    alg.name()
                )));
            }
        }
        Ok(Some(jwk))
    }

    fn rsa_material(key: &Map<String, Value>) -> Result<Option<KeyMaterial>, JoseError> {
        let n = strip_leading_zeros(required_b64_member(key, "n")?);
        let e = strip_leading_zeros(required_b64_member(key, "e")?);
        let Some(first) = n.first() else {
            return Err(JoseError::jwks("an RSA modulus cannot be zero"));
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
    pub fn parse(text: &str) -> Result<Self, JoseError> {
        if text.len() > MAX_JWKS_CHARS {
            return Err(JoseError::jwks("the document is larger than 1 MiB"));
        }
        let Ok(Value::Object(document)) = parse_json(text.as_bytes()) else {
            return Err(JoseError::jwks("the document must be a JSON object"));
        };
        let Some(Value::Array(members)) = document.get("keys") else {
            return Err(JoseError::jwks("the document must have a \"keys\" array"));
        };
        if members.len() > MAX_JWKS_KEYS {
            return Err(JoseError::jwks("the document may hold at most 100 keys"));
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
    pub fn verify(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), JoseError> {
        let candidates: Vec<&Jwk> = match kid {
            Some(kid) => {
                let named: Vec<&Jwk> = self
                    .keys
                    .iter()
                    .filter(|key| key.kid.as_deref() == Some(kid))
                    .collect();
                if named.is_empty() {
                    return Err(JoseError::NoKey);
                }
                let fitting: Vec<&Jwk> = named.into_iter().filter(|key| key.accepts(alg)).collect();
                if fitting.is_empty() {
                    return Err(JoseError::KeyMismatch);
                }
                fitting
            }
            None => {
                let fitting: Vec<&Jwk> = self.keys.iter().filter(|key| key.accepts(alg)).collect();
                if fitting.len() != 1 {
                    return Err(JoseError::NoKey);
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
            Err(JoseError::BadSignature)
        }
    }
}

// === helpers ===

fn optional_jwk_string<'a>(
    key: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, JoseError> {
    match key.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(JoseError::jwks(&format!("\"{name}\" must be a string"))),
    }
}

fn required_b64_member(key: &Map<String, Value>, name: &str) -> Result<Vec<u8>, JoseError> {
    let Some(text) = optional_jwk_string(key, name)? else {
        return Err(JoseError::jwks(&format!("a key is missing \"{name}\"")));
    };
    BASE64URL
        .decode(text)
        .map_err(|_| JoseError::jwks(&format!("\"{name}\" must be unpadded base64url")))
}

fn strip_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}
