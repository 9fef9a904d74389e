//! Policies: the list (filter by type: AWS managed or customer managed; search by name), and
//! a policy's page: its document, versions (a new one from the JSON editor, the default
//! version, deleting old ones), the entities it is attached to, and its tags.

use axum::response::Response;
use serde_json::{json, Value};

use super::super::html::{cell, cell_link, esc, seg, Html};
use super::super::{Ctx, Form, Posted, Query};
use super::{
    alert, button_form, day, items, pager, searched, tag_fields, tags_of, tags_table, text,
};
use crate::control_plane::AdminError;

pub(in crate::http::console) async fn list(ctx: Ctx, Query(query): Query) -> Response {
    let mut body = Html::new();
    body.heading("Policies")
        .raw("<p class=\"actions\"><a class=\"button\" href=\"/console/policies/new\">Create policy</a></p>\n");
    let scope = match query.get("type") {
        "aws" => "AWS",
        "customer" => "Local",
        _ => "All",
    };
    body.raw("<form method=\"get\" action=\"/console/policies\" class=\"search\" role=\"search\">")
        .select(
            "Filter by type",
            "type",
            &[
                (String::new(), "All types".into()),
                ("aws".into(), "AWS managed".into()),
                ("customer".into(), "Customer managed".into()),
            ],
            query.get("type"),
        )
        .fmt(format_args!(
            "<label>Search policies <input type=\"search\" name=\"q\" value=\"{}\"></label> <button type=\"submit\">Filter</button></form>\n",
            esc(query.get("q"))
        ));
    match searched(
        &ctx,
        "ListPolicies",
        json!({"Scope": scope}),
        "Policies",
        "PolicyName",
        &query,
    )
    .await
    {
        Ok((policies, next)) => {
            render_list(&mut body, &policies);
            let next = next.map(|n| {
                if query.get("type").is_empty() {
                    n
                } else {
                    format!("{n}&type={}", seg(query.get("type")))
                }
            });
            pager(&mut body, "/console/policies", &query, next.as_deref());
        }
        Err(error) => alert(&mut body, &error),
    }
    ctx.page("Policies", "/console/policies", body)
}

/// The policies table.
pub(in crate::http::console) fn render_list(body: &mut Html, policies: &[Value]) {
    let rows: Vec<Vec<String>> = policies
        .iter()
        .map(|p| {
            let arn = text(p, "Arn");
            vec![
                cell_link(
                    &format!("/console/policies/view?arn={}", seg(arn)),
                    text(p, "PolicyName"),
                ),
                cell(if arn.starts_with("arn:aws:iam::aws:") {
                    "AWS managed"
                } else {
                    "Customer managed"
                }),
                cell(
                    &p.get("AttachmentCount")
                        .and_then(Value::as_i64)
                        .unwrap_or(0)
                        .to_string(),
                ),
                cell(text(p, "Description")),
                cell(day(text(p, "UpdateDate"))),
            ]
        })
        .collect();
    body.table(
        "Policies",
        &[
            "Policy name",
            "Type",
            "Attachments",
            "Description",
            "Edited",
        ],
        &rows,
    );
}

/// The document of a version, pretty-printed.
pub(in crate::http::console) fn pretty(document: Option<&Value>) -> String {
    match document {
        Some(Value::String(s)) => serde_json::from_str::<Value>(s)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| s.clone()),
        Some(v) => serde_json::to_string_pretty(v).unwrap_or_default(),
        None => String::new(),
    }
}

pub(in crate::http::console) async fn details(ctx: Ctx, Query(query): Query) -> Response {
    let arn = query.get("arn").to_owned();
    let mut body = Html::new();
    let policy = match ctx.call("GetPolicy", json!({"PolicyArn": arn})).await {
        Ok(p) => p.get("Policy").cloned().unwrap_or_default(),
        Err(error) => {
            body.heading("Policy");
            alert(&mut body, &error);
            return ctx.page("Policy", "/console/policies", body);
        }
    };
    let name = text(&policy, "PolicyName").to_owned();
    let aws = arn.starts_with("arn:aws:iam::aws:");
    let base = format!("/console/policies/view?arn={}", seg(&arn));
    body.heading(&name).fmt(format_args!(
        "<dl class=\"summary\"><dt>ARN</dt><dd><code>{}</code></dd><dt>Type</dt><dd>{}</dd><dt>Description</dt><dd class=\"description\">{}</dd><dt>Default version</dt><dd>{}</dd></dl>\n",
        esc(&arn),
        if aws { "AWS managed" } else { "Customer managed" },
        esc(text(&policy, "Description")),
        esc(text(&policy, "DefaultVersionId"))
    ));
    let version = text(&policy, "DefaultVersionId").to_owned();
    let document = match ctx
        .call(
            "GetPolicyVersion",
            json!({"PolicyArn": arn, "VersionId": version}),
        )
        .await
    {
        Ok(v) => pretty(v.pointer("/PolicyVersion/Document")),
        Err(error) => {
            alert(&mut body, &error);
            String::new()
        }
    };
    body.raw("<h2>Permissions</h2>\n").fmt(format_args!(
        "<pre class=\"policy\">{}</pre>\n",
        esc(&document)
    ));
    if !aws {
        body.raw("<h2>Edit: create a new version</h2>\n");
        ctx.form_open(&mut body, &base);
        body.hidden("op", "new-version")
            .textarea("Policy document", "document", &document, "policy-json")
            .raw("<div id=\"findings\" aria-live=\"polite\"></div>\n")
            .checkbox("Set as default version", "default", "on", true)
            .button("Save changes", None)
            .raw("</form>\n");
        match ctx
            .call("ListPolicyVersions", json!({"PolicyArn": arn}))
            .await
        {
            Ok(versions) => {
                let rows: Vec<Vec<String>> = items(&versions, "Versions")
                    .iter()
                    .map(|v| {
                        let id = text(v, "VersionId");
                        let default = v
                            .get("IsDefaultVersion")
                            .and_then(Value::as_bool)
                            .unwrap_or(false);
                        vec![
                            cell(id),
                            cell(if default { "Default" } else { "" }),
                            cell(day(text(v, "CreateDate"))),
                            if default {
                                String::new()
                            } else {
                                format!(
                                    "{}{}",
                                    button_form(
                                        &ctx,
                                        &base,
                                        &[("op", "set-default"), ("version", id)],
                                        "Set as default"
                                    ),
                                    button_form(
                                        &ctx,
                                        &base,
                                        &[("op", "delete-version"), ("version", id)],
                                        "Delete"
                                    )
                                )
                            },
                        ]
                    })
                    .collect();
                body.table("Policy versions", &["Version", "", "Created", ""], &rows);
            }
            Err(error) => alert(&mut body, &error),
        }
    }
    match ctx
        .call("ListEntitiesForPolicy", json!({"PolicyArn": arn}))
        .await
    {
        Ok(entities) => {
            let mut rows = Vec::new();
            for (member, key, kind, path) in [
                ("PolicyUsers", "UserName", "User", "users"),
                ("PolicyGroups", "GroupName", "Group", "groups"),
                ("PolicyRoles", "RoleName", "Role", "roles"),
            ] {
                for e in items(&entities, member) {
                    let n = text(e, key);
                    rows.push(vec![
                        cell_link(&format!("/console/{path}/details/{}", seg(n)), n),
                        cell(kind),
                    ]);
                }
            }
            body.table("Entities attached", &["Entity", "Type"], &rows);
        }
        Err(error) => alert(&mut body, &error),
    }
    if !aws {
        if let Ok(tags) = ctx.call("ListPolicyTags", json!({"PolicyArn": arn})).await {
            tags_table(&mut body, items(&tags, "Tags"));
        }
        ctx.form_open(&mut body, &base);
        body.hidden("op", "tag");
        tag_fields(&mut body, &Form::default());
        body.button("Save tags", None).raw("</form>\n");
        body.raw("<h2>Delete policy</h2>\n<p>Detaches it from every entity, deletes its versions, then the policy.</p>\n")
            .raw(&button_form(&ctx, &base, &[("op", "delete")], "Delete policy"));
    }
    ctx.page(&name, "/console/policies", body)
}

pub(in crate::http::console) async fn act(
    ctx: Ctx,
    Query(query): Query,
    Posted(form): Posted,
) -> Response {
    let arn = query.get("arn").to_owned();
    let base = format!("/console/policies/view?arn={}", seg(&arn));
    let with = |k: &str, v: Value| -> Value { json!({"PolicyArn": arn, k: v}) };
    let outcome: Result<String, AdminError> = match form.get("op") {
        "new-version" => ctx
            .call("CreatePolicyVersion", json!({"PolicyArn": arn, "PolicyDocument": form.raw("document"), "SetAsDefault": form.has("default")}))
            .await
            .map(|v| format!("Version {} was created.", text(super::member(&v, "PolicyVersion"), "VersionId"))),
        "set-default" => ctx.call("SetDefaultPolicyVersion", with("VersionId", json!(form.get("version")))).await.map(|_| "The default version was set.".into()),
        "delete-version" => ctx.call("DeletePolicyVersion", with("VersionId", json!(form.get("version")))).await.map(|_| "The version was deleted.".into()),
        "tag" => {
            let tags = tags_of(&form);
            if tags.is_empty() {
                Ok("No tag was given.".into())
            } else {
                ctx.call("TagPolicy", with("Tags", Value::Array(tags))).await.map(|_| "Tags saved.".into())
            }
        }
        "delete" => {
            return match delete_policy(&ctx, &arn).await {
                Ok(()) => ctx.done("/console/policies", Ok("The policy was deleted.".into())),
                Err(e) => ctx.done(&base, Err(e)),
            }
        }
        _ => return super::unknown_action(),
    };
    ctx.done(&base, outcome)
}

async fn delete_policy(ctx: &Ctx, arn: &str) -> Result<(), AdminError> {
    let entities = ctx
        .call("ListEntitiesForPolicy", json!({"PolicyArn": arn}))
        .await?;
    for e in items(&entities, "PolicyUsers") {
        ctx.call(
            "DetachUserPolicy",
            json!({"UserName": text(e, "UserName"), "PolicyArn": arn}),
        )
        .await?;
    }
    for e in items(&entities, "PolicyGroups") {
        ctx.call(
            "DetachGroupPolicy",
            json!({"GroupName": text(e, "GroupName"), "PolicyArn": arn}),
        )
        .await?;
    }
    for e in items(&entities, "PolicyRoles") {
        ctx.call(
            "DetachRolePolicy",
            json!({"RoleName": text(e, "RoleName"), "PolicyArn": arn}),
        )
        .await?;
    }
    let versions = ctx
        .call("ListPolicyVersions", json!({"PolicyArn": arn}))
        .await?;
    for v in items(&versions, "Versions") {
        if !v
            .get("IsDefaultVersion")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            ctx.call(
                "DeletePolicyVersion",
                json!({"PolicyArn": arn, "VersionId": text(v, "VersionId")}),
            )
            .await?;
        }
    }
    ctx.call("DeletePolicy", json!({"PolicyArn": arn}))
        .await
        .map(drop)
}
