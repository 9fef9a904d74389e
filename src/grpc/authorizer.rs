//! `iamlet.v1.Authorizer` over gRPC: decodes each message once into an [`AuthorizeInput`],
//! calls the domain [`Authorizer`], renders its [`Decision`].

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::authz::{Context, StatementRef};
use crate::policy::{parse_policy_date, ContextValue, PolicyKind};
use crate::proto::v1 as pb;
use crate::sidecar::{Api, ApiError, AuthorizeInput, Authorizer, CallerId, Decision};
use crate::snapshot::SnapshotVersion;
use crate::sts::sigv4::SignedRequest;

use super::status::{api_status, grpc_code};

/// `iamlet.v1.Authorizer`.
#[derive(Debug, Clone)]
pub struct AuthorizerService {
    authorizer: Authorizer,
    /// Requests that may cost more than a cache lookup and an evaluation of the tenant's own
    /// policies (a policy supplied with the request, a large batch) run on the blocking pool,
    /// half as many at once as there are cores (at least one), so that they never hold the
    /// threads that serve other clients, nor every core those threads need.
    heavy: Arc<tokio::sync::Semaphore>,
}

/// Batches larger than this run on the blocking pool.
const INLINE_BATCH: usize = 16;

impl AuthorizerService {
    /// Decides with `api`'s snapshots and caches.
    pub fn new(api: Arc<Api>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Self {
            authorizer: Authorizer::new(api),
            // With every core evaluating heavy requests (the budget was once the core count),
            // an ordinary request waited 44 ms at the median for a core on a 2-core machine.
            heavy: Arc::new(tokio::sync::Semaphore::new((cores / 2).max(1))),
        }
    }

    /// Runs `work` on the blocking pool, within the heavy-work budget.
    async fn offload<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Self) -> T + Send + 'static,
    ) -> Result<T, Status> {
        let _permit = self
            .heavy
            .acquire()
            .await
            .map_err(|_| api_status(&ApiError::NotLoaded("the service is stopping".into())))?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || work(&this))
            .await
            .map_err(|e| Status::internal(format!("the request did not complete: {e}")))
    }

    /// The tonic server.
    pub fn into_server(self) -> pb::authorizer_server::AuthorizerServer<Self> {
        pb::authorizer_server::AuthorizerServer::new(self)
    }

    /// Decodes, decides and renders one message as `Authorize` does, without the transport:
    /// for benchmarks of the whole edge.
    pub fn decide(&self, message: pb::AuthorizeRequest) -> Result<pb::AuthorizeResponse, ApiError> {
        let input = self.decode(message, false)?;
        self.authorizer
            .authorize(&input)
            .map(|d| render(&d, &input))
    }

    /// Decodes a message; one that does not decode is counted and logged as a refused
    /// request, as a decided one would be.
    fn decode(
        &self,
        message: pb::AuthorizeRequest,
        batch: bool,
    ) -> Result<AuthorizeInput, ApiError> {
        decode_input(message).map_err(|refused| {
            let Undecoded {
                error,
                action,
                resource,
                request_id,
            } = *refused;
            self.authorizer.refused(
                &crate::error::echo(&action),
                &crate::error::echo(&resource),
                Some(request_id.as_str()).filter(|id| !id.is_empty()),
                &error,
                batch,
            );
            error
        })
    }
}

impl TryFrom<pb::Credentials> for CallerId {
    type Error = ApiError;

    fn try_from(c: pb::Credentials) -> Result<Self, ApiError> {
        let pb::Credentials {
            access_key_id,
            secret_access_key,
            session_token,
        } = c;
        if access_key_id.is_empty() {
            return Err(ApiError::invalid("credentials.access_key_id", "missing"));
        }
        if secret_access_key.is_empty() {
            return Err(ApiError::invalid(
                "credentials.secret_access_key",
                "missing",
            ));
        }
        Ok(Self::Keys {
            access_key_id,
            secret: secret_access_key,
            session_token: Some(session_token).filter(|t| !t.is_empty()),
        })
    }
}

impl TryFrom<&pb::SignedRequest> for CallerId {
    type Error = ApiError;

    fn try_from(r: &pb::SignedRequest) -> Result<Self, ApiError> {
        let headers: Vec<(String, String)> = r
            .headers
            .iter()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect();
        CallerId::signed(&SignedRequest {
            method: &r.method,
            path: &r.path,
            query: &r.query,
            headers: &headers,
            payload_sha256: Some(r.payload_sha256.as_str()).filter(|p| !p.is_empty()),
        })
    }
}

/// A message that does not decode: why, and what a refusal's log record names, moved out of
/// the message so that a request that decodes copies nothing for the log.
struct Undecoded {
    error: ApiError,
    action: String,
    resource: String,
    request_id: String,
}

/// Decodes a message into the domain's input, once, at the edge.
fn decode_input(message: pb::AuthorizeRequest) -> Result<AuthorizeInput, Box<Undecoded>> {
    let pb::AuthorizeRequest {
        caller,
        action,
        resource,
        resource_tenant,
        resource_policy_json,
        context,
        explain,
        min_version,
        request_id,
    } = message;
    match check_request(caller, &action, &resource, context) {
        Ok((caller, context)) => Ok(AuthorizeInput {
            caller,
            action,
            resource,
            context,
            resource_tenant: Some(resource_tenant).filter(|t| !t.is_empty()),
            resource_policy: Some(resource_policy_json).filter(|p| !p.trim().is_empty()),
            explain,
            min_version: min_version.map(SnapshotVersion::from),
            request_id: Some(request_id).filter(|id| !id.is_empty()),
        }),
        Err(error) => Err(Box::new(Undecoded {
            error,
            action,
            resource,
            request_id,
        })),
    }
}

/// The caller and the context of a message, checked in the order refusals name them.
fn check_request(
    caller: Option<pb::authorize_request::Caller>,
    action: &str,
    resource: &str,
    context: std::collections::HashMap<String, pb::ContextValue>,
) -> Result<(CallerId, Context), ApiError> {
    let caller = match caller {
        Some(pb::authorize_request::Caller::PrincipalArn(arn)) => CallerId::PrincipalArn(arn),
        Some(pb::authorize_request::Caller::Credentials(c)) => CallerId::try_from(c)?,
        Some(pb::authorize_request::Caller::SignedRequest(r)) => CallerId::try_from(&r)?,
        None => {
            return Err(ApiError::invalid(
                "caller",
                "missing: give principal_arn, credentials or signed_request",
            ))
        }
    };
    if action.is_empty() {
        return Err(ApiError::invalid("action", "missing"));
    }
    if resource.is_empty() {
        return Err(ApiError::invalid("resource", "missing"));
    }
    Ok((caller, decode_context(context)?))
}

/// The request's condition keys. Typed values must be what they say: a value no condition
/// can read would make a Deny conditioned on it quietly fail to match.
fn decode_context(
    context: std::collections::HashMap<String, pb::ContextValue>,
) -> Result<Context, ApiError> {
    // Most requests carry none: nothing to bound, check or build.
    if context.is_empty() {
        return Ok(Context::new());
    }
    // Bounded before anything is built from it.
    crate::sidecar::check_context(context.len(), || {
        context.iter().map(|(key, value)| {
            let (count, longest) = match &value.value {
                Some(pb::context_value::Value::ListValue(list)) => (
                    list.values.len(),
                    list.values
                        .iter()
                        .map(|v| crate::sidecar::value_chars(v))
                        .max(),
                ),
                Some(
                    pb::context_value::Value::StringValue(s)
                    | pb::context_value::Value::NumberValue(s)
                    | pb::context_value::Value::DateValue(s),
                ) => (1, Some(crate::sidecar::value_chars(s))),
                Some(pb::context_value::Value::BoolValue(_)) | None => (1, None),
            };
            (key.as_str(), count, longest)
        })
    })?;
    // Keys are case-insensitive: two that differ only in case are refused, naming both.
    Context::check_keys(context.keys()).map_err(|e| ApiError::invalid("context", e))?;
    let mut ctx = Context::new();
    for (key, value) in context {
        if key.is_empty() {
            return Err(ApiError::invalid("context", "a key is empty"));
        }
        let field = || format!("context[{}]", crate::error::echo(&key));
        match value.value {
            Some(pb::context_value::Value::StringValue(s)) => ctx.insert_str(&key, &s),
            Some(pb::context_value::Value::NumberValue(s)) => {
                if s.trim().parse::<f64>().map_or(true, |n| !n.is_finite()) {
                    return Err(ApiError::invalid(
                        field(),
                        format!("`{}` is not a number", crate::error::echo(&s)),
                    ));
                }
                ctx.insert_str(&key, &s);
            }
            Some(pb::context_value::Value::DateValue(s)) => {
                if parse_policy_date(&s).is_none() {
                    return Err(ApiError::invalid(
                        field(),
                        format!(
                            "`{}` is not an ISO 8601 date or epoch seconds",
                            crate::error::echo(&s)
                        ),
                    ));
                }
                ctx.insert_str(&key, &s);
            }
            Some(pb::context_value::Value::BoolValue(b)) => {
                ctx.insert(&key, ContextValue::from_bool(b))
            }
            Some(pb::context_value::Value::ListValue(list)) => {
                ctx.insert_multi(
                    &key,
                    list.values.into_iter().map(ContextValue::new).collect(),
                );
            }
            None => return Err(ApiError::invalid(field(), "no value")),
        }
    }
    Ok(ctx)
}

/// The wire answer for a decision.
// `String::from(&*x)` rather than `x.to_string()`: `to_string` on a boxed or shared `str`
// goes through the formatting machinery, which cost a cache hit a tenth of its time.
fn render(d: &Decision, input: &AuthorizeInput) -> pb::AuthorizeResponse {
    pb::AuthorizeResponse {
        decision: match d.outcome {
            crate::authz::Outcome::Allow => pb::Decision::Allow,
            crate::authz::Outcome::ExplicitDeny => pb::Decision::ExplicitDeny,
            crate::authz::Outcome::ImplicitDeny => pb::Decision::ImplicitDeny,
        } as i32,
        policy_type: d.policy_type.map_or(0, kind_pb),
        statement: d.statement.as_ref().map(statement_pb),
        message: d.message(&input.action, &input.resource),
        version: Some(d.version.into()),
        trace: d
            .trace
            .iter()
            .map(|e| pb::TraceEntry {
                policy_type: kind_pb(e.policy_type),
                statement: Some(statement_pb(&e.statement)),
                effect: e.effect.as_str().to_owned(),
            })
            .collect(),
        principal_arn: String::from(&*d.principal),
        cached: d.cached(),
        rule: d.rule.map(|r| r.as_str().to_owned()).unwrap_or_default(),
    }
}

fn kind_pb(kind: PolicyKind) -> i32 {
    let kind = match kind {
        PolicyKind::Identity => pb::PolicyKind::Identity,
        PolicyKind::Resource => pb::PolicyKind::Resource,
        PolicyKind::Trust => pb::PolicyKind::Trust,
        PolicyKind::Boundary => pb::PolicyKind::Boundary,
        PolicyKind::Session => pb::PolicyKind::Session,
        PolicyKind::Scp => pb::PolicyKind::Scp,
        PolicyKind::Rcp => pb::PolicyKind::Rcp,
        PolicyKind::VpcEndpoint => pb::PolicyKind::VpcEndpoint,
    };
    kind as i32
}

fn statement_pb(s: &StatementRef) -> pb::StatementRef {
    pb::StatementRef {
        policy: String::from(&*s.policy),
        index: s.index,
        sid: s.sid.as_deref().unwrap_or("").to_owned(),
    }
}

#[tonic::async_trait]
impl pb::authorizer_server::Authorizer for AuthorizerService {
    async fn authorize(
        &self,
        request: Request<pb::AuthorizeRequest>,
    ) -> Result<Response<pb::AuthorizeResponse>, Status> {
        let message = request.into_inner();
        let result = if message.resource_policy_json.trim().is_empty() {
            self.decide(message)
        } else {
            self.offload(move |this| this.decide(message)).await?
        };
        result.map(Response::new).map_err(|e| api_status(&e))
    }

    async fn batch_authorize(
        &self,
        request: Request<pb::BatchAuthorizeRequest>,
    ) -> Result<Response<pb::BatchAuthorizeResponse>, Status> {
        let requests = request.into_inner().requests;
        if requests.len() > crate::sidecar::MAX_BATCH {
            return Err(api_status(&ApiError::invalid(
                "requests",
                format!(
                    "{} requests; at most {}",
                    requests.len(),
                    crate::sidecar::MAX_BATCH
                ),
            )));
        }
        let heavy = requests.len() > INLINE_BATCH
            || requests
                .iter()
                .any(|r| !r.resource_policy_json.trim().is_empty());
        if heavy {
            return self
                .offload(move |this| this.batch(requests))
                .await?
                .map(Response::new);
        }
        self.batch(requests).map(Response::new)
    }
}

impl AuthorizerService {
    /// Decides a batch's messages, each on its own.
    fn batch(
        &self,
        requests: Vec<pb::AuthorizeRequest>,
    ) -> Result<pb::BatchAuthorizeResponse, Status> {
        // A message that does not decode is that request's error; the others are decided.
        let total = requests.len();
        let mut inputs = Vec::with_capacity(total);
        let mut refused = Vec::new();
        for (position, message) in requests.into_iter().enumerate() {
            match self.decode(message, true) {
                Ok(input) => inputs.push(input),
                Err(e) => refused.push((position, e)),
            }
        }
        let mut decided = self
            .authorizer
            .authorize_batch(&inputs)
            .map_err(|e| api_status(&e))?
            .into_iter()
            .zip(&inputs);
        let mut refused = refused.into_iter().peekable();
        let results = (0..total)
            .map(|position| {
                let outcome = match refused.next_if(|(p, _)| *p == position) {
                    Some((_, e)) => Err(e),
                    None => decided.next().map_or_else(
                        || Err(ApiError::invalid("requests", "not decided")),
                        |(decision, input)| decision.map(|d| (d, input)),
                    ),
                };
                let result = match outcome {
                    Ok((decision, input)) => {
                        pb::batch_authorize_result::Result::Response(render(&decision, input))
                    }
                    Err(e) => pb::batch_authorize_result::Result::Error(pb::AuthorizeError {
                        grpc_code: grpc_code(e.code()) as i32,
                        aws_code: e.code().as_str().to_owned(),
                        message: e.to_string(),
                    }),
                };
                pb::BatchAuthorizeResult {
                    result: Some(result),
                }
            })
            .collect();
        Ok(pb::BatchAuthorizeResponse { results })
    }
}
