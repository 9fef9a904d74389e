//! Who is calling: access keys, session tokens and SigV4 signatures checked against a tenant
//! snapshot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::authz::{Context, Principal};
use crate::directory::{scope_date, HeldAccessKey, IdPrefix, Secret, SidecarKeys};
use crate::policy::{
    CompiledPolicy, ContextValue, ParseOptions, PolicyDocument, PolicyKind, Timestamp,
};
use crate::snapshot::{KeyMaterial, TenantSnapshot};

use super::sigv4::{SigV4Error, Signature, SigningKey};
use super::StsError;
use crate::jose::session::{
    constant_time_eq, token_tenant, SessionClaims, SessionSubject, VerifiedToken,
    CLOCK_SKEW_SECONDS,
};

/// Credentials as presented.
#[derive(Clone, Copy)]
pub enum Presented<'a> {
    /// An access key id with its secret, and the session token for temporary credentials.
    Keys {
        /// `AKIA…` or `ASIA…`.
        access_key_id: &'a str,
        /// The secret access key.
        secret: &'a str,
        /// The session token (temporary credentials only).
        session_token: Option<&'a str>,
    },
    /// A parsed SigV4 signature (with its `x-amz-security-token` for temporary credentials).
    Signed(&'a Signature),
}

/// A caller whose credentials checked out.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The principal requests are made as (a user, a role session or the root user).
    pub principal: Principal,
    /// The session, for temporary credentials.
    pub session: Option<Arc<VerifiedToken>>,
    /// The session's policies, compiled against the snapshot that authenticated it: the
    /// inline one and the managed ones by ARN. Empty without a session.
    pub session_policies: Arc<[Arc<CompiledPolicy>]>,
}

impl std::fmt::Debug for Presented<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Keys { access_key_id, .. } => f
                .debug_struct("Keys")
                .field("access_key_id", access_key_id)
                .finish_non_exhaustive(),
            Self::Signed(s) => f
                .debug_struct("Signed")
                .field("access_key_id", &s.access_key_id())
                .finish_non_exhaustive(),
        }
    }
}

// === impl Presented ===

impl<'a> Presented<'a> {
    /// The access key id.
    pub fn access_key_id(&self) -> &'a str {
        match self {
            Self::Keys { access_key_id, .. } => access_key_id,
            Self::Signed(s) => s.access_key_id(),
        }
    }

    /// The session token, if any.
    pub fn session_token(&self) -> Option<&'a str> {
        match self {
            Self::Keys { session_token, .. } => *session_token,
            Self::Signed(s) => s.security_token(),
        }
    }
}

/// The tenant the credentials belong to: the one a session token names, or the account an
/// access key id encodes. `None` when neither can be read (the credentials are then invalid).
pub fn credential_tenant(presented: &Presented<'_>) -> Option<String> {
    if let Some(token) = presented.session_token() {
        return token_tenant(token).map(str::to_owned);
    }
    IdPrefix::account_of_access_key(presented.access_key_id())
}

/// Credentials resolved against a snapshot: who they belong to and what a presentation must
/// prove (the secret, or at a sidecar the key's verifier and date keys). Independent of the
/// presented secret or signature, so a sidecar may cache it per snapshot version and session
/// token and still check every presentation.
#[derive(Clone)]
pub struct Verified {
    /// The caller.
    pub caller: Caller,
    material: KeyMaterial,
    /// The session's expiry (epoch seconds), for temporary credentials.
    pub expires_at: Option<i64>,
}

impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verified")
            .field("caller", &self.caller)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

// === impl Verified ===

impl Verified {
    /// Checks a presentation: the session is not expired (with [`CLOCK_SKEW_SECONDS`]) and
    /// the secret matches in constant time, or the SigV4 signature verifies with it. At a
    /// sidecar, which holds derived keys ([`KeyMaterial::Derived`]), the secret must match the
    /// key's verifier and today must be a day it holds; a signature must be scoped to a day
    /// it holds a date key for. A day not held fails as a wrong secret or signature does
    /// (`InvalidClientTokenId`, `SignatureDoesNotMatch`), logged and counted
    /// ([`key_day_refusals`]).
    pub fn check(&self, presented: &Presented<'_>, now: Timestamp) -> Result<(), StsError> {
        if self
            .expires_at
            .is_some_and(|exp| now.epoch_seconds() > exp.saturating_add(CLOCK_SKEW_SECONDS))
        {
            return Err(StsError::ExpiredToken);
        }
        match (presented, &self.material) {
            (Presented::Keys { secret, .. }, KeyMaterial::Secret(held)) => {
                if constant_time_eq(held.expose().as_bytes(), secret.as_bytes()) {
                    Ok(())
                } else {
                    Err(StsError::InvalidToken)
                }
            }
            (Presented::Signed(signature), KeyMaterial::Secret(held)) => {
                signature.verify(held.expose().as_bytes(), now)?;
                Ok(())
            }
            (
                Presented::Keys {
                    access_key_id,
                    secret,
                    ..
                },
                KeyMaterial::Derived(key),
            ) => {
                let today = SidecarKeys::day_of(now.epoch_seconds());
                if !key.holds_day(today) {
                    refuse_day(access_key_id, key, &scope_date(today));
                    return Err(StsError::InvalidToken);
                }
                if key.verifies(secret) {
                    Ok(())
                } else {
                    Err(StsError::InvalidToken)
                }
            }
            (Presented::Signed(signature), KeyMaterial::Derived(key)) => {
                // The time window first, as AWS checks it, so an expired request says so
                // whatever the keys held.
                signature.check_time(now)?;
                let Some(k_date) = key.date_key(signature.scope_date()) else {
                    refuse_day(signature.access_key_id(), key, signature.scope_date());
                    return Err(SigV4Error::SignatureDoesNotMatch.into());
                };
                let signing =
                    SigningKey::from_date_key(k_date, signature.region(), signature.service());
                signature.verify_with_key(&signing, now)?;
                Ok(())
            }
            (Presented::Keys { .. }, KeyMaterial::Missing) => Err(StsError::InvalidToken),
            (Presented::Signed(_), KeyMaterial::Missing) => {
                Err(SigV4Error::SignatureDoesNotMatch.into())
            }
        }
    }
}

/// Presentations refused because the sidecar holds no derived key for their day, by
/// [`KEY_DAY_REASONS`]: process-wide, as the checks run in the engine, below any sidecar state.
static KEY_DAY_REFUSALS: [AtomicU64; KEY_DAY_REASONS.len()] =
    [AtomicU64::new(0), AtomicU64::new(0)];

/// Why a day was not held: `expired`, the request's day is after every day held (the sidecar
/// has been cut off from the control plane past its keys); `day_not_held`, any other day (a
/// request or a clock from before the held days, a presigned URL of an earlier day).
pub const KEY_DAY_REASONS: [&str; 2] = ["expired", "day_not_held"];

/// Each of [`KEY_DAY_REASONS`] with how many presentations it refused in this process.
pub fn key_day_refusals() -> Vec<(&'static str, u64)> {
    KEY_DAY_REASONS
        .iter()
        .zip(&KEY_DAY_REFUSALS)
        .map(|(r, c)| (*r, c.load(Ordering::Relaxed)))
        .collect()
}

/// Logs and counts a presentation of `access_key_id` for `day` (`yyyymmdd`), which `key`
/// holds no material for. The line names the key id, the days held and the day asked for,
/// never key material.
fn refuse_day(access_key_id: &str, key: &HeldAccessKey, day: &str) {
    let held: Vec<&str> = key.days().collect();
    let expired = key.last_day().is_none_or(|last| day > last);
    let (index, why) = if expired {
        (
            0,
            "the sidecar's derived keys for this access key have all expired (no update from \
             the control plane since); it fails closed until the stream delivers new ones",
        )
    } else {
        (
            1,
            "the sidecar holds no derived key of this access key for the day",
        )
    };
    if let Some(counter) = KEY_DAY_REFUSALS.get(index) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    tracing::warn!(
        access_key_id,
        days_held = %held.join(","),
        request_day = day,
        "refused access key {access_key_id} for day {day}: {why} (days held: {})",
        held.join(", ")
    );
}

/// Checks `presented` against `snapshot` (the tenant [`credential_tenant`] names). Every way
/// the credentials can be wrong is [`StsError::InvalidToken`], but for the expiry of a genuine
/// session token and SigV4's own errors.
pub fn authenticate(
    snapshot: &TenantSnapshot,
    presented: &Presented<'_>,
    now: Timestamp,
) -> Result<Caller, StsError> {
    let verified = resolve_credentials(
        snapshot,
        presented.access_key_id(),
        presented.session_token(),
        now,
    )?;
    verified.check(presented, now)?;
    Ok(verified.caller)
}

/// Resolves an access key id (and session token) against `snapshot`, without the presented
/// secret: the key must be active, the token genuine, of this tenant and for this key id, and
/// its role or user must still be the one it was issued for.
pub fn resolve_credentials(
    snapshot: &TenantSnapshot,
    access_key_id: &str,
    session_token: Option<&str>,
    now: Timestamp,
) -> Result<Verified, StsError> {
    let temporary = access_key_id.starts_with(IdPrefix::TemporaryAccessKey.as_str());
    match (temporary, session_token) {
        (true, Some(token)) => resolve_session(snapshot, access_key_id, token, now),
        (false, None) => {
            let key = snapshot
                .access_key(access_key_id)
                .filter(|k| k.active)
                .ok_or(StsError::InvalidToken)?;
            let principal = if key.root {
                Principal::Root {
                    account: snapshot.account_id().into(),
                }
            } else {
                let user = snapshot.user(&key.user).ok_or(StsError::InvalidToken)?;
                user.principal.clone()
            };
            Ok(Verified {
                caller: Caller {
                    principal,
                    session: None,
                    session_policies: Arc::new([]),
                },
                material: key.material.clone(),
                expires_at: None,
            })
        }
        // A temporary key without its token, or a long-term key with one.
        _ => Err(StsError::InvalidToken),
    }
}

/// A certified session must be within its issuing certificate's scope (`role_arn`: its
/// role's, for a role session): a sidecar that minted outside its scope gets nothing from it.
/// The caller gets the uniform error; the log line names the sidecar identity.
fn within_certificate(
    verified: &crate::jose::VerifiedToken,
    role_arn: Option<&str>,
    tenant: &str,
) -> Result<(), StsError> {
    if verified.within_certificate(role_arn) {
        return Ok(());
    }
    tracing::warn!(
        tenant,
        sidecar = verified
            .certificate
            .as_ref()
            .map_or("", |c| c.sidecar.as_str()),
        role = role_arn.unwrap_or(""),
        "a session token outside its issuing certificate's scope is refused"
    );
    Err(StsError::InvalidToken)
}

fn resolve_session(
    snapshot: &TenantSnapshot,
    access_key_id: &str,
    token: &str,
    now: Timestamp,
) -> Result<Verified, StsError> {
    let keyring = snapshot.issuer_keys();
    let verified = keyring.verify(snapshot.account_id(), token, now.epoch_seconds())?;
    if verified.claims.access_key_id != access_key_id {
        return Err(StsError::InvalidToken);
    }
    let secret = Secret::new(keyring.secret(&verified)?);
    let account = snapshot.account_id();
    let principal = match &verified.claims.subject {
        SessionSubject::Role {
            role_name,
            role_id,
            session_name,
            ..
        } => {
            // A role deleted and created again is another role: its old sessions end.
            let role = snapshot
                .role(role_name)
                .filter(|r| &*r.role_id == role_id)
                .ok_or(StsError::InvalidToken)?;
            within_certificate(&verified, Some(&role.arn), account)?;
            Principal::AssumedRole {
                account: account.into(),
                role_name: role.name.clone(),
                session_name: session_name.as_str().into(),
                role_unique_id: Some(role.role_id.clone()),
            }
        }
        SessionSubject::User { user_name, user_id } => {
            within_certificate(&verified, None, account)?;
            let user = snapshot
                .user(user_name)
                .filter(|u| &*u.user_id == user_id)
                .ok_or(StsError::InvalidToken)?;
            user.principal.clone()
        }
        SessionSubject::Root => {
            within_certificate(&verified, None, account)?;
            Principal::Root {
                account: account.into(),
            }
        }
    };
    let session_policies = session_policies(snapshot, &verified.claims).into();
    let expires_at = Some(verified.claims.expires_at);
    Ok(Verified {
        caller: Caller {
            principal,
            session: Some(Arc::new(verified)),
            session_policies,
        },
        material: KeyMaterial::Secret(secret),
        expires_at,
    })
}

/// A session's policies as of `snapshot`. A managed session policy deleted since the session
/// began (or an inline one that no longer parses) becomes a policy that allows nothing: the
/// session loses permissions, never gains them.
fn session_policies(snapshot: &TenantSnapshot, claims: &SessionClaims) -> Vec<Arc<CompiledPolicy>> {
    let mut policies = Vec::with_capacity(claims.policy_arns.len() + 1);
    if let Some(text) = &claims.session_policy {
        let compiled = PolicyDocument::parse_with(text, ParseOptions::lenient(PolicyKind::Session))
            .map(|d| {
                Arc::new(CompiledPolicy::compile(
                    "session-policy",
                    PolicyKind::Session,
                    &d,
                ))
            })
            .unwrap_or_else(|_| allow_nothing());
        policies.push(compiled);
    }
    for arn in &claims.policy_arns {
        policies.push(
            snapshot
                .managed_policy(arn)
                .cloned()
                .unwrap_or_else(allow_nothing),
        );
    }
    policies
}

/// A session policy that matches no action, so it allows nothing.
const ALLOW_NOTHING: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","NotAction":"*","NotResource":"*"}]}"#;

#[expect(
    clippy::expect_used,
    reason = "a constant document, parsed by the test `allow_nothing_allows_nothing`"
)]
fn allow_nothing() -> Arc<CompiledPolicy> {
    let document =
        PolicyDocument::parse_with(ALLOW_NOTHING, ParseOptions::lenient(PolicyKind::Session))
            .expect("ALLOW_NOTHING parses");
    Arc::new(CompiledPolicy::compile(
        "session-policy-unavailable",
        PolicyKind::Session,
        &document,
    ))
}

/// Sets the request context keys that follow from a session (IAM-SEMANTICS §3.7):
/// `aws:TokenIssueTime`, `aws:MultiFactorAuthPresent`/`Age`, `aws:SourceIdentity`,
/// `aws:FederatedProvider`, and the session tags over the role's as `aws:PrincipalTag/*`.
/// Without a session (long-term credentials) none of them exists.
pub fn fill_session_context(session: Option<&VerifiedToken>, now: Timestamp, ctx: &mut Context) {
    let Some(session) = session else {
        return;
    };
    let claims = &session.claims;
    ctx.insert(
        "aws:TokenIssueTime",
        ContextValue::from_timestamp(Timestamp::from_epoch_seconds(claims.issued_at)),
    );
    ctx.insert(
        "aws:MultiFactorAuthPresent",
        ContextValue::from_bool(claims.mfa_authenticated_at.is_some()),
    );
    if let Some(at) = claims.mfa_authenticated_at {
        ctx.insert(
            "aws:MultiFactorAuthAge",
            ContextValue::from_i64(now.epoch_seconds().saturating_sub(at).max(0)),
        );
    }
    if let Some(source) = &claims.source_identity {
        ctx.insert("aws:SourceIdentity", ContextValue::new(source.as_str()));
    }
    if let SessionSubject::Role {
        federated_provider: Some(provider),
        ..
    } = &claims.subject
    {
        ctx.insert(
            "aws:FederatedProvider",
            ContextValue::new(provider.as_str()),
        );
    }
    // Context keys are case-insensitive, so a session tag replaces the role's tag of the same
    // key in any case.
    for (key, value) in &claims.tags {
        ctx.insert(
            &format!("aws:PrincipalTag/{key}"),
            ContextValue::new(value.as_str()),
        );
    }
}

#[cfg(test)]
mod tests;
