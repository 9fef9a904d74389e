//! User groups: the list, Create group (a name and policies to attach), and a group's page
//! (its users, its policies).

use axum::extract::Path;
use axum::response::Response;
use serde_json::{json, Value};

use super::super::html::{cell, cell_link, esc, seg, Html};
use super::super::{Ctx, Posted, Query};
use super::{
    alert, button_form, day, items, pager, policy_checklist, policy_choices, search_box, searched,
    text,
};
use crate::control_plane::AdminError;

pub(in crate::http::console) async fn list(ctx: Ctx, Query(query): Query) -> Response {
    let mut body = Html::new();
    body.heading("User groups")
        .raw("<p class=\"actions\"><a class=\"button\" href=\"/console/groups/new\">Create group</a></p>\n");
    search_box(&mut body, "/console/groups", "Search groups", &query);
    match searched(&ctx, "ListGroups", json!({}), "Groups", "GroupName", &query).await {
        Ok((groups, next)) => {
            let rows: Vec<Vec<String>> = groups
                .iter()
                .map(|g| {
                    let name = text(g, "GroupName");
                    vec![
                        cell_link(&format!("/console/groups/details/{}", seg(name)), name),
                        cell(text(g, "Path")),
                        cell(day(text(g, "CreateDate"))),
                    ]
                })
                .collect();
            body.table("User groups", &["Group name", "Path", "Created"], &rows);
            pager(&mut body, "/console/groups", &query, next.as_deref());
        }
        Err(error) => alert(&mut body, &error),
    }
    ctx.page("User groups", "/console/groups", body)
}

pub(in crate::http::console) async fn new_form(ctx: Ctx) -> Response {
    let mut body = Html::new();
    body.heading("Create user group");
    ctx.form_open(&mut body, "/console/groups/new");
    body.required("User group name", "name", "");
    match policy_choices(&ctx).await {
        Ok(policies) => policy_checklist(
            &mut body,
            "Attach permissions policies",
            "policy",
            &policies,
            &[],
        ),
        Err(error) => alert(&mut body, &error),
    }
    body.button("Create group", None).raw("</form>\n");
    ctx.page("Create user group", "/console/groups", body)
}

pub(in crate::http::console) async fn create(ctx: Ctx, Posted(form): Posted) -> Response {
    let name = form.get("name").to_owned();
    let outcome = async {
        ctx.call("CreateGroup", json!({"GroupName": name})).await?;
        for arn in form.all("policy") {
            if let Err(e) = ctx
                .call(
                    "AttachGroupPolicy",
                    json!({"GroupName": name, "PolicyArn": arn}),
                )
                .await
            {
                // A group without the policies asked for is not what was asked: undo.
                for done in form.all("policy").into_iter().take_while(|a| *a != arn) {
                    let _ = ctx
                        .call(
                            "DetachGroupPolicy",
                            json!({"GroupName": name, "PolicyArn": done}),
                        )
                        .await;
                }
                let _ = ctx.call("DeleteGroup", json!({"GroupName": name})).await;
                return Err(e);
            }
        }
        Ok::<_, AdminError>(())
    }
    .await;
    match outcome {
        Ok(()) => ctx.done(
            &format!("/console/groups/details/{}", seg(&name)),
            Ok(format!("User group {name} was created.")),
        ),
        Err(error) => ctx.done("/console/groups/new", Err(error)),
    }
}

pub(in crate::http::console) async fn details(ctx: Ctx, Path(name): Path<String>) -> Response {
    let base = format!("/console/groups/details/{}", seg(&name));
    let mut body = Html::new();
    body.heading(&name);
    let group = match ctx.call("GetGroup", json!({"GroupName": name})).await {
        Ok(group) => group,
        Err(error) => {
            alert(&mut body, &error);
            return ctx.page(&name, "/console/groups", body);
        }
    };
    body.fmt(format_args!(
        "<dl class=\"summary\"><dt>ARN</dt><dd><code>{}</code></dd></dl>\n",
        esc(text(super::member(&group, "Group"), "Arn"))
    ));
    let members: Vec<String> = items(&group, "Users")
        .iter()
        .map(|u| text(u, "UserName").to_owned())
        .collect();
    let rows: Vec<Vec<String>> = members
        .iter()
        .map(|u| {
            vec![
                cell_link(&format!("/console/users/details/{}", seg(u)), u),
                button_form(&ctx, &base, &[("op", "remove-user"), ("user", u)], "Remove"),
            ]
        })
        .collect();
    body.table("Users in this group", &["User", ""], &rows);
    if let Ok(users) = super::list_all(&ctx, "ListUsers", json!({}), "Users").await {
        ctx.form_open(&mut body, &base);
        body.hidden("op", "add-users")
            .raw("<fieldset class=\"choices\"><legend>Add users</legend>\n");
        for u in users
            .iter()
            .map(|u| text(u, "UserName"))
            .filter(|u| !members.iter().any(|m| m == u))
        {
            body.raw("<div>")
                .checkbox(u, "user", u, false)
                .raw("</div>\n");
        }
        body.raw("</fieldset>\n")
            .button("Add users", None)
            .raw("</form>\n");
    }
    let attached = match ctx
        .call("ListAttachedGroupPolicies", json!({"GroupName": name}))
        .await
    {
        Ok(a) => items(&a, "AttachedPolicies").to_vec(),
        Err(error) => {
            alert(&mut body, &error);
            Vec::new()
        }
    };
    let rows: Vec<Vec<String>> = attached
        .iter()
        .map(|a| {
            let arn = text(a, "PolicyArn");
            vec![
                cell_link(
                    &format!("/console/policies/view?arn={}", seg(arn)),
                    text(a, "PolicyName"),
                ),
                button_form(&ctx, &base, &[("op", "detach"), ("arn", arn)], "Remove"),
            ]
        })
        .collect();
    body.table("Permissions policies", &["Policy", ""], &rows);
    if let Ok(policies) = policy_choices(&ctx).await {
        let attached: Vec<&str> = attached.iter().map(|a| text(a, "PolicyArn")).collect();
        let choices: Vec<_> = policies
            .into_iter()
            .filter(|p| !attached.contains(&p.arn.as_str()))
            .collect();
        ctx.form_open(&mut body, &base);
        body.hidden("op", "attach");
        policy_checklist(&mut body, "Attach policies", "policy", &choices, &[]);
        body.button("Add permissions", None).raw("</form>\n");
    }
    body.raw("<h2>Delete group</h2>\n");
    body.raw(&button_form(
        &ctx,
        &base,
        &[("op", "delete")],
        "Delete group",
    ));
    ctx.page(&name, "/console/groups", body)
}

pub(in crate::http::console) async fn act(
    ctx: Ctx,
    Path(name): Path<String>,
    Posted(form): Posted,
) -> Response {
    let base = format!("/console/groups/details/{}", seg(&name));
    let with = |k: &str, v: &str| -> Value { json!({"GroupName": name, k: v}) };
    let outcome = match form.get("op") {
        "add-users" => ctx
            .call_all(
                form.all("user")
                    .into_iter()
                    .map(|u| ("AddUserToGroup", with("UserName", u)))
                    .collect(),
            )
            .await
            .map(|()| "Users added.".to_owned()),
        "remove-user" => ctx
            .call("RemoveUserFromGroup", with("UserName", form.get("user")))
            .await
            .map(|_| "User removed.".into()),
        "attach" => ctx
            .call_all(
                form.all("policy")
                    .into_iter()
                    .map(|a| ("AttachGroupPolicy", with("PolicyArn", a)))
                    .collect(),
            )
            .await
            .map(|()| "Policies attached.".to_owned()),
        "detach" => ctx
            .call("DetachGroupPolicy", with("PolicyArn", form.get("arn")))
            .await
            .map(|_| "Policy removed.".into()),
        "delete" => {
            return match ctx.call("DeleteGroup", json!({"GroupName": name})).await {
                Ok(_) => ctx.done(
                    "/console/groups",
                    Ok(format!("User group {name} was deleted.")),
                ),
                Err(e) => ctx.done(&base, Err(e)),
            }
        }
        _ => return super::unknown_action(),
    };
    ctx.done(&base, outcome)
}
