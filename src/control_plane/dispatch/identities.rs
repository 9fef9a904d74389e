//! Users, groups and roles: their lifecycle, membership, tags and session revocation.

use serde_json::{json, Value};

use super::params::Params;
use super::render::{self, by, listing, wrap, Detail, Page};
use crate::control_plane::AdminError;
use crate::directory::{CreateRoleInput, CreateUserInput, IdGenerator, Tenant};

/// Runs `action` if it belongs to this area (`Ok(None)` otherwise).
pub(super) fn run(
    t: &mut Tenant,
    ids: &mut IdGenerator,
    now: i64,
    action: &str,
    p: Params<'_>,
) -> Result<Option<Value>, AdminError> {
    let result = match action {
        // --- users ---
        "CreateUser" => {
            let input = CreateUserInput {
                name: p.str("UserName")?.to_owned(),
                path: p.opt_string("Path")?,
                permissions_boundary: p.opt_string("PermissionsBoundary")?,
                tags: p.tags("Tags")?,
            };
            wrap(
                "User",
                render::user(t.create_user(ids, now, input)?, Detail::Full),
            )
        }
        "GetUser" => wrap(
            "User",
            render::user(t.get_user(p.str("UserName")?)?, Detail::Full),
        ),
        "ListUsers" => {
            let users = t.list_users(p.opt_str("PathPrefix")?)?;
            let items = users.into_iter().map(|u| render::user(u, Detail::Listing));
            listing(p, "Users", items.collect(), by("UserName"))?
        }
        "UpdateUser" => {
            t.update_user(
                p.str("UserName")?,
                p.opt_str("NewUserName")?,
                p.opt_str("NewPath")?,
            )?;
            json!({})
        }
        "DeleteUser" => {
            t.delete_user(p.str("UserName")?)?;
            json!({})
        }
        "TagUser" => {
            t.tag_user(p.str("UserName")?, &p.req_tags("Tags")?)?;
            json!({})
        }
        "UntagUser" => {
            t.untag_user(p.str("UserName")?, &p.req_str_list("TagKeys")?)?;
            json!({})
        }
        "ListUserTags" => {
            let tags = t.list_user_tags(p.str("UserName")?)?;
            listing(p, "Tags", tag_items(tags), by("Key"))?
        }

        // --- groups ---
        "CreateGroup" => {
            let group = t.create_group(ids, now, p.str("GroupName")?, p.opt_str("Path")?)?;
            wrap("Group", render::group(group))
        }
        "GetGroup" => {
            let (group, users) = t.get_group(p.str("GroupName")?)?;
            let users: Vec<Value> = users
                .into_iter()
                .map(|u| render::user(u, Detail::Listing))
                .collect();
            let (users, marker) = Page::read(p, "Users")?.cut("Users", users, by("UserName"));
            let mut out = serde_json::Map::new();
            out.insert("Group".into(), render::group(group));
            out.insert("Users".into(), Value::Array(users));
            render::finish(&mut out, marker);
            Value::Object(out)
        }
        "ListGroups" => {
            let groups = t.list_groups(p.opt_str("PathPrefix")?)?;
            listing(
                p,
                "Groups",
                groups.into_iter().map(render::group).collect(),
                by("GroupName"),
            )?
        }
        "UpdateGroup" => {
            t.update_group(
                p.str("GroupName")?,
                p.opt_str("NewGroupName")?,
                p.opt_str("NewPath")?,
            )?;
            json!({})
        }
        "DeleteGroup" => {
            t.delete_group(p.str("GroupName")?)?;
            json!({})
        }
        "AddUserToGroup" => {
            t.add_user_to_group(p.str("GroupName")?, p.str("UserName")?)?;
            json!({})
        }
        "RemoveUserFromGroup" => {
            t.remove_user_from_group(p.str("GroupName")?, p.str("UserName")?)?;
            json!({})
        }
        "ListGroupsForUser" => {
            let groups = t.list_groups_for_user(p.str("UserName")?)?;
            listing(
                p,
                "Groups",
                groups.into_iter().map(render::group).collect(),
                by("GroupName"),
            )?
        }

        // --- roles ---
        "CreateRole" => {
            let input = CreateRoleInput {
                name: p.str("RoleName")?.to_owned(),
                path: p.opt_string("Path")?,
                assume_role_policy: p.str("AssumeRolePolicyDocument")?.to_owned(),
                description: p.opt_string("Description")?,
                max_session_duration: p.opt_u32("MaxSessionDuration")?,
                permissions_boundary: p.opt_string("PermissionsBoundary")?,
                tags: p.tags("Tags")?,
            };
            wrap(
                "Role",
                render::role(t.create_role(ids, now, input)?, Detail::Full),
            )
        }
        "GetRole" => wrap(
            "Role",
            render::role(t.get_role(p.str("RoleName")?)?, Detail::Full),
        ),
        "ListRoles" => {
            let roles = t.list_roles(p.opt_str("PathPrefix")?)?;
            let items = roles.into_iter().map(|r| render::role(r, Detail::Listing));
            listing(p, "Roles", items.collect(), by("RoleName"))?
        }
        "UpdateRole" => {
            t.update_role(
                p.str("RoleName")?,
                p.opt_str("Description")?,
                p.opt_u32("MaxSessionDuration")?,
            )?;
            json!({})
        }
        "UpdateRoleDescription" => {
            let name = p.str("RoleName")?;
            t.update_role(name, Some(p.str("Description")?), None)?;
            wrap("Role", render::role(t.get_role(name)?, Detail::Full))
        }
        "UpdateAssumeRolePolicy" => {
            t.update_assume_role_policy(p.str("RoleName")?, p.str("PolicyDocument")?)?;
            json!({})
        }
        "DeleteRole" => {
            t.delete_role(p.str("RoleName")?)?;
            json!({})
        }
        "TagRole" => {
            t.tag_role(p.str("RoleName")?, &p.req_tags("Tags")?)?;
            json!({})
        }
        "UntagRole" => {
            t.untag_role(p.str("RoleName")?, &p.req_str_list("TagKeys")?)?;
            json!({})
        }
        "ListRoleTags" => {
            let tags = t.list_role_tags(p.str("RoleName")?)?;
            listing(p, "Tags", tag_items(tags), by("Key"))?
        }
        "RevokeSessions" => {
            t.revoke_sessions(p.str("RoleName")?, now)?;
            json!({})
        }
        _ => return Ok(None),
    };
    Ok(Some(result))
}

/// Tags as the items of a `List*Tags` result.
pub(super) fn tag_items(tags: &[crate::directory::Tag]) -> Vec<Value> {
    match render::tags(tags) {
        Value::Array(items) => items,
        _ => Vec::new(),
    }
}
