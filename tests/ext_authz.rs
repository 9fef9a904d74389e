//! Envoy's ext_authz (`envoy.service.auth.v3.Authorization/Check`) on a sidecar's local API
//! over real gRPC on loopback, asked with `envoy-types`' own client as Envoy would ask: SigV4
//! requests signed here, answers with their upstream headers and JSON bodies, dry run, health,
//! metrics, and route-table reloads that are refused or taken.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse, HttpResponse};
use envoy_types::pb::envoy::config::core::v3::{address, Address, SocketAddress};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
    HttpRequest, Peer, Request as AttrRequest,
};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use iamlet::grpc::serve_local_api_with;
use iamlet::policy::Timestamp;
use iamlet::sidecar::ext_authz::{spawn_route_table_reload, ExtAuthz, RouteTable};
use iamlet::sts::sigv4::SigningKey;
use ring::digest;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tonic::transport::{Channel, Endpoint};

use super::credentials::{Creds, Fixture, A};

const HOST: &str = "api.example.com";

fn table(unmatched: &str) -> String {
    format!(
        r#"
account: "{A}"
region: us-east-1
api_id: api
stage: prod
unmatched: {unmatched}
routes:
  - name: reports
    host: {HOST}
    path: /reports/{{id}}
    caller: sigv4
    strip_credentials: true
  - name: upload
    host: {HOST}
    path: /upload
    methods: [PUT]
    caller: sigv4
    with_body: true
  - name: trial
    host: dry.example.com
    path: /{{proxy+}}
    caller: sigv4
    dry_run: true
"#
    )
}

fn hex(bytes: &[u8]) -> String {
    digest::digest(&digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A check request as Envoy 1.40 sends it for an HTTP/1.1 request, signed with `creds`
/// (none: unsigned) over `body`.
fn check(method: &str, host: &str, path: &str, creds: Option<&Creds>, body: &[u8]) -> CheckRequest {
    let mut headers: HashMap<String, String> = [
        (":authority", host),
        (":method", method),
        (":path", path),
        (":scheme", "http"),
        ("user-agent", "ext-authz-test/1"),
        ("x-request-id", "4a0f6b9e-0000-4000-8000-000000000001"),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_owned(), v.to_owned()))
    .collect();
    if let Some(creds) = creds {
        let date = Timestamp::from_epoch_seconds(Timestamp::now().epoch_seconds())
            .to_string()
            .replace(['-', ':'], "");
        let payload = hex(body);
        let (p, q) = path.split_once('?').unwrap_or((path, ""));
        let canonical = format!(
            "{method}\n{p}\n{q}\nhost:{host}\nx-amz-content-sha256:{payload}\nx-amz-date:{date}\n\n\
             host;x-amz-content-sha256;x-amz-date\n{payload}"
        );
        let scope = format!("{}/us-east-1/execute-api/aws4_request", &date[..8]);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
            hex(canonical.as_bytes())
        );
        let key = SigningKey::derive(
            creds.secret.as_bytes(),
            &date[..8],
            "us-east-1",
            "execute-api",
        );
        headers.insert("x-amz-content-sha256".into(), payload);
        headers.insert("x-amz-date".into(), date);
        headers.insert(
            "authorization".into(),
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={}",
                creds.id,
                key.sign_hex(&to_sign)
            ),
        );
    }
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: "127.0.0.1".into(),
                        ..SocketAddress::default()
                    })),
                }),
                ..Peer::default()
            }),
            request: Some(AttrRequest {
                time: None,
                http: Some(HttpRequest {
                    id: "1".into(),
                    method: method.into(),
                    headers,
                    path: path.into(),
                    host: host.into(),
                    scheme: "http".into(),
                    protocol: "HTTP/1.1".into(),
                    raw_body: body.to_vec(),
                    ..HttpRequest::default()
                }),
            }),
            ..AttributeContext::default()
        }),
    }
}

struct Served {
    f: Fixture,
    client: AuthorizationClient<Channel>,
    channel: Channel,
    routes: std::path::PathBuf,
    ext: Arc<ExtAuthz>,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn start(name: &str) -> Served {
    let f = Fixture::start(name).await;
    let routes = super::support::temp_dir("ext-authz", name).join("routes.yaml");
    std::fs::write(&routes, table("deny")).unwrap();
    let ext = Arc::new(ExtAuthz::new(
        Arc::clone(&f.handle.api),
        RouteTable::load(&routes).unwrap(),
    ));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    spawn_route_table_reload(
        Arc::clone(&ext),
        routes.clone(),
        Duration::from_millis(50),
        stopped,
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_local_api_with(
        f.handle.clone(),
        Some(Arc::clone(&ext)),
        iamlet::grpc::Keepalive::for_address(addr),
        iamlet::net::accept(listener, iamlet::net::ConnectionLimits::default()),
        std::future::pending(),
    ));
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap();
    Served {
        f,
        client: AuthorizationClient::new(channel.clone()),
        channel,
        routes,
        ext,
        _stop: stop,
    }
}

/// The gRPC code and, for an allow, the upstream headers set and removed; for a denial, the
/// HTTP status, content type and JSON body.
enum Answer {
    Ok {
        set: HashMap<String, String>,
        removed: Vec<String>,
    },
    Denied {
        code: i32,
        status: i32,
        content_type: String,
        body: Value,
    },
}

fn answer(response: CheckResponse) -> Answer {
    let code = response.status.unwrap().code;
    match response.http_response.unwrap() {
        HttpResponse::OkResponse(ok) => {
            assert_eq!(code, 0);
            Answer::Ok {
                set: ok
                    .headers
                    .into_iter()
                    .map(|h| h.header.unwrap())
                    .map(|h| (h.key, h.value))
                    .collect(),
                removed: ok.headers_to_remove,
            }
        }
        HttpResponse::DeniedResponse(denied) => Answer::Denied {
            code,
            status: denied.status.unwrap().code,
            content_type: denied
                .headers
                .into_iter()
                .map(|h| h.header.unwrap())
                .find(|h| h.key == "content-type")
                .map(|h| h.value)
                .unwrap_or_default(),
            body: serde_json::from_str(&denied.body).unwrap(),
        },
        other => panic!("{other:?}"),
    }
}

async fn ask(s: &Served, request: CheckRequest) -> Answer {
    answer(s.client.clone().check(request).await.unwrap().into_inner())
}

fn denial(a: Answer) -> (i32, i32, String) {
    match a {
        Answer::Denied {
            code,
            status,
            content_type,
            body,
        } => {
            assert_eq!(content_type, "application/json");
            (code, status, body["Message"].as_str().unwrap().to_owned())
        }
        Answer::Ok { set, .. } => panic!("allowed: {set:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_checks_are_answered_as_api_gateway_would() {
    let s = start("answers").await;
    let invoker = s.f.user_with_key(
        A,
        "invoker",
        Some(
            &json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "execute-api:Invoke",
             "Resource": format!("arn:aws:execute-api:us-east-1:{A}:api/prod/*")}]})
            .to_string(),
        ),
    );
    let nobody = s.f.user_with_key(A, "nobody", None);
    s.f.synced().await;

    // Allowed: the caller and the version go upstream, the credentials do not.
    let Answer::Ok { set, removed } = ask(
        &s,
        check("GET", HOST, "/reports/q4?format=csv", Some(&invoker), b""),
    )
    .await
    else {
        panic!("a signed request of an allowed user was refused");
    };
    assert_eq!(
        set["x-iamlet-principal-arn"],
        format!("arn:aws:iam::{A}:user/invoker")
    );
    let (_, version) = s.f.cp.tenant(A).unwrap();
    assert_eq!(
        set["x-iamlet-snapshot-version"],
        format!("{}.{}", version.epoch, version.seq)
    );
    assert_eq!(
        removed,
        [
            "x-iamlet-would-deny",
            "authorization",
            "x-amz-security-token",
            "x-amz-date"
        ]
    );

    // Unsigned: 401 with API Gateway's message.
    assert_eq!(
        denial(ask(&s, check("GET", HOST, "/reports/q4", None, b"")).await),
        (16, 401, "Missing Authentication Token".to_owned())
    );
    // A signature over another path.
    let mut moved = check("GET", HOST, "/reports/q4", Some(&invoker), b"");
    let http = moved
        .attributes
        .as_mut()
        .unwrap()
        .request
        .as_mut()
        .unwrap()
        .http
        .as_mut()
        .unwrap();
    http.path = "/reports/q5".into();
    http.headers.insert(":path".into(), "/reports/q5".into());
    let (code, status, message) = denial(ask(&s, moved).await);
    assert_eq!((code, status), (16, 401));
    assert!(
        message.starts_with("The request signature we calculated does not match"),
        "{message}"
    );
    // A body that is not the signed one.
    let mut altered = check("PUT", HOST, "/upload", Some(&invoker), b"signed");
    altered
        .attributes
        .as_mut()
        .unwrap()
        .request
        .as_mut()
        .unwrap()
        .http
        .as_mut()
        .unwrap()
        .raw_body = b"altered".to_vec();
    let (code, status, message) = denial(ask(&s, altered).await);
    assert_eq!((code, status), (16, 401));
    assert!(message.contains("x-amz-content-sha256"), "{message}");
    assert!(matches!(
        ask(&s, check("PUT", HOST, "/upload", Some(&invoker), b"signed")).await,
        Answer::Ok { .. }
    ));

    // Denied by policy: 403 with AWS's message.
    assert_eq!(
        denial(ask(&s, check("GET", HOST, "/reports/q4", Some(&nobody), b"")).await),
        (
            7,
            403,
            format!(
                "User: arn:aws:iam::{A}:user/nobody is not authorized to perform: execute-api:Invoke \
                 on resource: arn:aws:execute-api:us-east-1:{A}:api/prod/GET/reports/q4"
            )
        )
    );
    // No route.
    assert_eq!(
        denial(
            ask(
                &s,
                check("GET", "other.example.com", "/", Some(&invoker), b"")
            )
            .await
        ),
        (7, 403, "No route matches this request".to_owned())
    );
    // Dry run: the denied request passes, marked.
    let Answer::Ok { set, .. } = ask(
        &s,
        check("GET", "dry.example.com", "/anything", Some(&nobody), b""),
    )
    .await
    else {
        panic!("a dry-run route refused");
    };
    assert_eq!(set["x-iamlet-would-deny"], "true");
    assert_eq!(
        set["x-iamlet-principal-arn"],
        format!("arn:aws:iam::{A}:user/nobody")
    );

    // A check without HTTP attributes is refused, not failed.
    let (code, status, message) = denial(ask(&s, CheckRequest { attributes: None }).await);
    assert_eq!((code, status), (3, 400));
    assert!(message.contains("no HTTP request attributes"));
    // Too many headers.
    let mut huge = check("GET", HOST, "/reports/q4", Some(&invoker), b"");
    let http = huge
        .attributes
        .as_mut()
        .unwrap()
        .request
        .as_mut()
        .unwrap()
        .http
        .as_mut()
        .unwrap();
    for i in 0..500 {
        http.headers
            .insert(format!("x-filler-{i}"), "v".repeat(100));
    }
    assert_eq!(denial(ask(&s, huge).await).1, 431);

    // Health reports the service; metrics count by route and decision.
    let mut health = tonic_health::pb::health_client::HealthClient::new(s.channel.clone());
    let served = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "envoy.service.auth.v3.Authorization".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        served.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let metrics =
        s.f.handle
            .api
            .metrics()
            .ext_authz
            .checks("reports", "allow");
    assert_eq!(metrics, 1);
    assert_eq!(
        s.f.handle
            .api
            .metrics()
            .ext_authz
            .checks("reports", "unauthenticated"),
        2
    );
    assert_eq!(
        s.f.handle
            .api
            .metrics()
            .ext_authz
            .checks("trial", "dry_run_deny"),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_route_table_is_refused_on_reload_and_a_good_one_taken() {
    let s = start("reload").await;
    let invoker = s.f.user_with_key(
        A,
        "invoker",
        Some(
            &json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*"}]})
            .to_string(),
        ),
    );
    s.f.synced().await;
    let unknown = || check("GET", "other.example.com", "/", Some(&invoker), b"");
    assert_eq!(denial(ask(&s, unknown()).await).1, 403);

    // Not a table: refused, counted, the previous table kept.
    std::fs::write(&s.routes, "account: \"111122223333\"\nroutes: [\n").unwrap();
    let failures = || {
        s.f.handle
            .api
            .metrics()
            .ext_authz
            .reload_failures
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    super::support::eventually("the bad table to be refused", || failures() == 1).await;
    assert_eq!(s.ext.table().routes().len(), 3);
    assert_eq!(denial(ask(&s, unknown()).await).1, 403);
    assert!(matches!(
        ask(&s, check("GET", HOST, "/reports/q4", Some(&invoker), b"")).await,
        Answer::Ok { .. }
    ));
    let text = s.f.handle.api.metrics().render(&NoGauges);
    assert!(
        text.contains("iamlet_ext_authz_route_table_reload_failures_total 1"),
        "{text}"
    );
    assert!(
        text.contains("iamlet_ext_authz_checks_total{route=\"reports\",decision=\"allow\"} 1"),
        "{text}"
    );

    // A good table: taken.
    std::fs::write(&s.routes, table("allow")).unwrap();
    super::support::eventually("the new table to be served", || {
        s.ext.table().unmatched == iamlet::sidecar::ext_authz::Unmatched::Allow
    })
    .await;
    let Answer::Ok { set, removed } = ask(&s, unknown()).await else {
        panic!("unmatched: allow did not pass");
    };
    assert!(!set.contains_key("x-iamlet-principal-arn"));
    assert!(
        removed.iter().any(|h| h == "x-iamlet-principal-arn"),
        "a client's own principal header never passes: {removed:?}"
    );
    assert_eq!(failures(), 1);
}

struct NoGauges;

impl iamlet::observe::Gauges for NoGauges {
    fn render(&self, _out: &mut String) {}
}

/// `iamlet up` writes its demo route table and serves it at the address its banner prints:
/// the tenant's administrator may invoke on `sigv4.local`, alice may not (but passes, marked,
/// on `dry.local`), and the demo web-identity token reads reports on `jwt.local`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_its_demo_route_table() {
    let dir = super::support::temp_dir("ext-authz", "up");
    let mut up = super::support::Up::spawn(&dir);
    let field = |prefix: &str| up.field(prefix);
    let line = field("sidecar Envoy ext_authz (Authorization/Check)");
    let (addr, routes) = line.split_once(" (routes: ").unwrap();
    assert_eq!(
        std::path::Path::new(routes.trim_end_matches(')')),
        dir.join("ext-authz-routes.yaml")
    );
    let table = RouteTable::load(&dir.join("ext-authz-routes.yaml")).unwrap();
    assert_eq!(table.routes().len(), 3);
    let alice = Creds {
        id: field("export AWS_ACCESS_KEY_ID="),
        secret: field("export AWS_SECRET_ACCESS_KEY="),
        token: String::new(),
    };
    let admin = Creds {
        id: field("aws_access_key_id ="),
        secret: field("aws_secret_access_key ="),
        token: String::new(),
    };
    let channel = Endpoint::from_shared(addr.to_owned())
        .unwrap()
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap();
    let mut client = AuthorizationClient::new(channel);
    let mut ask =
        async |request: CheckRequest| answer(client.check(request).await.unwrap().into_inner());
    let Answer::Ok { set, .. } =
        ask(check("GET", "sigv4.local", "/orders/1", Some(&admin), b"")).await
    else {
        panic!("the administrator was refused");
    };
    assert_eq!(
        set["x-iamlet-principal-arn"],
        format!("arn:aws:iam::{A}:user/admin")
    );
    // The demo's SigV4 routes hash the body Envoy sends.
    let body = br#"{"order": 1}"#;
    assert!(matches!(
        ask(check("POST", "sigv4.local", "/orders", Some(&admin), body)).await,
        Answer::Ok { .. }
    ));
    let mut altered = check("POST", "sigv4.local", "/orders", Some(&admin), body);
    altered
        .attributes
        .as_mut()
        .unwrap()
        .request
        .as_mut()
        .unwrap()
        .http
        .as_mut()
        .unwrap()
        .raw_body = br#"{"order": 2}"#.to_vec();
    assert_eq!(denial(ask(altered).await).1, 401);
    let (code, status, message) =
        denial(ask(check("GET", "sigv4.local", "/orders/1", Some(&alice), b"")).await);
    assert_eq!((code, status), (7, 403));
    assert_eq!(
        message,
        format!("User: arn:aws:iam::{A}:user/alice is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:us-east-1:{A}:demo/prod/GET/orders/1")
    );
    let Answer::Ok { set, .. } =
        ask(check("GET", "dry.local", "/orders/2", Some(&alice), b"")).await
    else {
        panic!("the dry-run route refused");
    };
    assert_eq!(set["x-iamlet-would-deny"], "true");
    // The would-be deny is a decision-log line.
    let resource = format!("arn:aws:execute-api:us-east-1:{A}:demo/prod/GET/orders/2");
    let logged = || {
        std::fs::read_to_string(dir.join("decisions.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|l| {
                l["principal"] == format!("arn:aws:iam::{A}:user/alice")
                    && l["resource"] == resource.as_str()
                    && l["decision"] == "ImplicitDeny"
            })
    };
    super::support::eventually("the dry run's deny in the decision log", logged).await;
    let token = std::fs::read_to_string(dir.join("web-identity-token")).unwrap();
    let bearer = |path: &str| {
        let mut request = check("GET", "jwt.local", path, None, b"");
        request
            .attributes
            .as_mut()
            .unwrap()
            .request
            .as_mut()
            .unwrap()
            .http
            .as_mut()
            .unwrap()
            .headers
            .insert("authorization".into(), format!("Bearer {}", token.trim()));
        request
    };
    let Answer::Ok { set, .. } = ask(bearer("/reports/q4.csv")).await else {
        panic!("the demo token was refused");
    };
    assert_eq!(
        set["x-iamlet-principal-arn"],
        format!("arn:aws:sts::{A}:assumed-role/reports-reader/iamlet-ext-authz")
    );
    assert_eq!(denial(ask(bearer("/home/alice/notes.txt")).await).1, 403);
    assert_eq!(
        denial(ask(check("GET", "jwt.local", "/reports/q4.csv", None, b"")).await).1,
        401
    );
    let _ = up.child.kill();
    let _ = up.child.wait();
}

/// `iamlet sidecar` refuses to start on a route table that does not check out, saying why.
#[test]
fn a_sidecar_does_not_start_on_a_bad_route_table() {
    let dir = super::support::temp_dir("ext-authz", "bad-start");
    let routes = dir.join("routes.yaml");
    std::fs::write(
        &routes,
        table("deny").replace("caller: sigv4\n    strip", "caller: jwt\n    strip"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_iamlet"))
        .args([
            "sidecar",
            "--control-plane",
            "http://127.0.0.1:9",
            "--listen",
            "127.0.0.1:0",
            "--insecure-unsigned-snapshots",
        ])
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--ext-authz-routes")
        .arg(&routes)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("route `reports` is invalid: caller `jwt` needs a `jwt` section"),
        "{stderr}"
    );
}
