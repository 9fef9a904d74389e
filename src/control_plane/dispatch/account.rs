//! Account-wide actions: `GetAccountAuthorizationDetails`, `GetAccountSummary`,
//! `ListPoliciesGrantingServiceAccess` and the account password policy.
//!
//! Policy documents are rendered as the `Get*Policy` actions render them: the text as
//! submitted (AWS URL-encodes them on the wire; its SDKs and CLI decode them again).

use serde_json::{json, Map, Value};

use super::params::Params;
use super::render::{self, wrap, Page};
use crate::control_plane::AdminError;
use crate::directory::{
    aws_managed_policies, aws_managed_policy, validate, DirectoryError, Group, PasswordPolicyInput,
    Role, Tenant, User,
};
use crate::policy::{Effect, Glob, ParseOptions, PolicyDocument, PolicyKind};

/// The entity types of `GetAccountAuthorizationDetails`'s `Filter`, in AWS's order.
const ENTITY_TYPES: &[&str] = &[
    "User",
    "Role",
    "Group",
    "LocalManagedPolicy",
    "AWSManagedPolicy",
];

/// AWS's fixed quotas for what iamlet does not host or does not make adjustable.
const SERVER_CERTIFICATES_QUOTA: usize = 20;
const SIGNING_CERTIFICATES_PER_USER_QUOTA: usize = 2;
const POLICY_VERSIONS_IN_USE_QUOTA: usize = 10_000;

/// The most service namespaces one `ListPoliciesGrantingServiceAccess` call may name.
const MAX_SERVICE_NAMESPACES: usize = 200;

/// Runs `action` if it belongs to this area (`Ok(None)` otherwise).
pub(super) fn run(
    t: &mut Tenant,
    action: &str,
    p: Params<'_>,
) -> Result<Option<Value>, AdminError> {
    let result = match action {
        "GetAccountAuthorizationDetails" => authorization_details(t, p)?,
        "GetAccountSummary" => wrap("SummaryMap", summary(t)),
        "ListPoliciesGrantingServiceAccess" => policies_granting_service_access(t, p)?,
        "UpdateAccountPasswordPolicy" => {
            let input = PasswordPolicyInput {
                minimum_password_length: p.opt_u32("MinimumPasswordLength")?,
                require_symbols: p.opt_bool("RequireSymbols")?,
                require_numbers: p.opt_bool("RequireNumbers")?,
                require_uppercase_characters: p.opt_bool("RequireUppercaseCharacters")?,
                require_lowercase_characters: p.opt_bool("RequireLowercaseCharacters")?,
                allow_users_to_change_password: p.opt_bool("AllowUsersToChangePassword")?,
                max_password_age: p.opt_u32("MaxPasswordAge")?,
                password_reuse_prevention: p.opt_u32("PasswordReusePrevention")?,
                hard_expiry: p.opt_bool("HardExpiry")?,
            };
            t.update_account_password_policy(input)?;
            json!({})
        }
        "GetAccountPasswordPolicy" => wrap("PasswordPolicy", password_policy(t)?),
        "DeleteAccountPasswordPolicy" => {
            t.delete_account_password_policy()?;
            json!({})
        }
        _ => return Ok(None),
    };
    Ok(Some(result))
}

/// The `PasswordPolicy` shape, in the model's member order; `MaxPasswordAge`,
/// `PasswordReusePrevention` and `HardExpiry` only when set, as AWS returns them.
fn password_policy(t: &Tenant) -> Result<Value, AdminError> {
    let policy = t.get_account_password_policy()?;
    let mut out = Map::new();
    out.insert(
        "MinimumPasswordLength".into(),
        policy.minimum_password_length.into(),
    );
    out.insert("RequireSymbols".into(), policy.require_symbols.into());
    out.insert("RequireNumbers".into(), policy.require_numbers.into());
    out.insert(
        "RequireUppercaseCharacters".into(),
        policy.require_uppercase_characters.into(),
    );
    out.insert(
        "RequireLowercaseCharacters".into(),
        policy.require_lowercase_characters.into(),
    );
    out.insert(
        "AllowUsersToChangePassword".into(),
        policy.allow_users_to_change_password.into(),
    );
    out.insert("ExpirePasswords".into(), policy.expire_passwords().into());
    if let Some(age) = policy.max_password_age {
        out.insert("MaxPasswordAge".into(), age.into());
    }
    if let Some(reuse) = policy.password_reuse_prevention {
        out.insert("PasswordReusePrevention".into(), reuse.into());
    }
    if let Some(hard) = policy.hard_expiry {
        out.insert("HardExpiry".into(), hard.into());
    }
    Ok(Value::Object(out))
}

// --- GetAccountSummary ---

/// `SummaryMap`: the tenant's counts and quotas under AWS's keys (every key of AWS's
/// `summaryKeyType` that AWS returns; `AccountPasswordPresent` is not among them).
fn summary(t: &Tenant) -> Value {
    let q = &t.quotas;
    let attachments: usize = t
        .users
        .values()
        .map(|u| u.attached_policies.len())
        .chain(t.groups.values().map(|g| g.attached_policies.len()))
        .chain(t.roles.values().map(|r| r.attached_policies.len()))
        .sum();
    let mfa_in_use = t.mfa_devices.values().filter(|d| d.user.is_some()).count();
    let entries: [(&str, usize); 33] = [
        ("Users", t.users.len()),
        ("UsersQuota", q.users),
        ("Groups", t.groups.len()),
        ("GroupsQuota", q.groups),
        ("Roles", t.roles.len()),
        ("RolesQuota", q.roles),
        ("Policies", t.policies.len()),
        ("PoliciesQuota", q.policies),
        ("PolicySizeQuota", q.managed_policy_size),
        // Managed policies in use: one per attachment to a user, group or role.
        ("PolicyVersionsInUse", attachments),
        ("PolicyVersionsInUseQuota", POLICY_VERSIONS_IN_USE_QUOTA),
        ("VersionsPerPolicyQuota", q.versions_per_policy),
        ("AttachedPoliciesPerUserQuota", q.attached_per_user_or_role),
        ("AttachedPoliciesPerRoleQuota", q.attached_per_user_or_role),
        ("AttachedPoliciesPerGroupQuota", q.attached_per_group),
        ("GroupsPerUserQuota", q.groups_per_user),
        ("AccessKeysPerUserQuota", q.access_keys_per_user),
        (
            "SigningCertificatesPerUserQuota",
            SIGNING_CERTIFICATES_PER_USER_QUOTA,
        ),
        ("UserPolicySizeQuota", q.user_inline_size),
        ("GroupPolicySizeQuota", q.group_inline_size),
        ("RolePolicySizeQuota", q.role_inline_size),
        ("AssumeRolePolicySizeQuota", q.trust_policy_size),
        ("MFADevices", t.mfa_devices.len()),
        ("MFADevicesInUse", mfa_in_use),
        // The root user has no MFA device in iamlet.
        ("AccountMFAEnabled", 0),
        (
            "AccountAccessKeysPresent",
            usize::from(t.root_access_key.is_some()),
        ),
        // iamlet has no signing or server certificates.
        ("AccountSigningCertificatesPresent", 0),
        ("ServerCertificates", 0),
        ("ServerCertificatesQuota", SERVER_CERTIFICATES_QUOTA),
        ("InstanceProfiles", t.instance_profiles.len()),
        ("InstanceProfilesQuota", q.instance_profiles),
        // AWS counts OIDC and SAML providers together.
        ("Providers", t.oidc_providers.len() + t.saml_providers.len()),
        (
            "GlobalEndpointTokenVersion",
            t.global_endpoint_token_version.summary_value() as usize,
        ),
    ];
    Value::Object(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value::from(v)))
            .collect(),
    )
}

// --- GetAccountAuthorizationDetails ---

/// The `InstanceProfileList` of a role: the instance profiles it belongs to, each in
/// `GetInstanceProfile`'s shape.
pub(super) fn instance_profiles_of_role(t: &Tenant, role: &Role) -> Vec<Value> {
    t.list_instance_profiles_for_role(&role.name)
        .map(|profiles| {
            profiles
                .into_iter()
                .map(|ip| super::profiles::instance_profile(t, ip))
                .collect()
        })
        .unwrap_or_default()
}

/// `[{"PolicyName": .., "PolicyDocument": ..}]` of inline policies.
fn inline_list(policies: &crate::directory::InlinePolicies) -> Value {
    policies
        .iter()
        .map(|(name, doc)| json!({"PolicyName": name, "PolicyDocument": doc}))
        .collect()
}

/// `[{"PolicyName": .., "PolicyArn": ..}]` of attached managed policies.
fn attached_list(arns: &[String]) -> Value {
    arns.iter()
        .map(|arn| {
            let name = arn.rsplit('/').next().unwrap_or(arn);
            json!({"PolicyName": name, "PolicyArn": arn})
        })
        .collect()
}

fn boundary(out: &mut Map<String, Value>, arn: Option<&String>) {
    if let Some(arn) = arn {
        out.insert(
            "PermissionsBoundary".into(),
            json!({"PermissionsBoundaryType": "Policy", "PermissionsBoundaryArn": arn}),
        );
    }
}

fn user_detail(t: &Tenant, u: &User) -> Value {
    let groups: Vec<&str> = u
        .groups
        .iter()
        .map(|g| {
            t.groups
                .get(&g.to_ascii_lowercase())
                .map_or(g.as_str(), |group| group.name.as_str())
        })
        .collect();
    let mut out = Map::new();
    out.insert("Path".into(), u.path.clone().into());
    out.insert("UserName".into(), u.name.clone().into());
    out.insert("UserId".into(), u.user_id.clone().into());
    out.insert("Arn".into(), u.arn.clone().into());
    out.insert("CreateDate".into(), render::date(u.created_at));
    out.insert("UserPolicyList".into(), inline_list(&u.inline_policies));
    out.insert("GroupList".into(), json!(groups));
    out.insert(
        "AttachedManagedPolicies".into(),
        attached_list(&u.attached_policies),
    );
    boundary(&mut out, u.permissions_boundary.as_ref());
    out.insert("Tags".into(), render::tags(&u.tags));
    Value::Object(out)
}

fn group_detail(g: &Group) -> Value {
    json!({
        "Path": g.path,
        "GroupName": g.name,
        "GroupId": g.group_id,
        "Arn": g.arn,
        "CreateDate": render::date(g.created_at),
        "GroupPolicyList": inline_list(&g.inline_policies),
        "AttachedManagedPolicies": attached_list(&g.attached_policies),
    })
}

fn role_detail(t: &Tenant, r: &Role) -> Value {
    let mut out = Map::new();
    out.insert("Path".into(), r.path.clone().into());
    out.insert("RoleName".into(), r.name.clone().into());
    out.insert("RoleId".into(), r.role_id.clone().into());
    out.insert("Arn".into(), r.arn.clone().into());
    out.insert("CreateDate".into(), render::date(r.created_at));
    out.insert(
        "AssumeRolePolicyDocument".into(),
        r.assume_role_policy.clone().into(),
    );
    out.insert(
        "InstanceProfileList".into(),
        Value::Array(instance_profiles_of_role(t, r)),
    );
    out.insert("RolePolicyList".into(), inline_list(&r.inline_policies));
    out.insert(
        "AttachedManagedPolicies".into(),
        attached_list(&r.attached_policies),
    );
    boundary(&mut out, r.permissions_boundary.as_ref());
    out.insert("Tags".into(), render::tags(&r.tags));
    // AWS returns an empty structure for a role never used (or unused within its window).
    out.insert("RoleLastUsed".into(), json!({}));
    Value::Object(out)
}

/// A customer managed policy as a `ManagedPolicyDetail`: the listing's members and every
/// version with its document.
fn local_policy_detail(t: &Tenant, p: &crate::directory::ManagedPolicy) -> Value {
    let mut out = match render::policy(t, p, render::Detail::Listing) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let versions: Vec<Value> = p
        .versions
        .iter()
        .map(|v| render::policy_version(v, &p.default_version_id, true))
        .collect();
    out.insert("PolicyVersionList".into(), Value::Array(versions));
    Value::Object(out)
}

/// An AWS managed policy as a `ManagedPolicyDetail`, in the model's member order. The
/// catalog keeps one version (the default) and neither ids nor dates; the version is listed
/// as `v1`.
fn aws_policy_detail(t: &Tenant, p: &crate::directory::AwsManagedPolicy) -> Value {
    json!({
        "PolicyName": p.name,
        "Arn": p.arn,
        "Path": p.path,
        "DefaultVersionId": "v1",
        "AttachmentCount": t.policy_attachment_count(p.arn),
        "PermissionsBoundaryUsageCount": t.policy_boundary_usage_count(p.arn),
        "IsAttachable": true,
        "PolicyVersionList": [{"Document": p.document, "VersionId": "v1", "IsDefaultVersion": true}],
    })
}

/// The entity types `Filter` names (all when absent or empty), refused with AWS's
/// `ValidationError` when one is not an entity type.
fn read_filter(p: Params<'_>) -> Result<Vec<&'static str>, AdminError> {
    let filter = p.str_list("Filter")?;
    if filter.is_empty() {
        return Ok(ENTITY_TYPES.to_vec());
    }
    let mut wanted = Vec::new();
    for (i, kind) in filter.iter().enumerate() {
        let Some(known) = ENTITY_TYPES.iter().find(|k| **k == kind.as_str()) else {
            return Err(validate::validation_error(
                kind,
                &format!("filter.{}.member", i.saturating_add(1)),
                &format!(
                    "Member must satisfy enum value set: [{}]",
                    ENTITY_TYPES.join(", ")
                ),
            )
            .into());
        };
        wanted.push(*known);
    }
    Ok(wanted)
}

/// `GetAccountAuthorizationDetails`: users, groups, roles and managed policies (customer
/// managed ones, and the AWS managed ones in use in the account: attached or set as a
/// boundary) as one listing, so that one `Marker` pages through all four.
fn authorization_details(t: &Tenant, p: Params<'_>) -> Result<Value, AdminError> {
    const MEMBERS: [&str; 4] = [
        "UserDetailList",
        "GroupDetailList",
        "RoleDetailList",
        "Policies",
    ];
    let wanted = read_filter(p)?;
    let has = |kind: &str| wanted.contains(&kind);
    // Each entry is (member index, sort key, item); the page key orders members as AWS
    // lists them, then entities by name (policies by ARN).
    let mut entries: Vec<(usize, String, Value)> = Vec::new();
    if has("User") {
        entries.extend(
            t.users
                .iter()
                .map(|(k, u)| (0, k.clone(), user_detail(t, u))),
        );
    }
    if has("Group") {
        entries.extend(
            t.groups
                .iter()
                .map(|(k, g)| (1, k.clone(), group_detail(g))),
        );
    }
    if has("Role") {
        entries.extend(
            t.roles
                .iter()
                .map(|(k, r)| (2, k.clone(), role_detail(t, r))),
        );
    }
    if has("LocalManagedPolicy") {
        entries.extend(
            t.policies
                .values()
                .map(|pol| (3, pol.arn.clone(), local_policy_detail(t, pol))),
        );
    }
    if has("AWSManagedPolicy") {
        entries.extend(
            aws_managed_policies()
                .iter()
                .filter(|a| {
                    t.policy_attachment_count(a.arn) > 0 || t.policy_boundary_usage_count(a.arn) > 0
                })
                .map(|a| (3, a.arn.to_owned(), aws_policy_detail(t, a))),
        );
    }
    let items = entries
        .into_iter()
        .map(|(member, key, item)| json!({"M": member, "K": format!("{member}\n{key}"), "I": item}))
        .collect();
    let (page, marker) = Page::read(p, "AccountAuthorizationDetails")?.cut(
        "AccountAuthorizationDetails",
        items,
        render::by("K"),
    );
    let mut lists: [Vec<Value>; 4] = Default::default();
    for entry in page {
        let member = entry.get("M").and_then(Value::as_u64);
        let slot = member
            .and_then(|m| usize::try_from(m).ok())
            .and_then(|m| lists.get_mut(m));
        if let (Some(slot), Some(item)) = (slot, entry.get("I")) {
            slot.push(item.clone());
        }
    }
    let mut out = Map::new();
    for (member, items) in MEMBERS.iter().zip(lists) {
        out.insert((*member).to_owned(), Value::Array(items));
    }
    render::finish(&mut out, marker);
    Ok(Value::Object(out))
}

// --- ListPoliciesGrantingServiceAccess ---

/// One policy that applies to the entity, with where it comes from.
struct Applicable<'a> {
    name: String,
    /// The ARN of a managed policy; `None` for an inline one.
    arn: Option<&'a str>,
    /// For an inline policy: `USER`, `GROUP` or `ROLE`, and that entity's name.
    owner: Option<(&'static str, &'a str)>,
    document: &'a str,
}

/// The policies that apply to the user, group or role `arn` names: its own inline and
/// attached ones and, for a user, those of its groups. A managed policy attached twice is
/// listed once.
fn applicable<'a>(t: &'a Tenant, arn: &str) -> Result<Vec<Applicable<'a>>, AdminError> {
    let resource = arn
        .strip_prefix(&format!("arn:aws:iam::{}:", t.account_id))
        .unwrap_or("");
    let kind = resource.split('/').next().unwrap_or("");
    let name = resource.rsplit('/').next().unwrap_or("");
    let not_found = |what: &str| -> AdminError {
        DirectoryError::NoSuchEntity(format!("The {what} with name {name} cannot be found.")).into()
    };
    // (owner type, owner name, inline policies, attached ARNs) of every source.
    let mut sources: Vec<(
        &'static str,
        &'a str,
        &'a crate::directory::InlinePolicies,
        &'a [String],
    )> = Vec::new();
    match kind {
        "user" => {
            let u = t
                .users
                .values()
                .find(|u| u.arn == arn)
                .ok_or_else(|| not_found("user"))?;
            sources.push(("USER", &u.name, &u.inline_policies, &u.attached_policies));
            for g in &u.groups {
                if let Some(g) = t.groups.get(&g.to_ascii_lowercase()) {
                    sources.push(("GROUP", &g.name, &g.inline_policies, &g.attached_policies));
                }
            }
        }
        "group" => {
            let g = t
                .groups
                .values()
                .find(|g| g.arn == arn)
                .ok_or_else(|| not_found("group"))?;
            sources.push(("GROUP", &g.name, &g.inline_policies, &g.attached_policies));
        }
        "role" => {
            let r = t
                .roles
                .values()
                .find(|r| r.arn == arn)
                .ok_or_else(|| not_found("role"))?;
            sources.push(("ROLE", &r.name, &r.inline_policies, &r.attached_policies));
        }
        _ => {
            return Err(DirectoryError::InvalidInput(format!(
                "ARN {} is not the ARN of a user, group or role of this account.",
                crate::error::echo(arn)
            ))
            .into())
        }
    }
    let mut out: Vec<Applicable<'a>> = Vec::new();
    for (owner, owner_name, inline, attached) in sources {
        for (policy_name, document) in inline {
            out.push(Applicable {
                name: policy_name.clone(),
                arn: None,
                owner: Some((owner, owner_name)),
                document,
            });
        }
        for policy_arn in attached {
            if out.iter().any(|a| a.arn == Some(policy_arn.as_str())) {
                continue;
            }
            let Some(document) = t.managed_policy_document(policy_arn) else {
                continue;
            };
            let policy_name = aws_managed_policy(policy_arn)
                .map(|a| a.name)
                .unwrap_or_else(|| policy_arn.rsplit('/').next().unwrap_or(policy_arn));
            out.push(Applicable {
                name: policy_name.to_owned(),
                arn: Some(policy_arn),
                owner: None,
                document,
            });
        }
    }
    Ok(out)
}

/// Whether an action pattern names some action of `service` (`*`, `s3:*`, `s3:Get*`),
/// compared case-insensitively as IAM compares actions.
fn pattern_covers_service(pattern: &str, service: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    match pattern.split_once(':') {
        Some((prefix, _)) => Glob::new(prefix).matches(service),
        None => Glob::new(&pattern).matches(service),
    }
}

/// Whether an action pattern names every action of `service` (`*`, `s3:*`).
fn pattern_covers_all_of_service(pattern: &str, service: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    match pattern.split_once(':') {
        Some((prefix, action)) => action == "*" && Glob::new(prefix).matches(service),
        None => pattern == "*",
    }
}

/// Whether `document` grants some action of `service`: an `Allow` statement whose `Action`
/// names one, or whose `NotAction` leaves one out.
pub(super) fn grants_service(document: &str, service: &str) -> bool {
    let Ok(doc) = PolicyDocument::parse_with(document, ParseOptions::stored(PolicyKind::Identity))
    else {
        return false;
    };
    let service = service.to_ascii_lowercase();
    doc.statements
        .iter()
        .filter(|s| s.effect == Effect::Allow)
        .any(|s| {
            let patterns = &s.action.patterns;
            if s.action.negated {
                !patterns
                    .iter()
                    .any(|p| pattern_covers_all_of_service(p, &service))
            } else {
                patterns.iter().any(|p| pattern_covers_service(p, &service))
            }
        })
}

/// The namespaces asked for, checked as AWS's model constrains them: 1..=200 of them, each
/// 1..=64 word characters or hyphens.
fn read_namespaces(p: Params<'_>) -> Result<Vec<String>, AdminError> {
    let namespaces = p.req_str_list("ServiceNamespaces")?;
    let shown = || format!("[{}]", namespaces.join(", "));
    if namespaces.is_empty() {
        return Err(validate::validation_error(
            &shown(),
            "serviceNamespaces",
            "Member must have length greater than or equal to 1",
        )
        .into());
    }
    if namespaces.len() > MAX_SERVICE_NAMESPACES {
        return Err(validate::validation_error(
            &shown(),
            "serviceNamespaces",
            "Member must have length less than or equal to 200",
        )
        .into());
    }
    for (i, ns) in namespaces.iter().enumerate() {
        let field = format!("serviceNamespaces.{}.member", i.saturating_add(1));
        validate::length(ns, &field, 1, 64)?;
        if !ns
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        {
            return Err(validate::validation_error(
                ns,
                &field,
                r"Member must satisfy regular expression pattern: [\w-]*",
            )
            .into());
        }
    }
    Ok(namespaces)
}

/// `ListPoliciesGrantingServiceAccess`: per namespace, in the order asked, the policies
/// that apply to the entity and grant some action of the service.
fn policies_granting_service_access(t: &Tenant, p: Params<'_>) -> Result<Value, AdminError> {
    const MEMBER: &str = "PoliciesGrantingServiceAccess";
    let arn = p.str("Arn")?;
    let namespaces = read_namespaces(p)?;
    let policies = applicable(t, arn)?;
    let entries = namespaces
        .iter()
        .enumerate()
        .map(|(i, ns)| {
            let granting: Vec<Value> = policies
                .iter()
                .filter(|a| grants_service(a.document, ns))
                .map(|a| {
                    let mut item = Map::new();
                    item.insert("PolicyName".into(), a.name.clone().into());
                    let kind = if a.arn.is_some() { "MANAGED" } else { "INLINE" };
                    item.insert("PolicyType".into(), kind.into());
                    if let Some(arn) = a.arn {
                        item.insert("PolicyArn".into(), arn.into());
                    }
                    if let Some((owner, name)) = a.owner {
                        item.insert("EntityType".into(), owner.into());
                        item.insert("EntityName".into(), name.into());
                    }
                    Value::Object(item)
                })
                .collect();
            let item = json!({"ServiceNamespace": ns, "Policies": granting});
            json!({"K": format!("{i:04}"), "I": item})
        })
        .collect();
    let (page, marker) = Page::read(p, MEMBER)?.cut(MEMBER, entries, render::by("K"));
    let page = page
        .into_iter()
        .filter_map(|entry| entry.get("I").cloned())
        .collect();
    let mut out = Map::new();
    out.insert(MEMBER.into(), Value::Array(page));
    render::finish(&mut out, marker);
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests;
