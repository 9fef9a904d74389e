//! Peer benchmarks: iamlet, `cedar-policy` and `iam-rs` side by side on the same policies
//! and requests (PERFORMANCE.md P1).
//!
//! Run with `cargo bench --bench peers --features peers`; results, method and how the IAM
//! policies were translated to Cedar are in `benches/README.md`. Setup (parsing, compiling,
//! entity stores, requests) happens outside the measured closures, and before anything is
//! timed every engine's decision is checked against a hand-written expectation, on the
//! benched requests and on a wider set that exercises each statement of the policies.

#![expect(
    clippy::expect_used,
    reason = "a benchmark whose fixtures do not load has nothing to measure"
)]

use std::hint::black_box;
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy as cedar;
use criterion::{criterion_group, criterion_main, Criterion};
use iamlet::authz::{evaluate, Context, Outcome, PolicySet, Principal, Request};
use iamlet::policy::{CompiledPolicy, ContextValue, PolicyDocument, PolicyKind};

const PRINCIPAL_ARN: &str = "arn:aws:sts::111122223333:assumed-role/app/pod-1";

const SIMPLE_POLICY: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::bucket/*"}}"#;

const SIMPLE_CEDAR: &str = r#"permit(principal, action == Action::"s3:GetObject", resource)
when { resource.arn like "arn:aws:s3:::bucket/*" };"#;

const SERVICES: [&str; 10] = [
    "rds",
    "dynamodb",
    "sqs",
    "sns",
    "kms",
    "logs",
    "lambda",
    "ec2",
    "secretsmanager",
    "ssm",
];

/// The typical principal's ten policies as IAM JSON (id, text). The statements are those of
/// `typical_policies()` in `benches/evaluate.rs`, kept identical; the text is returned so that
/// iamlet and iam-rs load the same documents.
fn typical_policy_texts() -> Vec<(String, String)> {
    SERVICES
        .iter()
        .enumerate()
        .map(|(i, svc)| {
            let statements = [
                format!(r#"{{"Sid":"Read{i}","Effect":"Allow","Action":["{svc}:Get*","{svc}:List*","{svc}:Describe*"],"Resource":"arn:aws:{svc}:*:111122223333:*"}}"#),
                format!(r#"{{"Sid":"TeamWrite{i}","Effect":"Allow","Action":["{svc}:Put*","{svc}:Update*"],"Resource":"arn:aws:{svc}:eu-west-1:111122223333:team-${{aws:PrincipalTag/team}}/*","Condition":{{"StringEquals":{{"aws:RequestedRegion":["eu-west-1","eu-central-1"]}}}}}}"#),
                format!(r#"{{"Sid":"Network{i}","Effect":"Allow","Action":"{svc}:Create*","Resource":"*","Condition":{{"IpAddress":{{"aws:SourceIp":["10.0.0.0/8","192.168.0.0/16"]}},"Bool":{{"aws:SecureTransport":"true"}}}}}}"#),
                format!(r#"{{"Sid":"Window{i}","Effect":"Allow","Action":"{svc}:Tag*","Resource":"*","Condition":{{"DateLessThan":{{"aws:CurrentTime":"2030-01-01T00:00:00Z"}},"StringLike":{{"aws:PrincipalTag/project":"proj-*"}}}}}}"#),
                format!(r#"{{"Sid":"Owner{i}","Effect":"Allow","Action":"{svc}:Delete*","Resource":"*","Condition":{{"StringEquals":{{"aws:ResourceTag/owner":"${{aws:username}}"}}}}}}"#),
                if i % 5 == 0 {
                    format!(r#"{{"Sid":"DenyNoMfa{i}","Effect":"Deny","NotAction":["iam:*","sts:*"],"Resource":"*","Condition":{{"BoolIfExists":{{"aws:MultiFactorAuthPresent":"false"}},"StringNotEquals":{{"aws:PrincipalTag/break-glass":"yes"}}}}}}"#)
                } else {
                    format!(r#"{{"Sid":"Admin{i}","Effect":"Allow","Action":"{svc}:*","Resource":"arn:aws:{svc}:*:111122223333:admin/*","Condition":{{"ForAnyValue:StringEquals":{{"aws:PrincipalTag/roles":["admin"]}}}}}}"#)
                },
            ];
            (
                format!("arn:aws:iam::111122223333:policy/{svc}-access"),
                format!(r#"{{"Version":"2012-10-17","Statement":[{}]}}"#, statements.join(",")),
            )
        })
        .collect()
}

/// The same sixty statements in Cedar, one policy per statement, named by its `Sid`.
///
/// - Actions: a wildcard family such as `rds:Get*` is an action group entity
///   `Action::"rds:Get*"`; each concrete action in the entity store has as parents every
///   group whose pattern matches it (see [`action_groups`]), so `Action` becomes
///   `action in [...]` and `NotAction` becomes `!(action in [...])` in a `when`.
/// - Resources: every resource entity carries its ARN in `arn`; ARN wildcards become `like`.
///   Cedar has no string concatenation, so the policy variable in
///   `team-${aws:PrincipalTag/team}/*` cannot be spliced into a pattern: the resource entity
///   carries the `team-<name>/` segment of its ARN in `team`, compared with the principal's
///   tag (equivalent for tag values without `/` or `*`).
/// - Conditions: request keys are `context` attributes under their IAM names, typed (`ip`,
///   `datetime`, booleans); principal tags are Cedar entity tags of the principal
///   (`aws:PrincipalTag/k` is `principal.getTag("k")`), resource tags those of the resource,
///   `aws:username` the principal's `username` attribute. Every access is guarded by
///   `has`/`hasTag`, so a missing key makes a condition false (or true for `IfExists` and
///   negated operators) as in IAM, instead of an evaluation error that would skip the policy.
fn cedar_typical_policies() -> Vec<(String, String)> {
    SERVICES
        .iter()
        .enumerate()
        .flat_map(|(i, svc)| {
            let last = if i % 5 == 0 {
                (
                    format!("DenyNoMfa{i}"),
                    r#"forbid(principal, action, resource)
when { !(action in [Action::"iam:*", Action::"sts:*"])
  && (!(context has "aws:MultiFactorAuthPresent") || context["aws:MultiFactorAuthPresent"] == false)
  && !(principal.hasTag("break-glass") && principal.getTag("break-glass") == "yes") };"#
                        .to_owned(),
                )
            } else {
                (
                    format!("Admin{i}"),
                    format!(
                        r#"permit(principal, action in Action::"{svc}:*", resource)
when {{ resource.arn like "arn:aws:{svc}:*:111122223333:admin/*"
  && principal.hasTag("roles") && ["admin"].contains(principal.getTag("roles")) }};"#
                    ),
                )
            };
            [
                (
                    format!("Read{i}"),
                    format!(
                        r#"permit(principal, action in [Action::"{svc}:Get*", Action::"{svc}:List*", Action::"{svc}:Describe*"], resource)
when {{ resource.arn like "arn:aws:{svc}:*:111122223333:*" }};"#
                    ),
                ),
                (
                    format!("TeamWrite{i}"),
                    format!(
                        r#"permit(principal, action in [Action::"{svc}:Put*", Action::"{svc}:Update*"], resource)
when {{ resource.arn like "arn:aws:{svc}:eu-west-1:111122223333:team-*/*"
  && resource has team && principal.hasTag("team") && resource.team == principal.getTag("team")
  && context has "aws:RequestedRegion"
  && ["eu-west-1", "eu-central-1"].contains(context["aws:RequestedRegion"]) }};"#
                    ),
                ),
                (
                    format!("Network{i}"),
                    format!(
                        r#"permit(principal, action in Action::"{svc}:Create*", resource)
when {{ context has "aws:SourceIp"
  && (context["aws:SourceIp"].isInRange(ip("10.0.0.0/8"))
      || context["aws:SourceIp"].isInRange(ip("192.168.0.0/16")))
  && context has "aws:SecureTransport" && context["aws:SecureTransport"] == true }};"#
                    ),
                ),
                (
                    format!("Window{i}"),
                    format!(
                        r#"permit(principal, action in Action::"{svc}:Tag*", resource)
when {{ context has "aws:CurrentTime" && context["aws:CurrentTime"] < datetime("2030-01-01T00:00:00Z")
  && principal.hasTag("project") && principal.getTag("project") like "proj-*" }};"#
                    ),
                ),
                (
                    format!("Owner{i}"),
                    format!(
                        r#"permit(principal, action in Action::"{svc}:Delete*", resource)
when {{ resource.hasTag("owner") && principal has username
  && resource.getTag("owner") == principal.username }};"#
                    ),
                ),
                last,
            ]
        })
        .collect()
}

fn cedar_policy_set<'a>(
    policies: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> cedar::PolicySet {
    cedar::PolicySet::from_policies(policies.into_iter().map(|(id, text)| {
        cedar::Policy::parse(Some(cedar::PolicyId::new(id)), text).expect("cedar policy parses")
    }))
    .expect("cedar policy ids are unique")
}

/// Every wildcard action pattern (`Action` or `NotAction`) of the IAM documents: the action
/// groups of the Cedar entity store.
fn action_groups(texts: &[&str]) -> Vec<String> {
    fn collect(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::String(s) if s.contains('*') || s.contains('?') => {
                out.push(s.clone());
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
            _ => {}
        }
    }
    let mut groups = Vec::new();
    for text in texts {
        let doc: serde_json::Value = serde_json::from_str(text).expect("policy is JSON");
        let statements = match doc.get("Statement") {
            Some(serde_json::Value::Array(items)) => items.clone(),
            Some(single) => vec![single.clone()],
            None => Vec::new(),
        };
        for statement in &statements {
            for key in ["Action", "NotAction"] {
                if let Some(v) = statement.get(key) {
                    collect(v, &mut groups);
                }
            }
        }
    }
    groups.sort();
    groups.dedup();
    groups
}

/// IAM's action wildcard match (`*`, `?`, case-insensitive), used to give each concrete action
/// entity its groups when the entity store is built.
fn wildcard_matches(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => {
            (0..=text.len()).any(|skip| text.get(skip..).is_some_and(|t| wildcard_matches(rest, t)))
        }
        Some((b'?', rest)) => text
            .split_first()
            .is_some_and(|(_, t)| wildcard_matches(rest, t)),
        Some((c, rest)) => text
            .split_first()
            .is_some_and(|(t0, t)| t0.eq_ignore_ascii_case(c) && wildcard_matches(rest, t)),
    }
}

/// One request, described once and handed to each engine in its own form.
#[derive(Debug, Clone, Copy)]
struct Call {
    action: &'static str,
    resource: &'static str,
    region: &'static str,
    source_ip: &'static str,
    secure_transport: bool,
    mfa: bool,
    /// Principal tags besides `team=payments` and `project=proj-42`.
    extra_tags: &'static [(&'static str, &'static str)],
}

impl Call {
    /// The request of `typical_request()` in `benches/evaluate.rs`.
    fn typical(action: &'static str, resource: &'static str) -> Self {
        Self {
            action,
            resource,
            region: "eu-west-1",
            source_ip: "10.1.2.3",
            secure_transport: true,
            mfa: true,
            extra_tags: &[],
        }
    }

    fn principal_tags(&self) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
        [("team", "payments"), ("project", "proj-42")]
            .into_iter()
            .chain(self.extra_tags.iter().copied())
    }

    fn iamlet(&self) -> Request {
        let mut ctx = Context::new();
        let flag = |b: bool| if b { "true" } else { "false" };
        for (k, v) in [
            ("aws:username", "alice"),
            ("aws:RequestedRegion", self.region),
            ("aws:SourceIp", self.source_ip),
            ("aws:SecureTransport", flag(self.secure_transport)),
            ("aws:CurrentTime", "2026-11-28T12:00:00Z"),
            ("aws:MultiFactorAuthPresent", flag(self.mfa)),
            ("aws:ResourceTag/owner", "alice"),
        ] {
            ctx.insert(k, ContextValue::new(v));
        }
        for (k, v) in self.principal_tags() {
            ctx.insert(&format!("aws:PrincipalTag/{k}"), ContextValue::new(v));
        }
        let principal = Principal::parse(PRINCIPAL_ARN).expect("principal");
        Request::try_new(principal, self.action, self.resource)
            .expect("request")
            .with_context(ctx)
    }

    /// iam-rs reads `Bool` keys only from boolean values, so those two are typed; the others
    /// are strings, as iamlet receives them (iam-rs parses dates and addresses when a
    /// condition reads them).
    fn iam_rs(&self) -> iam_rs::IAMRequest {
        let text = |v: &str| iam_rs::ContextValue::String(v.to_owned());
        let mut ctx = iam_rs::Context::new();
        for (k, v) in [
            ("aws:username", text("alice")),
            ("aws:RequestedRegion", text(self.region)),
            ("aws:SourceIp", text(self.source_ip)),
            (
                "aws:SecureTransport",
                iam_rs::ContextValue::Boolean(self.secure_transport),
            ),
            ("aws:CurrentTime", text("2026-11-28T12:00:00Z")),
            (
                "aws:MultiFactorAuthPresent",
                iam_rs::ContextValue::Boolean(self.mfa),
            ),
            ("aws:ResourceTag/owner", text("alice")),
        ] {
            ctx.insert(k.to_owned(), v);
        }
        for (k, v) in self.principal_tags() {
            ctx.insert(format!("aws:PrincipalTag/{k}"), text(v));
        }
        iam_rs::IAMRequest::new_with_context(
            iam_rs::Principal::Aws(iam_rs::PrincipalId::String(PRINCIPAL_ARN.to_owned())),
            self.action,
            iam_rs::Arn::parse(self.resource).expect("resource ARN"),
            ctx,
        )
    }

    /// The Cedar request and its entity store: the principal (with its tags), the resource,
    /// the request's action with its groups as parents, and every action group.
    fn cedar(&self, groups: &[String]) -> (cedar::Request, cedar::Entities) {
        let principal = uid("Principal", PRINCIPAL_ARN);
        let action = uid("Action", self.action);
        let resource = uid("Resource", self.resource);

        let string = |v: &str| cedar::RestrictedExpression::new_string(v.to_owned());
        let principal_entity = cedar::Entity::new_with_tags(
            principal.clone(),
            [("username".to_owned(), string("alice"))],
            [],
            self.principal_tags()
                .map(|(k, v)| (k.to_owned(), string(v))),
        )
        .expect("principal entity");
        let mut resource_attrs = vec![("arn".to_owned(), string(self.resource))];
        if let Some(team) = team_segment(self.resource) {
            resource_attrs.push(("team".to_owned(), string(team)));
        }
        let resource_entity = cedar::Entity::new_with_tags(
            resource.clone(),
            resource_attrs,
            [],
            [("owner".to_owned(), string("alice"))],
        )
        .expect("resource entity");
        let parents = groups
            .iter()
            .filter(|g| wildcard_matches(g.as_bytes(), self.action.as_bytes()))
            .map(|g| uid("Action", g))
            .collect();
        let action_entity = cedar::Entity::new_no_attrs(action.clone(), parents);
        let group_entities = groups
            .iter()
            .filter(|g| g.as_str() != self.action)
            .map(|g| cedar::Entity::with_uid(uid("Action", g)));

        let entities = cedar::Entities::from_entities(
            [principal_entity, resource_entity, action_entity]
                .into_iter()
                .chain(group_entities),
            None,
        )
        .expect("cedar entities");
        let context = cedar::Context::from_pairs([
            ("aws:RequestedRegion".to_owned(), string(self.region)),
            (
                "aws:SourceIp".to_owned(),
                cedar::RestrictedExpression::new_ip(self.source_ip),
            ),
            (
                "aws:SecureTransport".to_owned(),
                cedar::RestrictedExpression::new_bool(self.secure_transport),
            ),
            (
                "aws:CurrentTime".to_owned(),
                cedar::RestrictedExpression::new_datetime("2026-11-28T12:00:00Z"),
            ),
            (
                "aws:MultiFactorAuthPresent".to_owned(),
                cedar::RestrictedExpression::new_bool(self.mfa),
            ),
        ])
        .expect("cedar context");
        let request =
            cedar::Request::new(principal, action, resource, context, None).expect("cedar request");
        (request, entities)
    }
}

fn uid(entity_type: &str, id: &str) -> cedar::EntityUid {
    cedar::EntityUid::from_type_name_and_id(
        cedar::EntityTypeName::from_str(entity_type).expect("entity type"),
        cedar::EntityId::new(id),
    )
}

/// `payments` for `arn:aws:dynamodb:eu-west-1:111122223333:team-payments/orders`.
fn team_segment(arn: &str) -> Option<&str> {
    let resource = arn.splitn(6, ':').nth(5)?;
    let (segment, _) = resource.strip_prefix("team-")?.split_once('/')?;
    Some(segment)
}

/// The three engines loaded with one policy set.
struct Engines {
    iamlet: Vec<Arc<CompiledPolicy>>,
    cedar: cedar::PolicySet,
    groups: Vec<String>,
    iam_rs: iam_rs::PolicyEvaluator,
}

impl Engines {
    fn load(iam: &[(String, String)], cedar_policies: &[(String, String)]) -> Self {
        let iamlet = iam
            .iter()
            .map(|(id, text)| {
                let doc =
                    PolicyDocument::parse(text, PolicyKind::Identity).expect("bench policy parses");
                Arc::new(CompiledPolicy::compile(
                    id.as_str(),
                    PolicyKind::Identity,
                    &doc,
                ))
            })
            .collect();
        let iam_rs = iam_rs::PolicyEvaluator::with_policies(
            iam.iter()
                .map(|(_, text)| iam_rs::IAMPolicy::from_json(text).expect("iam-rs parses"))
                .collect(),
        );
        let texts: Vec<&str> = iam.iter().map(|(_, t)| t.as_str()).collect();
        Self {
            iamlet,
            cedar: cedar_policy_set(cedar_policies.iter().map(|(i, t)| (i.as_str(), t.as_str()))),
            groups: action_groups(&texts),
            iam_rs,
        }
    }

    fn iamlet_set(&self) -> PolicySet<'_> {
        PolicySet {
            identity: &self.iamlet,
            ..PolicySet::default()
        }
    }

    /// The outcome of each engine, in the order iamlet, cedar, iam-rs.
    fn outcomes(&self, call: &Call) -> [Outcome; 3] {
        let (request, entities) = call.cedar(&self.groups);
        let response = cedar::Authorizer::new().is_authorized(&request, &self.cedar, &entities);
        let errors: Vec<String> = response
            .diagnostics()
            .errors()
            .map(ToString::to_string)
            .collect();
        assert!(errors.is_empty(), "cedar errors on {call:?}: {errors:?}");
        let iam_rs = self
            .iam_rs
            .evaluate(&call.iam_rs())
            .expect("iam-rs evaluates");
        [
            evaluate(&self.iamlet_set(), &call.iamlet()).outcome,
            cedar_outcome(&response),
            match iam_rs.decision {
                iam_rs::Decision::Allow => Outcome::Allow,
                iam_rs::Decision::Deny => Outcome::ExplicitDeny,
                iam_rs::Decision::NotApplicable => Outcome::ImplicitDeny,
            },
        ]
    }
}

/// A Cedar deny is explicit when a `forbid` decided it (the response names it).
fn cedar_outcome(response: &cedar::Response) -> Outcome {
    match response.decision() {
        cedar::Decision::Allow => Outcome::Allow,
        cedar::Decision::Deny if response.diagnostics().reason().next().is_some() => {
            Outcome::ExplicitDeny
        }
        cedar::Decision::Deny => Outcome::ImplicitDeny,
    }
}

const DYNAMO_TEAM: &str = "arn:aws:dynamodb:eu-west-1:111122223333:team-payments/orders";
// An alias, not a key: a request on a key ARN needs the key's key policy (issue 12), which
// these identity-only policy sets do not model.
const KMS_KEY: &str = "arn:aws:kms:eu-west-1:111122223333:alias/new";
const S3_OTHER_REGION: &str = "arn:aws:s3:ca-central-1:111122223333:x";

/// The benched typical requests: those of `benches/evaluate.rs`, except that the
/// condition-allow case names a key ARN where evaluate.rs has `*`, which iam-rs cannot take
/// as a request resource.
fn typical_cases() -> [(&'static str, Call, Outcome); 4] {
    [
        (
            "typical_allow",
            Call::typical("dynamodb:PutItem", DYNAMO_TEAM),
            Outcome::Allow,
        ),
        (
            "typical_implicit_deny",
            Call::typical(
                "sqs:PurgeQueue",
                "arn:aws:sqs:eu-west-1:111122223333:orders",
            ),
            Outcome::ImplicitDeny,
        ),
        (
            "typical_condition_allow",
            Call::typical("kms:CreateKey", KMS_KEY),
            Outcome::Allow,
        ),
        (
            "typical_explicit_deny",
            Call {
                mfa: false,
                ..Call::typical("s3:GetObject", S3_OTHER_REGION)
            },
            Outcome::ExplicitDeny,
        ),
    ]
}

/// Requests that reach every statement of the typical policies, each with the outcome IAM
/// gives, worked out by hand; the last column is iam-rs's where it departs from IAM.
fn agreement_cases() -> Vec<(Call, Outcome, Option<Outcome>)> {
    use Outcome::{Allow, ExplicitDeny, ImplicitDeny};
    let t = Call::typical;
    vec![
        // TeamWrite: the variable must name the principal's team, the region be listed.
        (
            t(
                "dynamodb:PutItem",
                "arn:aws:dynamodb:eu-west-1:111122223333:team-risk/orders",
            ),
            ImplicitDeny,
            None,
        ),
        (
            Call {
                region: "us-east-1",
                ..t("dynamodb:UpdateItem", DYNAMO_TEAM)
            },
            ImplicitDeny,
            None,
        ),
        (
            Call {
                region: "eu-central-1",
                ..t("dynamodb:UpdateItem", DYNAMO_TEAM)
            },
            Allow,
            None,
        ),
        // Network: address range and transport.
        (
            Call {
                source_ip: "8.8.8.8",
                ..t("kms:CreateAlias", KMS_KEY)
            },
            ImplicitDeny,
            None,
        ),
        (
            Call {
                source_ip: "192.168.7.7",
                ..t("kms:CreateAlias", KMS_KEY)
            },
            Allow,
            None,
        ),
        (
            Call {
                secure_transport: false,
                ..t("kms:CreateKey", KMS_KEY)
            },
            ImplicitDeny,
            None,
        ),
        // Window: date and tag pattern.
        (
            t(
                "sns:TagResource",
                "arn:aws:sns:eu-west-1:111122223333:topic",
            ),
            Allow,
            None,
        ),
        // Owner: `${aws:username}` in a condition value. iam-rs substitutes variables in
        // resources only, compares the tag with the literal text, and does not allow.
        (t("kms:DeleteAlias", KMS_KEY), Allow, Some(ImplicitDeny)),
        // Read: account in the ARN.
        (
            t(
                "ssm:DescribeParameters",
                "arn:aws:ssm:us-east-1:111122223333:parameter/x",
            ),
            Allow,
            None,
        ),
        (
            t(
                "ssm:DescribeParameters",
                "arn:aws:ssm:us-east-1:444455556666:parameter/x",
            ),
            ImplicitDeny,
            None,
        ),
        // Admin: ForAnyValue over the principal's `roles` tag.
        (
            Call {
                extra_tags: &[("roles", "admin")],
                ..t(
                    "ssm:SendCommand",
                    "arn:aws:ssm:eu-west-1:111122223333:admin/doc",
                )
            },
            Allow,
            None,
        ),
        (
            t(
                "ssm:SendCommand",
                "arn:aws:ssm:eu-west-1:111122223333:admin/doc",
            ),
            ImplicitDeny,
            None,
        ),
        // DenyNoMfa: NotAction, BoolIfExists, StringNotEquals on a missing tag.
        (
            Call {
                mfa: false,
                ..t(
                    "rds:DescribeDBInstances",
                    "arn:aws:rds:eu-west-1:111122223333:db:x",
                )
            },
            ExplicitDeny,
            None,
        ),
        (
            Call {
                mfa: false,
                ..t("iam:GetRole", "arn:aws:iam::111122223333:role/x")
            },
            ImplicitDeny,
            None,
        ),
        (
            Call {
                mfa: false,
                extra_tags: &[("break-glass", "yes")],
                ..t("s3:GetObject", S3_OTHER_REGION)
            },
            ImplicitDeny,
            None,
        ),
    ]
}

fn bench_peers(c: &mut Criterion) {
    let simple = Engines::load(
        &[("simple".to_owned(), SIMPLE_POLICY.to_owned())],
        &[("simple".to_owned(), SIMPLE_CEDAR.to_owned())],
    );
    let typical = Engines::load(&typical_policy_texts(), &cedar_typical_policies());

    // Every engine must decide as IAM does before any of them is timed.
    let simple_call = Call::typical("s3:GetObject", "arn:aws:s3:::bucket/key");
    for (call, expected) in [
        (simple_call, Outcome::Allow),
        (
            Call::typical("s3:GetObject", "arn:aws:s3:::other/key"),
            Outcome::ImplicitDeny,
        ),
        (
            Call::typical("s3:PutObject", "arn:aws:s3:::bucket/key"),
            Outcome::ImplicitDeny,
        ),
    ] {
        assert_eq!(simple.outcomes(&call), [expected; 3], "simple: {call:?}");
    }
    for (name, call, expected) in typical_cases() {
        assert_eq!(typical.outcomes(&call), [expected; 3], "{name}");
    }
    for (call, expected, iam_rs) in agreement_cases() {
        assert_eq!(
            typical.outcomes(&call),
            [expected, expected, iam_rs.unwrap_or(expected)],
            "{call:?}"
        );
    }

    let cases = std::iter::once(("simple_allow", &simple, simple_call)).chain(
        typical_cases()
            .into_iter()
            .map(|(name, call, _)| (name, &typical, call)),
    );
    for (name, engines, call) in cases {
        let mut group = c.benchmark_group(name);
        let set = engines.iamlet_set();
        let request = call.iamlet();
        group.bench_function("iamlet", |b| {
            b.iter(|| evaluate(black_box(&set), black_box(&request)))
        });
        let authorizer = cedar::Authorizer::new();
        let (request, entities) = call.cedar(&engines.groups);
        group.bench_function("cedar", |b| {
            b.iter(|| {
                authorizer.is_authorized(
                    black_box(&request),
                    black_box(&engines.cedar),
                    black_box(&entities),
                )
            })
        });
        let request = call.iam_rs();
        group.bench_function("iam_rs", |b| {
            b.iter(|| engines.iam_rs.evaluate(black_box(&request)))
        });
        group.finish();
    }
}

criterion_group!(benches, bench_peers);
criterion_main!(benches);
