//! Session tokens: stateless, signed, bound to their tenant, and the issuer keyrings that
//! mint and verify them.
//!
//! A token is `iamlet1.<tenant>.<key id>.<payload>.<signature>`: the payload is the session's
//! claims as JSON in unpadded base64url, the signature is Ed25519 over a domain-separation
//! label, the tenant, the key id and the encoded payload, so none of the visible parts can be
//! swapped without breaking it. The algorithm is fixed by the format: nothing in a token
//! chooses how it is verified. An unknown key id fails closed.
//!
//! The secret access key of a session is not in the token: it is derived from the issuer key,
//! the tenant, the access key id and the token's random id, so that a sidecar holding the
//! tenant's issuer keys can check a presented secret (or a SigV4 signature made with it)
//! without any state.

use base64::Engine as _;
use ring::hmac;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

use crate::account::AccountId;

/// The token format's version tag.
const PREFIX: &str = "iamlet1";
/// Domain separation: a signature made for anything else never verifies as a token.
const SIGNATURE_LABEL: &[u8] = b"iamlet session token v1\n";
/// Labels the secret-derivation key so it is unrelated to the signing use of the seed.
const SECRET_LABEL: &[u8] = b"iamlet session secret v1";
/// Tokens longer than this are refused before any work.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;
/// Clock skew tolerated on expiry and issue time.
pub const CLOCK_SKEW_SECONDS: i64 = 60;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Who a session belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum SessionSubject {
    /// A role session (`AssumeRole`, `AssumeRoleWithWebIdentity`).
    Role {
        /// The role's name.
        role_name: String,
        /// The role's unique id (`AROA…`) when the session was issued: a role deleted and
        /// created again under the same name does not inherit its sessions.
        role_id: String,
        /// The session name.
        session_name: String,
        /// True when a role session assumed this role (role chaining).
        chained: bool,
        /// The OIDC provider's ARN, for web-identity sessions.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        federated_provider: Option<String>,
    },
    /// An IAM user's `GetSessionToken` session.
    User {
        /// The user's name.
        user_name: String,
        /// The user's unique id (`AIDA…`) when the session was issued.
        user_id: String,
    },
    /// The root user's `GetSessionToken` session.
    Root,
}

/// What a session token carries: everything later decisions need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionClaims {
    /// The tenant (account id) whose issuer key signed it.
    pub tenant: String,
    /// The session's access key id (`ASIA…`).
    pub access_key_id: String,
    /// A random id, input of the secret's derivation.
    pub token_id: String,
    /// Whose session it is.
    pub subject: SessionSubject,
    /// Issue time, epoch seconds (`aws:TokenIssueTime`).
    pub issued_at: i64,
    /// Expiry, epoch seconds.
    pub expires_at: i64,
    /// `SourceIdentity`, kept through role chaining.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_identity: Option<String>,
    /// When MFA was authenticated, epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa_authenticated_at: Option<i64>,
    /// The inline session policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_policy: Option<String>,
    /// Managed session policies by ARN.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_arns: Vec<String>,
    /// Session tags (passed and inherited), which overlay the role's tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(String, String)>,
    /// The keys of the tags that pass on to chained sessions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transitive_tag_keys: Vec<String>,
}

/// Why a session token cannot be minted or is not accepted. Every way a presented token can be
/// wrong but expiry is the same [`SessionTokenError::Invalid`], so a forger learns nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionTokenError {
    /// Unknown, forged, tampered, foreign or malformed.
    #[error("The security token included in the request is invalid.")]
    Invalid,
    /// A genuine token past its expiry (with the clock skew).
    #[error("The security token included in the request is expired")]
    Expired,
    /// The tenant has no active key to sign with.
    #[error("the tenant has no active issuer key")]
    NoActiveKey,
    /// The claims could not be encoded.
    #[error("cannot encode the session")]
    Encode,
}

/// What the keyring needs of a stored issuer key (the directory's `IssuerKey` provides it):
/// the keyring sits below the directory, so it names the fields instead of the type.
pub trait IssuerKeySource {
    /// The key id carried in tokens.
    fn key_id(&self) -> &str;
    /// The Ed25519 public key.
    fn public_key(&self) -> &[u8];
    /// The Ed25519 private key's 32-byte seed, in standard base64.
    fn private_seed_base64(&self) -> &str;
    /// True while tokens are signed with it.
    fn active(&self) -> bool;
}

/// An issuer key ready to sign and verify, built when a snapshot is built.
pub struct IssuerKeyring {
    keys: Vec<CompiledIssuerKey>,
}

struct CompiledIssuerKey {
    key_id: Box<str>,
    active: bool,
    verifier: UnparsedPublicKey<Vec<u8>>,
    signer: Ed25519KeyPair,
    secret_key: hmac::Key,
}

/// A token whose signature, tenant binding and key id checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The claims.
    pub claims: SessionClaims,
    /// The key id that signed it.
    pub key_id: String,
}

/// Why issuer keys cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("issuer key `{key_id}` is invalid: {reason}")]
pub struct IssuerKeyError {
    /// The key's id.
    pub key_id: String,
    /// Why.
    pub reason: &'static str,
}

// === impl IssuerKeyring ===

impl IssuerKeyring {
    /// Builds the keyring of a tenant. A key whose public half does not belong to its private
    /// half, or whose id is malformed, is refused: a snapshot with such a key is not applied.
    pub fn try_new<K: IssuerKeySource>(keys: &[K]) -> Result<Self, IssuerKeyError> {
        let compiled = keys
            .iter()
            .map(|key| {
                let err = |reason| IssuerKeyError {
                    key_id: key.key_id().to_owned(),
                    reason,
                };
                if !is_key_id(key.key_id()) {
                    return Err(err(
                        "the key id must be 1 to 64 lowercase letters and digits",
                    ));
                }
                let seed = base64::engine::general_purpose::STANDARD
                    .decode(key.private_seed_base64())
                    .map_err(|_| err("the private key is not base64"))?;
                let signer = Ed25519KeyPair::from_seed_and_public_key(&seed, key.public_key())
                    .map_err(|_| err("the public key does not match the private key"))?;
                let secret_key = hmac::Key::new(
                    hmac::HMAC_SHA256,
                    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &seed), SECRET_LABEL).as_ref(),
                );
                Ok(CompiledIssuerKey {
                    key_id: key.key_id().into(),
                    active: key.active(),
                    verifier: UnparsedPublicKey::new(
                        &ED25519,
                        signer.public_key().as_ref().to_vec(),
                    ),
                    signer,
                    secret_key,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { keys: compiled })
    }

    /// True when the tenant has no key to sign with.
    pub fn can_sign(&self) -> bool {
        self.keys.iter().any(|k| k.active)
    }

    /// True when `key_id` is one of the tenant's keys.
    pub fn contains(&self, key_id: &str) -> bool {
        self.key(key_id).is_some()
    }

    fn key(&self, key_id: &str) -> Option<&CompiledIssuerKey> {
        self.keys.iter().find(|k| &*k.key_id == key_id)
    }

    /// Signs `claims` with the active key; returns the token and the session's secret.
    pub fn mint(&self, claims: &SessionClaims) -> Result<(String, String), SessionTokenError> {
        let key = self
            .keys
            .iter()
            .rev()
            .find(|k| k.active)
            .ok_or(SessionTokenError::NoActiveKey)?;
        let payload = serde_json::to_vec(claims).map_err(|_| SessionTokenError::Encode)?;
        let payload = B64.encode(payload);
        let signature = key
            .signer
            .sign(&signed_message(&claims.tenant, &key.key_id, &payload));
        let token = format!(
            "{PREFIX}.{}.{}.{payload}.{}",
            claims.tenant,
            key.key_id,
            B64.encode(signature.as_ref())
        );
        let secret = derive_secret(key, claims);
        Ok((token, secret))
    }

    /// Verifies a token of `tenant` at `now` (epoch seconds): format, key id, signature,
    /// tenant binding, times (with [`CLOCK_SKEW_SECONDS`]). Every failure but expiry is the
    /// same [`SessionTokenError::Invalid`], so a forger learns nothing about which check
    /// failed; expiry is only reported for a genuine token, as `Expired` so that SDKs refresh.
    pub fn verify(
        &self,
        tenant: &str,
        token: &str,
        now: i64,
    ) -> Result<VerifiedToken, SessionTokenError> {
        let parsed = ParsedToken::parse(token).ok_or(SessionTokenError::Invalid)?;
        if parsed.tenant != tenant {
            return Err(SessionTokenError::Invalid);
        }
        let key = self.key(parsed.key_id).ok_or(SessionTokenError::Invalid)?;
        let signature = B64
            .decode(parsed.signature)
            .map_err(|_| SessionTokenError::Invalid)?;
        key.verifier
            .verify(
                &signed_message(parsed.tenant, parsed.key_id, parsed.payload),
                &signature,
            )
            .map_err(|_| SessionTokenError::Invalid)?;
        let payload = B64
            .decode(parsed.payload)
            .map_err(|_| SessionTokenError::Invalid)?;
        let claims: SessionClaims =
            serde_json::from_slice(&payload).map_err(|_| SessionTokenError::Invalid)?;
        if claims.tenant != tenant || !claims.access_key_id.starts_with("ASIA") {
            return Err(SessionTokenError::Invalid);
        }
        if claims.issued_at > now.saturating_add(CLOCK_SKEW_SECONDS) {
            return Err(SessionTokenError::Invalid);
        }
        if now > claims.expires_at.saturating_add(CLOCK_SKEW_SECONDS) {
            return Err(SessionTokenError::Expired);
        }
        Ok(VerifiedToken {
            claims,
            key_id: parsed.key_id.to_owned(),
        })
    }

    /// Checks a presented secret against the one derived for `token`, in constant time.
    pub fn check_secret(
        &self,
        token: &VerifiedToken,
        presented: &str,
    ) -> Result<(), SessionTokenError> {
        let key = self.key(&token.key_id).ok_or(SessionTokenError::Invalid)?;
        let expected = derive_secret(key, &token.claims);
        if constant_time_eq(expected.as_bytes(), presented.as_bytes()) {
            Ok(())
        } else {
            Err(SessionTokenError::Invalid)
        }
    }

    /// The session's secret, for SigV4 verification of requests signed with it.
    pub fn secret(&self, token: &VerifiedToken) -> Result<String, SessionTokenError> {
        let key = self.key(&token.key_id).ok_or(SessionTokenError::Invalid)?;
        Ok(derive_secret(key, &token.claims))
    }
}

impl std::fmt::Debug for IssuerKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| (&*k.key_id, k.active)))
            .finish()
    }
}

/// The tenant a token names, read without verifying it: only to find the keys to verify with.
pub fn token_tenant(token: &str) -> Option<&str> {
    ParsedToken::parse(token).map(|p| p.tenant)
}

struct ParsedToken<'a> {
    tenant: &'a str,
    key_id: &'a str,
    payload: &'a str,
    signature: &'a str,
}

impl<'a> ParsedToken<'a> {
    fn parse(token: &'a str) -> Option<Self> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let mut parts = token.split('.');
        let (prefix, tenant, key_id, payload, signature) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        let well_formed = prefix == PREFIX
            && parts.next().is_none()
            && AccountId::is_valid(tenant)
            && is_key_id(key_id)
            && !payload.is_empty()
            // An Ed25519 signature is 64 bytes: 86 characters unpadded.
            && signature.len() == 86;
        well_formed.then_some(Self {
            tenant,
            key_id,
            payload,
            signature,
        })
    }
}

fn is_key_id(key_id: &str) -> bool {
    (1..=64).contains(&key_id.len())
        && key_id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn signed_message(tenant: &str, key_id: &str, payload: &str) -> Vec<u8> {
    let mut message =
        Vec::with_capacity(SIGNATURE_LABEL.len() + tenant.len() + key_id.len() + payload.len() + 2);
    message.extend_from_slice(SIGNATURE_LABEL);
    message.extend_from_slice(tenant.as_bytes());
    message.push(b'\n');
    message.extend_from_slice(key_id.as_bytes());
    message.push(b'\n');
    message.extend_from_slice(payload.as_bytes());
    message
}

/// 40 characters, like AWS's secrets: 30 bytes of HMAC in standard base64.
fn derive_secret(key: &CompiledIssuerKey, claims: &SessionClaims) -> String {
    let mut input = Vec::with_capacity(64);
    input.extend_from_slice(claims.tenant.as_bytes());
    input.push(0);
    input.extend_from_slice(claims.access_key_id.as_bytes());
    input.push(0);
    input.extend_from_slice(claims.token_id.as_bytes());
    let tag = hmac::sign(&key.secret_key, &input);
    // INVARIANT: an HMAC-SHA256 tag is 32 bytes, so its first 30 always exist; the fallback to
    // the whole tag is unreachable and would still be a secret of the same key.
    let bytes = tag.as_ref().get(..30).unwrap_or(tag.as_ref());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Compares two byte strings in time that depends on their lengths only. The differences of
/// eight bytes at a time are folded into one word, with no branch on the data, and `subtle`
/// makes the last comparison one the optimizer cannot turn into an early exit. (A byte at a
/// time through `subtle` costs a microsecond on a session token, on every request.)
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (a_words, a_rest) = a.as_chunks::<8>();
    let (b_words, b_rest) = b.as_chunks::<8>();
    let mut diff = 0u64;
    for (x, y) in a_words.iter().zip(b_words) {
        diff |= u64::from_ne_bytes(*x) ^ u64::from_ne_bytes(*y);
    }
    for (x, y) in a_rest.iter().zip(b_rest) {
        diff |= u64::from(x ^ y);
    }
    std::hint::black_box(diff).ct_eq(&0).into()
}

#[cfg(test)]
mod tests;
