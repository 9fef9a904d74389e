//! The control plane's gRPC services: `iamlet.v1.Admin` and `iamlet.v1.Sync`.
//!
//! Requests are decoded here, once; handlers call [`ControlPlane`]; errors become statuses in
//! [`status`] and nowhere else. Store work (SQLite, fsync) runs on the blocking pool so it never
//! stalls the async workers serving streams.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::directory::{DirectoryError, Secret};
use crate::policy::Timestamp;
use crate::proto::v1 as pb;
use crate::snapshot::SnapshotVersion;
use crate::sts::sigv4::{Signature, SignedRequest};
use crate::sts::Presented;
use crate::tls::TenantAccess;

use super::core::{ControlPlane, ShippedTenant};
use super::store::AuditEvent;
use super::{defaults_to_caller, AdminAuth, AdminCaller, AdminCredentials, AdminError, CallEnv};

/// How long a quiet stream waits before it sends a heartbeat.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);

/// The payload bytes one `Watch` response carries at most (unless one tenant alone is larger):
/// well under gRPC's customary 4 MiB message limit, so a large state arrives in chunks.
pub const MAX_RESPONSE_PAYLOAD: usize = 1 << 20;

/// The largest message a sidecar accepts: room for one very large tenant.
pub const MAX_SYNC_MESSAGE: usize = 64 << 20;

/// `iamlet.v1.Admin`.
#[derive(Debug, Clone)]
pub struct AdminService {
    control_plane: Arc<ControlPlane>,
    auth: Arc<AdminAuth>,
    secure_transport: bool,
}

/// `iamlet.v1.Sync`.
#[derive(Debug, Clone)]
pub struct SyncService {
    control_plane: Arc<ControlPlane>,
    heartbeat: Duration,
    access: Option<Arc<TenantAccess>>,
    admission: Arc<SyncAdmission>,
    secure_transport: bool,
}

/// Who may stream tenants (and with them every secret a sidecar needs) besides clients
/// whose certificates `TenantAccess` maps.
#[derive(Debug)]
pub struct SyncAdmission {
    /// Sync keys (`--sync-credentials`): a sidecar presenting one may stream every tenant.
    pub keys: Vec<super::OperatorKey>,
    /// Any peer may stream every tenant (`--insecure-open-sync`): only where the network
    /// alone decides who reaches the port.
    pub open: bool,
    /// Loopback peers may stream every tenant. `iamlet control-plane` allows them only when
    /// it listens on loopback, or with `--sync-allow-loopback`: behind a proxy in the pod (a
    /// service mesh, `kubectl port-forward`) every peer is loopback.
    pub loopback: bool,
}

impl Default for SyncAdmission {
    /// Certificates and loopback peers, no keys (in-process use and `iamlet up`).
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            open: false,
            loopback: true,
        }
    }
}

/// Why a stream was refused, before anything was read.
const SYNC_UNAUTHENTICATED: &str = "the sync API needs a client certificate (mutual TLS), sync \
     credentials (--sync-credentials) or a loopback peer";

// === impl SyncAdmission ===

impl SyncAdmission {
    /// Whether a stream may start: a presented sync key must be one of [`Self::keys`]; else
    /// a verified client certificate, a loopback peer or an open admission lets it in.
    pub fn admit(
        &self,
        presented: Option<(&str, &str)>,
        has_certificate: bool,
        peer: Option<std::net::SocketAddr>,
        secure_transport: bool,
    ) -> Result<(), Status> {
        let loopback = peer.is_some_and(|p| p.ip().to_canonical().is_loopback());
        if let Some((id, secret)) = presented {
            // A key in the clear travels only where nobody can read it.
            if !secure_transport && !loopback {
                return Err(Status::unauthenticated(
                    "sync credentials are accepted only over TLS or from loopback",
                ));
            }
            let valid = self
                .keys
                .iter()
                .any(|k| k.access_key_id == id && k.secret_matches(secret));
            return if valid {
                Ok(())
            } else {
                Err(Status::unauthenticated(
                    "the sync credentials are not valid",
                ))
            };
        }
        if has_certificate || self.open || (self.loopback && loopback) {
            Ok(())
        } else {
            Err(Status::unauthenticated(SYNC_UNAUTHENTICATED))
        }
    }
}

/// The one place admin errors become gRPC statuses. The AWS error code travels as the
/// `ErrorInfo` reason (domain `iam.amazonaws.com`); the message is AWS's text.
pub fn status(error: &AdminError) -> Status {
    crate::grpc::to_status(
        error.code(),
        &error.to_string(),
        crate::grpc::ErrorDomain::Iam,
    )
}

pub use crate::grpc::aws_error_code;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AdminError> + Send + 'static,
) -> Result<T, Status> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(|e| status(&e)),
        Err(join) => Err(Status::internal(format!(
            "the call did not complete: {join}"
        ))),
    }
}

use super::admin_auth::ADMIN_SIGNING_HOST;

/// What an admin call brings besides its message, read before the message is taken.
struct Edge {
    headers: Vec<(String, String)>,
    leaf: Option<Vec<u8>>,
    env: CallEnv,
}

/// Credentials decoded from the metadata, owned so the blocking task can hold them.
enum Decoded {
    Signed(Box<Signature>),
    Keys {
        access_key_id: String,
        secret: Secret,
        session_token: Option<String>,
    },
    Certificate(Vec<u8>),
    None,
}

// === impl Edge ===

impl Edge {
    fn read<T>(request: &Request<T>, secure_transport: bool) -> Self {
        let headers = request
            .metadata()
            .iter()
            .filter_map(|entry| match entry {
                tonic::metadata::KeyAndValueRef::Ascii(key, value) => value
                    .to_str()
                    .ok()
                    .map(|v| (key.as_str().to_owned(), v.to_owned())),
                tonic::metadata::KeyAndValueRef::Binary(..) => None,
            })
            .filter(|(name, _)| name != "host")
            .chain(std::iter::once((
                "host".to_owned(),
                ADMIN_SIGNING_HOST.to_owned(),
            )))
            .collect();
        let leaf = request
            .peer_certs()
            .and_then(|certs| certs.first().map(|c| c.as_ref().to_vec()));
        Self {
            headers,
            leaf,
            env: CallEnv {
                source: request.remote_addr().map(|a| a.ip()),
                secure_transport,
                now: Timestamp::now(),
            },
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The access key id the call claims (from the signature's credential or the key
    /// header) and the tenant it names, for the audit trail of a refused call.
    fn claimed(&self) -> (Option<String>, Option<String>) {
        let key = self
            .header("authorization")
            .and_then(|a| a.split_once("Credential="))
            .and_then(|(_, rest)| rest.split('/').next())
            .or_else(|| self.header("x-iamlet-access-key-id"))
            .map(|k| k.chars().take(32).collect::<String>());
        let tenant = match self.header("x-amz-security-token") {
            Some(token) => crate::sts::token::token_tenant(token).map(str::to_owned),
            None => key
                .as_deref()
                .and_then(crate::directory::IdPrefix::account_of_access_key),
        };
        (key, tenant)
    }

    /// The credentials: a SigV4 `authorization` over `method` and the message whose hash is
    /// `payload_sha256`, else an access key and secret, else a client certificate.
    fn decode(&self, method: &str, payload_sha256: &str) -> Result<Decoded, AdminError> {
        let decoded = if self.header("authorization").is_some() {
            let path = format!("/iamlet.v1.Admin/{method}");
            let signed = SignedRequest {
                method: "POST",
                path: &path,
                query: "",
                headers: &self.headers,
                payload_sha256: Some(payload_sha256),
            };
            let signature = Signature::parse(&signed).map_err(|e| AdminError::Authentication {
                code: e.code(),
                message: e.to_string(),
            })?;
            // The claimed payload hash must be the message's: the signature covers the claim.
            if self.header("x-amz-content-sha256") != Some(payload_sha256) {
                return Err(AdminError::Authentication {
                    code: crate::error::AwsCode::SignatureDoesNotMatch,
                    message: "x-amz-content-sha256 is not the SHA-256 of the request message."
                        .into(),
                });
            }
            if signature.service() != "iam" {
                return Err(AdminError::Authentication {
                    code: crate::error::AwsCode::SignatureDoesNotMatch,
                    message: format!(
                        "Credential should be scoped to correct service: 'iam', not '{}'.",
                        signature.service().chars().take(32).collect::<String>()
                    ),
                });
            }
            Decoded::Signed(Box::new(signature))
        } else if let Some(id) = self.header("x-iamlet-access-key-id") {
            // A secret in the clear travels only where nobody can read it.
            let loopback = self.env.source.is_some_and(|ip| ip.is_loopback());
            if !self.env.secure_transport && !loopback {
                return Err(AdminError::Authentication {
                    code: crate::error::AwsCode::InvalidClientTokenId,
                    message: "A secret access key is accepted only over TLS or from loopback; \
                              sign the call with SigV4 instead."
                        .into(),
                });
            }
            Decoded::Keys {
                access_key_id: id.to_owned(),
                secret: Secret::new(
                    self.header("x-iamlet-secret-access-key")
                        .unwrap_or_default(),
                ),
                session_token: self.header("x-amz-security-token").map(str::to_owned),
            }
        } else if let Some(leaf) = &self.leaf {
            Decoded::Certificate(leaf.clone())
        } else {
            Decoded::None
        };
        Ok(decoded)
    }
}

// === impl Decoded ===

impl Decoded {
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

// === impl AdminService ===

impl AdminService {
    /// Serves `control_plane`, authenticating tenants' principals (no operator: tenants can
    /// then only be created in process).
    pub fn new(control_plane: Arc<ControlPlane>) -> Self {
        Self {
            control_plane,
            auth: Arc::new(AdminAuth::new(Vec::new(), Vec::new())),
            secure_transport: false,
        }
    }

    /// Authenticates and authorizes with `auth`.
    #[must_use]
    pub fn with_auth(mut self, auth: Arc<AdminAuth>) -> Self {
        self.auth = auth;
        self
    }

    /// Reports `aws:SecureTransport` true (the service is served over TLS).
    #[must_use]
    pub fn with_secure_transport(mut self, secure: bool) -> Self {
        self.secure_transport = secure;
        self
    }

    /// The tonic server; a declared tenant or an export may be larger than gRPC's customary
    /// 4 MiB message limit.
    pub fn into_server(self) -> pb::admin_server::AdminServer<Self> {
        pb::admin_server::AdminServer::new(self)
            .max_decoding_message_size(MAX_SYNC_MESSAGE)
            .max_encoding_message_size(MAX_SYNC_MESSAGE)
    }

    /// Authenticates one call, then runs `handle` with the caller on the blocking pool, and
    /// records in the tenant's audit events what must be: failed authentications, denials,
    /// and every use of root credentials.
    async fn authorized<M, R>(
        &self,
        request: Request<M>,
        method: &'static str,
        action: impl FnOnce(&M) -> (String, Option<String>),
        handle: impl FnOnce(&ControlPlane, &AdminAuth, &AdminCaller, CallEnv, M) -> Result<R, AdminError>
            + Send
            + 'static,
    ) -> Result<R, Status>
    where
        M: prost::Message + Send + 'static,
        R: Send + 'static,
    {
        let edge = Edge::read(&request, self.secure_transport);
        let message = request.into_inner();
        let payload_sha256 = hex_sha256(&message.encode_to_vec());
        let (action, target_tenant) = action(&message);
        // The audit trail records what the caller sent only when it is an action iamlet has:
        // anything else could be any size or text.
        let action = if super::dispatch::ACTIONS.contains(&action.as_str())
            || action.starts_with(char::is_uppercase) && action.len() <= 32 && method != "Call"
        {
            action
        } else {
            "<invalid action>".to_owned()
        };
        let cp = Arc::clone(&self.control_plane);
        let auth = Arc::clone(&self.auth);
        blocking(move || {
            let source = edge.env.source.map(|ip| ip.to_string()).unwrap_or_default();
            let event =
                |account: String, actor: String, outcome: &str, root: bool, detail: String| {
                    AuditEvent {
                        account_id: account,
                        id: 0,
                        at: 0,
                        actor: actor.chars().take(256).collect(),
                        action: action.clone(),
                        outcome: outcome.to_owned(),
                        root,
                        detail: detail.chars().take(1024).collect(),
                        source: source.clone(),
                    }
                };
            let env = edge.env;
            let authenticated = match edge.decode(method, &payload_sha256) {
                Ok(decoded) => auth.authenticate(&cp, decoded.credentials(), &env),
                Err(error) => {
                    Err(auth.refuse(error, &env, edge.claimed().0.as_deref().unwrap_or_default()))
                }
            };
            let caller = match authenticated {
                Ok(caller) => caller,
                Err(error) => {
                    // A failure is recorded in the tenant the key claims, if it exists (never
                    // in a throttled flood), with the key id and never a secret.
                    let (key, tenant) = edge.claimed();
                    if let Some(account) = tenant
                        .filter(|t| cp.tenant(t).is_some())
                        .filter(|_| !matches!(error, AdminError::Throttling))
                    {
                        cp.record_event(event(
                            account,
                            key.unwrap_or_default(),
                            "AuthFailure",
                            false,
                            format!("{}: {error}", error.code()),
                        ));
                    }
                    return Err(error);
                }
            };
            let own = match &caller {
                AdminCaller::Tenant { account, .. } => Some(account.clone()),
                AdminCaller::Operator { .. } => None,
            };
            let result = handle(&cp, &auth, &caller, env, message);
            let account = target_tenant.or(own);
            if let Some(account) = account.filter(|a| cp.tenant(a).is_some()) {
                match &result {
                    Err(error @ AdminError::AccessDenied(_)) => {
                        auth.count_denied();
                        cp.record_event(event(
                            account,
                            caller.actor(),
                            "AccessDenied",
                            caller.is_root(),
                            error.to_string(),
                        ));
                    }
                    _ if caller.is_root() => cp.record_event(event(
                        account,
                        caller.actor(),
                        if result.is_ok() { "Allowed" } else { "Failed" },
                        true,
                        String::new(),
                    )),
                    _ => {}
                }
            }
            result
        })
        .await
    }
}

/// A request signed with `credentials` for `method` (SigV4 over the encoded message).
pub fn signed_admin_request<T: prost::Message>(
    message: T,
    method: &str,
    credentials: Option<&super::Profile>,
) -> tonic::Request<T> {
    let Some(creds) = credentials else {
        return tonic::Request::new(message);
    };
    let headers = super::sign_admin_call(
        method,
        &message.encode_to_vec(),
        &creds.access_key_id,
        creds.secret_access_key.expose(),
        creds.session_token.as_deref(),
        crate::policy::Timestamp::now(),
    );
    let mut request = tonic::Request::new(message);
    for (name, value) in headers {
        if let Ok(value) = value.parse() {
            request.metadata_mut().insert(name, value);
        }
    }
    request
}

fn hex_sha256(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
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

/// AWS's action for reading an account's audit trail.
const READ_TRAIL: &str = "cloudtrail:LookupEvents";
/// AWS's action for reading a whole account's IAM configuration.
const READ_DIRECTORY: &str = "iam:GetAccountAuthorizationDetails";

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
        n => n.min(1_000) as usize,
    }
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn call(
        &self,
        request: Request<pb::CallRequest>,
    ) -> Result<Response<pb::CallResponse>, Status> {
        let (result, version) = self
            .authorized(
                request,
                "Call",
                |m| (m.action.clone(), Some(m.tenant.clone())),
                |cp, auth, caller, env, message| {
                    let pb::CallRequest {
                        tenant,
                        action,
                        parameters_json,
                    } = message;
                    let mut parameters: Value = if parameters_json.trim().is_empty() {
                        Value::Object(serde_json::Map::new())
                    } else {
                        serde_json::from_str(&parameters_json).map_err(|e| {
                            AdminError::InvalidParameterValue {
                                name: "parameters_json".into(),
                                reason: format!("not JSON: {e}"),
                            }
                        })?
                    };
                    let Some(map) = parameters.as_object_mut() else {
                        return Err(AdminError::InvalidParameterValue {
                            name: "parameters_json".into(),
                            reason: "expected a JSON object".into(),
                        });
                    };
                    // An IAM user who names no user acts on itself, as in AWS; `ChangePassword`
                    // is always the caller's own, and only an IAM user's.
                    if action == "ChangePassword" {
                        let user = caller.user_name().ok_or_else(|| {
                            AdminError::Directory(DirectoryError::InvalidUserType(
                                "Only IAM users can change their own password.".into(),
                            ))
                        })?;
                        map.insert("UserName".into(), Value::String(user.to_owned()));
                    } else if let Some(user) =
                        caller.user_name().filter(|_| defaults_to_caller(&action))
                    {
                        map.entry("UserName")
                            .or_insert_with(|| Value::String(user.to_owned()));
                    }
                    let checker = auth.checker(cp, caller, &tenant, env)?;
                    if action == "ChangePassword" {
                        check_old_password(cp, auth, &checker, caller, env, &tenant, &parameters)?;
                    }
                    cp.call_checked(
                        &tenant,
                        &caller.actor(),
                        &action,
                        &parameters,
                        &|state, action, params| checker.check(state, action, params),
                    )
                },
            )
            .await?;
        Ok(Response::new(pb::CallResponse {
            result_json: result.to_string(),
            version: Some(version.into()),
        }))
    }

    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::CreateTenantResponse>, Status> {
        let (version, (key_id, secret)) = self
            .authorized(
                request,
                "CreateTenant",
                |_| ("CreateTenant".into(), None),
                |cp, _, caller, _, message| {
                    operator_only(caller, "CreateTenant")?;
                    let pb::CreateTenantRequest { account_id, alias } = message;
                    cp.create_tenant_with_root(&account_id, Some(&alias), &caller.actor())
                },
            )
            .await?;
        Ok(Response::new(pb::CreateTenantResponse {
            version: Some(version.into()),
            root_access_key_id: key_id,
            root_secret_access_key: secret.expose().to_owned(),
        }))
    }

    async fn delete_tenant(
        &self,
        request: Request<pb::DeleteTenantRequest>,
    ) -> Result<Response<pb::DeleteTenantResponse>, Status> {
        self.authorized(
            request,
            "DeleteTenant",
            |m| ("DeleteTenant".into(), Some(m.account_id.clone())),
            |cp, _, caller, _, message| {
                operator_only(caller, "DeleteTenant")?;
                cp.delete_tenant(&message.account_id, &caller.actor())
            },
        )
        .await?;
        Ok(Response::new(pb::DeleteTenantResponse {}))
    }

    async fn list_tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        let tenants = self
            .authorized(
                request,
                "ListTenants",
                |_| ("ListTenants".into(), None),
                |cp, _, caller, _, _| {
                    operator_only(caller, "ListTenants")?;
                    Ok(cp.list_tenants())
                },
            )
            .await?
            .into_iter()
            .map(|t| pb::TenantSummary {
                account_id: t.account_id,
                alias: t.alias.unwrap_or_default(),
                version: Some(t.version.into()),
            })
            .collect();
        Ok(Response::new(pb::ListTenantsResponse { tenants }))
    }

    async fn export_tenant(
        &self,
        request: Request<pb::ExportTenantRequest>,
    ) -> Result<Response<pb::ExportTenantResponse>, Status> {
        let spec_json = self
            .authorized(
                request,
                "ExportTenant",
                |m| ("ExportTenant".into(), Some(m.tenant.clone())),
                |cp, auth, caller, env, message| {
                    may_read_account(cp, auth, caller, env, &message.tenant, READ_DIRECTORY)?;
                    let spec = cp.export(&message.tenant)?;
                    Ok(spec.to_json()?)
                },
            )
            .await?;
        Ok(Response::new(pb::ExportTenantResponse { spec_json }))
    }

    async fn apply_tenant(
        &self,
        request: Request<pb::ApplyTenantRequest>,
    ) -> Result<Response<pb::ApplyTenantResponse>, Status> {
        let tenant_of = |m: &pb::ApplyTenantRequest| {
            super::TenantSpec::from_yaml_or_json(&m.spec_json)
                .ok()
                .map(|s| s.account_id)
        };
        let (actions, version) = self
            .authorized(
                request,
                "ApplyTenant",
                |m| ("ApplyTenant".into(), tenant_of(m)),
                |cp, auth, caller, env, message| {
                    let spec = super::TenantSpec::from_yaml_or_json(&message.spec_json)?;
                    if cp.tenant(&spec.account_id).is_none() {
                        operator_only(caller, "CreateTenant")?;
                    }
                    let checker = auth.checker(cp, caller, &spec.account_id, env)?;
                    // Planning reads the whole tenant: the caller must be allowed to (else a
                    // denial naming the plan's first step would tell what the tenant holds).
                    checker.check_named(READ_DIRECTORY, "*", crate::authz::Context::new())?;
                    cp.apply_spec_checked(
                        &spec,
                        &caller.actor(),
                        message.dry_run,
                        &|state, action, params| checker.check(state, action, params),
                    )
                },
            )
            .await?;
        Ok(Response::new(pb::ApplyTenantResponse {
            actions_json: serde_json::to_string(&actions).unwrap_or_else(|_| "[]".into()),
            version: version.map(Into::into),
        }))
    }

    async fn list_changes(
        &self,
        request: Request<pb::ListChangesRequest>,
    ) -> Result<Response<pb::ListChangesResponse>, Status> {
        let changes = self
            .authorized(
                request,
                "ListChanges",
                |m| ("ListChanges".into(), Some(m.tenant.clone())),
                |cp, auth, caller, env, message| {
                    may_read_account(cp, auth, caller, env, &message.tenant, READ_TRAIL)?;
                    cp.changes(
                        &message.tenant,
                        message.after_seq,
                        list_limit(message.limit),
                    )
                },
            )
            .await?;
        Ok(Response::new(pb::ListChangesResponse {
            changes: changes
                .into_iter()
                .map(|c| pb::Change {
                    seq: c.seq,
                    at: c.at,
                    actor: c.actor,
                    action: c.action,
                    parameters_json: c.parameters.to_string(),
                })
                .collect(),
        }))
    }

    async fn list_events(
        &self,
        request: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        let events = self
            .authorized(
                request,
                "ListEvents",
                |m| ("ListEvents".into(), Some(m.tenant.clone())),
                |cp, auth, caller, env, message| {
                    may_read_account(cp, auth, caller, env, &message.tenant, READ_TRAIL)?;
                    cp.events(&message.tenant, message.after_id, list_limit(message.limit))
                },
            )
            .await?;
        Ok(Response::new(pb::ListEventsResponse {
            events: events
                .into_iter()
                .map(|e| pb::AuditEvent {
                    id: e.id,
                    at: e.at,
                    actor: e.actor,
                    action: e.action,
                    outcome: e.outcome,
                    root: e.root,
                    detail: e.detail,
                    source: e.source,
                })
                .collect(),
        }))
    }
}

// === impl SyncService ===

impl SyncService {
    /// Serves `control_plane`'s tenants to sidecars.
    pub fn new(control_plane: Arc<ControlPlane>) -> Self {
        Self {
            control_plane,
            heartbeat: DEFAULT_HEARTBEAT,
            access: None,
            admission: Arc::new(SyncAdmission::default()),
            secure_transport: false,
        }
    }

    /// The service is served over TLS (sync keys may be presented from anywhere).
    #[must_use]
    pub fn with_secure_transport(mut self, secure: bool) -> Self {
        self.secure_transport = secure;
        self
    }

    /// Admits streams by `admission` (default: certificates and loopback peers only).
    #[must_use]
    pub fn with_admission(mut self, admission: Arc<SyncAdmission>) -> Self {
        self.admission = admission;
        self
    }

    /// Limits each client certificate to the tenants `access` lists for it.
    #[must_use]
    pub fn with_access(mut self, access: Option<Arc<TenantAccess>>) -> Self {
        self.access = access;
        self
    }

    /// Sends heartbeats after `heartbeat` of quiet.
    #[must_use]
    pub fn with_heartbeat(mut self, heartbeat: Duration) -> Self {
        self.heartbeat = heartbeat;
        self
    }

    /// The tonic server.
    pub fn into_server(self) -> pb::sync_server::SyncServer<Self> {
        pb::sync_server::SyncServer::new(self)
    }
}

type WatchStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::sync_server::Sync for SyncService {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<Streaming<pb::WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        // Which tenants this client's certificate may see: decided before anything is read.
        let certs = request.peer_certs();
        let leaf = certs.as_ref().and_then(|c| c.first()).map(|c| c.as_ref());
        let header = |name: &str| request.metadata().get(name).and_then(|v| v.to_str().ok());
        let presented = header("x-iamlet-access-key-id")
            .map(|id| (id, header("x-iamlet-secret-access-key").unwrap_or_default()));
        // A presented sync key decides (every tenant, or refused), with or without a
        // certificate map; otherwise the map limits certificates, and without one the
        // admission policy decides.
        let allowed = match (&self.access, presented) {
            (Some(access), None) => access.allowed(leaf),
            (_, presented) => {
                self.admission.admit(
                    presented,
                    leaf.is_some(),
                    request.remote_addr(),
                    self.secure_transport,
                )?;
                None
            }
        };
        let mut inbound = request.into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("the stream must start with a subscription"))?;
        let pb::WatchRequest {
            node: _,
            subscribe,
            initial_versions,
            response_nonce: _,
            acks: _,
            nacks: _,
        } = first;
        let all = subscribe.iter().any(|t| t == "*");
        let tenants = match (all, allowed) {
            (true, None) => None,
            (false, None) => Some(subscribe),
            (true, Some(allowed)) if allowed.is_empty() => {
                return Err(Status::permission_denied(
                    "this client's certificate may not subscribe to any tenant",
                ))
            }
            // `*` for a limited identity means every tenant it may see.
            (true, Some(allowed)) => Some(allowed.into_iter().collect()),
            (false, Some(allowed)) => {
                if let Some(denied) = subscribe.iter().find(|t| !allowed.contains(*t)) {
                    return Err(Status::permission_denied(format!(
                        "this client's certificate may not subscribe to tenant `{denied}`"
                    )));
                }
                Some(subscribe)
            }
        };
        let subscription = Subscription { tenants };
        let known: HashMap<String, SnapshotVersion> = initial_versions
            .into_iter()
            .filter_map(|tv| {
                tv.version
                    .map(SnapshotVersion::from)
                    .map(|v| (tv.tenant, v))
            })
            .collect();
        // Bounded: a slow sidecar slows its own stream, never the control plane's memory.
        let (tx, rx) = mpsc::channel(4);
        let stream = WatchTask {
            control_plane: Arc::clone(&self.control_plane),
            subscription,
            known,
            tx,
            heartbeat: self.heartbeat,
            nonce: 0,
        };
        tokio::spawn(stream.run(inbound));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

struct Subscription {
    /// `None`: every tenant.
    tenants: Option<Vec<String>>,
}

impl Subscription {
    fn wants(&self, account: &str) -> bool {
        self.tenants
            .as_ref()
            .is_none_or(|t| t.iter().any(|x| x == account))
    }
}

/// One sidecar's stream.
struct WatchTask {
    control_plane: Arc<ControlPlane>,
    subscription: Subscription,
    /// What the sidecar has (its resume point, then what was sent to it).
    known: HashMap<String, SnapshotVersion>,
    tx: mpsc::Sender<Result<pb::WatchResponse, Status>>,
    heartbeat: Duration,
    nonce: u64,
}

impl WatchTask {
    async fn run(mut self, mut inbound: Streaming<pb::WatchRequest>) {
        let mut changes = self.control_plane.subscribe();
        // The first response always goes out, even empty: it tells the sidecar it is current.
        if !self.send_delta(true).await {
            return;
        }
        loop {
            tokio::select! {
                biased;
                () = self.tx.closed() => return,
                message = inbound.message() => match message {
                    Ok(Some(request)) => report_nacks(&request),
                    Ok(None) | Err(_) => return,
                },
                changed = changes.changed() => {
                    if changed.is_err() || !self.send_delta(false).await {
                        return;
                    }
                }
                () = tokio::time::sleep(self.heartbeat) => {
                    if !self.send(pb::WatchResponse {
                        heartbeat: Some(pb::Heartbeat { server_time_ms: now_ms() }),
                        ..pb::WatchResponse::default()
                    }).await {
                        return;
                    }
                }
            }
        }
    }

    /// Sends every subscribed tenant the sidecar does not have at its current version, and
    /// every tenant it has that was deleted. False when the sidecar is gone.
    async fn send_delta(&mut self, always: bool) -> bool {
        let current = self.control_plane.shipped_tenants();
        let mut tenants = Vec::new();
        for shipped in &current {
            let (account, version) = (shipped.account_id(), shipped.version);
            if !self.subscription.wants(account) {
                continue;
            }
            if self.known.get(account) == Some(&version) {
                continue;
            }
            // Encoded once per version for every stream.
            let Some(update) = shipped.update() else {
                continue;
            };
            tenants.push(pb::TenantSnapshot {
                tenant: update.account_id.clone(),
                version: Some(version.into()),
                sha256: update.sha256.clone(),
                payload: update.payload.clone(),
            });
            self.known.insert(account.to_owned(), version);
        }
        let live: std::collections::HashSet<&str> =
            current.iter().map(ShippedTenant::account_id).collect();
        let removed: Vec<String> = self
            .known
            .keys()
            .filter(|k| !live.contains(k.as_str()))
            .cloned()
            .collect();
        for r in &removed {
            self.known.remove(r);
        }
        if tenants.is_empty() && removed.is_empty() && !always {
            return true;
        }
        // Chunks of at most MAX_RESPONSE_PAYLOAD bytes (a larger tenant goes alone); removals
        // ride with the last chunk, which alone says `more: false`.
        let mut chunks: Vec<Vec<pb::TenantSnapshot>> = vec![Vec::new()];
        let mut size = 0;
        for tenant in tenants {
            let len = tenant.payload.len();
            if size + len > MAX_RESPONSE_PAYLOAD && chunks.last().is_some_and(|c| !c.is_empty()) {
                chunks.push(Vec::new());
                size = 0;
            }
            size += len;
            if let Some(chunk) = chunks.last_mut() {
                chunk.push(tenant);
            }
        }
        let last = chunks.len() - 1;
        let mut removed = Some(removed);
        for (i, chunk) in chunks.into_iter().enumerate() {
            let response = pb::WatchResponse {
                tenants: chunk,
                removed_tenants: if i == last {
                    removed.take().unwrap_or_default()
                } else {
                    Vec::new()
                },
                heartbeat: Some(pb::Heartbeat {
                    server_time_ms: now_ms(),
                }),
                more: i != last,
                ..pb::WatchResponse::default()
            };
            if !self.send(response).await {
                return false;
            }
        }
        true
    }

    async fn send(&mut self, mut response: pb::WatchResponse) -> bool {
        self.nonce += 1;
        response.nonce = self.nonce.to_string();
        self.tx.send(Ok(response)).await.is_ok()
    }
}

fn report_nacks(request: &pb::WatchRequest) {
    for nack in &request.nacks {
        tracing::warn!(
            tenant = %nack.tenant,
            version = ?nack.version.map(|v| (v.epoch, v.seq)),
            "a sidecar refused a tenant update: {}",
            nack.error
        );
    }
}

fn now_ms() -> i64 {
    crate::policy::Timestamp::now().epoch_millis()
}

/// Serves the Admin and Sync APIs of `control_plane` on `listener` until `shutdown` completes.
///
/// tonic's graceful shutdown waits for every open stream, and sidecars keep theirs open for
/// good: callers bound the wait (the CLI gives it a few seconds, then exits).
pub async fn serve_control_plane(
    control_plane: Arc<ControlPlane>,
    listener: tokio::net::TcpListener,
    heartbeat: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    serve_control_plane_with(
        control_plane,
        listener,
        heartbeat,
        ServeOptions::default(),
        shutdown,
    )
    .await
}

/// How the control plane's API is served beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// TLS, and with a client CA, mutual TLS; certificates follow their files.
    pub tls: Option<Arc<crate::tls::ReloadingServerTls>>,
    /// The tenants each client certificate may subscribe to.
    pub access: Option<Arc<TenantAccess>>,
    /// Who may call the admin API (default: tenants' principals, no operator).
    pub admin_auth: Option<Arc<AdminAuth>>,
    /// Who may stream tenants besides mapped certificates (default: verified certificates
    /// and loopback peers).
    pub sync_admission: Arc<SyncAdmission>,
}

/// [`serve_control_plane`] with TLS and per-identity tenant limits.
pub async fn serve_control_plane_with(
    control_plane: Arc<ControlPlane>,
    listener: tokio::net::TcpListener,
    heartbeat: Duration,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let router = tonic::transport::Server::builder()
        .trace_fn(crate::telemetry::grpc_span)
        .add_service({
            let admin = AdminService::new(Arc::clone(&control_plane))
                .with_secure_transport(options.tls.is_some());
            match options.admin_auth {
                Some(auth) => admin.with_auth(auth),
                None => admin,
            }
            .into_server()
        })
        .add_service(
            SyncService::new(control_plane)
                .with_heartbeat(heartbeat)
                .with_access(options.access)
                .with_admission(options.sync_admission)
                .with_secure_transport(options.tls.is_some())
                .into_server(),
        );
    match options.tls {
        Some(tls) => {
            router
                .serve_with_incoming_shutdown(tls.incoming(listener), shutdown)
                .await
        }
        None => {
            router
                .serve_with_incoming_shutdown(crate::observe::no_delay(listener), shutdown)
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(open: bool) -> SyncAdmission {
        SyncAdmission {
            keys: vec![super::super::OperatorKey {
                name: "sidecars".into(),
                access_key_id: "IOPRSYNC".into(),
                secret: Secret::new("sync-secret"),
            }],
            open,
            loopback: true,
        }
    }

    #[test]
    fn only_keys_certificates_and_loopback_peers_may_stream() {
        let remote: std::net::SocketAddr = "10.1.2.3:5000".parse().unwrap();
        let local: std::net::SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let mapped: std::net::SocketAddr = "[::ffff:127.0.0.1]:5000".parse().unwrap();
        let key = Some(("IOPRSYNC", "sync-secret"));
        let closed = admission(false);
        assert!(closed.admit(None, false, Some(local), false).is_ok());
        assert!(closed.admit(None, false, Some(mapped), false).is_ok());
        assert!(closed.admit(None, true, Some(remote), false).is_ok());
        assert!(closed.admit(key, false, Some(remote), true).is_ok());
        assert!(closed.admit(key, false, Some(local), false).is_ok());
        // A key in the clear from elsewhere is refused, right as it is.
        assert!(closed.admit(key, false, Some(remote), false).is_err());
        let refused = closed.admit(None, false, Some(remote), false).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        assert!(closed.admit(None, false, None, false).is_err());
        // A presented key must be right, wherever it comes from.
        for presented in [
            ("IOPRSYNC", "wrong"),
            ("OTHER", "sync-secret"),
            ("IOPRSYNC", ""),
        ] {
            assert!(closed
                .admit(Some(presented), true, Some(local), true)
                .is_err());
        }
        assert!(admission(true)
            .admit(None, false, Some(remote), false)
            .is_ok());
        // Behind a proxy in the pod every peer is loopback: then loopback is not trusted.
        let proxied = SyncAdmission {
            loopback: false,
            ..admission(false)
        };
        assert!(proxied.admit(None, false, Some(local), false).is_err());
        assert!(proxied.admit(key, false, Some(local), false).is_ok());
    }
}
