//! The ext_authz domain: route tables and their refusals, matching, the three caller kinds,
//! request attributes as condition keys, and the answers.

use serde_json::json;

use super::*;
use crate::directory::{CreateOidcProviderInput, CreateRoleInput, CreateUserInput, Tenant};
use crate::jose::Es256Signer;
use crate::sidecar::decision_log::DecisionLog;
use crate::sidecar::CacheConfig;
use crate::snapshot::{AwsManagedCatalog, SnapshotStore, TenantSnapshot};
use crate::sts::sigv4::SigningKey;

const ACCOUNT: &str = "111122223333";
const ISSUER: &str = "https://oidc.example.com/id/CLUSTER";
const SUBJECT: &str = "system:serviceaccount:web:reader";
const HOST: &str = "api.example.com";

const TABLE: &str = r#"
account: "111122223333"
region: us-east-1
api_id: api
stage: prod
routes:
  - name: upload
    host: "*.example.com"
    path: /upload
    methods: [put]
    caller: sigv4
    with_body: true
    strip_credentials: true
  - name: reports
    host: api.example.com
    path: /reports/{id}
    caller: sigv4
  - name: items
    path: /items/{rest+}
    action: "items:{method}"
    resource: "arn:aws:s3:::items/{rest}"
    caller: sigv4
  - name: trial
    host: dry.example.com
    path: /{proxy+}
    caller: sigv4
    dry_run: true
  - name: pods
    host: mesh.local
    path: /{proxy+}
    caller: mtls
    mtls:
      principals:
        "spiffe://cluster.local/ns/default/sa/web": "arn:aws:iam::111122223333:role/web"
  - name: tokens
    host: jwt.local
    path: /{proxy+}
    caller: jwt
    jwt:
      issuer: "https://oidc.example.com/id/CLUSTER"
      audience: "sts.amazonaws.com"
      role: "arn:aws:iam::111122223333:role/reader"
"#;

fn policy(statements: &serde_json::Value) -> String {
    json!({"Version": "2012-10-17", "Statement": statements}).to_string()
}

struct Fixture {
    ext: ExtAuthz,
    /// (access key id, secret) by user name.
    keys: Vec<(String, String, String)>,
    signer: Es256Signer,
}

impl Fixture {
    fn new(table: &str) -> Self {
        let signer = Es256Signer::generate("k1").unwrap();
        let mut t = Tenant::new(ACCOUNT, 0);
        let mut ids = IdGenerator::seeded(7);
        t.rotate_issuer_key(&mut ids, 0).unwrap();
        let provider = t
            .create_open_id_connect_provider(
                0,
                CreateOidcProviderInput {
                    url: ISSUER.into(),
                    client_ids: vec!["sts.amazonaws.com".into(), "other".into()],
                    jwks: signer.jwks(),
                    ..Default::default()
                },
            )
            .unwrap()
            .arn
            .clone();
        let invoke_all =
            policy(&json!([{"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*"}]));
        let users = [
            (
                "invoker",
                Some(policy(&json!([
                    {"Effect": "Allow", "Action": ["execute-api:Invoke", "items:*", "sts:AssumeRole"], "Resource": "*"},
                    {"Effect": "Deny", "Action": "execute-api:Invoke",
                     "Resource": "arn:aws:execute-api:us-east-1:111122223333:api/prod/GET/reports/secret"}
                ]))),
            ),
            ("nobody", None),
            (
                "teamed",
                Some(policy(
                    &json!([{"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*",
                    "Condition": {
                        "StringEquals": {"iamlet:Header/x-team": "blue", "aws:UserAgent": "probe/1"},
                        "Bool": {"aws:SecureTransport": "true"},
                        "IpAddress": {"aws:SourceIp": "10.0.0.0/8"}
                    }}]),
                )),
            ),
        ];
        let mut keys = Vec::new();
        for (name, doc) in users {
            t.create_user(
                &mut ids,
                0,
                CreateUserInput {
                    name: name.into(),
                    ..Default::default()
                },
            )
            .unwrap();
            if let Some(doc) = doc {
                t.put_user_policy(name, "inline", &doc).unwrap();
            }
            let key = t.create_access_key(&mut ids, 0, name).unwrap();
            keys.push((
                name.to_owned(),
                key.access_key_id.clone(),
                key.secret.expose().to_owned(),
            ));
        }
        let trust_account = policy(
            &json!([{"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")}, "Action": "sts:AssumeRole"}]),
        );
        let trust_oidc = policy(
            &json!([{"Effect": "Allow", "Principal": {"Federated": provider},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {"oidc.example.com/id/CLUSTER:sub": SUBJECT}}}]),
        );
        for (name, trust) in [("web", trust_account), ("reader", trust_oidc)] {
            t.create_role(
                &mut ids,
                0,
                CreateRoleInput {
                    name: name.into(),
                    assume_role_policy: trust,
                    ..Default::default()
                },
            )
            .unwrap();
            t.put_role_policy(name, "inline", &invoke_all).unwrap();
        }
        let store = Arc::new(SnapshotStore::new());
        store
            .apply(
                TenantSnapshot::compile(
                    Arc::new(t),
                    SnapshotVersion::new(3, 4),
                    &AwsManagedCatalog::compile(),
                )
                .unwrap(),
            )
            .unwrap();
        let api = Arc::new(Api::new(store, &CacheConfig::default(), DecisionLog::off()));
        Self {
            ext: ExtAuthz::new(api, RouteTable::parse(table).unwrap()),
            keys,
            signer,
        }
    }

    fn key(&self, user: &str) -> (&str, &str) {
        let (_, id, secret) = self.keys.iter().find(|(n, _, _)| n == user).unwrap();
        (id, secret)
    }

    fn token(&self, sub: &str, aud: &str) -> String {
        let now = Timestamp::now().epoch_seconds();
        self.signer
            .sign(&json!({"iss": ISSUER, "sub": sub, "aud": aud, "iat": now - 5, "exp": now + 600}))
            .unwrap()
    }
}

fn hex(bytes: &[u8]) -> String {
    hex_sha256(bytes)
}

/// A request as Envoy reports it, unsigned.
fn request(method: &str, host: &str, path: &str) -> CheckInput {
    CheckInput {
        method: method.into(),
        path: path.into(),
        host: host.into(),
        scheme: "http".into(),
        headers: vec![
            (":authority".into(), host.into()),
            (":method".into(), method.into()),
            (":path".into(), path.into()),
            ("x-request-id".into(), "req-1".into()),
        ],
        body: None,
        source_ip: Some("127.0.0.1".parse().unwrap()),
        source_principal: None,
        request_id: Some("req-1".into()),
    }
}

/// Signs `input` as an SDK would: `host`, `x-amz-date` and the payload hash signed, for
/// `region` and `service`.
fn sign(input: &mut CheckInput, id: &str, secret: &str, region: &str, service: &str, body: &[u8]) {
    let at = Timestamp::now();
    let date = Timestamp::from_epoch_seconds(at.epoch_seconds())
        .to_string()
        .replace(['-', ':'], "");
    let payload = hex(body);
    let (path, query) = input.path.split_once('?').unwrap_or((&input.path, ""));
    let mut query: Vec<&str> = query.split('&').filter(|q| !q.is_empty()).collect();
    query.sort_unstable();
    let headers = [
        ("host", input.host.clone()),
        ("x-amz-content-sha256", payload.clone()),
        ("x-amz-date", date.clone()),
    ];
    let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed = "host;x-amz-content-sha256;x-amz-date";
    let canonical = format!(
        "{}\n{path}\n{}\n{canonical_headers}\n{signed}\n{payload}",
        input.method,
        query.join("&")
    );
    let scope = format!("{}/{region}/{service}/aws4_request", &date[..8]);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        hex(canonical.as_bytes())
    );
    let key = SigningKey::derive(secret.as_bytes(), &date[..8], region, service);
    input.headers.push(("x-amz-content-sha256".into(), payload));
    input.headers.push(("x-amz-date".into(), date));
    input.headers.push((
        "authorization".into(),
        format!(
            "AWS4-HMAC-SHA256 Credential={id}/{scope}, SignedHeaders={signed}, Signature={}",
            key.sign_hex(&to_sign)
        ),
    ));
}

fn signed(f: &Fixture, user: &str, method: &str, host: &str, path: &str) -> CheckInput {
    let mut input = request(method, host, path);
    let (id, secret) = f.key(user);
    sign(&mut input, id, secret, "us-east-1", "execute-api", b"");
    input
}

fn unauthenticated(answer: &CheckAnswer) -> &str {
    match answer {
        CheckAnswer::Unauthenticated { message } => message,
        other => panic!("expected a 401, got {other:?}"),
    }
}

fn denied(answer: &CheckAnswer) -> (u16, &str) {
    match answer {
        CheckAnswer::Deny { status, message } => (*status, message),
        other => panic!("expected a denial, got {other:?}"),
    }
}

fn principal(answer: &CheckAnswer) -> &str {
    match answer {
        CheckAnswer::Allow {
            principal: Some(p), ..
        } => p,
        other => panic!("expected an allow, got {other:?}"),
    }
}

fn with_header(mut input: CheckInput, name: &str, value: &str) -> CheckInput {
    if let Some(h) = input.headers.iter_mut().find(|(n, _)| n == name) {
        h.1 = value.into();
    } else {
        input.headers.push((name.into(), value.into()));
    }
    input
}

// --- the table ---

#[test]
fn path_patterns_capture_segments_and_the_rest() {
    let p = PathPattern::parse("/reports/{id}/files/{rest+}").unwrap();
    assert_eq!(
        p.matches("/reports/q4/files/a/b.csv"),
        Some(vec![("id", "q4"), ("rest", "a/b.csv")])
    );
    assert_eq!(
        p.matches("/reports/q4/files"),
        None,
        "a greedy capture takes one segment at least"
    );
    assert_eq!(
        p.matches("/reports//files/a"),
        None,
        "a capture is never empty"
    );
    assert_eq!(p.matches("/reports/q4/other/a"), None);
    let exact = PathPattern::parse("/health").unwrap();
    assert_eq!(exact.matches("/health"), Some(vec![]));
    assert_eq!(exact.matches("/health/x"), None);
    assert_eq!(exact.matches("/healthz"), None);
    let root = PathPattern::parse("/").unwrap();
    assert_eq!(root.matches("/"), Some(vec![]));
    assert_eq!(root.matches("/x"), None);
    let proxy = PathPattern::parse("/{proxy+}").unwrap();
    assert_eq!(proxy.matches("/"), None, "as API Gateway's {{proxy+}}");
    assert_eq!(proxy.matches("/a/b"), Some(vec![("proxy", "a/b")]));

    for (bad, why) in [
        ("reports", "must start with `/`"),
        ("/a/{rest+}/b", "must be the last segment"),
        ("/a/{id}/{id}", "appears twice"),
        ("/a/x{id}", "mixes text and a capture"),
        ("/a//b", "empty segment"),
        ("/{region}", "shadows a built-in placeholder"),
        ("/{}", "needs a name"),
    ] {
        let e = PathPattern::parse(bad).unwrap_err();
        assert!(e.contains(why), "{bad}: {e}");
    }
}

#[test]
fn hosts_match_exactly_or_by_suffix_without_ports() {
    assert_eq!(bare_host("API.example.com:8443"), "api.example.com");
    assert_eq!(bare_host("[::1]:80"), "[::1]");
    assert_eq!(bare_host("::1"), "::1");
    let table = RouteTable::parse(TABLE).unwrap();
    assert_eq!(
        table
            .find("api.example.com", "PUT", "/upload")
            .unwrap()
            .route
            .name,
        "upload"
    );
    assert_eq!(
        table
            .find("x.y.example.com", "PUT", "/upload")
            .unwrap()
            .route
            .name,
        "upload"
    );
    assert!(
        table.find("example.com", "PUT", "/upload").is_none(),
        "`*.` needs a label"
    );
    assert!(
        table.find("api.example.com", "GET", "/upload").is_none(),
        "methods: [put]"
    );
    let m = table.find("anything", "DELETE", "/items/a/b%20c").unwrap();
    assert_eq!(
        (m.action.as_str(), m.resource.as_str()),
        ("items:DELETE", "arn:aws:s3:::items/a/b%20c")
    );
    let m = table.find(HOST, "GET", "/reports/q4").unwrap();
    assert_eq!(
        m.resource,
        "arn:aws:execute-api:us-east-1:111122223333:api/prod/GET/reports/q4"
    );
    assert_eq!(m.action, DEFAULT_ACTION);
}

#[test]
fn tables_are_refused_with_the_reason() {
    let base = "account: \"111122223333\"\nregion: us-east-1\napi_id: a\nstage: s\n";
    let route = |extra: &str| {
        format!("{base}routes:\n  - name: r\n    path: /x\n    caller: sigv4\n{extra}")
    };
    for (text, why) in [
        (format!("{base}routes: []\ncolour: blue\n"), "unknown field `colour`"),
        (route("    colour: blue\n"), "unknown field `colour`"),
        (format!("{}routes: []\n", base.replace("111122223333", "1234")), "the route table is invalid: account"),
        (format!("{base}unmatched: maybe\nroutes: []\n"), "unknown variant `maybe`"),
        (route("  - name: r\n    path: /y\n    caller: sigv4\n"), "route `r` is invalid: the name is used by another route"),
        (route("    resource: \"arn:aws:s3:::{bucket}\"\n"), "uses `{bucket}`, which is neither a built-in placeholder nor a capture"),
        (route("    action: \"{method\"\n"), "unclosed"),
        (route("    jwt: {issuer: \"https://i\", audience: a, role: \"arn:aws:iam::111122223333:role/r\"}\n"), "takes no `jwt` or `mtls` section"),
        (format!("{base}routes:\n  - name: r\n    path: /x\n    caller: jwt\n"), "caller `jwt` needs a `jwt` section"),
        (format!("{base}routes:\n  - name: r\n    path: /x\n    caller: mtls\n"), "caller `mtls` needs an `mtls` section"),
        (format!("{base}routes:\n  - name: r\n    path: /x\n    caller: jwt\n    jwt: {{issuer: \"https://i\", audience: a, role: \"arn:aws:iam::444455556666:role/r\"}}\n"), "not a role ARN of account 111122223333"),
        (format!("{base}routes:\n  - name: r\n    path: /x\n    caller: mtls\n    mtls: {{principals: {{}}}}\n"), "mtls.principals is empty"),
        (route("    methods: []\n"), "`methods` is empty"),
        (route("    host: \"a*b\"\n"), "must be exact"),
        (format!("{base}routes:\n  - name: \"bad name\"\n    path: /x\n    caller: sigv4\n"), "the name must be"),
        (format!("{base}routes:\n  - name: r\n    path: /x\n    caller: kerberos\n"), "unknown variant `kerberos`"),
        ("routes: [".to_owned(), "does not parse"),
    ] {
        let e = RouteTable::parse(&text).unwrap_err().to_string();
        assert!(e.contains(why), "expected `{why}` in `{e}` for:\n{text}");
    }
}

// --- SigV4 ---

#[test]
fn a_signed_request_is_decided_by_the_callers_policies() {
    let f = Fixture::new(TABLE);
    let answer = f
        .ext
        .check(&signed(&f, "invoker", "GET", HOST, "/reports/q4?x=1&a=2"));
    assert_eq!(
        answer,
        CheckAnswer::Allow {
            principal: Some("arn:aws:iam::111122223333:user/invoker".into()),
            version: Some(SnapshotVersion::new(3, 4)),
            strip: false,
        }
    );
    let answer = f
        .ext
        .check(&signed(&f, "invoker", "GET", HOST, "/reports/secret"));
    let (status, message) = denied(&answer);
    assert_eq!(status, 403);
    assert_eq!(
        message,
        "User: arn:aws:iam::111122223333:user/invoker is not authorized to perform: \
         execute-api:Invoke on resource: arn:aws:execute-api:us-east-1:111122223333:api/prod/GET/reports/secret"
    );
    let answer = f
        .ext
        .check(&signed(&f, "nobody", "GET", HOST, "/reports/q4"));
    assert_eq!(denied(&answer).0, 403, "an implicit deny");
    let metrics = &f.ext.api().metrics().ext_authz;
    assert_eq!(metrics.checks("reports", "allow"), 1);
    assert_eq!(metrics.checks("reports", "deny"), 2);
}

#[test]
fn every_malformed_signature_field_is_a_401_never_an_allow() {
    let f = Fixture::new(TABLE);
    let good = signed(&f, "invoker", "GET", HOST, "/reports/q4");
    let auth = good
        .headers
        .iter()
        .find(|(n, _)| n == "authorization")
        .unwrap()
        .1
        .clone();
    let unsigned = request("GET", HOST, "/reports/q4");
    assert_eq!(unauthenticated(&f.ext.check(&unsigned)), MISSING_TOKEN);

    let (id, secret) = f.key("invoker");
    let mut other_region = request("GET", HOST, "/reports/q4");
    sign(
        &mut other_region,
        id,
        secret,
        "eu-west-1",
        "execute-api",
        b"",
    );
    assert_eq!(
        unauthenticated(&f.ext.check(&other_region)),
        "Credential should be scoped to a valid region. "
    );
    let mut other_service = request("GET", HOST, "/reports/q4");
    sign(&mut other_service, id, secret, "us-east-1", "s3", b"");
    assert_eq!(
        unauthenticated(&f.ext.check(&other_service)),
        "Credential should be scoped to correct service: 'execute-api'. "
    );
    let mut wrong_secret = request("GET", HOST, "/reports/q4");
    sign(
        &mut wrong_secret,
        id,
        "not-the-secret",
        "us-east-1",
        "execute-api",
        b"",
    );
    assert!(unauthenticated(&f.ext.check(&wrong_secret)).starts_with(
        "The request signature we calculated does not match the signature you provided."
    ));
    let mut unknown_key = request("GET", HOST, "/reports/q4");
    sign(
        &mut unknown_key,
        "AKIAEXAMPLEEXAMPLE00",
        secret,
        "us-east-1",
        "execute-api",
        b"",
    );
    assert_eq!(
        unauthenticated(&f.ext.check(&unknown_key)),
        "The security token included in the request is invalid."
    );
    let moved = CheckInput {
        path: "/reports/q5".into(),
        ..good.clone()
    };
    assert!(
        unauthenticated(&f.ext.check(&moved)).starts_with("The request signature we calculated")
    );
    let old_date = with_header(good.clone(), "x-amz-date", "20200101T000000Z");
    assert!(!unauthenticated(&f.ext.check(&old_date)).is_empty());

    let signature = auth.rsplit_once("Signature=").unwrap().1.to_owned();
    for broken in [
        auth.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512"),
        auth.replace("Credential=", "Credentials="),
        auth.replace("/aws4_request", "/aws5_request"),
        auth.replace(", SignedHeaders=host;x-amz-content-sha256;x-amz-date", ""),
        auth.replace("SignedHeaders=host;", "SignedHeaders=host;x-missing;"),
        auth.replace(&signature, "zz"),
        auth.replace(&format!(", Signature={signature}"), ""),
        auth.replace(id, ""),
        "AWS4-HMAC-SHA256".to_owned(),
        String::new(),
    ] {
        let input = with_header(good.clone(), "authorization", &broken);
        let answer = f.ext.check(&input);
        assert!(
            matches!(answer, CheckAnswer::Unauthenticated { .. }),
            "{broken}: {answer:?}"
        );
    }
    assert_eq!(
        f.ext.api().metrics().ext_authz.checks("reports", "allow"),
        0
    );
}

#[test]
fn a_body_that_is_not_the_signed_one_is_refused() {
    let f = Fixture::new(TABLE);
    let (id, secret) = f.key("invoker");
    let mut input = request("PUT", HOST, "/upload");
    sign(
        &mut input,
        id,
        secret,
        "us-east-1",
        "execute-api",
        b"the signed body",
    );
    let good = CheckInput {
        body: Some(b"the signed body".to_vec()),
        ..input.clone()
    };
    assert_eq!(
        f.ext.check(&good),
        CheckAnswer::Allow {
            principal: Some("arn:aws:iam::111122223333:user/invoker".into()),
            version: Some(SnapshotVersion::new(3, 4)),
            strip: true,
        }
    );
    let altered = CheckInput {
        body: Some(b"another body".to_vec()),
        ..input.clone()
    };
    assert_eq!(unauthenticated(&f.ext.check(&altered)), BODY_HASH_MISMATCH);
    // Without the header, the body's hash is what the signature must cover.
    let no_header = CheckInput {
        headers: input
            .headers
            .iter()
            .filter(|(n, _)| n != "x-amz-content-sha256")
            .cloned()
            .collect(),
        body: Some(b"another body".to_vec()),
        ..input
    };
    assert!(matches!(
        f.ext.check(&no_header),
        CheckAnswer::Unauthenticated { .. }
    ));
}

// --- routes and answers ---

#[test]
fn an_unknown_route_is_denied_or_passed_as_configured() {
    let f = Fixture::new(TABLE);
    let input = signed(&f, "invoker", "GET", "elsewhere.org", "/reports/q4");
    assert_eq!(
        f.ext.check(&input),
        CheckAnswer::Deny {
            status: 403,
            message: NO_ROUTE.into()
        }
    );
    f.ext.replace(
        RouteTable::parse(&TABLE.replace("stage: prod\n", "stage: prod\nunmatched: allow\n"))
            .unwrap(),
    );
    assert_eq!(
        f.ext.check(&input),
        CheckAnswer::Allow {
            principal: None,
            version: None,
            strip: false
        }
    );
    let metrics = &f.ext.api().metrics().ext_authz;
    assert_eq!(metrics.checks(NO_ROUTE_LABEL, "deny"), 1);
    assert_eq!(metrics.checks(NO_ROUTE_LABEL, "allow"), 1);
}

#[test]
fn a_dry_run_route_passes_what_it_would_refuse() {
    let f = Fixture::new(TABLE);
    let host = "dry.example.com";
    match f.ext.check(&signed(&f, "nobody", "GET", host, "/x")) {
        CheckAnswer::DryRunDeny {
            principal,
            status,
            message,
            ..
        } => {
            assert_eq!(
                principal.as_deref(),
                Some("arn:aws:iam::111122223333:user/nobody")
            );
            assert_eq!(status, 403);
            assert!(message
                .starts_with("User: arn:aws:iam::111122223333:user/nobody is not authorized"));
        }
        other => panic!("{other:?}"),
    }
    match f.ext.check(&request("GET", host, "/x")) {
        CheckAnswer::DryRunDeny {
            status, message, ..
        } => {
            assert_eq!((status, message.as_str()), (401, MISSING_TOKEN));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        principal(&f.ext.check(&signed(&f, "invoker", "GET", host, "/x"))),
        "arn:aws:iam::111122223333:user/invoker"
    );
    assert_eq!(
        f.ext
            .api()
            .metrics()
            .ext_authz
            .checks("trial", "dry_run_deny"),
        2
    );
}

#[test]
fn request_attributes_are_condition_keys() {
    let f = Fixture::new(TABLE);
    let good = CheckInput {
        scheme: "https".into(),
        source_ip: Some("10.1.2.3".parse().unwrap()),
        ..with_header(
            with_header(
                signed(&f, "teamed", "GET", HOST, "/reports/q4"),
                "x-team",
                "blue",
            ),
            "user-agent",
            "probe/1",
        )
    };
    principal(&f.ext.check(&good));
    for bad in [
        with_header(good.clone(), "x-team", "red"),
        with_header(good.clone(), "user-agent", "curl/8"),
        CheckInput {
            scheme: "http".into(),
            ..good.clone()
        },
        CheckInput {
            source_ip: Some("192.0.2.1".parse().unwrap()),
            ..good.clone()
        },
    ] {
        assert_eq!(denied(&f.ext.check(&bad)).0, 403, "{bad:?}");
    }
    let context = request_context(&good);
    assert!(
        context.get("iamlet:Header/authorization").is_none(),
        "credentials stay out"
    );
    assert!(context.get("iamlet:Header/x-team").is_some());
    assert!(context.get("iamlet:Header/:path").is_none());
    for per_request in ["x-request-id", "x-amz-date", "x-amz-content-sha256"] {
        assert!(context
            .get(&format!("{HEADER_KEY_PREFIX}{per_request}"))
            .is_none());
    }
    let traced = with_header(good, "x-envoy-attempt-count", "1");
    assert!(request_context(&traced)
        .get("iamlet:Header/x-envoy-attempt-count")
        .is_none());
}

#[test]
fn a_repeated_request_is_answered_from_the_decision_cache() {
    let f = Fixture::new(TABLE);
    for id in ["req-1", "req-2", "req-3"] {
        let input = with_header(
            signed(&f, "invoker", "GET", HOST, "/reports/q4"),
            "x-request-id",
            id,
        );
        principal(&f.ext.check(&input));
    }
    // Each request has its own id and signature date; the decision is the same.
    assert!(f.ext.api().decision_cache_stats().hits >= 2);
}

#[test]
fn session_credentials_sign_requests_too() {
    let f = Fixture::new(TABLE);
    let (id, secret) = f.key("invoker");
    let issued = crate::sidecar::SecurityTokenService::new(Arc::clone(f.ext.authorizer.api()))
        .assume_role(&crate::sidecar::AssumeRoleInput {
            caller: Some(CallerId::Keys {
                access_key_id: id.into(),
                secret: secret.into(),
                session_token: None,
            }),
            role_arn: "arn:aws:iam::111122223333:role/web".into(),
            role_session_name: "s1".into(),
            ..crate::sidecar::AssumeRoleInput::default()
        })
        .unwrap();
    let mut input = request("GET", HOST, "/reports/q4");
    sign(
        &mut input,
        &issued.access_key_id,
        &issued.secret_access_key,
        "us-east-1",
        "execute-api",
        b"",
    );
    let without_token = input.clone();
    input
        .headers
        .push(("x-amz-security-token".into(), issued.session_token.clone()));
    assert_eq!(
        principal(&f.ext.check(&input)),
        "arn:aws:sts::111122223333:assumed-role/web/s1"
    );
    assert_eq!(
        unauthenticated(&f.ext.check(&without_token)),
        "The security token included in the request is invalid."
    );
}

// --- mTLS and JWT ---

#[test]
fn an_mtls_peer_is_the_role_its_identity_maps_to() {
    let f = Fixture::new(TABLE);
    let input = CheckInput {
        source_principal: Some("spiffe://cluster.local/ns/default/sa/web".into()),
        ..request("GET", "mesh.local", "/anything")
    };
    assert_eq!(
        principal(&f.ext.check(&input)),
        "arn:aws:iam::111122223333:role/web"
    );
    let stranger = CheckInput {
        source_principal: Some("spiffe://cluster.local/ns/default/sa/other".into()),
        ..input
    };
    assert_eq!(
        unauthenticated(&f.ext.check(&stranger)),
        "The client identity spiffe://cluster.local/ns/default/sa/other is not mapped to a role"
    );
    let plain = request("GET", "mesh.local", "/anything");
    assert_eq!(unauthenticated(&f.ext.check(&plain)), MISSING_TOKEN);
}

#[test]
fn a_bearer_token_is_a_session_of_the_role_that_trusts_it() {
    let f = Fixture::new(TABLE);
    let bearer = |token: &str| {
        with_header(
            request("GET", "jwt.local", "/x"),
            "authorization",
            &format!("Bearer {token}"),
        )
    };
    let good = bearer(&f.token(SUBJECT, "sts.amazonaws.com"));
    assert_eq!(
        principal(&f.ext.check(&good)),
        "arn:aws:sts::111122223333:assumed-role/reader/iamlet-ext-authz"
    );
    // Again from the session cache: the same answer.
    assert_eq!(
        principal(&f.ext.check(&good)),
        "arn:aws:sts::111122223333:assumed-role/reader/iamlet-ext-authz"
    );
    // The session was reused: its credentials were found in the credential cache.
    assert_eq!(f.ext.api().credential_cache_stats().hits, 1);

    let answer = f.ext.check(&bearer(
        &f.token("system:serviceaccount:web:other", "sts.amazonaws.com"),
    ));
    let (status, message) = denied(&answer);
    assert_eq!(
        status, 403,
        "the trust policy does not allow this subject: {message}"
    );
    assert!(
        message.contains("sts:AssumeRoleWithWebIdentity"),
        "{message}"
    );
    assert_eq!(
        unauthenticated(&f.ext.check(&bearer(&f.token(SUBJECT, "other")))),
        "Incorrect token audience"
    );
    let tampered = {
        let t = f.token(SUBJECT, "sts.amazonaws.com");
        let (rest, sig) = t.rsplit_once('.').unwrap();
        format!("{rest}.{}", sig.chars().rev().collect::<String>())
    };
    assert!(matches!(
        f.ext.check(&bearer(&tampered)),
        CheckAnswer::Unauthenticated { .. }
    ));
    assert!(matches!(
        f.ext.check(&bearer("not-a-jwt")),
        CheckAnswer::Unauthenticated { .. }
    ));
    let oversized = format!("{}.{}.{}", "a".repeat(10_000), "b".repeat(10_000), "c");
    assert!(matches!(
        f.ext.check(&bearer(&oversized)),
        CheckAnswer::Unauthenticated { .. }
    ));
    assert_eq!(
        unauthenticated(&f.ext.check(&request("GET", "jwt.local", "/x"))),
        MISSING_TOKEN
    );
    let foreign = Es256Signer::generate("k1").unwrap();
    let now = Timestamp::now().epoch_seconds();
    let other_issuer = foreign
        .sign(&json!({"iss": "https://elsewhere.example", "sub": SUBJECT, "aud": "sts.amazonaws.com", "iat": now, "exp": now + 60}))
        .unwrap();
    assert!(matches!(
        f.ext.check(&bearer(&other_issuer)),
        CheckAnswer::Unauthenticated { .. }
    ));
}
