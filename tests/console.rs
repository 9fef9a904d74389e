//! The console (issue #21) over real HTTP on loopback: sign-in with password and MFA, the
//! forced password change, sessions and sign-out, every action as the signed-in user (AWS's
//! refusal shown), and the bad-input list: forged or missing CSRF tokens, forms from another
//! origin, double submissions, oversized forms, another tenant's names in URLs, stored XSS in
//! a tag and a policy description, throttled sign-ins.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use iamlet::control_plane::{Admin, AdminAuth, ControlPlane, FailureLimit, SqliteStore};
use iamlet::directory::{IdGenerator, PasswordHasher};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const A: &str = "111122223333";
const B: &str = "444455556666";
const PASSWORD: &str = "Correct-Horse-9!";
const PATIENCE: Duration = Duration::from_secs(30);

/// The console of a control plane with tenant A (users `admin`, with AdministratorAccess, and
/// `reader`, with no policy, both with console passwords) and tenant B (user `bob`).
struct Console {
    addr: std::net::SocketAddr,
    cp: Arc<ControlPlane>,
}

impl Console {
    async fn start(name: &str, max_failures: u32) -> Self {
        Self::start_with(name, max_failures, iamlet::control_plane::system_clock).await
    }

    /// [`Self::start`] with the control plane's clock (the console's is the system's).
    async fn start_with(name: &str, max_failures: u32, clock: fn() -> i64) -> Self {
        let data = super::support::temp_dir("console", name);
        let store = SqliteStore::open(&data.join("iamlet.db"), None).unwrap();
        let cp = Arc::new(
            super::support::signed(
                ControlPlane::open(Arc::new(store), IdGenerator::system()).unwrap(),
            )
            .with_password_hasher(PasswordHasher::with_iterations(1_000))
            .with_clock(clock),
        );
        cp.create_tenant_with_root(A, None, "test").unwrap();
        cp.create_tenant_with_root(B, None, "test").unwrap();
        for (tenant, user) in [(A, "admin"), (A, "reader"), (B, "bob")] {
            cp.call(tenant, "test", "CreateUser", &json!({"UserName": user}))
                .unwrap();
            cp.call(
                tenant,
                "test",
                "CreateLoginProfile",
                &json!({"UserName": user, "Password": PASSWORD}),
            )
            .unwrap();
        }
        cp.call(
            A,
            "test",
            "AttachUserPolicy",
            &json!({"UserName": "admin", "PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}),
        )
        .unwrap();
        let auth = AdminAuth::new(Vec::new(), Vec::new()).with_failure_limit(FailureLimit {
            max_failures,
            window_seconds: 300,
        });
        let router = iamlet::http::console::routes(
            Admin::new(Arc::clone(&cp), Arc::new(auth)),
            false,
            false,
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(iamlet::http::serve(
            router,
            listener,
            None,
            std::future::pending(),
        ));
        Self { addr, cp }
    }

    fn browser(&self) -> Browser {
        Browser {
            addr: self.addr,
            cookies: BTreeMap::new(),
        }
    }

    /// A browser signed in as `user` of tenant A.
    async fn signed_in(&self, user: &str) -> Browser {
        let mut b = self.browser();
        let answer = b.sign_in(A, user, PASSWORD).await;
        assert_eq!(answer.status, 303, "{}", answer.body);
        assert_eq!(answer.header("location"), Some("/console/home"));
        b
    }

    fn call(&self, tenant: &str, action: &str, params: &Value) -> Value {
        self.cp.call(tenant, "test", action, params).unwrap().0
    }
}

/// A browser: a cookie jar and raw HTTP/1.1 over a new connection per request.
struct Browser {
    addr: std::net::SocketAddr,
    cookies: BTreeMap<String, String>,
}

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn headers(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of the first hidden field `name` on the page.
    fn field(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker).unwrap_or_else(|| {
            panic!("no field {name} in {}", self.body);
        }) + marker.len();
        let end = self.body[start..].find('"').unwrap() + start;
        self.body[start..end].to_owned()
    }
}

fn encode(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Browser {
    async fn request(
        &mut self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        let mut request = format!("{method} {path} HTTP/1.1\r\nhost: {}\r\n", self.addr);
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            request.push_str(&format!("cookie: {}\r\n", jar.join("; ")));
        }
        for (name, value) in extra {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str(&format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        ));
        let addr = self.addr;
        let exchange = async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.write_all(request.as_bytes()).await.unwrap();
            let _ = stream.write_all(body).await;
            let mut raw = Vec::new();
            let _ = stream.read_to_end(&mut raw).await;
            raw
        };
        let raw = tokio::time::timeout(PATIENCE, exchange).await.unwrap();
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.get(9..12))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        for (name, value) in &headers {
            if name == "set-cookie" {
                let pair = value.split(';').next().unwrap_or_default();
                if let Some((k, v)) = pair.split_once('=') {
                    if value.contains("Max-Age=0") {
                        self.cookies.remove(k);
                    } else {
                        self.cookies.insert(k.to_owned(), v.to_owned());
                    }
                }
            }
        }
        Answer {
            status,
            headers,
            body: body.to_owned(),
        }
    }

    async fn get(&mut self, path: &str) -> Answer {
        self.request("GET", path, &[], b"").await
    }

    /// A form posted as the console's own page posts it.
    async fn post(&mut self, path: &str, pairs: &[(&str, &str)]) -> Answer {
        let origin = format!("http://{}", self.addr);
        let body = encode(pairs);
        self.request(
            "POST",
            path,
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("origin", &origin),
            ],
            body.as_bytes(),
        )
        .await
    }

    /// Posts `pairs` with the tokens of the form on `page` (the CSRF and one-time tokens).
    async fn submit(&mut self, page: &str, path: &str, pairs: &[(&str, &str)]) -> Answer {
        let form = self.get(page).await;
        assert_eq!(form.status, 200, "{page}: {}", form.body);
        let (csrf, once) = (form.field("_csrf"), form.field("_once"));
        let mut all: Vec<(&str, &str)> = vec![("_csrf", &csrf), ("_once", &once)];
        all.extend_from_slice(pairs);
        self.post(path, &all).await
    }

    async fn sign_in(&mut self, account: &str, user: &str, password: &str) -> Answer {
        let page = self.get("/console/signin").await;
        let csrf = page.field("_csrf");
        self.post(
            "/console/signin",
            &[
                ("_csrf", &csrf),
                ("account", account),
                ("user", user),
                ("password", password),
            ],
        )
        .await
    }
}

fn group_names(console: &Console) -> Vec<String> {
    console.call(A, "ListGroups", &json!({}))["Groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["GroupName"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn sign_in_sets_a_strict_cookie_and_sign_out_ends_the_session() {
    let console = Console::start("sign-in", 100).await;
    let mut b = console.browser();
    let home = b.get("/console/home").await;
    assert_eq!(home.status, 303);
    assert_eq!(home.header("location"), Some("/console/signin"));

    let wrong = b.sign_in(A, "admin", "not-the-password").await;
    assert_eq!(wrong.status, 401);
    assert!(
        wrong
            .body
            .contains("AccessDenied: Your authentication information is incorrect."),
        "{}",
        wrong.body
    );
    let unknown = b.sign_in(A, "nobody", PASSWORD).await;
    assert!(
        unknown
            .body
            .contains("Your authentication information is incorrect."),
        "the same answer for an unknown user"
    );

    // The account's alias names it too.
    console.call(
        A,
        "CreateAccountAlias",
        &json!({"AccountAlias": "example-corp"}),
    );
    let mut by_alias = console.browser();
    assert_eq!(
        by_alias
            .sign_in("example-corp", "admin", PASSWORD)
            .await
            .status,
        303
    );
    assert!(by_alias
        .get("/console/home")
        .await
        .body
        .contains("admin @ example-corp"));

    let ok = b.sign_in(A, "admin", PASSWORD).await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    let cookie = ok
        .headers("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("iamlet_console="))
        .unwrap()
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let home = b.get("/console/home").await;
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(
        home.body.contains("IAM dashboard") && home.body.contains(">Users<"),
        "{}",
        home.body
    );
    let csp = home.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(home.header("x-frame-options"), Some("DENY"));
    assert_eq!(home.header("cache-control"), Some("no-store"));

    let csrf = home.field("_csrf");
    let out = b.post("/console/signout", &[("_csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert_eq!(b.get("/console/home").await.status, 303, "signed out");

    // Sign-ins are audited like admin calls.
    let events = console.cp.events(A, 0, 100).unwrap();
    let logins: Vec<_> = events
        .iter()
        .filter(|e| e.action == "ConsoleLogin")
        .collect();
    assert!(logins.iter().any(|e| e.outcome == "Allowed"), "{logins:?}");
    assert!(
        logins.iter().filter(|e| e.outcome == "AuthFailure").count() >= 2,
        "{logins:?}"
    );
}

#[tokio::test]
async fn state_changes_need_the_session_csrf_token_same_origin_and_one_submission() {
    let console = Console::start("csrf", 100).await;
    let mut b = console.signed_in("admin").await;
    let missing = b.post("/console/groups/new", &[("name", "g1")]).await;
    assert_eq!(missing.status, 403, "{}", missing.body);
    let forged = b
        .post(
            "/console/groups/new",
            &[
                ("_csrf", "forged-token-value"),
                ("_once", "0123456789abcdef0123"),
                ("name", "g1"),
            ],
        )
        .await;
    assert_eq!(forged.status, 403);
    // From another site, even with the right token.
    let page = b.get("/console/groups/new").await;
    let body = encode(&[
        ("_csrf", &page.field("_csrf")),
        ("_once", &page.field("_once")),
        ("name", "g1"),
    ]);
    let cross = b
        .request(
            "POST",
            "/console/groups/new",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("origin", "http://evil.example"),
            ],
            body.as_bytes(),
        )
        .await;
    assert_eq!(cross.status, 403);
    // A browser that withholds the origin (`Origin: null`) is believed only when its
    // `Sec-Fetch-Site` says the form is the console's own.
    let page = b.get("/console/groups/new").await;
    let body = encode(&[
        ("_csrf", &page.field("_csrf")),
        ("_once", &page.field("_once")),
        ("name", "g1"),
    ]);
    let null = b
        .request(
            "POST",
            "/console/groups/new",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("origin", "null"),
            ],
            body.as_bytes(),
        )
        .await;
    assert_eq!(null.status, 403);
    let null = b
        .request(
            "POST",
            "/console/groups/new",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("origin", "null"),
                ("sec-fetch-site", "cross-site"),
            ],
            body.as_bytes(),
        )
        .await;
    assert_eq!(null.status, 403);
    assert!(group_names(&console).is_empty(), "no refused form acted");

    let page = b.get("/console/groups/new").await;
    let fields = [
        ("_csrf", page.field("_csrf")),
        ("_once", page.field("_once")),
        ("name", "g1".to_owned()),
    ];
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let ok = b.post("/console/groups/new", &pairs).await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    let again = b.post("/console/groups/new", &pairs).await;
    assert_eq!(
        again.status, 409,
        "a double submission is refused: {}",
        again.body
    );
    assert_eq!(group_names(&console), ["g1"]);
}

#[tokio::test]
async fn oversized_and_malformed_forms_are_refused() {
    let console = Console::start("oversized", 100).await;
    let mut b = console.signed_in("admin").await;
    let page = b.get("/console/groups/new").await;
    let big = "x".repeat(200 * 1024);
    let too_large = b
        .post(
            "/console/groups/new",
            &[("_csrf", &page.field("_csrf")), ("name", &big)],
        )
        .await;
    assert_eq!(too_large.status, 413);
    let many: Vec<(String, String)> = (0..3_000)
        .map(|i| (format!("f{i}"), "v".to_owned()))
        .collect();
    let pairs: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let too_many = b.post("/console/groups/new", &pairs).await;
    assert_eq!(too_many.status, 400);
    let wrong_type = b
        .request(
            "POST",
            "/console/groups/new",
            &[("content-type", "application/json")],
            b"{}",
        )
        .await;
    assert_eq!(wrong_type.status, 415);
    assert!(group_names(&console).is_empty());
}

#[tokio::test]
async fn user_data_is_rendered_inert() {
    let console = Console::start("xss", 100).await;
    let script = "<script>window.__xss=1</script><img src=x onerror=\"window.__xss=1\">";
    let mut b = console.signed_in("admin").await;
    // A tag value cannot hold markup (IAM's pattern refuses `<`); the refusal, which quotes
    // the value, is shown as text.
    let tagged = b
        .submit(
            "/console/users/details/reader?tab=tags",
            "/console/users/details/reader",
            &[
                ("op", "tag"),
                ("tag_key_1", "note"),
                ("tag_value_1", script),
            ],
        )
        .await;
    assert_eq!(tagged.status, 303);
    let page = b.get(tagged.header("location").unwrap()).await;
    assert!(
        page.body.contains("ValidationError") || page.body.contains("InvalidInput"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<script>window"), "{}", page.body);
    // Nor can a user name.
    let named = b
        .submit(
            "/console/users/new",
            "/console/users/new",
            &[("step", "review"), ("go", "create"), ("name", script)],
        )
        .await;
    assert!(!named.body.contains("<script>window"), "{}", named.body);
    assert!(
        named
            .body
            .contains("&lt;script&gt;window.__xss=1&lt;/script&gt;"),
        "{}",
        named.body
    );
    // A policy description can, and is stored as written, then shown as text.
    let created = console.call(
        A,
        "CreatePolicy",
        &json!({"PolicyName": "p", "Description": script, "PolicyDocument": r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#}),
    );
    let arn = created["Policy"]["Arn"].as_str().unwrap().to_owned();
    for path in [
        format!("/console/policies/view?arn={}", urlencode(&arn)),
        "/console/policies".to_owned(),
        "/console/users?q=%3Cscript%3Ewindow.__xss%3D1%3C%2Fscript%3E".to_owned(),
    ] {
        let page = b.get(&path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert!(
            !page.body.contains("<script>window"),
            "{path}: {}",
            page.body
        );
        assert!(!page.body.contains("<img src=x"), "{path}");
        assert!(
            page.body
                .contains("&lt;script&gt;window.__xss=1&lt;/script&gt;"),
            "{path}: {}",
            page.body
        );
        let csp = page.header("content-security-policy").unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
    }
}

#[tokio::test]
async fn actions_run_as_the_signed_in_user_and_refusals_show_aws_messages() {
    let console = Console::start("as-user", 100).await;
    let mut b = console.signed_in("reader").await;
    let answer = b
        .submit(
            "/console/groups/new",
            "/console/groups/new",
            &[("name", "readers")],
        )
        .await;
    assert_eq!(answer.status, 303);
    let page = b.get(answer.header("location").unwrap()).await;
    assert!(
        page.body.contains("AccessDenied: User: arn:aws:iam::111122223333:user/reader is not authorized to perform: iam:CreateGroup"),
        "{}",
        page.body
    );
    assert!(group_names(&console).is_empty());

    // The administrator's change is recorded under the administrator's ARN.
    let mut admin = console.signed_in("admin").await;
    let answer = admin
        .submit(
            "/console/groups/new",
            "/console/groups/new",
            &[("name", "ops")],
        )
        .await;
    assert_eq!(answer.status, 303);
    let changes = console.cp.changes(A, 0, 1_000).unwrap();
    let change = changes.iter().find(|c| c.action == "CreateGroup").unwrap();
    assert_eq!(change.actor, "arn:aws:iam::111122223333:user/admin");
}

#[tokio::test]
async fn another_tenants_names_in_urls_reach_nothing_of_it() {
    let console = Console::start("tenants", 100).await;
    let mut b = console.signed_in("admin").await;
    let bob = b.get("/console/users/details/bob").await;
    assert_eq!(bob.status, 200);
    assert!(bob.body.contains("NoSuchEntity"), "{}", bob.body);
    assert!(!bob.body.contains(B), "nothing of tenant B is shown");
    let policy = console.call(B, "CreatePolicy", &json!({"PolicyName": "secret-b", "PolicyDocument": r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#}));
    let arn = policy["Policy"]["Arn"].as_str().unwrap();
    let page = b
        .get(&format!("/console/policies/view?arn={}", urlencode(arn)))
        .await;
    assert!(!page.body.contains("s3:*"), "{}", page.body);
    assert!(page.body.contains("role=\"alert\""), "{}", page.body);
    // Signing in to B with A's user fails.
    let mut other = console.browser();
    assert_eq!(other.sign_in(B, "admin", PASSWORD).await.status, 401);
}

#[tokio::test]
async fn failed_sign_ins_are_throttled() {
    let console = Console::start("throttle", 3).await;
    let mut b = console.browser();
    for _ in 0..3 {
        assert_eq!(b.sign_in(A, "admin", "wrong-password").await.status, 401);
    }
    let throttled = b.sign_in(A, "admin", PASSWORD).await;
    assert_eq!(throttled.status, 429, "{}", throttled.body);
    assert!(throttled.body.contains("Throttling"), "{}", throttled.body);
    let events = console.cp.events(A, 0, 100).unwrap();
    assert!(events
        .iter()
        .any(|e| e.action == "ConsoleLogin" && e.outcome == "Throttled"));
}

#[tokio::test]
async fn mfa_users_give_a_code_once_and_reset_passwords_are_changed_first() {
    let console = Console::start("mfa", 100).await;
    let device = console.call(
        A,
        "CreateVirtualMFADevice",
        &json!({"VirtualMFADeviceName": "reader"}),
    );
    let serial = device["VirtualMFADevice"]["SerialNumber"]
        .as_str()
        .unwrap()
        .to_owned();
    let seed = device["VirtualMFADevice"]["Base32StringSeed"]
        .as_str()
        .unwrap()
        .to_owned();
    let now = iamlet::policy::Timestamp::now().epoch_seconds();
    let code = |at: i64| iamlet::directory::totp::code_at(&seed, at).unwrap();
    console.call(
        A,
        "EnableMFADevice",
        &json!({"UserName": "reader", "SerialNumber": serial, "AuthenticationCode1": code(now - 60), "AuthenticationCode2": code(now - 30)}),
    );
    console.call(
        A,
        "UpdateLoginProfile",
        &json!({"UserName": "reader", "Password": PASSWORD, "PasswordResetRequired": true}),
    );
    console.call(
        A,
        "AttachUserPolicy",
        &json!({"UserName": "reader", "PolicyArn": "arn:aws:iam::aws:policy/IAMUserChangePassword"}),
    );

    let mut b = console.browser();
    let step = b.sign_in(A, "reader", PASSWORD).await;
    assert_eq!(step.status, 200);
    assert!(step.body.contains("MFA code"), "{}", step.body);
    let (csrf, pending) = (step.field("_csrf"), step.field("pending"));
    let wrong = b
        .post(
            "/console/signin/mfa",
            &[
                ("_csrf", &csrf),
                ("pending", &pending),
                ("mfa_code", "000000"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 401);
    let step = b.sign_in(A, "reader", PASSWORD).await;
    let (csrf, pending) = (step.field("_csrf"), step.field("pending"));
    let malformed = b
        .post(
            "/console/signin/mfa",
            &[
                ("_csrf", &csrf),
                ("pending", &pending),
                ("mfa_code", "12ab<>"),
            ],
        )
        .await;
    assert_eq!(malformed.status, 401, "a malformed code is a wrong code");

    let step = b.sign_in(A, "reader", PASSWORD).await;
    let (csrf, pending) = (step.field("_csrf"), step.field("pending"));
    let current = code(now);
    let ok = b
        .post(
            "/console/signin/mfa",
            &[
                ("_csrf", &csrf),
                ("pending", &pending),
                ("mfa_code", &current),
            ],
        )
        .await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert_eq!(ok.header("location"), Some("/console/change-password"));
    // Nothing else until the password is changed.
    assert_eq!(
        b.get("/console/users").await.header("location"),
        Some("/console/change-password")
    );
    let changed = b
        .submit(
            "/console/change-password",
            "/console/change-password",
            &[
                ("old", PASSWORD),
                ("new", "Another-Pass-42!"),
                ("again", "Another-Pass-42!"),
            ],
        )
        .await;
    assert_eq!(changed.status, 303, "{}", changed.body);
    assert_eq!(changed.header("location"), Some("/console/home"));
    assert_eq!(b.get("/console/home").await.status, 200);

    // The same code does not sign in twice.
    let mut again = console.browser();
    let step = again.sign_in(A, "reader", "Another-Pass-42!").await;
    let (csrf, pending) = (step.field("_csrf"), step.field("pending"));
    let replay = again
        .post(
            "/console/signin/mfa",
            &[
                ("_csrf", &csrf),
                ("pending", &pending),
                ("mfa_code", &current),
            ],
        )
        .await;
    assert_eq!(replay.status, 401, "a code is accepted once");
}

#[tokio::test]
async fn the_add_user_wizard_creates_everything_and_shows_the_credentials_once() {
    let console = Console::start("wizard", 100).await;
    console.call(A, "CreateGroup", &json!({"GroupName": "devs"}));
    let mut b = console.signed_in("admin").await;
    let created = b
        .submit(
            "/console/users/new",
            "/console/users/new",
            &[
                ("step", "review"),
                ("go", "create"),
                ("name", "carol"),
                ("access_key", "on"),
                ("console", "on"),
                ("password_kind", "custom"),
                ("password", "Carols-Pass-77!"),
                ("reset", "on"),
                ("mode", "group"),
                ("group", "devs"),
                ("tag_key_1", "team"),
                ("tag_value_1", "payments"),
            ],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert!(
        created.body.contains("id=\"secret-access-key\""),
        "{}",
        created.body
    );
    assert!(created.body.contains("Carols-Pass-77!"));
    let groups = console.call(A, "ListGroupsForUser", &json!({"UserName": "carol"}));
    assert_eq!(groups["Groups"][0]["GroupName"], "devs");
    let attached = console.call(A, "ListAttachedUserPolicies", &json!({"UserName": "carol"}));
    assert_eq!(
        attached["AttachedPolicies"][0]["PolicyName"], "IAMUserChangePassword",
        "a reset needs the right to change it"
    );
    let user = console.call(A, "GetUser", &json!({"UserName": "carol"}));
    assert_eq!(user["User"]["Tags"][0]["Value"], "payments");

    // A user may be called `new`: its page is not the wizard's.
    console.call(A, "CreateUser", &json!({"UserName": "new"}));
    let page = b.get("/console/users/details/new").await;
    assert!(
        page.body.contains("arn:aws:iam::111122223333:user/new"),
        "{}",
        page.body
    );

    let csv = b.get("/console/users/credentials.csv").await;
    assert_eq!(csv.status, 200);
    assert!(csv
        .header("content-disposition")
        .unwrap()
        .contains("carol_credentials.csv"));
    assert!(
        csv.body.contains("\"carol\"") && csv.body.contains("Carols-Pass-77!"),
        "{}",
        csv.body
    );
    assert_eq!(
        b.get("/console/users/credentials.csv").await.status,
        404,
        "downloaded once"
    );

    // A refused step leaves nothing behind: the group does not exist.
    let refused = b
        .submit(
            "/console/users/new",
            "/console/users/new",
            &[
                ("step", "review"),
                ("go", "create"),
                ("name", "dave"),
                ("console", "on"),
                ("password_kind", "custom"),
                ("password", "Daves-Pass-77!"),
                ("mode", "group"),
                ("group", "no-such-group"),
            ],
        )
        .await;
    assert_eq!(refused.status, 200);
    assert!(refused.body.contains("NoSuchEntity"), "{}", refused.body);
    assert!(
        console
            .cp
            .call(A, "test", "GetUser", &json!({"UserName": "dave"}))
            .is_err(),
        "undone"
    );
}

fn three_days_ago() -> i64 {
    iamlet::control_plane::system_clock() - 3 * 86_400
}

#[tokio::test]
async fn an_expired_password_is_changed_first_or_refused_under_hard_expiry() {
    // The passwords were set three days ago; they live one day.
    let console = Console::start_with("expiry", 100, three_days_ago).await;
    console.call(
        A,
        "UpdateAccountPasswordPolicy",
        &json!({"MaxPasswordAge": 1, "HardExpiry": true, "AllowUsersToChangePassword": true}),
    );
    let mut b = console.browser();
    let refused = b.sign_in(A, "reader", PASSWORD).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(
        refused.body.contains("an administrator must reset it"),
        "{}",
        refused.body
    );

    console.call(
        A,
        "UpdateAccountPasswordPolicy",
        &json!({"MaxPasswordAge": 1, "HardExpiry": false, "AllowUsersToChangePassword": true}),
    );
    let expired = b.sign_in(A, "reader", PASSWORD).await;
    assert_eq!(expired.status, 303, "{}", expired.body);
    assert_eq!(expired.header("location"), Some("/console/change-password"));
}
