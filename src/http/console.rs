//! The console: AWS's IAM console workflows in a browser, served by the control plane's HTTP
//! edge at `/console` (issue #21).
//!
//! Pages are rendered on the server as plain HTML forms, so every workflow works without
//! JavaScript; one small script (`assets/console.js`, compiled into the binary) adds live
//! validation to the JSON policy editor. Nothing is fetched from anywhere else.
//!
//! **Every action is an admin call as the signed-in user.** Signing in
//! ([`Admin::console_sign_in`]) checks the password and MFA code and mints a session of the
//! user's own temporary credentials; each page then calls [`Admin::call`] with them, so IAM
//! policies decide what each person may do, every change is audited under the user's ARN,
//! and a refusal shows AWS's code and message. The edge only decodes forms, calls the admin
//! API and renders.
//!
//! **Defences.** The session cookie is `HttpOnly`, `SameSite=Strict` and `Secure` under TLS;
//! every state change is a POST carrying the session's CSRF token (compared in constant
//! time) and a one-time form token (a double submission is refused), from the console's own
//! origin; forms are bounded in size and fields; every piece of data is escaped
//! (`html::Esc`), and a strict Content-Security-Policy (`script-src 'self'`, no inline
//! script or style, `frame-ancestors 'none'`) would stop a script that escaped escaping.
//! Failed sign-ins are throttled and audited like failed admin calls.

mod html;
mod pages;
mod session;

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;

use crate::control_plane::{
    Admin, AdminCall, AdminError, AdminPresented, AuditEvent, CallEnv, ChangeRecord,
};
use crate::policy::Timestamp;

use self::html::{esc, Html};
use self::session::{Session, Sessions};

/// The largest form the console reads (a policy document is at most 10,240 characters; a
/// wizard carries a few of them).
const MAX_FORM_BYTES: usize = 128 * 1024;
/// The most fields a form may have.
const MAX_FORM_FIELDS: usize = 2_000;
/// The most changes (and refused calls) Event history reads, newest kept.
const TRAIL_SCAN: usize = 200_000;
/// The page size it reads them in.
const TRAIL_PAGE: u32 = 1_000;
/// The session cookie.
const SESSION_COOKIE: &str = "iamlet_console";
/// The cookie of a sign-in in progress (its CSRF token, and the MFA step's pending id).
const SIGN_IN_COOKIE: &str = "iamlet_console_signin";

/// The page's policy: scripts and styles from this origin only (no inline ones), images from
/// this origin or `data:` (the MFA QR code), forms posted only here, never framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const CSS: &str = include_str!("console/assets/console.css");
const JS: &str = include_str!("console/assets/console.js");

/// The console's routes under `/console`, acting through `admin`. `secure_transport` says
/// the edge is served over TLS (`aws:SecureTransport`, and `Secure` cookies);
/// `secure_cookies` marks the cookies `Secure` on a plain edge too, for a console behind an
/// ingress that terminates TLS.
pub fn routes(admin: Admin, secure_transport: bool, secure_cookies: bool) -> Router {
    let console = Arc::new(Console {
        admin,
        secure: secure_transport,
        secure_cookies: secure_transport || secure_cookies,
        sessions: Sessions::default(),
    });
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/home") }))
        .route("/console/", get(|| async { Redirect::to("/console/home") }))
        .route("/console/assets/console.css", get(css))
        .route("/console/assets/console.js", get(js))
        .route(
            "/console/signin",
            get(pages::sign_in::form).post(pages::sign_in::submit),
        )
        .route("/console/signin/mfa", post(pages::sign_in::mfa))
        .route("/console/signout", post(pages::sign_in::sign_out))
        .route(
            "/console/change-password",
            get(pages::sign_in::change_form).post(pages::sign_in::change),
        )
        .route("/console/home", get(pages::home::page))
        .route("/console/users", get(pages::users::list))
        .route(
            "/console/users/new",
            get(pages::users::wizard).post(pages::users::wizard_step),
        )
        .route(
            "/console/users/credentials.csv",
            get(pages::users::download),
        )
        .route(
            "/console/users/details/{name}",
            get(pages::users::details).post(pages::users::act),
        )
        .route(
            "/console/users/details/{name}/add-permissions",
            get(pages::users::add_permissions),
        )
        .route(
            "/console/users/details/{name}/mfa",
            get(pages::users::mfa_form),
        )
        .route("/console/groups", get(pages::groups::list))
        .route(
            "/console/groups/new",
            get(pages::groups::new_form).post(pages::groups::create),
        )
        .route(
            "/console/groups/details/{name}",
            get(pages::groups::details).post(pages::groups::act),
        )
        .route("/console/roles", get(pages::roles::list))
        .route(
            "/console/roles/new",
            get(pages::roles::wizard).post(pages::roles::wizard_step),
        )
        .route(
            "/console/roles/details/{name}",
            get(pages::roles::details).post(pages::roles::act),
        )
        .route("/console/policies", get(pages::policies::list))
        .route(
            "/console/policies/new",
            get(pages::editor::start).post(pages::editor::step),
        )
        .route(
            "/console/policies/view",
            get(pages::policies::details).post(pages::policies::act),
        )
        .route("/console/api/validate", post(pages::editor::validate))
        .route(
            "/console/providers",
            get(pages::settings::providers).post(pages::settings::providers_act),
        )
        .route(
            "/console/settings",
            get(pages::settings::account).post(pages::settings::account_act),
        )
        .route("/console/events", get(pages::settings::events))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(console)
}

/// What every handler holds.
struct Console {
    admin: Admin,
    secure: bool,
    secure_cookies: bool,
    sessions: Sessions,
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// Every console response: the CSP, no sniffing, no referrer, never framed, and pages (not
/// assets) never cached, since they show a signed-in user's data.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A request of a signed-in user.
struct Ctx {
    console: Arc<Console>,
    session: Arc<Session>,
    env: CallEnv,
}

/// A page's signed-in user, or the redirect to sign in (or to change the password first).
impl FromRequestParts<Arc<Console>> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Arc<Console>,
    ) -> Result<Self, Response> {
        console.signed_in(parts)
    }
}

/// A signed-in user's form, checked ([`Console::form`]); the user is the handler's [`Ctx`].
struct Posted(Form);

impl FromRequest<Arc<Console>> for Posted {
    type Rejection = Response;

    async fn from_request(request: Request, console: &Arc<Console>) -> Result<Self, Response> {
        console.form(request).await.map(Posted)
    }
}

/// A page's query string.
struct Query(Form);

impl<S: Sync> FromRequestParts<S> for Query {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(query(parts)))
    }
}

/// A form, as ordered pairs (a checkbox list repeats its name).
#[derive(Debug, Default)]
struct Form(Vec<(String, String)>);

impl Form {
    /// The first value of `name`, trimmed; empty when absent.
    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.trim())
    }

    /// The first value of `name`, as sent (passwords and documents keep their spaces).
    fn raw(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Every non-empty value of `name`.
    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, v)| n == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim())
            .collect()
    }

    /// Whether `name` was sent (a checked checkbox).
    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    fn parse(body: &[u8]) -> Result<Self, String> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|e| format!("the form does not decode: {e}"))?;
        if pairs.len() > MAX_FORM_FIELDS {
            return Err(format!("the form has more than {MAX_FORM_FIELDS} fields"));
        }
        Ok(Self(pairs))
    }
}

/// A query string's parameters.
fn query(parts: &axum::http::request::Parts) -> Form {
    parts
        .uri
        .query()
        .and_then(|q| Form::parse(q.as_bytes()).ok())
        .unwrap_or_default()
}

/// The value of cookie `name`.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// Now, in Unix seconds.
fn now() -> i64 {
    Timestamp::now().epoch_seconds()
}

impl Console {
    fn env(&self, parts: &axum::http::request::Parts) -> CallEnv {
        CallEnv {
            source: crate::http::peer_ip(parts),
            secure_transport: self.secure,
            now: Timestamp::now(),
        }
    }

    /// A `Set-Cookie` value for `name`, ending with the browser session unless `clear`.
    fn cookie(&self, name: &str, value: &str, clear: bool) -> HeaderValue {
        let mut cookie = format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict");
        if self.secure_cookies {
            cookie.push_str("; Secure");
        }
        if clear {
            cookie.push_str("; Max-Age=0");
        }
        HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// The signed-in user of `parts`, or the response that sends the browser to sign in.
    /// A user who must change the password is sent to do that first.
    #[expect(
        clippy::result_large_err,
        reason = "the refusal is the response sent, made once per refused request"
    )]
    fn signed_in(self: &Arc<Self>, parts: &axum::http::request::Parts) -> Result<Ctx, Response> {
        let session = cookie(&parts.headers, SESSION_COOKIE)
            .and_then(|id| self.sessions.find(id, now()))
            .ok_or_else(|| Redirect::to("/console/signin").into_response())?;
        if session.password_change_required() && parts.uri.path() != "/console/change-password" {
            return Err(Redirect::to("/console/change-password").into_response());
        }
        Ok(Ctx {
            console: Arc::clone(self),
            session,
            env: self.env(parts),
        })
    }

    /// A signed-in user's form: refused unless it is from this origin, within bounds, and
    /// carries the session's CSRF token; a form already submitted is refused too.
    async fn form(self: &Arc<Self>, request: Request) -> Result<Form, Response> {
        let (parts, body) = request.into_parts();
        let ctx = self.signed_in(&parts)?;
        let form = read_form(&parts, body).await?;
        if !ctx.session.csrf_matches(form.raw("_csrf")) {
            tracing::info!(user = %ctx.session.arn, "console: refused a form without the session's CSRF token");
            return Err(forbidden(
                "The form's security token is missing or wrong. Reload the page and try again.",
            ));
        }
        if !ctx.session.first_submission(form.raw("_once")) {
            return Err(refused_page(
                StatusCode::CONFLICT,
                "This form was already submitted",
                "The console acted on it once; submitting it again does nothing. Go back and reload the page to start again.",
            ));
        }
        Ok(form)
    }
}

/// A form body, from this origin, within bounds.
async fn read_form(
    parts: &axum::http::request::Parts,
    body: axum::body::Body,
) -> Result<Form, Response> {
    if !same_origin(parts) {
        return Err(forbidden("The form was sent from another site."));
    }
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Err(refused_page(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported form",
            "The console takes forms as application/x-www-form-urlencoded.",
        ));
    }
    let Ok(body) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return Err(refused_page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The form is too large",
            &format!("A console form is at most {MAX_FORM_BYTES} bytes."),
        ));
    };
    Form::parse(&body)
        .map_err(|e| refused_page(StatusCode::BAD_REQUEST, "The form does not decode", &e))
}

/// Whether a state-changing request came from the console's own origin: its `Origin` (or,
/// without one, its `Sec-Fetch-Site`) says so. A request with neither (a non-browser client)
/// still needs the CSRF token, which only the console's pages carry.
fn same_origin(parts: &axum::http::request::Parts) -> bool {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let fetch_site = header("sec-fetch-site");
    // A browser that withholds the origin sends `null`; its `Sec-Fetch-Site` still tells.
    if header("origin") == Some("null") {
        return fetch_site == Some("same-origin");
    }
    if let Some(origin) = header("origin") {
        let host = header("host").unwrap_or_default();
        let origin_host = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .unwrap_or_default();
        return !host.is_empty() && origin_host.eq_ignore_ascii_case(host);
    }
    !matches!(fetch_site, Some("cross-site" | "same-site"))
}

/// 403 with a page that says why.
fn forbidden(why: &str) -> Response {
    refused_page(StatusCode::FORBIDDEN, "Request refused", why)
}

/// A plain page for a refused request.
fn refused_page(status: StatusCode, title: &str, why: &str) -> Response {
    let mut body = Html::new();
    body.heading(title)
        .fmt(format_args!(
            "<p role=\"alert\" class=\"error\">{}</p>\n",
            esc(why)
        ))
        .raw("<p><a href=\"/console/home\">Back to the console</a></p>\n");
    (
        status,
        Html::from(document(title, None, "", &body.into_string())),
    )
        .into_response()
}

/// One page of a trail listing: the admin API, the call, the tenant, the number to read after.
type ReadPage<T> = fn(&Admin, AdminCall, &str, u64) -> Result<Vec<T>, AdminError>;

/// Runs an admin call (store work) on the blocking pool.
async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, AdminError> + Send + 'static,
) -> Result<R, AdminError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|join| {
        Err(AdminError::Internal(format!(
            "the call did not complete: {join}"
        )))
    })
}

/// The text of an admin error as the console shows it: AWS's code and message.
fn error_text(error: &AdminError) -> String {
    format!("{}: {error}", error.code().as_str())
}

impl Ctx {
    /// The signed-in user's credentials as an admin call.
    fn admin_call(&self) -> AdminCall {
        let session = &self.session;
        AdminCall {
            credentials: Ok(AdminPresented::Keys {
                access_key_id: session.access_key_id.clone(),
                secret: session.secret.clone(),
                session_token: Some(session.session_token.clone()),
            }),
            claimed_key: Some(session.access_key_id.clone()),
            claimed_token: Some(session.session_token.clone()),
            env: CallEnv {
                now: Timestamp::now(),
                ..self.env
            },
        }
    }

    /// One admin action as the signed-in user.
    async fn call(&self, action: &str, parameters: Value) -> Result<Value, AdminError> {
        let session = &self.session;
        let call = self.admin_call();
        let admin = self.console.admin.clone();
        let tenant = session.account_id.clone();
        let action = action.to_owned();
        blocking(move || admin.call(call, &tenant, &action, parameters))
            .await
            .map(|(result, _)| result)
    }

    /// The audit trail as the signed-in user: the account's newest `keep` changes and newest
    /// `keep` refused calls (each read needs `cloudtrail:LookupEvents`).
    async fn trail(&self, keep: usize) -> Result<(Vec<ChangeRecord>, Vec<AuditEvent>), AdminError> {
        let changes = self
            .newest(
                keep,
                |admin, call, tenant, after| admin.list_changes(call, tenant, after, TRAIL_PAGE),
                |r| r.seq,
            )
            .await?;
        let events = self
            .newest(
                keep,
                |admin, call, tenant, after| admin.list_events(call, tenant, after, TRAIL_PAGE),
                |e| e.id,
            )
            .await?;
        Ok((changes, events))
    }

    /// The newest `keep` records of a listing read page by page from the start (each page
    /// after the number `number` gives the last record of the one before), at most
    /// [`TRAIL_SCAN`] records.
    async fn newest<T: Send + 'static>(
        &self,
        keep: usize,
        read: ReadPage<T>,
        number: fn(&T) -> u64,
    ) -> Result<Vec<T>, AdminError> {
        let mut newest = std::collections::VecDeque::new();
        let (mut after, mut scanned) = (0, 0);
        loop {
            let (call, admin, tenant) = (
                self.admin_call(),
                self.console.admin.clone(),
                self.session.account_id.clone(),
            );
            let page = blocking(move || read(&admin, call, &tenant, after)).await?;
            let full = page.len() == TRAIL_PAGE as usize;
            after = page.last().map_or(after, number);
            scanned += page.len();
            for record in page {
                if newest.len() == keep {
                    newest.pop_front();
                }
                newest.push_back(record);
            }
            if !full || scanned >= TRAIL_SCAN {
                return Ok(newest.into());
            }
        }
    }

    /// Several actions in order; the first refusal stops them.
    async fn call_all(&self, calls: Vec<(&str, Value)>) -> Result<(), AdminError> {
        for (action, parameters) in calls {
            self.call(action, parameters).await?;
        }
        Ok(())
    }

    /// The session.
    fn session(&self) -> &Session {
        &self.session
    }

    /// The hidden fields every state-changing form carries: the CSRF token and a fresh
    /// one-time token.
    fn form_tokens(&self, html: &mut Html) {
        html.hidden("_csrf", &self.session.csrf)
            .hidden("_once", &session::token());
    }

    /// A `<form method=post action=...>` opening with its tokens.
    fn form_open(&self, html: &mut Html, action: &str) {
        html.fmt(format_args!(
            "<form method=\"post\" action=\"{}\">\n",
            esc(action)
        ));
        self.form_tokens(html);
    }

    /// A signed-in page: the layout around `body`, with the message left for it.
    fn page(&self, title: &str, nav: &str, body: Html) -> Response {
        let mut full = Html::new();
        if let Some((error, text)) = self.session.take_flash() {
            let (role, class) = if error {
                ("alert", "error")
            } else {
                ("status", "ok")
            };
            full.fmt(format_args!(
                "<div role=\"{role}\" class=\"{class}\">{}</div>\n",
                esc(&text)
            ));
        }
        full.raw(&body.into_string());
        Html::from(document(title, Some(self), nav, &full.into_string())).into_response()
    }

    /// The result of an action: back to `to` with a message saying what happened.
    fn done(&self, to: &str, outcome: Result<String, AdminError>) -> Response {
        match outcome {
            Ok(message) => self.session.flash(false, message),
            Err(error) => self.session.flash(true, error_text(&error)),
        }
        Redirect::to(to).into_response()
    }
}

impl From<String> for Html {
    fn from(markup: String) -> Self {
        let mut html = Self::new();
        html.raw(&markup);
        html
    }
}

impl IntoResponse for Html {
    fn into_response(self) -> Response {
        (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            self.into_string(),
        )
            .into_response()
    }
}

/// The navigation: (path, label).
const NAV: &[(&str, &str)] = &[
    ("/console/home", "Dashboard"),
    ("/console/users", "Users"),
    ("/console/groups", "User groups"),
    ("/console/roles", "Roles"),
    ("/console/policies", "Policies"),
    ("/console/providers", "Identity providers"),
    ("/console/settings", "Account settings"),
    ("/console/events", "Event history"),
];

/// A whole HTML document: the header (with the signed-in user and sign-out) and navigation
/// for a signed-in page, then `body`.
fn document(title: &str, ctx: Option<&Ctx>, nav: &str, body: &str) -> String {
    let mut html = Html::new();
    html.fmt(format_args!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} · iamlet IAM</title>\n\
         <link rel=\"stylesheet\" href=\"/console/assets/console.css\">\n\
         <script src=\"/console/assets/console.js\" defer></script>\n",
        esc(title)
    ));
    if let Some(ctx) = ctx {
        html.fmt(format_args!(
            "<meta name=\"csrf-token\" content=\"{}\">\n",
            esc(&ctx.session.csrf)
        ));
    }
    // A page without the navigation (sign-in) gives its main area the whole width.
    html.raw(if ctx.is_some() {
        "</head>\n<body>\n"
    } else {
        "</head>\n<body class=\"bare\">\n"
    })
    .raw("<header>\n<a class=\"brand\" href=\"/console/home\">iamlet IAM</a>\n");
    if let Some(ctx) = ctx {
        let s = &ctx.session;
        let account = s.alias.as_deref().unwrap_or(&s.account_id);
        html.fmt(format_args!(
            "<span class=\"who\">{} @ {}{}</span>\n",
            esc(&s.user_name),
            esc(account),
            if s.mfa { " (MFA)" } else { "" }
        ));
        html.raw("<form method=\"post\" action=\"/console/signout\" class=\"signout\">");
        html.hidden("_csrf", &s.csrf);
        html.raw("<button type=\"submit\">Sign out</button></form>\n");
    }
    html.raw("</header>\n");
    if ctx.is_some() {
        html.raw("<nav aria-label=\"IAM\"><ul>\n");
        for (href, label) in NAV {
            let current = if *href == nav {
                " aria-current=\"page\""
            } else {
                ""
            };
            html.fmt(format_args!(
                "<li><a href=\"{href}\"{current}>{label}</a></li>\n"
            ));
        }
        html.raw("</ul></nav>\n");
    }
    html.raw("<main>\n")
        .raw(body)
        .raw("</main>\n</body>\n</html>\n");
    html.into_string()
}
