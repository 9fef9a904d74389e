//! `iamlet.v1.Admin` over gRPC: reads the caller's credentials from the metadata (a SigV4
//! signature over the method and the message, a key in the clear over TLS or loopback, or a
//! client certificate), decodes the message, and calls the domain [`Admin`] on the blocking
//! pool.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::client::{Profile, ADMIN_SIGNING_HOST};
use crate::control_plane::{
    Admin, AdminAuth, AdminCall, AdminError, AdminPresented, CallEnv, ControlPlane,
};
use crate::directory::Secret;
use crate::error::AwsCode;
use crate::policy::Timestamp;
use crate::proto::v1 as pb;
use crate::sts::sigv4::{Signature, SignedRequest};

use super::status::admin_status;

/// The largest message a declared tenant or an export may be: room for one very large
/// tenant, beyond gRPC's customary 4 MiB.
pub const MAX_ADMIN_MESSAGE: usize = 64 << 20;

/// `iamlet.v1.Admin`.
#[derive(Debug, Clone)]
pub struct AdminService {
    admin: Admin,
    secure_transport: bool,
}

impl AdminService {
    /// Serves `control_plane`, authenticating tenants' principals (no operator: tenants can
    /// then only be created in process).
    pub fn new(control_plane: Arc<ControlPlane>) -> Self {
        Self {
            admin: Admin::new(
                control_plane,
                Arc::new(AdminAuth::new(Vec::new(), Vec::new())),
            ),
            secure_transport: false,
        }
    }

    /// Authenticates and authorizes with `auth`.
    #[must_use]
    pub fn with_auth(mut self, auth: Arc<AdminAuth>) -> Self {
        self.admin = Admin::new(Arc::clone(self.admin.control_plane()), auth);
        self
    }

    /// Reports `aws:SecureTransport` true (the service is served over TLS).
    #[must_use]
    pub fn with_secure_transport(mut self, secure: bool) -> Self {
        self.secure_transport = secure;
        self
    }

    /// The tonic server.
    pub fn into_server(self) -> pb::admin_server::AdminServer<Self> {
        pb::admin_server::AdminServer::new(self)
            .max_decoding_message_size(MAX_ADMIN_MESSAGE)
            .max_encoding_message_size(MAX_ADMIN_MESSAGE)
    }

    /// Decodes the call's credentials for `method`, then runs `handle` on the blocking pool.
    async fn run<M, R>(
        &self,
        request: Request<M>,
        method: &'static str,
        handle: impl FnOnce(&Admin, AdminCall, M) -> Result<R, AdminError> + Send + 'static,
    ) -> Result<R, Status>
    where
        M: prost::Message + Send + 'static,
        R: Send + 'static,
    {
        let metadata = Metadata::read(&request, self.secure_transport);
        let message = request.into_inner();
        let payload_sha256 = hex_sha256(&message.encode_to_vec());
        let call = metadata.call(method, &payload_sha256);
        let admin = self.admin.clone();
        match tokio::task::spawn_blocking(move || handle(&admin, call, message)).await {
            Ok(result) => result.map_err(|e| admin_status(&e)),
            Err(join) => Err(admin_status(&AdminError::Internal(format!(
                "the call did not complete: {join}"
            )))),
        }
    }
}

/// What an admin call brings besides its message, read before the message is taken.
struct Metadata {
    headers: Vec<(String, String)>,
    leaf: Option<Vec<u8>>,
    env: CallEnv,
}

impl Metadata {
    fn read<T>(request: &Request<T>, secure_transport: bool) -> Self {
        let leaf = request
            .peer_certs()
            .and_then(|certs| certs.first().map(|c| c.as_ref().to_vec()));
        Self::from_headers(
            request.metadata().as_ref(),
            request.remote_addr(),
            leaf,
            secure_transport,
        )
    }

    /// The same from an HTTP request's parts, before its body is read.
    fn from_parts(parts: &axum::http::request::Parts, secure_transport: bool) -> Self {
        use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
        let tls = parts.extensions.get::<TlsConnectInfo<TcpConnectInfo>>();
        let remote = parts
            .extensions
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr)
            .or_else(|| tls.and_then(|t| t.get_ref().remote_addr()));
        let leaf = tls
            .and_then(TlsConnectInfo::peer_certs)
            .and_then(|certs| certs.first().map(|c| c.as_ref().to_vec()));
        Self::from_headers(&parts.headers, remote, leaf, secure_transport)
    }

    fn from_headers(
        headers: &axum::http::HeaderMap,
        remote: Option<std::net::SocketAddr>,
        leaf: Option<Vec<u8>>,
        secure_transport: bool,
    ) -> Self {
        let headers = headers
            .iter()
            .filter(|(name, _)| !name.as_str().ends_with("-bin") && name.as_str() != "host")
            .filter_map(|(name, value)| {
                value
                    .to_str()
                    .ok()
                    .map(|v| (name.as_str().to_owned(), v.to_owned()))
            })
            .chain(std::iter::once((
                "host".to_owned(),
                ADMIN_SIGNING_HOST.to_owned(),
            )))
            .collect();
        Self {
            headers,
            leaf,
            env: CallEnv {
                source: remote.map(|a| a.ip().to_canonical()),
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

    /// The call as the domain API takes it.
    fn call(self, method: &str, payload_sha256: &str) -> AdminCall {
        let claimed_key = self
            .header("authorization")
            .and_then(|a| a.split_once("Credential="))
            .and_then(|(_, rest)| rest.split('/').next())
            .or_else(|| self.header("x-iamlet-access-key-id"))
            .map(|k| k.chars().take(32).collect::<String>());
        AdminCall {
            credentials: self.credentials(method, payload_sha256),
            claimed_key,
            claimed_token: self.header("x-amz-security-token").map(str::to_owned),
            env: self.env,
        }
    }

    /// The credentials: a SigV4 `authorization` over `method` and the message whose hash is
    /// `payload_sha256`, else an access key and secret, else a client certificate.
    fn credentials(
        &self,
        method: &str,
        payload_sha256: &str,
    ) -> Result<AdminPresented, AdminError> {
        let refused = |code: AwsCode, message: String| AdminError::Authentication { code, message };
        if self.header("authorization").is_some() {
            let path = format!("/iamlet.v1.Admin/{method}");
            let signed = SignedRequest {
                method: "POST",
                path: &path,
                query: "",
                headers: &self.headers,
                payload_sha256: Some(payload_sha256),
            };
            let signature =
                Signature::parse(&signed).map_err(|e| refused(e.code(), e.to_string()))?;
            // The claimed payload hash must be the message's: the signature covers the claim.
            if self.header("x-amz-content-sha256") != Some(payload_sha256) {
                return Err(refused(
                    AwsCode::SignatureDoesNotMatch,
                    "x-amz-content-sha256 is not the SHA-256 of the request message.".into(),
                ));
            }
            if signature.service() != "iam" {
                return Err(refused(
                    AwsCode::SignatureDoesNotMatch,
                    format!(
                        "Credential should be scoped to correct service: 'iam', not '{}'.",
                        signature.service().chars().take(32).collect::<String>()
                    ),
                ));
            }
            return Ok(AdminPresented::Signed(Box::new(signature)));
        }
        if let Some(id) = self.header("x-iamlet-access-key-id") {
            // A secret in the clear travels only where nobody can read it.
            let loopback = self.env.source.is_some_and(|ip| ip.is_loopback());
            if !self.env.secure_transport && !loopback {
                return Err(refused(
                    AwsCode::InvalidClientTokenId,
                    "A secret access key is accepted only over TLS or from loopback; sign the \
                     call with SigV4 instead."
                        .into(),
                ));
            }
            return Ok(AdminPresented::Keys {
                access_key_id: id.to_owned(),
                secret: Secret::new(
                    self.header("x-iamlet-secret-access-key")
                        .unwrap_or_default(),
                ),
                session_token: self.header("x-amz-security-token").map(str::to_owned),
            });
        }
        Ok(match &self.leaf {
            Some(leaf) => AdminPresented::Certificate(leaf.clone()),
            None => AdminPresented::None,
        })
    }
}

/// The largest admin message from a caller not yet authenticated, and of every method but
/// `ApplyTenant`: ample for any IAM action's parameters.
pub const MAX_UNAUTHENTICATED_MESSAGE: usize = 1 << 20;

/// A layer over the control plane's gRPC server that bounds admin messages before they are
/// read: every method but `ApplyTenant` to [`MAX_UNAUTHENTICATED_MESSAGE`] bytes, and
/// `ApplyTenant`, which may carry a large tenant, only after its caller is authenticated from
/// the metadata (a SigV4 signature is verified over the payload hash it claims; the handler
/// then checks the claim against the message). Other paths pass through.
#[derive(Debug, Clone)]
pub struct AdminGateLayer {
    admin: Admin,
    secure_transport: bool,
}

impl AdminGateLayer {
    /// Authenticates with `admin`'s authenticator.
    pub fn new(service: &AdminService) -> Self {
        Self {
            admin: service.admin.clone(),
            secure_transport: service.secure_transport,
        }
    }
}

impl<S> tower_layer::Layer<S> for AdminGateLayer {
    type Service = AdminGate<S>;

    fn layer(&self, inner: S) -> AdminGate<S> {
        AdminGate {
            inner,
            layer: self.clone(),
        }
    }
}

/// `body`, cut after `limit` bytes. The cut is a `RESOURCE_EXHAUSTED` status, which tonic's
/// decoder passes through as it is (any other body error would reach the caller as `UNKNOWN`).
fn cut_at(
    body: tonic::body::Body,
    limit: usize,
) -> impl axum::body::HttpBody<Data = axum::body::Bytes, Error = tonic::Status> {
    use http_body_util::BodyExt;
    http_body_util::Limited::new(body, limit).map_err(move |error| {
        if error.is::<http_body_util::LengthLimitError>() {
            tonic::Status::resource_exhausted(format!(
                "the message exceeds {limit} bytes, the limit of every admin call but an \
                 authenticated ApplyTenant"
            ))
        } else {
            match error.downcast::<tonic::Status>() {
                Ok(status) => *status,
                Err(other) => tonic::Status::unknown(other.to_string()),
            }
        }
    })
}

/// The service [`AdminGateLayer`] makes.
#[derive(Debug, Clone)]
pub struct AdminGate<S> {
    inner: S,
    layer: AdminGateLayer,
}

type GateFuture<R, E> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<R, E>> + Send>>;

impl<S, ResBody> tower_service::Service<axum::http::Request<tonic::body::Body>> for AdminGate<S>
where
    S: tower_service::Service<
            axum::http::Request<tonic::body::Body>,
            Response = axum::http::Response<ResBody>,
        > + Clone
        + Send
        + 'static,
    S::Future: Send,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = GateFuture<S::Response, S::Error>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<tonic::body::Body>) -> Self::Future {
        // The ready inner service serves this call; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let Some(method) = request
            .uri()
            .path()
            .strip_prefix("/iamlet.v1.Admin/")
            .map(str::to_owned)
        else {
            return Box::pin(inner.call(request));
        };
        if method != "ApplyTenant" {
            // Every other message is small: its size is bounded before it is read, and its
            // caller authenticated by the handler.
            let (parts, body) = request.into_parts();
            let body = tonic::body::Body::new(cut_at(body, MAX_UNAUTHENTICATED_MESSAGE));
            return Box::pin(inner.call(axum::http::Request::from_parts(parts, body)));
        }
        let layer = self.layer.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let metadata = Metadata::from_parts(&parts, layer.secure_transport);
            let claimed = metadata
                .header("x-amz-content-sha256")
                .unwrap_or_default()
                .to_owned();
            let call = metadata.call(&method, &claimed);
            let admin = layer.admin.clone();
            let checked =
                tokio::task::spawn_blocking(move || admin.authenticate_only(call, "ApplyTenant"))
                    .await;
            let refusal = match checked {
                Ok(Ok(())) => None,
                Ok(Err(error)) => Some(admin_status(&error)),
                Err(join) => Some(admin_status(&AdminError::Internal(format!(
                    "the call did not complete: {join}"
                )))),
            };
            if let Some(status) = refusal {
                return Ok(status.into_http());
            }
            inner
                .call(axum::http::Request::from_parts(parts, body))
                .await
        })
    }
}

/// A request signed with `credentials` for `method` (SigV4 over the encoded message): the
/// client side of [`AdminService`]'s authentication.
pub fn signed_admin_request<T: prost::Message>(
    message: T,
    method: &str,
    credentials: Option<&Profile>,
) -> Request<T> {
    let Some(creds) = credentials else {
        return Request::new(message);
    };
    let headers = crate::client::sign_admin_call(
        method,
        &message.encode_to_vec(),
        &creds.access_key_id,
        creds.secret_access_key.expose(),
        creds.session_token.as_deref(),
        Timestamp::now(),
    );
    let mut request = Request::new(message);
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

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn call(
        &self,
        request: Request<pb::CallRequest>,
    ) -> Result<Response<pb::CallResponse>, Status> {
        let (result, version) = self
            .run(request, "Call", |admin, call, message| {
                let pb::CallRequest {
                    tenant,
                    action,
                    parameters_json,
                } = message;
                admin.call_json(call, &tenant, &action, &parameters_json)
            })
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
            .run(request, "CreateTenant", |admin, call, m| {
                admin.create_tenant(call, &m.account_id, Some(&m.alias))
            })
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
        self.run(request, "DeleteTenant", |admin, call, m| {
            admin.delete_tenant(call, &m.account_id)
        })
        .await?;
        Ok(Response::new(pb::DeleteTenantResponse {}))
    }

    async fn list_tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        let tenants = self
            .run(request, "ListTenants", |admin, call, _| {
                admin.list_tenants(call)
            })
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
            .run(request, "ExportTenant", |admin, call, m| {
                admin.export_tenant(call, &m.tenant)
            })
            .await?;
        Ok(Response::new(pb::ExportTenantResponse { spec_json }))
    }

    async fn apply_tenant(
        &self,
        request: Request<pb::ApplyTenantRequest>,
    ) -> Result<Response<pb::ApplyTenantResponse>, Status> {
        let (actions, version) = self
            .run(request, "ApplyTenant", |admin, call, m| {
                admin.apply_tenant(call, &m.spec_json, m.dry_run)
            })
            .await?;
        let actions_json = serde_json::to_string(&actions).map_err(|e| {
            admin_status(&AdminError::Internal(format!(
                "the plan could not be rendered: {e}"
            )))
        })?;
        Ok(Response::new(pb::ApplyTenantResponse {
            actions_json,
            version: version.map(Into::into),
        }))
    }

    async fn list_changes(
        &self,
        request: Request<pb::ListChangesRequest>,
    ) -> Result<Response<pb::ListChangesResponse>, Status> {
        let changes = self
            .run(request, "ListChanges", |admin, call, m| {
                admin.list_changes(call, &m.tenant, m.after_seq, m.limit)
            })
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
            .run(request, "ListEvents", |admin, call, m| {
                admin.list_events(call, &m.tenant, m.after_id, m.limit)
            })
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
