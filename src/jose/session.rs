//! Session tokens: stateless, signed, bound to their tenant, and the issuer keyrings that
//! mint and verify them.
//!
//! Two formats verify:
//!
//! - `iamlet2.<tenant>.<certificate>.<payload>.<signature>` (minted by sidecars): the
//!   certificate ([`super::certificate`], itself `<issuer key id>.<payload>.<signature>`) is
//!   signed by one of the tenant's issuer keys and certifies a sidecar's issuing key for a
//!   scope and a window; the token's signature is made by that issuing key over a label, the
//!   tenant, the whole certificate and the encoded payload. A verifier needs only the tenant's
//!   issuer *public* keys.
//! - `iamlet1.<tenant>.<key id>.<payload>.<signature>` (minted with the issuer key itself: the
//!   control plane, and sidecars before issue #20): the signature is the issuer key's, over a
//!   label, the tenant, the key id and the encoded payload.
//!
//! In both the payload is the session's claims as JSON in unpadded base64url, and none of the
//! visible parts can be swapped without breaking a signature. The algorithm is fixed by the
//! format: nothing in a token chooses how it is verified. An unknown key id fails closed.
//!
//! The secret access key of a session is not in the token: it is derived from the tenant's
//! session-secret key (one per issuer key, symmetric, see [`IssuerKeySource`]), the tenant, the
//! access key id and the token's random id, so that any sidecar of the tenant can check a
//! presented secret (or a SigV4 signature made with it) without any state. The session-secret
//! key of a key created before issue #20 is the HMAC its seed gave then, so the sessions
//! issued before keep their secrets.

use base64::Engine as _;
use ring::hmac;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

use crate::account::{AccountId, ACCOUNT_ID_DIGITS};

use super::certificate::{CertificateClaims, IssuingCredential, VerifiedCertificate};

/// The version tag of tokens signed by an issuer key.
const PREFIX: &str = "iamlet1";
/// The version tag of tokens signed by a certified issuing key.
const PREFIX_CERTIFIED: &str = "iamlet2";
/// Domain separation: a signature made for anything else never verifies as a token.
const SIGNATURE_LABEL: &[u8] = b"iamlet session token v1\n";
/// Domain separation of certified tokens: neither an issuer signature nor a `v1` one verifies.
const SIGNATURE_LABEL_CERTIFIED: &[u8] = b"iamlet session token v2\n";
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
    /// This server holds no valid issuing certificate for the tenant (sidecars mint only with
    /// one; the stream delivers and renews it).
    #[error("this sidecar holds no valid issuing certificate for the tenant")]
    NoIssuingCertificate,
    /// The session is outside the issuing certificate's scope or window.
    #[error("the session is outside this sidecar's issuing certificate: {0}")]
    Certificate(super::certificate::CertificateError),
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
    /// The Ed25519 private key's 32-byte seed, in standard base64: at the control plane only
    /// (`None` at sidecars).
    fn private_seed_base64(&self) -> Option<&str>;
    /// The session-secret key, in standard base64 (`None` for a key stored before it existed:
    /// then it is derived from the seed, see [`session_secret_from_seed`]).
    fn session_secret_base64(&self) -> Option<&str>;
    /// True while tokens are signed with it.
    fn active(&self) -> bool;
}

/// The session-secret key of an issuer key created before the two were split: the HMAC of
/// its seed that derived session secrets then, in standard base64. `None` when the seed is not
/// base64.
pub fn session_secret_from_seed(seed_base64: &str) -> Option<String> {
    let seed = base64::engine::general_purpose::STANDARD
        .decode(seed_base64)
        .ok()?;
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &seed), SECRET_LABEL);
    Some(base64::engine::general_purpose::STANDARD.encode(tag.as_ref()))
}

/// An issuer key ready to sign and verify, built when a snapshot is built.
pub struct IssuerKeyring {
    keys: Vec<CompiledIssuerKey>,
}

struct CompiledIssuerKey {
    key_id: Box<str>,
    active: bool,
    verifier: UnparsedPublicKey<Vec<u8>>,
    /// Only where the private key is (the control plane).
    signer: Option<Ed25519KeyPair>,
    secret_key: hmac::Key,
}

/// A token whose signature, tenant binding and key id checked out. For a certified token the
/// caller must still check the session's role against [`VerifiedToken::within_certificate`],
/// which needs the role's ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The claims.
    pub claims: SessionClaims,
    /// The issuer key id that signed it (or its certificate): its session-secret key derives
    /// the session's secret.
    pub key_id: String,
    /// The issuing certificate it was minted under (`iamlet2`), `None` for an issuer-signed
    /// `iamlet1` token.
    pub certificate: Option<CertificateClaims>,
}

// === impl VerifiedToken ===

impl VerifiedToken {
    /// Whether the session is within the scope of the certificate it was minted under
    /// (`role_arn`: its role's ARN, for a role session). Always true for an issuer-signed
    /// token, which only the holder of the issuer key could mint.
    pub fn within_certificate(&self, role_arn: Option<&str>) -> bool {
        self.certificate
            .as_ref()
            .is_none_or(|c| c.scope.permits(&self.claims.subject, role_arn))
    }
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
                let signer = match key.private_seed_base64() {
                    Some(seed) => {
                        let seed = base64::engine::general_purpose::STANDARD
                            .decode(seed)
                            .map_err(|_| err("the private key is not base64"))?;
                        let signer =
                            Ed25519KeyPair::from_seed_and_public_key(&seed, key.public_key())
                                .map_err(|_| {
                                    err("the public key does not match the private key")
                                })?;
                        Some(signer)
                    }
                    None => None,
                };
                let public_key = match &signer {
                    Some(signer) => signer.public_key().as_ref().to_vec(),
                    // Without the private half the key is checked as a public key alone:
                    // 32 bytes that decode to a point of large order.
                    None => checked_public_key(key.public_key())
                        .ok_or_else(|| err("the public key is not a valid Ed25519 key"))?,
                };
                let secret = match (key.session_secret_base64(), key.private_seed_base64()) {
                    (Some(secret), _) => Some(secret.to_owned()),
                    (None, Some(seed)) => session_secret_from_seed(seed),
                    (None, None) => None,
                }
                .ok_or_else(|| err("the key has no session-secret key"))?;
                let secret = base64::engine::general_purpose::STANDARD
                    .decode(secret)
                    .ok()
                    .filter(|s| s.len() >= 32)
                    .ok_or_else(|| err("the session-secret key is not 32 bytes of base64"))?;
                Ok(CompiledIssuerKey {
                    key_id: key.key_id().into(),
                    active: key.active(),
                    verifier: UnparsedPublicKey::new(&ED25519, public_key),
                    signer,
                    secret_key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { keys: compiled })
    }

    /// True when the tenant has an active key to sign with here (its private half is here).
    pub fn can_sign(&self) -> bool {
        self.keys.iter().any(|k| k.active && k.signer.is_some())
    }

    /// The public key of `key_id`, to verify certificates with.
    pub(super) fn verifier(&self, key_id: &str) -> Option<&UnparsedPublicKey<Vec<u8>>> {
        self.key(key_id).map(|k| &k.verifier)
    }

    /// Signs what `message` builds for the active key's id, when its private half is here.
    pub(super) fn sign_with_active(
        &self,
        message: impl FnOnce(&str) -> Vec<u8>,
    ) -> Option<(&str, Vec<u8>)> {
        let key = self.keys.iter().rev().find(|k| k.active)?;
        let signer = key.signer.as_ref()?;
        let signature = signer.sign(&message(&key.key_id));
        Some((&key.key_id, signature.as_ref().to_vec()))
    }

    /// True when `key_id` is one of the tenant's keys.
    pub fn contains(&self, key_id: &str) -> bool {
        self.key(key_id).is_some()
    }

    fn key(&self, key_id: &str) -> Option<&CompiledIssuerKey> {
        self.keys.iter().find(|k| &*k.key_id == key_id)
    }

    /// Signs `claims` with the active issuer key (`iamlet1`); returns the token and the
    /// session's secret. Only where the issuer's private key is: the control plane.
    pub fn mint(&self, claims: &SessionClaims) -> Result<(String, String), SessionTokenError> {
        let key = self
            .keys
            .iter()
            .rev()
            .find(|k| k.active)
            .ok_or(SessionTokenError::NoActiveKey)?;
        let signer = key.signer.as_ref().ok_or(SessionTokenError::NoActiveKey)?;
        let payload = serde_json::to_vec(claims).map_err(|_| SessionTokenError::Encode)?;
        let payload = B64.encode(payload);
        let signature = signer.sign(&signed_message(&claims.tenant, &key.key_id, &payload));
        let token = format!(
            "{PREFIX}.{}.{}.{payload}.{}",
            claims.tenant,
            key.key_id,
            B64.encode(signature.as_ref())
        );
        let secret = derive_secret(key, claims);
        Ok((token, secret))
    }

    /// Signs `claims` with a sidecar's certified issuing key (`iamlet2`), after checking them
    /// against the certificate: same tenant, issued within its window, ending before it ends,
    /// within its scope (`role_arn`: the role's ARN for a role session). Returns the token and
    /// the session's secret.
    pub fn mint_certified(
        &self,
        credential: &IssuingCredential,
        claims: &SessionClaims,
        role_arn: Option<&str>,
    ) -> Result<(String, String), SessionTokenError> {
        let certificate = credential.claims();
        if certificate.tenant != claims.tenant {
            return Err(SessionTokenError::NoIssuingCertificate);
        }
        certificate
            .check_session(
                &claims.subject,
                role_arn,
                claims.issued_at,
                claims.expires_at,
            )
            .map_err(SessionTokenError::Certificate)?;
        // The certificate must still verify here: a sidecar never mints what others refuse.
        // It verified on receipt (for this tenant: checked above), so it still does while this
        // keyring holds the issuer key it verified under.
        if !credential.still_certified_by(self) {
            return Err(SessionTokenError::NoIssuingCertificate);
        }
        let key = self
            .key(credential.issuer_key_id())
            .ok_or(SessionTokenError::NoIssuingCertificate)?;
        let payload = serde_json::to_vec(claims).map_err(|_| SessionTokenError::Encode)?;
        let payload = B64.encode(payload);
        let signature = credential.sign(&certified_message(
            &claims.tenant,
            credential.certificate(),
            &payload,
        ));
        let token = format!(
            "{PREFIX_CERTIFIED}.{}.{}.{payload}.{}",
            claims.tenant,
            credential.certificate(),
            B64.encode(signature)
        );
        if token.len() > MAX_TOKEN_LEN {
            return Err(SessionTokenError::Encode);
        }
        let secret = derive_secret(key, claims);
        Ok((token, secret))
    }

    /// Verifies a token of `tenant` at `now` (epoch seconds): format, key id, signature,
    /// tenant binding, times (with [`CLOCK_SKEW_SECONDS`]); for a certified token also the
    /// certificate's chain to the tenant's issuer keys, and that the session was issued within
    /// the certificate's window and ends within it (its scope needs the role's ARN: see
    /// [`VerifiedToken::within_certificate`]). Every failure but expiry is the same
    /// [`SessionTokenError::Invalid`], so a forger learns nothing about which check failed;
    /// expiry is only reported for a genuine token, as `Expired` so that SDKs refresh.
    pub fn verify(
        &self,
        tenant: &str,
        token: &str,
        now: i64,
    ) -> Result<VerifiedToken, SessionTokenError> {
        if token.starts_with("iamlet2.") {
            return self.verify_certified(tenant, token, now);
        }
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
        let claims = checked_claims(tenant, parsed.payload, now)?;
        Ok(VerifiedToken {
            claims,
            key_id: parsed.key_id.to_owned(),
            certificate: None,
        })
    }

    fn verify_certified(
        &self,
        tenant: &str,
        token: &str,
        now: i64,
    ) -> Result<VerifiedToken, SessionTokenError> {
        let parsed = ParsedCertifiedToken::parse(token).ok_or(SessionTokenError::Invalid)?;
        if parsed.tenant != tenant {
            return Err(SessionTokenError::Invalid);
        }
        // A precise line for the operator; the caller gets the uniform error.
        let refuse = |reason: &dyn std::fmt::Display| {
            tracing::warn!(
                tenant,
                %reason,
                "a session token's issuing certificate is refused"
            );
            SessionTokenError::Invalid
        };
        let certificate: VerifiedCertificate = self
            .verify_certificate(tenant, parsed.certificate)
            .map_err(|e| refuse(&e))?;
        let signature = B64
            .decode(parsed.signature)
            .map_err(|_| SessionTokenError::Invalid)?;
        if !certificate.verify_signature(
            &certified_message(parsed.tenant, parsed.certificate, parsed.payload),
            &signature,
        ) {
            return Err(SessionTokenError::Invalid);
        }
        let claims = checked_claims(tenant, parsed.payload, now)?;
        certificate
            .claims
            .check_window(claims.issued_at)
            .map_err(|e| refuse(&e))?;
        if claims.expires_at > certificate.claims.expires_at {
            return Err(refuse(
                &super::certificate::CertificateError::OutlivesCertificate,
            ));
        }
        Ok(VerifiedToken {
            claims,
            key_id: certificate.issuer_key_id,
            certificate: Some(certificate.claims),
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
    ParsedToken::parse(token)
        .map(|p| p.tenant)
        .or_else(|| ParsedCertifiedToken::parse(token).map(|p| p.tenant))
}

/// The tenant field of a token of either form (`iamlet1.<tenant>.…`, `iamlet2.<tenant>.…`),
/// read without looking at the rest: a cheaper [`token_tenant`], for a lookup among tokens
/// already parsed and verified, where a token that is not byte for byte one of them finds
/// nothing anyway. It agrees with [`token_tenant`] wherever that reads a tenant.
pub fn token_tenant_field(token: &str) -> Option<&str> {
    let rest = token
        .strip_prefix(PREFIX)
        .or_else(|| token.strip_prefix(PREFIX_CERTIFIED))?
        .strip_prefix('.')?;
    // An account id has a fixed width: the dot after it is looked for there, not searched
    // for along a kilobyte of token.
    let tenant = rest.get(..ACCOUNT_ID_DIGITS)?;
    let dotted = rest.as_bytes().get(ACCOUNT_ID_DIGITS) == Some(&b'.');
    (dotted && AccountId::is_valid(tenant)).then_some(tenant)
}

struct ParsedToken<'a> {
    tenant: &'a str,
    key_id: &'a str,
    payload: &'a str,
    signature: &'a str,
}

/// `iamlet2.<tenant>.<certificate: key id.payload.signature>.<payload>.<signature>`.
struct ParsedCertifiedToken<'a> {
    tenant: &'a str,
    certificate: &'a str,
    payload: &'a str,
    signature: &'a str,
}

impl<'a> ParsedCertifiedToken<'a> {
    fn parse(token: &'a str) -> Option<Self> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let rest = token.strip_prefix(PREFIX_CERTIFIED)?.strip_prefix('.')?;
        let (tenant, rest) = rest.split_once('.')?;
        let (rest, signature) = rest.rsplit_once('.')?;
        let (certificate, payload) = rest.rsplit_once('.')?;
        let well_formed = AccountId::is_valid(tenant)
            && certificate.split('.').count() == 3
            && certificate.split('.').next().is_some_and(is_key_id)
            && !payload.is_empty()
            && signature.len() == 86;
        well_formed.then_some(Self {
            tenant,
            certificate,
            payload,
            signature,
        })
    }
}

/// The claims of a token whose signature verified: decoded, bound to `tenant`, issued before
/// `now` and not expired (with the clock skew).
fn checked_claims(
    tenant: &str,
    payload: &str,
    now: i64,
) -> Result<SessionClaims, SessionTokenError> {
    let payload = B64
        .decode(payload)
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
    Ok(claims)
}

/// An Ed25519 public key held without its private half (at a sidecar), checked: 32 bytes and
/// not one of the small-order points (libsodium's list, sign bit ignored), for which a forged
/// signature verifies on any message.
fn checked_public_key(key: &[u8]) -> Option<Vec<u8>> {
    const SMALL_ORDER: [&str; 7] = [
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    ];
    let (last, rest) = key.split_last()?;
    if key.len() != 32 {
        return None;
    }
    let mut masked = rest.to_vec();
    masked.push(last & 0x7f);
    let hex = data_encoding::HEXLOWER.encode(&masked);
    (!SMALL_ORDER.contains(&hex.as_str())).then(|| key.to_vec())
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
    labelled_message(SIGNATURE_LABEL, [tenant, key_id, payload])
}

pub(crate) fn certified_message(tenant: &str, certificate: &str, payload: &str) -> Vec<u8> {
    labelled_message(SIGNATURE_LABEL_CERTIFIED, [tenant, certificate, payload])
}

/// What an Ed25519 signature of this module covers: a domain-separation label, then the
/// fields joined by newlines (none of them can hold one), so no field can move into another.
pub(crate) fn labelled_message(label: &[u8], fields: [&str; 3]) -> Vec<u8> {
    let len = fields.iter().map(|f| f.len() + 1).sum::<usize>();
    let mut message = Vec::with_capacity(label.len() + len);
    message.extend_from_slice(label);
    for (i, field) in fields.into_iter().enumerate() {
        if i > 0 {
            message.push(b'\n');
        }
        message.extend_from_slice(field.as_bytes());
    }
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

/// What the certificate tests need to forge tokens as a compromised sidecar would.
#[cfg(test)]
pub(crate) mod tests_support {
    use base64::Engine as _;

    pub(crate) use super::certified_message;

    pub(crate) fn encode_claims(claims: &super::SessionClaims) -> String {
        super::B64.encode(serde_json::to_vec(claims).unwrap())
    }
}

#[cfg(test)]
mod tests;
