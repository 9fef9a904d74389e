//! Sign-in (password, then the MFA code when the user has a device), the forced password
//! change, and sign-out.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;

use super::super::html::{esc, Html};
use super::super::session::token;
use super::super::{
    cookie, document, error_text, forbidden, now, read_form, Console, Ctx, Form, Posted,
    SESSION_COOKIE, SIGN_IN_COOKIE,
};
use crate::control_plane::{AdminError, SignIn, SignInRequest};
use crate::directory::Secret;

/// The sign-in page, with a fresh sign-in token in its cookie and its form.
pub(in crate::http::console) async fn form(State(console): State<Arc<Console>>) -> Response {
    sign_in_page(&console, None, "", "", StatusCode::OK)
}

fn sign_in_page(
    console: &Console,
    error: Option<&str>,
    account: &str,
    user: &str,
    status: StatusCode,
) -> Response {
    let csrf = token();
    let mut body = Html::new();
    body.heading("Sign in as IAM user");
    if let Some(error) = error {
        body.fmt(format_args!(
            "<div role=\"alert\" class=\"error\">{}</div>\n",
            esc(error)
        ));
    }
    body.raw("<form method=\"post\" action=\"/console/signin\" class=\"card\">\n")
        .hidden("_csrf", &csrf)
        .required("Account ID or alias", "account", account)
        .required("IAM user name", "user", user)
        .fmt(format_args!(
            "<p><label>Password <input type=\"password\" name=\"password\" required autocomplete=\"current-password\"></label></p>\n"
        ))
        .button("Sign in", None)
        .raw("</form>\n");
    let mut response = (
        status,
        Html::from(document("Sign in", None, "", &body.into_string())),
    )
        .into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        console.cookie(SIGN_IN_COOKIE, &csrf, false),
    );
    response
}

/// The sign-in form's token matches its cookie (a form posted from another site has no
/// cookie: it is `SameSite=Strict`).
fn sign_in_token_ok(parts: &axum::http::request::Parts, form: &Form) -> bool {
    let sent = form.raw("_csrf");
    cookie(&parts.headers, SIGN_IN_COOKIE).is_some_and(|c| {
        !sent.is_empty() && crate::jose::constant_time_eq(c.as_bytes(), sent.as_bytes())
    })
}

/// The password step.
pub(in crate::http::console) async fn submit(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let form = match read_form(&parts, body).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    if !sign_in_token_ok(&parts, &form) {
        return forbidden(
            "The sign-in form's security token is missing or wrong. Reload the page and try again.",
        );
    }
    let (account, user, password) = (form.get("account"), form.get("user"), form.raw("password"));
    if account.is_empty()
        || user.is_empty()
        || password.is_empty()
        || account.len() > 64
        || user.len() > 64
        || password.len() > 128
    {
        return sign_in_page(
            &console,
            Some("Enter your account, user name and password."),
            account,
            user,
            StatusCode::BAD_REQUEST,
        );
    }
    let outcome = attempt(&console, &parts, account, user, password, None).await;
    finish(&console, outcome, account, user, password)
}

/// The MFA step: the pending sign-in its cookie names, with the code.
pub(in crate::http::console) async fn mfa(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let form = match read_form(&parts, body).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    if !sign_in_token_ok(&parts, &form) {
        return forbidden(
            "The sign-in form's security token is missing or wrong. Reload the page and try again.",
        );
    }
    let Some(pending) = console.sessions.take_pending(form.raw("pending"), now()) else {
        return sign_in_page(
            &console,
            Some("The sign-in expired. Sign in again."),
            "",
            "",
            StatusCode::BAD_REQUEST,
        );
    };
    let code = form.get("mfa_code");
    let outcome = attempt(
        &console,
        &parts,
        &pending.account,
        &pending.user_name,
        pending.password.expose(),
        Some(code),
    )
    .await;
    finish(
        &console,
        outcome,
        &pending.account,
        &pending.user_name,
        pending.password.expose(),
    )
}

async fn attempt(
    console: &Arc<Console>,
    parts: &axum::http::request::Parts,
    account: &str,
    user: &str,
    password: &str,
    code: Option<&str>,
) -> Result<SignIn, AdminError> {
    let env = console.env(parts);
    let admin = console.admin.clone();
    let (account, user, password, code) = (
        account.to_owned(),
        user.to_owned(),
        Secret::new(password),
        code.map(str::to_owned),
    );
    tokio::task::spawn_blocking(move || {
        admin.console_sign_in(
            &SignInRequest {
                account: &account,
                user_name: &user,
                password: password.expose(),
                mfa_code: code.as_deref(),
            },
            env,
        )
    })
    .await
    .unwrap_or_else(|join| {
        Err(AdminError::Internal(format!(
            "the sign-in did not complete: {join}"
        )))
    })
}

fn finish(
    console: &Console,
    outcome: Result<SignIn, AdminError>,
    account: &str,
    user: &str,
    password: &str,
) -> Response {
    match outcome {
        Ok(SignIn::Session(signed_in)) => {
            let session = console.sessions.start(*signed_in, now());
            let mut response = Redirect::to(if session.password_change_required() {
                "/console/change-password"
            } else {
                "/console/home"
            })
            .into_response();
            let headers = response.headers_mut();
            headers.append(
                header::SET_COOKIE,
                console.cookie(SESSION_COOKIE, &session.id, false),
            );
            headers.append(header::SET_COOKIE, console.cookie(SIGN_IN_COOKIE, "", true));
            response
        }
        Ok(SignIn::MfaRequired) => {
            let pending = console.sessions.wait_for_mfa(
                account.to_owned(),
                user.to_owned(),
                Secret::new(password),
                now(),
            );
            let csrf = token();
            let mut body = Html::new();
            body.heading("Multi-factor authentication")
                .raw("<p>Enter the code from your MFA device.</p>\n")
                .raw("<form method=\"post\" action=\"/console/signin/mfa\" class=\"card\">\n")
                .hidden("_csrf", &csrf)
                .hidden("pending", &pending)
                .raw("<p><label>MFA code <input type=\"text\" name=\"mfa_code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" pattern=\"[0-9]{6}\" required></label></p>\n")
                .button("Submit", None)
                .raw("</form>\n");
            let mut response =
                Html::from(document("MFA", None, "", &body.into_string())).into_response();
            response.headers_mut().append(
                header::SET_COOKIE,
                console.cookie(SIGN_IN_COOKIE, &csrf, false),
            );
            response
        }
        Err(error) => {
            let status = match error {
                AdminError::Throttling => StatusCode::TOO_MANY_REQUESTS,
                AdminError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::UNAUTHORIZED,
            };
            sign_in_page(console, Some(&error_text(&error)), account, user, status)
        }
    }
}

/// Sign-out: the session ends (its form carries the CSRF token, so another site cannot sign
/// a user out).
pub(in crate::http::console) async fn sign_out(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(ctx) = console.signed_in(&parts) else {
        return Redirect::to("/console/signin").into_response();
    };
    let form = match read_form(&parts, body).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    if !ctx.session.csrf_matches(form.raw("_csrf")) {
        return forbidden("The form's security token is missing or wrong.");
    }
    console.sessions.end(&ctx.session.id);
    let mut response = Redirect::to("/console/signin").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, console.cookie(SESSION_COOKIE, "", true));
    response
}

/// The password change form (forced at first sign-in, or chosen).
pub(in crate::http::console) async fn change_form(ctx: Ctx) -> Response {
    change_page(&ctx, None)
}

fn change_page(ctx: &super::super::Ctx, error: Option<&str>) -> Response {
    let mut body = Html::new();
    body.heading("Change password");
    if ctx.session().password_change_required() {
        body.raw("<p>You must change your password before you continue.</p>\n");
    }
    if let Some(error) = error {
        body.fmt(format_args!(
            "<div role=\"alert\" class=\"error\">{}</div>\n",
            esc(error)
        ));
    }
    ctx.form_open(&mut body, "/console/change-password");
    body.raw("<p><label>Old password <input type=\"password\" name=\"old\" required autocomplete=\"current-password\"></label></p>\n")
        .raw("<p><label>New password <input type=\"password\" name=\"new\" required autocomplete=\"new-password\"></label></p>\n")
        .raw("<p><label>Retype new password <input type=\"password\" name=\"again\" required autocomplete=\"new-password\"></label></p>\n")
        .button("Change password", None)
        .raw("</form>\n");
    ctx.page("Change password", "", body)
}

/// `ChangePassword` as the user; their other sessions end.
pub(in crate::http::console) async fn change(
    State(console): State<Arc<Console>>,
    ctx: Ctx,
    Posted(form): Posted,
) -> Response {
    if form.raw("new") != form.raw("again") {
        return change_page(&ctx, Some("The new passwords do not match."));
    }
    match ctx
        .call(
            "ChangePassword",
            json!({"OldPassword": form.raw("old"), "NewPassword": form.raw("new")}),
        )
        .await
    {
        Ok(_) => {
            let session = ctx.session();
            session.password_changed();
            console
                .sessions
                .end_others(&session.account_id, &session.user_name, &session.id);
            ctx.done("/console/home", Ok("Your password was changed.".into()))
        }
        Err(error) => change_page(&ctx, Some(&error_text(&error))),
    }
}
