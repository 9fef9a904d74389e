//! The policy simulator: `SimulatePrincipalPolicy`, `SimulateCustomPolicy`,
//! `GetContextKeysForPrincipalPolicy` and `GetContextKeysForCustomPolicy`, with AWS's
//! parameters and response shapes (botocore's `SimulatePolicyResponse` and
//! `GetContextKeysForPolicyResponse`).
//!
//! A simulation decides with the engine the sidecar's `Authorize` uses: documents are parsed
//! and compiled as the snapshot compiles them (stored documents with the stored rules,
//! AWS-managed ones with theirs, a managed boundary recompiled as a boundary) and every
//! (action, resource) pair goes through `authz::evaluate_explained`, whose decision is the
//! one `evaluate` reaches (the explained entry point only records, it never decides). The
//! simulation and `Authorize` therefore agree whenever they are given the same policies,
//! request and context.
//!
//! As in AWS's simulator, the request context is exactly the caller's `ContextEntries`: keys
//! the sidecar derives from the principal (`aws:username`, `aws:PrincipalTag/*`, ...) are not
//! filled in, and a key a relevant statement reads that the entries do not give is reported
//! in `MissingContextValues`.
//!
//! One `EvaluationResult` is returned per action (botocore 1.44's shape): its
//! `EvalResourceName` is `*` (iamlet has no catalogue of ARN formats to name a template), its
//! decision the most restrictive over the resources, and, when `ResourceArns` is given, each
//! resource's own decision is in `ResourceSpecificResults`. `PolicyExclusionList` is refused:
//! iamlet simulates every policy of the principal.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::params::{invalid, Params};
use super::render::Page;
use crate::authz::{
    evaluate_explained, Context, Decision, OrgLevel, Outcome, PolicySet, Principal, Request, Trace,
    TraceEntry,
};
use crate::control_plane::AdminError;
use crate::directory::{aws_managed_policy, DirectoryError, Tenant};
use crate::policy::{
    Cidr, CompiledPolicy, ContextValue, Decimal, Effect, ParseOptions, PolicyDocument, PolicyKind,
};

/// `SourcePolicyType` of the policies given in the request (AWS reports `IAM Policy`).
const INPUT_POLICY: &str = "IAM Policy";

/// The EC2 scenarios of `ResourceHandlingOption` and the resource types each requires.
const SCENARIOS: &[(&str, &[&str])] = &[
    (
        "EC2-VPC-InstanceStore",
        &["instance", "image", "security-group", "network-interface"],
    ),
    (
        "EC2-VPC-InstanceStore-Subnet",
        &[
            "instance",
            "image",
            "security-group",
            "network-interface",
            "subnet",
        ],
    ),
    (
        "EC2-VPC-EBS",
        &[
            "instance",
            "image",
            "security-group",
            "network-interface",
            "volume",
        ],
    ),
    (
        "EC2-VPC-EBS-Subnet",
        &[
            "instance",
            "image",
            "security-group",
            "network-interface",
            "subnet",
            "volume",
        ],
    ),
];

/// Runs `action` if it is one of the simulator's (`Ok(None)` otherwise).
pub(super) fn run(
    t: &Tenant,
    action: &str,
    p: Params<'_>,
    map: &Map<String, Value>,
) -> Result<Option<Value>, AdminError> {
    Ok(Some(match action {
        "SimulateCustomPolicy" => {
            let inputs = Inputs::custom(t, p, map)?;
            simulate(&inputs, p)?
        }
        "SimulatePrincipalPolicy" => {
            if map.get("PolicyExclusionList").is_some_and(|v| !v.is_null()) {
                return Err(invalid_input(
                    "PolicyExclusionList is not supported: iamlet simulates every policy of the principal; remove the parameter, or use SimulateCustomPolicy with the policies to keep.",
                ));
            }
            let inputs = Inputs::principal(t, p, map)?;
            simulate(&inputs, p)?
        }
        "GetContextKeysForCustomPolicy" => {
            let sources = input_list(map, "PolicyInputList", PolicyKind::Identity, true)?;
            context_keys_result(&sources)
        }
        "GetContextKeysForPrincipalPolicy" => {
            let entity = Entity::read(t, p.str("PolicySourceArn")?)?;
            let mut sources = entity.sources(t)?;
            sources.extend(input_list(
                map,
                "PolicyInputList",
                PolicyKind::Identity,
                false,
            )?);
            context_keys_result(&sources)
        }
        _ => return Ok(None),
    }))
}

fn invalid_input(message: &str) -> AdminError {
    AdminError::Directory(DirectoryError::InvalidInput(message.to_owned()))
}

/// One policy of a simulation: where it came from, its text and its compiled form.
#[derive(Debug)]
struct Source {
    /// `SourcePolicyId`: `PolicyInputList.1`, an inline policy's name, a managed policy's
    /// name, `ResourcePolicy`.
    id: String,
    /// `SourcePolicyType`: `IAM Policy`, `user`, `group`, `role`, `aws-managed`,
    /// `user-managed`, `resource`.
    source_type: &'static str,
    text: String,
    document: PolicyDocument,
    compiled: Arc<CompiledPolicy>,
}

/// Where a stored or given document comes from, for compiling it and naming it in errors.
struct Origin<'a> {
    id: String,
    source_type: &'static str,
    text: &'a str,
    kind: PolicyKind,
    options: ParseOptions,
    stored: bool,
}

impl Source {
    /// Parses and compiles a document. A document given in the request that does not parse
    /// is `InvalidInput`; a stored one that no longer does is AWS's `PolicyEvaluation` (stored
    /// documents passed the write-time rules, so only a document stored before a stricter
    /// parser can).
    fn compile(origin: Origin<'_>, serial: usize) -> Result<Self, AdminError> {
        let document = PolicyDocument::parse_with(origin.text, origin.options).map_err(|e| {
            if origin.stored {
                AdminError::PolicyEvaluation(format!(
                    "The stored policy {} could not be evaluated: {}",
                    origin.id,
                    e.message()
                ))
            } else {
                invalid_input(&format!(
                    "Policy document {} is malformed: {}",
                    origin.id,
                    e.message()
                ))
            }
        })?;
        // The compiled id is the source's position: trace entries name it.
        let compiled = CompiledPolicy::compile(serial.to_string(), origin.kind, &document);
        Ok(Self {
            id: origin.id,
            source_type: origin.source_type,
            text: origin.text.to_owned(),
            document,
            compiled: Arc::new(compiled),
        })
    }

    /// The same document evaluated as another kind (a managed policy as a boundary, a
    /// resource policy as a role's trust policy), as the snapshot does.
    fn as_kind(&self, kind: PolicyKind) -> Arc<CompiledPolicy> {
        Arc::new(self.compiled.with_kind(kind))
    }
}

/// Reads a list of policy documents (`PolicyInputList`, ...), named `NAME.1`, `NAME.2`, ...
fn input_list(
    map: &Map<String, Value>,
    name: &str,
    kind: PolicyKind,
    required: bool,
) -> Result<Vec<Source>, AdminError> {
    let texts = strings(map, name, required)?;
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            check_document(name, text)?;
            Source::compile(
                Origin {
                    id: format!("{name}.{}", i + 1),
                    source_type: INPUT_POLICY,
                    text,
                    kind,
                    options: ParseOptions::lenient(kind),
                    stored: false,
                },
                i,
            )
        })
        .collect()
}

/// A list of strings: a JSON array, or the Query protocol's empty list (`Name=`, which the
/// form decoder leaves as an empty string). Absent (or `null`) is empty, or
/// `MissingParameter` when `required`.
fn strings(
    map: &Map<String, Value>,
    name: &str,
    required: bool,
) -> Result<Vec<String>, AdminError> {
    match map.get(name) {
        None | Some(Value::Null) if required => Err(AdminError::MissingParameter(name.to_owned())),
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| invalid(name, "must be a list of strings"))
            })
            .collect(),
        Some(_) => Err(invalid(name, "must be a list of strings")),
    }
}

/// A list member of a structure given in a list (`ContextEntries`' `ContextKeyValues`), as
/// the JSON array every edge decodes it to (the Query form through the model). `None` when
/// it is absent.
fn nested_strings<'v>(entry: &'v Value, field: &str) -> Option<Result<Vec<&'v str>, ()>> {
    match entry.as_object()?.get(field) {
        Some(Value::Array(items)) => Some(items.iter().map(|v| v.as_str().ok_or(())).collect()),
        Some(Value::Null) | None => None,
        Some(_) => Some(Err(())),
    }
}

/// AWS's `policyDocumentType`: 1 to 131072 characters of tab, line feed, carriage return and
/// U+0020..U+00FF.
fn check_document(name: &str, text: &str) -> Result<(), AdminError> {
    let chars = text.chars().count();
    if chars == 0 || chars > 131_072 {
        return Err(invalid(
            name,
            "each policy document must be 1 to 131072 characters long",
        ));
    }
    if !text
        .chars()
        .all(|c| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{ff}'))
    {
        return Err(invalid(
            name,
            "a policy document may hold only tab, line feed, carriage return and the characters U+0020 to U+00FF",
        ));
    }
    Ok(())
}

/// The entity named by `PolicySourceArn`.
enum Entity<'t> {
    User(&'t crate::directory::User),
    Group(&'t crate::directory::Group),
    Role(&'t crate::directory::Role),
}

impl<'t> Entity<'t> {
    fn read(t: &'t Tenant, arn: &str) -> Result<Self, AdminError> {
        let length = arn.chars().count();
        if !(20..=2048).contains(&length) {
            return Err(invalid(
                "PolicySourceArn",
                "must be 20 to 2048 characters long",
            ));
        }
        let not_entity = || {
            invalid_input(&format!(
                "PolicySourceArn {arn} is not the ARN of an IAM user, group or role."
            ))
        };
        let mut parts = arn.splitn(6, ':');
        let (Some("arn"), Some(_), Some("iam"), Some(""), Some(account), Some(resource)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(not_entity());
        };
        let (kind, rest) = resource.split_once('/').ok_or_else(not_entity)?;
        let name = rest.rsplit('/').next().unwrap_or(rest);
        let missing = |what: &str| {
            AdminError::Directory(DirectoryError::NoSuchEntity(format!(
                "The {what} with name {name} cannot be found."
            )))
        };
        if account != t.account_id {
            return Err(match kind {
                "user" | "group" | "role" => missing(kind),
                _ => not_entity(),
            });
        }
        // The ARN must name the entity as stored, path included.
        match kind {
            "user" => t.get_user(name).map_err(AdminError::from).and_then(|u| {
                (u.arn == arn)
                    .then_some(Self::User(u))
                    .ok_or(missing("user"))
            }),
            "group" => t
                .get_group(name)
                .map_err(AdminError::from)
                .and_then(|(g, _)| {
                    (g.arn == arn)
                        .then_some(Self::Group(g))
                        .ok_or(missing("group"))
                }),
            "role" => t.get_role(name).map_err(AdminError::from).and_then(|r| {
                (r.arn == arn)
                    .then_some(Self::Role(r))
                    .ok_or(missing("role"))
            }),
            _ => Err(not_entity()),
        }
    }

    /// The entity's identity policies in the order the snapshot compiles them: its inline
    /// policies, its attached ones, then (for a user) each group's; a policy attached twice
    /// (to the user and a group) once.
    fn sources(&self, t: &'t Tenant) -> Result<Vec<Source>, AdminError> {
        let mut out: Vec<Source> = Vec::new();
        let mut attached_seen: Vec<&str> = Vec::new();
        let mut add_entity = |out: &mut Vec<Source>,
                              source_type: &'static str,
                              inline: &crate::directory::InlinePolicies,
                              attached: &'t [String]|
         -> Result<(), AdminError> {
            for (name, text) in inline {
                let serial = out.len();
                out.push(Source::compile(
                    Origin {
                        id: name.clone(),
                        source_type,
                        text,
                        kind: PolicyKind::Identity,
                        options: ParseOptions::stored(PolicyKind::Identity),
                        stored: true,
                    },
                    serial,
                )?);
            }
            for arn in attached {
                if attached_seen.contains(&arn.as_str()) {
                    continue;
                }
                attached_seen.push(arn);
                let serial = out.len();
                out.push(managed(t, arn, serial)?);
            }
            Ok(())
        };
        match self {
            Self::User(u) => {
                add_entity(&mut out, "user", &u.inline_policies, &u.attached_policies)?;
                for group_name in &u.groups {
                    let (group, _) = t.get_group(group_name)?;
                    add_entity(
                        &mut out,
                        "group",
                        &group.inline_policies,
                        &group.attached_policies,
                    )?;
                }
            }
            Self::Group(g) => {
                add_entity(&mut out, "group", &g.inline_policies, &g.attached_policies)?;
            }
            Self::Role(r) => {
                add_entity(&mut out, "role", &r.inline_policies, &r.attached_policies)?;
                if let Some(before) = r.sessions_revoked_before {
                    // AWS's `AWSRevokeOlderSessions` inline policy, which the snapshot adds
                    // to a role whose sessions were revoked.
                    let when = crate::policy::Timestamp::from_epoch_seconds(before).to_string();
                    let text = format!(
                        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Action":["*"],"Resource":["*"],"Condition":{{"DateLessThan":{{"aws:TokenIssueTime":"{when}"}}}}}}]}}"#
                    );
                    let serial = out.len();
                    out.push(Source::compile(
                        Origin {
                            id: "AWSRevokeOlderSessions".to_owned(),
                            source_type: "role",
                            text: &text,
                            kind: PolicyKind::Identity,
                            options: ParseOptions::stored(PolicyKind::Identity),
                            stored: true,
                        },
                        serial,
                    )?);
                }
            }
        }
        Ok(out)
    }

    /// The ARN of the entity's permissions boundary, if it has one.
    fn boundary(&self) -> Option<&str> {
        match self {
            Self::User(u) => u.permissions_boundary.as_deref(),
            Self::Group(_) => None,
            Self::Role(r) => r.permissions_boundary.as_deref(),
        }
    }
}

/// A managed policy at its default version: the tenant's (`user-managed`) or AWS's.
fn managed(t: &Tenant, arn: &str, serial: usize) -> Result<Source, AdminError> {
    if let Some(aws) = aws_managed_policy(arn) {
        return Source::compile(
            Origin {
                id: aws.name.to_owned(),
                source_type: "aws-managed",
                text: aws.document,
                kind: PolicyKind::Identity,
                options: ParseOptions::aws_managed(PolicyKind::Identity),
                stored: true,
            },
            serial,
        );
    }
    let policy = t.get_policy(arn)?;
    let version = t.get_policy_version(arn, &policy.default_version_id)?;
    Source::compile(
        Origin {
            id: policy.name.clone(),
            source_type: "user-managed",
            text: &version.document,
            kind: PolicyKind::Identity,
            options: ParseOptions::stored(PolicyKind::Identity),
            stored: true,
        },
        serial,
    )
}

/// Everything a simulation evaluates, read from the request (and the tenant).
struct Inputs {
    identity: Vec<Source>,
    boundary: Option<Source>,
    resource: Option<Source>,
    /// Organization levels, root first; each level's SCPs.
    scp: Vec<Vec<Source>>,
    caller: Principal,
    owner: Option<String>,
    context: Context,
    actions: Vec<String>,
    resources: Vec<String>,
}

impl Inputs {
    fn custom(t: &Tenant, p: Params<'_>, map: &Map<String, Value>) -> Result<Self, AdminError> {
        let identity = input_list(map, "PolicyInputList", PolicyKind::Identity, true)?;
        let boundary = boundary_input(map)?;
        let scp = organization_levels(map)?;
        let resource = resource_policy(p, map)?;
        let caller = match p.opt_str("CallerArn")? {
            Some(arn) => caller(arn)?,
            None if resource.is_some() => {
                return Err(invalid_input(
                    "CallerArn must be specified when ResourcePolicy is: the resource policy's Principal element needs a caller to match.",
                ))
            }
            // Without a resource policy no statement names the caller: an IAM user of the
            // tenant's account stands in, so resources of the account are its own.
            None => user_principal(
                &t.account_id,
                &format!("arn:aws:iam::{}:user/simulated-caller", t.account_id),
            ),
        };
        Self::finish(identity, boundary, resource, scp, caller, p, map)
    }

    fn principal(t: &Tenant, p: Params<'_>, map: &Map<String, Value>) -> Result<Self, AdminError> {
        let entity = Entity::read(t, p.str("PolicySourceArn")?)?;
        let mut identity = entity.sources(t)?;
        let offset = identity.len();
        for (i, mut extra) in input_list(map, "PolicyInputList", PolicyKind::Identity, false)?
            .into_iter()
            .enumerate()
        {
            extra.compiled = Arc::new(CompiledPolicy::compile(
                (offset + i).to_string(),
                PolicyKind::Identity,
                &extra.document,
            ));
            identity.push(extra);
        }
        // A boundary given in the request replaces the entity's.
        let boundary = match boundary_input(map)? {
            Some(given) => Some(given),
            None => entity
                .boundary()
                .map(|arn| managed(t, arn, 0))
                .transpose()?,
        };
        let resource = resource_policy(p, map)?;
        let caller = match p.opt_str("CallerArn")? {
            Some(arn) => caller(arn)?,
            None => match &entity {
                Entity::User(u) => user_principal(&t.account_id, &u.arn),
                Entity::Role(r) => Principal::Role {
                    account: t.account_id.as_str().into(),
                    arn: r.arn.as_str().into(),
                    name: r.name.as_str().into(),
                    unique_id: None,
                },
                Entity::Group(_) if resource.is_some() => {
                    return Err(invalid_input(
                        "CallerArn must be specified when ResourcePolicy is and PolicySourceArn is not an IAM user or role.",
                    ))
                }
                Entity::Group(g) => user_principal(&t.account_id, &g.arn),
            },
        };
        let scp = if t.service_control_policies.is_empty() {
            Vec::new()
        } else {
            let level = t
                .service_control_policies
                .values()
                .enumerate()
                .map(|(i, scp)| {
                    Source::compile(
                        Origin {
                            id: scp.name.clone(),
                            source_type: "none",
                            text: &scp.document,
                            kind: PolicyKind::Scp,
                            options: ParseOptions::stored(PolicyKind::Scp),
                            stored: true,
                        },
                        i,
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            vec![level]
        };
        Self::finish(identity, boundary, resource, scp, caller, p, map)
    }

    fn finish(
        identity: Vec<Source>,
        boundary: Option<Source>,
        resource: Option<Source>,
        scp: Vec<Vec<Source>>,
        caller: Principal,
        p: Params<'_>,
        map: &Map<String, Value>,
    ) -> Result<Self, AdminError> {
        let actions = strings(map, "ActionNames", true)?;
        for action in &actions {
            let length = action.chars().count();
            if !(3..=128).contains(&length) {
                return Err(invalid(
                    "ActionNames",
                    "each action name must be 3 to 128 characters long",
                ));
            }
            if action.contains(['*', '?']) {
                return Err(invalid_input(&format!(
                    "Action {action} is not valid: the simulator evaluates API operations, not wildcards."
                )));
            }
            if crate::policy::ActionName::new(action)
                .is_none_or(|a| a.service().is_empty() || a.name().is_empty())
            {
                return Err(invalid_input(&format!(
                    "Action {action} is not valid: an action is service:Operation, such as iam:CreateUser."
                )));
            }
        }
        let mut resources = strings(map, "ResourceArns", false)?;
        for resource in &resources {
            if !(1..=2048).contains(&resource.chars().count()) {
                return Err(invalid(
                    "ResourceArns",
                    "each resource must be 1 to 2048 characters long",
                ));
            }
        }
        if let Some(option) = p.opt_str("ResourceHandlingOption")? {
            check_scenario(option, &resources)?;
        }
        if resources.is_empty() {
            resources.push("*".to_owned());
        }
        let owner = p
            .opt_str("ResourceOwner")?
            .map(resource_owner)
            .transpose()?;
        Ok(Self {
            identity,
            boundary,
            resource,
            scp,
            caller,
            owner,
            context: context_entries(map)?,
            actions,
            resources,
        })
    }
}

fn user_principal(account: &str, arn: &str) -> Principal {
    Principal::User {
        account: account.into(),
        arn: arn.into(),
        unique_id: None,
    }
}

/// `CallerArn`: an IAM user, group or role (AWS refuses sessions, federated users and
/// services).
fn caller(arn: &str) -> Result<Principal, AdminError> {
    let refuse = || {
        invalid_input(&format!(
            "CallerArn {arn} is not valid: the caller must be the ARN of an IAM user, group or role."
        ))
    };
    if !(1..=2048).contains(&arn.chars().count()) {
        return Err(invalid("CallerArn", "must be 1 to 2048 characters long"));
    }
    let mut parts = arn.splitn(6, ':');
    if let (Some("arn"), Some(_), Some("iam"), Some(""), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        if resource.starts_with("group/") && account.len() == 12 {
            // A group calls nothing itself: it is simulated as a user with its policies.
            return Ok(user_principal(account, arn));
        }
    }
    match Principal::parse(arn) {
        Ok(principal @ (Principal::User { .. } | Principal::Role { .. })) => Ok(principal),
        _ => Err(refuse()),
    }
}

/// `ResourceOwner`: `arn:aws:iam::ACCOUNT:root` (or the bare account id).
fn resource_owner(text: &str) -> Result<String, AdminError> {
    let account = text
        .strip_prefix("arn:")
        .and_then(|rest| rest.split_once(":iam::"))
        .and_then(|(_, rest)| rest.strip_suffix(":root"))
        .unwrap_or(text);
    if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) {
        Ok(account.to_owned())
    } else {
        Err(invalid_input(&format!(
            "ResourceOwner {text} is not valid: give the owning account as arn:aws:iam::ACCOUNT-ID:root."
        )))
    }
}

fn boundary_input(map: &Map<String, Value>) -> Result<Option<Source>, AdminError> {
    let mut given = input_list(
        map,
        "PermissionsBoundaryPolicyInputList",
        PolicyKind::Boundary,
        false,
    )?;
    if given.len() > 1 {
        return Err(invalid_input(
            "PermissionsBoundaryPolicyInputList holds more than one policy: an entity has at most one permissions boundary.",
        ));
    }
    Ok(given.pop())
}

fn resource_policy(p: Params<'_>, map: &Map<String, Value>) -> Result<Option<Source>, AdminError> {
    let Some(text) = p.opt_str("ResourcePolicy")? else {
        return Ok(None);
    };
    check_document("ResourcePolicy", text)?;
    // A simulation of `sts:AssumeRole*` alone names a role: its resource policy is the
    // role's trust policy, read with the trust grammar (no `Resource` element).
    let actions = strings(map, "ActionNames", false)?;
    let kind = if !actions.is_empty() && actions.iter().all(|a| assumes_role(a)) {
        PolicyKind::Trust
    } else {
        PolicyKind::Resource
    };
    Source::compile(
        Origin {
            id: "ResourcePolicy".to_owned(),
            source_type: "resource",
            text,
            kind,
            options: ParseOptions::lenient(kind),
            stored: false,
        },
        0,
    )
    .map(Some)
}

/// `OrderedOrganizationPolicyInputList`: up to 7 levels, root first, each
/// `{"ServiceControlPolicyInputList": [...]}`.
fn organization_levels(map: &Map<String, Value>) -> Result<Vec<Vec<Source>>, AdminError> {
    const NAME: &str = "OrderedOrganizationPolicyInputList";
    const SHAPE: &str =
        "must be a list of {\"ServiceControlPolicyInputList\": [policy documents]} levels";
    let Some(value) = map.get(NAME).filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let levels = value.as_array().ok_or_else(|| invalid(NAME, SHAPE))?;
    if levels.len() > 7 {
        return Err(invalid(
            NAME,
            "holds at most 7 levels (the root, up to 5 OUs, the account)",
        ));
    }
    let mut serial = 0;
    levels
        .iter()
        .enumerate()
        .map(|(i, level)| {
            let docs = match nested_strings(level, "ServiceControlPolicyInputList") {
                None if level.is_object() => Vec::new(),
                Some(Ok(docs)) => docs,
                None | Some(Err(())) => return Err(invalid(NAME, SHAPE)),
            };
            docs.into_iter()
                .enumerate()
                .map(|(j, text)| {
                    check_document(NAME, text)?;
                    serial += 1;
                    Source::compile(
                        Origin {
                            id: format!("{NAME}.{}.ServiceControlPolicyInputList.{}", i + 1, j + 1),
                            source_type: "none",
                            text,
                            kind: PolicyKind::Scp,
                            options: ParseOptions::lenient(PolicyKind::Scp),
                            stored: false,
                        },
                        serial,
                    )
                })
                .collect()
        })
        .collect()
}

/// `ResourceHandlingOption`: one of AWS's EC2 scenarios, whose resource types must all be
/// among `ResourceArns`.
fn check_scenario(option: &str, resources: &[String]) -> Result<(), AdminError> {
    let Some((_, required)) = SCENARIOS.iter().find(|(name, _)| *name == option) else {
        let names: Vec<&str> = SCENARIOS.iter().map(|(n, _)| *n).collect();
        return Err(invalid_input(&format!(
            "ResourceHandlingOption {option} is not valid: give one of {}.",
            names.join(", ")
        )));
    };
    let types: Vec<&str> = resources
        .iter()
        .filter_map(|arn| {
            let mut parts = arn.splitn(6, ':');
            let service = parts.nth(2)?;
            let resource = parts.nth(2)?;
            (service == "ec2").then(|| resource.split('/').next().unwrap_or(resource))
        })
        .collect();
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|r| !types.contains(r))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(invalid_input(&format!(
            "The {option} scenario requires these resource types in ResourceArns: {}.",
            missing.join(", ")
        )))
    }
}

/// `ContextEntries`: `[{ContextKeyName, ContextKeyValues, ContextKeyType}]`.
fn context_entries(map: &Map<String, Value>) -> Result<Context, AdminError> {
    const NAME: &str = "ContextEntries";
    let mut context = Context::new();
    let Some(entries) = map.get(NAME).filter(|v| !v.is_null()) else {
        return Ok(context);
    };
    let entries = entries.as_array().ok_or_else(|| {
        invalid(
            NAME,
            "must be a list of {ContextKeyName, ContextKeyValues, ContextKeyType} objects",
        )
    })?;
    for entry in entries {
        let key = entry
            .get("ContextKeyName")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(NAME, "every entry needs a ContextKeyName string"))?;
        if !(5..=256).contains(&key.chars().count()) {
            return Err(invalid(
                NAME,
                "a ContextKeyName must be 5 to 256 characters long",
            ));
        }
        let values: Vec<&str> = match nested_strings(entry, "ContextKeyValues") {
            None => Vec::new(),
            Some(Ok(values)) => values,
            Some(Err(())) => {
                return Err(invalid(NAME, "ContextKeyValues must be a list of strings"))
            }
        };
        let kind = match entry.get("ContextKeyType") {
            None | Some(Value::Null) => "string",
            Some(v) => v
                .as_str()
                .ok_or_else(|| invalid(NAME, "ContextKeyType must be a string"))?,
        };
        let (base, list) = match kind.strip_suffix("List") {
            Some(base) => (base, true),
            None => (kind, false),
        };
        if !matches!(
            base,
            "string" | "numeric" | "boolean" | "ip" | "binary" | "date"
        ) {
            return Err(invalid_input(&format!(
                "ContextKeyType {kind} of context key {key} is not valid: give string, stringList, numeric, numericList, boolean, booleanList, ip, ipList, binary, binaryList, date or dateList."
            )));
        }
        for value in &values {
            if !value_fits(base, value) {
                return Err(invalid_input(&format!(
                    "A value of context key {key} is not a valid {base}."
                )));
            }
        }
        let converted: Vec<ContextValue> = values.iter().map(|v| ContextValue::new(*v)).collect();
        let inserted = if list {
            context.try_insert_multi(key, converted)
        } else {
            let [single] = <[ContextValue; 1]>::try_from(converted).map_err(|_| {
                invalid_input(&format!(
                    "Context key {key} of type {kind} takes exactly one value; use {kind}List for several."
                ))
            })?;
            context.try_insert(key, single)
        };
        inserted.map_err(|e| invalid_input(&e.to_string()))?;
    }
    Ok(context)
}

/// Whether `value` reads as a value of the context key type `base`.
fn value_fits(base: &str, value: &str) -> bool {
    match base {
        "numeric" => Decimal::parse(value).is_some(),
        "boolean" => value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false"),
        "ip" => Cidr::parse(value).is_some() || value.parse::<std::net::IpAddr>().is_ok(),
        "date" => crate::policy::parse_policy_date(value).is_some(),
        "binary" => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(value)
                .is_ok()
        }
        _ => true,
    }
}

/// The result of one (action, resource) pair.
struct PairResult {
    resource: String,
    decision: Decision,
    trace: Trace,
    missing: Vec<String>,
    cross_account: bool,
}

/// Runs the simulation and renders a page of `EvaluationResults`.
fn simulate(inputs: &Inputs, p: Params<'_>) -> Result<Value, AdminError> {
    let page = Page::read(p, "EvaluationResults")?;
    let identity: Vec<Arc<CompiledPolicy>> = inputs
        .identity
        .iter()
        .map(|s| Arc::clone(&s.compiled))
        .collect();
    let boundary: Vec<Arc<CompiledPolicy>> = inputs
        .boundary
        .iter()
        .map(|s| s.as_kind(PolicyKind::Boundary))
        .collect();
    let scp: Vec<OrgLevel> = inputs
        .scp
        .iter()
        .enumerate()
        .map(|(i, level)| OrgLevel {
            name: format!("level-{}", i + 1).into(),
            policies: level.iter().map(|s| Arc::clone(&s.compiled)).collect(),
        })
        .collect();
    let scp_sources: Vec<&Source> = inputs.scp.iter().flatten().collect();
    // The resource policy in each form the actions need: a trust policy for
    // `sts:AssumeRole*`, a resource-based policy for the rest.
    let form = |wanted: bool, kind: PolicyKind| match &inputs.resource {
        Some(source) if wanted => reform(source, kind).map(Some),
        _ => Ok(None),
    };
    let resource_as_resource = form(
        inputs.actions.iter().any(|a| !assumes_role(a)),
        PolicyKind::Resource,
    )?;
    let resource_as_trust = form(
        inputs.actions.iter().any(|a| assumes_role(a)),
        PolicyKind::Trust,
    )?;

    let mut results = Vec::with_capacity(inputs.actions.len());
    for action in &inputs.actions {
        // The vector runner and the snapshot read a role's resource policy as a trust
        // policy for `sts:AssumeRole*`.
        let is_assume = assumes_role(action);
        let resource_policy = if is_assume {
            resource_as_trust.as_deref()
        } else {
            resource_as_resource.as_deref()
        };
        let set = PolicySet {
            identity: &identity,
            boundary: &boundary,
            resource: resource_policy,
            scp: &scp,
            ..PolicySet::default()
        };
        let mut pairs = Vec::with_capacity(inputs.resources.len());
        for resource in &inputs.resources {
            let mut request = Request::try_new(inputs.caller.clone(), action, resource)
                .map_err(|e| invalid_input(&e.to_string()))?
                .with_context(inputs.context.clone());
            if let Some(owner) = &inputs.owner {
                request = request.with_resource_account(owner.as_str());
            }
            let (decision, trace) = evaluate_explained(&set, &request);
            let cross_account = match (request.resource_account(), request.principal().account()) {
                (Some(r), Some(c)) => r != c,
                _ => false,
            };
            let missing = missing_keys(inputs, &set, &request);
            pairs.push(PairResult {
                resource: resource.clone(),
                decision,
                trace,
                missing,
                cross_account,
            });
        }
        results.push(render_action(
            action,
            &pairs,
            inputs,
            &scp_sources,
            !inputs.scp.is_empty(),
            inputs.resources != ["*"],
        ));
    }
    let items: Vec<Value> = results.into_iter().collect();
    let (items, marker) = page.cut(
        "EvaluationResults",
        items
            .into_iter()
            .enumerate()
            .map(|(i, v)| json!({"k": format!("{i:010}"), "v": v}))
            .collect(),
        |v| {
            v.get("k")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        },
    );
    let mut out = Map::new();
    out.insert(
        "EvaluationResults".to_owned(),
        Value::Array(
            items
                .into_iter()
                .map(|mut v| v.get_mut("v").map(Value::take).unwrap_or_default())
                .collect(),
        ),
    );
    super::render::finish(&mut out, marker);
    Ok(Value::Object(out))
}

fn assumes_role(action: &str) -> bool {
    action.to_ascii_lowercase().starts_with("sts:assumerole")
}

/// The resource policy compiled as `kind` (parsed with that kind's grammar, as the vector
/// runner and the snapshot read a role's trust policy or a resource's policy).
fn reform(source: &Source, kind: PolicyKind) -> Result<Arc<CompiledPolicy>, AdminError> {
    if source.compiled.kind() == kind {
        return Ok(Arc::clone(&source.compiled));
    }
    let document =
        PolicyDocument::parse_with(&source.text, ParseOptions::lenient(kind)).map_err(|e| {
            let role = if kind == PolicyKind::Trust {
                "a role trust policy"
            } else {
                "a resource-based policy"
            };
            invalid_input(&format!(
                "Policy document ResourcePolicy is malformed as {role}: {}",
                e.message()
            ))
        })?;
    Ok(Arc::new(CompiledPolicy::compile("0", kind, &document)))
}

/// The source a trace entry names.
fn source_of<'i>(inputs: &'i Inputs, scp: &[&'i Source], entry: &TraceEntry) -> Option<&'i Source> {
    let index: usize = entry.statement.policy.parse().ok()?;
    match entry.policy_type {
        PolicyKind::Identity => inputs.identity.get(index),
        PolicyKind::Boundary => inputs.boundary.as_ref(),
        PolicyKind::Resource | PolicyKind::Trust => inputs.resource.as_ref(),
        PolicyKind::Scp => scp
            .iter()
            .copied()
            .find(|s| s.compiled.id().as_ref() == entry.statement.policy.as_ref()),
        _ => None,
    }
}

/// AWS's decision word.
fn decision_word(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Allow => "allowed",
        Outcome::ExplicitDeny => "explicitDeny",
        Outcome::ImplicitDeny => "implicitDeny",
    }
}

fn restrictiveness(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Allow => 0,
        Outcome::ImplicitDeny => 1,
        Outcome::ExplicitDeny => 2,
    }
}

/// The statements that decided: on an explicit deny the denying ones, on an allow the
/// allowing identity and resource statements; none on an implicit deny. SCP statements are
/// left out, as AWS leaves them out.
fn matched(inputs: &Inputs, scp: &[&Source], pair: &PairResult) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for entry in &pair.trace.entries {
        let wanted = match pair.decision.outcome {
            Outcome::ExplicitDeny => {
                entry.effect == Effect::Deny && entry.policy_type != PolicyKind::Scp
            }
            Outcome::Allow => {
                entry.effect == Effect::Allow
                    && matches!(
                        entry.policy_type,
                        PolicyKind::Identity | PolicyKind::Resource | PolicyKind::Trust
                    )
            }
            Outcome::ImplicitDeny => false,
        };
        if !wanted {
            continue;
        }
        let Some(source) = source_of(inputs, scp, entry) else {
            continue;
        };
        let value = statement_value(source, entry.statement.index);
        if !out.contains(&value) {
            out.push(value);
        }
    }
    out
}

fn statement_value(source: &Source, index: u32) -> Value {
    let mut v = Map::new();
    v.insert("SourcePolicyId".to_owned(), json!(source.id));
    v.insert("SourcePolicyType".to_owned(), json!(source.source_type));
    if let Some((start, end)) = usize::try_from(index)
        .ok()
        .and_then(|i| statement_spans(&source.text).get(i).copied())
    {
        v.insert(
            "StartPosition".to_owned(),
            json!({"Line": start.0, "Column": start.1}),
        );
        v.insert(
            "EndPosition".to_owned(),
            json!({"Line": end.0, "Column": end.1}),
        );
    }
    Value::Object(v)
}

/// Whether a policy type's statements allowed (`Some(true)`), denied (`Some(false)`) or said
/// nothing (`None`) in a trace.
fn verdict(trace: &Trace, kind: &[PolicyKind]) -> Outcome {
    let entries = trace
        .entries
        .iter()
        .filter(|e| kind.contains(&e.policy_type));
    let mut allowed = false;
    for entry in entries {
        if entry.effect == Effect::Deny {
            return Outcome::ExplicitDeny;
        }
        allowed = true;
    }
    if allowed {
        Outcome::Allow
    } else {
        Outcome::ImplicitDeny
    }
}

/// Whether the SCPs allow: no SCP statement denies and, at every level of the
/// organization, one allows.
fn allowed_by_organizations(trace: &Trace, inputs: &Inputs) -> bool {
    let scp = || {
        trace
            .entries
            .iter()
            .filter(|e| e.policy_type == PolicyKind::Scp)
    };
    if scp().any(|e| e.effect == Effect::Deny) {
        return false;
    }
    inputs.scp.iter().all(|level| {
        scp().any(|e| {
            level
                .iter()
                .any(|s| s.compiled.id().as_ref() == e.statement.policy.as_ref())
        })
    })
}

fn decision_details(pair: &PairResult, inputs: &Inputs) -> Map<String, Value> {
    let mut details = Map::new();
    details.insert(
        "IAM Policy".to_owned(),
        json!(decision_word(verdict(&pair.trace, &[PolicyKind::Identity]))),
    );
    if inputs.resource.is_some() {
        details.insert(
            "Resource Policy".to_owned(),
            json!(decision_word(verdict(
                &pair.trace,
                &[PolicyKind::Resource, PolicyKind::Trust]
            ))),
        );
    }
    if inputs.boundary.is_some() {
        details.insert(
            "Permissions Boundary Policy".to_owned(),
            json!(decision_word(verdict(&pair.trace, &[PolicyKind::Boundary]))),
        );
    }
    details
}

/// One action's `EvaluationResult`.
fn render_action(
    action: &str,
    pairs: &[PairResult],
    inputs: &Inputs,
    scp: &[&Source],
    has_scp: bool,
    per_resource: bool,
) -> Value {
    let outcome = pairs
        .iter()
        .map(|p| p.decision.outcome)
        .max_by_key(|o| restrictiveness(*o))
        .unwrap_or(Outcome::ImplicitDeny);
    let mut top = Map::new();
    top.insert("EvalActionName".to_owned(), json!(action));
    top.insert("EvalResourceName".to_owned(), json!("*"));
    top.insert("EvalDecision".to_owned(), json!(decision_word(outcome)));
    // The union of the statements that decided, over the resources that reached this
    // decision.
    let mut statements: Vec<Value> = Vec::new();
    let mut missing: Vec<String> = Vec::new();
    for pair in pairs.iter().filter(|p| p.decision.outcome == outcome) {
        for s in matched(inputs, scp, pair) {
            if !statements.contains(&s) {
                statements.push(s);
            }
        }
    }
    for pair in pairs {
        merge_keys(&mut missing, &pair.missing);
    }
    top.insert("MatchedStatements".to_owned(), Value::Array(statements));
    top.insert("MissingContextValues".to_owned(), json!(missing));
    if has_scp {
        let allowed = pairs
            .iter()
            .all(|p| allowed_by_organizations(&p.trace, inputs));
        top.insert(
            "OrganizationsDecisionDetail".to_owned(),
            json!({"AllowedByOrganizations": allowed}),
        );
    }
    if inputs.boundary.is_some() {
        let allowed = pairs
            .iter()
            .all(|p| verdict(&p.trace, &[PolicyKind::Boundary]) == Outcome::Allow);
        top.insert(
            "PermissionsBoundaryDecisionDetail".to_owned(),
            json!({"AllowedByPermissionsBoundary": allowed}),
        );
    }
    // Per policy type, the most restrictive decision over the resources; cross-account
    // simulations only.
    if pairs.iter().any(|p| p.cross_account) {
        let mut merged: Map<String, Value> = Map::new();
        for pair in pairs.iter().filter(|p| p.cross_account) {
            for (k, v) in decision_details(pair, inputs) {
                let worse = match merged.get(&k) {
                    Some(existing) => rank(&v) > rank(existing),
                    None => true,
                };
                if worse {
                    merged.insert(k, v);
                }
            }
        }
        top.insert("EvalDecisionDetails".to_owned(), Value::Object(merged));
    } else if per_resource {
        top.insert("EvalDecisionDetails".to_owned(), json!({}));
    }
    if per_resource {
        let specific: Vec<Value> = pairs
            .iter()
            .map(|pair| {
                let mut r = Map::new();
                r.insert("EvalResourceName".to_owned(), json!(pair.resource));
                r.insert(
                    "EvalResourceDecision".to_owned(),
                    json!(decision_word(pair.decision.outcome)),
                );
                r.insert(
                    "MatchedStatements".to_owned(),
                    Value::Array(matched(inputs, scp, pair)),
                );
                r.insert("MissingContextValues".to_owned(), json!(pair.missing));
                if pair.cross_account {
                    r.insert(
                        "EvalDecisionDetails".to_owned(),
                        Value::Object(decision_details(pair, inputs)),
                    );
                }
                if inputs.boundary.is_some() {
                    r.insert(
                        "PermissionsBoundaryDecisionDetail".to_owned(),
                        json!({"AllowedByPermissionsBoundary":
                            verdict(&pair.trace, &[PolicyKind::Boundary]) == Outcome::Allow}),
                    );
                }
                Value::Object(r)
            })
            .collect();
        top.insert("ResourceSpecificResults".to_owned(), Value::Array(specific));
    }
    Value::Object(top)
}

fn rank(v: &Value) -> u8 {
    match v.as_str() {
        Some("explicitDeny") => 2,
        Some("implicitDeny") => 1,
        _ => 0,
    }
}

/// The condition keys the statements relevant to `request` read (conditions and policy
/// variables of identity, boundary and resource policies whose action and resource match)
/// that the request's context does not hold.
fn missing_keys(inputs: &Inputs, set: &PolicySet<'_>, request: &Request) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    let mut consider = |source: &Source, compiled: &CompiledPolicy| {
        for statement in compiled.statements() {
            if !statement.matches_action(request.action())
                || !statement.matches_resource(request.resource(), request.context())
            {
                continue;
            }
            let Some(written) = usize::try_from(statement.index())
                .ok()
                .and_then(|i| source.document.statements.get(i))
            else {
                continue;
            };
            merge_keys(&mut keys, &statement_keys(written));
        }
    };
    for (source, compiled) in inputs.identity.iter().zip(set.identity) {
        consider(source, compiled);
    }
    if let (Some(source), Some(compiled)) = (&inputs.boundary, set.boundary.first()) {
        consider(source, compiled);
    }
    if let (Some(source), Some(compiled)) = (&inputs.resource, set.resource) {
        consider(source, compiled);
    }
    keys.retain(|k| {
        crate::policy::ConditionLookup::values(request.context(), &k.to_lowercase()).is_none()
    });
    keys
}

/// Adds `more` to `keys`, skipping keys already there in any case, and keeps them sorted
/// case-insensitively.
fn merge_keys(keys: &mut Vec<String>, more: &[String]) {
    for key in more {
        if !keys.iter().any(|k| k.eq_ignore_ascii_case(key)) {
            keys.push(key.clone());
        }
    }
    keys.sort_by_key(|k| k.to_lowercase());
}

/// The condition keys one statement reads, as written: its conditions' keys and the policy
/// variables of its condition values and resources.
fn statement_keys(statement: &crate::policy::Statement) -> Vec<String> {
    let mut keys = Vec::new();
    for condition in &statement.conditions {
        merge_keys(&mut keys, std::slice::from_ref(&condition.key));
        for value in &condition.values {
            merge_keys(&mut keys, &variables(value));
        }
    }
    if let Some(resource) = &statement.resource {
        for pattern in &resource.patterns {
            merge_keys(&mut keys, &variables(pattern));
        }
    }
    keys
}

/// The keys of the policy variables in `text` (`${aws:username}`, `${aws:PrincipalTag/team,
/// 'none'}`); the escapes `${*}`, `${?}` and `${$}` are not keys.
fn variables(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = rest.get(start + 2..).unwrap_or_default();
        let Some(end) = after.find('}') else { break };
        let inner = after.get(..end).unwrap_or_default();
        let key = inner.split(',').next().unwrap_or_default().trim();
        if !matches!(key, "*" | "?" | "$" | "") {
            out.push(key.to_owned());
        }
        rest = after.get(end + 1..).unwrap_or_default();
    }
    out
}

/// `{"ContextKeyNames": [...]}` over `sources`: every key their statements read, once.
fn context_keys_result(sources: &[Source]) -> Value {
    let mut keys: Vec<String> = Vec::new();
    for source in sources {
        for statement in &source.document.statements {
            merge_keys(&mut keys, &statement_keys(statement));
        }
    }
    json!({ "ContextKeyNames": keys })
}

/// Where each statement of a policy's text starts and ends, as AWS reports them: 1-based
/// lines, and columns of the position just after the statement's `{` and just after its
/// `}` (the reader's position once it has read the bracket). Statements are listed in
/// document order; a `Statement` that is a single object is one statement.
pub(crate) fn statement_spans(text: &str) -> Vec<((usize, usize), (usize, usize))> {
    let chars: Vec<char> = text.chars().collect();
    let spans = statement_offsets(&chars);
    spans
        .into_iter()
        .map(|(open, close)| (after(&chars, open), after(&chars, close)))
        .collect()
}

/// (line, column) of the position just after the character at `index`.
fn after(chars: &[char], index: usize) -> (usize, usize) {
    let mut line = 1;
    let mut column = 1;
    for c in chars.iter().take(index + 1) {
        if *c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}

/// Offsets of each statement's `{` and `}` in the document's top-level `Statement` member.
fn statement_offsets(chars: &[char]) -> Vec<(usize, usize)> {
    let mut scan = Scan { chars, at: 0 };
    let mut out = Vec::new();
    scan.space();
    if !scan.eat('{') {
        return out;
    }
    loop {
        scan.space();
        if scan.peek() != Some('"') {
            return out;
        }
        let key = scan.string();
        scan.space();
        if !scan.eat(':') {
            return out;
        }
        scan.space();
        if key == "Statement" {
            match scan.peek() {
                Some('{') => {
                    let open = scan.at;
                    scan.skip_value();
                    out.push((open, scan.at.saturating_sub(1)));
                }
                Some('[') => {
                    scan.at += 1;
                    loop {
                        scan.space();
                        match scan.peek() {
                            Some('{') => {
                                let open = scan.at;
                                scan.skip_value();
                                out.push((open, scan.at.saturating_sub(1)));
                            }
                            Some(']') | None => break,
                            Some(_) => scan.skip_value(),
                        }
                        scan.space();
                        if !scan.eat(',') {
                            break;
                        }
                    }
                }
                _ => scan.skip_value(),
            }
            return out;
        }
        scan.skip_value();
        scan.space();
        if !scan.eat(',') {
            return out;
        }
    }
}

/// A cursor over a JSON text already known to parse.
struct Scan<'a> {
    chars: &'a [char],
    at: usize,
}

impl Scan<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
    }

    /// Reads a string at the cursor (which is on its opening quote) and returns its value.
    fn string(&mut self) -> String {
        let mut out = String::new();
        self.at += 1;
        while let Some(c) = self.peek() {
            self.at += 1;
            match c {
                '"' => break,
                '\\' => {
                    let Some(escaped) = self.peek() else { break };
                    self.at += 1;
                    match escaped {
                        'u' => {
                            let hex: String = self
                                .chars
                                .get(self.at..self.at + 4)
                                .unwrap_or_default()
                                .iter()
                                .collect();
                            self.at += 4;
                            if let Some(ch) =
                                u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32)
                            {
                                out.push(ch);
                            }
                        }
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        'b' => out.push('\u{8}'),
                        'f' => out.push('\u{c}'),
                        other => out.push(other),
                    }
                }
                other => out.push(other),
            }
        }
        out
    }

    /// Skips the value at the cursor.
    fn skip_value(&mut self) {
        match self.peek() {
            Some('"') => {
                self.string();
            }
            Some('{' | '[') => {
                let mut depth = 0usize;
                while let Some(c) = self.peek() {
                    match c {
                        '"' => {
                            self.string();
                            continue;
                        }
                        '{' | '[' => depth += 1,
                        '}' | ']' => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                self.at += 1;
                                return;
                            }
                        }
                        _ => {}
                    }
                    self.at += 1;
                }
            }
            _ => {
                while self
                    .peek()
                    .is_some_and(|c| !matches!(c, ',' | '}' | ']') && !c.is_whitespace())
                {
                    self.at += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
