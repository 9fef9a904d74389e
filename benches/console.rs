//! Server-side render time of the console's Users and Policies lists (issue #21): a control
//! plane (SQLite in a temporary directory) whose tenant holds 10,000 users and 10,000
//! customer managed policies, and the console's router called in process (axum's `Router`
//! as a `tower_service::Service`, so no socket or HTTP/1.1 framing is in the figure). An
//! administrator (AdministratorAccess, a console password) signs in once through the
//! sign-in form; each request then carries the session cookie, as a browser's would, and
//! runs the whole path of a page: the session lookup, the admin call as the signed-in user
//! (authentication of its session credentials, authorization, the listing) and the HTML.
//!
//! Cases: the first page (50 rows), a middle page (the marker of the page halfway, taken
//! from the "Next page" links), and a search (which lists up to 10,000 entities) of each
//! list. Each case's page is checked (200, the expected rows) before it is timed.
//!
//! For comparison, the admin call alone (`ControlPlane::call` of `ListUsers` and
//! `ListPolicies`, no session, no authorization, no HTML) is timed for a page of 50 and one of
//! 1,000 (what a search asks for, page after page).
//!
//! Run with `cargo bench --bench console` (`CONSOLE_BENCH_ENTITIES` users and policies,
//! default 10,000; each case runs `CONSOLE_BENCH_REQUESTS` times, default 200, or for
//! `CONSOLE_BENCH_SECS` seconds, default 20, whichever ends first, and at least 5 times).
//! Under `cargo test --benches` the tenant holds 500 of each and each case runs 5 times.
//! Results are in `benches/README.md`.

#![expect(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a benchmark whose fixture does not load, or whose page does not hold the rows \
              it names, has nothing to measure"
)]
#![expect(clippy::print_stdout, reason = "the results are the program's output")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use iamlet::control_plane::{
    Admin, AdminAuth, ChangeDraft, ControlPlane, Prior, SqliteStore, TenantStore,
};
use iamlet::directory::{CreatePolicyInput, CreateUserInput, IdGenerator, PasswordHasher};
use iamlet::policy::Timestamp;
use serde_json::json;
use tower_service::Service;

const ACCOUNT: &str = "111122223333";
const PASSWORD: &str = "Correct-Horse-9!";
/// Rows on a console list page (`PAGE_SIZE` in `src/http/console/pages.rs`).
const PAGE_SIZE: usize = 50;
/// The fewest timed runs of a case, however long each takes.
const MIN_RUNS: usize = 5;

/// The name of user `i` and of policy `i`: zero-padded, so the listing's order is `i`'s.
fn user_name(i: usize) -> String {
    format!("user-{i:05}")
}

fn policy_name(i: usize) -> String {
    format!("policy-{i:05}")
}

/// A control plane with the tenant, its administrator (AdministratorAccess, a console
/// password), and `entities` users and customer managed policies. Returns it with the time
/// the fill took.
///
/// The administrator is made with `ControlPlane::call`, as an operator would. The entities
/// are not: 10,000 users and 10,000 policies are beyond the tenant's quotas (AWS's: 5,000
/// users, 1,500 customer managed policies) and there is no call that raises them, and each
/// call commits the whole tenant (20,000 calls would write gigabytes and take hours). They
/// are made with the directory's own operations (the same validation the calls run) on a
/// copy of the tenant with raised quotas, committed to the store as one change, which the
/// control plane then reloads.
fn fixture(entities: usize) -> (Arc<ControlPlane>, Duration) {
    let dir = std::env::temp_dir().join(format!("iamlet-bench-console-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let store = Arc::new(SqliteStore::open(&dir.join("iamlet.db"), None).expect("store"));
    let cp = Arc::new(
        ControlPlane::open(
            Arc::clone(&store) as Arc<dyn TenantStore>,
            IdGenerator::system(),
        )
        .expect("control plane")
        .with_password_hasher(PasswordHasher::with_iterations(1_000)),
    );
    cp.create_tenant_with_root(ACCOUNT, None, "bench")
        .expect("tenant");
    let call = |action: &str, parameters: serde_json::Value| {
        cp.call(ACCOUNT, "bench", action, &parameters)
            .unwrap_or_else(|e| panic!("{action}: {e}"));
    };
    call("CreateUser", json!({"UserName": "admin"}));
    call(
        "CreateLoginProfile",
        json!({"UserName": "admin", "Password": PASSWORD}),
    );
    call(
        "AttachUserPolicy",
        json!({"UserName": "admin", "PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}),
    );

    let started = Instant::now();
    let (tenant, version) = cp.tenant(ACCOUNT).expect("the tenant");
    let mut tenant = (*tenant).clone();
    tenant.quotas.users = tenant.quotas.users.max(entities + 1);
    tenant.quotas.policies = tenant.quotas.policies.max(entities);
    let mut ids = IdGenerator::system();
    let now = Timestamp::now().epoch_seconds();
    for i in 0..entities {
        let user = CreateUserInput {
            name: user_name(i),
            path: Some("/bench/".into()),
            permissions_boundary: None,
            tags: Vec::new(),
        };
        tenant
            .create_user(&mut ids, now, user)
            .unwrap_or_else(|e| panic!("user {i}: {e}"));
        let document = json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:ListBucket"],
                "Resource": [format!("arn:aws:s3:::bucket-{i}"), format!("arn:aws:s3:::bucket-{i}/*")]
            }]
        });
        let policy = CreatePolicyInput {
            name: policy_name(i),
            path: None,
            document: document.to_string(),
            description: Some(format!("Read bucket-{i}")),
            tags: Vec::new(),
        };
        tenant
            .create_policy(&mut ids, now, policy)
            .unwrap_or_else(|e| panic!("policy {i}: {e}"));
    }
    let change = ChangeDraft {
        account_id: ACCOUNT.into(),
        actor: "bench".into(),
        action: "BenchFill".into(),
        parameters: json!({"Users": entities, "Policies": entities}),
        at: now,
    };
    store
        .commit(&change, Prior::At(version.seq), Some(&tenant))
        .expect("commit the fill");
    cp.reload(ACCOUNT).expect("reload");
    let (tenant, _) = cp.tenant(ACCOUNT).expect("the tenant");
    assert_eq!(
        tenant.users.len(),
        entities + 1,
        "the users after the reload"
    );
    assert_eq!(
        tenant.policies.len(),
        entities,
        "the policies after the reload"
    );
    let _ = std::fs::remove_dir_all(&dir);
    (cp, started.elapsed())
}

/// The console's router and the cookie of a signed-in administrator.
struct Console {
    router: Router,
    cookie: String,
}

/// A response: status, `Set-Cookie` values, body.
struct Answer {
    status: StatusCode,
    cookies: Vec<String>,
    body: String,
}

async fn send(router: &mut Router, request: Request<Body>) -> Answer {
    std::future::poll_fn(|cx| Service::<Request<Body>>::poll_ready(router, cx))
        .await
        .expect("router ready");
    let response = router.call(request).await.expect("response");
    let status = response.status();
    let cookies = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .map(str::to_owned)
        .collect();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    Answer {
        status,
        cookies,
        body: String::from_utf8(body.to_vec()).expect("UTF-8 page"),
    }
}

/// The value of the hidden field `name` on `page`.
fn field(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in {page}"))
        + marker.len();
    let end = page[start..].find('"').expect("end of the value") + start;
    page[start..end].to_owned()
}

impl Console {
    /// Signs in as the administrator through the sign-in form, as a browser does.
    async fn sign_in(cp: Arc<ControlPlane>) -> Self {
        let auth = AdminAuth::new(Vec::new(), Vec::new());
        let mut router =
            iamlet::http::console::routes(Admin::new(cp, Arc::new(auth)), false, false);
        let form = send(
            &mut router,
            Request::get("/console/signin")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.body);
        let csrf = field(&form.body, "_csrf");
        let body = serde_urlencoded::to_string([
            ("_csrf", csrf.as_str()),
            ("account", ACCOUNT),
            ("user", "admin"),
            ("password", PASSWORD),
        ])
        .expect("form");
        let signed_in = send(
            &mut router,
            Request::post("/console/signin")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::COOKIE, form.cookies.join("; "))
                .body(Body::from(body))
                .expect("request"),
        )
        .await;
        assert_eq!(
            signed_in.status,
            StatusCode::SEE_OTHER,
            "{}",
            signed_in.body
        );
        let cookie = signed_in
            .cookies
            .into_iter()
            .find(|c| c.starts_with("iamlet_console="))
            .expect("a session cookie");
        Self { router, cookie }
    }

    /// GET `path` with the session cookie.
    async fn get(&mut self, path: &str) -> Answer {
        let request = Request::get(path)
            .header(header::COOKIE, &self.cookie)
            .body(Body::empty())
            .expect("request");
        send(&mut self.router, request).await
    }
}

/// The target of a page's "Next page" link (unescaped), if it has one.
fn next_link(page: &str) -> Option<String> {
    let end = page.find("\">Next page</a>")?;
    let start = page[..end].rfind("<a href=\"")? + "<a href=\"".len();
    Some(page[start..end].replace("&amp;", "&"))
}

/// The names a list page's rows show (the text of each row's first cell, a link), in order.
fn row_names(page: &str) -> Vec<String> {
    let marker = "<tr><td><a href=\"";
    page.match_indices(marker)
        .map(|(at, _)| {
            let rest = &page[at + marker.len()..];
            let text = &rest[rest.find("\">").expect("end of the link") + 2..];
            text[..text.find("</a>").expect("end of the link text")].to_owned()
        })
        .collect()
}

/// One case: the path, and the names its page must show (exactly, in order).
struct Case {
    name: &'static str,
    path: String,
    rows: Vec<String>,
}

/// Follows "Next page" from `first` `pages` times; the path of the page reached.
async fn page_after(console: &mut Console, first: &str, pages: usize) -> String {
    let mut path = first.to_owned();
    for _ in 0..pages {
        let page = console.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        path = next_link(&page.body).unwrap_or_else(|| panic!("{path} has no next page"));
    }
    path
}

/// Median, 99th percentile, min and max of `times`, in milliseconds.
fn summary(times: &mut [Duration]) -> (f64, f64, f64, f64) {
    times.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let at = |q: f64| {
        let i = ((times.len() as f64 - 1.0) * q).round() as usize;
        ms(times[i.min(times.len() - 1)])
    };
    (at(0.5), at(0.99), ms(times[0]), ms(times[times.len() - 1]))
}

fn main() {
    let timed = std::env::args().any(|a| a == "--bench");
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (entities, requests, span) = if timed {
        (
            env("CONSOLE_BENCH_ENTITIES", 10_000),
            env("CONSOLE_BENCH_REQUESTS", 200),
            Duration::from_secs(env("CONSOLE_BENCH_SECS", 20) as u64),
        )
    } else {
        (500, MIN_RUNS, Duration::ZERO)
    };
    assert!(
        entities >= 4 * PAGE_SIZE,
        "the bench needs at least {} entities for a middle page",
        4 * PAGE_SIZE
    );
    let (cp, fill) = fixture(entities);
    let listing = Arc::clone(&cp);
    println!(
        "console: {entities} users and {entities} customer managed policies made and committed in {:.1} s (setup, not timed)",
        fill.as_secs_f64()
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let mut console = Console::sign_in(cp).await;
        // The search term matches a hundred names near the end (`user-099` of 10,000): a
        // search lists every entity, then shows the first page of the matches.
        let digits = format!("{:05}", entities - 100);
        let stem = &digits[..3];
        let term = |kind: &str| format!("{kind}-{stem}");
        let matching = |name: fn(usize) -> String, kind: &str| -> Vec<String> {
            (0..entities)
                .map(name)
                .filter(|n| n.starts_with(&term(kind)))
                .take(PAGE_SIZE)
                .collect()
        };
        // The middle page: halfway through the pages of the list. The user list starts
        // with `admin`, so its page k holds users 50k-1 to 50k+48.
        let middle = entities / PAGE_SIZE / 2;
        let users_middle = page_after(&mut console, "/console/users", middle).await;
        let policies_middle =
            page_after(&mut console, "/console/policies?type=customer", middle).await;
        let cases = vec![
            Case {
                name: "users: first page",
                path: "/console/users".into(),
                rows: std::iter::once("admin".to_owned())
                    .chain((0..PAGE_SIZE - 1).map(user_name))
                    .collect(),
            },
            Case {
                name: "users: middle page",
                path: users_middle,
                rows: (middle * PAGE_SIZE - 1..(middle + 1) * PAGE_SIZE - 1)
                    .map(user_name)
                    .collect(),
            },
            Case {
                name: "users: search",
                path: format!("/console/users?q={}", term("user")),
                rows: matching(user_name, "user"),
            },
            Case {
                name: "policies: first page",
                path: "/console/policies?type=customer".into(),
                rows: (0..PAGE_SIZE).map(policy_name).collect(),
            },
            Case {
                name: "policies: middle page",
                path: policies_middle,
                rows: (middle * PAGE_SIZE..(middle + 1) * PAGE_SIZE)
                    .map(policy_name)
                    .collect(),
            },
            Case {
                name: "policies: search",
                path: format!("/console/policies?type=customer&q={}", term("policy")),
                rows: matching(policy_name, "policy"),
            },
        ];

        println!(
            "console: GET of each page, in process, one at a time, {MIN_RUNS} to {requests} times \
             (at most {} s per case after {MIN_RUNS}); ms per request",
            span.as_secs()
        );
        println!(
            "  {:<28} {:>9} {:>9} {:>9} {:>9} {:>5} {:>10}  path",
            "case", "median", "p99", "min", "max", "runs", "bytes"
        );
        for case in cases {
            // The page is checked before it is timed: a refusal or an empty table must
            // never be reported as a render time.
            let page = console.get(&case.path).await;
            assert_eq!(page.status, StatusCode::OK, "{}: {}", case.path, page.body);
            assert_eq!(row_names(&page.body), case.rows, "{}: the rows", case.name);
            assert_eq!(case.rows.len(), PAGE_SIZE, "{}: a full page", case.name);
            let bytes = page.body.len();
            let mut times = Vec::with_capacity(requests);
            let started = Instant::now();
            while times.len() < MIN_RUNS || (times.len() < requests && started.elapsed() < span) {
                let one = Instant::now();
                let page = console.get(&case.path).await;
                times.push(one.elapsed());
                assert_eq!(page.status, StatusCode::OK, "{}", case.path);
                assert_eq!(page.body.len(), bytes, "{}: the same page", case.path);
            }
            report(
                case.name,
                &mut times,
                &format!("{bytes:>10}  {}", case.path),
            );
        }
    });

    // The admin call alone: what the control plane spends listing, before any session,
    // authorization or HTML.
    println!("console: the admin call alone (ControlPlane::call, unchecked); ms per call");
    // (action, parameters, member, MaxItems, how many there are: the users and `admin`).
    let calls = [
        ("ListUsers", json!({}), "Users", 50, entities + 1),
        ("ListUsers", json!({}), "Users", 1_000, entities + 1),
        (
            "ListPolicies",
            json!({"Scope": "Local"}),
            "Policies",
            50,
            entities,
        ),
        (
            "ListPolicies",
            json!({"Scope": "Local"}),
            "Policies",
            1_000,
            entities,
        ),
    ];
    for (action, mut parameters, member, max, total) in calls {
        parameters["MaxItems"] = json!(max);
        let mut times = Vec::with_capacity(requests);
        let started = Instant::now();
        while times.len() < MIN_RUNS || (times.len() < requests && started.elapsed() < span) {
            let one = Instant::now();
            let (result, _) = listing
                .call(ACCOUNT, "bench", action, &parameters)
                .unwrap_or_else(|e| panic!("{action}: {e}"));
            times.push(one.elapsed());
            assert_eq!(
                result[member].as_array().map(Vec::len),
                Some(max.min(total)),
                "{action}: a full page"
            );
        }
        report(&format!("{action} MaxItems={max}"), &mut times, "");
    }
}

/// One line of results: the case, then median, p99, min and max of `times` and `rest`.
fn report(case: &str, times: &mut [Duration], rest: &str) {
    let runs = times.len();
    let (median, p99, min, max) = summary(times);
    println!("  {case:<28} {median:>9.2} {p99:>9.2} {min:>9.2} {max:>9.2} {runs:>5} {rest}");
}
