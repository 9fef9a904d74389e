//! Managed policies and their versions and tags, attachments, inline policies and
//! permissions boundaries.

use serde_json::{json, Value};

use super::identities::tag_items;
use super::params::{invalid, Params};
use super::render::{self, by, itself, listing, version_key, wrap, Detail, Page};
use crate::control_plane::AdminError;
use crate::directory::{
    aws_managed_policies, aws_managed_policy, AttachedPolicy, CreatePolicyInput, IdGenerator,
    Tenant,
};

/// Runs `action` if it belongs to this area (`Ok(None)` otherwise).
pub(super) fn run(
    t: &mut Tenant,
    ids: &mut IdGenerator,
    now: i64,
    action: &str,
    p: Params<'_>,
) -> Result<Option<Value>, AdminError> {
    let empty = json!({});
    let result = match action {
        // --- managed policies ---
        "CreatePolicy" => {
            let input = CreatePolicyInput {
                name: p.str("PolicyName")?.to_owned(),
                path: p.opt_string("Path")?,
                document: p.str("PolicyDocument")?.to_owned(),
                description: p.opt_string("Description")?,
                tags: p.tags("Tags")?,
            };
            let arn = t.create_policy(ids, now, input)?.arn.clone();
            wrap(
                "Policy",
                render::policy(t, t.get_policy(&arn)?, Detail::Full),
            )
        }
        "GetPolicy" => {
            let arn = p.str("PolicyArn")?;
            match aws_managed_policy(arn) {
                Some(aws) => wrap("Policy", render::aws_policy(t, aws)),
                None => wrap(
                    "Policy",
                    render::policy(t, t.get_policy(arn)?, Detail::Full),
                ),
            }
        }
        "ListPolicies" => list_policies(t, p)?,
        "DeletePolicy" => {
            t.delete_policy(p.str("PolicyArn")?)?;
            empty
        }
        "ListEntitiesForPolicy" => list_entities_for_policy(t, p)?,

        // --- versions ---
        "CreatePolicyVersion" => {
            let arn = p.str("PolicyArn")?;
            let document = p.str("PolicyDocument")?;
            let set_as_default = p.bool_or("SetAsDefault", false)?;
            let version = t.create_policy_version(arn, document, set_as_default, now)?;
            let default = t.get_policy(arn)?.default_version_id.as_str();
            wrap(
                "PolicyVersion",
                render::policy_version(&version, default, false),
            )
        }
        "GetPolicyVersion" => {
            let arn = p.str("PolicyArn")?;
            let version = t.get_policy_version(arn, p.str("VersionId")?)?;
            let default = t.get_policy(arn)?.default_version_id.as_str();
            wrap(
                "PolicyVersion",
                render::policy_version(version, default, true),
            )
        }
        "ListPolicyVersions" => {
            let arn = p.str("PolicyArn")?;
            let default = t.get_policy(arn)?.default_version_id.as_str();
            let versions = t.list_policy_versions(arn)?;
            let items = versions
                .iter()
                .map(|v| render::policy_version(v, default, false));
            listing(p, "Versions", items.collect(), version_key)?
        }
        "SetDefaultPolicyVersion" => {
            t.set_default_policy_version(p.str("PolicyArn")?, p.str("VersionId")?, now)?;
            empty
        }
        "DeletePolicyVersion" => {
            t.delete_policy_version(p.str("PolicyArn")?, p.str("VersionId")?)?;
            empty
        }

        // --- tags ---
        "TagPolicy" => {
            t.tag_policy(p.str("PolicyArn")?, &p.req_tags("Tags")?)?;
            empty
        }
        "UntagPolicy" => {
            t.untag_policy(p.str("PolicyArn")?, &p.req_str_list("TagKeys")?)?;
            empty
        }
        "ListPolicyTags" => {
            let tags = tag_items(t.list_policy_tags(p.str("PolicyArn")?)?);
            listing(p, "Tags", tags, by("Key"))?
        }

        // --- attachments ---
        "AttachUserPolicy" => {
            t.attach_user_policy(p.str("UserName")?, p.str("PolicyArn")?)?;
            empty
        }
        "AttachGroupPolicy" => {
            t.attach_group_policy(p.str("GroupName")?, p.str("PolicyArn")?)?;
            empty
        }
        "AttachRolePolicy" => {
            t.attach_role_policy(p.str("RoleName")?, p.str("PolicyArn")?)?;
            empty
        }
        "DetachUserPolicy" => {
            t.detach_user_policy(p.str("UserName")?, p.str("PolicyArn")?)?;
            empty
        }
        "DetachGroupPolicy" => {
            t.detach_group_policy(p.str("GroupName")?, p.str("PolicyArn")?)?;
            empty
        }
        "DetachRolePolicy" => {
            t.detach_role_policy(p.str("RoleName")?, p.str("PolicyArn")?)?;
            empty
        }
        "ListAttachedUserPolicies" => {
            attached(t.list_attached_user_policies(p.str("UserName")?)?, p)?
        }
        "ListAttachedGroupPolicies" => {
            attached(t.list_attached_group_policies(p.str("GroupName")?)?, p)?
        }
        "ListAttachedRolePolicies" => {
            attached(t.list_attached_role_policies(p.str("RoleName")?)?, p)?
        }

        // --- inline policies ---
        "PutUserPolicy" => {
            let (user, name, doc) = (p.str("UserName")?, p.str("PolicyName")?, document(p)?);
            t.put_user_policy(user, name, doc)?;
            empty
        }
        "PutGroupPolicy" => {
            let (group, name, doc) = (p.str("GroupName")?, p.str("PolicyName")?, document(p)?);
            t.put_group_policy(group, name, doc)?;
            empty
        }
        "PutRolePolicy" => {
            let (role, name, doc) = (p.str("RoleName")?, p.str("PolicyName")?, document(p)?);
            t.put_role_policy(role, name, doc)?;
            empty
        }
        "GetUserPolicy" => {
            let (user, name) = (p.str("UserName")?, p.str("PolicyName")?);
            let doc = t.get_user_policy(user, name)?;
            let user = &t.get_user(user)?.name;
            json!({"UserName": user, "PolicyName": name, "PolicyDocument": doc})
        }
        "GetGroupPolicy" => {
            let (group, name) = (p.str("GroupName")?, p.str("PolicyName")?);
            let doc = t.get_group_policy(group, name)?;
            let group = &t.get_group(group)?.0.name;
            json!({"GroupName": group, "PolicyName": name, "PolicyDocument": doc})
        }
        "GetRolePolicy" => {
            let (role, name) = (p.str("RoleName")?, p.str("PolicyName")?);
            let doc = t.get_role_policy(role, name)?;
            let role = &t.get_role(role)?.name;
            json!({"RoleName": role, "PolicyName": name, "PolicyDocument": doc})
        }
        "DeleteUserPolicy" => {
            t.delete_user_policy(p.str("UserName")?, p.str("PolicyName")?)?;
            empty
        }
        "DeleteGroupPolicy" => {
            t.delete_group_policy(p.str("GroupName")?, p.str("PolicyName")?)?;
            empty
        }
        "DeleteRolePolicy" => {
            t.delete_role_policy(p.str("RoleName")?, p.str("PolicyName")?)?;
            empty
        }
        "ListUserPolicies" => names(t.list_user_policies(p.str("UserName")?)?, p)?,
        "ListGroupPolicies" => names(t.list_group_policies(p.str("GroupName")?)?, p)?,
        "ListRolePolicies" => names(t.list_role_policies(p.str("RoleName")?)?, p)?,

        // --- permissions boundaries ---
        "PutUserPermissionsBoundary" => {
            let user = p.str("UserName")?;
            t.put_user_permissions_boundary(user, p.str("PermissionsBoundary")?)?;
            empty
        }
        "DeleteUserPermissionsBoundary" => {
            t.delete_user_permissions_boundary(p.str("UserName")?)?;
            empty
        }
        "PutRolePermissionsBoundary" => {
            let role = p.str("RoleName")?;
            t.put_role_permissions_boundary(role, p.str("PermissionsBoundary")?)?;
            empty
        }
        "DeleteRolePermissionsBoundary" => {
            t.delete_role_permissions_boundary(p.str("RoleName")?)?;
            empty
        }
        _ => return Ok(None),
    };
    Ok(Some(result))
}

fn document<'a>(p: Params<'a>) -> Result<&'a str, AdminError> {
    p.str("PolicyDocument")
}

/// `{"PolicyNames": [...]}`.
fn names(names: Vec<&str>, p: Params<'_>) -> Result<Value, AdminError> {
    let items = names.into_iter().map(Value::from).collect();
    listing(p, "PolicyNames", items, itself)
}

/// `{"AttachedPolicies": [...]}`, filtered by the policies' paths under `PathPrefix` (the
/// path is read from the ARN).
fn attached(list: Vec<AttachedPolicy>, p: Params<'_>) -> Result<Value, AdminError> {
    let prefix = p.opt_str("PathPrefix")?;
    let items = list
        .into_iter()
        .filter(|a| prefix.is_none_or(|pre| policy_path(&a.policy_arn).starts_with(pre)))
        .map(|a| json!({"PolicyName": a.policy_name, "PolicyArn": a.policy_arn}));
    listing(p, "AttachedPolicies", items.collect(), by("PolicyArn"))
}

/// The path of a policy from its ARN (`arn:aws:iam::A:policy/path/Name` → `/path/`).
fn policy_path(arn: &str) -> &str {
    let resource = arn.split_once(":policy").map_or("", |(_, rest)| rest);
    resource
        .rfind('/')
        .and_then(|i| resource.get(..=i))
        .unwrap_or("/")
}

/// How a policy is used, as `PolicyUsageFilter` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Usage {
    /// Attached to a user, group or role (`PermissionsPolicy`).
    Permissions,
    /// Set as a user's or role's permissions boundary (`PermissionsBoundary`).
    Boundary,
}

/// `PolicyUsageFilter` (`PermissionsPolicy` or `PermissionsBoundary`), if given.
fn usage_filter(p: Params<'_>) -> Result<Option<Usage>, AdminError> {
    match p.opt_str("PolicyUsageFilter")? {
        None => Ok(None),
        Some("PermissionsPolicy") => Ok(Some(Usage::Permissions)),
        Some("PermissionsBoundary") => Ok(Some(Usage::Boundary)),
        Some(other) => Err(crate::directory::validate::validation_error(
            other,
            "policyUsageFilter",
            "Member must satisfy enum value set: [PermissionsPolicy, PermissionsBoundary]",
        )
        .into()),
    }
}

/// `ListPolicies` with `Scope` (`All`, `AWS`, `Local`; default `All`), `OnlyAttached`,
/// `PathPrefix` and `PolicyUsageFilter`. Every managed policy can serve either use, so the
/// usage filter narrows what `OnlyAttached` keeps: policies attached (`PermissionsPolicy`,
/// and the default) or set as a boundary (`PermissionsBoundary`).
fn list_policies(t: &Tenant, p: Params<'_>) -> Result<Value, AdminError> {
    let scope = p.opt_str("Scope")?.unwrap_or("All");
    let (local, aws) = match scope {
        "All" => (true, true),
        "Local" => (true, false),
        "AWS" => (false, true),
        _ => return Err(invalid("Scope", "must be All, AWS or Local")),
    };
    let only_attached = p.bool_or("OnlyAttached", false)?;
    let usage = usage_filter(p)?;
    let counts = render::PolicyUsage::of(t);
    let in_use = |arn: &str| match usage {
        None | Some(Usage::Permissions) => counts.counts(arn).0 > 0,
        Some(Usage::Boundary) => counts.counts(arn).1 > 0,
    };
    let prefix = p.opt_str("PathPrefix")?;
    let customer = t.list_policies(prefix)?;
    let mut items = Vec::new();
    if aws {
        let catalog = aws_managed_policies()
            .iter()
            .filter(|a| prefix.is_none_or(|pre| a.path.starts_with(pre)))
            .filter(|a| !only_attached || in_use(a.arn));
        items.extend(catalog.map(|a| render::aws_policy_counted(a, counts.counts(a.arn))));
    }
    if local {
        let customer = customer
            .into_iter()
            .filter(|c| !only_attached || in_use(&c.arn));
        items.extend(
            customer.map(|c| render::policy_counted(c, Detail::Listing, counts.counts(&c.arn))),
        );
    }
    listing(p, "Policies", items, by("Arn"))
}

/// `ListEntitiesForPolicy` with `EntityFilter` (`User`, `Group`, `Role`; the policy kinds
/// `LocalManagedPolicy` and `AWSManagedPolicy` name no entity and list none), `PathPrefix`
/// and `PolicyUsageFilter`: entities the policy is attached to (`PermissionsPolicy`), whose
/// boundary it is (`PermissionsBoundary`), or both (the default). Groups have no boundary.
fn list_entities_for_policy(t: &Tenant, p: Params<'_>) -> Result<Value, AdminError> {
    let arn = p.str("PolicyArn")?;
    if aws_managed_policy(arn).is_none() {
        t.get_policy(arn)?;
    }
    let filter = p.opt_str("EntityFilter")?;
    let (users, groups, roles) = match filter {
        None => (true, true, true),
        Some("User") => (true, false, false),
        Some("Group") => (false, true, false),
        Some("Role") => (false, false, true),
        Some("LocalManagedPolicy" | "AWSManagedPolicy") => (false, false, false),
        Some(_) => {
            return Err(invalid(
                "EntityFilter",
                "must be User, Role, Group, LocalManagedPolicy or AWSManagedPolicy",
            ))
        }
    };
    let usage = usage_filter(p)?;
    let prefix = p.opt_str("PathPrefix")?;
    let under = |path: &str| prefix.is_none_or(|pre| path.starts_with(pre));
    let attached =
        |list: &[String]| usage != Some(Usage::Boundary) && list.iter().any(|a| a == arn);
    let bounded =
        |b: &Option<String>| usage != Some(Usage::Permissions) && b.as_deref() == Some(arn);
    // One listing across the three kinds, so that one marker pages through all of them.
    let entry =
        |kind: &str, name: &str, item: Value| json!({"Kind": kind, "Name": name, "Item": item});
    let mut entries: Vec<Value> = Vec::new();
    entries.extend(
        t.groups
            .values()
            .filter(|g| groups && under(&g.path) && attached(&g.attached_policies))
            .map(|g| {
                let item = json!({"GroupName": g.name, "GroupId": g.group_id});
                entry("PolicyGroups", &g.name, item)
            }),
    );
    entries.extend(
        t.users
            .values()
            .filter(|u| {
                users
                    && under(&u.path)
                    && (attached(&u.attached_policies) || bounded(&u.permissions_boundary))
            })
            .map(|u| {
                let item = json!({"UserName": u.name, "UserId": u.user_id});
                entry("PolicyUsers", &u.name, item)
            }),
    );
    entries.extend(
        t.roles
            .values()
            .filter(|r| {
                roles
                    && under(&r.path)
                    && (attached(&r.attached_policies) || bounded(&r.permissions_boundary))
            })
            .map(|r| {
                let item = json!({"RoleName": r.name, "RoleId": r.role_id});
                entry("PolicyRoles", &r.name, item)
            }),
    );
    let key = |v: &Value| format!("{}\n{}", by("Kind")(v), by("Name")(v));
    let (page, marker) = Page::read(p, "PolicyEntities")?.cut("PolicyEntities", entries, key);
    let mut out = serde_json::Map::new();
    for kind in ["PolicyGroups", "PolicyUsers", "PolicyRoles"] {
        let items = page
            .iter()
            .filter(|e| e.get("Kind").and_then(Value::as_str) == Some(kind))
            .filter_map(|e| e.get("Item").cloned())
            .collect();
        out.insert(kind.into(), Value::Array(items));
    }
    render::finish(&mut out, marker);
    Ok(Value::Object(out))
}
