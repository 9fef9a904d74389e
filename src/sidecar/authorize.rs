//! `iamlet.v1.Authorizer`: decisions for applications, from the snapshot store only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use ring::digest;
use tonic::{Request, Response, Status};

use crate::authz::{
    evaluate, evaluate_explained, Context, Decision, Outcome, Principal, Request as AuthzRequest,
};
use crate::policy::{
    parse_policy_date, CompiledPolicy, ContextValue, KeyValues, ParseOptions, PolicyDocument,
    PolicyKind, Timestamp,
};
use crate::proto::v1 as pb;
use crate::snapshot::{SnapshotVersion, TenantSnapshot};
use crate::sts::{fill_session_context, Caller, Verified};

use super::api::{status, Api, ApiError, CallerId};
use super::decision_log::{rfc3339_millis, sample_key, DecisionRecord};
use crate::observe::{Answer, Method};

/// The most requests one `BatchAuthorize` carries.
pub(super) const MAX_BATCH: usize = 1000;

/// `iamlet.v1.Authorizer`.
#[derive(Debug, Clone)]
pub struct AuthorizerService {
    api: Arc<Api>,
}

/// A request decoded at the edge; the principal comes with the caller.
struct Decoded {
    caller: CallerId,
    action: String,
    resource: String,
    context: Context,
    resource_tenant: Option<String>,
    inline_policy: Option<String>,
    explain: bool,
    min_version: Option<SnapshotVersion>,
}

/// The caller of a request: named by the application, or proven by credentials (shared with
/// the credential cache, so a hit clones nothing).
enum Authenticated {
    Named(Caller),
    Credentials(Arc<Verified>),
}

impl Authenticated {
    fn caller(&self) -> &Caller {
        match self {
            Self::Named(c) => c,
            Self::Credentials(v) => &v.caller,
        }
    }
}

/// A decision and the tenant that made it.
struct Decided {
    tenant: String,
    response: pb::AuthorizeResponse,
}

/// What the decision cache's key is made of, besides the caller and the snapshots.
struct KeyParts<'a> {
    action: &'a str,
    resource: &'a str,
    resource_tenant: &'a str,
    inline_policy: Option<&'a str>,
    inline: Option<&'a CompiledPolicy>,
    context: &'a Context,
}

/// Context keys whose values follow from the clock.
const CLOCK_KEYS: [&str; 3] = ["aws:currenttime", "aws:epochtime", "aws:multifactorauthage"];

/// The account of an ARN (`arn:partition:service:region:account:...`), if it names one.
fn arn_account(arn: &str) -> Option<&str> {
    arn.strip_prefix("arn:")?
        .split(':')
        .nth(3)
        .filter(|a| !a.is_empty())
}

// === impl AuthorizerService ===

impl AuthorizerService {
    /// Decides with `api`'s snapshots and caches.
    pub fn new(api: Arc<Api>) -> Self {
        Self { api }
    }

    /// The tonic server.
    pub fn into_server(self) -> pb::authorizer_server::AuthorizerServer<Self> {
        pb::authorizer_server::AuthorizerServer::new(self)
    }

    /// Decides one request as `Authorize` does, without gRPC: for a process that embeds
    /// iamlet, and for benchmarks.
    pub fn decide(&self, request: pb::AuthorizeRequest) -> Result<pb::AuthorizeResponse, ApiError> {
        self.decide_logged(request, "Authorize")
    }

    /// Decides one request and logs it.
    fn decide_logged(
        &self,
        message: pb::AuthorizeRequest,
        operation: &'static str,
    ) -> Result<pb::AuthorizeResponse, ApiError> {
        let started = Instant::now();
        let now = Timestamp::now();
        let log = &self.api.log;
        let method = if operation == "BatchAuthorize" {
            Method::BatchAuthorize
        } else {
            Method::Authorize
        };
        if !log.is_enabled() {
            // Nothing to log: no request id, no copies of the action and resource.
            let result = decode(message)
                .and_then(|d| self.decide_decoded(d, now))
                .map(|o| o.response);
            self.api
                .metrics
                .record(method, answer(&result), started.elapsed());
            return result;
        }
        let request_id = if message.request_id.is_empty() {
            next_request_id()
        } else {
            message.request_id.clone()
        };
        let (action, resource) = (message.action.clone(), message.resource.clone());
        let result = decode(message).and_then(|d| self.decide_decoded(d, now));
        self.api.metrics.record(
            method,
            answer(&result.as_ref().map(|o| &o.response)),
            started.elapsed(),
        );
        let deny_or_error =
            !matches!(&result, Ok(o) if o.response.decision == pb::Decision::Allow as i32);
        if log.wants(deny_or_error, sample_key(&request_id)) {
            let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            let record = match &result {
                Ok(o) => DecisionRecord {
                    time: rfc3339_millis(now),
                    request_id,
                    operation,
                    tenant: o.tenant.clone(),
                    principal: o.response.principal_arn.clone(),
                    action,
                    resource,
                    decision: decision_name(o.response.decision),
                    error_code: None,
                    policy_type: policy_type_name(o.response.policy_type),
                    statement: o.response.statement.as_ref().map(|s| {
                        if s.sid.is_empty() {
                            format!("{}#{}", s.policy, s.index)
                        } else {
                            format!("{}#{}({})", s.policy, s.index, s.sid)
                        }
                    }),
                    snapshot_version: o
                        .response
                        .version
                        .map(|v| format!("{}.{}", v.epoch, v.seq))
                        .unwrap_or_default(),
                    latency_us,
                    cached: o.response.cached,
                },
                Err(e) => DecisionRecord {
                    time: rfc3339_millis(now),
                    request_id,
                    operation,
                    tenant: String::new(),
                    principal: String::new(),
                    action,
                    resource,
                    decision: "Error",
                    error_code: Some(e.code().as_str()),
                    policy_type: None,
                    statement: None,
                    snapshot_version: String::new(),
                    latency_us,
                    cached: false,
                },
            };
            log.record(record);
        }
        result.map(|o| o.response)
    }

    fn decide_decoded(&self, d: Decoded, now: Timestamp) -> Result<Decided, ApiError> {
        let Decoded {
            caller: caller_id,
            action,
            resource,
            mut context,
            resource_tenant,
            inline_policy,
            explain,
            min_version,
        } = d;
        // Who is asking, and the caller tenant's snapshot: one load per tenant per request,
        // so every part of the decision sees one version.
        let (verified, snapshot) = match &caller_id {
            CallerId::PrincipalArn(arn) => {
                let principal =
                    Principal::parse(arn).map_err(|e| ApiError::invalid("principal_arn", e))?;
                let tenant = principal
                    .account()
                    .ok_or_else(|| {
                        ApiError::invalid("principal_arn", "the caller must belong to a tenant")
                    })?
                    .to_owned();
                let snapshot = self.api.load(&tenant)?;
                let caller = Caller {
                    principal,
                    session: None,
                    session_policies: Arc::new([]),
                };
                (Authenticated::Named(caller), snapshot)
            }
            other => {
                strip_session_keys(&mut context);
                let (verified, snapshot) = self.api.authenticate(other, now)?;
                (Authenticated::Credentials(verified), snapshot)
            }
        };
        let caller = verified.caller();
        let caller_tenant = snapshot.account_id();
        self.api.check_decide(caller_tenant, now)?;
        if let Some(wanted) = min_version {
            let current = snapshot.version();
            if current < wanted {
                return Err(ApiError::VersionBehind {
                    tenant: caller_tenant.to_owned(),
                    current,
                    wanted,
                });
            }
        }
        let resource_tenant = resource_tenant
            .or_else(|| arn_account(&resource).map(str::to_owned))
            .unwrap_or_else(|| caller_tenant.to_owned());
        let resource_snapshot = if resource_tenant == caller_tenant {
            Some(Arc::clone(&snapshot))
        } else {
            self.api.store.load(&resource_tenant)
        };
        let is_assume_role = action
            .get(..14)
            .is_some_and(|p| p.eq_ignore_ascii_case("sts:assumerole"));
        let inline: Option<CompiledPolicy> = match &inline_policy {
            Some(text) => {
                let kind = if is_assume_role {
                    PolicyKind::Trust
                } else {
                    PolicyKind::Resource
                };
                let document = PolicyDocument::parse_with(text, ParseOptions::lenient(kind))
                    .map_err(|e| {
                        ApiError::invalid(
                            "resource_policy_json",
                            format!("{}: {}", e.code(), e.message()),
                        )
                    })?;
                Some(CompiledPolicy::compile(
                    "request#resource-policy",
                    kind,
                    &document,
                ))
            }
            None => None,
        };

        // The cache is consulted before anything is derived from the caller: a hit costs the
        // key and one lookup.
        let clock = Timestamp::from_epoch_seconds(now.epoch_seconds());
        let cache_key = (!explain).then(|| {
            cache_key(
                &snapshot,
                resource_snapshot
                    .as_deref()
                    .filter(|s| s.account_id() != caller_tenant),
                &caller_id,
                &caller.session_policies,
                &KeyParts {
                    action: &action,
                    resource: &resource,
                    resource_tenant: &resource_tenant,
                    inline_policy: inline_policy.as_deref(),
                    inline: inline.as_ref(),
                    context: &context,
                },
                clock,
            )
        });
        if let Some(hit) = cache_key.as_ref().and_then(|k| self.api.decisions.get(k)) {
            self.api.decision_stats.hit();
            let mut response = (*hit).clone();
            response.cached = true;
            return Ok(Decided {
                tenant: caller_tenant.to_owned(),
                response,
            });
        }
        if cache_key.is_some() {
            self.api.decision_stats.miss();
        }

        let principal = &caller.principal;
        let resolved = snapshot
            .resolve(principal)
            .ok_or_else(|| ApiError::UnknownPrincipal {
                principal: principal.to_string(),
                tenant: caller_tenant.to_owned(),
            })?;
        // The clock at whole seconds, as AWS's `aws:CurrentTime` reads: decisions that read it
        // can then be cached within the second.
        let (current_time, epoch_time) = self.api.clock_values(clock);
        context.insert_if_absent("aws:CurrentTime", current_time);
        context.insert_if_absent("aws:EpochTime", epoch_time);
        resolved.fill_context(principal, &mut context);
        fill_session_context(caller.session.as_deref(), clock, &mut context);
        let mut request = AuthzRequest::try_new(principal.clone(), &action, &resource)
            .map_err(|e| {
                ApiError::invalid(
                    if action.contains(':') {
                        "resource"
                    } else {
                        "action"
                    },
                    e,
                )
            })?
            .with_context(context);
        if resource_tenant != caller_tenant {
            request = request.with_resource_account(resource_tenant);
        }
        let registered = resource_snapshot.as_ref().and_then(|s| {
            let resource = request.resource().as_str();
            if is_assume_role {
                let role = resource.rsplit('/').next()?;
                s.role(role)
                    .filter(|r| &*r.arn == resource)
                    .map(|r| Arc::clone(&r.trust))
            } else {
                s.resource_policy(resource).cloned()
            }
        });
        let resource_policy = inline.as_ref().or(registered.as_deref());
        let policies = resolved.policy_set(resource_policy, &caller.session_policies);
        let (decision, trace): (Decision, _) = if explain {
            let (d, t) = evaluate_explained(&policies, &request);
            (d, t.entries)
        } else {
            (evaluate(&policies, &request), Vec::new())
        };
        let response = pb::AuthorizeResponse {
            decision: match decision.outcome {
                Outcome::Allow => pb::Decision::Allow,
                Outcome::ExplicitDeny => pb::Decision::ExplicitDeny,
                Outcome::ImplicitDeny => pb::Decision::ImplicitDeny,
            } as i32,
            policy_type: decision.policy_type.map_or(0, kind_pb),
            statement: decision.statement.as_ref().map(statement_pb),
            message: decision.message(&request),
            version: Some(snapshot.version().into()),
            trace: trace
                .iter()
                .map(|e| pb::TraceEntry {
                    policy_type: kind_pb(e.policy_type),
                    statement: Some(statement_pb(&e.statement)),
                    effect: e.effect.as_str().to_owned(),
                })
                .collect(),
            principal_arn: principal.to_string(),
            cached: false,
        };
        if let Some(key) = cache_key {
            self.api.decisions.insert(key, Arc::new(response.clone()));
        }
        Ok(Decided {
            tenant: caller_tenant.to_owned(),
            response,
        })
    }
}

fn decode(message: pb::AuthorizeRequest) -> Result<Decoded, ApiError> {
    let pb::AuthorizeRequest {
        caller,
        action,
        resource,
        resource_tenant,
        resource_policy_json,
        context,
        explain,
        min_version,
        request_id: _,
    } = message;
    let caller = match caller {
        Some(pb::authorize_request::Caller::PrincipalArn(arn)) => CallerId::PrincipalArn(arn),
        Some(pb::authorize_request::Caller::Credentials(c)) => CallerId::from_credentials(c)?,
        Some(pb::authorize_request::Caller::SignedRequest(r)) => CallerId::from_signed(&r)?,
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
    Context::check_keys(context.keys()).map_err(|e| ApiError::invalid("context", e))?;
    let mut ctx = Context::new();
    for (key, value) in context {
        if key.is_empty() {
            return Err(ApiError::invalid("context", "a key is empty"));
        }
        if is_principal_key(&key) {
            // These follow from the principal; a caller cannot choose them.
            continue;
        }
        match value.value {
            Some(pb::context_value::Value::StringValue(s)) => ctx.insert_str(&key, &s),
            // Typed values must be what they say: a value no condition can read would make a
            // Deny conditioned on it quietly fail to match.
            Some(pb::context_value::Value::NumberValue(s)) => {
                if s.trim().parse::<f64>().map_or(true, |n| !n.is_finite()) {
                    return Err(ApiError::invalid(
                        format!("context[{key}]"),
                        format!("`{s}` is not a number"),
                    ));
                }
                ctx.insert_str(&key, &s);
            }
            Some(pb::context_value::Value::DateValue(s)) => {
                if parse_policy_date(&s).is_none() {
                    return Err(ApiError::invalid(
                        format!("context[{key}]"),
                        format!("`{s}` is not an ISO 8601 date or epoch seconds"),
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
            None => return Err(ApiError::invalid(format!("context[{key}]"), "no value")),
        }
    }
    Ok(Decoded {
        caller,
        action,
        resource,
        context: ctx,
        resource_tenant: Some(resource_tenant).filter(|t| !t.is_empty()),
        inline_policy: Some(resource_policy_json).filter(|p| !p.trim().is_empty()),
        explain,
        min_version: min_version.map(SnapshotVersion::from),
    })
}

/// Keys the sidecar sets from the principal (IAM-SEMANTICS §3.7).
fn is_principal_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.starts_with("aws:principaltag/")
        || matches!(
            key.as_str(),
            "aws:principalarn"
                | "aws:principalaccount"
                | "aws:principaltype"
                | "aws:userid"
                | "aws:username"
        )
}

/// Keys that follow from credentials: a caller authenticated by the sidecar cannot claim
/// them. (An application naming a principal by ARN vouches for its caller, MFA included.)
fn strip_session_keys(ctx: &mut Context) {
    for key in [
        "aws:tokenissuetime",
        "aws:multifactorauthpresent",
        "aws:multifactorauthage",
        "aws:sourceidentity",
        "aws:federatedprovider",
        "aws:currenttime",
        "aws:epochtime",
    ] {
        ctx.remove(key);
    }
}

/// The decision cache's key: everything the decision depends on. The snapshot versions of
/// both tenants come first, so a swap makes older entries unreachable; the context enters
/// only through the keys some policy in play can read.
/// The decision cache's key: everything the decision depends on, read before the request is
/// evaluated. Both tenants' snapshot versions come first, so a swap makes older entries
/// unreachable. The caller enters by its ARN, or by its access key id, which names a user for
/// a version or one session (its policies, tags and times); the context enters only through
/// the keys some policy in play can read, and the clock only when a policy reads it. The keys
/// the sidecar derives from the caller are a function of those, so they need no place here.
fn cache_key(
    snapshot: &TenantSnapshot,
    resource_snapshot: Option<&TenantSnapshot>,
    caller: &CallerId,
    session_policies: &[Arc<CompiledPolicy>],
    parts: &KeyParts<'_>,
    now: Timestamp,
) -> Box<[u8]> {
    let mut key = Vec::with_capacity(192);
    let mut field = |bytes: &[u8]| {
        key.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes());
        key.extend_from_slice(bytes);
    };
    for s in std::iter::once(snapshot).chain(resource_snapshot) {
        let v = s.version();
        field(s.account_id().as_bytes());
        field(&v.epoch.to_le_bytes());
        field(&v.seq.to_le_bytes());
    }
    field(parts.resource_tenant.as_bytes());
    match caller {
        CallerId::PrincipalArn(arn) => {
            field(b"arn");
            field(arn.as_bytes());
        }
        CallerId::Keys { access_key_id, .. } => {
            field(b"key");
            field(access_key_id.as_bytes());
        }
        CallerId::Signed(s) => {
            field(b"key");
            field(s.access_key_id().as_bytes());
        }
    }
    field(parts.action.as_bytes());
    field(parts.resource.as_bytes());
    match parts.inline_policy {
        Some(text) => field(digest::digest(&digest::SHA256, text.as_bytes()).as_ref()),
        None => field(b""),
    }
    let reads = |k: &str| {
        let found = |keys: &[Box<str>]| keys.binary_search_by(|x| (**x).cmp(k)).is_ok();
        found(snapshot.context_keys())
            || resource_snapshot.is_some_and(|s| found(s.context_keys()))
            || parts.inline.is_some_and(|p| found(p.context_keys()))
            || session_policies.iter().any(|p| found(p.context_keys()))
    };
    for (k, values) in parts.context.iter() {
        if !reads(k) {
            continue;
        }
        field(k.as_bytes());
        match values {
            KeyValues::Single(v) => field(v.as_str().as_bytes()),
            KeyValues::Multi(vs) => {
                field(&u32::try_from(vs.len()).unwrap_or(u32::MAX).to_le_bytes());
                for v in vs {
                    field(v.as_str().as_bytes());
                }
            }
        }
    }
    if CLOCK_KEYS.iter().any(|k| reads(k)) {
        field(b"clock");
        field(&now.epoch_seconds().to_le_bytes());
    }
    key.into_boxed_slice()
}

/// How a request ended, for the latency metric.
fn answer<R: std::borrow::Borrow<pb::AuthorizeResponse>, E>(result: &Result<R, E>) -> Answer {
    match result
        .as_ref()
        .map(|r| pb::Decision::try_from(r.borrow().decision))
    {
        Ok(Ok(pb::Decision::Allow)) => Answer::Allow,
        Ok(Ok(pb::Decision::ExplicitDeny)) => Answer::ExplicitDeny,
        Ok(_) => Answer::ImplicitDeny,
        Err(_) => Answer::Error,
    }
}

static REQUEST_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A process-unique request id: the start time and a counter (no randomness on the hot path).
pub(super) fn next_request_id() -> String {
    static START: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let start = START.get_or_init(|| Timestamp::now().epoch_millis());
    let n = REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{start:x}-{n}")
}

fn decision_name(decision: i32) -> &'static str {
    match pb::Decision::try_from(decision) {
        Ok(pb::Decision::Allow) => "Allow",
        Ok(pb::Decision::ExplicitDeny) => "ExplicitDeny",
        _ => "ImplicitDeny",
    }
}

fn policy_type_name(kind: i32) -> Option<&'static str> {
    match pb::PolicyKind::try_from(kind).ok()? {
        pb::PolicyKind::Identity => Some("Identity"),
        pb::PolicyKind::Resource => Some("Resource"),
        pb::PolicyKind::Trust => Some("Trust"),
        pb::PolicyKind::Boundary => Some("Boundary"),
        pb::PolicyKind::Session => Some("Session"),
        pb::PolicyKind::Scp => Some("SCP"),
        pb::PolicyKind::Rcp => Some("RCP"),
        pb::PolicyKind::VpcEndpoint => Some("VpcEndpoint"),
        _ => None,
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

fn statement_pb(s: &crate::authz::StatementRef) -> pb::StatementRef {
    pb::StatementRef {
        policy: s.policy.to_string(),
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
        self.decide_logged(request.into_inner(), "Authorize")
            .map(Response::new)
            .map_err(|e| status(&e))
    }

    async fn batch_authorize(
        &self,
        request: Request<pb::BatchAuthorizeRequest>,
    ) -> Result<Response<pb::BatchAuthorizeResponse>, Status> {
        let requests = request.into_inner().requests;
        if requests.len() > MAX_BATCH {
            return Err(status(&ApiError::invalid(
                "requests",
                format!("{} requests; at most {MAX_BATCH}", requests.len()),
            )));
        }
        let results = requests
            .into_iter()
            .map(|r| {
                let result = match self.decide_logged(r, "BatchAuthorize") {
                    Ok(response) => pb::batch_authorize_result::Result::Response(response),
                    Err(e) => pb::batch_authorize_result::Result::Error(pb::AuthorizeError {
                        grpc_code: crate::grpc::grpc_code(e.code()) as i32,
                        aws_code: e.code().as_str().to_owned(),
                        message: e.to_string(),
                    }),
                };
                pb::BatchAuthorizeResult {
                    result: Some(result),
                }
            })
            .collect();
        Ok(Response::new(pb::BatchAuthorizeResponse { results }))
    }
}
