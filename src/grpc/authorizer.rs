//! `iamlet.v1.Authorizer` over gRPC: decodes each message once into an [`AuthorizeInput`],
//! calls the domain [`Authorizer`], renders its [`Decision`].

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::authz::{Context, StatementRef};
use crate::policy::{parse_policy_date, ContextValue, PolicyKind};
use crate::proto::v1 as pb;
use crate::sidecar::{
    is_blank_policy, Api, ApiError, AuthorizeInput, Authorizer, CallerId, Decision,
};
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
    /// for benchmarks of the whole edge. The message's fields are taken, not copied: what is
    /// left of it is spent.
    pub fn decide(
        &self,
        message: &mut pb::AuthorizeRequest,
    ) -> Result<pb::AuthorizeResponse, ApiError> {
        // The input is read where `decode` put it: bound by value, its ~250 bytes were
        // copied once more on every request.
        match self.decode(message, false) {
            Ok(ref input) => self.authorizer.authorize(input).map(|d| render(&d, input)),
            Err(error) => Err(error),
        }
    }

    /// Decodes a message; one that does not decode is counted and logged as a refused
    /// request, as a decided one would be, under what it names.
    fn decode(
        &self,
        message: &mut pb::AuthorizeRequest,
        batch: bool,
    ) -> Result<AuthorizeInput, ApiError> {
        decode_input(message).inspect_err(|error| {
            self.authorizer.refused(
                &crate::error::echo(&message.action),
                &crate::error::echo(&message.resource),
                Some(message.request_id.as_str()).filter(|id| !id.is_empty()),
                error,
                batch,
            );
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

/// Decodes a message into the domain's input, once, at the edge. The fields the input keeps
/// are taken from the message, which is passed by reference so that a request's ~300 bytes are
/// not copied from frame to frame on the way in (a tenth of a cache hit's instructions over
/// the wire went to copying). A message that does not decode keeps its action, resource and
/// id for the refusal's log record.
fn decode_input(message: &mut pb::AuthorizeRequest) -> Result<AuthorizeInput, ApiError> {
    let (caller, context) = check_request(
        message.caller.take(),
        &message.action,
        &message.resource,
        std::mem::take(&mut message.context),
    )?;
    let resource_policy_json = std::mem::take(&mut message.resource_policy_json);
    Ok(AuthorizeInput {
        caller,
        action: std::mem::take(&mut message.action),
        resource: std::mem::take(&mut message.resource),
        context,
        resource_tenant: Some(std::mem::take(&mut message.resource_tenant))
            .filter(|t| !t.is_empty()),
        resource_policy: (!is_blank_policy(&resource_policy_json)).then_some(resource_policy_json),
        explain: message.explain,
        min_version: message.min_version.take().map(SnapshotVersion::from),
        request_id: Some(std::mem::take(&mut message.request_id)).filter(|id| !id.is_empty()),
    })
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
        let mut message = request.into_inner();
        let result = if is_blank_policy(&message.resource_policy_json) {
            self.decide(&mut message)
        } else {
            // Boxed, so that this future holds a pointer for the heavy path rather than its
            // whole state: every `Authorize` moves this future into tonic's box, and the
            // larger it is, the more each one copies.
            Box::pin(self.offload(move |this| this.decide(&mut message))).await?
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
                .any(|r| !is_blank_policy(&r.resource_policy_json));
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
        for (position, mut message) in requests.into_iter().enumerate() {
            match self.decode(&mut message, true) {
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
