//! Issuing certificates: a tenant's issuer signing key (held by the control plane alone)
//! certifies a short-lived Ed25519 issuing key for one sidecar identity, so that the sidecar
//! can mint session tokens within a scope and any other sidecar of the tenant can verify them
//! offline against the tenant's issuer public keys (issue #20, item 3).
//!
//! A certificate is `<issuer key id>.<payload>.<signature>`: the payload is [`CertificateClaims`] as JSON in
//! unpadded base64url, the signature is Ed25519 by the tenant's issuer key over a domain label,
//! the tenant, the issuer key id and the encoded payload. Tokens minted under it (`iamlet2`,
//! see [`super::session`]) carry it whole, so verification needs no state but the tenant's
//! public keys.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use serde::{Deserialize, Serialize};

use super::session::{IssuerKeyring, SessionSubject, CLOCK_SKEW_SECONDS};

/// Domain separation: an issuer signature over anything else (a session token) never verifies
/// as a certificate, and the reverse.
const CERTIFICATE_LABEL: &[u8] = b"iamlet issuing certificate v1\n";
/// How long a certificate is valid. Longer than the longest session (36 h, `GetSessionToken`)
/// plus the renewal margin, because a session must end within its certificate.
pub const CERTIFICATE_LIFETIME_SECONDS: i64 = 48 * 3600;
/// A certificate is renewed once less than this remains: the longest session still fits, and
/// a renewal that fails is retried for hours before minting stops.
pub const RENEW_BELOW_SECONDS: i64 = 40 * 3600;
/// The longest certificate accepted in a token: a longer one is not of our making.
const MAX_CERTIFICATE_LIFETIME_SECONDS: i64 = 7 * 24 * 3600;
/// Certificates longer than this are refused before any work.
pub const MAX_CERTIFICATE_LEN: usize = 4 * 1024;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// What a sidecar may mint sessions for. The default is unscoped: every role of the tenant,
/// and `GetSessionToken` for its users and root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuingScope {
    /// True: every role, whatever `role_paths` and `role_arns` say.
    #[serde(default)]
    pub all_roles: bool,
    /// Role path prefixes (`/team-a/`): a role whose path starts with one is in scope.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub role_paths: Vec<String>,
    /// Role ARNs in scope, exactly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub role_arns: Vec<String>,
    /// Whether `GetSessionToken` (sessions of users and of the root user) is in scope.
    #[serde(default)]
    pub session_tokens: bool,
}

/// What an issuing certificate says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateClaims {
    /// The tenant whose issuer signed it.
    pub tenant: String,
    /// The sidecar identity it was issued to (a client certificate's DNS name, or
    /// `anonymous` for sidecars that stream without one).
    pub sidecar: String,
    /// What sessions it may mint.
    pub scope: IssuingScope,
    /// Valid from, epoch seconds.
    pub not_before: i64,
    /// Valid until, epoch seconds: sessions minted under it end by then.
    pub expires_at: i64,
    /// The issuing Ed25519 public key, unpadded base64url.
    pub public_key: String,
}

/// A certificate whose issuer signature, tenant binding and shape checked out. Its validity
/// window is checked against the time of each use, by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCertificate {
    /// What it says.
    pub claims: CertificateClaims,
    /// The issuer key id that signed it.
    pub issuer_key_id: String,
    /// The issuing public key, decoded.
    pub public_key: Vec<u8>,
}

/// Why a certificate cannot be made or is not accepted. A certificate presented inside a token
/// is refused with the token's uniform error; these name the precise reason for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// Not `<payload>.<signature>`, not base64url, not the claims' JSON, or too long.
    #[error("the issuing certificate is malformed")]
    Malformed,
    /// Signed by no issuer key of the tenant (a foreign tenant's key, a dropped key, forged).
    #[error("the issuing certificate is not signed by an issuer key of the tenant")]
    UnknownIssuer,
    /// The signature does not verify (tampered).
    #[error("the issuing certificate's signature does not verify")]
    BadSignature,
    /// It names another tenant than the one it is used for.
    #[error("the issuing certificate is for another tenant")]
    WrongTenant,
    /// Before its `not_before` (with the clock skew).
    #[error("the issuing certificate is not valid yet")]
    NotYetValid,
    /// After its expiry (with the clock skew).
    #[error("the issuing certificate has expired")]
    Expired,
    /// The session is not within its scope.
    #[error("the session is outside the issuing certificate's scope")]
    OutOfScope,
    /// The session would outlive it.
    #[error("the session would outlive the issuing certificate")]
    OutlivesCertificate,
    /// The issuing private key does not belong to the certificate's public key.
    #[error("the issuing key does not match its certificate")]
    KeyMismatch,
    /// The tenant has no issuer signing key here (only the control plane certifies).
    #[error("no issuer signing key to certify with")]
    NoSigningKey,
    /// The claims could not be encoded.
    #[error("cannot encode the issuing certificate")]
    Encode,
}

/// A sidecar's issuing key and its certificate, ready to mint: held in memory only.
pub struct IssuingCredential {
    certificate: String,
    verified: VerifiedCertificate,
    /// The issuer public key the certificate's signature verified under on receipt. While a
    /// keyring holds this very key under the certificate's key id, the signature verifies there
    /// too (Ed25519 verification depends on nothing else), so a mint compares 32 bytes instead
    /// of verifying the signature again (~600,000 instructions, twice the signing).
    issuer_public_key: Box<[u8]>,
    signer: Ed25519KeyPair,
}

// === impl IssuingScope ===

impl IssuingScope {
    /// Every role and `GetSessionToken`: what a sidecar identity without a `scope` gets.
    pub fn unscoped() -> Self {
        Self {
            all_roles: true,
            role_paths: Vec::new(),
            role_arns: Vec::new(),
            session_tokens: true,
        }
    }

    /// Whether a session of the role with ARN `role_arn` (`arn:aws:iam::…:role/path/name`) is
    /// in scope: by path prefix or by exact ARN.
    pub fn permits_role(&self, role_arn: &str) -> bool {
        if self.all_roles || self.role_arns.iter().any(|a| a == role_arn) {
            return true;
        }
        let Some(path) = role_path(role_arn) else {
            return false;
        };
        self.role_paths.iter().any(|p| path.starts_with(p.as_str()))
    }

    /// Whether a session of `subject` (of the role `role_arn` for a role session) is in scope.
    pub fn permits(&self, subject: &SessionSubject, role_arn: Option<&str>) -> bool {
        match subject {
            SessionSubject::Role { .. } => role_arn.is_some_and(|arn| self.permits_role(arn)),
            SessionSubject::User { .. } | SessionSubject::Root => self.session_tokens,
        }
    }

    /// Checks the shape of a scope read from configuration: paths as IAM writes them.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(bad) = self
            .role_paths
            .iter()
            .find(|p| !(p.starts_with('/') && p.ends_with('/') && p.len() <= 512))
        {
            return Err(format!(
                "role path `{bad}` must begin and end with `/` (at most 512 characters)"
            ));
        }
        if let Some(bad) = self
            .role_arns
            .iter()
            .find(|a| !(a.starts_with("arn:") && a.contains(":role/")))
        {
            return Err(format!("`{bad}` is not a role ARN"));
        }
        Ok(())
    }
}

impl Default for IssuingScope {
    fn default() -> Self {
        Self::unscoped()
    }
}

/// The path of a role ARN: from the `/` after `role` up to the last `/`, both included.
fn role_path(role_arn: &str) -> Option<&str> {
    let start = role_arn.find(":role/")?.saturating_add(5);
    let rest = role_arn.get(start..)?;
    let end = rest.rfind('/')?;
    rest.get(..=end)
}

// === impl CertificateClaims ===

impl CertificateClaims {
    /// Checks that `at` (epoch seconds) is within the validity window, with the clock skew.
    pub fn check_window(&self, at: i64) -> Result<(), CertificateError> {
        if at.saturating_add(CLOCK_SKEW_SECONDS) < self.not_before {
            return Err(CertificateError::NotYetValid);
        }
        if at > self.expires_at.saturating_add(CLOCK_SKEW_SECONDS) {
            return Err(CertificateError::Expired);
        }
        Ok(())
    }

    /// Checks a session of `subject` issued at `issued_at` and ending at `expires_at` against
    /// the certificate: issued within the window, ending within it, and in scope.
    pub fn check_session(
        &self,
        subject: &SessionSubject,
        role_arn: Option<&str>,
        issued_at: i64,
        expires_at: i64,
    ) -> Result<(), CertificateError> {
        self.check_window(issued_at)?;
        if expires_at > self.expires_at {
            return Err(CertificateError::OutlivesCertificate);
        }
        if !self.scope.permits(subject, role_arn) {
            return Err(CertificateError::OutOfScope);
        }
        Ok(())
    }
}

// === impl IssuerKeyring (certification) ===

impl IssuerKeyring {
    /// Certifies `public_key` (a fresh issuing key's) for `sidecar` within `scope`, from `now`
    /// for [`CERTIFICATE_LIFETIME_SECONDS`], with the tenant's active issuer key. Only a keyring
    /// holding the issuer's private key (the control plane's) can.
    pub fn certify(
        &self,
        tenant: &str,
        sidecar: &str,
        scope: IssuingScope,
        public_key: &[u8],
        now: i64,
    ) -> Result<String, CertificateError> {
        let claims = CertificateClaims {
            tenant: tenant.to_owned(),
            sidecar: sidecar.to_owned(),
            scope,
            not_before: now,
            expires_at: now.saturating_add(CERTIFICATE_LIFETIME_SECONDS),
            public_key: B64.encode(public_key),
        };
        let payload = serde_json::to_vec(&claims).map_err(|_| CertificateError::Encode)?;
        let payload = B64.encode(payload);
        let (key_id, signature) = self
            .sign_with_active(|key_id| certificate_message(tenant, key_id, &payload))
            .ok_or(CertificateError::NoSigningKey)?;
        Ok(format!("{key_id}.{payload}.{}", B64.encode(signature)))
    }

    /// Verifies a certificate for `tenant`: its issuer key is one of the tenant's, its
    /// signature verifies, it names `tenant`, its public key is an Ed25519 key, and its window
    /// is sane. The window is not checked against any time here.
    pub fn verify_certificate(
        &self,
        tenant: &str,
        certificate: &str,
    ) -> Result<VerifiedCertificate, CertificateError> {
        if certificate.len() > MAX_CERTIFICATE_LEN {
            return Err(CertificateError::Malformed);
        }
        let mut parts = certificate.split('.');
        let (Some(key_id), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(CertificateError::Malformed);
        };
        let signature = B64
            .decode(signature)
            .map_err(|_| CertificateError::Malformed)?;
        let verifier = self
            .verifier(key_id)
            .ok_or(CertificateError::UnknownIssuer)?;
        verifier
            .verify(&certificate_message(tenant, key_id, payload), &signature)
            .map_err(|_| CertificateError::BadSignature)?;
        let decoded = B64
            .decode(payload)
            .map_err(|_| CertificateError::Malformed)?;
        let claims: CertificateClaims =
            serde_json::from_slice(&decoded).map_err(|_| CertificateError::Malformed)?;
        if claims.tenant != tenant {
            return Err(CertificateError::WrongTenant);
        }
        let public_key = B64
            .decode(&claims.public_key)
            .map_err(|_| CertificateError::Malformed)?;
        let lifetime = claims.expires_at.saturating_sub(claims.not_before);
        if public_key.len() != 32 || !(0..=MAX_CERTIFICATE_LIFETIME_SECONDS).contains(&lifetime) {
            return Err(CertificateError::Malformed);
        }
        Ok(VerifiedCertificate {
            claims,
            issuer_key_id: key_id.to_owned(),
            public_key,
        })
    }
}

fn certificate_message(tenant: &str, key_id: &str, payload: &str) -> Vec<u8> {
    super::session::labelled_message(CERTIFICATE_LABEL, [tenant, key_id, payload])
}

// === impl VerifiedCertificate ===

impl VerifiedCertificate {
    /// Verifies `signature` over `message` with the certified issuing key.
    pub fn verify_signature(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.public_key)
            .verify(message, signature)
            .is_ok()
    }
}

// === impl IssuingCredential ===

impl IssuingCredential {
    /// Takes an issuing key (its 32-byte seed) with its certificate, after checking the
    /// certificate against `keyring` (the tenant's issuer public keys), that it names `tenant`,
    /// and that the key is the certified one. A sidecar does this on receipt, so it never
    /// mints under a certificate other sidecars would refuse.
    pub fn try_new(
        keyring: &IssuerKeyring,
        tenant: &str,
        certificate: &str,
        seed: &[u8],
    ) -> Result<Self, CertificateError> {
        let verified = keyring.verify_certificate(tenant, certificate)?;
        let issuer_public_key = keyring
            .verifier(&verified.issuer_key_id)
            .ok_or(CertificateError::UnknownIssuer)?
            .as_ref()
            .into();
        let signer = Ed25519KeyPair::from_seed_and_public_key(seed, &verified.public_key)
            .map_err(|_| CertificateError::KeyMismatch)?;
        Ok(Self {
            certificate: certificate.to_owned(),
            verified,
            issuer_public_key,
            signer,
        })
    }

    /// Makes a fresh issuing key pair and has `keyring` certify it (the control plane's side).
    /// Returns the credential and the key's seed, to send to the sidecar with the certificate.
    pub fn generate(
        keyring: &IssuerKeyring,
        tenant: &str,
        sidecar: &str,
        scope: IssuingScope,
        seed: [u8; 32],
        now: i64,
    ) -> Result<Self, CertificateError> {
        let pair =
            Ed25519KeyPair::from_seed_unchecked(&seed).map_err(|_| CertificateError::Encode)?;
        let certificate =
            keyring.certify(tenant, sidecar, scope, pair.public_key().as_ref(), now)?;
        Self::try_new(keyring, tenant, &certificate, &seed)
    }

    /// The certificate, as tokens carry it.
    pub fn certificate(&self) -> &str {
        &self.certificate
    }

    /// What the certificate says.
    pub fn claims(&self) -> &CertificateClaims {
        &self.verified.claims
    }

    /// Whether it should be renewed at `now`: less than [`RENEW_BELOW_SECONDS`] left.
    pub fn needs_renewal(&self, now: i64) -> bool {
        self.verified.claims.expires_at.saturating_sub(now) < RENEW_BELOW_SECONDS
    }

    /// The id of the issuer key that signed the certificate.
    pub(super) fn issuer_key_id(&self) -> &str {
        &self.verified.issuer_key_id
    }

    /// Whether the certificate still verifies under `keyring`: it holds the issuer key that
    /// verified it on receipt, under the same id. A dropped or replaced issuer key fails this,
    /// as [`IssuerKeyring::verify_certificate`] would.
    pub(super) fn still_certified_by(&self, keyring: &IssuerKeyring) -> bool {
        keyring
            .verifier(&self.verified.issuer_key_id)
            .is_some_and(|v| v.as_ref() == &*self.issuer_public_key)
    }

    /// Signs `message` with the issuing key.
    pub(super) fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.signer.sign(message).as_ref().to_vec()
    }
}

impl std::fmt::Debug for IssuingCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuingCredential")
            .field("claims", &self.verified.claims)
            .field("issuer_key_id", &self.verified.issuer_key_id)
            .finish_non_exhaustive()
    }
}

/// A server's issuing credentials, one per tenant: what the sync stream delivered and renews,
/// in memory only (a restarted sidecar mints again once its stream has delivered new ones).
///
/// A grant arrives with (or before) the tenant it is for, but can only be checked against the
/// tenant's issuer keys once that tenant is loaded; it waits as *pending* until then and is
/// checked by whichever comes first — the stream after applying its tenants, or the first
/// mint ([`IssuingCredentials::resolve`]) — so that a tenant is never served without its
/// credential in between.
#[derive(Debug, Default)]
pub struct IssuingCredentials {
    by_tenant: RwLock<HashMap<String, Arc<IssuingCredential>>>,
    pending: RwLock<HashMap<String, PendingGrant>>,
    out_of_scope: AtomicU64,
}

/// A grant not yet checked against its tenant's issuer keys.
struct PendingGrant {
    certificate: String,
    seed: Vec<u8>,
}

impl std::fmt::Debug for PendingGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The seed is the issuing key's private half.
        f.debug_struct("PendingGrant").finish_non_exhaustive()
    }
}

// === impl IssuingCredentials ===

impl IssuingCredentials {
    /// No credentials: nothing can be minted until some are delivered.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tenant's credential, if any.
    pub fn get(&self, tenant: &str) -> Option<Arc<IssuingCredential>> {
        self.by_tenant
            .read()
            .ok()
            .and_then(|m| m.get(tenant).cloned())
    }

    /// Holds `credential` for its tenant, replacing the previous one.
    pub fn insert(&self, credential: IssuingCredential) {
        let tenant = credential.claims().tenant.clone();
        if let Ok(mut m) = self.by_tenant.write() {
            m.insert(tenant, Arc::new(credential));
        }
    }

    /// Drops the tenant's credential (the tenant was removed).
    pub fn remove(&self, tenant: &str) {
        if let Ok(mut m) = self.by_tenant.write() {
            m.remove(tenant);
        }
        if let Ok(mut m) = self.pending.write() {
            m.remove(tenant);
        }
    }

    /// Holds a delivered grant until its tenant's keys can check it, replacing an older
    /// pending one of the same tenant.
    pub fn stash(&self, tenant: String, certificate: String, seed: Vec<u8>) {
        if let Ok(mut m) = self.pending.write() {
            m.insert(tenant, PendingGrant { certificate, seed });
        }
    }

    /// Checks the tenant's pending grant, if any, against `keyring` (the tenant's issuer keys
    /// as loaded): a grant that checks out becomes the tenant's credential. `None` when
    /// nothing was pending; the error when the grant does not check out (it is dropped, and
    /// the previous credential, if any, stays).
    pub fn resolve(
        &self,
        tenant: &str,
        keyring: &IssuerKeyring,
    ) -> Option<Result<Arc<IssuingCredential>, CertificateError>> {
        let (certificate, seed) = {
            let pending = self.pending.read().ok()?;
            let grant = pending.get(tenant)?;
            (grant.certificate.clone(), grant.seed.clone())
        };
        let checked =
            IssuingCredential::try_new(keyring, tenant, &certificate, &seed).map(|credential| {
                let credential = Arc::new(credential);
                if let Ok(mut m) = self.by_tenant.write() {
                    m.insert(tenant.to_owned(), Arc::clone(&credential));
                }
                credential
            });
        // Dropped from the pending ones only now, once it is the credential (or refused): a
        // mint that looks in between sees it pending, never neither.
        if let Ok(mut m) = self.pending.write() {
            if m.get(tenant).is_some_and(|g| g.certificate == certificate) {
                m.remove(tenant);
            }
        }
        Some(checked)
    }

    /// The tenant's credential, after checking a pending grant against `keyring` first (the
    /// newest delivered wins); a pending grant that does not check out is dropped and logged,
    /// and the previous credential, if any, serves.
    pub fn current(&self, tenant: &str, keyring: &IssuerKeyring) -> Option<Arc<IssuingCredential>> {
        // A read first: a grant is pending for a moment after a delivery, not on every mint.
        let pending = self.pending.read().is_ok_and(|m| m.contains_key(tenant));
        if pending {
            match self.resolve(tenant, keyring) {
                Some(Ok(credential)) => return Some(credential),
                Some(Err(error)) => tracing::warn!(
                    tenant,
                    %error,
                    "refused the issuing certificate for tenant {tenant}: {error}"
                ),
                None => {}
            }
        }
        self.get(tenant)
    }

    /// Counts a session refused because it is outside this server's scope.
    pub fn count_out_of_scope(&self) {
        self.out_of_scope.fetch_add(1, Ordering::Relaxed);
    }

    /// How many sessions were refused as outside this server's scope.
    pub fn out_of_scope_refusals(&self) -> u64 {
        self.out_of_scope.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests;
