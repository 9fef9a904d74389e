//! Decision vectors: the corpus format of `../shared/corpus/README.md`, and its runner.
//!
//! A vector holds the policies of each type, a request and the expected outcome. The runner
//! parses each policy with the rules of its kind (any `Version` accepted, as stored documents
//! are evaluated as written), compiles it, evaluates the request and compares.
//!
//! Two transcription shapes of the corpus are read as their authors meant them: a bare ARN
//! string as `Principal` (`"Principal": "arn:aws:iam::A:root"`) is `{"AWS": ...}`, and a policy
//! whose `Statement` is an empty array has no statements (IAM itself rejects both shapes when a
//! policy is stored).

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::authz::{
    evaluate, Context, Decision, Environment, OrgLevel, Outcome, PolicySet, Principal, Request,
};
use crate::policy::{CompiledPolicy, ContextValue, ParseOptions, PolicyDocument, PolicyKind};

/// What a vector expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// `Allow`.
    Allow,
    /// `ExplicitDeny`.
    ExplicitDeny,
    /// `ImplicitDeny`.
    ImplicitDeny,
    /// `Deny`: the source only says "not allowed", so either deny passes.
    Deny,
}

/// The result of one vector.
#[derive(Debug, Clone, Serialize)]
pub struct VectorResult {
    /// The vector's id.
    pub id: String,
    /// The decision iamlet reached.
    pub decision: &'static str,
    /// The expected outcome, if the vector states one.
    pub expected: Option<&'static str>,
    /// Whether the decision meets the expectation (absent without one).
    pub pass: Option<bool>,
    /// AWS's message for the decision, with the deciding statement.
    pub reason: String,
    /// The rule of AWS's that decided instead of a statement (`NoPermissionRequired`,
    /// `KeyPolicyRequired`) and why; absent when statements decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

/// A vector that cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VectorError {
    /// The line is not JSON.
    #[error("the line is not valid JSON: {0}")]
    Json(String),
    /// A required field is missing or has the wrong type.
    #[error("field `{0}` is missing or invalid")]
    Field(&'static str),
    /// A policy of the vector is refused.
    #[error("policy `{which}` is invalid: {code}: {message}")]
    Policy {
        /// Which policy (`identity[0]`, `resource`, ...).
        which: String,
        /// AWS's error code.
        code: crate::error::AwsCode,
        /// AWS's message.
        message: String,
    },
    /// The request is invalid.
    #[error("invalid request: {0}")]
    Request(String),
}

// === impl Expected ===

impl Expected {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "Allow" => Some(Self::Allow),
            "ExplicitDeny" => Some(Self::ExplicitDeny),
            "ImplicitDeny" => Some(Self::ImplicitDeny),
            "Deny" => Some(Self::Deny),
            _ => None,
        }
    }

    /// The expectation as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "Allow",
            Self::ExplicitDeny => "ExplicitDeny",
            Self::ImplicitDeny => "ImplicitDeny",
            Self::Deny => "Deny",
        }
    }

    /// Does `outcome` meet the expectation?
    pub fn accepts(self, outcome: Outcome) -> bool {
        match self {
            Self::Allow => outcome == Outcome::Allow,
            Self::ExplicitDeny => outcome == Outcome::ExplicitDeny,
            Self::ImplicitDeny => outcome == Outcome::ImplicitDeny,
            Self::Deny => outcome != Outcome::Allow,
        }
    }
}

/// The compiled policies and request of one vector.
#[derive(Debug, Clone)]
pub struct Vector {
    /// The vector's id.
    pub id: String,
    /// The expectation, if any.
    pub expected: Option<Expected>,
    /// The request.
    pub request: Request,
    identity: Vec<Arc<CompiledPolicy>>,
    boundary: Vec<Arc<CompiledPolicy>>,
    session: Vec<Arc<CompiledPolicy>>,
    resource: Option<Arc<CompiledPolicy>>,
    scp: Vec<OrgLevel>,
    rcp: Vec<OrgLevel>,
    vpc_endpoint: Vec<Arc<CompiledPolicy>>,
}

// === impl Vector ===

impl Vector {
    /// Reads one JSON line of the vector format.
    pub fn parse(line: &str) -> Result<Self, VectorError> {
        let value: Value =
            serde_json::from_str(line).map_err(|e| VectorError::Json(e.to_string()))?;
        let id = value
            .get("id")
            .and_then(Value::as_str)
            .ok_or(VectorError::Field("id"))?
            .to_owned();
        let expected = match value.get("expected") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_str()
                    .and_then(Expected::parse)
                    .ok_or(VectorError::Field("expected"))?,
            ),
        };
        let request_json = value.get("request").ok_or(VectorError::Field("request"))?;
        let request = parse_request(request_json, value.get("environment"))?;
        let policies = value
            .get("policies")
            .ok_or(VectorError::Field("policies"))?;

        let action_lower = request.action().lower().to_owned();
        let resource_kind = if action_lower.starts_with("sts:assumerole") {
            PolicyKind::Trust
        } else {
            PolicyKind::Resource
        };
        let list = |key: &'static str,
                    kind: PolicyKind|
         -> Result<Vec<Arc<CompiledPolicy>>, VectorError> {
            match policies.get(key) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(docs)) => docs
                    .iter()
                    .enumerate()
                    .filter_map(|(i, d)| compile(d, kind, &format!("{key}[{i}]")).transpose())
                    .collect(),
                Some(doc) => Ok(compile(doc, kind, key)?.into_iter().collect()),
            }
        };
        let identity = list("identity", PolicyKind::Identity)?;
        let boundary = list("permission_boundary", PolicyKind::Boundary)?;
        let session = list("session", PolicyKind::Session)?;
        let vpc_endpoint = list("vpc_endpoint", PolicyKind::VpcEndpoint)?;
        let resource = match policies.get("resource") {
            None | Some(Value::Null) => None,
            Some(doc) => compile(doc, resource_kind, "resource")?,
        };
        let levels = |key: &'static str, kind: PolicyKind| -> Result<Vec<OrgLevel>, VectorError> {
            let Some(levels) = policies.get(key) else {
                return Ok(Vec::new());
            };
            let levels = levels.as_array().ok_or(VectorError::Field(key))?;
            levels
                .iter()
                .enumerate()
                .map(|(i, level)| {
                    let name = level.get("level").and_then(Value::as_str).unwrap_or("");
                    let docs = level
                        .get("policies")
                        .and_then(Value::as_array)
                        .ok_or(VectorError::Field(key))?;
                    let policies = docs
                        .iter()
                        .enumerate()
                        .filter_map(|(j, d)| {
                            compile(d, kind, &format!("{key}[{i}].policies[{j}]")).transpose()
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(OrgLevel {
                        name: name.into(),
                        policies,
                    })
                })
                .collect()
        };
        let scp = levels("scp", PolicyKind::Scp)?;
        let rcp = levels("rcp", PolicyKind::Rcp)?;
        Ok(Self {
            id,
            expected,
            request,
            identity,
            boundary,
            session,
            resource,
            scp,
            rcp,
            vpc_endpoint,
        })
    }

    /// The policies, borrowed for evaluation.
    pub fn policy_set(&self) -> PolicySet<'_> {
        PolicySet {
            identity: &self.identity,
            boundary: &self.boundary,
            session: &self.session,
            resource: self.resource.as_deref(),
            scp: &self.scp,
            rcp: &self.rcp,
            vpc_endpoint: &self.vpc_endpoint,
        }
    }

    /// Evaluates the vector.
    pub fn run(&self) -> VectorResult {
        let decision = evaluate(&self.policy_set(), &self.request);
        VectorResult {
            id: self.id.clone(),
            decision: decision.outcome.as_str(),
            expected: self.expected.map(Expected::as_str),
            pass: self.expected.map(|e| e.accepts(decision.outcome)),
            reason: reason(&decision, &self.request),
            rule: decision
                .rule
                .map(|r| format!("{}: {}", r.as_str(), r.explanation())),
        }
    }
}

fn reason(decision: &Decision, request: &Request) -> String {
    let message = decision.message(request);
    match (&decision.statement, decision.rule) {
        (Some(statement), _) => format!("{message} (statement {statement})"),
        (None, Some(rule)) => format!("{message} (rule {rule})"),
        (None, None) => message,
    }
}

/// A vector's policy as the text the runner parses: a bare ARN `Principal` wrapped as
/// `{"AWS": ...}`; `None` for a policy whose `Statement` is an empty array (it has no
/// statements, so the runner leaves it out). For callers that hand a vector's policies to
/// another entry point, such as the admin API's policy simulator.
pub fn policy_text(doc: &Value) -> Option<String> {
    if doc
        .get("Statement")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
    {
        return None;
    }
    let mut doc = doc.clone();
    normalise_principals(&mut doc);
    Some(doc.to_string())
}

fn compile(
    doc: &Value,
    kind: PolicyKind,
    which: &str,
) -> Result<Option<Arc<CompiledPolicy>>, VectorError> {
    let Some(text) = policy_text(doc) else {
        return Ok(None);
    };
    let parsed = PolicyDocument::parse_with(&text, ParseOptions::lenient(kind)).map_err(|e| {
        VectorError::Policy {
            which: which.to_owned(),
            code: e.code(),
            message: e.message().to_owned(),
        }
    })?;
    Ok(Some(Arc::new(CompiledPolicy::compile(
        which, kind, &parsed,
    ))))
}

fn normalise_principals(doc: &mut Value) {
    let statements: Vec<&mut Value> = match doc.get_mut("Statement") {
        Some(Value::Array(items)) => items.iter_mut().collect(),
        Some(single @ Value::Object(_)) => vec![single],
        _ => Vec::new(),
    };
    for statement in statements {
        for key in ["Principal", "NotPrincipal"] {
            if let Some(Value::String(s)) = statement.get(key) {
                if s != "*" {
                    let wrapped = serde_json::json!({ "AWS": s });
                    if let Some(slot) = statement.get_mut(key) {
                        *slot = wrapped;
                    }
                }
            }
        }
    }
}

fn parse_request(json: &Value, environment: Option<&Value>) -> Result<Request, VectorError> {
    let principal = match json.get("principal") {
        Some(Value::String(s)) => {
            Principal::parse(s).map_err(|e| VectorError::Request(e.to_string()))?
        }
        Some(Value::Object(o)) if o.get("type").and_then(Value::as_str) == Some("Anonymous") => {
            Principal::Anonymous
        }
        _ => return Err(VectorError::Field("request.principal")),
    };
    let action = json
        .get("action")
        .and_then(Value::as_str)
        .ok_or(VectorError::Field("request.action"))?;
    let resource = json
        .get("resource")
        .and_then(Value::as_str)
        .ok_or(VectorError::Field("request.resource"))?;
    let mut request = Request::try_new(principal, action, resource)
        .map_err(|e| VectorError::Request(e.to_string()))?;
    if let Some(account) = json.get("resource_account").and_then(Value::as_str) {
        request = request.with_resource_account(account);
    }
    // Keys that differ only in case are one key (condition keys are case-insensitive): a
    // vector holding both is ambiguous and refused, naming both.
    let mut context = Context::new();
    if let Some(entries) = json.get("context").and_then(Value::as_object) {
        for (key, value) in entries {
            match value {
                Value::Array(items) => context.try_insert_multi(
                    key,
                    items
                        .iter()
                        .map(|i| scalar(i).ok_or(VectorError::Field("request.context")))
                        .collect::<Result<_, _>>()?,
                ),
                other => context.try_insert(
                    key,
                    scalar(other).ok_or(VectorError::Field("request.context"))?,
                ),
            }
            .map_err(|e| VectorError::Request(e.to_string()))?;
        }
    }
    let mut env = Environment::default();
    if let Some(e) = environment {
        env.management_account = e
            .get("organization_management_account")
            .and_then(Value::as_str)
            .map(Into::into);
        env.principal_is_service_linked_role = e
            .get("principal_is_service_linked_role")
            .and_then(Value::as_bool)
            .unwrap_or(false);
    }
    Ok(request.with_context(context).with_environment(env))
}

fn scalar(value: &Value) -> Option<ContextValue> {
    match value {
        Value::String(s) => Some(ContextValue::new(s.as_str())),
        Value::Number(n) => Some(ContextValue::new(n.to_string())),
        Value::Bool(b) => Some(ContextValue::from_bool(*b)),
        _ => None,
    }
}
