//! The admin domain API: every admin operation, authenticated, authorized with IAM and
//! audited, for any edge (gRPC `iamlet.v1.Admin`, and AWS's IAM Query protocol on the HTTP
//! edge). An edge decodes the caller's credentials and the call's parameters, calls [`Admin`],
//! and renders the result.
//!
//! Store work (SQLite, fsync) is synchronous: an async edge runs these calls on its blocking
//! pool.

use std::sync::Arc;

use serde_json::Value;

use crate::directory::{DirectoryError, Secret};
use crate::snapshot::SnapshotVersion;
use crate::sts::sigv4::Signature;
use crate::sts::Presented;

use super::core::{ControlPlane, TenantSummary};
use super::declare::{PlannedAction, TenantSpec};
use super::store::{AuditEvent, ChangeRecord};
use super::{defaults_to_caller, AdminAuth, AdminCaller, AdminCredentials, AdminError, CallEnv};

mod sign_in;

pub use sign_in::{SignIn, SignInRequest, SignedIn, CONSOLE_LOGIN, CONSOLE_SESSION_SECONDS};

/// AWS's action for reading an account's audit trail.
const READ_TRAIL: &str = "cloudtrail:LookupEvents";
/// AWS's action for reading a whole account's IAM configuration.
const READ_DIRECTORY: &str = "iam:GetAccountAuthorizationDetails";

/// The most entries one listing returns.
const MAX_LIST: usize = 1_000;

/// Credentials an edge decoded from a call, owned so a blocking task can hold them.
#[derive(Debug)]
pub enum AdminPresented {
    /// A SigV4 signature over the call.
    Signed(Box<Signature>),
    /// An access key with its secret (only over TLS or from loopback).
    Keys {
        /// The key id.
        access_key_id: String,
        /// The secret.
        secret: Secret,
        /// The session token, for temporary credentials.
        session_token: Option<String>,
    },
    /// A verified client certificate (DER).
    Certificate(Vec<u8>),
    /// Nothing.
    None,
}

impl AdminPresented {
    fn credentials(&self) -> AdminCredentials<'_> {
        match self {
            Self::Signed(signature) => AdminCredentials::Key(Presented::Signed(signature)),
            Self::Keys {
                access_key_id,
                secret,
                session_token,
            } => AdminCredentials::Key(Presented::Keys {
                access_key_id,
                secret: secret.expose(),
                session_token: session_token.as_deref(),
            }),
            Self::Certificate(leaf) => AdminCredentials::Certificate(leaf),
            Self::None => AdminCredentials::None,
        }
    }
}

/// Who makes an admin call and how, as an edge decoded it.
#[derive(Debug)]
pub struct AdminCall {
    /// The credentials, or why they could not be read.
    pub credentials: Result<AdminPresented, AdminError>,
    /// The access key id the call claims (for the audit trail of a refused call), at most 32
    /// characters.
    pub claimed_key: Option<String>,
    /// The session token the call carries, if any (it names the tenant of a refused call).
    pub claimed_token: Option<String>,
    /// Where and when the call came from.
    pub env: CallEnv,
}

impl AdminCall {
    /// The tenant a refused call claims to belong to: its session token's, else its key's.
    fn claimed_tenant(&self) -> Option<String> {
        match &self.claimed_token {
            Some(token) => crate::jose::token_tenant(token).map(str::to_owned),
            None => self
                .claimed_key
                .as_deref()
                .and_then(crate::directory::IdPrefix::account_of_access_key),
        }
    }
}

/// The admin API over a control plane.
#[derive(Debug, Clone)]
pub struct Admin {
    control_plane: Arc<ControlPlane>,
    auth: Arc<AdminAuth>,
    /// The MFA steps console sign-ins used.
    console_mfa: Arc<sign_in::ConsoleMfaSteps>,
}

impl Admin {
    /// Serves `control_plane`, authenticating and authorizing with `auth`.
    pub fn new(control_plane: Arc<ControlPlane>, auth: Arc<AdminAuth>) -> Self {
        Self {
            control_plane,
            auth,
            console_mfa: Arc::default(),
        }
    }

    /// The control plane.
    pub fn control_plane(&self) -> &Arc<ControlPlane> {
        &self.control_plane
    }

    /// One IAM action (`CreateUser`, `AttachRolePolicy`, ...) on `tenant`, with its
    /// parameters as a JSON object. Returns the action's result and the tenant's version
    /// after it.
    pub fn call(
        &self,
        call: AdminCall,
        tenant: &str,
        action: &str,
        parameters: Value,
    ) -> Result<(Value, SnapshotVersion), AdminError> {
        self.call_with(call, tenant, action, || Ok(parameters))
    }

    /// [`Self::call`] with the parameters as JSON text (empty for none), read once the caller
    /// is authenticated.
    pub fn call_json(
        &self,
        call: AdminCall,
        tenant: &str,
        action: &str,
        parameters_json: &str,
    ) -> Result<(Value, SnapshotVersion), AdminError> {
        self.call_with(call, tenant, action, || {
            if parameters_json.trim().is_empty() {
                return Ok(Value::Object(serde_json::Map::new()));
            }
            serde_json::from_str(parameters_json).map_err(|e| AdminError::InvalidParameterValue {
                name: "parameters_json".into(),
                reason: format!("not JSON: {e}"),
            })
        })
    }

    fn call_with(
        &self,
        call: AdminCall,
        tenant: &str,
        action: &str,
        parameters: impl FnOnce() -> Result<Value, AdminError>,
    ) -> Result<(Value, SnapshotVersion), AdminError> {
        self.authenticated(
            call,
            audited_action(action),
            Some(tenant),
            |cp, auth, caller, env| {
                let mut parameters = parameters()?;
                let Some(map) = parameters.as_object_mut() else {
                    return Err(AdminError::InvalidParameterValue {
                        name: "parameters_json".into(),
                        reason: "expected a JSON object".into(),
                    });
                };
                // An IAM user who names no user acts on itself, as in AWS; `ChangePassword` is
                // always the caller's own, and only an IAM user's.
                if action == "ChangePassword" {
                    let user = caller.user_name().ok_or_else(|| {
                        AdminError::Directory(DirectoryError::InvalidUserType(
                            "Only IAM users can change their own password.".into(),
                        ))
                    })?;
                    map.insert("UserName".into(), Value::String(user.to_owned()));
                } else if let Some(user) = caller.user_name().filter(|_| defaults_to_caller(action))
                {
                    map.entry("UserName")
                        .or_insert_with(|| Value::String(user.to_owned()));
                }
                let checker = auth.checker(cp, caller, tenant, env)?;
                if action == "ChangePassword" {
                    check_old_password(cp, auth, &checker, caller, env, tenant, &parameters)?;
                }
                cp.call_checked(
                    tenant,
                    &caller.actor(),
                    action,
                    &parameters,
                    &|state, action, params| checker.check(state, action, params),
                )
            },
        )
    }

    /// Creates a tenant and its root key (the operator only). Returns the version and the root
    /// key id and secret, shown this once.
    pub fn create_tenant(
        &self,
        call: AdminCall,
        account_id: &str,
        alias: Option<&str>,
    ) -> Result<(SnapshotVersion, (String, Secret)), AdminError> {
        self.authenticated(call, "CreateTenant", None, |cp, _, caller, _| {
            operator_only(caller, "CreateTenant")?;
            cp.create_tenant_with_root(account_id, alias, &caller.actor())
        })
    }

    /// Deletes a tenant (the operator only).
    pub fn delete_tenant(&self, call: AdminCall, account_id: &str) -> Result<(), AdminError> {
        self.authenticated(
            call,
            "DeleteTenant",
            Some(account_id),
            |cp, _, caller, _| {
                operator_only(caller, "DeleteTenant")?;
                cp.delete_tenant(account_id, &caller.actor())
            },
        )
    }

    /// Every tenant (the operator only).
    pub fn list_tenants(&self, call: AdminCall) -> Result<Vec<TenantSummary>, AdminError> {
        self.authenticated(call, "ListTenants", None, |cp, _, caller, _| {
            operator_only(caller, "ListTenants")?;
            Ok(cp.list_tenants())
        })
    }

    /// The tenant as a declarative spec (JSON); needs `iam:GetAccountAuthorizationDetails`.
    pub fn export_tenant(&self, call: AdminCall, tenant: &str) -> Result<String, AdminError> {
        self.authenticated(
            call,
            "ExportTenant",
            Some(tenant),
            |cp, auth, caller, env| {
                may_read_account(cp, auth, caller, env, tenant, READ_DIRECTORY)?;
                Ok(cp.export(tenant)?.to_json()?)
            },
        )
    }

    /// Converges a tenant to a declarative spec (YAML or JSON), each planned action
    /// authorized as if called alone. Returns the plan and, unless a dry run, the version.
    pub fn apply_tenant(
        &self,
        call: AdminCall,
        spec_text: &str,
        dry_run: bool,
    ) -> Result<(Vec<PlannedAction>, Option<SnapshotVersion>), AdminError> {
        let parsed = TenantSpec::from_yaml_or_json(spec_text);
        let target = parsed.as_ref().ok().map(|s| s.account_id.clone());
        self.authenticated(
            call,
            "ApplyTenant",
            target.as_deref(),
            |cp, auth, caller, env| {
                let spec = parsed?;
                if cp.tenant(&spec.account_id).is_none() {
                    operator_only(caller, "CreateTenant")?;
                }
                let checker = auth.checker(cp, caller, &spec.account_id, env)?;
                // Planning reads the whole tenant: the caller must be allowed to (else a denial
                // naming the plan's first step would tell what the tenant holds).
                checker.check_named(READ_DIRECTORY, "*", crate::authz::Context::new())?;
                cp.apply_spec_checked(&spec, &caller.actor(), dry_run, &|state, action, params| {
                    checker.check(state, action, params)
                })
            },
        )
    }

    /// The tenant's changes after `after_seq` (the audit trail); needs
    /// `cloudtrail:LookupEvents`.
    pub fn list_changes(
        &self,
        call: AdminCall,
        tenant: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<ChangeRecord>, AdminError> {
        self.authenticated(
            call,
            "ListChanges",
            Some(tenant),
            |cp, auth, caller, env| {
                may_read_account(cp, auth, caller, env, tenant, READ_TRAIL)?;
                cp.changes(tenant, after_seq, list_limit(limit))
            },
        )
    }

    /// The tenant's audit events (denials, failed authentications, root use) after
    /// `after_id`; needs `cloudtrail:LookupEvents`.
    pub fn list_events(
        &self,
        call: AdminCall,
        tenant: &str,
        after_id: u64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, AdminError> {
        self.authenticated(call, "ListEvents", Some(tenant), |cp, auth, caller, env| {
            may_read_account(cp, auth, caller, env, tenant, READ_TRAIL)?;
            cp.events(tenant, after_id, list_limit(limit))
        })
    }

    /// Authenticates `call` (for `action`) and nothing more: what an edge checks before it
    /// reads a large message. A refusal is counted and audited as any failed authentication.
    pub fn authenticate_only(&self, call: AdminCall, action: &str) -> Result<(), AdminError> {
        self.authenticate(call, action).map(drop)
    }

    /// Who makes `call`; a failure is recorded in the tenant the key claims, if it exists
    /// (never in a throttled flood), with the key id and never a secret.
    fn authenticate(
        &self,
        call: AdminCall,
        action: &str,
    ) -> Result<(AdminCaller, CallEnv), AdminError> {
        let (cp, auth) = (&*self.control_plane, &*self.auth);
        let claimed_tenant = call.claimed_tenant();
        let AdminCall {
            credentials,
            claimed_key,
            env,
            ..
        } = call;
        let authenticated = match credentials {
            Ok(presented) => auth.authenticate(cp, presented.credentials(), &env),
            Err(error) => Err(auth.refuse(error, &env, claimed_key.as_deref().unwrap_or_default())),
        };
        match authenticated {
            Ok(caller) => Ok((caller, env)),
            Err(error) => {
                if let Some(account) = claimed_tenant
                    .filter(|t| cp.tenant(t).is_some())
                    .filter(|_| !matches!(error, AdminError::Throttling))
                {
                    cp.record_event(audit_event(
                        account,
                        &claimed_key.unwrap_or_default(),
                        action,
                        "AuthFailure",
                        false,
                        &format!("{}: {error}", error.code()),
                        &env,
                    ));
                }
                Err(error)
            }
        }
    }

    /// Authenticates one call, then runs `handle` with the caller, and records in the
    /// tenant's audit events what must be: failed authentications, denials, and every use of
    /// root credentials.
    fn authenticated<R>(
        &self,
        call: AdminCall,
        action: &str,
        target_tenant: Option<&str>,
        handle: impl FnOnce(&ControlPlane, &AdminAuth, &AdminCaller, CallEnv) -> Result<R, AdminError>,
    ) -> Result<R, AdminError> {
        let (cp, auth) = (&*self.control_plane, &*self.auth);
        let (caller, env) = self.authenticate(call, action)?;
        let own = match &caller {
            AdminCaller::Tenant { account, .. } => Some(account.clone()),
            AdminCaller::Operator { .. } => None,
        };
        let result = handle(cp, auth, &caller, env);
        let account = target_tenant.map(str::to_owned).or(own);
        if let Some(account) = account.filter(|a| cp.tenant(a).is_some()) {
            match &result {
                Err(error @ AdminError::AccessDenied(_)) => {
                    auth.count_denied();
                    cp.record_event(audit_event(
                        account,
                        &caller.actor(),
                        action,
                        "AccessDenied",
                        caller.is_root(),
                        &error.to_string(),
                        &env,
                    ));
                }
                _ if caller.is_root() => cp.record_event(audit_event(
                    account,
                    &caller.actor(),
                    action,
                    if result.is_ok() { "Allowed" } else { "Failed" },
                    true,
                    "",
                    &env,
                )),
                _ => {}
            }
        }
        result
    }
}

/// An audit event, its fields bounded.
fn audit_event(
    account: String,
    actor: &str,
    action: &str,
    outcome: &str,
    root: bool,
    detail: &str,
    env: &CallEnv,
) -> AuditEvent {
    AuditEvent {
        account_id: account,
        id: 0,
        at: 0,
        actor: actor.chars().take(256).collect(),
        action: action.to_owned(),
        outcome: outcome.to_owned(),
        root,
        detail: detail.chars().take(1024).collect(),
        source: env.source.map(|ip| ip.to_string()).unwrap_or_default(),
    }
}

/// The action as the audit trail records it: only an action iamlet has, since anything else
/// could be any size or text.
fn audited_action(action: &str) -> &str {
    if super::dispatch::ACTIONS.contains(&action) {
        action
    } else {
        "<invalid action>"
    }
}

/// `ChangePassword`'s proof, checked before the write lock is taken (the hash is slow on
/// purpose) and only for a caller allowed the action: a wrong old password counts as a
/// failed authentication of the caller's key, so guesses are throttled, and is audited.
fn check_old_password(
    cp: &ControlPlane,
    auth: &AdminAuth,
    checker: &super::Checker<'_>,
    caller: &AdminCaller,
    env: CallEnv,
    tenant: &str,
    parameters: &Value,
) -> Result<(), AdminError> {
    let (state, _) = cp
        .tenant(tenant)
        .ok_or_else(|| AdminError::NoSuchTenant(tenant.to_owned()))?;
    checker.check(&state, "ChangePassword", parameters)?;
    let field = |name: &str| parameters.get(name).and_then(Value::as_str);
    let hash = field("UserName")
        .and_then(|u| state.users.get(&u.to_lowercase()))
        .and_then(|u| u.login_profile.as_ref())
        .map(|p| &p.password_hash);
    match (hash, field("OldPassword")) {
        (Some(hash), Some(old)) if !crate::directory::verify_password(hash, old) => {
            auth.count_failed_proof(&env, caller);
            Err(AdminError::AccessDenied(
                "The old password is incorrect.".into(),
            ))
        }
        // Missing parameters and profiles are the action's own errors, under the lock.
        _ => Ok(()),
    }
}

/// Whether `caller` may do `action` (one of the account-wide reads) on `tenant`.
fn may_read_account(
    cp: &ControlPlane,
    auth: &AdminAuth,
    caller: &AdminCaller,
    env: CallEnv,
    tenant: &str,
    action: &str,
) -> Result<(), AdminError> {
    auth.checker(cp, caller, tenant, env)?
        .check_named(action, "*", crate::authz::Context::new())
}

/// Refuses tenant lifecycle calls to anyone but the operator.
fn operator_only(caller: &AdminCaller, action: &str) -> Result<(), AdminError> {
    match caller {
        AdminCaller::Operator { .. } => Ok(()),
        AdminCaller::Tenant { .. } => Err(AdminError::AccessDenied(format!(
            "User: {} is not authorized to perform: iamlet:{action}: only the platform operator \
             manages tenants",
            caller.actor()
        ))),
    }
}

fn list_limit(limit: u32) -> usize {
    match limit {
        0 => 100,
        n => usize::try_from(n).map_or(MAX_LIST, |n| n.min(MAX_LIST)),
    }
}
