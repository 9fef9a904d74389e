//! `iamlet.v1.Sync` over gRPC: admits a stream (client certificate, sync key or loopback,
//! decided by [`SyncAdmission`]), then runs one task per sidecar that sends the deltas
//! [`WatchState`] computes, heartbeats when quiet, logs the sidecar's NACKs, and hands its
//! usage reports and STS events to the control plane (for the tenants the stream follows;
//! issue #17).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::control_plane::{
    ActionUsage, Chunk, ControlPlane, IssuingGrant, IssuingIdentity, KeyUsage, RoleUsage,
    ServiceUsage, Subscription, SyncAdmission, SyncClient, SyncRefusal, TrailEvent, TrailIdentity,
    UsageBatch, WatchState,
};
use crate::proto::v1 as pb;
use crate::snapshot::SnapshotVersion;
use crate::tls::TenantAccess;

pub use crate::control_plane::{DEFAULT_HEARTBEAT, MAX_SYNC_MESSAGE};

/// `iamlet.v1.Sync`.
#[derive(Debug, Clone)]
pub struct SyncService {
    control_plane: Arc<ControlPlane>,
    heartbeat: Duration,
    access: Option<Arc<TenantAccess>>,
    admission: Arc<SyncAdmission>,
    secure_transport: bool,
    /// The next response's nonce, shared by every stream: a nonce names one response of one
    /// stream, never one of an earlier stream (an answer that arrives late, after a reconnect,
    /// cannot be taken for an answer to a new response).
    nonces: Arc<AtomicU64>,
}

impl SyncService {
    /// Serves `control_plane`'s tenants to sidecars.
    pub fn new(control_plane: Arc<ControlPlane>) -> Self {
        Self {
            control_plane,
            heartbeat: DEFAULT_HEARTBEAT,
            access: None,
            admission: Arc::new(SyncAdmission::default()),
            secure_transport: false,
            nonces: Arc::new(AtomicU64::new(first_nonce())),
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
            .max_decoding_message_size(MAX_SYNC_MESSAGE)
            .max_encoding_message_size(MAX_SYNC_MESSAGE)
    }
}

/// Where a server's nonces start: random high bits, so that a restarted control plane does not
/// repeat its predecessor's nonces either.
fn first_nonce() -> u64 {
    let mut bytes = [0u8; 4];
    crate::directory::IdGenerator::system().fill(&mut bytes);
    u64::from(u32::from_be_bytes(bytes)) << 32
}

/// A refusal as a status.
pub fn refusal_status(refusal: &SyncRefusal) -> Status {
    match refusal {
        SyncRefusal::Unauthenticated(m) => Status::unauthenticated(*m),
        SyncRefusal::PermissionDenied(m) => Status::permission_denied(m.clone()),
        SyncRefusal::NoSubscription => Status::invalid_argument(refusal.to_string()),
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
        // Who the client is: decided before anything is read.
        let certs = request.peer_certs();
        let leaf = certs.as_ref().and_then(|c| c.first()).map(|c| c.as_ref());
        let header = |name: &str| request.metadata().get(name).and_then(|v| v.to_str().ok());
        let key = header("x-iamlet-access-key-id")
            .map(|id| (id, header("x-iamlet-secret-access-key").unwrap_or_default()));
        let client = SyncClient {
            key,
            certificate: leaf,
            peer: request.remote_addr(),
            secure_transport: self.secure_transport,
        };
        // Admitted before anything is read: an unadmitted client costs nothing more.
        let allowed = self
            .admission
            .admit_client(self.access.as_deref(), client)
            .map_err(|r| refusal_status(&r))?;
        let identity = IssuingIdentity::of(self.access.as_deref(), &client);
        let mut inbound = request.into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| refusal_status(&SyncRefusal::NoSubscription))?;
        let pb::WatchRequest {
            node: _,
            subscribe,
            initial_versions,
            response_nonce: _,
            acks: _,
            nacks: _,
            usage,
            events,
        } = first;
        let subscription =
            Subscription::try_new(allowed, subscribe).map_err(|r| refusal_status(&r))?;
        let known: HashMap<String, SnapshotVersion> = initial_versions
            .into_iter()
            .filter_map(|tv| {
                tv.version
                    .map(SnapshotVersion::from)
                    .map(|v| (tv.tenant, v))
            })
            .collect();
        // Bounded, and to one response: a slow sidecar slows its own stream, never the control
        // plane's memory, and what it has not taken yet is computed afresh when it can take it
        // (a storm of versions coalesces into the latest instead of queueing stale ones).
        let (tx, rx) = mpsc::channel(1);
        let stream = WatchTask {
            control_plane: Arc::clone(&self.control_plane),
            state: WatchState::new(subscription, known).with_identity(identity),
            tx,
            heartbeat: self.heartbeat,
            nonces: Arc::clone(&self.nonces),
        };
        tokio::spawn(async move {
            // A resent report may ride on the first message too.
            stream.receive_usage(usage).await;
            stream.receive_events(events).await;
            stream.run(inbound).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// One sidecar's stream.
struct WatchTask {
    control_plane: Arc<ControlPlane>,
    state: WatchState,
    tx: mpsc::Sender<Result<pb::WatchResponse, Status>>,
    heartbeat: Duration,
    nonces: Arc<AtomicU64>,
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
                    Ok(Some(request)) => {
                        report_nacks(&request);
                        self.receive_usage(request.usage).await;
                        self.receive_events(request.events).await;
                    }
                    Ok(None) | Err(_) => return,
                },
                changed = changes.changed() => {
                    if changed.is_err() || !self.send_delta(false).await {
                        return;
                    }
                }
                () = tokio::time::sleep(self.heartbeat) => {
                    // Renews issuing certificates well before they expire.
                    if !self.send_grants().await {
                        return;
                    }
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

    /// Merges the usage reports of one message (off the async workers: the store blocks).
    /// Refusals are the control plane's to log and count; the stream goes on either way.
    async fn receive_usage(&self, reports: Vec<pb::UsageReport>) {
        if reports.is_empty() {
            return;
        }
        let reports: Vec<UsageBatch> = reports.into_iter().map(usage_batch).collect();
        let admitted: Vec<bool> = reports
            .iter()
            .map(|r| self.state.admits_usage(&r.account_id))
            .collect();
        let control_plane = Arc::clone(&self.control_plane);
        let merged = tokio::task::spawn_blocking(move || {
            let admits = |tenant: &str| {
                reports
                    .iter()
                    .zip(&admitted)
                    .any(|(r, ok)| *ok && r.account_id == tenant)
            };
            control_plane.record_usage(&reports, &admits);
        })
        .await;
        if let Err(error) = merged {
            tracing::error!(%error, "merging usage reports did not finish");
        }
    }

    /// Stores the STS events of one message (off the async workers: the store blocks).
    /// Refusals are the control plane's to log and count; the stream goes on either way.
    async fn receive_events(&self, events: Vec<pb::TrailEvent>) {
        if events.is_empty() {
            return;
        }
        let events: Vec<TrailEvent> = events.into_iter().map(trail_event).collect();
        let admitted: Vec<(String, bool)> = events
            .iter()
            .map(|e| (e.account_id.clone(), self.state.admits_usage(&e.account_id)))
            .collect();
        let control_plane = Arc::clone(&self.control_plane);
        let stored = tokio::task::spawn_blocking(move || {
            let admits = |tenant: &str| admitted.iter().any(|(t, ok)| *ok && t == tenant);
            control_plane.record_trail(&events, &admits);
        })
        .await;
        if let Err(error) = stored {
            tracing::error!(%error, "storing STS events did not finish");
        }
    }

    /// Sends what the sidecar lacks. False when the sidecar is gone.
    async fn send_delta(&mut self, always: bool) -> bool {
        let current = self.control_plane.shipped_tenants();
        let mut chunks = self.state.delta(&current, always);
        let grants = self.state.grants(&current, now_ms() / 1000);
        // The issuing keys ride on the delta's last response, applied right after its
        // tenants: a sidecar that serves a tenant can mint for it at once, instead of
        // answering `AssumeRole` with "no certificate yet" until a later message arrives.
        let Some(last) = chunks.pop() else {
            return self.send_issuing(grants).await;
        };
        for chunk in chunks {
            if !self.send(response(chunk)).await {
                return false;
            }
        }
        let mut last = response(last);
        last.issuing = grants.into_iter().map(issuing_grant).collect();
        self.send(last).await
    }

    /// Sends the issuing keys the sidecar needs now, after the tenants they belong to.
    async fn send_grants(&mut self) -> bool {
        let current = self.control_plane.shipped_tenants();
        let grants = self.state.grants(&current, now_ms() / 1000);
        self.send_issuing(grants).await
    }

    /// Sends `grants` in a response of their own, when there are any.
    async fn send_issuing(&mut self, grants: Vec<IssuingGrant>) -> bool {
        if grants.is_empty() {
            return true;
        }
        self.send(pb::WatchResponse {
            issuing: grants.into_iter().map(issuing_grant).collect(),
            ..pb::WatchResponse::default()
        })
        .await
    }

    async fn send(&mut self, mut response: pb::WatchResponse) -> bool {
        response.nonce = self.nonces.fetch_add(1, Ordering::Relaxed).to_string();
        // Every response names the store it comes from: a sidecar removes a tenant only on a
        // removal from the store it follows.
        let store = self.control_plane.store_identity();
        response.store = Some(pb::StoreIdentity {
            id: store.id,
            epoch: store.epoch,
        });
        self.tx.send(Ok(response)).await.is_ok()
    }
}

fn response(chunk: Chunk) -> pb::WatchResponse {
    pb::WatchResponse {
        tenants: chunk
            .tenants
            .iter()
            .map(|update| pb::TenantSnapshot {
                tenant: update.account_id.clone(),
                version: Some(update.version.into()),
                sha256: update.sha256.clone(),
                payload: update.payload.clone(),
                signature: update.signature.as_ref().map(|s| pb::SnapshotSignature {
                    key_id: s.key_id.clone(),
                    store: Some(pb::StoreIdentity {
                        id: s.store.id.clone(),
                        epoch: s.store.epoch,
                    }),
                    value: s.value.clone(),
                }),
            })
            .collect(),
        removed_tenants: chunk.removed,
        heartbeat: Some(pb::Heartbeat {
            server_time_ms: now_ms(),
        }),
        more: chunk.more,
        ..pb::WatchResponse::default()
    }
}

fn issuing_grant(grant: IssuingGrant) -> pb::IssuingGrant {
    pb::IssuingGrant {
        tenant: grant.tenant,
        certificate: grant.certificate,
        private_key: grant.private_key.expose().to_owned(),
    }
}

/// An STS event as the control plane's domain takes it.
fn trail_event(event: pb::TrailEvent) -> TrailEvent {
    let pb::TrailEvent {
        tenant,
        event_id,
        event_time_ms,
        event_name,
        user_identity,
        source_ip_address,
        user_agent,
        request_parameters_json,
        response_elements_json,
        error_code,
        error_message,
        request_id,
        aws_region,
    } = event;
    let identity = user_identity.map_or_else(TrailIdentity::default, |i| {
        let pb::TrailIdentity {
            r#type,
            principal_id,
            arn,
            account_id,
            access_key_id,
            user_name,
            session_issuer_type,
            session_issuer_arn,
            session_issuer_principal_id,
            session_issuer_user_name,
            session_creation_time_ms,
            mfa_authenticated,
            identity_provider,
        } = i;
        TrailIdentity {
            kind: r#type,
            principal_id,
            arn,
            account_id,
            access_key_id,
            user_name,
            issuer_type: session_issuer_type,
            issuer_arn: session_issuer_arn,
            issuer_principal_id: session_issuer_principal_id,
            issuer_user_name: session_issuer_user_name,
            session_created_ms: session_creation_time_ms,
            mfa_authenticated,
            identity_provider,
        }
    });
    TrailEvent {
        account_id: tenant,
        event_id,
        at_ms: event_time_ms,
        event_name,
        identity,
        source_ip: source_ip_address,
        user_agent,
        request_parameters: request_parameters_json,
        response_elements: response_elements_json,
        error_code,
        error_message,
        request_id,
        region: aws_region,
    }
}

/// A usage report as the control plane's domain takes it.
fn usage_batch(report: pb::UsageReport) -> UsageBatch {
    UsageBatch {
        account_id: report.tenant,
        access_keys: report
            .access_keys
            .into_iter()
            .map(|k| KeyUsage {
                access_key_id: k.access_key_id,
                last_used: k.last_used,
                service: k.service,
                region: k.region,
            })
            .collect(),
        services: report
            .services
            .into_iter()
            .map(|s| ServiceUsage {
                principal_arn: s.principal_arn,
                service: s.service,
                last_authenticated: s.last_authenticated,
                region: s.region,
                actions: s
                    .actions
                    .into_iter()
                    .map(|a| ActionUsage {
                        action: a.action,
                        last_accessed: a.last_accessed,
                        region: a.region,
                    })
                    .collect(),
            })
            .collect(),
        roles: report
            .roles
            .into_iter()
            .map(|r| RoleUsage {
                role_arn: r.role_arn,
                last_used: r.last_used,
                region: r.region,
            })
            .collect(),
    }
}

fn report_nacks(request: &pb::WatchRequest) {
    for nack in &request.nacks {
        tracing::warn!(
            tenant = %crate::error::echo(&nack.tenant),
            version = ?nack.version.map(|v| (v.epoch, v.seq)),
            "a sidecar refused a tenant update: {}",
            crate::error::echo(&nack.error)
        );
    }
}

fn now_ms() -> i64 {
    crate::policy::Timestamp::now().epoch_millis()
}
