//! `AssumeRole`, `AssumeRoleWithWebIdentity`, `GetSessionToken` and `GetCallerIdentity`
//! (IAM-SEMANTICS §4).

use std::sync::Arc;

use crate::authz::{evaluate, Context, Outcome, PolicySet, Principal, Request};
use crate::directory::{totp, IdGenerator, IdPrefix, Tag};
use crate::policy::{
    non_whitespace_len, ArnParts, CompiledPolicy, ContextValue, ParseOptions, PolicyDocument,
    PolicyKind, Timestamp,
};
use crate::snapshot::{Resolved, RoleEntry, TenantSnapshot};

use super::authenticate::{fill_session_context, Caller};
use super::jwt::{condition_key_prefix, UnverifiedToken};
use super::{params, StsError};
use crate::jose::{IssuingCredentials, SessionClaims, SessionSubject};

mod pod_identity;

pub use pod_identity::{
    assume_role_for_service, pod_session_name, pod_session_tags, verify_pod_token, PodToken,
    PodTokenError, ServiceRoleParams,
};

/// `DurationSeconds` when none is given to `AssumeRole*`.
const DEFAULT_ROLE_SESSION: i32 = 3600;
/// Role chaining caps a session at one hour.
const CHAINED_MAX: i32 = 3600;
/// The plaintext allowance of session policies and tags, in characters (IAM-SEMANTICS §4.1).
/// AWS's packing is not public; ours counts the non-whitespace characters of the inline
/// policy, the managed policies' ARNs and the tags' keys and values.
const PACKED_LIMIT: usize = 2048;
/// At most this many managed session policies.
const MAX_POLICY_ARNS: usize = 10;

/// `AssumeRole`'s parameters.
#[derive(Clone, Copy, Default)]
pub struct AssumeRoleParams<'a> {
    /// The role's ARN.
    pub role_arn: &'a str,
    /// The session name.
    pub role_session_name: &'a str,
    /// The session's lifetime.
    pub duration_seconds: Option<i32>,
    /// The inline session policy.
    pub policy: Option<&'a str>,
    /// Managed session policies.
    pub policy_arns: &'a [String],
    /// Session tags.
    pub tags: &'a [Tag],
    /// Keys of the tags that pass on to chained sessions.
    pub transitive_tag_keys: &'a [String],
    /// `sts:ExternalId`.
    pub external_id: Option<&'a str>,
    /// The caller's MFA device.
    pub serial_number: Option<&'a str>,
    /// The device's current code (never echoed).
    pub token_code: Option<&'a str>,
    /// `SourceIdentity`.
    pub source_identity: Option<&'a str>,
}

/// `AssumeRoleWithWebIdentity`'s parameters.
#[derive(Clone, Copy, Default)]
pub struct WebIdentityParams<'a> {
    /// The role's ARN.
    pub role_arn: &'a str,
    /// The session name.
    pub role_session_name: &'a str,
    /// The OIDC token (never echoed).
    pub web_identity_token: &'a str,
    /// The session's lifetime.
    pub duration_seconds: Option<i32>,
    /// The inline session policy.
    pub policy: Option<&'a str>,
    /// Managed session policies.
    pub policy_arns: &'a [String],
}

/// `GetSessionToken`'s parameters.
#[derive(Clone, Copy, Default)]
pub struct GetSessionTokenParams<'a> {
    /// The session's lifetime.
    pub duration_seconds: Option<i32>,
    /// The caller's MFA device.
    pub serial_number: Option<&'a str>,
    /// The device's current code.
    pub token_code: Option<&'a str>,
}

/// Issued credentials and the session they stand for.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    /// `ASIA…`.
    pub access_key_id: String,
    /// The 40-character secret.
    pub secret_access_key: String,
    /// The signed session token.
    pub session_token: String,
    /// When they expire.
    pub expiration: Timestamp,
    /// `AROA…:<session>` (role sessions) or the user's id.
    pub assumed_role_id: String,
    /// The session's ARN (`arn:aws:sts::A:assumed-role/R/S`), or the user's.
    pub arn: String,
    /// The percentage of the packed allowance used.
    pub packed_policy_size: i32,
    /// The session's source identity.
    pub source_identity: Option<String>,
    /// The tenant that issued them.
    pub tenant: String,
}

/// `AssumeRoleWithWebIdentity`'s result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebIdentityIssued {
    /// The credentials.
    pub issued: Issued,
    /// The token's `sub`.
    pub subject: String,
    /// The token's `iss`.
    pub provider: String,
    /// The client id the token's `aud` matched.
    pub audience: String,
}

/// `GetCallerIdentity`'s result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    /// The value of `aws:userid`.
    pub user_id: String,
    /// The account.
    pub account: String,
    /// The caller's ARN (a session's ARN for role sessions).
    pub arn: String,
}

/// Remembers which MFA time steps were used, so that a code is accepted once per verifier.
/// Sidecars are stateless toward each other: a code replayed at another sidecar within its
/// 90 s window is accepted there once.
pub trait MfaReplayGuard {
    /// Records `step` for the device; false when it (or a later step) was used already.
    fn accept(&self, tenant: &str, serial: &str, step: u64) -> bool;
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .field("arn", &self.arn)
            .finish_non_exhaustive()
    }
}

/// Shows whether an MFA code was given, never the code: it is a credential for its 30 s.
fn redacted(code: Option<&str>) -> Option<&'static str> {
    code.map(|_| "<redacted>")
}

impl std::fmt::Debug for AssumeRoleParams<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssumeRoleParams")
            .field("role_arn", &self.role_arn)
            .field("role_session_name", &self.role_session_name)
            .field("duration_seconds", &self.duration_seconds)
            .field("policy", &self.policy)
            .field("policy_arns", &self.policy_arns)
            .field("tags", &self.tags)
            .field("transitive_tag_keys", &self.transitive_tag_keys)
            .field("external_id", &self.external_id)
            .field("serial_number", &self.serial_number)
            .field("token_code", &redacted(self.token_code))
            .field("source_identity", &self.source_identity)
            .finish()
    }
}

impl std::fmt::Debug for GetSessionTokenParams<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetSessionTokenParams")
            .field("duration_seconds", &self.duration_seconds)
            .field("serial_number", &self.serial_number)
            .field("token_code", &redacted(self.token_code))
            .finish()
    }
}

impl std::fmt::Debug for WebIdentityParams<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebIdentityParams")
            .field("role_arn", &self.role_arn)
            .field("role_session_name", &self.role_session_name)
            .finish_non_exhaustive()
    }
}

/// The time and randomness an operation uses, injected so that tests control both.
#[derive(Debug)]
pub struct IssueEnv<'a> {
    /// Now.
    pub now: Timestamp,
    /// Draws key ids and token ids.
    pub ids: &'a mut IdGenerator,
    /// MFA replay protection.
    pub mfa: &'a dyn MfaReplayGuard,
    /// The latest expiry (epoch seconds) credentials may have, when the issuer's data is
    /// getting stale; `None` for no cap.
    pub latest_expiry: Option<i64>,
    /// How sessions are signed.
    pub issuing: Issuing<'a>,
}

/// How an issuer signs sessions.
#[derive(Debug, Clone, Copy)]
pub enum Issuing<'a> {
    /// With the tenant's issuer key itself (`iamlet1` tokens): only where its private half is
    /// (the control plane, and tests of the engine).
    IssuerKey,
    /// With this sidecar's certified issuing keys (`iamlet2` tokens), within their scopes.
    Certified(&'a IssuingCredentials),
}

impl std::fmt::Debug for dyn MfaReplayGuard + '_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MfaReplayGuard")
    }
}

/// `AssumeRole`: `caller` (authenticated in `caller_snapshot`) asks for a session of a role of
/// `role_snapshot` (the same snapshot for a same-account role).
pub fn assume_role(
    caller: &Caller,
    caller_snapshot: &TenantSnapshot,
    role_snapshot: &TenantSnapshot,
    p: &AssumeRoleParams<'_>,
    env: &mut IssueEnv<'_>,
) -> Result<Issued, StsError> {
    validate_assume_role_params(p)?;
    let principal = &caller.principal;
    if matches!(principal, Principal::Root { .. }) {
        return Err(StsError::AccessDenied(
            "Roles may not be assumed by root accounts.".into(),
        ));
    }
    let caller_session = caller.session.as_deref().map(|s| &s.claims);
    let chained = matches!(
        caller_session.map(|c| &c.subject),
        Some(SessionSubject::Role { .. })
    );
    let denied = || {
        StsError::AccessDenied(format!(
            "User: {principal} is not authorized to perform: sts:AssumeRole on resource: {}",
            p.role_arn
        ))
    };
    // An unknown role is denied like a forbidden one: the answer does not reveal which roles
    // exist.
    let role = find_role(role_snapshot, p.role_arn).ok_or_else(denied)?;
    let duration = session_duration(p.duration_seconds, role, chained)?;
    let inherited = inherited_tags(caller_session, p.tags)?;
    let source_identity = session_source_identity(caller_session, p.source_identity)?;
    check_session_policies(role_snapshot, p.policy, p.policy_arns)?;
    let packed = packed_size(
        p.policy,
        p.policy_arns,
        p.tags.iter().map(|t| (&*t.key, &*t.value)),
    )?;
    let mfa_at = mfa_authenticated_at(caller_snapshot, principal, caller_session, p, env)?;

    let resolved = caller_snapshot.resolve(principal).ok_or_else(denied)?;
    let mut ctx = assume_role_context(caller, &resolved, role, &inherited, mfa_at, p, env.now);
    let trial = AssumeRoleTrial {
        principal,
        resolved: &resolved,
        session_policies: &caller.session_policies,
        role,
        role_snapshot,
        chained,
    };
    if !trial.allows("sts:AssumeRole", &mut ctx, TrialPolicies::All)? {
        return Err(denied());
    }
    trial.check_tag_session(&mut ctx, p.tags)?;
    trial.check_source_identity(ctx, p.source_identity, source_identity.as_deref())?;

    let claims = role_session_claims(
        caller_session,
        role_snapshot,
        role,
        p,
        RoleSession {
            inherited,
            chained,
            source_identity,
            mfa_at,
            expires_at: expiry(env, duration),
        },
        env,
    );
    mint(
        role_snapshot,
        role,
        &claims,
        p.role_session_name,
        packed,
        env,
    )
}

/// `AssumeRole`'s parameter constraints, checked before anything is looked up.
fn validate_assume_role_params(p: &AssumeRoleParams<'_>) -> Result<(), StsError> {
    role_session_params(
        p.role_arn,
        p.role_session_name,
        p.duration_seconds,
        p.policy,
        p.policy_arns,
    )?;
    if let Some(id) = p.external_id {
        params::external_id(id)?;
    }
    if let Some(serial) = p.serial_number {
        params::serial_number(serial)?;
    }
    if let Some(code) = p.token_code {
        params::token_code(code)?;
    }
    if let Some(source) = p.source_identity {
        params::source_identity(source)?;
    }
    crate::directory::validate::tags(p.tags, true)?;
    crate::directory::validate::tag_keys(p.transitive_tag_keys)?;
    Ok(())
}

/// The calling session's transitive tags, which pass on to the new session and which the
/// caller cannot override: a requested tag with one of their keys is refused.
fn inherited_tags(
    caller_session: Option<&SessionClaims>,
    requested: &[Tag],
) -> Result<Vec<(String, String)>, StsError> {
    let inherited: Vec<(String, String)> = caller_session
        .map(|c| {
            c.tags
                .iter()
                .filter(|(k, _)| {
                    c.transitive_tag_keys
                        .iter()
                        .any(|t| t.eq_ignore_ascii_case(k))
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    if let Some(tag) = requested.iter().find(|t| {
        inherited
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(&t.key))
    }) {
        return Err(StsError::Validation(format!(
            "The session tag key `{}` conflicts with a transitive tag of the calling session.",
            tag.key
        )));
    }
    Ok(inherited)
}

/// The new session's source identity: the calling session's, which cannot be changed, or the
/// one asked for.
fn session_source_identity(
    caller_session: Option<&SessionClaims>,
    asked: Option<&str>,
) -> Result<Option<String>, StsError> {
    match (
        caller_session.and_then(|c| c.source_identity.as_deref()),
        asked,
    ) {
        (Some(inherited), Some(asked)) if inherited != asked => Err(StsError::AccessDenied(
            "The source identity of a role session cannot be changed.".into(),
        )),
        (Some(inherited), _) => Ok(Some(inherited.to_owned())),
        (None, asked) => Ok(asked.map(str::to_owned)),
    }
}

/// When MFA was authenticated: now, for a code given with this call (checked), else the
/// calling session's time, if any.
fn mfa_authenticated_at(
    caller_snapshot: &TenantSnapshot,
    principal: &Principal,
    caller_session: Option<&SessionClaims>,
    p: &AssumeRoleParams<'_>,
    env: &IssueEnv<'_>,
) -> Result<Option<i64>, StsError> {
    match (p.serial_number, p.token_code) {
        (Some(serial), Some(code)) => {
            verify_mfa(caller_snapshot, principal, serial, code, env)?;
            Ok(Some(env.now.epoch_seconds()))
        }
        (None, None) => Ok(caller_session.and_then(|c| c.mfa_authenticated_at)),
        _ => Err(StsError::Validation(
            "SerialNumber and TokenCode must be given together.".into(),
        )),
    }
}

/// The request as the trust policy and the caller's policies see it: the caller's keys, the
/// clock, MFA, the `sts:` keys, the requested tags and the role's tags (where the calling
/// session's transitive tags replace those of the same key).
fn assume_role_context(
    caller: &Caller,
    resolved: &Resolved<'_>,
    role: &RoleEntry,
    inherited: &[(String, String)],
    mfa_at: Option<i64>,
    p: &AssumeRoleParams<'_>,
    now: Timestamp,
) -> Context {
    let mut ctx = Context::new();
    resolved.fill_context(&caller.principal, &mut ctx);
    fill_session_context(caller.session.as_deref(), now, &mut ctx);
    set_clock(&mut ctx, now);
    if let Some(at) = mfa_at {
        ctx.insert("aws:MultiFactorAuthPresent", ContextValue::from_bool(true));
        ctx.insert(
            "aws:MultiFactorAuthAge",
            ContextValue::from_i64(now.epoch_seconds().saturating_sub(at).max(0)),
        );
    }
    ctx.insert(
        "sts:RoleSessionName",
        ContextValue::new(p.role_session_name),
    );
    if let Some(id) = p.external_id {
        ctx.insert("sts:ExternalId", ContextValue::new(id));
    }
    if let Some(source) = p.source_identity {
        ctx.insert("sts:SourceIdentity", ContextValue::new(source));
    }
    let request_tags: Vec<(&str, &str)> = p.tags.iter().map(|t| (&*t.key, &*t.value)).collect();
    set_request_tags(&mut ctx, &request_tags, p.transitive_tag_keys);
    insert_role_tags(&mut ctx, role);
    for (k, v) in inherited {
        ctx.insert(
            &format!("aws:ResourceTag/{k}"),
            ContextValue::new(v.as_str()),
        );
    }
    ctx
}

/// Which of the caller's policies a trial evaluates.
#[derive(Clone, Copy)]
enum TrialPolicies {
    /// Identity, boundary and session policies with the role's trust policy.
    All,
    /// The caller's own policies only.
    IdentityOnly,
    /// The role's trust policy only.
    TrustOnly,
}

/// The actions `AssumeRole` authorizes on the role, for one caller.
struct AssumeRoleTrial<'a> {
    principal: &'a Principal,
    resolved: &'a Resolved<'a>,
    session_policies: &'a [Arc<CompiledPolicy>],
    role: &'a RoleEntry,
    role_snapshot: &'a TenantSnapshot,
    chained: bool,
}

impl AssumeRoleTrial<'_> {
    /// Whether `action` on the role is allowed with `ctx` by the `which` policies. The request
    /// borrows the context by moving it in and back out: each trial would otherwise copy it
    /// (every key and value) and free the copy.
    fn allows(
        &self,
        action: &str,
        ctx: &mut Context,
        which: TrialPolicies,
    ) -> Result<bool, StsError> {
        let policies = match which {
            TrialPolicies::All => self
                .resolved
                .policy_set(Some(&self.role.trust), self.session_policies),
            TrialPolicies::IdentityOnly => self.resolved.policy_set(None, self.session_policies),
            TrialPolicies::TrustOnly => PolicySet {
                resource: Some(&self.role.trust),
                ..PolicySet::default()
            },
        };
        let mut request = Request::try_new(self.principal.clone(), action, &self.role.arn)
            .map(|r| {
                r.with_resource_account(self.role_snapshot.account_id())
                    .with_context(std::mem::take(ctx))
            })
            .map_err(|e| StsError::ServiceFailure(e.to_string()))?;
        let allowed = evaluate(&policies, &request).outcome == Outcome::Allow;
        *ctx = std::mem::take(request.context_mut());
        Ok(allowed)
    }

    /// Passing session tags needs `sts:TagSession`.
    fn check_tag_session(&self, ctx: &mut Context, tags: &[Tag]) -> Result<(), StsError> {
        if tags.is_empty() || self.allows("sts:TagSession", ctx, TrialPolicies::All)? {
            Ok(())
        } else {
            Err(action_denied(
                self.principal,
                "sts:TagSession",
                &self.role.arn,
            ))
        }
    }

    /// Setting a source identity (or carrying one through role chaining) needs
    /// `sts:SetSourceIdentity`: for a chained session, from both the caller's permissions and
    /// the role's trust policy (IAM-SEMANTICS §4.2).
    fn check_source_identity(
        &self,
        mut ctx: Context,
        asked: Option<&str>,
        source_identity: Option<&str>,
    ) -> Result<(), StsError> {
        if asked.is_none() && !(self.chained && source_identity.is_some()) {
            return Ok(());
        }
        if let Some(source) = source_identity {
            ctx.insert("sts:SourceIdentity", ContextValue::new(source));
        }
        let action = "sts:SetSourceIdentity";
        let allowed = if self.chained {
            self.allows(action, &mut ctx, TrialPolicies::IdentityOnly)?
                && self.allows(action, &mut ctx, TrialPolicies::TrustOnly)?
        } else {
            self.allows(action, &mut ctx, TrialPolicies::All)?
        };
        if allowed {
            Ok(())
        } else {
            Err(action_denied(self.principal, action, &self.role.arn))
        }
    }
}

/// What the new role session carries over or was granted, decided by the steps above.
struct RoleSession {
    inherited: Vec<(String, String)>,
    chained: bool,
    source_identity: Option<String>,
    mfa_at: Option<i64>,
    expires_at: i64,
}

/// The new session's claims: inherited then requested tags, the transitive keys of both, a
/// fresh access key id and token id.
fn role_session_claims(
    caller_session: Option<&SessionClaims>,
    role_snapshot: &TenantSnapshot,
    role: &RoleEntry,
    p: &AssumeRoleParams<'_>,
    session: RoleSession,
    env: &mut IssueEnv<'_>,
) -> SessionClaims {
    let mut tags = session.inherited;
    tags.extend(p.tags.iter().map(|t| (t.key.clone(), t.value.clone())));
    let mut transitive: Vec<String> = caller_session
        .map(|c| c.transitive_tag_keys.clone())
        .unwrap_or_default();
    transitive.extend(p.transitive_tag_keys.iter().cloned());
    SessionClaims {
        tenant: role_snapshot.account_id().to_owned(),
        access_key_id: env
            .ids
            .access_key_id(IdPrefix::TemporaryAccessKey, role_snapshot.account_id()),
        token_id: env.ids.base32(26),
        subject: SessionSubject::Role {
            role_name: role.name.to_string(),
            role_id: role.role_id.to_string(),
            session_name: p.role_session_name.to_owned(),
            chained: session.chained,
            federated_provider: None,
        },
        issued_at: env.now.epoch_seconds(),
        expires_at: session.expires_at,
        source_identity: session.source_identity,
        mfa_authenticated_at: session.mfa_at,
        session_policy: p.policy.map(str::to_owned),
        policy_arns: p.policy_arns.to_vec(),
        tags,
        transitive_tag_keys: transitive,
    }
}

/// `AssumeRoleWithWebIdentity`: no credentials; the OIDC token is verified against the JWKS
/// of the provider registered in the role's tenant.
pub fn assume_role_with_web_identity(
    role_snapshot: &TenantSnapshot,
    p: &WebIdentityParams<'_>,
    env: &mut IssueEnv<'_>,
) -> Result<WebIdentityIssued, StsError> {
    role_session_params(
        p.role_arn,
        p.role_session_name,
        p.duration_seconds,
        p.policy,
        p.policy_arns,
    )?;
    params::web_identity_token(p.web_identity_token)?;
    let token = UnverifiedToken::parse(p.web_identity_token)?;
    let provider = role_snapshot
        .oidc_provider(token.issuer())
        .ok_or_else(|| StsError::WebIdentity(super::jwt::JwtError::no_provider(token.issuer())))?;
    let claims = token.verify(&provider.jwks, &provider.url, &provider.client_ids, env.now)?;
    let principal = Principal::WebIdentity {
        provider: provider.arn.as_str().into(),
    };
    let denied = || action_denied(&principal, "sts:AssumeRoleWithWebIdentity", p.role_arn);
    let role = find_role(role_snapshot, p.role_arn).ok_or_else(denied)?;
    let duration = session_duration(p.duration_seconds, role, false)?;
    check_session_policies(role_snapshot, p.policy, p.policy_arns)?;
    let packed = packed_size(
        p.policy,
        p.policy_arns,
        claims.session_tags.iter().map(|(k, v)| (&**k, &**v)),
    )?;

    let mut ctx = Context::new();
    set_clock(&mut ctx, env.now);
    let prefix = condition_key_prefix(&provider.url);
    for (name, values) in &claims.claims {
        let key = format!("{prefix}:{name}");
        match values.as_slice() {
            [one] => ctx.insert(&key, ContextValue::new(one.as_str())),
            many => ctx.insert_multi(
                &key,
                many.iter().map(|v| ContextValue::new(v.as_str())).collect(),
            ),
        }
    }
    ctx.insert(
        "sts:RoleSessionName",
        ContextValue::new(p.role_session_name),
    );
    ctx.insert(
        "aws:FederatedProvider",
        ContextValue::new(provider.arn.as_str()),
    );
    let request_tags: Vec<(&str, &str)> = claims
        .session_tags
        .iter()
        .map(|(k, v)| (&**k, &**v))
        .collect();
    set_request_tags(&mut ctx, &request_tags, &claims.transitive_tag_keys);
    insert_role_tags(&mut ctx, role);
    let tagged = !request_tags.is_empty();
    trust_allows(
        role,
        role_snapshot,
        &principal,
        &ctx,
        &[
            ("sts:AssumeRoleWithWebIdentity", true),
            ("sts:TagSession", tagged),
        ],
    )?;

    let session = SessionClaims {
        tenant: role_snapshot.account_id().to_owned(),
        access_key_id: env
            .ids
            .access_key_id(IdPrefix::TemporaryAccessKey, role_snapshot.account_id()),
        token_id: env.ids.base32(26),
        subject: SessionSubject::Role {
            role_name: role.name.to_string(),
            role_id: role.role_id.to_string(),
            session_name: p.role_session_name.to_owned(),
            chained: false,
            federated_provider: Some(provider.arn.clone()),
        },
        issued_at: env.now.epoch_seconds(),
        expires_at: expiry(env, duration),
        source_identity: None,
        mfa_authenticated_at: None,
        session_policy: p.policy.map(str::to_owned),
        policy_arns: p.policy_arns.to_vec(),
        tags: claims.session_tags.clone(),
        transitive_tag_keys: claims.transitive_tag_keys.clone(),
    };
    let issued = mint(
        role_snapshot,
        role,
        &session,
        p.role_session_name,
        packed,
        env,
    )?;
    Ok(WebIdentityIssued {
        issued,
        subject: claims.subject,
        provider: claims.issuer,
        audience: claims.audience,
    })
}

/// `GetSessionToken`: temporary credentials with the user's own permissions, optionally with
/// MFA. Needs no permission (AWS: "you cannot use policies to control authentication
/// operations"); refused to callers that already use temporary credentials.
pub fn get_session_token(
    caller: &Caller,
    snapshot: &TenantSnapshot,
    p: &GetSessionTokenParams<'_>,
    env: &mut IssueEnv<'_>,
) -> Result<Issued, StsError> {
    if let Some(serial) = p.serial_number {
        params::serial_number(serial)?;
    }
    if let Some(code) = p.token_code {
        params::token_code(code)?;
    }
    if caller.session.is_some() {
        return Err(StsError::AccessDenied(
            "Cannot call GetSessionToken with session credentials".into(),
        ));
    }
    let (subject, id, arn, max, default) = match &caller.principal {
        Principal::User { arn, .. } => {
            let name = arn.rsplit('/').next().unwrap_or_default();
            let user = snapshot.user(name).ok_or(StsError::InvalidToken)?;
            (
                SessionSubject::User {
                    user_name: user.name.to_string(),
                    user_id: user.user_id.to_string(),
                },
                user.user_id.to_string(),
                arn.to_string(),
                129_600,
                43_200,
            )
        }
        Principal::Root { account } => (
            SessionSubject::Root,
            account.to_string(),
            format!("arn:aws:iam::{account}:root"),
            3600,
            3600,
        ),
        _ => return Err(StsError::InvalidToken),
    };
    let duration = p.duration_seconds.unwrap_or(default);
    params::duration(duration, 900, max)?;
    let mfa_at = match (p.serial_number, p.token_code) {
        (Some(serial), Some(code)) => {
            verify_mfa(snapshot, &caller.principal, serial, code, env)?;
            Some(env.now.epoch_seconds())
        }
        (None, None) => None,
        _ => {
            return Err(StsError::Validation(
                "SerialNumber and TokenCode must be given together.".into(),
            ))
        }
    };
    let claims = SessionClaims {
        tenant: snapshot.account_id().to_owned(),
        access_key_id: env
            .ids
            .access_key_id(IdPrefix::TemporaryAccessKey, snapshot.account_id()),
        token_id: env.ids.base32(26),
        subject,
        issued_at: env.now.epoch_seconds(),
        expires_at: expiry(env, duration),
        source_identity: None,
        mfa_authenticated_at: mfa_at,
        session_policy: None,
        policy_arns: Vec::new(),
        tags: Vec::new(),
        transitive_tag_keys: Vec::new(),
    };
    let (session_token, secret_access_key) = sign(snapshot, &claims, None, env)?;
    Ok(Issued {
        access_key_id: claims.access_key_id,
        secret_access_key,
        session_token,
        expiration: Timestamp::from_epoch_seconds(claims.expires_at),
        assumed_role_id: id,
        arn,
        packed_policy_size: 0,
        source_identity: None,
        tenant: claims.tenant,
    })
}

/// `GetCallerIdentity`: who the credentials belong to. Needs no permission and is never
/// denied, even by an explicit deny.
pub fn caller_identity(caller: &Caller, snapshot: &TenantSnapshot) -> CallerIdentity {
    let account = snapshot.account_id().to_owned();
    let (user_id, arn) = match &caller.principal {
        Principal::User { arn, .. } => {
            let id = arn
                .rsplit('/')
                .next()
                .and_then(|n| snapshot.user(n))
                .map(|u| u.user_id.to_string())
                .unwrap_or_default();
            (id, arn.to_string())
        }
        Principal::AssumedRole {
            session_name,
            role_unique_id,
            ..
        } => (
            format!(
                "{}:{session_name}",
                role_unique_id.as_deref().unwrap_or_default()
            ),
            caller.principal.to_string(),
        ),
        Principal::Root { account } => {
            (account.to_string(), format!("arn:aws:iam::{account}:root"))
        }
        other => (String::new(), other.to_string()),
    };
    CallerIdentity {
        user_id,
        account,
        arn,
    }
}

/// Now plus `duration`, capped by the environment's latest expiry.
fn expiry(env: &IssueEnv<'_>, duration: i32) -> i64 {
    let wanted = env.now.epoch_seconds().saturating_add(i64::from(duration));
    env.latest_expiry.map_or(wanted, |cap| wanted.min(cap))
}

/// The constraints `AssumeRole` and `AssumeRoleWithWebIdentity` share.
fn role_session_params(
    role_arn: &str,
    session_name: &str,
    duration_seconds: Option<i32>,
    policy: Option<&str>,
    policy_arns: &[String],
) -> Result<(), StsError> {
    params::role_arn(role_arn)?;
    params::role_session_name(session_name)?;
    if let Some(d) = duration_seconds {
        params::duration(d, 900, 43_200)?;
    }
    if let Some(policy) = policy {
        params::policy(policy)?;
    }
    if policy_arns.len() > MAX_POLICY_ARNS {
        return Err(StsError::Validation(format!(
            "1 validation error detected: Value at 'policyArns' failed to satisfy constraint: Member must have length less than or equal to {MAX_POLICY_ARNS}"
        )));
    }
    Ok(())
}

/// The role `arn` names, in any partition (`aws`, `aws-cn`, `aws-us-gov`): the ARN is split
/// with the policy language's splitter, and must then equal the role's own ARN.
fn find_role<'a>(snapshot: &'a TenantSnapshot, arn: &str) -> Option<&'a RoleEntry> {
    let parts = ArnParts::split(arn).filter(|p| p.service() == "iam")?;
    let name = parts.resource().strip_prefix("role/")?.rsplit('/').next()?;
    snapshot.role(name).filter(|r| &*r.arn == arn)
}

fn session_duration(asked: Option<i32>, role: &RoleEntry, chained: bool) -> Result<i32, StsError> {
    let duration = asked.unwrap_or(DEFAULT_ROLE_SESSION);
    if chained && duration > CHAINED_MAX {
        return Err(StsError::Validation(
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.".into(),
        ));
    }
    if i64::from(duration) > i64::from(role.max_session_duration) {
        return Err(StsError::Validation(
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
                .into(),
        ));
    }
    Ok(duration)
}

/// Checks the session policies at issue: the inline one parses with the session-policy rules
/// and every ARN names a managed policy the role's tenant has. They are compiled where they
/// are used, when the session's credentials are verified (`authenticate`), not here.
fn check_session_policies(
    snapshot: &TenantSnapshot,
    policy: Option<&str>,
    arns: &[String],
) -> Result<(), StsError> {
    if let Some(text) = policy {
        PolicyDocument::parse_with(text, ParseOptions::for_kind(PolicyKind::Session))
            .map_err(|e| StsError::MalformedPolicyDocument(e.message().to_owned()))?;
    }
    if let Some(arn) = arns
        .iter()
        .find(|arn| snapshot.managed_policy(arn).is_none())
    {
        return Err(StsError::Validation(format!(
            "Policy {arn} does not exist or is not attachable."
        )));
    }
    Ok(())
}

/// The packed size as a percentage of [`PACKED_LIMIT`]; over 100 % is refused.
fn packed_size<'a>(
    policy: Option<&str>,
    arns: &[String],
    tags: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<i32, StsError> {
    let used = policy.map_or(0, non_whitespace_len)
        + arns.iter().map(String::len).sum::<usize>()
        + tags.map(|(k, v)| k.len() + v.len()).sum::<usize>();
    let percent = (used * 100).div_ceil(PACKED_LIMIT);
    if used > PACKED_LIMIT {
        return Err(StsError::PackedPolicyTooLarge(format!(
            "Packed policy consumes {percent}% of allotted space, please use smaller policy."
        )));
    }
    // INVARIANT: `used <= PACKED_LIMIT` here, so `percent <= 100` always fits.
    Ok(i32::try_from(percent).unwrap_or(100))
}

fn verify_mfa(
    snapshot: &TenantSnapshot,
    principal: &Principal,
    serial: &str,
    code: &str,
    env: &IssueEnv<'_>,
) -> Result<(), StsError> {
    let failed = || {
        StsError::AccessDenied(
            "MultiFactorAuthentication failed with invalid MFA one time pass code.".into(),
        )
    };
    let Principal::User { arn, .. } = principal else {
        return Err(failed());
    };
    let user = arn.rsplit('/').next().unwrap_or_default();
    let device = snapshot
        .tenant()
        .mfa_devices
        .get(serial)
        .filter(|d| {
            d.user
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(user))
        })
        .ok_or_else(failed)?;
    // Around the step the device's clock is at, as `ResyncMFADevice` last measured it.
    let current = device.expected_step(env.now.epoch_seconds());
    // Steps the directory already consumed (the codes that enabled the device, or one
    // verified by the control plane) are spent everywhere, not only at the verifier that saw
    // them: the snapshot carries the last one.
    let step = (current.saturating_sub(1)..=current.saturating_add(1))
        .filter(|s| device.last_used_step.is_none_or(|last| *s > last))
        .find(|&s| {
            totp::code_at_step(device.seed.expose(), s)
                .is_some_and(|c| crate::jose::constant_time_eq(c.as_bytes(), code.as_bytes()))
        })
        .ok_or_else(failed)?;
    if !env.mfa.accept(snapshot.account_id(), serial, step) {
        return Err(failed());
    }
    Ok(())
}

fn set_clock(ctx: &mut Context, now: Timestamp) {
    ctx.insert("aws:CurrentTime", ContextValue::from_timestamp(now));
    ctx.insert("aws:EpochTime", ContextValue::from_i64(now.epoch_seconds()));
}

fn set_request_tags(ctx: &mut Context, tags: &[(&str, &str)], transitive: &[String]) {
    if tags.is_empty() {
        return;
    }
    for (k, v) in tags {
        ctx.insert(&format!("aws:RequestTag/{k}"), ContextValue::new(*v));
    }
    ctx.insert_multi(
        "aws:TagKeys",
        tags.iter().map(|(k, _)| ContextValue::new(*k)).collect(),
    );
    if !transitive.is_empty() {
        ctx.insert_multi(
            "sts:TransitiveTagKeys",
            transitive
                .iter()
                .map(|k| ContextValue::new(k.as_str()))
                .collect(),
        );
    }
}

/// The role's own tags, as `aws:ResourceTag/…` of an evaluation of its trust policy.
fn insert_role_tags(ctx: &mut Context, role: &RoleEntry) {
    for tag in &role.tags {
        ctx.insert(
            &format!("aws:ResourceTag/{}", tag.key),
            ContextValue::new(tag.value.as_str()),
        );
    }
}

/// Evaluates the role's trust policy alone for each `(action, needed)` that is needed, with
/// `ctx`: the first action it does not allow is `AccessDenied`, as AWS names it.
fn trust_allows(
    role: &RoleEntry,
    role_snapshot: &TenantSnapshot,
    principal: &Principal,
    ctx: &Context,
    actions: &[(&str, bool)],
) -> Result<(), StsError> {
    let trust = PolicySet {
        resource: Some(&role.trust),
        ..PolicySet::default()
    };
    for &(action, needed) in actions {
        if !needed {
            continue;
        }
        let request = Request::try_new(principal.clone(), action, &role.arn)
            .map_err(|e| StsError::ServiceFailure(e.to_string()))?
            .with_resource_account(role_snapshot.account_id())
            .with_context(ctx.clone());
        if evaluate(&trust, &request).outcome != Outcome::Allow {
            return Err(action_denied(principal, action, &role.arn));
        }
    }
    Ok(())
}

fn action_denied(principal: &Principal, action: &str, resource: &str) -> StsError {
    StsError::AccessDenied(format!(
        "User: {principal} is not authorized to perform: {action} on resource: {resource}"
    ))
}

fn mint(
    snapshot: &TenantSnapshot,
    role: &RoleEntry,
    claims: &SessionClaims,
    session_name: &str,
    packed: i32,
    env: &IssueEnv<'_>,
) -> Result<Issued, StsError> {
    let (session_token, secret_access_key) = sign(snapshot, claims, Some(&role.arn), env)?;
    Ok(Issued {
        access_key_id: claims.access_key_id.clone(),
        secret_access_key,
        session_token,
        expiration: Timestamp::from_epoch_seconds(claims.expires_at),
        assumed_role_id: format!("{}:{session_name}", role.role_id),
        arn: format!(
            "arn:aws:sts::{}:assumed-role/{}/{session_name}",
            snapshot.account_id(),
            role.name
        ),
        packed_policy_size: packed,
        source_identity: claims.source_identity.clone(),
        tenant: claims.tenant.clone(),
    })
}

/// Signs a session of `snapshot`'s tenant as `env` says: with the issuer key, or with this
/// sidecar's issuing key for the tenant when the session is within its certificate's scope
/// (`role_arn`: the role's, for a role session). A session outside the scope is refused
/// with AWS's `AccessDenied` and counted; the caller's audit records the refusal.
fn sign(
    snapshot: &TenantSnapshot,
    claims: &SessionClaims,
    role_arn: Option<&str>,
    env: &IssueEnv<'_>,
) -> Result<(String, String), StsError> {
    let credentials = match env.issuing {
        Issuing::IssuerKey => return Ok(snapshot.issuer_keys().mint(claims)?),
        Issuing::Certified(credentials) => credentials,
    };
    let Some(credential) = credentials.current(snapshot.account_id(), snapshot.issuer_keys())
    else {
        // A keyring holding the issuer's private half (a server fed tenants directly, not by
        // the stream, which never ships it) signs with it; a sidecar fed by the stream has
        // none, and mints nothing until its certificate arrives.
        if snapshot.issuer_keys().can_sign() {
            return Ok(snapshot.issuer_keys().mint(claims)?);
        }
        return Err(StsError::ServiceFailure(
            "This sidecar holds no issuing certificate for the account yet; it receives one \
             from the control plane."
                .into(),
        ));
    };
    let certificate = credential.claims();
    if !certificate.scope.permits(&claims.subject, role_arn) {
        credentials.count_out_of_scope();
        let what = match role_arn {
            Some(arn) => format!("sessions of role {arn}"),
            None => "GetSessionToken sessions".to_owned(),
        };
        return Err(StsError::AccessDenied(format!(
            "This sidecar ({}) is not authorized to issue {what}: they are outside the scope \
             of its issuing certificate.",
            certificate.sidecar
        )));
    }
    Ok(snapshot
        .issuer_keys()
        .mint_certified(&credential, claims, role_arn)?)
}

#[cfg(test)]
mod tests;
