//! AWS's IAM Query API on the control plane's HTTP edge, over real HTTP on loopback: SigV4
//! signed forms as the AWS CLI sends them, XML answers in IAM's shapes, paging by `Marker`,
//! and every refusal with AWS's code and status.

use std::sync::Arc;
use std::time::Duration;

use data_encoding::HEXLOWER;
use iamlet::control_plane::{
    Admin, AdminAuth, ControlPlane, FailureLimit, SecretSealer, SqliteStore,
};
use iamlet::directory::{IdGenerator, PasswordHasher};
use iamlet::http::Probes;
use iamlet::policy::Timestamp;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const A: &str = "111122223333";
const ADMIN_POLICY: &str = "arn:aws:iam::aws:policy/AdministratorAccess";
const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
/// A bound on every exchange: a hung edge fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(30);

struct Ready;

impl Probes for Ready {
    fn ready(&self) -> bool {
        true
    }
    fn metrics(&self) -> String {
        "# TYPE iamlet_test_total counter\niamlet_test_total 1\n".into()
    }
}

/// A key and its secret.
#[derive(Clone)]
struct Key {
    id: String,
    secret: String,
}

/// A control plane with tenant A, its user `admin` (AdministratorAccess) and user `reader`
/// (no policy), served by the IAM Query edge.
struct Edge {
    addr: std::net::SocketAddr,
    cp: Arc<ControlPlane>,
    admin: Key,
    reader: Key,
}

impl Edge {
    async fn start(name: &str) -> Self {
        let data = super::support::temp_dir("iam-query", name);
        let sealer = SecretSealer::load_or_create(&data.join("secrets.key")).unwrap();
        let store = SqliteStore::open(&data.join("iamlet.db"), None)
            .unwrap()
            .with_sealer(sealer);
        let cp = Arc::new(
            super::support::signed(
                ControlPlane::open(Arc::new(store), IdGenerator::system()).unwrap(),
            )
            .with_password_hasher(PasswordHasher::with_iterations(1_000)),
        );
        cp.create_tenant_with_root(A, None, "test").unwrap();
        let key = |user: &str| {
            cp.call(A, "test", "CreateUser", &json!({ "UserName": user }))
                .unwrap();
            let (out, _) = cp
                .call(A, "test", "CreateAccessKey", &json!({ "UserName": user }))
                .unwrap();
            Key {
                id: out["AccessKey"]["AccessKeyId"].as_str().unwrap().to_owned(),
                secret: out["AccessKey"]["SecretAccessKey"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            }
        };
        let admin = key("admin");
        let reader = key("reader");
        cp.call(
            A,
            "test",
            "AttachUserPolicy",
            &json!({"UserName": "admin", "PolicyArn": ADMIN_POLICY}),
        )
        .unwrap();
        let auth = AdminAuth::new(Vec::new(), Vec::new()).with_failure_limit(FailureLimit {
            max_failures: 1_000,
            window_seconds: 60,
        });
        let router = iamlet::http::iam::routes(
            Admin::new(Arc::clone(&cp), Arc::new(auth)),
            Arc::new(Ready),
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
        Self {
            addr,
            cp,
            admin,
            reader,
        }
    }

    /// `POST /` with `form`, signed by `key` for `service` at `at`.
    async fn post_signed(&self, form: &str, key: &Key, service: &str, at: Timestamp) -> Answer {
        let host = self.addr.to_string();
        let headers = sign("POST", "", &host, form.as_bytes(), key, service, at);
        self.send("POST", "/", &headers, form.as_bytes()).await
    }

    /// `POST /` with `form`, signed by `key` now for `iam`.
    async fn post(&self, form: &str, key: &Key) -> Answer {
        self.post_signed(form, key, "iam", Timestamp::now()).await
    }

    /// `POST /` with `form` as the administrator, which must succeed.
    async fn ok(&self, form: &str) -> String {
        let answer = self.post(form, &self.admin.clone()).await;
        assert_eq!(answer.status, 200, "{form}: {}", answer.body);
        answer.body
    }

    /// One request over a new connection (`connection: close`), read to its end.
    async fn send(
        &self,
        method: &str,
        target: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Answer {
        let mut request = format!("{method} {target} HTTP/1.1\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        if !headers.iter().any(|(n, _)| n == "content-length") {
            request.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        request.push_str("connection: close\r\n\r\n");
        let exchange = async {
            let mut stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
            stream.write_all(request.as_bytes()).await.unwrap();
            // The edge may answer before reading a body it refuses; a write error is fine.
            let _ = stream.write_all(body).await;
            let mut raw = Vec::new();
            let _ = stream.read_to_end(&mut raw).await;
            raw
        };
        let raw = tokio::time::timeout(PATIENCE, exchange).await.unwrap();
        Answer::parse(&String::from_utf8_lossy(&raw))
    }
}

/// An HTTP answer: status, headers (lowercase names) and body.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn parse(text: &str) -> Self {
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.get(9..12))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Self {
            status,
            headers,
            body: body.to_owned(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Asserts an `<ErrorResponse>` with `code` and `status`.
    fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert!(
            self.body
                .starts_with("<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">"),
            "{}",
            self.body
        );
        assert!(
            self.body.contains(&format!("<Code>{code}</Code>")),
            "{}",
            self.body
        );
        assert!(
            self.header("x-amzn-requestid").is_some(),
            "{:?}",
            self.headers
        );
    }
}

/// The text of the first `<name>` element of `xml`.
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml.get(start..)?.find(&format!("</{name}>"))? + start;
    xml.get(start..end)
}

/// Every `<name>` text of `xml`, in order.
fn elements<'a>(xml: &'a str, name: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(text) = element(rest, name) {
        out.push(text);
        let open = format!("<{name}>");
        let Some(at) = rest.find(&open) else { break };
        rest = rest.get(at + open.len() + text.len()..).unwrap_or_default();
    }
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    HEXLOWER.encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// The headers of a request signed with SigV4 (header form) as the AWS CLI signs a Query
/// call: `host`, `content-type`, `x-amz-date` signed, the body's hash in the scope.
fn sign(
    method: &str,
    query: &str,
    host: &str,
    body: &[u8],
    key: &Key,
    service: &str,
    at: Timestamp,
) -> Vec<(String, String)> {
    let amz_date: String = Timestamp::from_epoch_seconds(at.epoch_seconds())
        .to_string()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    let date = amz_date.get(..8).unwrap().to_owned();
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let signed_headers = "content-type;host;x-amz-date";
    let canonical = format!(
        "{method}\n/\n{query}\ncontent-type:{content_type}\nhost:{host}\nx-amz-date:{amz_date}\n\n{signed_headers}\n{}",
        sha256_hex(body)
    );
    let scope = format!("{date}/us-east-1/{service}/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let signature =
        iamlet::sts::sigv4::SigningKey::derive(key.secret.as_bytes(), &date, "us-east-1", service)
            .sign_hex(&string_to_sign);
    vec![
        ("host".into(), host.to_owned()),
        ("content-type".into(), content_type.into()),
        ("x-amz-date".into(), amz_date),
        (
            "authorization".into(),
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
                key.id
            ),
        ),
    ]
}

const V: &str = "Version=2010-05-08";

#[tokio::test]
async fn users_are_created_read_and_listed_page_by_page() {
    let edge = Edge::start("crud").await;
    let created = edge
        .ok(&format!(
            "Action=CreateUser&{V}&UserName=carol&Path=%2Fteam%2F&Tags.member.1.Key=team&Tags.member.1.Value=data"
        ))
        .await;
    assert!(
        created.starts_with(
            "<CreateUserResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">"
        ),
        "{created}"
    );
    assert!(created.contains("<CreateUserResult>"), "{created}");
    assert_eq!(
        element(&created, "Arn"),
        Some("arn:aws:iam::111122223333:user/team/carol")
    );
    assert!(
        created.contains("<Tags><member><Key>team</Key><Value>data</Value></member></Tags>"),
        "{created}"
    );
    assert!(element(&created, "RequestId").is_some(), "{created}");

    let got = edge.ok(&format!("Action=GetUser&{V}&UserName=carol")).await;
    assert_eq!(element(&got, "Path"), Some("/team/"));
    let created_at = element(&got, "CreateDate").unwrap();
    assert!(
        created_at.len() == 20 && created_at.ends_with('Z'),
        "{created_at}"
    );

    // admin, carol, reader: one a page, in name order, each page naming the next.
    let mut names = Vec::new();
    let mut marker: Option<String> = None;
    for _ in 0..10 {
        let mut form = format!("Action=ListUsers&{V}&MaxItems=1");
        if let Some(m) = &marker {
            form.push_str(&format!("&Marker={m}"));
        }
        let page = edge.ok(&form).await;
        names.extend(elements(&page, "UserName").into_iter().map(str::to_owned));
        match element(&page, "IsTruncated") {
            Some("true") => marker = Some(element(&page, "Marker").unwrap().to_owned()),
            Some("false") => {
                assert!(element(&page, "Marker").is_none(), "{page}");
                marker = None;
                break;
            }
            other => panic!("IsTruncated {other:?}: {page}"),
        }
    }
    assert!(marker.is_none(), "paging did not end");
    assert_eq!(names, ["admin", "carol", "reader"]);

    // A change the call made is in the audit trail, by the caller.
    let changes = edge.cp.changes(A, 0, 100).unwrap();
    let last = changes.last().unwrap();
    assert_eq!(last.action, "CreateUser");
    assert!(last.actor.contains("user/admin"), "{}", last.actor);

    // Actions without output answer no result element.
    let deleted = edge
        .ok(&format!("Action=DeleteUser&{V}&UserName=carol"))
        .await;
    assert!(!deleted.contains("<DeleteUserResult>"), "{deleted}");
    assert!(deleted.contains("<DeleteUserResponse "), "{deleted}");
}

#[tokio::test]
async fn documents_lists_integers_and_booleans_take_aws_forms() {
    let edge = Edge::start("forms").await;
    let trust = iamlet_form_encode(TRUST);
    let role = edge
        .ok(&format!(
            "Action=CreateRole&{V}&RoleName=app&AssumeRolePolicyDocument={trust}&MaxSessionDuration=7200"
        ))
        .await;
    // The trust policy comes back URL-encoded, as AWS returns it.
    let document = element(&role, "AssumeRolePolicyDocument").unwrap();
    assert!(
        document.starts_with("%7B%22Version%22%3A%222012-10-17%22"),
        "{document}"
    );
    assert_eq!(element(&role, "MaxSessionDuration"), Some("7200"));
    edge.ok(&format!(
        "Action=TagRole&{V}&RoleName=app&Tags.member.1.Key=team&Tags.member.1.Value=data&Tags.member.2.Key=env&Tags.member.2.Value=prod"
    ))
    .await;
    let tags = edge
        .ok(&format!("Action=ListRoleTags&{V}&RoleName=app"))
        .await;
    assert_eq!(elements(&tags, "Key"), ["env", "team"]);
    edge.ok(&format!(
        "Action=UntagRole&{V}&RoleName=app&TagKeys.member.1=env"
    ))
    .await;
    let tags = edge
        .ok(&format!("Action=ListRoleTags&{V}&RoleName=app"))
        .await;
    assert_eq!(elements(&tags, "Key"), ["team"]);

    let doc = iamlet_form_encode(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#,
    );
    let policy = edge
        .ok(&format!(
            "Action=CreatePolicy&{V}&PolicyName=read&PolicyDocument={doc}"
        ))
        .await;
    let arn = element(&policy, "Arn").unwrap().to_owned();
    let version = edge
        .ok(&format!(
            "Action=CreatePolicyVersion&{V}&PolicyArn={}&PolicyDocument={doc}&SetAsDefault=true",
            iamlet_form_encode(&arn)
        ))
        .await;
    assert_eq!(element(&version, "IsDefaultVersion"), Some("true"));
    assert_eq!(element(&version, "VersionId"), Some("v2"));
    let got = edge
        .ok(&format!(
            "Action=GetPolicyVersion&{V}&PolicyArn={}&VersionId=v2",
            iamlet_form_encode(&arn)
        ))
        .await;
    assert!(
        element(&got, "Document")
            .unwrap()
            .starts_with("%7B%22Version%22"),
        "{got}"
    );
    // A GET with the form in its query string works as well (sorted: it is signed as is).
    let query = format!("Action=GetRole&RoleName=app&{V}");
    let host = edge.addr.to_string();
    let headers = sign(
        "GET",
        &query,
        &host,
        b"",
        &edge.admin,
        "iam",
        Timestamp::now(),
    );
    let answer = edge.send("GET", &format!("/?{query}"), &headers, b"").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(element(&answer.body, "RoleName"), Some("app"));
}

/// Form encoding as botocore writes it (RFC 3986 unreserved characters kept).
fn iamlet_form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn refusals_carry_aws_codes_and_statuses() {
    let edge = Edge::start("errors").await;
    let admin = edge.admin.clone();

    // Credentials.
    let wrong_secret = Key {
        secret: "x".repeat(40),
        ..admin.clone()
    };
    edge.post(&format!("Action=ListUsers&{V}"), &wrong_secret)
        .await
        .assert_error(403, "SignatureDoesNotMatch");
    let unknown = Key {
        id: "AKIAY3KHLKFPQ4JTMAAA".into(),
        ..admin.clone()
    };
    edge.post(&format!("Action=ListUsers&{V}"), &unknown)
        .await
        .assert_error(403, "InvalidClientTokenId");
    let stale = Timestamp::from_epoch_seconds(Timestamp::now().epoch_seconds() - 20 * 60);
    let answer = edge
        .post_signed(&format!("Action=ListUsers&{V}"), &admin, "iam", stale)
        .await;
    answer.assert_error(403, "SignatureDoesNotMatch");
    assert!(
        answer.body.to_ascii_lowercase().contains("expired"),
        "{}",
        answer.body
    );
    edge.post_signed(
        &format!("Action=ListUsers&{V}"),
        &admin,
        "sts",
        Timestamp::now(),
    )
    .await
    .assert_error(403, "SignatureDoesNotMatch");
    let unsigned = edge
        .send(
            "POST",
            "/",
            &[(
                "content-type".to_owned(),
                "application/x-www-form-urlencoded".to_owned(),
            )],
            format!("Action=ListUsers&{V}").as_bytes(),
        )
        .await;
    unsigned.assert_error(403, "MissingAuthenticationToken");

    // The form.
    edge.post(&format!("Action=ListEverything&{V}"), &admin)
        .await
        .assert_error(400, "InvalidAction");
    edge.post("Action=ListUsers&Version=2011-06-15", &admin)
        .await
        .assert_error(400, "InvalidAction");
    edge.post(&format!("Action=CreateUser&{V}"), &admin)
        .await
        .assert_error(400, "MissingParameter");
    let answer = edge
        .post(&format!("Action=ListUsers&{V}&MaxItems=ten"), &admin)
        .await;
    answer.assert_error(400, "ValidationError");
    assert!(answer.body.contains("maxItems"), "{}", answer.body);
    edge.post(&format!("Action=ListUsers&{V}&MaxItems=1001"), &admin)
        .await
        .assert_error(400, "ValidationError");
    edge.post(&format!("Action=ListUsers&{V}&Marker=bogus"), &admin)
        .await
        .assert_error(400, "ValidationError");
    edge.post(
        &format!(
            "Action=CreateRole&{V}&RoleName=r&AssumeRolePolicyDocument=%7B&SetAsDefault=maybe"
        ),
        &admin,
    )
    .await
    .assert_error(400, "ValidationError");

    // The directory's answers.
    edge.post(&format!("Action=GetUser&{V}&UserName=nobody"), &admin)
        .await
        .assert_error(404, "NoSuchEntity");
    edge.post(&format!("Action=CreateUser&{V}&UserName=reader"), &admin)
        .await
        .assert_error(409, "EntityAlreadyExists");
    edge.post(
        &format!("Action=CreateUser&{V}&UserName=x"),
        &edge.reader.clone(),
    )
    .await
    .assert_error(403, "AccessDenied");

    // A body over the limit is refused without being read.
    let host = edge.addr.to_string();
    let answer = edge
        .send(
            "POST",
            "/",
            &[
                ("host".into(), host),
                ("content-length".into(), (2 << 20).to_string()),
            ],
            b"Action=ListUsers",
        )
        .await;
    assert_eq!(answer.status, 413, "{}", answer.body);

    // Refusals before the admin API are counted on the metrics page, beside the probes'.
    let metrics = edge.send("GET", "/metrics", &[], b"").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.body.contains("iamlet_test_total 1"),
        "{}",
        metrics.body
    );
    assert!(
        metrics
            .body
            .contains("iamlet_http_refused_total{edge=\"iam\",code=\"ValidationError\"}"),
        "{}",
        metrics.body
    );
    assert!(
        metrics
            .body
            .contains("iamlet_iam_query_calls_total{code=\"NoSuchEntity\"} 1"),
        "{}",
        metrics.body
    );
    // No secret reached an answer or the metrics.
    assert!(!metrics.body.contains(&admin.secret));
}
