//! AWS's own protocols on the sidecar's HTTP edge, in process over loopback: the STS Query API
//! with requests signed here by hand (SigV4 with `iamlet::sts::sigv4::SigningKey`), the
//! unsigned web identity exchange, every error code and status, the body limit, request ids
//! and the refusal counters.

use std::net::SocketAddr;

use iamlet::jose::Es256Signer;
use iamlet::policy::Timestamp;
use iamlet::sts::sigv4::SigningKey;
use ring::digest;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::credentials::{Creds, Fixture, A};

const HOST: &str = "sts.local";
/// Request headers, (name, value).
type Headers = Vec<(String, String)>;
const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// A reply: status, headers (names lowercase) and body.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The text of the first `<name>` element.
    fn element(&self, name: &str) -> Option<&str> {
        let open = format!("<{name}>");
        let start = self.body.find(&open)? + open.len();
        let end = self.body[start..].find(&format!("</{name}>"))? + start;
        Some(&self.body[start..end])
    }

    /// Asserts an `ErrorResponse` of `code` with `status`, its request id in the header.
    fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{code}: {}", self.body);
        assert_eq!(self.element("Code"), Some(code), "{}", self.body);
        assert!(
            self.body
                .starts_with("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"),
            "{}",
            self.body
        );
        let fault = if status >= 500 { "Receiver" } else { "Sender" };
        assert_eq!(self.element("Type"), Some(fault));
        assert_eq!(self.element("RequestId"), self.header("x-amzn-requestid"));
    }
}

/// One HTTP/1.1 request on its own connection.
pub(crate) async fn send(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: &str,
) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut head = format!("{method} {target} HTTP/1.1\r\nconnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut raw),
    )
    .await
    .unwrap()
    .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    // The server answers whole bodies with a length, never chunked, on this edge.
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

fn sha256_hex(data: &[u8]) -> String {
    digest::digest(&digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `yyyymmddThhmmssZ`.
fn amz_date(at: Timestamp) -> String {
    Timestamp::from_epoch_seconds(at.epoch_seconds())
        .to_string()
        .replace(['-', ':'], "")
}

/// RFC 3986 encoding, as SigV4's canonical query wants it.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The headers of a POST of `body` signed with `creds` for `service` at `at`: content type,
/// host, date, the session token when there is one, and `Authorization`.
fn signed_post(creds: &Creds, body: &str, at: Timestamp, service: &str) -> Vec<(String, String)> {
    let date = amz_date(at);
    let mut headers = vec![
        ("content-type".to_owned(), FORM.to_owned()),
        ("host".to_owned(), HOST.to_owned()),
        ("x-amz-date".to_owned(), date.clone()),
    ];
    if !creds.token.is_empty() {
        headers.push(("x-amz-security-token".to_owned(), creds.token.clone()));
    }
    let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    let signed = signed.join(";");
    let canonical = format!(
        "POST\n/\n\n{canonical_headers}\n{signed}\n{}",
        sha256_hex(body.as_bytes())
    );
    let scope = format!("{}/us-west-2/{service}/aws4_request", &date[..8]);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let key = SigningKey::derive(creds.secret.as_bytes(), &date[..8], "us-west-2", service);
    headers.push((
        "authorization".to_owned(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={}",
            creds.id,
            key.sign_hex(&to_sign)
        ),
    ));
    headers
}

/// A presigned `GET /?…` of `params`, as AWS's presigners make them (`UNSIGNED-PAYLOAD`).
fn presigned_get(creds: &Creds, params: &[(&str, &str)], at: Timestamp) -> String {
    let date = amz_date(at);
    let scope = format!("{}/us-east-1/sts/aws4_request", &date[..8]);
    let credential = format!("{}/{scope}", creds.id);
    let mut query: Vec<(String, String)> = params
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .chain([
            ("X-Amz-Algorithm".into(), "AWS4-HMAC-SHA256".into()),
            ("X-Amz-Credential".into(), credential),
            ("X-Amz-Date".into(), date.clone()),
            ("X-Amz-Expires".into(), "60".into()),
            ("X-Amz-SignedHeaders".into(), "host".into()),
        ])
        .collect();
    query.sort();
    let canonical_query = query
        .iter()
        .map(|(n, v)| format!("{}={}", encode(n), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let canonical = format!("GET\n/\n{canonical_query}\nhost:{HOST}\n\nhost\nUNSIGNED-PAYLOAD");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let key = SigningKey::derive(creds.secret.as_bytes(), &date[..8], "us-east-1", "sts");
    format!(
        "/?{canonical_query}&X-Amz-Signature={}",
        key.sign_hex(&to_sign)
    )
}

fn host_only() -> Vec<(String, String)> {
    vec![
        ("host".to_owned(), HOST.to_owned()),
        ("content-type".to_owned(), FORM.to_owned()),
    ]
}

/// The fixture's sidecar behind the HTTP edge `iamlet up` and `iamlet sidecar` serve.
pub(crate) async fn edge(f: &Fixture) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(iamlet::http::serve(
        iamlet::http::sts::sidecar_routes(&f.handle, false),
        listener,
        None,
        std::future::pending(),
    ));
    addr
}

fn policy(statements: &serde_json::Value) -> String {
    json!({"Version": "2012-10-17", "Statement": statements}).to_string()
}

/// A user allowed to assume any role and tag sessions, and a role trusting it.
fn user_and_role(f: &Fixture, user: &str, role: &str) -> (Creds, String) {
    let creds = f.user_with_key(
        A,
        user,
        Some(&policy(&json!([{
            "Effect": "Allow",
            "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Resource": "*"
        }]))),
    );
    let trust = policy(&json!([{
        "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{A}:user/{user}")},
        "Action": ["sts:AssumeRole", "sts:TagSession"]
    }]));
    let (arn, _) = f.role(
        A,
        role,
        &trust,
        &policy(&json!([{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}])),
    );
    (creds, arn)
}

fn creds_of(reply: &Reply) -> Creds {
    Creds {
        id: reply.element("AccessKeyId").unwrap().to_owned(),
        secret: reply.element("SecretAccessKey").unwrap().to_owned(),
        token: reply.element("SessionToken").unwrap().to_owned(),
    }
}

#[tokio::test]
async fn signed_calls_answer_in_the_service_models_shapes() {
    let f = Fixture::start("query-signed").await;
    let (alice, role_arn) = user_and_role(&f, "alice", "reader");
    f.synced().await;
    let addr = edge(&f).await;

    let body =
        format!(
        "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=s1&DurationSeconds=900\
         &Tags.member.1.Key=team&Tags.member.1.Value=data&TransitiveTagKeys.member.1=team\
         &Policy={}",
        encode(&role_arn),
        encode(&policy(&json!([{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}])))
    );
    let reply = send(
        addr,
        "POST",
        "/",
        &signed_post(&alice, &body, Timestamp::now(), "sts"),
        &body,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("content-type"), Some("text/xml"));
    let id = reply.header("x-amzn-requestid").unwrap();
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(reply.element("RequestId"), Some(id));
    // The model's member order: Credentials, AssumedRoleUser, PackedPolicySize.
    let order: Vec<usize> = [
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">",
        "<AssumeRoleResult>",
        "<Credentials>",
        "<AccessKeyId>",
        "<SecretAccessKey>",
        "<SessionToken>",
        "<Expiration>",
        "<AssumedRoleUser>",
        "<AssumedRoleId>",
        "<Arn>",
        "<PackedPolicySize>",
        "</AssumeRoleResult>",
        "<ResponseMetadata>",
    ]
    .iter()
    .map(|e| {
        reply
            .body
            .find(e)
            .unwrap_or_else(|| panic!("{e}: {}", reply.body))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{}", reply.body);
    assert_eq!(
        reply.element("Arn"),
        Some(format!("arn:aws:sts::{A}:assumed-role/reader/s1").as_str())
    );
    assert!(reply.element("AccessKeyId").unwrap().starts_with("ASIA"));
    let expiration = reply.element("Expiration").unwrap();
    assert!(
        expiration.ends_with('Z') && expiration.len() == 20,
        "{expiration}"
    );
    let session = creds_of(&reply);

    // The session, signed with its token, is the assumed role.
    let body = "Action=GetCallerIdentity&Version=2011-06-15";
    let reply = send(
        addr,
        "POST",
        "/",
        &signed_post(&session, body, Timestamp::now(), "sts"),
        body,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.element("Arn"),
        Some(format!("arn:aws:sts::{A}:assumed-role/reader/s1").as_str())
    );
    assert_eq!(reply.element("Account"), Some(A));

    // A presigned GET (the query is signed, the payload is UNSIGNED-PAYLOAD).
    let target = presigned_get(
        &alice,
        &[("Action", "GetCallerIdentity"), ("Version", "2011-06-15")],
        Timestamp::now(),
    );
    let reply = send(
        addr,
        "GET",
        &target,
        &[("host".to_owned(), HOST.to_owned())],
        "",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.element("Arn"),
        Some(format!("arn:aws:iam::{A}:user/alice").as_str())
    );

    // GetSessionToken and GetAccessKeyInfo.
    let body = "Action=GetSessionToken&Version=2011-06-15&DurationSeconds=900";
    let reply = send(
        addr,
        "POST",
        "/",
        &signed_post(&alice, body, Timestamp::now(), "sts"),
        body,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("<GetSessionTokenResult>"));
    assert!(!reply.body.contains("AssumedRoleUser"));
    assert!(reply.element("SessionToken").is_some());
    let body = format!(
        "Action=GetAccessKeyInfo&Version=2011-06-15&AccessKeyId={}",
        session.id
    );
    let reply = send(
        addr,
        "POST",
        "/",
        &signed_post(&alice, &body, Timestamp::now(), "sts"),
        &body,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.element("Account"), Some(A));
    assert!(reply.body.contains("<GetAccessKeyInfoResult>"));
}

#[tokio::test]
async fn web_identity_is_unsigned() {
    let f = Fixture::start("query-web-identity").await;
    let signer = Es256Signer::generate("k1").unwrap();
    let host = "oidc.example.com/id/X";
    let issuer = format!("https://{host}");
    let (provider, _) = f.call(
        A,
        "CreateOpenIDConnectProvider",
        &json!({
            "Url": issuer,
            "ClientIDList": ["sts.amazonaws.com"],
            "ThumbprintList": ["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"],
            "Jwks": signer.jwks(),
        }),
    );
    let trust = policy(&json!([{
        "Effect": "Allow",
        "Principal": {"Federated": provider["OpenIDConnectProviderArn"]},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {format!("{host}:sub"): "pod"}}
    }]));
    let (role_arn, _) = f.role(
        A,
        "pods",
        &trust,
        &policy(&json!([{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}])),
    );
    f.synced().await;
    let addr = edge(&f).await;
    let now = Timestamp::now().epoch_seconds();
    let token = |sub: &str| {
        signer
            .sign(&json!({"iss": issuer, "sub": sub, "aud": "sts.amazonaws.com", "iat": now - 5, "exp": now + 600}))
            .unwrap()
    };
    let body = |token: &str| {
        format!(
            "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName=p1&WebIdentityToken={}",
            encode(&role_arn),
            encode(token)
        )
    };
    let reply = send(addr, "POST", "/", &host_only(), &body(&token("pod"))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.element("SubjectFromWebIdentityToken"), Some("pod"));
    assert_eq!(reply.element("Provider"), Some(issuer.as_str()));
    assert_eq!(reply.element("Audience"), Some("sts.amazonaws.com"));
    assert_eq!(
        reply.element("Arn"),
        Some(format!("arn:aws:sts::{A}:assumed-role/pods/p1").as_str())
    );
    assert!(
        reply.element("PackedPolicySize").is_none(),
        "{}",
        reply.body
    );
    let order: Vec<usize> = [
        "<Credentials>",
        "<SubjectFromWebIdentityToken>",
        "<AssumedRoleUser>",
        "<Provider>",
        "<Audience>",
    ]
    .iter()
    .map(|e| reply.body.find(e).unwrap())
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{}", reply.body);

    // Another subject: the trust policy does not allow it.
    send(addr, "POST", "/", &host_only(), &body(&token("other")))
        .await
        .assert_error(403, "AccessDenied");
    // A token that is not a JWT.
    send(addr, "POST", "/", &host_only(), &body("not-a-jwt"))
        .await
        .assert_error(400, "InvalidIdentityToken");
}

#[tokio::test]
async fn every_bad_input_gets_awss_code_and_status_and_is_counted() {
    let f = Fixture::start("query-errors").await;
    let (alice, role_arn) = user_and_role(&f, "alice", "reader");
    let (bob, _) = user_and_role(&f, "bob", "other");
    f.synced().await;
    let addr = edge(&f).await;
    let now = Timestamp::now();
    let assume = format!(
        "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=s2",
        encode(&role_arn)
    );
    let post = |creds: &Creds, body: &str| signed_post(creds, body, now, "sts");

    // Before the domain: the request does not decode, or names no operation.
    let cases: Vec<(Headers, String, u16, &str)> = vec![
        (
            host_only(),
            "Action=Frobnicate&Version=2011-06-15".into(),
            400,
            "InvalidAction",
        ),
        (
            host_only(),
            "Action=GetFederationToken&Version=2011-06-15".into(),
            400,
            "InvalidAction",
        ),
        (
            host_only(),
            "Version=2011-06-15".into(),
            400,
            "MissingParameter",
        ),
        (
            host_only(),
            "Action=GetCallerIdentity&Version=2010-05-08".into(),
            400,
            "InvalidAction",
        ),
        (
            host_only(),
            "Action=GetCallerIdentity".into(),
            400,
            "MissingParameter",
        ),
        (
            host_only(),
            "Action=GetCallerIdentity&Version=%zz".into(),
            400,
            "MalformedQueryString",
        ),
        (
            host_only(),
            "Action=GetCallerIdentity&Action=AssumeRole".into(),
            400,
            "InvalidParameterValue",
        ),
        (
            vec![("content-type".into(), "application/json".into())],
            "{\"Action\":\"GetCallerIdentity\"}".into(),
            415,
            "UnsupportedMediaType",
        ),
        // Signed operations without a signature, or with a broken one.
        (
            host_only(),
            assume.clone(),
            403,
            "MissingAuthenticationToken",
        ),
        (
            post(&alice.with_secret("wrong"), &assume),
            assume.clone(),
            403,
            "SignatureDoesNotMatch",
        ),
        (
            post(&alice, &assume),
            format!("{assume}&DurationSeconds=900"),
            403,
            "SignatureDoesNotMatch",
        ),
        (
            signed_post(
                &alice,
                &assume,
                Timestamp::from_epoch_seconds(now.epoch_seconds() - 600),
                "sts",
            ),
            assume.clone(),
            403,
            "SignatureDoesNotMatch",
        ),
        (
            signed_post(&alice, &assume, now, "iam"),
            assume.clone(),
            403,
            "SignatureDoesNotMatch",
        ),
        (
            post(
                &Creds {
                    id: "AKIAAAAAAAAAAAAAAAAA".into(),
                    ..alice.clone()
                },
                &assume,
            ),
            assume.clone(),
            403,
            "InvalidClientTokenId",
        ),
    ];
    for (headers, body, status, code) in &cases {
        let reply = send(addr, "POST", "/", headers, body).await;
        reply.assert_error(*status, code);
    }
    let expired = send(
        addr,
        "POST",
        "/",
        &signed_post(
            &alice,
            &assume,
            Timestamp::from_epoch_seconds(now.epoch_seconds() - 600),
            "sts",
        ),
        &assume,
    )
    .await;
    assert!(
        expired
            .element("Message")
            .unwrap()
            .starts_with("Signature expired"),
        "{}",
        expired.body
    );

    // The domain's refusals.
    let with = |extra: &str| format!("{assume}{extra}");
    let domain: Vec<(Creds, String, u16, &str)> = vec![
        (bob.clone(), assume.clone(), 403, "AccessDenied"),
        (
            alice.clone(),
            with("&Policy=not-json"),
            400,
            "MalformedPolicyDocument",
        ),
        (
            alice.clone(),
            with("&DurationSeconds=10"),
            400,
            "ValidationError",
        ),
        (
            alice.clone(),
            with("&DurationSeconds=ten"),
            400,
            "ValidationError",
        ),
        (
            alice.clone(),
            with("&Tags.member.1.Key=k"),
            400,
            "MissingParameter",
        ),
        (
            alice.clone(),
            with("&Tags.member.2.Key=k&Tags.member.2.Value=v"),
            400,
            "InvalidParameterValue",
        ),
        (
            alice.clone(),
            format!(
                "{assume}{}",
                (1..=50)
                    .map(|i| format!(
                        "&Tags.member.{i}.Key=key{i}{}&Tags.member.{i}.Value={}",
                        "k".repeat(100),
                        "v".repeat(250)
                    ))
                    .collect::<String>()
            ),
            400,
            "PackedPolicyTooLarge",
        ),
        (
            alice.clone(),
            "Action=GetAccessKeyInfo&Version=2011-06-15&AccessKeyId=nope".into(),
            400,
            "ValidationError",
        ),
        (
            alice.clone(),
            "Action=GetAccessKeyInfo&Version=2011-06-15".into(),
            400,
            "MissingParameter",
        ),
    ];
    for (creds, body, status, code) in &domain {
        let reply = send(addr, "POST", "/", &post(creds, body), body).await;
        reply.assert_error(*status, code);
        assert!(
            !reply.body.contains(&creds.secret),
            "an error echoed a secret: {}",
            reply.body
        );
    }

    // Every refusal is counted: at the edge by code, and per operation by the domain.
    let metrics = send(addr, "GET", "/metrics", &host_only(), "").await;
    assert_eq!(metrics.status, 200);
    let count = |series: &str| -> u64 {
        metrics
            .body
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series} not in {}", metrics.body))
    };
    // The counters are process-wide; other tests of this binary add to them too.
    assert!(count("iamlet_http_refused_total{edge=\"sts\",code=\"InvalidAction\"}") >= 3);
    assert!(count("iamlet_http_refused_total{edge=\"sts\",code=\"SignatureDoesNotMatch\"}") >= 1);
    assert!(count("iamlet_http_refused_total{edge=\"sts\",code=\"UnsupportedMediaType\"}") >= 1);
    assert!(
        count("iamlet_request_duration_seconds_count{method=\"AssumeRole\",result=\"error\"}")
            >= 12
    );
    assert!(
        count(
            "iamlet_request_duration_seconds_count{method=\"GetAccessKeyInfo\",result=\"error\"}"
        ) >= 2
    );
}

#[tokio::test]
async fn an_oversized_body_is_refused_unread() {
    let f = Fixture::start("query-oversized").await;
    let addr = edge(&f).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nhost: {HOST}\r\nconnection: close\r\ncontent-type: {FORM}\r\ncontent-length: {}\r\n\r\nAction=",
        iamlet::http::MAX_BODY_BYTES + 1
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut text = String::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_string(&mut text),
    )
    .await
    .unwrap();
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");

    // A chunked body has no length to refuse up front: it is cut at the limit.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let chunk = "a".repeat(64 * 1024);
    stream
        .write_all(
            format!("POST / HTTP/1.1\r\nhost: {HOST}\r\nconnection: close\r\ncontent-type: {FORM}\r\ntransfer-encoding: chunked\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut text = String::new();
    for _ in 0..20 {
        if stream
            .write_all(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes())
            .await
            .is_err()
        {
            break;
        }
    }
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_string(&mut text),
    )
    .await
    .unwrap();
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");

    // Both are counted: by the edge's layer (a declared length) and by the STS route (a
    // chunked body cut at the limit).
    let metrics = send(addr, "GET", "/metrics", &host_only(), "").await;
    for series in [
        "iamlet_http_refused_total{edge=\"http\",code=\"RequestEntityTooLarge\"} ",
        "iamlet_http_refused_total{edge=\"sts\",code=\"RequestEntityTooLarge\"} ",
    ] {
        assert!(metrics.body.contains(series), "{series}: {}", metrics.body);
    }
}
