//! The OpenID AuthZEN Authorization API 1.0 on the sidecar's HTTP edge: any AuthZEN policy
//! enforcement point can ask iamlet, with IAM's policies and AWS's answers.
//!
//! - `POST /access/v1/evaluation`: one access evaluation.
//! - `POST /access/v1/evaluations`: several, with the top-level `subject`, `action`,
//!   `resource` and `context` as defaults each evaluation may replace, and
//!   `options.evaluations_semantic` `execute_all` (the default), `deny_on_first_deny` or
//!   `permit_on_first_permit` (the answer then stops at the evaluation that decided). Without
//!   `evaluations` (or with an empty one) it is a single evaluation, answered as one.
//! - `GET /.well-known/authzen-configuration`: the metadata document, naming this edge (the
//!   configured base URL, or the request's `Host` with the edge's own scheme) and both endpoints.
//!
//! The AuthZEN members map onto an [`AuthorizeInput`], decoded once ([`AccessEvaluation`],
//! [`AccessEvaluations`]):
//!
//! | AuthZEN | IAM |
//! |---|---|
//! | `subject` `{"type": "iam_principal", "id": ARN}` | a principal the caller vouches for |
//! | `subject` `{"type": "access_key", "id": key id, "properties": {"secret_access_key", "session_token"?}}` | credentials the sidecar checks |
//! | `action.name` | the IAM action (`s3:GetObject`) |
//! | `resource` | `properties.arn`, else `id` when it is an ARN or `*`, else types `s3_bucket` (id: bucket) and `s3_object` (id: `bucket/key`); any other needs an ARN |
//! | `context` | condition keys: strings, numbers, booleans, arrays of those |
//!
//! An answer is `{"decision": bool, "context": {"reason_admin": …, "reason_user": …}}`: both
//! reasons carry AWS's message under `en` (the spec keys reasons by language), and the
//! administrator's names the outcome, the policy type, the deciding statement or rule, the
//! principal and the snapshot version. A subject the sidecar cannot establish (unknown
//! principal or tenant, bad credentials) is a `false` decision whose context carries the
//! `error` (`status`, AWS's `code`, `message`), as the spec asks of an evaluation that fails
//! within a batch; a request that is not JSON, lacks a required member, has a member of the
//! wrong type, exceeds a bound or carries more than [`MAX_BATCH`] evaluations is a 400 with a
//! JSON body naming the member. `X-Request-ID` is echoed, and becomes the decision log's
//! request id. Every evaluation is counted and logged by the domain's [`Authorizer`]
//! (`Authorize` for the single endpoint, `BatchAuthorize` for each of a batch's).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};

use super::{aws_error, query, ErrorFormat, MAX_BODY_BYTES};
use crate::authz::Context;
use crate::error::{echo, AwsCode};
use crate::policy::ContextValue;
use crate::sidecar::{
    limits, Api, ApiError, AuthorizeInput, Authorizer, CallerId, Decision, MAX_BATCH,
};

/// The path of the single evaluation endpoint.
pub const EVALUATION_PATH: &str = "/access/v1/evaluation";
/// The path of the batch evaluation endpoint.
pub const EVALUATIONS_PATH: &str = "/access/v1/evaluations";
/// The path of the metadata document.
pub const METADATA_PATH: &str = "/.well-known/authzen-configuration";
/// The header the spec has PEPs correlate requests with.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The edge label of this edge's refusals (`iamlet_http_refused_total{edge="authzen"}`).
const EDGE: &str = "authzen";

/// Batches larger than this run on the blocking pool, as the gRPC edge's do.
const INLINE_BATCH: usize = 16;

/// Why a request was refused before the domain saw it (each is a 400).
#[derive(Debug, thiserror::Error)]
pub enum AuthZenError {
    /// The body is not a JSON document.
    #[error("the request body is not JSON: {0}")]
    NotJson(String),
    /// A member is missing, of the wrong type, or not a value iamlet can map.
    #[error("{member}: {reason}")]
    Invalid {
        /// The member's path (`evaluations[2].resource.id`).
        member: String,
        /// Why.
        reason: String,
    },
    /// More evaluations than one request may carry.
    #[error("{0} evaluations; at most {MAX_BATCH}")]
    TooManyEvaluations(usize),
    /// The body is larger than the edge reads.
    #[error("the request body exceeds {MAX_BODY_BYTES} bytes")]
    TooLarge,
}

impl AuthZenError {
    fn invalid(member: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self::Invalid {
            member: member.into(),
            reason: reason.to_string(),
        }
    }
}

/// How a batch is evaluated (`options.evaluations_semantic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EvaluationsSemantic {
    /// Every evaluation, in order.
    #[default]
    ExecuteAll,
    /// In order, up to and including the first that is not a permit.
    DenyOnFirstDeny,
    /// In order, up to and including the first permit.
    PermitOnFirstPermit,
}

impl EvaluationsSemantic {
    /// The spec's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ExecuteAll => "execute_all",
            Self::DenyOnFirstDeny => "deny_on_first_deny",
            Self::PermitOnFirstPermit => "permit_on_first_permit",
        }
    }

    /// Whether a batch stops after an evaluation that `allowed` (or not).
    fn stops_after(self, allowed: bool) -> bool {
        match self {
            Self::ExecuteAll => false,
            Self::DenyOnFirstDeny => !allowed,
            Self::PermitOnFirstPermit => allowed,
        }
    }
}

/// A decoded `POST /access/v1/evaluation` body.
#[derive(Debug, Clone)]
pub struct AccessEvaluation(pub AuthorizeInput);

/// A decoded `POST /access/v1/evaluations` body.
#[derive(Debug, Clone)]
pub struct AccessEvaluations {
    /// The evaluations, defaults applied, in order.
    pub inputs: Vec<AuthorizeInput>,
    /// How they are evaluated.
    pub semantic: EvaluationsSemantic,
    /// False when the body had no `evaluations`: it is one evaluation, answered as one.
    pub batch: bool,
}

impl TryFrom<&Value> for AccessEvaluation {
    type Error = AuthZenError;

    fn try_from(body: &Value) -> Result<Self, AuthZenError> {
        let own = body
            .as_object()
            .ok_or_else(|| AuthZenError::invalid("request", "not a JSON object"))?;
        evaluation(own, None, "").map(Self)
    }
}

impl TryFrom<&Value> for AccessEvaluations {
    type Error = AuthZenError;

    fn try_from(body: &Value) -> Result<Self, AuthZenError> {
        let top = body
            .as_object()
            .ok_or_else(|| AuthZenError::invalid("request", "not a JSON object"))?;
        let semantic = semantic(top.get("options"))?;
        let items = match top.get("evaluations") {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(items)) => items.as_slice(),
            Some(_) => return Err(AuthZenError::invalid("evaluations", "not an array")),
        };
        if items.len() > MAX_BATCH {
            return Err(AuthZenError::TooManyEvaluations(items.len()));
        }
        if items.is_empty() {
            return Ok(Self {
                inputs: vec![evaluation(top, None, "")?],
                semantic,
                batch: false,
            });
        }
        let inputs = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let member = format!("evaluations[{i}]");
                let own = item
                    .as_object()
                    .ok_or_else(|| AuthZenError::invalid(member.as_str(), "not a JSON object"))?;
                evaluation(own, Some(top), &format!("{member}."))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            inputs,
            semantic,
            batch: true,
        })
    }
}

/// `options.evaluations_semantic`, `execute_all` when absent.
fn semantic(options: Option<&Value>) -> Result<EvaluationsSemantic, AuthZenError> {
    let options = match options {
        None | Some(Value::Null) => return Ok(EvaluationsSemantic::default()),
        Some(Value::Object(o)) => o,
        Some(_) => return Err(AuthZenError::invalid("options", "not a JSON object")),
    };
    match options.get("evaluations_semantic") {
        None | Some(Value::Null) => Ok(EvaluationsSemantic::default()),
        Some(Value::String(s)) => [
            EvaluationsSemantic::ExecuteAll,
            EvaluationsSemantic::DenyOnFirstDeny,
            EvaluationsSemantic::PermitOnFirstPermit,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| {
            AuthZenError::invalid(
                "options.evaluations_semantic",
                format!(
                    "`{}` is not execute_all, deny_on_first_deny or permit_on_first_permit",
                    echo(s)
                ),
            )
        }),
        Some(_) => Err(AuthZenError::invalid(
            "options.evaluations_semantic",
            "not a string",
        )),
    }
}

/// One evaluation: each of `subject`, `action`, `resource` and `context` from `own`, else
/// from `defaults` (a batch's top level); member paths name where the value came from.
fn evaluation(
    own: &Map<String, Value>,
    defaults: Option<&Map<String, Value>>,
    prefix: &str,
) -> Result<AuthorizeInput, AuthZenError> {
    let member = |name: &'static str| -> (Option<&Value>, String) {
        match own.get(name).filter(|v| !v.is_null()) {
            Some(v) => (Some(v), format!("{prefix}{name}")),
            None => (
                defaults.and_then(|d| d.get(name)).filter(|v| !v.is_null()),
                name.to_owned(),
            ),
        }
    };
    let (subject, subject_path) = member("subject");
    let (action, action_path) = member("action");
    let (resource, resource_path) = member("resource");
    let (context, context_path) = member("context");
    let caller = decode_subject(required(subject, &subject_path)?, &subject_path)?;
    let action = object(required(action, &action_path)?, &action_path)?;
    let action = string(action, "name", &action_path)?.to_owned();
    if action.is_empty() {
        return Err(AuthZenError::invalid(
            format!("{action_path}.name"),
            "empty",
        ));
    }
    let resource = decode_resource(required(resource, &resource_path)?, &resource_path)?;
    let context = match context {
        None => Context::new(),
        Some(c) => decode_context(object(c, &context_path)?, &context_path)?,
    };
    Ok(AuthorizeInput {
        caller,
        action,
        resource,
        context,
        resource_tenant: None,
        resource_policy: None,
        explain: false,
        min_version: None,
        request_id: None,
    })
}

fn required<'a>(value: Option<&'a Value>, path: &str) -> Result<&'a Value, AuthZenError> {
    value.ok_or_else(|| AuthZenError::invalid(path, "missing"))
}

fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, AuthZenError> {
    value
        .as_object()
        .ok_or_else(|| AuthZenError::invalid(path, "not a JSON object"))
}

/// The string member `name` of `object`, which must be present.
fn string<'a>(
    object: &'a Map<String, Value>,
    name: &str,
    path: &str,
) -> Result<&'a str, AuthZenError> {
    match object.get(name) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(AuthZenError::invalid(format!("{path}.{name}"), "missing")),
        Some(_) => Err(AuthZenError::invalid(
            format!("{path}.{name}"),
            "not a string",
        )),
    }
}

/// The string member `name` of an optional `properties` object, if present.
fn property<'a>(
    properties: Option<&'a Map<String, Value>>,
    name: &str,
    path: &str,
) -> Result<Option<&'a str>, AuthZenError> {
    match properties.and_then(|p| p.get(name)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(AuthZenError::invalid(
            format!("{path}.properties.{name}"),
            "not a string",
        )),
    }
}

fn properties<'a>(
    object: &'a Map<String, Value>,
    path: &str,
) -> Result<Option<&'a Map<String, Value>>, AuthZenError> {
    match object.get("properties") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(p)) => Ok(Some(p)),
        Some(_) => Err(AuthZenError::invalid(
            format!("{path}.properties"),
            "not a JSON object",
        )),
    }
}

fn decode_subject(subject: &Value, path: &str) -> Result<CallerId, AuthZenError> {
    let subject = object(subject, path)?;
    let kind = string(subject, "type", path)?;
    let id = string(subject, "id", path)?;
    if id.is_empty() {
        return Err(AuthZenError::invalid(format!("{path}.id"), "empty"));
    }
    let props = properties(subject, path)?;
    match kind {
        "iam_principal" => Ok(CallerId::PrincipalArn(id.to_owned())),
        "access_key" => {
            if let Some(key) = property(props, "access_key_id", path)? {
                if key != id {
                    return Err(AuthZenError::invalid(
                        format!("{path}.properties.access_key_id"),
                        "differs from the subject's id, which is the access key id",
                    ));
                }
            }
            let secret = property(props, "secret_access_key", path)?
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    AuthZenError::invalid(format!("{path}.properties.secret_access_key"), "missing")
                })?;
            let token = property(props, "session_token", path)?.filter(|t| !t.is_empty());
            Ok(CallerId::Keys {
                access_key_id: id.to_owned(),
                secret: secret.to_owned(),
                session_token: token.map(str::to_owned),
            })
        }
        other => Err(AuthZenError::invalid(
            format!("{path}.type"),
            format!(
                "`{}` is not a subject type iamlet knows: give iam_principal (id: a principal \
                 ARN) or access_key (id: the access key id)",
                echo(other)
            ),
        )),
    }
}

/// The resource's ARN: `properties.arn`, else an `id` that is an ARN or `*`, else the ARN
/// of an S3 bucket or object (S3's ARNs need no account or region); any other resource
/// needs its ARN.
fn decode_resource(resource: &Value, path: &str) -> Result<String, AuthZenError> {
    let resource = object(resource, path)?;
    let kind = string(resource, "type", path)?;
    let id = string(resource, "id", path)?;
    if let Some(arn) = property(properties(resource, path)?, "arn", path)? {
        if arn.is_empty() {
            return Err(AuthZenError::invalid(
                format!("{path}.properties.arn"),
                "empty",
            ));
        }
        return Ok(arn.to_owned());
    }
    if id.is_empty() {
        return Err(AuthZenError::invalid(format!("{path}.id"), "empty"));
    }
    if id == "*" || id.starts_with("arn:") {
        return Ok(id.to_owned());
    }
    match kind {
        "s3_bucket" if !id.contains('/') => Ok(format!("arn:aws:s3:::{id}")),
        "s3_object"
            if id
                .split_once('/')
                .is_some_and(|(b, k)| !b.is_empty() && !k.is_empty()) =>
        {
            Ok(format!("arn:aws:s3:::{id}"))
        }
        "s3_bucket" | "s3_object" => Err(AuthZenError::invalid(
            format!("{path}.id"),
            format!(
                "`{}` is not a bucket name (s3_bucket) or bucket/key (s3_object)",
                echo(id)
            ),
        )),
        _ => Err(AuthZenError::invalid(
            format!("{path}.id"),
            format!(
                "`{}` of type `{}` is not an ARN: give the resource's ARN as `id` or \
                 `properties.arn`",
                echo(id),
                echo(kind)
            ),
        )),
    }
}

/// The text of a scalar condition value, or why it is not one.
fn scalar(value: &Value) -> Result<ContextValue, &'static str> {
    match value {
        Value::String(s) => Ok(ContextValue::new(s.as_str())),
        Value::Number(n) => Ok(ContextValue::new(n.to_string())),
        Value::Bool(b) => Ok(ContextValue::from_bool(*b)),
        Value::Null => Err("null is not a condition value"),
        Value::Array(_) => Err("nested arrays are not condition values"),
        Value::Object(_) => Err("objects are not condition values"),
    }
}

/// The length of a scalar's text as the domain's bounds count it.
fn scalar_chars(value: &Value) -> Option<usize> {
    match value {
        Value::String(s) => Some(crate::sidecar::value_chars(s)),
        _ => None,
    }
}

/// The condition keys of `context`, bounded by the domain's limits before anything is built.
fn decode_context(context: &Map<String, Value>, path: &str) -> Result<Context, AuthZenError> {
    let domain = |e: ApiError| match e {
        ApiError::InvalidArgument { field, reason } => {
            AuthZenError::invalid(format!("{path}: {field}"), reason)
        }
        other => AuthZenError::invalid(path, other),
    };
    crate::sidecar::check_context(context.len(), || {
        context.iter().map(|(key, value)| match value {
            Value::Array(values) => (
                key.as_str(),
                values.len(),
                values.iter().filter_map(scalar_chars).max(),
            ),
            other => (key.as_str(), 1, scalar_chars(other)),
        })
    })
    .map_err(domain)?;
    Context::check_keys(context.keys()).map_err(|e| AuthZenError::invalid(path, e))?;
    let mut ctx = Context::new();
    for (key, value) in context {
        if key.is_empty() {
            return Err(AuthZenError::invalid(path, "a key is empty"));
        }
        let field = || format!("{path}.{}", echo(key));
        match value {
            Value::Array(values) => {
                let values = values
                    .iter()
                    .map(scalar)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|reason| AuthZenError::invalid(field(), reason))?;
                ctx.insert_multi(key, values);
            }
            other => {
                let value =
                    scalar(other).map_err(|reason| AuthZenError::invalid(field(), reason))?;
                ctx.insert(key, value);
            }
        }
    }
    Ok(ctx)
}

/// The AuthZEN edge: decodes, calls the domain [`Authorizer`], renders.
#[derive(Debug, Clone)]
pub struct AuthZen {
    authorizer: Authorizer,
    base: PdpBase,
    /// Large batches run on the blocking pool, at most half the cores at once, so that they
    /// never hold the threads that serve other clients.
    heavy: Arc<tokio::sync::Semaphore>,
}

/// Where the metadata document says this policy decision point is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PdpBase {
    /// The request's `Host`, with `https` when the edge serves TLS itself.
    FromRequest {
        /// The edge serves TLS.
        tls: bool,
    },
    /// A fixed base URL: an edge behind a proxy or a TLS terminator.
    Fixed(Arc<str>),
}

impl PdpBase {
    /// A fixed base URL, without a trailing `/`.
    pub fn fixed(url: &str) -> Self {
        Self::Fixed(url.trim_end_matches('/').into())
    }
}

impl AuthZen {
    /// Decides with `api`; the metadata document names the PDP as `base` says.
    pub fn new(api: Arc<Api>, base: PdpBase) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Self {
            authorizer: Authorizer::new(api),
            base,
            heavy: Arc::new(tokio::sync::Semaphore::new((cores / 2).max(1))),
        }
    }

    /// Answers one decoded evaluation, as `POST /access/v1/evaluation` does (without the
    /// transport: for benchmarks of the whole edge). An error is a request the domain
    /// refused as malformed or could not decide now.
    pub fn evaluate(&self, input: &AuthorizeInput) -> Result<Value, ApiError> {
        match self.authorizer.authorize(input) {
            Ok(decision) => Ok(render(&decision, input)),
            Err(e) if subject_refusal(&e) => Ok(render_refusal(&e)),
            Err(e) => Err(e),
        }
    }

    /// Answers a decoded batch, each evaluation on its own, stopping as `semantic` says.
    pub fn evaluate_all(
        &self,
        inputs: &[AuthorizeInput],
        semantic: EvaluationsSemantic,
    ) -> Result<Vec<Value>, ApiError> {
        let answer = |result: Result<Decision, ApiError>, input: &AuthorizeInput| match result {
            Ok(d) => (d.is_allowed(), render(&d, input)),
            Err(e) => (false, render_refusal(&e)),
        };
        if semantic == EvaluationsSemantic::ExecuteAll {
            return Ok(self
                .authorizer
                .authorize_batch(inputs)?
                .into_iter()
                .zip(inputs)
                .map(|(r, input)| answer(r, input).1)
                .collect());
        }
        // One at a time, so that the evaluations after the deciding one are never made (nor
        // counted or logged).
        let mut answers = Vec::with_capacity(inputs.len());
        for input in inputs {
            let result = self
                .authorizer
                .authorize_batch(std::slice::from_ref(input))?
                .into_iter()
                .next()
                .unwrap_or_else(|| Err(ApiError::invalid("evaluations", "not decided")));
            let (allowed, rendered) = answer(result, input);
            answers.push(rendered);
            if semantic.stops_after(allowed) {
                break;
            }
        }
        Ok(answers)
    }

    /// Counts and logs a request the edge could not decode, as the domain counts a decided
    /// one.
    fn refused(
        &self,
        body: Option<&Value>,
        request_id: Option<&str>,
        e: &AuthZenError,
        batch: bool,
    ) {
        query::count_refusal(EDGE, AwsCode::ValidationError);
        let text = |path: &[&str]| {
            let mut v = body;
            for p in path {
                v = v.and_then(|v| v.get(p));
            }
            v.and_then(Value::as_str)
                .map(|s| echo(s).into_owned())
                .unwrap_or_default()
        };
        let action = text(&["action", "name"]);
        let resource = text(&["resource", "id"]);
        self.authorizer.refused(
            &action,
            &resource,
            request_id,
            &ApiError::invalid("request", e),
            batch,
        );
    }
}

/// The routes: both evaluation endpoints and the metadata document, over `api`.
pub fn authzen_routes(api: Arc<Api>, base: PdpBase) -> Router {
    Router::new()
        .route(EVALUATION_PATH, post(evaluation_handler))
        .route(EVALUATIONS_PATH, post(evaluations_handler))
        .route(METADATA_PATH, get(metadata_handler))
        .with_state(Arc::new(AuthZen::new(api, base)))
}

/// Errors that say the subject could not be established: a decision the PEP must read as a
/// deny, not a malformed request.
fn subject_refusal(e: &ApiError) -> bool {
    matches!(
        e,
        ApiError::UnknownPrincipal { .. } | ApiError::UnknownTenant(_) | ApiError::Sts(_)
    )
}

/// The AuthZEN name of a member the domain refused.
fn member_of(field: &str) -> String {
    match field {
        "principal_arn" => "subject.id".to_owned(),
        "action" => "action.name".to_owned(),
        "resource" => "resource.id".to_owned(),
        "request_id" => "X-Request-ID".to_owned(),
        other => other.to_owned(),
    }
}

/// AWS's code for `e`, and its message as this edge words it (members named as AuthZEN
/// names them; a receiver fault's detail left to the log).
fn error_message(e: &ApiError) -> (AwsCode, String) {
    let code = e.code();
    if code.fault() == crate::error::Fault::Receiver {
        return (
            code,
            "The request processing has failed because of an unknown error, exception or failure."
                .to_owned(),
        );
    }
    let message = match e {
        ApiError::InvalidArgument { field, reason } => format!("{}: {reason}", member_of(field)),
        other => other.to_string(),
    };
    (code, crate::error::bounded_message(&message).into_owned())
}

fn error_object(e: &ApiError) -> Value {
    let (code, message) = error_message(e);
    json!({"status": code.http_status(), "code": code.as_str(), "message": message})
}

/// A `false` decision for an evaluation the domain could not make.
fn render_refusal(e: &ApiError) -> Value {
    let (_, message) = error_message(e);
    json!({
        "decision": false,
        "context": {"error": error_object(e), "reason_user": {"en": message}},
    })
}

/// The answer for a decision.
fn render(d: &Decision, input: &AuthorizeInput) -> Value {
    let message = d.message(&input.action, &input.resource);
    let mut admin = Map::new();
    admin.insert("en".into(), Value::from(message.as_str()));
    admin.insert("outcome".into(), Value::from(d.outcome.as_str()));
    if let Some(kind) = d.policy_type {
        admin.insert("policy_type".into(), Value::from(kind.as_str()));
    }
    if let Some(s) = &d.statement {
        admin.insert(
            "statement".into(),
            json!({"policy": &*s.policy, "index": s.index, "sid": s.sid.as_deref()}),
        );
    }
    if let Some(rule) = d.rule {
        admin.insert("rule".into(), Value::from(rule.as_str()));
    }
    admin.insert("principal".into(), Value::from(&*d.principal));
    admin.insert(
        "snapshot_version".into(),
        Value::from(format!("{}.{}", d.version.epoch, d.version.seq)),
    );
    json!({
        "decision": d.is_allowed(),
        "context": {"reason_admin": admin, "reason_user": {"en": message}},
    })
}

/// The request's `X-Request-ID`: echoed and handed to the domain when it is one.
fn request_id(parts: &Parts) -> Result<Option<String>, AuthZenError> {
    let Some(value) = parts.headers.get(REQUEST_ID_HEADER) else {
        return Ok(None);
    };
    let id = value
        .to_str()
        .map_err(|_| AuthZenError::invalid("X-Request-ID", "not visible ASCII"))?;
    if id.is_empty() {
        return Ok(None);
    }
    if id.len() > limits::MAX_ID_CHARS {
        return Err(AuthZenError::invalid(
            "X-Request-ID",
            format!("longer than {} characters", limits::MAX_ID_CHARS),
        ));
    }
    Ok(Some(id.to_owned()))
}

/// A JSON answer with `status`, echoing `request_id`.
fn answer(status: StatusCode, body: &Value, request_id: Option<&str>) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(id).ok()) {
        headers.insert(REQUEST_ID_HEADER, id);
    }
    response
}

/// An error of the domain's, in the one place HTTP errors are written, as JSON.
fn error_response(e: &ApiError, request_id: Option<&str>) -> Response {
    let (code, message) = error_message(e);
    json_error(code, &message, request_id)
}

/// `aws_error`'s JSON body (`{"__type": code, "message": …}`) with AWS's status for `code`,
/// as `application/json`, echoing `request_id`.
fn json_error(code: AwsCode, message: &str, request_id: Option<&str>) -> Response {
    // AWS's `x-amzn-RequestId` is never empty: the caller's id, or one made up.
    let aws_id = request_id.map_or_else(crate::sidecar::next_request_id, str::to_owned);
    let mut response = aws_error(code, message, &aws_id, ErrorFormat::Json);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(id).ok()) {
        headers.insert(REQUEST_ID_HEADER, id);
    }
    response
}

/// The body as JSON, or why not.
async fn read_json(body: axum::body::Body) -> Result<Value, AuthZenError> {
    // The bounded layer refuses a declared length over the limit unread (413); this cuts a
    // body without one at the limit.
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| AuthZenError::TooLarge)?;
    serde_json::from_slice(&bytes).map_err(|e| AuthZenError::NotJson(e.to_string()))
}

/// A refusal before the domain: counted, logged, answered 400 (`ValidationError`).
fn refuse(
    edge: &AuthZen,
    body: Option<&Value>,
    request_id: Option<&str>,
    e: &AuthZenError,
    batch: bool,
) -> Response {
    edge.refused(body, request_id, e, batch);
    json_error(AwsCode::ValidationError, &e.to_string(), request_id)
}

async fn evaluation_handler(State(edge): State<Arc<AuthZen>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let id = match request_id(&parts) {
        Ok(id) => id,
        Err(e) => return refuse(&edge, None, None, &e, false),
    };
    let body = match read_json(body).await {
        Ok(body) => body,
        Err(e) => return refuse(&edge, None, id.as_deref(), &e, false),
    };
    let mut input = match AccessEvaluation::try_from(&body) {
        Ok(AccessEvaluation(input)) => input,
        Err(e) => return refuse(&edge, Some(&body), id.as_deref(), &e, false),
    };
    input.request_id.clone_from(&id);
    match edge.evaluate(&input) {
        Ok(answer_body) => answer(StatusCode::OK, &answer_body, id.as_deref()),
        Err(e) => error_response(&e, id.as_deref()),
    }
}

async fn evaluations_handler(State(edge): State<Arc<AuthZen>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let id = match request_id(&parts) {
        Ok(id) => id,
        Err(e) => return refuse(&edge, None, None, &e, true),
    };
    let body = match read_json(body).await {
        Ok(body) => body,
        Err(e) => return refuse(&edge, None, id.as_deref(), &e, true),
    };
    let mut request = match AccessEvaluations::try_from(&body) {
        Ok(request) => request,
        Err(e) => return refuse(&edge, Some(&body), id.as_deref(), &e, true),
    };
    for input in &mut request.inputs {
        input.request_id.clone_from(&id);
    }
    if !request.batch {
        let Some(input) = request.inputs.first() else {
            return error_response(&ApiError::invalid("evaluations", "empty"), id.as_deref());
        };
        return match edge.evaluate(input) {
            Ok(body) => answer(StatusCode::OK, &body, id.as_deref()),
            Err(e) => error_response(&e, id.as_deref()),
        };
    }
    let result = if request.inputs.len() > INLINE_BATCH {
        let Ok(_permit) = edge.heavy.acquire().await else {
            return error_response(
                &ApiError::NotLoaded("the service is stopping".into()),
                id.as_deref(),
            );
        };
        let worker = Arc::clone(&edge);
        let AccessEvaluations {
            inputs, semantic, ..
        } = request;
        match tokio::task::spawn_blocking(move || worker.evaluate_all(&inputs, semantic)).await {
            Ok(result) => result,
            Err(_) => Err(ApiError::NotLoaded("the request did not complete".into())),
        }
    } else {
        edge.evaluate_all(&request.inputs, request.semantic)
    };
    match result {
        Ok(evaluations) => answer(
            StatusCode::OK,
            &json!({ "evaluations": evaluations }),
            id.as_deref(),
        ),
        Err(e) => error_response(&e, id.as_deref()),
    }
}

async fn metadata_handler(State(edge): State<Arc<AuthZen>>, parts: Parts) -> Response {
    let base = match &edge.base {
        PdpBase::Fixed(base) => base.to_string(),
        PdpBase::FromRequest { tls } => {
            let host = parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .or_else(|| parts.uri.authority().map(|a| a.as_str()))
                .and_then(|h| h.parse::<axum::http::uri::Authority>().ok())
                .filter(|a| !a.as_str().contains('@'));
            let Some(host) = host else {
                let e = AuthZenError::invalid(
                    "Host",
                    "missing or not a host[:port]: the metadata names the host it was asked on",
                );
                query::count_refusal(EDGE, AwsCode::ValidationError);
                return json_error(AwsCode::ValidationError, &e.to_string(), None);
            };
            // An origin-form request line carries no scheme: the edge knows its own.
            let scheme = if *tls { "https" } else { "http" };
            format!("{scheme}://{host}")
        }
    };
    answer(
        StatusCode::OK,
        &json!({
            "policy_decision_point": base,
            "access_evaluation_endpoint": format!("{base}{EVALUATION_PATH}"),
            "access_evaluations_endpoint": format!("{base}{EVALUATIONS_PATH}"),
        }),
        None,
    )
}

#[cfg(test)]
mod tests;
