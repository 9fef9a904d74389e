//! Instance profiles, service-linked roles and their deletion tasks, and the account's STS
//! preferences.

use serde_json::{json, Map, Value};

use super::identities::tag_items;
use super::params::Params;
use super::render::{self, by, date, listing, wrap, Detail};
use crate::control_plane::AdminError;
use crate::directory::{
    CreateInstanceProfileInput, CreateServiceLinkedRoleInput, IdGenerator, InstanceProfile, Tenant,
};

/// Runs `action` if it belongs to this area (`Ok(None)` otherwise).
pub(super) fn run(
    t: &mut Tenant,
    ids: &mut IdGenerator,
    now: i64,
    action: &str,
    p: Params<'_>,
) -> Result<Option<Value>, AdminError> {
    let result = match action {
        // --- instance profiles ---
        "CreateInstanceProfile" => {
            let input = CreateInstanceProfileInput {
                name: p.str("InstanceProfileName")?.to_owned(),
                path: p.opt_string("Path")?,
                tags: p.tags("Tags")?,
            };
            let name = t.create_instance_profile(ids, now, input)?.name.clone();
            wrap(
                "InstanceProfile",
                instance_profile(t, t.get_instance_profile(&name)?),
            )
        }
        "GetInstanceProfile" => wrap(
            "InstanceProfile",
            instance_profile(t, t.get_instance_profile(p.str("InstanceProfileName")?)?),
        ),
        "ListInstanceProfiles" => {
            let profiles = t.list_instance_profiles(p.opt_str("PathPrefix")?)?;
            let items = profiles.into_iter().map(|ip| instance_profile(t, ip));
            listing(
                p,
                "InstanceProfiles",
                items.collect(),
                by("InstanceProfileName"),
            )?
        }
        "DeleteInstanceProfile" => {
            t.delete_instance_profile(p.str("InstanceProfileName")?)?;
            json!({})
        }
        "AddRoleToInstanceProfile" => {
            t.add_role_to_instance_profile(p.str("InstanceProfileName")?, p.str("RoleName")?)?;
            json!({})
        }
        "RemoveRoleFromInstanceProfile" => {
            t.remove_role_from_instance_profile(p.str("InstanceProfileName")?, p.str("RoleName")?)?;
            json!({})
        }
        "ListInstanceProfilesForRole" => {
            let profiles = t.list_instance_profiles_for_role(p.str("RoleName")?)?;
            let items = profiles.into_iter().map(|ip| instance_profile(t, ip));
            listing(
                p,
                "InstanceProfiles",
                items.collect(),
                by("InstanceProfileName"),
            )?
        }
        "TagInstanceProfile" => {
            t.tag_instance_profile(p.str("InstanceProfileName")?, &p.req_tags("Tags")?)?;
            json!({})
        }
        "UntagInstanceProfile" => {
            t.untag_instance_profile(p.str("InstanceProfileName")?, &p.req_str_list("TagKeys")?)?;
            json!({})
        }
        "ListInstanceProfileTags" => {
            let tags = t.list_instance_profile_tags(p.str("InstanceProfileName")?)?;
            listing(p, "Tags", tag_items(tags), by("Key"))?
        }

        // --- service-linked roles ---
        "CreateServiceLinkedRole" => {
            let input = CreateServiceLinkedRoleInput {
                service: p.str("AWSServiceName")?.to_owned(),
                description: p.opt_string("Description")?,
                custom_suffix: p.opt_string("CustomSuffix")?,
            };
            wrap(
                "Role",
                render::role(t.create_service_linked_role(ids, now, input)?, Detail::Full),
            )
        }
        "DeleteServiceLinkedRole" => {
            let task_id = t.delete_service_linked_role(ids, now, p.str("RoleName")?)?;
            json!({ "DeletionTaskId": task_id })
        }
        "GetServiceLinkedRoleDeletionStatus" => {
            let task = t.service_linked_role_deletion_status(p.str("DeletionTaskId")?)?;
            // `Reason` belongs to failed tasks, which iamlet's never are (nothing of a
            // service's uses its role here).
            json!({ "Status": task.status.as_str() })
        }

        // --- STS preferences ---
        "SetSecurityTokenServicePreferences" => {
            t.set_security_token_service_preferences(p.str("GlobalEndpointTokenVersion")?)?;
            json!({})
        }
        _ => return Ok(None),
    };
    Ok(Some(result))
}

/// An `InstanceProfile`, each of its roles in the `Role` shape (without the tags and
/// boundary, as AWS embeds them); `GetAccountAuthorizationDetails`' role details embed the
/// same shape.
pub(super) fn instance_profile(t: &Tenant, ip: &InstanceProfile) -> Value {
    let roles: Vec<Value> = t
        .instance_profile_roles(ip)
        .into_iter()
        .map(|r| render::role(r, Detail::Listing))
        .collect();
    let mut out = Map::new();
    out.insert("Path".into(), Value::String(ip.path.clone()));
    out.insert("InstanceProfileName".into(), Value::String(ip.name.clone()));
    out.insert(
        "InstanceProfileId".into(),
        Value::String(ip.instance_profile_id.clone()),
    );
    out.insert("Arn".into(), Value::String(ip.arn.clone()));
    out.insert("CreateDate".into(), date(ip.created_at));
    out.insert("Roles".into(), Value::Array(roles));
    if !ip.tags.is_empty() {
        out.insert("Tags".into(), render::tags(&ip.tags));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests;
