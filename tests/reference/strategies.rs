//! Random policies and requests over a small universe, and the two ways of deciding them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use iamlet::authz::{evaluate, Context, Outcome, PolicySet, Principal, Request};
use iamlet::policy::{CompiledPolicy, ContextValue, ParseOptions, PolicyDocument, PolicyKind};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Map, Value};

use super::model::{self, Caller, CtxEntry, Input, Verdict};

// === the universe ===

/// Callers: two users of the main account, a role session, and a user of another account.
pub(crate) const CALLERS: &[&str] = &[
    "arn:aws:iam::111122223333:user/alice",
    "arn:aws:iam::111122223333:user/bob",
    "arn:aws:sts::111122223333:assumed-role/R/S",
    "arn:aws:iam::444455556666:user/carol",
];

/// Request actions, some in odd case.
const ACTIONS: &[&str] = &[
    "s3:GetObject",
    "s3:PutObject",
    "s3:ListBucket",
    "sqs:SendMessage",
    "sqs:ReceiveMessage",
    "ec2:RunInstances",
    "S3:GETOBJECT",
    "ec2:runinstances",
    "kms:Decrypt",
    "KMS:encrypt",
];

const ACTION_PATTERNS: &[&str] = &[
    "*",
    "s3:*",
    "s3:GetObject",
    "s3:Get*",
    "s3:*Object",
    "s3:?utObject",
    "S3:getobject",
    "s3:List*",
    "s3:G*t*",
    "sqs:*",
    "sqs:Send*",
    "SQS:receivemessage",
    "ec2:*",
    "ec2:Run?nstances",
    "ec2:GetObject",
    "kms:*",
    "kms:Decrypt",
    "kms:En*",
];

/// Request resources: S3 objects (no account), queues in two accounts, an instance, an ARN
/// with an upper-case head, an object whose key is a literal `*`, and `*`.
const RESOURCES: &[&str] = &[
    "arn:aws:s3:::bucket-a/key1",
    "arn:aws:s3:::bucket-a/key",
    "arn:aws:s3:::bucket-a/dir/alice/key2",
    "arn:aws:s3:::bucket-a/alice",
    "arn:aws:s3:::bucket-a/*",
    "arn:aws:s3:::Bucket-B/x:y",
    "arn:aws:sqs:us-east-1:111122223333:queue1",
    "arn:aws:sqs:us-east-1:444455556666:queue2",
    "ARN:AWS:SQS:US-EAST-1:111122223333:queue1",
    "arn:aws:ec2:us-east-1:111122223333:instance/i-1",
    "arn:aws:kms:us-east-1:111122223333:key/k1",
    "arn:aws:kms:us-east-1:444455556666:key/k2",
    "arn:aws:kms:us-east-1:111122223333:alias/a1",
    "*",
];

const RESOURCE_PATTERNS: &[&str] = &[
    "*",
    "arn:aws:s3:::bucket-a/*",
    "arn:aws:s3:::bucket-a/key?",
    "arn:aws:s3:::bucket-?/*",
    "arn:aws:s3:::*",
    "arn:aws:s3:::bucket-a/*/alice/*",
    "arn:aws:s3:::Bucket-B/*",
    "arn:aws:s3:::bucket-b/*",
    "arn:aws:S3:::bucket-a/*",
    "arn:aws:s3:::Bucket-B/x:*",
    "arn:aws:sqs:*:111122223333:*",
    "arn:aws:sqs:us-east-1:*:queue?",
    "arn:aws:sqs:*",
    "arn:aws:sqs:us-east-1:*",
    "arn:aws:SQS:US-east-1:111122223333:queue1",
    "arn:aws:sqs:us-east-1:111122223333:Queue1",
    "arn:aws:ec2:*:*:instance/*",
    "arn:aws:kms:*:111122223333:key/*",
    "arn:aws:kms:us-east-1:*:*",
    "arn:aws:s3:::bucket-a/${aws:username}",
    "arn:aws:s3:::bucket-a/dir/${aws:username}/*",
    "arn:aws:s3:::bucket-a/${*}",
    "arn:aws:s3:::bucket-a/${aws:PrincipalTag/team, 'key1'}",
    "arn:aws:s3:::bucket-a/${nope}*",
];

/// `AWS` principal values of resource policies.
const PRINCIPALS: &[&str] = &[
    "*",
    "111122223333",
    "arn:aws:iam::111122223333:root",
    "444455556666",
    "arn:aws:iam::111122223333:user/alice",
    "arn:aws:iam::444455556666:user/carol",
    "arn:aws:iam::111122223333:role/R",
    "arn:aws:iam::111122223333:role/team/R",
    "arn:aws:iam::111122223333:role/Other",
    "arn:aws:sts::111122223333:assumed-role/R/S",
];

/// Condition keys with the request values they may carry.
const KEYS: &[(&str, &[&str])] = &[
    ("aws:username", &["alice", "Alice", "bob", "*", ""]),
    ("aws:PrincipalTag/team", &["blue", "Blue", "é", "É", "key1"]),
    ("aws:TagKeys", &["alice", "blue", "dev/x", "é"]),
    ("s3:prefix", &["dev/x", "dev/*", "", "alice", "5"]),
    ("aws:MultiFactorAuthPresent", &["true", "FALSE", "yes"]),
    ("s3:max-keys", &["5", "10", "2.5", "-1", "abc"]),
];

/// Values of string conditions, policy variables included.
const STRING_VALUES: &[&str] = &[
    "alice",
    "Alice",
    "bob",
    "blue",
    "É",
    "é",
    "dev/*",
    "d?v/x",
    "dev/x",
    "*",
    "",
    "5",
    "true",
    "${aws:username}",
    "${aws:PrincipalTag/team}",
    "${aws:username, 'bob'}",
    "${nope, 'blue'}",
    "${nope}",
    "${*}",
    "${aws:TagKeys}",
];

const STRING_OPERATORS: &[&str] = &[
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
];

const VERSIONS: &[Option<&str>] = &[
    Some("2012-10-17"),
    Some("2012-10-17"),
    Some("2008-10-17"),
    None,
];

// === generated cases ===

/// A `Principal` / `NotPrincipal` element.
#[derive(Debug, Clone)]
pub(crate) enum GenPrincipal {
    Everyone,
    Aws { negated: bool, values: Vec<String> },
}

/// One condition entry as written.
#[derive(Debug, Clone)]
pub(crate) struct GenCondition {
    pub(crate) operator: String,
    pub(crate) key: String,
    pub(crate) values: Vec<Value>,
}

#[derive(Debug, Clone)]
pub(crate) struct GenStatement {
    pub(crate) allow: bool,
    pub(crate) principal: Option<GenPrincipal>,
    pub(crate) not_action: bool,
    pub(crate) actions: Vec<String>,
    pub(crate) not_resource: bool,
    pub(crate) resources: Vec<String>,
    pub(crate) conditions: Vec<GenCondition>,
}

#[derive(Debug, Clone)]
pub(crate) struct GenPolicy {
    pub(crate) version: Option<&'static str>,
    pub(crate) statements: Vec<GenStatement>,
}

#[derive(Debug, Clone)]
pub(crate) struct GenRequest {
    pub(crate) caller: &'static str,
    pub(crate) action: &'static str,
    pub(crate) resource: &'static str,
    pub(crate) resource_account: Option<&'static str>,
    /// (key as the request spells it, values).
    pub(crate) context: Vec<(String, CtxEntry)>,
}

/// Policies and a request. Printed as JSON so a failure reads like a policy.
#[derive(Clone)]
pub(crate) struct Case {
    pub(crate) identity: Vec<GenPolicy>,
    pub(crate) boundary: Option<GenPolicy>,
    pub(crate) resource: Option<GenPolicy>,
    pub(crate) request: GenRequest,
}

// === strategies ===

/// Upper, lower or as-written case: keys and actions are case-insensitive.
fn recase(text: &str) -> impl Strategy<Value = String> {
    let text = text.to_owned();
    prop_oneof![
        4 => Just(text.clone()),
        1 => Just(text.to_ascii_lowercase()),
        1 => Just(text.to_ascii_uppercase()),
    ]
}

fn string_value() -> impl Strategy<Value = Value> {
    select(STRING_VALUES).prop_map(Value::from)
}

fn numeric_value() -> impl Strategy<Value = Value> {
    select(vec![
        json!(5),
        json!("10"),
        json!("2.5"),
        json!("-1"),
        json!("abc"),
        json!(0),
    ])
}

/// Includes values no validator accepts (`yes`, or a variable whose value is no boolean):
/// documents are parsed as stored documents are, so such values reach evaluation.
fn bool_value() -> impl Strategy<Value = Value> {
    select(vec![
        json!(true),
        json!("false"),
        json!("TRUE"),
        json!("yes"),
        json!("${aws:PrincipalTag/team, 'true'}"),
        json!("${aws:MultiFactorAuthPresent}"),
    ])
}

fn qualified(base: &'static str) -> impl Strategy<Value = String> {
    (
        select(&["", "", "ForAllValues:", "ForAnyValue:"][..]),
        prop::bool::weighted(0.25),
    )
        .prop_map(move |(q, if_exists)| {
            format!("{q}{base}{}", if if_exists { "IfExists" } else { "" })
        })
}

/// The key of [`KEYS`] that numeric conditions prefer (`s3:max-keys`).
const NUMERIC_KEY: usize = 5;
/// The key of [`KEYS`] that `Bool` conditions prefer (`aws:MultiFactorAuthPresent`).
const BOOL_KEY: usize = 4;

/// The name of key `k` of [`KEYS`] in some case, and one or two values; with `own_values`,
/// the key's own request values are mixed in so that comparisons often succeed.
fn key_and_values(
    k: usize,
    values: BoxedStrategy<Value>,
    own_values: bool,
) -> impl Strategy<Value = (String, Vec<Value>)> {
    let (name, own) = KEYS[k];
    let value = if own_values {
        prop_oneof![values, select(own).prop_map(Value::from)].boxed()
    } else {
        values
    };
    (recase(name), vec(value, 1..=2))
}

fn any_key() -> impl Strategy<Value = usize> {
    0..KEYS.len()
}

fn condition() -> impl Strategy<Value = GenCondition> {
    let string = (select(STRING_OPERATORS).prop_flat_map(qualified), any_key())
        .prop_flat_map(|(op, k)| (Just(op), key_and_values(k, string_value().boxed(), true)));
    let numeric_ops = select(&["NumericLessThan", "NumericGreaterThanEquals"][..]);
    let numeric = (
        numeric_ops.prop_flat_map(qualified),
        prop_oneof![3 => Just(NUMERIC_KEY), 1 => any_key()],
    )
        .prop_flat_map(|(op, k)| (Just(op), key_and_values(k, numeric_value().boxed(), false)));
    let boolean = (
        qualified("Bool"),
        prop_oneof![3 => Just(BOOL_KEY), 1 => any_key()],
    )
        .prop_flat_map(|(op, k)| (Just(op), key_and_values(k, bool_value().boxed(), false)));
    // Set-qualified `Null` too: Access Analyzer's "Null with qualifier".
    let null = (
        any_key(),
        select(&["Null", "Null", "ForAllValues:Null", "ForAnyValue:Null"][..]),
    )
        .prop_flat_map(|(k, op)| {
            let value = prop_oneof![
                8 => select(vec![json!(true), json!("false")]),
                1 => Just(json!("absent")),
            ]
            .boxed();
            (Just(op.to_owned()), key_and_values(k, value, false))
        });
    prop_oneof![6 => string, 2 => numeric, 1 => boolean, 2 => null].prop_map(
        |(operator, (key, values))| GenCondition {
            operator,
            key,
            values,
        },
    )
}

fn principal(hints: &Hints) -> impl Strategy<Value = GenPrincipal> {
    let value = prop_oneof![
        select(PRINCIPALS).prop_map(str::to_owned),
        select(hints.principals.clone()),
    ];
    prop_oneof![
        1 => Just(GenPrincipal::Everyone),
        6 => (prop::bool::weighted(0.2), vec(value, 1..=2))
            .prop_map(|(negated, values)| GenPrincipal::Aws { negated, values }),
    ]
}

/// Patterns derived from a request, so that generated statements often apply to it.
#[derive(Debug, Clone)]
pub(crate) struct Hints {
    actions: Vec<String>,
    resources: Vec<String>,
    principals: Vec<String>,
}

impl Hints {
    /// The action itself, its service's `*`, a prefix with `*`; the resource itself (head
    /// lowercased: a policy's partition must be written in lower case), its "directory" with
    /// `*`, its last character as `?`, and the whole resource part as `*`; the caller's ARN,
    /// account, and (for a session) role.
    pub(crate) fn for_request(request: &GenRequest) -> Self {
        let (service, name) = request.action.split_once(':').unwrap();
        let prefix: String = name.chars().take(3).collect();
        let actions = vec![
            request.action.to_owned(),
            format!("{service}:*"),
            format!("{service}:{prefix}*"),
        ];
        let resources = if request.resource == "*" {
            vec!["*".to_owned()]
        } else {
            let parts: Vec<&str> = request.resource.splitn(6, ':').collect();
            let head = parts[..5].join(":").to_ascii_lowercase();
            let part = parts[5];
            let mut one_less: Vec<char> = part.chars().collect();
            one_less.pop();
            let one_less: String = one_less.into_iter().collect();
            let mut out = vec![
                format!("{head}:{part}"),
                format!("{head}:*"),
                format!("{head}:{one_less}?"),
            ];
            if let Some((dir, _)) = part.rsplit_once('/') {
                out.push(format!("{head}:{dir}/*"));
            }
            out
        };
        let caller = request.caller;
        let account = caller.split(':').nth(4).unwrap().to_owned();
        let mut principals = vec![caller.to_owned(), account.clone()];
        if let Some(rest) = caller.split_once(":assumed-role/").map(|(_, r)| r) {
            let role = rest.split('/').next().unwrap();
            principals.push(format!("arn:aws:iam::{account}:role/{role}"));
        }
        Self {
            actions,
            resources,
            principals,
        }
    }
}

/// A statement; with `principal_element`, one of a resource policy.
pub(crate) fn statement(
    principal_element: bool,
    hints: &Hints,
) -> impl Strategy<Value = GenStatement> {
    let action = prop_oneof![
        select(ACTION_PATTERNS).prop_map(str::to_owned),
        select(hints.actions.clone()),
    ];
    let resource = prop_oneof![
        select(RESOURCE_PATTERNS).prop_map(str::to_owned),
        select(hints.resources.clone()),
    ];
    (
        prop::bool::weighted(0.7),
        if principal_element {
            principal(hints).prop_map(Some).boxed()
        } else {
            Just(None).boxed()
        },
        prop::bool::weighted(0.15),
        vec(action, 1..=2),
        prop::bool::weighted(0.15),
        vec(resource, 1..=2),
        prop_oneof![
            4 => vec(condition(), 0..=0),
            3 => vec(condition(), 1..=1),
            1 => vec(condition(), 2..=2),
        ],
    )
        .prop_map(
            |(allow, principal, not_action, actions, not_resource, resources, conditions)| {
                let mut s = GenStatement {
                    allow,
                    principal,
                    not_action,
                    actions,
                    not_resource,
                    resources,
                    conditions,
                };
                s.fix_principal();
                s
            },
        )
}

fn policy(principal_element: bool, hints: &Hints) -> impl Strategy<Value = GenPolicy> {
    (
        select(VERSIONS),
        vec(statement(principal_element, hints), 1..=3),
    )
        .prop_map(|(version, statements)| GenPolicy {
            version,
            statements,
        })
}

fn context_entry(values: &'static [&'static str]) -> impl Strategy<Value = Option<CtxEntry>> {
    let single = select(values).prop_map(|v| {
        Some(CtxEntry {
            multi: false,
            values: vec![v.to_owned()],
        })
    });
    let multi = vec(select(values), 0..=3).prop_map(|vs| {
        Some(CtxEntry {
            multi: true,
            values: vs.into_iter().map(str::to_owned).collect(),
        })
    });
    prop_oneof![3 => Just(None), 4 => single, 2 => multi]
}

fn context() -> impl Strategy<Value = Vec<(String, CtxEntry)>> {
    let entries: Vec<_> = KEYS
        .iter()
        .map(|(k, values)| (recase(k), context_entry(values)))
        .collect();
    entries.prop_map(|entries| {
        entries
            .into_iter()
            .filter_map(|(k, e)| e.map(|e| (k, e)))
            .collect()
    })
}

pub(crate) fn request() -> impl Strategy<Value = GenRequest> {
    (
        prop_oneof![
            3 => Just(CALLERS[0]),
            1 => Just(CALLERS[1]),
            2 => Just(CALLERS[2]),
            1 => Just(CALLERS[3]),
        ],
        select(ACTIONS),
        select(RESOURCES),
        prop_oneof![6 => Just(None), 1 => select(&[Some("111122223333"), Some("444455556666")][..])],
        context(),
    )
        .prop_map(
            |(caller, action, resource, resource_account, context)| GenRequest {
                caller,
                action,
                resource,
                resource_account,
                context,
            },
        )
}

/// A request, then up to two identity policies, maybe a boundary, maybe a resource policy,
/// drawn partly from patterns that fit the request.
pub(crate) fn case() -> impl Strategy<Value = Case> {
    request().prop_flat_map(|request| {
        let hints = Hints::for_request(&request);
        (
            prop_oneof![
                1 => vec(policy(false, &hints), 0..=0),
                4 => vec(policy(false, &hints), 1..=2),
            ],
            option::weighted(0.3, policy(false, &hints)),
            option::weighted(0.4, policy(true, &hints)),
            Just(request),
        )
            .prop_map(|(identity, boundary, resource, request)| Case {
                identity,
                boundary,
                resource,
                request,
            })
    })
}

/// A case and one more statement (with a principal, dropped outside resource policies).
pub(crate) fn case_and_statement() -> impl Strategy<Value = (Case, GenStatement)> {
    case().prop_flat_map(|case| {
        let hints = Hints::for_request(&case.request);
        (Just(case), statement(true, &hints))
    })
}

// === rendering ===

impl GenStatement {
    /// The statement `{"Effect":"Deny","Action":"*","Resource":"*"}`.
    pub(crate) fn deny_all() -> Self {
        Self {
            allow: false,
            principal: None,
            not_action: false,
            actions: vec!["*".into()],
            not_resource: false,
            resources: vec!["*".into()],
            conditions: Vec::new(),
        }
    }

    /// `NotPrincipal` is only valid with `Deny`: turn it into `Principal` otherwise.
    pub(crate) fn fix_principal(&mut self) {
        if let (true, Some(GenPrincipal::Aws { negated, .. })) = (self.allow, &mut self.principal) {
            *negated = false;
        }
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "Effect".into(),
            json!(if self.allow { "Allow" } else { "Deny" }),
        );
        match &self.principal {
            None => {}
            Some(GenPrincipal::Everyone) => {
                m.insert("Principal".into(), json!("*"));
            }
            Some(GenPrincipal::Aws { negated, values }) => {
                let field = if *negated {
                    "NotPrincipal"
                } else {
                    "Principal"
                };
                m.insert(field.into(), json!({ "AWS": one_or_many(values) }));
            }
        }
        let field = if self.not_action {
            "NotAction"
        } else {
            "Action"
        };
        m.insert(field.into(), one_or_many(&self.actions));
        let field = if self.not_resource {
            "NotResource"
        } else {
            "Resource"
        };
        m.insert(field.into(), one_or_many(&self.resources));
        if !self.conditions.is_empty() {
            let mut block = Map::new();
            for c in &self.conditions {
                let keys = block
                    .entry(c.operator.clone())
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .unwrap();
                // A key twice under one operator is a duplicate JSON key: keep the first.
                keys.entry(c.key.clone())
                    .or_insert_with(|| match &c.values[..] {
                        [one] => one.clone(),
                        many => Value::Array(many.to_vec()),
                    });
            }
            m.insert("Condition".into(), Value::Object(block));
        }
        Value::Object(m)
    }
}

fn one_or_many(values: &[String]) -> Value {
    match values {
        [one] => json!(one),
        many => json!(many),
    }
}

impl GenPolicy {
    pub(crate) fn to_json(&self) -> String {
        let mut m = Map::new();
        if let Some(v) = self.version {
            m.insert("Version".into(), json!(v));
        }
        let statements: Vec<Value> = self.statements.iter().map(GenStatement::to_json).collect();
        m.insert("Statement".into(), Value::Array(statements));
        serde_json::to_string(&Value::Object(m)).unwrap()
    }

    /// Parsed as a stored document is: values of the wrong type (`abc` under a numeric
    /// operator) are accepted, so that evaluation's handling of them is compared too.
    pub(crate) fn parse(&self, kind: PolicyKind) -> PolicyDocument {
        let text = self.to_json();
        PolicyDocument::parse_with(&text, ParseOptions::stored(kind))
            .unwrap_or_else(|e| panic!("generated {kind} policy refused: {e:?}\n{text}"))
    }
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.identity.iter().enumerate() {
            writeln!(f, "identity[{i}]: {}", p.to_json())?;
        }
        if let Some(p) = &self.boundary {
            writeln!(f, "boundary: {}", p.to_json())?;
        }
        if let Some(p) = &self.resource {
            writeln!(f, "resource: {}", p.to_json())?;
        }
        write!(f, "request: {:?}", self.request)
    }
}

// === deciding ===

/// The parsed documents of a case.
pub(crate) struct Parsed {
    identity: Vec<PolicyDocument>,
    boundary: Option<PolicyDocument>,
    resource: Option<PolicyDocument>,
}

impl Case {
    pub(crate) fn parse(&self) -> Parsed {
        Parsed {
            identity: self
                .identity
                .iter()
                .map(|p| p.parse(PolicyKind::Identity))
                .collect(),
            boundary: self
                .boundary
                .as_ref()
                .map(|p| p.parse(PolicyKind::Boundary)),
            resource: self
                .resource
                .as_ref()
                .map(|p| p.parse(PolicyKind::Resource)),
        }
    }

    /// The engine's outcome.
    pub(crate) fn engine(&self) -> Verdict {
        self.parse().engine(&self.request)
    }

    /// The reference model's outcome.
    pub(crate) fn reference(&self) -> Verdict {
        self.parse().reference(&self.request)
    }
}

impl Parsed {
    /// No policies at all.
    pub(crate) fn empty() -> Self {
        Self {
            identity: Vec::new(),
            boundary: None,
            resource: None,
        }
    }

    /// Identity policies given as text.
    pub(crate) fn identity(texts: &[&str]) -> Self {
        let parse = |t: &&str| {
            PolicyDocument::parse_with(t, ParseOptions::lenient(PolicyKind::Identity)).unwrap()
        };
        Self {
            identity: texts.iter().map(parse).collect(),
            boundary: None,
            resource: None,
        }
    }

    pub(crate) fn engine(&self, request: &GenRequest) -> Verdict {
        let compile = |kind, docs: &[PolicyDocument]| -> Vec<Arc<CompiledPolicy>> {
            docs.iter()
                .enumerate()
                .map(|(i, d)| Arc::new(CompiledPolicy::compile(format!("{kind}/{i}"), kind, d)))
                .collect()
        };
        let identity = compile(PolicyKind::Identity, &self.identity);
        let boundary = compile(PolicyKind::Boundary, self.boundary.as_slice());
        let resource = self
            .resource
            .as_ref()
            .map(|d| CompiledPolicy::compile("resource", PolicyKind::Resource, d));
        let set = PolicySet {
            identity: &identity,
            boundary: &boundary,
            resource: resource.as_ref(),
            ..PolicySet::default()
        };
        match evaluate(&set, &request.to_engine()).outcome {
            Outcome::Allow => Verdict::Allow,
            Outcome::ExplicitDeny => Verdict::ExplicitDeny,
            Outcome::ImplicitDeny => Verdict::ImplicitDeny,
        }
    }

    pub(crate) fn reference(&self, request: &GenRequest) -> Verdict {
        let policies = model::Policies {
            identity: &self.identity,
            boundary: self.boundary.as_ref(),
            resource: self.resource.as_ref(),
        };
        model::decide(&policies, &request.to_model())
    }
}

impl GenRequest {
    pub(crate) fn to_engine(&self) -> Request {
        let principal = Principal::parse(self.caller).unwrap();
        let mut request = Request::try_new(principal, self.action, self.resource).unwrap();
        if let Some(account) = self.resource_account {
            request = request.with_resource_account(account);
        }
        let mut ctx = Context::new();
        for (key, entry) in &self.context {
            if entry.multi {
                let values = entry.values.iter().map(|v| ContextValue::new(v.as_str()));
                ctx.insert_multi(key, values.collect());
            } else {
                ctx.insert_str(key, &entry.values[0]);
            }
        }
        request.with_context(ctx)
    }

    pub(crate) fn to_model(&self) -> Input {
        Input {
            caller: Caller::parse(self.caller),
            action: self.action.to_owned(),
            resource: self.resource.to_owned(),
            resource_account: self.resource_account.map(str::to_owned),
            context: self
                .context
                .iter()
                .map(|(k, e)| (k.clone(), e.clone()))
                .collect::<BTreeMap<_, _>>(),
        }
    }
}
