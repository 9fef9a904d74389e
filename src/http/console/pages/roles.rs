//! Roles: the list, the Create role wizard (the trusted entity: an AWS service from the
//! catalogue's services, another account with an optional external id and MFA, a web
//! identity provider of the tenant with its audience, a SAML provider, or a custom trust
//! policy; then permissions; then name, description, maximum session duration and tags),
//! and a role's tabs: Permissions, Trust relationships, Tags, Sessions (revoke, last used)
//! and Access Advisor.

use axum::extract::Path;
use axum::response::Response;
use serde_json::{json, Value};

use super::super::html::{cell, cell_link, esc, seg, Html};
use super::super::{Ctx, Form, Posted, Query};
use super::users::tabs;
use super::{
    alert, boundary_select, button_form, carry, day, items, pager, policy_checklist,
    policy_choices, search_box, searched, tag_fields, tags_of, tags_table, text, Wizard,
};
use super::{boundary_section, provider_select};
use crate::control_plane::AdminError;

pub(in crate::http::console) async fn list(ctx: Ctx, Query(query): Query) -> Response {
    let mut body = Html::new();
    body.heading("Roles")
        .raw("<p class=\"actions\"><a class=\"button\" href=\"/console/roles/new\">Create role</a></p>\n");
    search_box(&mut body, "/console/roles", "Search roles", &query);
    match searched(&ctx, "ListRoles", json!({}), "Roles", "RoleName", &query).await {
        Ok((roles, next)) => {
            let rows: Vec<Vec<String>> = roles
                .iter()
                .map(|r| {
                    let name = text(r, "RoleName");
                    vec![
                        cell_link(&format!("/console/roles/details/{}", seg(name)), name),
                        cell(&trusted_entities(r.get("AssumeRolePolicyDocument"))),
                        cell(day(text(r, "CreateDate"))),
                    ]
                })
                .collect();
            body.table(
                "Roles",
                &["Role name", "Trusted entities", "Created"],
                &rows,
            );
            pager(&mut body, "/console/roles", &query, next.as_deref());
        }
        Err(error) => alert(&mut body, &error),
    }
    ctx.page("Roles", "/console/roles", body)
}

/// The principals a trust policy names, for the list's column.
fn trusted_entities(document: Option<&Value>) -> String {
    let document = match document {
        Some(Value::String(text)) => serde_json::from_str(text).unwrap_or_default(),
        Some(v) => v.clone(),
        None => Value::Null,
    };
    let statements = match document.get("Statement") {
        Some(Value::Array(s)) => s.clone(),
        Some(s) => vec![s.clone()],
        None => Vec::new(),
    };
    let mut names = Vec::new();
    for s in &statements {
        if let Some(Value::Object(p)) = s.get("Principal") {
            for (kind, v) in p {
                let values = match v {
                    Value::Array(a) => a
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect(),
                    Value::String(s) => vec![s.clone()],
                    _ => Vec::new(),
                };
                names.extend(values.into_iter().map(|v| format!("{kind}: {v}")));
            }
        } else if s.get("Principal").and_then(Value::as_str) == Some("*") {
            names.push("Anyone".into());
        }
    }
    names.join(", ")
}

// --- the Create role wizard ---

const WIZARD: Wizard = Wizard {
    title: "Create role",
    action: "/console/roles/new",
    finish: "Create role",
    steps: &[
        ("trust", "Select trusted entity"),
        ("permissions", "Add permissions"),
        ("review", "Name, review, and create"),
    ],
};

pub(in crate::http::console) async fn wizard(ctx: Ctx) -> Response {
    step_page(&ctx, "trust", &Form::default(), None).await
}

pub(in crate::http::console) async fn wizard_step(ctx: Ctx, Posted(form): Posted) -> Response {
    let go = form.get("go");
    if go == "create" {
        return create(&ctx, &form).await;
    }
    if form.get("step") == "trust" && go != "trust" {
        if let Err(problem) = trust_policy(&form) {
            return step_page(&ctx, "trust", &form, Some(&problem)).await;
        }
    }
    let step = WIZARD.step(go);
    step_page(&ctx, step, &form, None).await
}

/// The trust policy the first step's choices make.
pub(in crate::http::console) fn trust_policy(form: &Form) -> Result<String, String> {
    let statement = match form.get("entity") {
        "service" => {
            let service = form.get("service");
            if service.is_empty() || service.contains(char::is_whitespace) {
                return Err("Choose a service (such as ec2.amazonaws.com).".into());
            }
            let service = if service.contains('.') {
                service.to_owned()
            } else {
                format!("{service}.amazonaws.com")
            };
            json!({"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"})
        }
        "account" => {
            let account = form.get("account");
            if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
                return Err("Enter a 12-digit account ID.".into());
            }
            let mut statement = json!({"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{account}:root")}, "Action": "sts:AssumeRole"});
            let mut condition = serde_json::Map::new();
            if form.has("require_external_id") {
                let external = form.get("external_id");
                if external.len() < 2 {
                    return Err("Enter an external ID (2 to 1,224 characters).".into());
                }
                condition.insert("StringEquals".into(), json!({"sts:ExternalId": external}));
            }
            if form.has("require_mfa") {
                condition.insert("Bool".into(), json!({"aws:MultiFactorAuthPresent": "true"}));
            }
            if !condition.is_empty() {
                super::set(&mut statement, "Condition", Value::Object(condition));
            }
            statement
        }
        "web" => {
            let provider = form.get("provider");
            let Some(host) = provider.split_once(":oidc-provider/").map(|(_, h)| h) else {
                return Err("Choose an identity provider.".into());
            };
            let audience = form.get("audience");
            if audience.is_empty() {
                return Err("Enter the audience (the client id the tokens name).".into());
            }
            json!({"Effect": "Allow", "Principal": {"Federated": provider}, "Action": "sts:AssumeRoleWithWebIdentity",
                   "Condition": {"StringEquals": {format!("{host}:aud"): audience}}})
        }
        "saml" => {
            let provider = form.get("saml_provider");
            if !provider.contains(":saml-provider/") {
                return Err("Choose a SAML provider.".into());
            }
            json!({"Effect": "Allow", "Principal": {"Federated": provider}, "Action": "sts:AssumeRoleWithSAML",
                   "Condition": {"StringEquals": {"SAML:aud": "https://signin.aws.amazon.com/saml"}}})
        }
        "custom" => {
            let text = form.raw("trust_policy");
            return match serde_json::from_str::<Value>(text) {
                Ok(_) => Ok(text.to_owned()),
                Err(e) => Err(format!("The trust policy is not JSON: {e}")),
            };
        }
        _ => return Err("Choose a trusted entity type.".into()),
    };
    let document = json!({"Version": "2012-10-17", "Statement": [statement]});
    serde_json::to_string_pretty(&document).map_err(|e| e.to_string())
}

async fn step_page(ctx: &Ctx, step: &str, form: &Form, problem: Option<&str>) -> Response {
    let mut body = Html::new();
    let index = WIZARD.open(ctx, &mut body, step, problem);
    match step {
        "permissions" => {
            carry(&mut body, form, &["policy", "boundary"]);
            match policy_choices(ctx).await {
                Ok(policies) => {
                    policy_checklist(
                        &mut body,
                        "Permissions policies",
                        "policy",
                        &policies,
                        &form.all("policy"),
                    );
                    body.raw("<h3>Set permissions boundary (optional)</h3>\n");
                    boundary_select(&mut body, &policies, form.get("boundary"));
                }
                Err(error) => alert(&mut body, &error),
            }
        }
        "review" => {
            carry(
                &mut body,
                form,
                &[
                    "name",
                    "description",
                    "max_session",
                    "tag_key_1",
                    "tag_value_1",
                    "tag_key_2",
                    "tag_value_2",
                    "tag_key_3",
                    "tag_value_3",
                ],
            );
            body.raw("<h2>Role details</h2>\n")
                .required("Role name", "name", form.get("name"))
                .input(
                    "Description",
                    "description",
                    form.get("description"),
                    "text",
                );
            let hours = session_durations();
            body.select(
                "Maximum session duration",
                "max_session",
                &hours,
                match form.get("max_session") {
                    "" => "3600",
                    s => s,
                },
            );
            tag_fields(&mut body, form);
            body.raw("<h3>Trust policy</h3>\n");
            match trust_policy(form) {
                Ok(policy) => body.fmt(format_args!(
                    "<pre class=\"policy\">{}</pre>\n",
                    esc(&policy)
                )),
                Err(problem) => body.fmt(format_args!(
                    "<div role=\"alert\" class=\"error\">{}</div>\n",
                    esc(&problem)
                )),
            };
            let policies = form.all("policy");
            body.fmt(format_args!(
                "<p>Permissions policies: {}</p>\n",
                esc(&if policies.is_empty() {
                    "none".to_owned()
                } else {
                    policies.join(", ")
                })
            ));
        }
        _ => {
            carry(
                &mut body,
                form,
                &[
                    "entity",
                    "service",
                    "account",
                    "require_external_id",
                    "external_id",
                    "require_mfa",
                    "provider",
                    "audience",
                    "saml_provider",
                    "trust_policy",
                ],
            );
            trust_step(ctx, &mut body, form).await;
        }
    }
    WIZARD.close(&mut body, index);
    ctx.page("Create role", "/console/roles", body)
}

async fn trust_step(ctx: &Ctx, body: &mut Html, form: &Form) {
    let entity = match form.get("entity") {
        "" => "service",
        e => e,
    };
    body.raw("<fieldset><legend>Trusted entity type</legend>\n")
        .radio("AWS service", "entity", "service", entity == "service")
        .radio("AWS account", "entity", "account", entity == "account")
        .radio("Web identity", "entity", "web", entity == "web")
        .radio("SAML 2.0 federation", "entity", "saml", entity == "saml")
        .radio(
            "Custom trust policy",
            "entity",
            "custom",
            entity == "custom",
        )
        .raw("</fieldset>\n");
    body.raw("<fieldset><legend>AWS service</legend>\n")
        .fmt(format_args!(
            "<p><label>Service <input type=\"text\" name=\"service\" list=\"services\" value=\"{}\" placeholder=\"ec2.amazonaws.com\"></label></p>\n<datalist id=\"services\">",
            esc(form.get("service"))
        ));
    if let Ok(catalog) = crate::policy::catalog::catalog() {
        for service in catalog.services() {
            body.fmt(format_args!(
                "<option value=\"{}.amazonaws.com\">{}</option>",
                esc(service.prefix()),
                esc(service.name())
            ));
        }
    }
    body.raw("</datalist></fieldset>\n");
    let own = ctx.session().account_id.clone();
    body.raw("<fieldset><legend>AWS account</legend>\n")
        .input(
            "Account ID",
            "account",
            if form.get("account").is_empty() {
                &own
            } else {
                form.get("account")
            },
            "text",
        )
        .checkbox(
            "Require external ID",
            "require_external_id",
            "on",
            form.has("require_external_id"),
        )
        .input(
            "External ID",
            "external_id",
            form.get("external_id"),
            "text",
        )
        .checkbox("Require MFA", "require_mfa", "on", form.has("require_mfa"))
        .raw("</fieldset>\n");
    body.raw("<fieldset><legend>Web identity</legend>\n");
    provider_select(
        ctx,
        body,
        (
            "ListOpenIDConnectProviders",
            "OpenIDConnectProviderList",
            ":oidc-provider/",
        ),
        ("Identity provider", "provider", form.get("provider")),
    )
    .await;
    body.input("Audience", "audience", form.get("audience"), "text")
        .raw("</fieldset>\n");
    body.raw("<fieldset><legend>SAML 2.0 federation</legend>\n");
    provider_select(
        ctx,
        body,
        ("ListSAMLProviders", "SAMLProviderList", ":saml-provider/"),
        ("SAML provider", "saml_provider", form.get("saml_provider")),
    )
    .await;
    body.raw("</fieldset>\n<fieldset><legend>Custom trust policy</legend>\n");
    let custom = if form.raw("trust_policy").is_empty() {
        "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n    {\n      \"Effect\": \"Allow\",\n      \"Principal\": {},\n      \"Action\": \"sts:AssumeRole\"\n    }\n  ]\n}"
    } else {
        form.raw("trust_policy")
    };
    body.textarea("Trust policy", "trust_policy", custom, "trust-policy")
        .raw("</fieldset>\n");
}

async fn create(ctx: &Ctx, form: &Form) -> Response {
    let trust = match trust_policy(form) {
        Ok(trust) => trust,
        Err(problem) => return step_page(ctx, "trust", form, Some(&problem)).await,
    };
    let name = form.get("name").to_owned();
    let mut create = json!({"RoleName": name, "AssumeRolePolicyDocument": trust});
    if !form.get("description").is_empty() {
        super::set(&mut create, "Description", json!(form.get("description")));
    }
    if let Ok(seconds) = form.get("max_session").parse::<u32>() {
        super::set(&mut create, "MaxSessionDuration", json!(seconds));
    }
    if !form.get("boundary").is_empty() {
        super::set(
            &mut create,
            "PermissionsBoundary",
            json!(form.get("boundary")),
        );
    }
    let tags = tags_of(form);
    if !tags.is_empty() {
        super::set(&mut create, "Tags", Value::Array(tags));
    }
    if let Err(error) = ctx.call("CreateRole", create).await {
        return step_page(
            ctx,
            "review",
            form,
            Some(&format!(
                "The role was not created. {}",
                super::super::error_text(&error)
            )),
        )
        .await;
    }
    let mut attached = Vec::new();
    for arn in form.all("policy") {
        if let Err(error) = ctx
            .call(
                "AttachRolePolicy",
                json!({"RoleName": name, "PolicyArn": arn}),
            )
            .await
        {
            for done in &attached {
                let _ = ctx
                    .call(
                        "DetachRolePolicy",
                        json!({"RoleName": name, "PolicyArn": done}),
                    )
                    .await;
            }
            let _ = ctx.call("DeleteRole", json!({"RoleName": name})).await;
            return step_page(
                ctx,
                "review",
                form,
                Some(&format!(
                    "The role was not created. {}",
                    super::super::error_text(&error)
                )),
            )
            .await;
        }
        attached.push(arn);
    }
    ctx.done(
        &format!("/console/roles/details/{}", seg(&name)),
        Ok(format!("Role {name} was created.")),
    )
}

/// The maximum session durations a role may have, as the console offers them.
fn session_durations() -> Vec<(String, String)> {
    [1, 2, 4, 6, 8, 12]
        .iter()
        .map(|h| {
            (
                (h * 3600).to_string(),
                format!("{h} hour{}", if *h == 1 { "" } else { "s" }),
            )
        })
        .collect()
}

// --- a role's tabs ---

const TABS: &[(&str, &str)] = &[
    ("permissions", "Permissions"),
    ("trust", "Trust relationships"),
    ("tags", "Tags"),
    ("sessions", "Sessions"),
    ("advisor", "Access Advisor"),
];

pub(in crate::http::console) async fn details(
    ctx: Ctx,
    Path(name): Path<String>,
    Query(query): Query,
) -> Response {
    let tab = query.get("tab").to_owned();
    let tab = TABS
        .iter()
        .find(|(t, _)| *t == tab)
        .map_or("permissions", |(t, _)| t);
    let base = format!("/console/roles/details/{}", seg(&name));
    let mut body = Html::new();
    let role = match ctx.call("GetRole", json!({"RoleName": name})).await {
        Ok(role) => role.get("Role").cloned().unwrap_or_default(),
        Err(error) => {
            body.heading(&name);
            alert(&mut body, &error);
            return ctx.page(&name, "/console/roles", body);
        }
    };
    body.heading(text(&role, "RoleName")).raw("<dl class=\"summary\">").fmt(format_args!(
        "<dt>ARN</dt><dd><code>{}</code></dd><dt>Description</dt><dd>{}</dd><dt>Maximum session duration</dt><dd>{} s</dd><dt>Last used</dt><dd>{}</dd>",
        esc(text(&role, "Arn")),
        esc(text(&role, "Description")),
        role.get("MaxSessionDuration").and_then(Value::as_i64).unwrap_or(3600),
        esc(role.pointer("/RoleLastUsed/LastUsedDate").and_then(Value::as_str).unwrap_or("Never"))
    ))
    .raw("</dl>\n");
    tabs(&mut body, &base, TABS, tab);
    match tab {
        "trust" => {
            let document = match role.get("AssumeRolePolicyDocument") {
                Some(Value::String(s)) => serde_json::from_str::<Value>(s)
                    .ok()
                    .and_then(|v| serde_json::to_string_pretty(&v).ok())
                    .unwrap_or_else(|| s.clone()),
                Some(v) => serde_json::to_string_pretty(v).unwrap_or_default(),
                None => String::new(),
            };
            ctx.form_open(&mut body, &base);
            body.hidden("op", "trust")
                .textarea("Trust policy", "document", &document, "trust-policy")
                .button("Update trust policy", None)
                .raw("</form>\n");
        }
        "tags" => {
            tags_table(&mut body, items(&role, "Tags"));
            ctx.form_open(&mut body, &base);
            body.hidden("op", "tag");
            tag_fields(&mut body, &Form::default());
            body.button("Save tags", None).raw("</form>\n");
        }
        "sessions" => {
            body.raw("<h2>Revoke active sessions</h2>\n<p>Denies every action to sessions of this role issued before now. Sessions issued later are not affected.</p>\n")
                .raw(&button_form(&ctx, &base, &[("op", "revoke")], "Revoke active sessions"));
            body.raw("<h2>Role settings</h2>\n");
            ctx.form_open(&mut body, &base);
            body.hidden("op", "settings").input(
                "Description",
                "description",
                text(&role, "Description"),
                "text",
            );
            let hours = session_durations();
            let current = role
                .get("MaxSessionDuration")
                .and_then(Value::as_i64)
                .unwrap_or(3600)
                .to_string();
            body.select("Maximum session duration", "max_session", &hours, &current)
                .button("Save settings", None)
                .raw("</form>\n");
        }
        "advisor" => advisor(&ctx, &mut body, text(&role, "Arn")).await,
        _ => role_permissions(&ctx, &mut body, &base, &role, &name).await,
    }
    body.raw("<h2>Delete role</h2>\n").raw(&button_form(
        &ctx,
        &base,
        &[("op", "delete")],
        "Delete role",
    ));
    ctx.page(text(&role, "RoleName"), "/console/roles", body)
}

async fn role_permissions(ctx: &Ctx, body: &mut Html, base: &str, role: &Value, name: &str) {
    let attached = match ctx
        .call("ListAttachedRolePolicies", json!({"RoleName": name}))
        .await
    {
        Ok(a) => items(&a, "AttachedPolicies").to_vec(),
        Err(error) => {
            alert(body, &error);
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
                button_form(ctx, base, &[("op", "detach"), ("arn", arn)], "Remove"),
            ]
        })
        .collect();
    body.table("Permissions policies", &["Policy", ""], &rows);
    if let Ok(inline) = ctx
        .call("ListRolePolicies", json!({"RoleName": name}))
        .await
    {
        let rows: Vec<Vec<String>> = items(&inline, "PolicyNames")
            .iter()
            .filter_map(Value::as_str)
            .map(|n| {
                vec![
                    cell(n),
                    button_form(
                        ctx,
                        base,
                        &[("op", "delete-inline"), ("policy", n)],
                        "Remove",
                    ),
                ]
            })
            .collect();
        body.table("Inline policies", &["Policy", ""], &rows);
    }
    let policies = policy_choices(ctx).await.ok();
    if let Some(policies) = &policies {
        let attached: Vec<&str> = attached.iter().map(|a| text(a, "PolicyArn")).collect();
        let choices: Vec<_> = policies
            .iter()
            .filter(|p| !attached.contains(&p.arn.as_str()))
            .cloned()
            .collect();
        ctx.form_open(body, base);
        body.hidden("op", "attach");
        policy_checklist(body, "Add permissions", "policy", &choices, &[]);
        body.button("Add permissions", None).raw("</form>\n");
    }
    boundary_section(ctx, body, base, role, policies.as_deref());
}

/// Access Advisor: the services `arn` was allowed to use, and when it last did.
pub(in crate::http::console) async fn advisor(ctx: &Ctx, body: &mut Html, arn: &str) {
    let job = match ctx
        .call("GenerateServiceLastAccessedDetails", json!({"Arn": arn}))
        .await
    {
        Ok(job) => job,
        Err(error) => return alert(body, &error),
    };
    match ctx
        .call(
            "GetServiceLastAccessedDetails",
            json!({"JobId": text(&job, "JobId")}),
        )
        .await
    {
        Ok(report) => {
            let rows: Vec<Vec<String>> = items(&report, "ServicesLastAccessed")
                .iter()
                .map(|s| {
                    vec![
                        cell(text(s, "ServiceName")),
                        cell(text(s, "ServiceNamespace")),
                        cell(
                            s.get("LastAuthenticated")
                                .and_then(Value::as_str)
                                .unwrap_or("Not accessed in the tracking period"),
                        ),
                    ]
                })
                .collect();
            body.fmt(format_args!(
                "<p>Report status: {}</p>\n",
                esc(text(&report, "JobStatus"))
            ));
            body.table(
                "Allowed services and their last use",
                &["Service", "Namespace", "Last accessed"],
                &rows,
            );
        }
        Err(error) => alert(body, &error),
    }
}

pub(in crate::http::console) async fn act(
    ctx: Ctx,
    Path(name): Path<String>,
    Posted(form): Posted,
) -> Response {
    let base = format!("/console/roles/details/{}", seg(&name));
    let role = json!({"RoleName": name});
    let with = |k: &str, v: Value| -> Value { json!({"RoleName": name, k: v}) };
    let (tab, outcome): (&str, Result<String, AdminError>) = match form.get("op") {
        "trust" => (
            "trust",
            ctx.call(
                "UpdateAssumeRolePolicy",
                with("PolicyDocument", json!(form.raw("document"))),
            )
            .await
            .map(|_| "The trust policy was updated.".into()),
        ),
        "attach" => (
            "permissions",
            ctx.call_all(
                form.all("policy")
                    .into_iter()
                    .map(|a| ("AttachRolePolicy", with("PolicyArn", json!(a))))
                    .collect(),
            )
            .await
            .map(|()| "Policies attached.".into()),
        ),
        "detach" => (
            "permissions",
            ctx.call(
                "DetachRolePolicy",
                with("PolicyArn", json!(form.get("arn"))),
            )
            .await
            .map(|_| "Policy removed.".into()),
        ),
        "delete-inline" => (
            "permissions",
            ctx.call(
                "DeleteRolePolicy",
                with("PolicyName", json!(form.get("policy"))),
            )
            .await
            .map(|_| "Inline policy deleted.".into()),
        ),
        "set-boundary" => (
            "permissions",
            if form.get("boundary").is_empty() {
                Ok("No boundary was chosen.".into())
            } else {
                ctx.call(
                    "PutRolePermissionsBoundary",
                    with("PermissionsBoundary", json!(form.get("boundary"))),
                )
                .await
                .map(|_| "The permissions boundary was set.".into())
            },
        ),
        "remove-boundary" => (
            "permissions",
            ctx.call("DeleteRolePermissionsBoundary", role.clone())
                .await
                .map(|_| "The permissions boundary was removed.".into()),
        ),
        "tag" => {
            let tags = tags_of(&form);
            (
                "tags",
                if tags.is_empty() {
                    Ok("No tag was given.".into())
                } else {
                    ctx.call("TagRole", with("Tags", Value::Array(tags)))
                        .await
                        .map(|_| "Tags saved.".into())
                },
            )
        }
        "revoke" => (
            "sessions",
            ctx.call("RevokeSessions", role.clone())
                .await
                .map(|_| "Active sessions were revoked.".into()),
        ),
        "settings" => {
            let mut update = json!({"RoleName": name, "Description": form.get("description")});
            if let Ok(seconds) = form.get("max_session").parse::<u32>() {
                super::set(&mut update, "MaxSessionDuration", json!(seconds));
            }
            (
                "sessions",
                ctx.call("UpdateRole", update)
                    .await
                    .map(|_| "Role settings saved.".into()),
            )
        }
        "delete" => {
            let outcome = async {
                for p in items(
                    &ctx.call("ListAttachedRolePolicies", role.clone()).await?,
                    "AttachedPolicies",
                ) {
                    ctx.call(
                        "DetachRolePolicy",
                        with("PolicyArn", json!(text(p, "PolicyArn"))),
                    )
                    .await?;
                }
                for n in items(
                    &ctx.call("ListRolePolicies", role.clone()).await?,
                    "PolicyNames",
                ) {
                    ctx.call("DeleteRolePolicy", with("PolicyName", n.clone()))
                        .await?;
                }
                ctx.call("DeleteRole", role.clone()).await
            }
            .await;
            return match outcome {
                Ok(_) => ctx.done("/console/roles", Ok(format!("Role {name} was deleted."))),
                Err(e) => ctx.done(&base, Err(e)),
            };
        }
        _ => return super::unknown_action(),
    };
    ctx.done(&format!("{base}?tab={tab}"), outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Form {
        Form(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn each_trusted_entity_makes_its_trust_policy() {
        let service: Value = serde_json::from_str(
            &trust_policy(&form(&[("entity", "service"), ("service", "ec2")])).unwrap(),
        )
        .unwrap();
        assert_eq!(
            service["Statement"][0]["Principal"]["Service"],
            "ec2.amazonaws.com"
        );

        let account: Value = serde_json::from_str(
            &trust_policy(&form(&[
                ("entity", "account"),
                ("account", "444455556666"),
                ("require_external_id", "on"),
                ("external_id", "xyz-1"),
                ("require_mfa", "on"),
            ]))
            .unwrap(),
        )
        .unwrap();
        let statement = &account["Statement"][0];
        assert_eq!(
            statement["Principal"]["AWS"],
            "arn:aws:iam::444455556666:root"
        );
        assert_eq!(
            statement["Condition"]["StringEquals"]["sts:ExternalId"],
            "xyz-1"
        );
        assert_eq!(
            statement["Condition"]["Bool"]["aws:MultiFactorAuthPresent"],
            "true"
        );

        let web: Value = serde_json::from_str(
            &trust_policy(&form(&[
                ("entity", "web"),
                ("provider", "arn:aws:iam::1:oidc-provider/oidc.example.com"),
                ("audience", "app"),
            ]))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            web["Statement"][0]["Action"],
            "sts:AssumeRoleWithWebIdentity"
        );
        assert_eq!(
            web["Statement"][0]["Condition"]["StringEquals"]["oidc.example.com:aud"],
            "app"
        );

        let saml: Value = serde_json::from_str(
            &trust_policy(&form(&[
                ("entity", "saml"),
                ("saml_provider", "arn:aws:iam::1:saml-provider/corp"),
            ]))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(saml["Statement"][0]["Action"], "sts:AssumeRoleWithSAML");

        assert!(trust_policy(&form(&[("entity", "account"), ("account", "12")])).is_err());
        assert!(trust_policy(&form(&[
            ("entity", "custom"),
            ("trust_policy", "{not json")
        ]))
        .is_err());
        assert!(trust_policy(&form(&[("entity", "web"), ("provider", "")])).is_err());
    }

    #[test]
    fn the_list_names_trusted_entities() {
        let doc = json!(
            r#"{"Statement":[{"Principal":{"Service":["ec2.amazonaws.com"],"AWS":"arn:aws:iam::1:root"}}]}"#
        );
        let names = trusted_entities(Some(&doc));
        assert!(
            names.contains("Service: ec2.amazonaws.com")
                && names.contains("AWS: arn:aws:iam::1:root"),
            "{names}"
        );
    }
}
