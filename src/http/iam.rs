//! AWS's IAM Query API on the control plane's HTTP edge: `POST /` (or `GET /`) with `Action`
//! and `Version=2010-05-08`, so that the AWS CLI (`aws iam --endpoint-url`), boto3 and
//! Terraform's AWS provider manage a tenant unchanged.
//!
//! A request is decoded once ([`QueryRequest`], then `form::parameters` into the JSON
//! parameters of the admin API), authenticated by the SigV4 signature over the actual HTTP
//! request (service `iam`, any region), its tenant taken from the caller's credentials, and
//! run by [`Admin::call`] on the blocking pool: the same authorization, audit and throttling
//! as the gRPC admin API. The JSON result is written as IAM's XML (`xml::result`); errors
//! as `<ErrorResponse>` with AWS's code and status ([`crate::http::aws_error`]).
//!
//! Refusals before the admin API (a malformed form, a wrong version) are counted in the
//! control plane's `/metrics` (`iamlet_http_refused_total{edge="iam",code}`) beside every
//! answered call (`iamlet_iam_query_calls_total{code}`, `OK` for a success), and logged
//! with the request id, the code and the action, never a parameter value or a credential.
//!
//! The operator's own verbs (tenants) stay on `iamlet admin`: AWS's IAM API has none. A
//! call signed with an operator key names no tenant, so it is refused as the tenant `""`.

mod form;
mod xml;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use parking_lot::Mutex;

use super::query::{self, QueryRequest};
use super::{aws_error, ErrorFormat, Probes, IAM_NAMESPACE, MAX_BODY_BYTES};
use crate::control_plane::{Admin, AdminCall, AdminError, AdminPresented, CallEnv};
use crate::error::{echo, AwsCode};
use crate::policy::Timestamp;
use crate::sts::sigv4::Signature;
use crate::sts::{credential_tenant, Presented};

/// The API version IAM's Query protocol names.
pub const IAM_VERSION: &str = "2010-05-08";

const FORMAT: ErrorFormat = ErrorFormat::Query {
    namespace: IAM_NAMESPACE,
};

/// The IAM Query API over `admin` at `/`, merged with the probes of `probes` (whose
/// `/metrics` page gains this edge's counters). `secure_transport` says whether the edge is
/// served over TLS (`aws:SecureTransport`).
pub fn routes(admin: Admin, probes: Arc<dyn Probes>, secure_transport: bool) -> Router {
    let counters = Arc::new(Counters::default());
    let probes: Arc<dyn Probes> = Arc::new(WithCounters {
        inner: probes,
        counters: Arc::clone(&counters),
    });
    let edge = Arc::new(IamEdge {
        admin,
        secure_transport,
        counters,
    });
    super::probe_routes(probes).merge(
        Router::new()
            .route("/", get(handle).post(handle))
            .with_state(edge),
    )
}

/// What the handler holds.
struct IamEdge {
    admin: Admin,
    secure_transport: bool,
    counters: Arc<Counters>,
}

/// Answered calls by AWS code (`OK` for a success); refusals before the admin API are counted
/// also in the HTTP edges' shared `iamlet_http_refused_total{edge="iam"}`.
#[derive(Debug, Default)]
struct Counters {
    calls: Mutex<BTreeMap<&'static str, u64>>,
}

// === impl Counters ===

impl Counters {
    fn count(&self, code: &'static str) {
        *self.calls.lock().entry(code).or_default() += 1;
    }

    fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let name = "iamlet_iam_query_calls_total";
        let _ = writeln!(
            out,
            "# HELP {name} IAM Query requests answered, by AWS error code (OK for a success).\n# TYPE {name} counter"
        );
        for (code, n) in self.calls.lock().iter() {
            let _ = writeln!(
                out,
                "{name}{{code=\"{}\"}} {n}",
                crate::observe::label(code)
            );
        }
    }
}

/// The control plane's probes with this edge's counters on the metrics page.
struct WithCounters {
    inner: Arc<dyn Probes>,
    counters: Arc<Counters>,
}

impl Probes for WithCounters {
    fn ready(&self) -> bool {
        self.inner.ready()
    }

    fn not_ready_reason(&self) -> Option<String> {
        self.inner.not_ready_reason()
    }

    fn metrics(&self) -> String {
        let mut page = self.inner.metrics();
        self.counters.render(&mut page);
        page
    }
}

/// A refusal: AWS's code and message.
#[derive(Debug)]
struct Refusal {
    code: AwsCode,
    message: String,
}

impl Refusal {
    fn new(code: AwsCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

async fn handle(State(edge): State<Arc<IamEdge>>, request: Request) -> Response {
    let request_id = query::new_request_id();
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        // No AWS code names this; the shared layer answers a declared length the same way.
        edge.counters.count("RequestEntityTooLarge");
        tracing::info!(%request_id, "iam query: refused a body over the limit");
        return too_large();
    };
    let decoded = decode(&parts, &body);
    let (query, action, parameters) = match decoded {
        Ok(decoded) => decoded,
        Err((action, refusal)) => {
            edge.refused(&request_id, &action, refusal.code);
            return aws_error(refusal.code, &refusal.message, &request_id, FORMAT);
        }
    };
    let signed = query::signed_request_parts(&parts, &body);
    let (tenant, call) = edge.call(&parts, &query, &signed);
    let admin = edge.admin.clone();
    let blocking_action = action.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        admin.call(call, &tenant, &blocking_action, parameters)
    })
    .await
    .unwrap_or_else(|join| {
        Err(AdminError::Internal(format!(
            "the call did not complete: {join}"
        )))
    });
    match outcome {
        Ok((result, _version)) => {
            edge.counters.count("OK");
            let inner = xml::result(&action, &result);
            query::xml_response(&action, IAM_NAMESPACE, &request_id, inner.as_deref())
        }
        Err(error) => {
            let code = error.code();
            edge.counters.count(code.as_str());
            if code.fault() == crate::error::Fault::Receiver {
                tracing::error!(%request_id, code = code.as_str(), action = %echo(&action), detail = %error, "iam query: failed");
            } else {
                tracing::info!(%request_id, code = code.as_str(), action = %echo(&action), "iam query: refused by the admin API");
            }
            aws_error(code, &error.to_string(), &request_id, FORMAT)
        }
    }
}

/// The form, the action and its JSON parameters; or the action (for the log) and why not.
fn decode(
    parts: &axum::http::request::Parts,
    body: &[u8],
) -> Result<(QueryRequest, String, serde_json::Value), (String, Refusal)> {
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let query = QueryRequest::try_from_parts(
        &parts.method,
        parts.uri.query().unwrap_or_default(),
        content_type,
        body,
    )
    .map_err(|e| (String::new(), Refusal::new(e.code(), e.to_string())))?;
    let action = query
        .require("Action")
        .map_err(|e| (String::new(), Refusal::new(e.code(), e.to_string())))?
        .to_owned();
    if let Some(version) = query.version().filter(|v| *v != IAM_VERSION) {
        return Err((
            action.clone(),
            Refusal::new(
                AwsCode::InvalidAction,
                format!(
                    "Could not find operation {} for version {}",
                    echo(&action),
                    echo(version)
                ),
            ),
        ));
    }
    let parameters = form::parameters(&action, query.iter())
        .map_err(|e| (action.clone(), Refusal::new(e.code, e.message)))?;
    Ok((query, action, parameters))
}

/// 413, as the edge answers a declared length over the limit.
fn too_large() -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body exceeds {MAX_BODY_BYTES} bytes\n"),
    )
        .into_response()
}

// === impl IamEdge ===

impl IamEdge {
    fn refused(&self, request_id: &str, action: &str, code: AwsCode) {
        query::count_refusal("iam", code);
        self.counters.count(code.as_str());
        tracing::info!(%request_id, code = code.as_str(), action = %echo(action), "iam query: refused before the admin API");
    }

    /// The tenant the call acts on and the call as the admin API takes it. A signature that
    /// does not parse, or is scoped to another service, is passed on as the failed
    /// authentication it is, so the admin API counts, throttles and records it as it does the
    /// gRPC edge's.
    fn call(
        &self,
        parts: &axum::http::request::Parts,
        query: &QueryRequest,
        signed: &query::SignedParts,
    ) -> (String, AdminCall) {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let claimed_token = header("x-amz-security-token")
            .or_else(|| query.get("X-Amz-Security-Token").map(str::to_owned));
        let claimed_key = header("authorization")
            .and_then(|a| {
                a.split_once("Credential=")
                    .and_then(|(_, rest)| rest.split('/').next().map(str::to_owned))
            })
            .or_else(|| {
                query
                    .get("X-Amz-Credential")
                    .and_then(|c| c.split('/').next().map(str::to_owned))
            })
            .map(|k| k.chars().take(32).collect::<String>());
        let refused = |code: AwsCode, message: String| AdminError::Authentication { code, message };
        let credentials = match Signature::parse(&signed.as_signed_request()) {
            Ok(signature) if signature.service() != "iam" => Err(refused(
                AwsCode::SignatureDoesNotMatch,
                format!(
                    "Credential should be scoped to correct service: 'iam', not '{}'.",
                    echo(signature.service())
                ),
            )),
            Ok(signature) => Ok(AdminPresented::Signed(Box::new(signature))),
            Err(crate::sts::sigv4::SigV4Error::MissingAuthenticationToken) => {
                Ok(AdminPresented::None)
            }
            Err(e) => Err(refused(e.code(), e.to_string())),
        };
        let tenant = match &credentials {
            Ok(AdminPresented::Signed(signature)) => {
                credential_tenant(&Presented::Signed(signature))
            }
            _ => None,
        }
        .or_else(|| {
            claimed_token
                .as_deref()
                .and_then(crate::jose::token_tenant)
                .map(str::to_owned)
        })
        .or_else(|| {
            claimed_key
                .as_deref()
                .and_then(crate::directory::IdPrefix::account_of_access_key)
        })
        .unwrap_or_default();
        let call = AdminCall {
            credentials,
            claimed_key,
            claimed_token,
            env: CallEnv {
                source: crate::http::peer_ip(parts),
                secure_transport: self.secure_transport,
                now: Timestamp::now(),
            },
        };
        (tenant, call)
    }
}

#[cfg(test)]
mod tests;
