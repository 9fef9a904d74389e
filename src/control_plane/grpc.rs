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
use tonic_types::{ErrorDetails, StatusExt};

use crate::proto::v1 as pb;
use crate::snapshot::SnapshotVersion;
use crate::sync::sha256_hex;
use crate::tls::TenantAccess;

use super::core::ControlPlane;
use super::AdminError;

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
}

/// `iamlet.v1.Sync`.
#[derive(Debug, Clone)]
pub struct SyncService {
    control_plane: Arc<ControlPlane>,
    heartbeat: Duration,
    access: Option<Arc<TenantAccess>>,
}

/// The one place admin errors become gRPC statuses. The AWS error code travels as the
/// `ErrorInfo` reason (domain `iam.amazonaws.com`); the message is AWS's text.
pub fn status(error: &AdminError) -> Status {
    use tonic::Code;
    let code = match error.code() {
        "NoSuchEntity" => Code::NotFound,
        "EntityAlreadyExists" => Code::AlreadyExists,
        "LimitExceeded" => Code::ResourceExhausted,
        "DeleteConflict" => Code::FailedPrecondition,
        "InvalidAuthenticationCode" => Code::PermissionDenied,
        "ServiceFailure" => Code::Internal,
        _ => Code::InvalidArgument,
    };
    Status::with_error_details(
        code,
        error.to_string(),
        ErrorDetails::with_error_info(error.code(), "iam.amazonaws.com", HashMap::new()),
    )
}

/// The AWS error code a status carries, if it carries one.
pub fn aws_error_code(status: &Status) -> Option<String> {
    status.get_details_error_info().map(|info| info.reason)
}

/// Who made an admin call. Authentication of admin callers comes with IAM-authorized admin
/// calls; until then the audit trail records the caller's self-declared name and address.
fn actor<T>(request: &Request<T>) -> String {
    let name = request
        .metadata()
        .get("iamlet-actor")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unauthenticated");
    match request.remote_addr() {
        Some(addr) => format!("{name}@{addr}"),
        None => name.to_owned(),
    }
}

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

// === impl AdminService ===

impl AdminService {
    /// Serves `control_plane`.
    pub fn new(control_plane: Arc<ControlPlane>) -> Self {
        Self { control_plane }
    }

    /// The tonic server; a declared tenant or an export may be larger than gRPC's customary
    /// 4 MiB message limit.
    pub fn into_server(self) -> pb::admin_server::AdminServer<Self> {
        pb::admin_server::AdminServer::new(self)
            .max_decoding_message_size(MAX_SYNC_MESSAGE)
            .max_encoding_message_size(MAX_SYNC_MESSAGE)
    }
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn call(
        &self,
        request: Request<pb::CallRequest>,
    ) -> Result<Response<pb::CallResponse>, Status> {
        let actor = actor(&request);
        let pb::CallRequest {
            tenant,
            action,
            parameters_json,
        } = request.into_inner();
        let parameters: Value = if parameters_json.trim().is_empty() {
            Value::Object(serde_json::Map::new())
        } else {
            serde_json::from_str(&parameters_json).map_err(|e| {
                status(&AdminError::InvalidParameterValue {
                    name: "parameters_json".into(),
                    reason: format!("not JSON: {e}"),
                })
            })?
        };
        if !parameters.is_object() {
            return Err(status(&AdminError::InvalidParameterValue {
                name: "parameters_json".into(),
                reason: "expected a JSON object".into(),
            }));
        }
        let cp = Arc::clone(&self.control_plane);
        let (result, version) =
            blocking(move || cp.call(&tenant, &actor, &action, &parameters)).await?;
        Ok(Response::new(pb::CallResponse {
            result_json: result.to_string(),
            version: Some(version.into()),
        }))
    }

    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::CreateTenantResponse>, Status> {
        let actor = actor(&request);
        let pb::CreateTenantRequest { account_id, alias } = request.into_inner();
        let cp = Arc::clone(&self.control_plane);
        let version = blocking(move || cp.create_tenant(&account_id, Some(&alias), &actor)).await?;
        Ok(Response::new(pb::CreateTenantResponse {
            version: Some(version.into()),
        }))
    }

    async fn delete_tenant(
        &self,
        request: Request<pb::DeleteTenantRequest>,
    ) -> Result<Response<pb::DeleteTenantResponse>, Status> {
        let actor = actor(&request);
        let pb::DeleteTenantRequest { account_id } = request.into_inner();
        let cp = Arc::clone(&self.control_plane);
        blocking(move || cp.delete_tenant(&account_id, &actor)).await?;
        Ok(Response::new(pb::DeleteTenantResponse {}))
    }

    async fn list_tenants(
        &self,
        _request: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        let tenants = self
            .control_plane
            .list_tenants()
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
        let pb::ExportTenantRequest { tenant } = request.into_inner();
        let spec = self.control_plane.export(&tenant).map_err(|e| status(&e))?;
        let spec_json = spec.to_json().map_err(|e| status(&AdminError::Spec(e)))?;
        Ok(Response::new(pb::ExportTenantResponse { spec_json }))
    }

    async fn apply_tenant(
        &self,
        request: Request<pb::ApplyTenantRequest>,
    ) -> Result<Response<pb::ApplyTenantResponse>, Status> {
        let actor = actor(&request);
        let pb::ApplyTenantRequest { spec_json, dry_run } = request.into_inner();
        let spec = super::TenantSpec::from_yaml_or_json(&spec_json)
            .map_err(|e| status(&AdminError::Spec(e)))?;
        let cp = Arc::clone(&self.control_plane);
        let (actions, version) = blocking(move || cp.apply_spec(&spec, &actor, dry_run)).await?;
        Ok(Response::new(pb::ApplyTenantResponse {
            actions_json: serde_json::to_string(&actions).unwrap_or_else(|_| "[]".into()),
            version: version.map(Into::into),
        }))
    }

    async fn list_changes(
        &self,
        request: Request<pb::ListChangesRequest>,
    ) -> Result<Response<pb::ListChangesResponse>, Status> {
        let pb::ListChangesRequest {
            tenant,
            after_seq,
            limit,
        } = request.into_inner();
        let limit = match limit {
            0 => 100,
            n => n.min(1_000) as usize,
        };
        let cp = Arc::clone(&self.control_plane);
        let changes = blocking(move || cp.changes(&tenant, after_seq, limit)).await?;
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
}

// === impl SyncService ===

impl SyncService {
    /// Serves `control_plane`'s tenants to sidecars.
    pub fn new(control_plane: Arc<ControlPlane>) -> Self {
        Self {
            control_plane,
            heartbeat: DEFAULT_HEARTBEAT,
            access: None,
        }
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
        let allowed = self.access.as_ref().and_then(|access| {
            let certs = request.peer_certs();
            let leaf = certs.as_ref().and_then(|c| c.first()).map(|c| c.as_ref());
            access.allowed(leaf)
        });
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
        let current = self.control_plane.tenants();
        let mut tenants = Vec::new();
        for (tenant, version) in &current {
            if !self.subscription.wants(&tenant.account_id) {
                continue;
            }
            if self.known.get(&tenant.account_id) == Some(version) {
                continue;
            }
            let Ok(payload) = serde_json::to_string(&**tenant) else {
                continue;
            };
            tenants.push(pb::TenantSnapshot {
                tenant: tenant.account_id.clone(),
                version: Some((*version).into()),
                sha256: sha256_hex(&payload),
                payload,
            });
            self.known.insert(tenant.account_id.clone(), *version);
        }
        let live: std::collections::HashSet<&str> =
            current.iter().map(|(t, _)| t.account_id.as_str()).collect();
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
        .add_service(AdminService::new(Arc::clone(&control_plane)).into_server())
        .add_service(
            SyncService::new(control_plane)
                .with_heartbeat(heartbeat)
                .with_access(options.access)
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
