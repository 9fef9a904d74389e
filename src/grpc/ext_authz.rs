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
    // iamlet's headers that this answer does not set are removed: a client cannot send its
    // own through a route that passes it without a caller (no route, a dry run).
    let mut headers_to_remove: Vec<String> = [PRINCIPAL_HEADER, VERSION_HEADER, WOULD_DENY_HEADER]
        .into_iter()
        .filter(|name| {
            !headers
                .iter()
                .any(|h| h.header.as_ref().is_some_and(|h| h.key == *name))
        })
        .map(str::to_owned)
        .collect();
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
    if !crate::telemetry::request_spans() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "ext_authz.check",
        otel.name = "ext_authz.check",
        http.method = %input.method,
    );
    if span.is_disabled() || metadata.contains_key("traceparent") {
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

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::core::v3::{HeaderMap, SocketAddress};
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
        HttpRequest, Peer, Request as AttrRequest,
    };
    use envoy_types::pb::envoy::service::auth::v3::AttributeContext;

    use super::*;

    fn request(http: HttpRequest, source: Option<Peer>) -> CheckRequest {
        CheckRequest {
            attributes: Some(AttributeContext {
                source,
                request: Some(AttrRequest {
                    time: None,
                    http: Some(http),
                }),
                ..AttributeContext::default()
            }),
        }
    }

    fn http() -> HttpRequest {
        HttpRequest {
            id: "7".into(),
            method: "GET".into(),
            path: "/a?b=1".into(),
            host: "api.example.com:8443".into(),
            scheme: "https".into(),
            headers: [
                (":authority", "api.example.com:8443"),
                ("X-Request-Id", "r-1"),
            ]
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect(),
            ..HttpRequest::default()
        }
    }

    #[test]
    fn a_check_request_decodes_once_into_the_domains_input() {
        let peer = Peer {
            address: Some(envoy_types::pb::envoy::config::core::v3::Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: "10.1.2.3".into(),
                    ..SocketAddress::default()
                })),
            }),
            principal: "spiffe://cluster.local/ns/a/sa/b".into(),
            ..Peer::default()
        };
        let input = decode(&request(
            HttpRequest {
                body: "text".into(),
                ..http()
            },
            Some(peer),
        ))
        .unwrap();
        assert_eq!(input.method, "GET");
        assert_eq!(input.path, "/a?b=1");
        assert_eq!(input.host, "api.example.com:8443");
        assert_eq!(input.source_ip, Some("10.1.2.3".parse().unwrap()));
        assert_eq!(
            input.source_principal.as_deref(),
            Some("spiffe://cluster.local/ns/a/sa/b")
        );
        assert_eq!(
            input.request_id.as_deref(),
            Some("r-1"),
            "names are lowercased"
        );
        assert_eq!(input.body.as_deref(), Some(&b"text"[..]));

        // `encode_raw_headers`: the list, values as bytes, repeated names kept apart.
        let raw = HttpRequest {
            headers: HashMap::new(),
            header_map: Some(HeaderMap {
                headers: vec![
                    HeaderValue {
                        key: "x-a".into(),
                        value: String::new(),
                        raw_value: b"1".to_vec(),
                    },
                    HeaderValue {
                        key: "x-a".into(),
                        value: "2".into(),
                        raw_value: Vec::new(),
                    },
                ],
            }),
            raw_body: vec![0, 1],
            ..http()
        };
        let input = decode(&request(raw, None)).unwrap();
        assert_eq!(
            input.headers,
            [("x-a".into(), "1".into()), ("x-a".into(), "2".into())]
        );
        assert_eq!(input.body.as_deref(), Some(&[0u8, 1][..]));
        assert_eq!(
            input.request_id.as_deref(),
            Some("7"),
            "the stream id without x-request-id"
        );
    }

    #[test]
    fn missing_or_oversized_attributes_are_refused_with_a_reason() {
        assert_eq!(
            decode(&CheckRequest { attributes: None }).unwrap_err(),
            CheckDecodeError::NoHttpRequest
        );
        assert_eq!(
            decode(&CheckRequest {
                attributes: Some(AttributeContext::default())
            })
            .unwrap_err(),
            CheckDecodeError::NoHttpRequest
        );
        let no_method = HttpRequest {
            method: String::new(),
            ..http()
        };
        assert_eq!(
            decode(&request(no_method, None)).unwrap_err().to_string(),
            "The check request's HTTP request has no method"
        );
        let no_path = HttpRequest {
            path: String::new(),
            ..http()
        };
        assert_eq!(
            decode(&request(no_path, None)).unwrap_err(),
            CheckDecodeError::Missing("path")
        );
        let mut many = http();
        for i in 0..MAX_HEADERS {
            many.headers.insert(format!("x-{i}"), "v".into());
        }
        assert_eq!(
            decode(&request(many, None)).unwrap_err(),
            CheckDecodeError::HeadersTooLarge
        );
        let mut big = http();
        big.headers
            .insert("x-big".into(), "v".repeat(MAX_HEADER_BYTES));
        let refused = decode(&request(big, None)).unwrap_err();
        assert_eq!(refused.status(), 431);
    }

    #[test]
    fn a_check_continues_the_trace_of_the_checked_request() {
        use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
        use tracing_subscriber::layer::SubscriberExt;
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let traced = CheckInput {
            headers: vec![(
                "traceparent".into(),
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
            )],
            ..CheckInput::default()
        };
        tracing::subscriber::with_default(subscriber, || {
            let trace_of =
                |span: &tracing::Span| span.context().span().span_context().trace_id().to_string();
            let span = check_span(&tonic::metadata::MetadataMap::new(), &traced);
            assert_eq!(trace_of(&span), "4bf92f3577b34da6a3ce929d0e0e4736");
            // Envoy's own trace context, on the call, is the gRPC span's parent instead.
            let mut metadata = tonic::metadata::MetadataMap::new();
            metadata.insert(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
                    .parse()
                    .unwrap(),
            );
            let span = check_span(&metadata, &traced);
            assert_ne!(trace_of(&span), "4bf92f3577b34da6a3ce929d0e0e4736");
        });
    }

    #[test]
    fn answers_render_as_envoy_expects() {
        let allow = render(&CheckAnswer::Allow {
            principal: Some("arn:aws:iam::111122223333:user/a".into()),
            version: Some(crate::snapshot::SnapshotVersion::new(2, 9)),
            strip: true,
        });
        assert_eq!(allow.status.as_ref().unwrap().code, 0);
        let Some(HttpResponse::OkResponse(ok)) = allow.http_response else {
            panic!("{allow:?}");
        };
        let set: Vec<(String, String, i32)> = ok
            .headers
            .iter()
            .map(|h| {
                let v = h.header.as_ref().unwrap();
                (v.key.clone(), v.value.clone(), h.append_action)
            })
            .collect();
        let overwrite = i32::from(HeaderAppendAction::OverwriteIfExistsOrAdd);
        assert_eq!(
            set,
            [
                (
                    PRINCIPAL_HEADER.into(),
                    "arn:aws:iam::111122223333:user/a".into(),
                    overwrite
                ),
                (VERSION_HEADER.into(), "2.9".into(), overwrite),
            ]
        );
        let mut removed = vec![WOULD_DENY_HEADER];
        removed.extend(CREDENTIAL_HEADERS);
        assert_eq!(ok.headers_to_remove, removed);

        let dry = render(&CheckAnswer::DryRunDeny {
            principal: None,
            version: None,
            strip: false,
            status: 401,
            message: "Missing Authentication Token".into(),
        });
        let Some(HttpResponse::OkResponse(ok)) = dry.http_response else {
            panic!("{dry:?}");
        };
        assert_eq!(ok.headers.len(), 1);
        assert_eq!(
            ok.headers[0].header.as_ref().unwrap().key,
            WOULD_DENY_HEADER
        );
        assert_eq!(
            ok.headers_to_remove,
            [PRINCIPAL_HEADER, VERSION_HEADER],
            "a client's own iamlet headers never pass"
        );

        for (answer, code, status) in [
            (
                CheckAnswer::Unauthenticated {
                    message: "Missing \"Authentication\" Token".into(),
                },
                Code::Unauthenticated,
                401,
            ),
            (
                CheckAnswer::Deny {
                    status: 403,
                    message: "Missing \"Authentication\" Token".into(),
                },
                Code::PermissionDenied,
                403,
            ),
            (
                CheckAnswer::Deny {
                    status: 503,
                    message: "Missing \"Authentication\" Token".into(),
                },
                Code::Unavailable,
                503,
            ),
        ] {
            let response = render(&answer);
            assert_eq!(response.status.as_ref().unwrap().code, i32::from(code));
            let Some(HttpResponse::DeniedResponse(denied)) = response.http_response else {
                panic!("{response:?}");
            };
            assert_eq!(denied.status.unwrap().code, status);
            let body: serde_json::Value = serde_json::from_str(&denied.body).unwrap();
            assert_eq!(
                body,
                serde_json::json!({"Message": "Missing \"Authentication\" Token"})
            );
            let content_type = denied.headers[0].header.as_ref().unwrap();
            assert_eq!(
                (content_type.key.as_str(), content_type.value.as_str()),
                ("content-type", "application/json")
            );
        }
    }
}
