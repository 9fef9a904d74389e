//! Create policy: a visual editor and a JSON editor over one document.
//!
//! The document (a hidden field in visual mode, the text area in JSON mode) is the only
//! state, so switching between the editors loses nothing: the visual editor shows each
//! statement it can (effect, actions, resources, conditions) and keeps the ones it cannot
//! (`NotAction`, `NotResource`, a `Principal`) exactly as written. The visual editor builds
//! a statement from the action catalogue the project ships: a service, its actions grouped
//! by access level, the ARNs of its resource types (typed, or built from the format's
//! variables), and request conditions. The JSON editor validates as one types
//! (`assets/console.js` posts to `/console/api/validate`, which runs Access Analyzer's
//! `ValidatePolicy` as the user); the review step validates again on the server, and an
//! error finding stops the policy from being created.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::super::html::{esc, Html};
use super::super::{Console, Ctx, Form, Posted};
use super::{alert, tag_fields, tags_of, text};
use crate::policy::catalog::{AccessLevel, ServiceEntry};

/// The document a new policy starts from.
const EMPTY: &str = "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": []\n}";

/// The condition operators the visual editor offers.
const OPERATORS: &[&str] = &[
    "StringEquals",
    "StringNotEquals",
    "StringLike",
    "StringNotLike",
    "StringEqualsIgnoreCase",
    "ArnLike",
    "ArnNotLike",
    "ArnEquals",
    "NumericEquals",
    "NumericLessThan",
    "NumericGreaterThan",
    "DateLessThan",
    "DateGreaterThan",
    "Bool",
    "IpAddress",
    "NotIpAddress",
    "Null",
];

/// Global condition keys offered as suggestions (any key may be typed).
const GLOBAL_KEYS: &[&str] = &[
    "aws:SourceIp",
    "aws:MultiFactorAuthPresent",
    "aws:SecureTransport",
    "aws:CurrentTime",
    "aws:RequestedRegion",
    "aws:PrincipalTag/${TagKey}",
    "aws:ResourceTag/${TagKey}",
    "aws:RequestTag/${TagKey}",
    "aws:PrincipalArn",
    "aws:username",
    "aws:userid",
];

/// Condition rows the visual editor offers.
const CONDITION_ROWS: usize = 2;

const LEVELS: &[(AccessLevel, &str)] = &[
    (AccessLevel::List, "List"),
    (AccessLevel::Read, "Read"),
    (AccessLevel::Write, "Write"),
    (AccessLevel::PermissionsManagement, "Permissions management"),
    (AccessLevel::Tagging, "Tagging"),
];

pub(in crate::http::console) async fn start(ctx: Ctx) -> Response {
    let form = Form(vec![("document".into(), EMPTY.into())]);
    editor_page(&ctx, "visual", &form, EMPTY, None)
}

pub(in crate::http::console) async fn step(ctx: Ctx, Posted(form): Posted) -> Response {
    // The document as the editor the form came from holds it.
    let mut document = if form.get("mode") == "json" {
        form.raw("json").to_owned()
    } else {
        form.raw("document").to_owned()
    };
    let go = form.get("go");
    if form.get("mode") == "visual" {
        if let Some(index) = go
            .strip_prefix("remove-")
            .and_then(|i| i.parse::<usize>().ok())
        {
            document = match remove_statement(&document, index) {
                Ok(d) => d,
                Err(e) => return editor_page(&ctx, "visual", &form, &document, Some(&e)),
            };
            return editor_page(&ctx, "visual", &cleared(&form), &document, None);
        }
        // A statement being built is added before the editor is left or a new one begun.
        if matches!(go, "add" | "json" | "next") && !form.all("action").is_empty() {
            document = match add_statement(&document, &form, &ctx.session().account_id) {
                Ok(d) => d,
                Err(e) => return editor_page(&ctx, "visual", &form, &document, Some(&e)),
            };
            if go == "add" {
                return editor_page(&ctx, "visual", &cleared(&form), &document, None);
            }
        } else if go == "add" {
            return editor_page(
                &ctx,
                "visual",
                &form,
                &document,
                Some("Choose at least one action."),
            );
        }
    }
    match go {
        "json" => editor_page(&ctx, "json", &form, &document, None),
        "visual" | "service" => {
            if serde_json::from_str::<Value>(&document).is_err() {
                return editor_page(&ctx, "json", &form, &document, Some("The document is not valid JSON, so the visual editor cannot show it. Fix it here first."));
            }
            editor_page(&ctx, "visual", &form, &document, None)
        }
        "next" => review(&ctx, &form, &document, None).await,
        "create" => create(&ctx, &form, &document).await,
        _ => editor_page(
            &ctx,
            if form.get("mode") == "json" {
                "json"
            } else {
                "visual"
            },
            &form,
            &document,
            None,
        ),
    }
}

/// The form without the statement being built (after it was added).
fn cleared(form: &Form) -> Form {
    Form(
        form.0
            .iter()
            .filter(|(n, _)| {
                !(n == "action"
                    || n == "all_actions"
                    || n.starts_with("arn_")
                    || n.starts_with("var_")
                    || n.starts_with("cond_")
                    || n == "resources")
            })
            .cloned()
            .collect(),
    )
}

fn statements(document: &Value) -> Vec<Value> {
    match document.get("Statement") {
        Some(Value::Array(s)) => s.clone(),
        Some(s @ Value::Object(_)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn with_statements(mut document: Value, statements: Vec<Value>) -> Result<String, String> {
    match document.as_object_mut() {
        Some(map) => {
            map.entry("Version").or_insert_with(|| json!("2012-10-17"));
            map.insert("Statement".into(), Value::Array(statements));
        }
        None => return Err("The document is not a JSON object.".into()),
    }
    serde_json::to_string_pretty(&document).map_err(|e| e.to_string())
}

fn remove_statement(document: &str, index: usize) -> Result<String, String> {
    let parsed: Value =
        serde_json::from_str(document).map_err(|e| format!("The document is not JSON: {e}"))?;
    let mut all = statements(&parsed);
    if index < all.len() {
        all.remove(index);
    }
    with_statements(parsed, all)
}

/// The statement the visual editor's fields describe, appended to `document`.
pub(in crate::http::console) fn add_statement(
    document: &str,
    form: &Form,
    account: &str,
) -> Result<String, String> {
    let parsed: Value =
        serde_json::from_str(document).map_err(|e| format!("The document is not JSON: {e}"))?;
    let service = form.get("service");
    let actions = form.all("action");
    let action = if form.has("all_actions") {
        json!(format!("{service}:*"))
    } else if actions.len() == 1 {
        json!(actions.first().copied().unwrap_or_default())
    } else {
        json!(actions)
    };
    let resource = if form.get("resources") == "specific" {
        let arns = resource_arns(form, service, account);
        if arns.is_empty() {
            return Err(
                "Specific resources need at least one ARN (or choose All resources).".into(),
            );
        }
        json!(arns)
    } else {
        json!("*")
    };
    let mut statement = json!({"Effect": if form.get("effect") == "Deny" { "Deny" } else { "Allow" }, "Action": action, "Resource": resource});
    let mut conditions = Map::new();
    for i in 1..=CONDITION_ROWS {
        let key = form.get(&format!("cond_key_{i}"));
        if key.is_empty() {
            continue;
        }
        let operator = form.get(&format!("cond_op_{i}"));
        if !OPERATORS.contains(&operator) {
            return Err(format!("Choose a condition operator for {key}."));
        }
        let values: Vec<&str> = form
            .get(&format!("cond_value_{i}"))
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect();
        if values.is_empty() {
            return Err(format!("Give a value for the condition on {key}."));
        }
        let value = if values.len() == 1 {
            json!(values.first())
        } else {
            json!(values)
        };
        let block = conditions
            .entry(operator.to_owned())
            .or_insert_with(|| json!({}));
        if let Some(block) = block.as_object_mut() {
            block.insert(key.to_owned(), value);
        }
    }
    if !conditions.is_empty() {
        super::set(&mut statement, "Condition", Value::Object(conditions));
    }
    let mut all = statements(&parsed);
    all.push(statement);
    with_statements(parsed, all)
}

/// The ARNs of the resource fields: each type's typed ARN, or the ARN built from its format's
/// variables (a variable left empty becomes `*`).
fn resource_arns(form: &Form, service: &str, account: &str) -> Vec<String> {
    let mut arns = Vec::new();
    let Some(entry) = crate::policy::catalog::catalog()
        .ok()
        .and_then(|c| c.service(service))
    else {
        return form
            .0
            .iter()
            .filter(|(n, v)| n.starts_with("arn_") && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_owned())
            .collect();
    };
    for rt in entry.resource_types() {
        let typed = form.get(&format!("arn_{}", rt.name()));
        if !typed.is_empty() {
            arns.push(typed.to_owned());
            continue;
        }
        let vars = variables(rt.arn_format());
        let filled: Vec<(&str, &str)> = vars
            .iter()
            .map(|v| (*v, form.get(&format!("var_{}_{v}", rt.name()))))
            .collect();
        if filled.iter().all(|(_, value)| value.is_empty()) {
            continue;
        }
        let mut arn = rt.arn_format().to_owned();
        for (var, value) in filled {
            let value = match (var, value) {
                ("Partition", "") => "aws",
                ("Account", "") => account,
                (_, "") => "*",
                (_, v) => v,
            };
            arn = arn.replace(&format!("${{{var}}}"), value);
        }
        arns.push(arn);
    }
    arns
}

/// The `${Var}` names of an ARN format, in order, once each.
fn variables(format: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = format;
    while let Some(start) = rest.find("${") {
        let after = rest.get(start + 2..).unwrap_or_default();
        let Some(end) = after.find('}') else { break };
        let name = after.get(..end).unwrap_or_default();
        if !out.contains(&name) {
            out.push(name);
        }
        rest = after.get(end + 1..).unwrap_or_default();
    }
    out
}

fn editor_page(
    ctx: &Ctx,
    mode: &str,
    form: &Form,
    document: &str,
    problem: Option<&str>,
) -> Response {
    let mut body = Html::new();
    body.heading("Create policy")
        .raw("<p>A policy is one or more statements, each allowing or denying actions on resources under conditions.</p>\n");
    if let Some(problem) = problem {
        body.fmt(format_args!(
            "<div role=\"alert\" class=\"error\">{}</div>\n",
            esc(problem)
        ));
    }
    ctx.form_open(&mut body, "/console/policies/new");
    body.hidden("mode", mode);
    carry_review_fields(&mut body, form);
    body.raw("<p class=\"editor-switch\">")
        .button("Visual", Some(("go", "visual")))
        .button("JSON", Some(("go", "json")))
        .raw("</p>\n");
    if mode == "json" {
        body.textarea("Policy document", "json", document, "policy-json")
            .raw("<div id=\"findings\" aria-live=\"polite\"></div>\n");
    } else {
        body.hidden("document", document);
        visual(&mut body, form, document, &ctx.session().account_id);
    }
    body.raw("<p class=\"wizard-buttons\">")
        .button("Next", Some(("go", "next")))
        .raw("</p></form>\n");
    ctx.page("Create policy", "/console/policies", body)
}

/// The review step's fields, kept while the document is edited.
fn carry_review_fields(body: &mut Html, form: &Form) {
    for (name, value) in &form.0 {
        if name == "name" || name == "description" || name.starts_with("tag_") {
            body.hidden(name, value);
        }
    }
}

fn visual(body: &mut Html, form: &Form, document: &str, account: &str) {
    let parsed: Value = serde_json::from_str(document).unwrap_or_default();
    let all = statements(&parsed);
    body.raw("<h2>Statements</h2>\n");
    if all.is_empty() {
        body.raw("<p>No statements yet: build one below and choose Add statement.</p>\n");
    }
    for (i, s) in all.iter().enumerate() {
        let shown = ["Sid", "Effect", "Action", "Resource", "Condition"];
        let visual = s
            .as_object()
            .is_some_and(|m| m.keys().all(|k| shown.contains(&k.as_str())));
        body.fmt(format_args!(
            "<div class=\"statement\"><h3>Statement {}: {}</h3>",
            i + 1,
            esc(text(s, "Effect"))
        ));
        if visual {
            for key in ["Action", "Resource", "Condition"] {
                if let Some(v) = s.get(key) {
                    let shown = match v {
                        Value::String(s) => s.clone(),
                        Value::Array(a) => a
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", "),
                        v => v.to_string(),
                    };
                    body.fmt(format_args!(
                        "<p><strong>{key}</strong>: {}</p>",
                        esc(&shown)
                    ));
                }
            }
        } else {
            body.raw("<p>The visual editor cannot show this statement; it is kept exactly as written (edit it in JSON).</p>")
                .fmt(format_args!("<pre class=\"policy\">{}</pre>", esc(&serde_json::to_string_pretty(s).unwrap_or_default())));
        }
        body.button("Remove statement", Some(("go", &format!("remove-{i}"))))
            .raw("</div>\n");
    }
    body.raw("<h2>Build a statement</h2>\n<fieldset><legend>Effect</legend>")
        .radio("Allow", "effect", "Allow", form.get("effect") != "Deny")
        .radio("Deny", "effect", "Deny", form.get("effect") == "Deny")
        .raw("</fieldset>\n");
    let Ok(catalog) = crate::policy::catalog::catalog() else {
        body.raw("<p role=\"alert\" class=\"error\">The action catalogue did not load; use the JSON editor.</p>\n");
        return;
    };
    let mut services: Vec<(String, String)> = catalog
        .services()
        .map(|s| {
            (
                s.prefix().to_owned(),
                format!("{} ({})", s.name(), s.prefix()),
            )
        })
        .collect();
    services.sort();
    services.insert(0, (String::new(), "Choose a service".into()));
    body.select("Service", "service", &services, form.get("service"))
        .button("Choose service", Some(("go", "service")));
    if let Some(service) = catalog.service(form.get("service")) {
        actions(body, service, form);
        resources(body, service, form, account);
    }
    conditions(body, form);
    body.raw("<p>")
        .button("Add statement", Some(("go", "add")))
        .raw("</p>\n");
}

fn actions(body: &mut Html, service: &ServiceEntry, form: &Form) {
    let chosen = form.all("action");
    body.raw("<fieldset class=\"actions-list\"><legend>Actions allowed</legend>\n")
        .checkbox(
            &format!("All {} actions ({}:*)", service.name(), service.prefix()),
            "all_actions",
            "on",
            form.has("all_actions"),
        );
    for (level, label) in LEVELS {
        let names: Vec<&str> = service
            .actions()
            .filter(|a| a.access_level() == *level)
            .map(|a| a.name())
            .collect();
        if names.is_empty() {
            continue;
        }
        body.fmt(format_args!(
            "<details open><summary>{label} ({})</summary>\n<div class=\"grid\">",
            names.len()
        ));
        for name in names {
            let value = format!("{}:{name}", service.prefix());
            body.checkbox(name, "action", &value, chosen.contains(&value.as_str()));
        }
        body.raw("</div></details>\n");
    }
    body.raw("</fieldset>\n");
}

fn resources(body: &mut Html, service: &ServiceEntry, form: &Form, account: &str) {
    let specific = form.get("resources") == "specific";
    body.raw("<fieldset><legend>Resources</legend>\n")
        .radio("All resources", "resources", "all", !specific)
        .radio("Specific resources", "resources", "specific", specific);
    for rt in service.resource_types() {
        let name = rt.name();
        body.fmt(format_args!(
            "<div class=\"arn-builder\"><p><label>ARN for {} <input type=\"text\" name=\"arn_{}\" value=\"{}\" placeholder=\"{}\" size=\"60\"></label></p>\n<p class=\"hint\">Or build it:",
            esc(name),
            esc(name),
            esc(form.get(&format!("arn_{name}"))),
            esc(rt.arn_format())
        ));
        for var in variables(rt.arn_format())
            .into_iter()
            .filter(|v| *v != "Partition")
        {
            let placeholder = if var == "Account" { account } else { "*" };
            body.fmt(format_args!(
                " <label>{} <input type=\"text\" name=\"var_{}_{}\" value=\"{}\" placeholder=\"{}\" size=\"14\"></label>",
                esc(var),
                esc(name),
                esc(var),
                esc(form.get(&format!("var_{name}_{var}"))),
                esc(placeholder)
            ));
        }
        body.raw("</p></div>\n");
    }
    body.raw("</fieldset>\n");
}

fn conditions(body: &mut Html, form: &Form) {
    body.raw("<fieldset><legend>Request conditions (optional)</legend>\n<datalist id=\"condition-keys\">");
    for key in GLOBAL_KEYS {
        body.fmt(format_args!("<option value=\"{}\"></option>", esc(key)));
    }
    body.raw("</datalist>\n");
    let operators: Vec<(String, String)> = OPERATORS
        .iter()
        .map(|o| ((*o).to_owned(), (*o).to_owned()))
        .collect();
    for i in 1..=CONDITION_ROWS {
        body.fmt(format_args!(
            "<div class=\"condition\"><label>Condition key {i} <input type=\"text\" name=\"cond_key_{i}\" list=\"condition-keys\" value=\"{}\"></label>",
            esc(form.get(&format!("cond_key_{i}")))
        ));
        body.select(
            &format!("Operator {i}"),
            &format!("cond_op_{i}"),
            &operators,
            form.get(&format!("cond_op_{i}")),
        );
        body.fmt(format_args!(
            "<label>Value {i} <input type=\"text\" name=\"cond_value_{i}\" value=\"{}\" placeholder=\"comma-separated\"></label></div>\n",
            esc(form.get(&format!("cond_value_{i}")))
        ));
    }
    body.raw("</fieldset>\n");
}

/// The findings of `ValidatePolicy` for `document` as the user.
async fn findings(
    ctx: &Ctx,
    document: &str,
) -> Result<Vec<Value>, crate::control_plane::AdminError> {
    let result = ctx
        .call(
            "ValidatePolicy",
            json!({"policyDocument": document, "policyType": "IDENTITY_POLICY"}),
        )
        .await?;
    Ok(super::items(&result, "findings").to_vec())
}

fn findings_list(body: &mut Html, findings: &[Value]) {
    if findings.is_empty() {
        body.raw("<p role=\"status\" class=\"ok\">No findings: the policy is valid.</p>\n");
        return;
    }
    body.raw("<ul class=\"findings\">\n");
    for f in findings {
        body.fmt(format_args!(
            "<li class=\"{}\"><strong>{}</strong> {}: {}</li>\n",
            esc(&text(f, "findingType").to_ascii_lowercase()),
            esc(text(f, "findingType")),
            esc(text(f, "issueCode")),
            esc(text(f, "findingDetails"))
        ));
    }
    body.raw("</ul>\n");
}

async fn review(ctx: &Ctx, form: &Form, document: &str, problem: Option<&str>) -> Response {
    let mut body = Html::new();
    body.heading("Review and create");
    if let Some(problem) = problem {
        body.fmt(format_args!(
            "<div role=\"alert\" class=\"error\">{}</div>\n",
            esc(problem)
        ));
    }
    let found = match findings(ctx, document).await {
        Ok(f) => f,
        Err(error) => {
            alert(&mut body, &error);
            Vec::new()
        }
    };
    findings_list(&mut body, &found);
    let errors = found.iter().any(|f| text(f, "findingType") == "ERROR");
    ctx.form_open(&mut body, "/console/policies/new");
    body.hidden("mode", "json").hidden("json", document);
    body.required("Policy name", "name", form.get("name"))
        .input(
            "Description",
            "description",
            form.raw("description"),
            "text",
        );
    tag_fields(&mut body, form);
    body.raw("<h2>Policy document</h2>\n")
        .fmt(format_args!(
            "<pre class=\"policy\">{}</pre>\n",
            esc(document)
        ))
        .raw("<p class=\"wizard-buttons\">")
        .button("Previous", Some(("go", "json")));
    if errors {
        body.raw("<span>Fix the errors above before creating the policy.</span>");
    } else {
        body.button("Create policy", Some(("go", "create")));
    }
    body.raw("</p></form>\n");
    ctx.page("Review policy", "/console/policies", body)
}

async fn create(ctx: &Ctx, form: &Form, document: &str) -> Response {
    let mut params = json!({"PolicyName": form.get("name"), "PolicyDocument": document});
    if !form.raw("description").trim().is_empty() {
        super::set(
            &mut params,
            "Description",
            json!(form.raw("description").trim()),
        );
    }
    let tags = tags_of(form);
    if !tags.is_empty() {
        super::set(&mut params, "Tags", Value::Array(tags));
    }
    match ctx.call("CreatePolicy", params).await {
        Ok(created) => {
            let arn = text(super::member(&created, "Policy"), "Arn").to_owned();
            ctx.done(
                &format!(
                    "/console/policies/view?arn={}",
                    super::super::html::seg(&arn)
                ),
                Ok(format!("Policy {} was created.", form.get("name"))),
            )
        }
        Err(error) => review(ctx, form, document, Some(&super::super::error_text(&error))).await,
    }
}

/// The JSON editor's live validation: `{"document": "..."}` in, `ValidatePolicy`'s findings
/// out. A JSON request from the console's page, with the session's CSRF token in
/// `X-CSRF-Token` (it changes nothing, but it runs as the user).
pub(in crate::http::console) async fn validate(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(ctx) = console.signed_in(&parts) else {
        return (StatusCode::UNAUTHORIZED, "sign in first\n").into_response();
    };
    let token = parts
        .headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !ctx.session().csrf_matches(token) {
        return (
            StatusCode::FORBIDDEN,
            "the request's security token is missing or wrong\n",
        )
            .into_response();
    }
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "the document is too large\n").into_response();
    };
    let Some(document) = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v.get("document").and_then(Value::as_str).map(str::to_owned))
    else {
        return (
            StatusCode::BAD_REQUEST,
            "expected {\"document\": \"...\"}\n",
        )
            .into_response();
    };
    let out = match findings(&ctx, &document).await {
        Ok(found) => json!({"findings": found}),
        Err(error) => json!({"error": super::super::error_text(&error)}),
    };
    (
        [(header::CONTENT_TYPE, "application/json")],
        out.to_string(),
    )
        .into_response()
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
    fn the_visual_editor_builds_statements_from_its_fields() {
        let f = form(&[
            ("service", "s3"),
            ("effect", "Allow"),
            ("action", "s3:GetObject"),
            ("action", "s3:PutObject"),
            ("resources", "specific"),
            ("var_object_BucketName", "reports"),
            ("cond_key_1", "aws:SourceIp"),
            ("cond_op_1", "IpAddress"),
            ("cond_value_1", "10.0.0.0/8, 192.168.0.0/16"),
        ]);
        let document: Value =
            serde_json::from_str(&add_statement(EMPTY, &f, "111122223333").unwrap()).unwrap();
        let s = &document["Statement"][0];
        assert_eq!(s["Action"], json!(["s3:GetObject", "s3:PutObject"]));
        assert_eq!(s["Resource"], json!(["arn:aws:s3:::reports/*"]), "{s}");
        assert_eq!(
            s["Condition"]["IpAddress"]["aws:SourceIp"],
            json!(["10.0.0.0/8", "192.168.0.0/16"])
        );
    }

    #[test]
    fn statements_the_visual_editor_cannot_show_survive_a_round_trip() {
        let original = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","NotAction":"iam:*","NotResource":"arn:aws:s3:::x"}]}"#;
        let f = form(&[
            ("service", "s3"),
            ("action", "s3:ListBucket"),
            ("resources", "all"),
        ]);
        let document: Value =
            serde_json::from_str(&add_statement(original, &f, "1").unwrap()).unwrap();
        assert_eq!(document["Statement"][0]["NotAction"], "iam:*");
        assert_eq!(document["Statement"][1]["Resource"], "*");
        let removed: Value =
            serde_json::from_str(&remove_statement(&document.to_string(), 1).unwrap()).unwrap();
        assert_eq!(removed["Statement"].as_array().unwrap().len(), 1);
        assert_eq!(removed["Statement"][0]["NotResource"], "arn:aws:s3:::x");
    }

    #[test]
    fn bad_visual_input_is_refused_with_a_reason() {
        let specific_without_arns = form(&[
            ("service", "s3"),
            ("action", "s3:GetObject"),
            ("resources", "specific"),
        ]);
        assert!(add_statement(EMPTY, &specific_without_arns, "1").is_err());
        let bad_operator = form(&[
            ("service", "s3"),
            ("action", "s3:GetObject"),
            ("cond_key_1", "aws:SourceIp"),
            ("cond_op_1", "Evil"),
            ("cond_value_1", "x"),
        ]);
        assert!(add_statement(EMPTY, &bad_operator, "1").is_err());
        assert!(add_statement("not json", &specific_without_arns, "1").is_err());
    }

    #[test]
    fn arn_variables_are_read_in_order() {
        assert_eq!(
            variables("arn:${Partition}:s3:::${BucketName}/${ObjectName}"),
            ["Partition", "BucketName", "ObjectName"]
        );
        assert!(variables("arn:aws:s3:::x").is_empty());
    }
}
