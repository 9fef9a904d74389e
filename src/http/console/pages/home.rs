//! The dashboard: the account's resource counts and the security recommendations of AWS's
//! IAM dashboard, from the credential report (root access keys, users without MFA, access
//! keys older than 90 days, credentials unused for 90 days).

use axum::response::Response;
use data_encoding::BASE64;
use serde_json::{json, Value};

use super::super::html::{esc, Html};
use super::super::Ctx;
use super::alert;
use crate::policy::Timestamp;

/// Credentials older or unused for longer than this are flagged (AWS's recommendation).
const STALE_DAYS: i64 = 90;

pub(in crate::http::console) async fn page(ctx: Ctx) -> Response {
    let mut body = Html::new();
    body.heading("IAM dashboard");
    match ctx.call("GetAccountSummary", json!({})).await {
        Ok(summary) => counts(&mut body, &summary),
        Err(error) => alert(&mut body, &error),
    }
    body.raw("<h2>Security recommendations</h2>\n");
    match report(&ctx).await {
        Ok(csv) => recommendations(&mut body, &csv, Timestamp::now().epoch_seconds()),
        Err(error) => alert(&mut body, &error),
    }
    ctx.page("Dashboard", "/console/home", body)
}

fn counts(body: &mut Html, summary: &Value) {
    let map = summary.get("SummaryMap").cloned().unwrap_or_default();
    let n = |k: &str| map.get(k).and_then(Value::as_i64).unwrap_or(0);
    body.raw("<h2>IAM resources</h2>\n<ul class=\"counts\">\n");
    for (label, key, href) in [
        ("Users", "Users", "/console/users"),
        ("User groups", "Groups", "/console/groups"),
        ("Roles", "Roles", "/console/roles"),
        ("Customer managed policies", "Policies", "/console/policies"),
        ("Identity providers", "Providers", "/console/providers"),
    ] {
        body.fmt(format_args!(
            "<li><a href=\"{href}\"><span class=\"count\">{}</span> {label}</a></li>\n",
            n(key)
        ));
    }
    body.raw("</ul>\n");
}

/// The credential report's CSV (generated when there is none fresh).
async fn report(ctx: &Ctx) -> Result<String, crate::control_plane::AdminError> {
    ctx.call("GenerateCredentialReport", json!({})).await?;
    let report = ctx.call("GetCredentialReport", json!({})).await?;
    let content = super::text(&report, "Content");
    let bytes = BASE64.decode(content.as_bytes()).unwrap_or_default();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Findings from the credential report, each with what to do.
fn recommendations(body: &mut Html, csv: &str, now: i64) {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let column = |row: &[&str], name: &str| -> String {
        header
            .iter()
            .position(|h| *h == name)
            .and_then(|i| row.get(i))
            .map(|v| (*v).to_owned())
            .unwrap_or_default()
    };
    let old = |value: &str| {
        value.contains('T')
            && crate::policy::parse_policy_date(value)
                .is_some_and(|t| now - t.epoch_seconds() > STALE_DAYS * 86_400)
    };
    let mut findings: Vec<(String, String)> = Vec::new();
    for line in lines {
        let row: Vec<&str> = line.split(',').collect();
        let user = column(&row, "user");
        if user == "<root_account>" {
            for n in ["1", "2"] {
                if column(&row, &format!("access_key_{n}_active")) == "true" {
                    findings.push((
                        "Root user".into(),
                        "The root user has an active access key: delete it and use IAM users or roles.".into(),
                    ));
                }
            }
            continue;
        }
        let console = column(&row, "password_enabled") == "true";
        if console && column(&row, "mfa_active") != "true" {
            findings.push((
                user.clone(),
                "Console access without MFA: assign an MFA device.".into(),
            ));
        }
        if console {
            let used = column(&row, "password_last_used");
            let unused = match used.as_str() {
                "no_information" | "N/A" | "" => old(&column(&row, "user_creation_time")),
                used => old(used),
            };
            if unused {
                findings.push((user.clone(), format!("The console password was not used in {STALE_DAYS} days: remove it if it is not needed.")));
            }
        }
        for n in ["1", "2"] {
            if column(&row, &format!("access_key_{n}_active")) != "true" {
                continue;
            }
            if old(&column(&row, &format!("access_key_{n}_last_rotated"))) {
                findings.push((
                    user.clone(),
                    format!("Access key {n} is older than {STALE_DAYS} days: rotate it."),
                ));
            }
            let used = column(&row, &format!("access_key_{n}_last_used_date"));
            let unused = if used == "N/A" || used.is_empty() {
                old(&column(&row, &format!("access_key_{n}_last_rotated")))
            } else {
                old(&used)
            };
            if unused {
                findings.push((user.clone(), format!("Access key {n} was not used in {STALE_DAYS} days: deactivate or delete it.")));
            }
        }
    }
    if findings.is_empty() {
        body.raw("<p role=\"status\" class=\"ok\">No findings: the root user has no access key, every console user has MFA, and no credential is stale.</p>\n");
        return;
    }
    body.raw("<ul class=\"findings\">\n");
    for (who, what) in &findings {
        body.fmt(format_args!(
            "<li><strong>{}</strong>: {}</li>\n",
            esc(who),
            esc(what)
        ));
    }
    body.raw("</ul>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recommendations_flag_root_keys_missing_mfa_and_stale_keys() {
        let csv = "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date\n\
<root_account>,arn:aws:iam::1:root,2026-01-01T00:00:00Z,not_supported,N/A,not_supported,not_supported,false,true,2026-01-01T00:00:00Z,N/A,false,N/A,N/A\n\
alice<b>,arn:aws:iam::1:user/alice,2026-01-01T00:00:00Z,true,2026-11-30T00:00:00Z,N/A,N/A,false,true,2026-01-01T00:00:00Z,2026-12-01T00:00:00Z,false,N/A,N/A\n\
bob,arn:aws:iam::1:user/bob,2026-11-01T00:00:00Z,false,N/A,N/A,N/A,false,true,2026-11-20T00:00:00Z,2026-12-01T00:00:00Z,false,N/A,N/A\n";
        let now = crate::policy::parse_policy_date("2026-12-02T00:00:00Z")
            .unwrap()
            .epoch_seconds();
        let mut html = Html::new();
        recommendations(&mut html, csv, now);
        let out = html.into_string();
        assert!(
            out.contains("The root user has an active access key"),
            "{out}"
        );
        assert!(
            out.contains("alice&lt;b&gt;</strong>: Console access without MFA"),
            "{out}"
        );
        assert!(out.contains("Access key 1 is older than 90 days"), "{out}");
        assert!(
            !out.contains("<strong>bob"),
            "bob's key is new and used: {out}"
        );
    }
}
