//! The console's pages, one module per area of AWS's IAM console. Each handler decodes its
//! form, calls the admin API as the signed-in user ([`Ctx::call`]) and renders.

pub(super) mod editor;
pub(super) mod groups;
pub(super) mod home;
pub(super) mod policies;
pub(super) mod roles;
pub(super) mod settings;
pub(super) mod sign_in;
pub(super) mod users;

use serde_json::{json, Value};

use super::html::{cell, esc, Html};
use super::{Ctx, Form};
use crate::control_plane::AdminError;

/// Rows a list page shows.
pub(super) const PAGE_SIZE: usize = 50;
/// Tag rows a form offers.
pub(super) const TAG_ROWS: usize = 3;
/// The fields of those rows.
pub(super) const TAG_FIELDS: &[&str] = &[
    "tag_key_1",
    "tag_value_1",
    "tag_key_2",
    "tag_value_2",
    "tag_key_3",
    "tag_value_3",
];
/// The most items a search scans (ten pages of AWS's largest page).
const SCAN_LIMIT: usize = 50_000;

/// The array `key` of a result (empty when absent).
pub(super) fn items<'a>(result: &'a Value, key: &str) -> &'a [Value] {
    result
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Member `key` of an object (`null` when absent).
pub(super) fn member<'a>(value: &'a Value, key: &str) -> &'a Value {
    value.get(key).unwrap_or(&Value::Null)
}

/// Sets member `key` of an object (nothing for a value that is not one).
pub(super) fn set(object: &mut Value, key: &str, value: Value) {
    if let Some(map) = object.as_object_mut() {
        map.insert(key.to_owned(), value);
    }
}

/// The string `key` of an item (empty when absent).
pub(super) fn text<'a>(item: &'a Value, key: &str) -> &'a str {
    item.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The date part of an ISO 8601 time.
pub(super) fn day(time: &str) -> &str {
    time.split('T').next().unwrap_or(time)
}

/// One page of a listing action: `(items, next marker)`.
pub(super) async fn list_page(
    ctx: &Ctx,
    action: &str,
    mut parameters: Value,
    member: &str,
    marker: &str,
    max: usize,
) -> Result<(Vec<Value>, Option<String>), AdminError> {
    if let Some(map) = parameters.as_object_mut() {
        map.insert("MaxItems".into(), json!(max));
        if !marker.is_empty() {
            map.insert("Marker".into(), json!(marker));
        }
    }
    let result = ctx.call(action, parameters).await?;
    let next = result
        .get("IsTruncated")
        .and_then(Value::as_bool)
        .filter(|t| *t)
        .and_then(|_| result.get("Marker").and_then(Value::as_str))
        .map(str::to_owned);
    Ok((items(&result, member).to_vec(), next))
}

/// Every item of a listing, up to [`SCAN_LIMIT`].
pub(super) async fn list_all(
    ctx: &Ctx,
    action: &str,
    parameters: Value,
    member: &str,
) -> Result<Vec<Value>, AdminError> {
    let mut all = Vec::new();
    let mut marker = String::new();
    loop {
        let (mut page, next) =
            list_page(ctx, action, parameters.clone(), member, &marker, 1_000).await?;
        all.append(&mut page);
        match next {
            Some(next) if all.len() < SCAN_LIMIT => marker = next,
            _ => return Ok(all),
        }
    }
}

/// A list page's rows: with a search, the matches (by `key`, any case) from `skip`; without,
/// one page of the API's own pagination from `marker`. Returns the rows and the query string
/// of the next page.
pub(super) async fn searched(
    ctx: &Ctx,
    action: &str,
    parameters: Value,
    member: &str,
    key: &str,
    query: &Form,
) -> Result<(Vec<Value>, Option<String>), AdminError> {
    let search = query.get("q");
    if search.is_empty() {
        let (rows, next) = list_page(
            ctx,
            action,
            parameters,
            member,
            query.get("marker"),
            PAGE_SIZE,
        )
        .await?;
        return Ok((
            rows,
            next.map(|m| format!("marker={}", super::html::seg(&m))),
        ));
    }
    let needle = search.to_lowercase();
    let skip: usize = query.get("skip").parse().unwrap_or(0);
    let all = list_all(ctx, action, parameters, member).await?;
    let mut matches = all
        .into_iter()
        .filter(|item| text(item, key).to_lowercase().contains(&needle));
    let rows: Vec<Value> = matches.by_ref().skip(skip).take(PAGE_SIZE).collect();
    let next = matches.next().map(|_| {
        format!(
            "q={}&skip={}",
            super::html::seg(search),
            skip.saturating_add(PAGE_SIZE)
        )
    });
    Ok((rows, next))
}

/// The search box and the paging links of a list page.
pub(super) fn search_box(html: &mut Html, path: &str, label: &str, query: &Form) {
    html.fmt(format_args!(
        "<form method=\"get\" action=\"{path}\" class=\"search\" role=\"search\"><label>{} <input type=\"search\" name=\"q\" value=\"{}\"></label> <button type=\"submit\">Search</button></form>\n",
        esc(label),
        esc(query.get("q"))
    ));
}

/// "First page" / "Next page" links.
pub(super) fn pager(html: &mut Html, path: &str, query: &Form, next: Option<&str>) {
    html.raw("<p class=\"pager\">");
    if !query.get("marker").is_empty() || !query.get("skip").is_empty() {
        let first = if query.get("q").is_empty() {
            path.to_owned()
        } else {
            format!("{path}?q={}", super::html::seg(query.get("q")))
        };
        html.link(&first, "First page").raw(" ");
    }
    if let Some(next) = next {
        html.link(&format!("{path}?{next}"), "Next page");
    }
    html.raw("</p>\n");
}

/// A policy one can attach: ARN, name, whether AWS manages it, description.
#[derive(Debug, Clone)]
pub(super) struct PolicyChoice {
    pub(super) arn: String,
    pub(super) name: String,
    pub(super) aws: bool,
}

/// Every policy of the account (AWS managed and customer managed).
pub(super) async fn policy_choices(ctx: &Ctx) -> Result<Vec<PolicyChoice>, AdminError> {
    let all = list_all(ctx, "ListPolicies", json!({"Scope": "All"}), "Policies").await?;
    Ok(all
        .iter()
        .map(|p| {
            let arn = text(p, "Arn").to_owned();
            PolicyChoice {
                aws: arn.starts_with("arn:aws:iam::aws:"),
                name: text(p, "PolicyName").to_owned(),
                arn,
            }
        })
        .collect())
}

/// Checkboxes of policies (`name` = ARN), labelled by policy name, in a fieldset.
pub(super) fn policy_checklist(
    html: &mut Html,
    legend: &str,
    field: &str,
    policies: &[PolicyChoice],
    selected: &[&str],
) {
    html.fmt(format_args!(
        "<fieldset class=\"choices\"><legend>{}</legend>\n",
        esc(legend)
    ));
    if policies.is_empty() {
        html.raw("<p>No policies.</p>\n");
    }
    for p in policies {
        html.raw("<div>");
        html.checkbox(&p.name, field, &p.arn, selected.contains(&p.arn.as_str()));
        html.fmt(format_args!(
            " <small>{}</small></div>\n",
            if p.aws {
                "AWS managed"
            } else {
                "Customer managed"
            }
        ));
    }
    html.raw("</fieldset>\n");
}

/// A select of policies for a permissions boundary (first option: none).
pub(super) fn boundary_select(html: &mut Html, policies: &[PolicyChoice], selected: &str) {
    let mut options = vec![(String::new(), "No permissions boundary".to_owned())];
    options.extend(policies.iter().map(|p| (p.arn.clone(), p.name.clone())));
    html.select("Permissions boundary", "boundary", &options, selected);
}

/// Tag key and value fields, prefilled from `form`.
pub(super) fn tag_fields(html: &mut Html, form: &Form) {
    html.raw("<fieldset><legend>Tags (optional)</legend>\n");
    for i in 1..=TAG_ROWS {
        html.fmt(format_args!(
            "<p><label>Tag key {i} <input type=\"text\" name=\"tag_key_{i}\" value=\"{}\" maxlength=\"128\"></label> \
             <label>Tag value {i} <input type=\"text\" name=\"tag_value_{i}\" value=\"{}\" maxlength=\"256\"></label></p>\n",
            esc(form.get(&format!("tag_key_{i}"))),
            esc(form.raw(&format!("tag_value_{i}")))
        ));
    }
    html.raw("</fieldset>\n");
}

/// The tags a form's tag fields name, as the API takes them (rows without a key are skipped).
pub(super) fn tags_of(form: &Form) -> Vec<Value> {
    (1..=TAG_ROWS)
        .filter_map(|i| {
            let key = form.get(&format!("tag_key_{i}"));
            (!key.is_empty())
                .then(|| json!({"Key": key, "Value": form.raw(&format!("tag_value_{i}"))}))
        })
        .collect()
}

/// Carries `names` of `form` forward as hidden fields (a wizard's earlier steps).
pub(super) fn carry(html: &mut Html, form: &Form, skip: &[&str]) {
    for (name, value) in &form.0 {
        if name.starts_with('_') || name == "step" || name == "go" || skip.contains(&name.as_str())
        {
            continue;
        }
        html.hidden(name, value);
    }
}

/// A key-value table of tags.
pub(super) fn tags_table(html: &mut Html, tags: &[Value]) {
    let rows: Vec<Vec<String>> = tags
        .iter()
        .map(|t| vec![cell(text(t, "Key")), cell(text(t, "Value"))])
        .collect();
    html.table("Tags", &["Key", "Value"], &rows);
}

/// The answer to a form whose `op` names nothing the page does.
pub(super) fn unknown_action() -> axum::response::Response {
    super::refused_page(
        axum::http::StatusCode::BAD_REQUEST,
        "Unknown action",
        "The form asked for an action this page does not have.",
    )
}

/// An error shown in place.
pub(super) fn alert(html: &mut Html, error: &AdminError) {
    html.fmt(format_args!(
        "<div role=\"alert\" class=\"error\">{}</div>\n",
        esc(&super::error_text(error))
    ));
}

/// A small inline form with one button (a row's action).
pub(super) fn button_form(ctx: &Ctx, action: &str, fields: &[(&str, &str)], label: &str) -> String {
    let mut form = Html::new();
    form.fmt(format_args!(
        "<form method=\"post\" action=\"{}\" class=\"inline\">",
        esc(action)
    ));
    ctx.form_tokens(&mut form);
    for (name, value) in fields {
        form.hidden(name, value);
    }
    form.button(label, None).raw("</form>");
    form.into_string()
}

/// A wizard (Add user, Create role): its steps, one page each, in one form whose earlier
/// steps' fields travel along as hidden fields.
pub(super) struct Wizard {
    pub(super) title: &'static str,
    /// Where its form posts.
    pub(super) action: &'static str,
    /// `(id, title)` of each step, in order.
    pub(super) steps: &'static [(&'static str, &'static str)],
    /// The last step's button (its `go` is `create`).
    pub(super) finish: &'static str,
}

impl Wizard {
    /// The heading, the steps with `step` marked, the problem that kept the user on it, and
    /// the form's opening; returns the step's index.
    pub(super) fn open(
        &self,
        ctx: &Ctx,
        body: &mut Html,
        step: &str,
        problem: Option<&str>,
    ) -> usize {
        body.heading(self.title).raw("<ol class=\"steps\">");
        for (id, title) in self.steps {
            let current = if *id == step {
                " aria-current=\"step\""
            } else {
                ""
            };
            body.fmt(format_args!("<li{current}>{title}</li>"));
        }
        body.raw("</ol>\n");
        if let Some(problem) = problem {
            body.fmt(format_args!(
                "<div role=\"alert\" class=\"error\">{}</div>\n",
                esc(problem)
            ));
        }
        ctx.form_open(body, self.action);
        body.hidden("step", step);
        self.steps
            .iter()
            .position(|(id, _)| *id == step)
            .unwrap_or(0)
    }

    /// Previous and Next (or the finishing button), and the form's end.
    pub(super) fn close(&self, body: &mut Html, index: usize) {
        body.raw("<p class=\"wizard-buttons\">");
        if let Some(previous) = index.checked_sub(1).and_then(|i| self.steps.get(i)) {
            body.button("Previous", Some(("go", previous.0)));
        }
        match self.steps.get(index + 1) {
            Some(next) => body.button("Next", Some(("go", next.0))),
            None => body.button(self.finish, Some(("go", "create"))),
        };
        body.raw("</p></form>\n");
    }

    /// The step `go` names (the first for anything else).
    pub(super) fn step(&self, go: &str) -> &'static str {
        self.steps
            .iter()
            .find(|(id, _)| *id == go)
            .or(self.steps.first())
            .map_or("", |(id, _)| id)
    }
}

/// A user's or role's permissions boundary, with the buttons that remove it or set another.
pub(super) fn boundary_section(
    ctx: &Ctx,
    body: &mut Html,
    base: &str,
    entity: &Value,
    policies: Option<&[PolicyChoice]>,
) {
    body.raw("<h2>Permissions boundary</h2>\n");
    match entity
        .pointer("/PermissionsBoundary/PermissionsBoundaryArn")
        .and_then(Value::as_str)
    {
        Some(arn) => {
            body.fmt(format_args!("<p><code>{}</code></p>\n", esc(arn)));
            body.raw(&button_form(
                ctx,
                base,
                &[("op", "remove-boundary")],
                "Remove boundary",
            ));
        }
        None => {
            body.raw("<p>No permissions boundary.</p>\n");
        }
    }
    if let Some(policies) = policies {
        ctx.form_open(body, base);
        body.hidden("op", "set-boundary");
        boundary_select(body, policies, "");
        body.button("Set boundary", None).raw("</form>\n");
    }
}

/// A select of the tenant's identity providers of one kind (`ListOpenIDConnectProviders` or
/// `ListSAMLProviders`), each shown by the part of its ARN after `marker`.
pub(super) async fn provider_select(
    ctx: &Ctx,
    body: &mut Html,
    (action, member, marker): (&str, &str, &str),
    (label, field, selected): (&str, &str, &str),
) {
    match ctx.call(action, json!({})).await {
        Ok(providers) => {
            let mut options = vec![(String::new(), "Choose a provider".to_owned())];
            for p in items(&providers, member) {
                let arn = text(p, "Arn");
                let name = arn.split_once(marker).map_or(arn, |(_, n)| n);
                options.push((arn.to_owned(), name.to_owned()));
            }
            body.select(label, field, &options, selected);
        }
        Err(error) => alert(body, &error),
    }
}
