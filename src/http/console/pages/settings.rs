//! Identity providers (OpenID Connect and SAML), Account settings (the password policy and
//! the account alias), and Event history (the audit trail: every change, and every refused
//! or failed call and sign-in, filtered by actor, action, outcome and time).

use axum::response::Response;
use serde_json::{json, Value};

use super::super::html::{cell, esc, Html};
use super::super::{Ctx, Posted, Query};
use super::{alert, button_form, day, items, text};
use crate::control_plane::AdminError;
use crate::policy::Timestamp;

pub(in crate::http::console) async fn providers(ctx: Ctx) -> Response {
    let mut body = Html::new();
    body.heading("Identity providers");
    match ctx.call("ListOpenIDConnectProviders", json!({})).await {
        Ok(list) => {
            let mut rows = Vec::new();
            for p in items(&list, "OpenIDConnectProviderList") {
                let arn = text(p, "Arn");
                let detail = ctx
                    .call(
                        "GetOpenIDConnectProvider",
                        json!({"OpenIDConnectProviderArn": arn}),
                    )
                    .await
                    .unwrap_or_default();
                let audiences: Vec<&str> = items(&detail, "ClientIDList")
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                rows.push(vec![
                    cell(text(&detail, "Url")),
                    cell("OpenID Connect"),
                    cell(&audiences.join(", ")),
                    cell(day(text(&detail, "CreateDate"))),
                    button_form(
                        &ctx,
                        "/console/providers",
                        &[("op", "delete-oidc"), ("arn", arn)],
                        "Delete",
                    ),
                ]);
            }
            if let Ok(saml) = ctx.call("ListSAMLProviders", json!({})).await {
                for p in items(&saml, "SAMLProviderList") {
                    let arn = text(p, "Arn");
                    rows.push(vec![
                        cell(arn.split_once(":saml-provider/").map_or(arn, |(_, n)| n)),
                        cell("SAML"),
                        cell(""),
                        cell(day(text(p, "CreateDate"))),
                        button_form(
                            &ctx,
                            "/console/providers",
                            &[("op", "delete-saml"), ("arn", arn)],
                            "Delete",
                        ),
                    ]);
                }
            }
            body.table(
                "Identity providers",
                &["Provider", "Type", "Audiences", "Created", ""],
                &rows,
            );
        }
        Err(error) => alert(&mut body, &error),
    }
    body.raw("<h2>Add an OpenID Connect provider</h2>\n");
    ctx.form_open(&mut body, "/console/providers");
    body.hidden("op", "add-oidc")
        .required("Provider URL", "url", "")
        .required("Audience", "audience", "")
        .input(
            "Thumbprint (optional, 40 hex digits)",
            "thumbprint",
            "",
            "text",
        )
        .button("Add provider", None)
        .raw("</form>\n<h2>Add a SAML provider</h2>\n");
    ctx.form_open(&mut body, "/console/providers");
    body.hidden("op", "add-saml")
        .required("Provider name", "name", "")
        .textarea("Metadata document", "metadata", "", "saml-metadata")
        .button("Add SAML provider", None)
        .raw("</form>\n");
    ctx.page("Identity providers", "/console/providers", body)
}

pub(in crate::http::console) async fn providers_act(ctx: Ctx, Posted(form): Posted) -> Response {
    let outcome: Result<String, AdminError> = match form.get("op") {
        "add-oidc" => {
            let mut params =
                json!({"Url": form.get("url"), "ClientIDList": [form.get("audience")]});
            if !form.get("thumbprint").is_empty() {
                super::set(
                    &mut params,
                    "ThumbprintList",
                    json!([form.get("thumbprint")]),
                );
            }
            ctx.call("CreateOpenIDConnectProvider", params)
                .await
                .map(|_| "The provider was added.".into())
        }
        "add-saml" => ctx
            .call(
                "CreateSAMLProvider",
                json!({"Name": form.get("name"), "SAMLMetadataDocument": form.raw("metadata")}),
            )
            .await
            .map(|_| "The SAML provider was added.".into()),
        "delete-oidc" => ctx
            .call(
                "DeleteOpenIDConnectProvider",
                json!({"OpenIDConnectProviderArn": form.get("arn")}),
            )
            .await
            .map(|_| "The provider was deleted.".into()),
        "delete-saml" => ctx
            .call(
                "DeleteSAMLProvider",
                json!({"SAMLProviderArn": form.get("arn")}),
            )
            .await
            .map(|_| "The SAML provider was deleted.".into()),
        _ => return super::unknown_action(),
    };
    ctx.done("/console/providers", outcome)
}

/// The password policy's fields: (API member, label, kind).
const POLICY_FIELDS: &[(&str, &str, &str)] = &[
    ("MinimumPasswordLength", "Minimum password length", "number"),
    (
        "RequireUppercaseCharacters",
        "Require at least one uppercase letter",
        "bool",
    ),
    (
        "RequireLowercaseCharacters",
        "Require at least one lowercase letter",
        "bool",
    ),
    ("RequireNumbers", "Require at least one number", "bool"),
    (
        "RequireSymbols",
        "Require at least one non-alphanumeric character",
        "bool",
    ),
    (
        "AllowUsersToChangePassword",
        "Allow users to change their own password",
        "bool",
    ),
    (
        "MaxPasswordAge",
        "Password expiration (days, empty for never)",
        "number",
    ),
    (
        "PasswordReusePrevention",
        "Prevent reuse of this many previous passwords (empty for none)",
        "number",
    ),
    (
        "HardExpiry",
        "Password expiration requires administrator reset",
        "bool",
    ),
];

pub(in crate::http::console) async fn account(ctx: Ctx) -> Response {
    let mut body = Html::new();
    body.heading("Account settings").fmt(format_args!(
        "<dl class=\"summary\"><dt>Account ID</dt><dd><code>{}</code></dd></dl>\n",
        esc(&ctx.session().account_id)
    ));
    body.raw("<h2>Password policy</h2>\n");
    let policy = match ctx.call("GetAccountPasswordPolicy", json!({})).await {
        Ok(p) => p.get("PasswordPolicy").cloned().unwrap_or_default(),
        Err(AdminError::Directory(crate::directory::DirectoryError::NoSuchEntity(_))) => {
            body.raw("<p>This account uses the default password policy.</p>\n");
            Value::Null
        }
        Err(error) => {
            alert(&mut body, &error);
            Value::Null
        }
    };
    ctx.form_open(&mut body, "/console/settings");
    body.hidden("op", "password-policy");
    for (member, label, kind) in POLICY_FIELDS {
        if *kind == "bool" {
            let on = policy
                .get(*member)
                .and_then(Value::as_bool)
                .unwrap_or(false);
            body.raw("<p>")
                .checkbox(label, member, "on", on)
                .raw("</p>\n");
        } else {
            let value = policy
                .get(*member)
                .and_then(Value::as_i64)
                .map(|n| n.to_string())
                .unwrap_or_default();
            body.input(label, member, &value, "number");
        }
    }
    body.button("Save password policy", None).raw("</form>\n");
    if !policy.is_null() {
        body.raw(&button_form(
            &ctx,
            "/console/settings",
            &[("op", "delete-policy")],
            "Use the default password policy",
        ));
    }
    body.raw("<h2>Account alias</h2>\n");
    match ctx.call("ListAccountAliases", json!({})).await {
        Ok(aliases) => {
            let current: Vec<&str> = items(&aliases, "AccountAliases")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            match current.first() {
                Some(alias) => {
                    body.fmt(format_args!("<p>Alias: <code>{}</code> (users may sign in with it instead of the account ID).</p>\n", esc(alias)));
                    body.raw(&button_form(
                        &ctx,
                        "/console/settings",
                        &[("op", "delete-alias"), ("alias", alias)],
                        "Delete alias",
                    ));
                }
                None => {
                    body.raw("<p>No alias.</p>\n");
                    ctx.form_open(&mut body, "/console/settings");
                    body.hidden("op", "create-alias")
                        .required("Account alias", "alias", "")
                        .button("Create alias", None)
                        .raw("</form>\n");
                }
            }
        }
        Err(error) => alert(&mut body, &error),
    }
    ctx.page("Account settings", "/console/settings", body)
}

pub(in crate::http::console) async fn account_act(ctx: Ctx, Posted(form): Posted) -> Response {
    let outcome: Result<String, AdminError> = match form.get("op") {
        "password-policy" => {
            let mut params = serde_json::Map::new();
            for (member, _, kind) in POLICY_FIELDS {
                if *kind == "bool" {
                    params.insert((*member).into(), json!(form.has(member)));
                } else if let Ok(n) = form.get(member).parse::<u32>() {
                    params.insert((*member).into(), json!(n));
                }
            }
            ctx.call("UpdateAccountPasswordPolicy", Value::Object(params))
                .await
                .map(|_| "The password policy was saved.".into())
        }
        "delete-policy" => ctx
            .call("DeleteAccountPasswordPolicy", json!({}))
            .await
            .map(|_| "The account uses the default password policy.".into()),
        "create-alias" => ctx
            .call(
                "CreateAccountAlias",
                json!({"AccountAlias": form.get("alias")}),
            )
            .await
            .map(|_| "The alias was created.".into()),
        "delete-alias" => ctx
            .call(
                "DeleteAccountAlias",
                json!({"AccountAlias": form.get("alias")}),
            )
            .await
            .map(|_| "The alias was deleted.".into()),
        _ => return super::unknown_action(),
    };
    ctx.done("/console/settings", outcome)
}

/// The newest events of each kind the page filters.
const TRAIL_LIMIT: usize = 20_000;
/// The most rows it shows.
const SHOWN: usize = 200;

/// One row of the event history.
struct Row {
    at: i64,
    actor: String,
    action: String,
    outcome: String,
    detail: String,
    source: String,
}

pub(in crate::http::console) async fn events(ctx: Ctx, Query(query): Query) -> Response {
    let q = &query;
    let mut body = Html::new();
    body.heading("Event history")
        .raw("<form method=\"get\" action=\"/console/events\" class=\"filters\" role=\"search\">\n")
        .input("Actor", "actor", q.get("actor"), "text")
        .input("Action", "action", q.get("action"), "text")
        .select(
            "Outcome",
            "outcome",
            &[
                (String::new(), "Any outcome".into()),
                ("Allowed".into(), "Allowed".into()),
                ("AccessDenied".into(), "Access denied".into()),
                ("AuthFailure".into(), "Failed authentication".into()),
                ("Throttled".into(), "Throttled".into()),
                ("Failed".into(), "Failed".into()),
            ],
            q.get("outcome"),
        )
        .input("From (UTC)", "from", q.get("from"), "datetime-local")
        .input("To (UTC)", "to", q.get("to"), "datetime-local")
        .button("Apply", None)
        .raw("</form>\n");
    let (changes, events) = match ctx.trail(TRAIL_LIMIT).await {
        Ok(trail) => trail,
        Err(error) => {
            alert(&mut body, &error);
            return ctx.page("Event history", "/console/events", body);
        }
    };
    let mut rows: Vec<Row> = changes
        .into_iter()
        .map(|c| Row {
            at: c.at,
            actor: c.actor,
            detail: resource_of(&c.parameters),
            action: c.action,
            outcome: "Allowed".into(),
            source: String::new(),
        })
        .chain(events.into_iter().map(|e| Row {
            at: e.at,
            actor: e.actor,
            action: e.action,
            outcome: e.outcome,
            detail: e.detail,
            source: e.source,
        }))
        .collect();
    let time = |name: &str| -> Option<i64> {
        let v = q.get(name);
        if v.is_empty() {
            return None;
        }
        let v = if v.len() == 16 {
            format!("{v}:00Z")
        } else {
            format!("{v}Z")
        };
        crate::policy::parse_policy_date(&v).map(|t| t.epoch_seconds())
    };
    let (from, to) = (time("from"), time("to"));
    let (actor, action, outcome) = (
        q.get("actor").to_lowercase(),
        q.get("action").to_lowercase(),
        q.get("outcome"),
    );
    rows.retain(|r| {
        (actor.is_empty() || r.actor.to_lowercase().contains(&actor))
            && (action.is_empty() || r.action.to_lowercase().contains(&action))
            && (outcome.is_empty() || r.outcome == outcome)
            && from.is_none_or(|f| r.at >= f)
            && to.is_none_or(|t| r.at <= t)
    });
    rows.sort_by_key(|r| std::cmp::Reverse(r.at));
    let total = rows.len();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .take(SHOWN)
        .map(|r| {
            vec![
                cell(&Timestamp::from_epoch_seconds(r.at).to_string()),
                cell(&r.actor),
                cell(&r.action),
                cell(&r.outcome),
                cell(&r.detail),
                cell(&r.source),
            ]
        })
        .collect();
    body.fmt(format_args!(
        "<p>{total} matching event(s); the newest {} shown.</p>\n",
        total.min(SHOWN)
    ));
    body.table(
        "Events",
        &["Time", "Actor", "Action", "Outcome", "Detail", "Source"],
        &cells,
    );
    ctx.page("Event history", "/console/events", body)
}

/// What a change acted on, from its parameters: the entity names it names.
fn resource_of(parameters: &Value) -> String {
    let Some(map) = parameters.as_object() else {
        return String::new();
    };
    map.iter()
        .filter(|(k, _)| k.ends_with("Name") || k.ends_with("Arn"))
        .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(" ")
}
