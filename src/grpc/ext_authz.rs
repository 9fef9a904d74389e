//! `envoy.service.auth.v3.Authorization/Check` over gRPC (Envoy's ext_authz, protos from
//! `envoy-types`): decodes each `CheckRequest` once into a [`CheckInput`], calls the domain
//! [`ExtAuthz`], and renders its [`CheckAnswer`] as a `CheckResponse`. A request that cannot
//! be decoded is answered with a denial, never with an RPC error: Envoy turns an RPC error
//! into its own `status_on_error`, and a bad request is the client's, not the service's.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse, DeniedHttpResponse,
    HeaderAppendAction, HeaderValue, HeaderValueOption, HttpResponse, HttpStatus, OkHttpResponse,
};
use envoy_types::pb::envoy::config::core::v3::address;
use envoy_types::pb::google::rpc;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tonic::{Code, Request, Response, Status};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::sidecar::ext_authz::{
    CheckAnswer, CheckInput, ExtAuthz, CREDENTIAL_HEADERS, PRINCIPAL_HEADER, VERSION_HEADER,
    WOULD_DENY_HEADER,
};

/// The service's name, as health reports it.
pub const EXT_AUTHZ_SERVICE: &str = "envoy.service.auth.v3.Authorization";
/// The most headers a checked request may carry (Envoy's own default limit is 100).
pub const MAX_HEADERS: usize = 200;
/// The most bytes of header names and values a checked request may carry (Envoy's default
/// `max_request_headers_kb` is 60).
pub const MAX_HEADER_BYTES: usize = 96 * 1024;

/// `envoy.service.auth.v3.Authorization`.
#[derive(Debug, Clone)]
pub struct ExtAuthzService {
    ext_authz: Arc<ExtAuthz>,
}

impl ExtAuthzService {
    /// Answers with `ext_authz`.
    pub fn new(ext_authz: Arc<ExtAuthz>) -> Self {
        Self { ext_authz }
    }

    /// The tonic server.
    pub fn into_server(self) -> AuthorizationServer<Self> {
        AuthorizationServer::new(self)
    }
}

/// Why a `CheckRequest` could not be decoded: answered 400 (431 for headers too large).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckDecodeError {
    /// No `attributes.request.http`.
    #[error("The check request carries no HTTP request attributes")]
    NoHttpRequest,
    /// No method or no path.
    #[error("The check request's HTTP request has no {0}")]
    Missing(&'static str),
    /// Too many headers, or too many bytes of them.
    #[error("Request Header Fields Too Large")]
    HeadersTooLarge,
}

impl CheckDecodeError {
    fn status(&self) -> u16 {
        match self {
            Self::HeadersTooLarge => 431,
            Self::NoHttpRequest | Self::Missing(_) => 400,
        }
    }
}

/// Decodes what the domain needs from Envoy's `AttributeContext`.
pub fn decode(request: &CheckRequest) -> Result<CheckInput, CheckDecodeError> {
    let attributes = request
        .attributes
        .as_ref()
        .ok_or(CheckDecodeError::NoHttpRequest)?;
    let http = attributes
        .request
        .as_ref()
        .and_then(|r| r.http.as_ref())
        .ok_or(CheckDecodeError::NoHttpRequest)?;
    if http.method.is_empty() {
        return Err(CheckDecodeError::Missing("method"));
    }
    if http.path.is_empty() {
        return Err(CheckDecodeError::Missing("path"));
    }
    let mut headers: Vec<(String, String)> = Vec::with_capacity(http.headers.len());
    let mut bytes = 0usize;
    let mut push = |name: &str, value: String| -> Result<(), CheckDecodeError> {
        bytes = bytes.saturating_add(name.len() + value.len());
        if headers.len() >= MAX_HEADERS || bytes > MAX_HEADER_BYTES {
            return Err(CheckDecodeError::HeadersTooLarge);
        }
        headers.push((name.to_ascii_lowercase(), value));
        Ok(())
    };
    if http.headers.is_empty() {
        // `encode_raw_headers`: the headers as a list, values possibly as bytes.
        for h in http.header_map.iter().flat_map(|m| m.headers.iter()) {
            let value = if h.raw_value.is_empty() {
                h.value.clone()
            } else {
                String::from_utf8_lossy(&h.raw_value).into_owned()
            };
            push(&h.key, value)?;
        }
    } else {
        for (name, value) in &http.headers {
            push(name, value.clone())?;
        }
    }
    let body = if !http.raw_body.is_empty() {
        Some(http.raw_body.clone())
    } else if !http.body.is_empty() {
        Some(http.body.clone().into_bytes())
    } else {
        None
    };
    let source = attributes.source.as_ref();
    let source_ip = source
        .and_then(|p| p.address.as_ref())
        .and_then(|a| match &a.address {
            Some(address::Address::SocketAddress(s)) => s.address.parse::<IpAddr>().ok(),
            _ => None,
        });
    let source_principal = source
        .map(|p| p.principal.clone())
        .filter(|p| !p.is_empty());
    let host = if http.host.is_empty() {
        headers
            .iter()
            .find(|(n, _)| n == ":authority" || n == "host")
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    } else {
        http.host.clone()
    };
    // Envoy's `x-request-id` (what its access log shows), else its stream id.
    let request_id = headers
        .iter()
        .find(|(n, _)| n == "x-request-id")
        .map(|(_, v)| v.clone())
        .or_else(|| (!http.id.is_empty()).then(|| http.id.clone()));
    Ok(CheckInput {
        method: http.method.clone(),
        path: http.path.clone(),
        host,
        scheme: http.scheme.clone(),
        headers,
        body,
        source_ip,
        source_principal,
        request_id,
    })
}

/// A header set on the upstream request, replacing any the client sent: a client cannot pose
/// as another principal by sending `x-iamlet-principal-arn` itself.
fn set_header(key: &str, value: String) -> HeaderValueOption {
    #[expect(
        deprecated,
        reason = "`append` is deprecated in favour of `append_action`"
    )]
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_owned(),
            value,
            raw_value: Vec::new(),
        }),
        append: None,
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd.into(),
        keep_empty_value: false,
    }
}

fn ok(headers: Vec<HeaderValueOption>, strip: bool) -> CheckResponse {
    let mut headers_to_remove = Vec::new();
    if strip {
        headers_to_remove.extend(CREDENTIAL_HEADERS.iter().map(|h| (*h).to_owned()));
    }
    CheckResponse {
        status: Some(rpc::Status {
            code: Code::Ok.into(),
            message: String::new(),
            details: Vec::new(),
        }),
        http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
            headers,
            headers_to_remove,
            ..OkHttpResponse::default()
        })),
        ..CheckResponse::default()
    }
}

fn denied(code: Code, status: u16, message: &str) -> CheckResponse {
    let body = serde_json::json!({ "Message": message }).to_string();
    CheckResponse {
        status: Some(rpc::Status {
            code: code.into(),
            message: message.to_owned(),
            details: Vec::new(),
        }),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: i32::from(status),
            }),
            headers: vec![set_header("content-type", "application/json".into())],
            body,
        })),
        ..CheckResponse::default()
    }
}

/// Renders the domain's answer.
pub fn render(answer: &CheckAnswer) -> CheckResponse {
    let identity = |principal: &Option<String>,
                    version: &Option<crate::snapshot::SnapshotVersion>| {
        let mut headers = Vec::new();
        if let Some(p) = principal {
            headers.push(set_header(PRINCIPAL_HEADER, p.clone()));
        }
        if let Some(v) = version {
            headers.push(set_header(VERSION_HEADER, format!("{}.{}", v.epoch, v.seq)));
        }
        headers
    };
    match answer {
        CheckAnswer::Allow {
            principal,
            version,
            strip,
        } => ok(identity(principal, version), *strip),
        CheckAnswer::DryRunDeny {
            principal,
            version,
            strip,
            ..
        } => {
            let mut headers = identity(principal, version);
            headers.push(set_header(WOULD_DENY_HEADER, "true".into()));
            ok(headers, *strip)
        }
        CheckAnswer::Unauthenticated { message } => denied(Code::Unauthenticated, 401, message),
        CheckAnswer::Deny { status, message } => {
            let code = if *status >= 500 {
                Code::Unavailable
            } else {
                Code::PermissionDenied
            };
            denied(code, *status, message)
        }
    }
}

/// The span of one check, child of the checked request's `traceparent` when Envoy's call
/// carried none of its own (Envoy without tracing forwards the client's in the headers).
fn check_span(metadata: &tonic::metadata::MetadataMap, input: &CheckInput) -> tracing::Span {
    let span = tracing::info_span!(
        "ext_authz.check",
        otel.name = "ext_authz.check",
        http.method = %input.method,
    );
    if metadata.contains_key("traceparent") {
        return span;
    }
    let carrier: HashMap<String, String> = input
        .headers
        .iter()
        .filter(|(n, _)| n == "traceparent" || n == "tracestate")
        .cloned()
        .collect();
    if carrier.contains_key("traceparent") {
        let _ = span.set_parent(TraceContextPropagator::new().extract(&carrier));
    }
    span
}

#[tonic::async_trait]
impl Authorization for ExtAuthzService {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let input = match decode(request.get_ref()) {
            Ok(input) => input,
            Err(e) => {
                let code = if e == CheckDecodeError::HeadersTooLarge {
                    Code::PermissionDenied
                } else {
                    Code::InvalidArgument
                };
                return Ok(Response::new(denied(code, e.status(), &e.to_string())));
            }
        };
        let span = check_span(request.metadata(), &input);
        let ext_authz = Arc::clone(&self.ext_authz);
        let answer = async move { ext_authz.check(&input) }
            .instrument(span)
            .await;
        Ok(Response::new(render(&answer)))
    }
}
