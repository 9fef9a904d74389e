//! OpenID AuthZEN on the sidecar's HTTP edge, over loopback HTTP against an in-process
//! sidecar: the spec's request and response shapes (single, batch with each semantic and the
//! defaults), the metadata document, and each malformed request's 400.

use std::net::SocketAddr;

use serde_json::{json, Value};

use super::aws_protocols::{edge, send, Reply};
use super::credentials::{Creds, Fixture, A};

const JSON: &str = "application/json";

fn policy(statements: &Value) -> String {
    json!({"Version": "2012-10-17", "Statement": statements}).to_string()
}

fn arn(user: &str) -> String {
    format!("arn:aws:iam::{A}:user/{user}")
}

/// A user who may read its own prefix of bucket `data`, and never delete anything there.
fn reader(f: &Fixture, user: &str) -> Creds {
    f.user_with_key(
        A,
        user,
        Some(&policy(&json!([
            {"Sid": "ReadOwn", "Effect": "Allow", "Action": "s3:GetObject",
             "Resource": format!("arn:aws:s3:::data/{user}/*")},
            {"Sid": "NeverDelete", "Effect": "Deny", "Action": "s3:DeleteObject",
             "Resource": "arn:aws:s3:::data/*"}
        ]))),
    )
}

async fn post(addr: SocketAddr, path: &str, body: &str, extra: &[(&str, &str)]) -> Reply {
    let mut headers = vec![
        ("host".to_owned(), "pdp.local".to_owned()),
        ("content-type".to_owned(), JSON.to_owned()),
    ];
    headers.extend(
        extra
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
    );
    send(addr, "POST", path, &headers, body).await
}

fn json_of(reply: &Reply) -> Value {
    assert_eq!(reply.header("content-type"), Some(JSON), "{}", reply.body);
    serde_json::from_str(&reply.body).unwrap()
}

async fn evaluation(addr: SocketAddr, body: &Value) -> Value {
    let reply = post(addr, "/access/v1/evaluation", &body.to_string(), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    json_of(&reply)
}

async fn evaluations(addr: SocketAddr, body: &Value) -> Vec<Value> {
    let reply = post(addr, "/access/v1/evaluations", &body.to_string(), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    json_of(&reply)["evaluations"].as_array().unwrap().clone()
}

fn decisions(answers: &[Value]) -> Vec<bool> {
    answers
        .iter()
        .map(|a| a["decision"].as_bool().unwrap())
        .collect()
}

fn ask(subject: &Value, action: &str, object: &str) -> Value {
    json!({
        "subject": subject,
        "action": {"name": action},
        "resource": {"type": "s3_object", "id": object},
    })
}

#[tokio::test]
async fn single_evaluations_answer_the_decision_with_the_deciding_statement() {
    let f = Fixture::start("authzen-single").await;
    let creds = reader(&f, "alice");
    f.synced().await;
    let addr = edge(&f).await;
    let alice = json!({"type": "iam_principal", "id": arn("alice")});

    // Allowed, with the statement that allowed it, and the request id echoed.
    let body = ask(&alice, "s3:GetObject", "data/alice/notes.txt");
    let reply = post(
        addr,
        "/access/v1/evaluation",
        &body.to_string(),
        &[("x-request-id", "req-7")],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("x-request-id"), Some("req-7"));
    let answer = json_of(&reply);
    assert_eq!(answer["decision"], true, "{answer}");
    let admin = &answer["context"]["reason_admin"];
    assert_eq!(admin["outcome"], "Allow");
    assert_eq!(admin["policy_type"], "identity");
    assert_eq!(admin["statement"]["sid"], "ReadOwn");
    assert_eq!(admin["principal"], arn("alice"));
    assert!(answer["context"]["reason_user"]["en"].is_string());

    // An implicit deny: AWS's message, no statement.
    let answer = evaluation(addr, &ask(&alice, "s3:GetObject", "data/bob/notes.txt")).await;
    assert_eq!(answer["decision"], false);
    let admin = &answer["context"]["reason_admin"];
    assert_eq!(admin["outcome"], "ImplicitDeny");
    assert!(admin.get("statement").is_none(), "{answer}");
    let message = answer["context"]["reason_user"]["en"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "User: {} is not authorized to perform: s3:GetObject",
            arn("alice")
        )),
        "{message}"
    );

    // An explicit deny names its statement.
    let answer = evaluation(
        addr,
        &ask(&alice, "s3:DeleteObject", "data/alice/notes.txt"),
    )
    .await;
    assert_eq!(answer["decision"], false);
    assert_eq!(answer["context"]["reason_admin"]["outcome"], "ExplicitDeny");
    assert_eq!(
        answer["context"]["reason_admin"]["statement"]["sid"],
        "NeverDelete"
    );
    let message = answer["context"]["reason_user"]["en"].as_str().unwrap();
    assert!(message.contains("explicit deny"), "{message}");

    // Condition keys from the context.
    f.call(
        A,
        "PutUserPolicy",
        &json!({"UserName": "alice", "PolicyName": "office", "PolicyDocument": policy(&json!([
            {"Sid": "Office", "Effect": "Allow", "Action": "s3:PutObject", "Resource": "*",
             "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"},
                           "NumericLessThan": {"s3:max-keys": 5}}}
        ]))}),
    );
    f.synced().await;
    let mut put = ask(&alice, "s3:PutObject", "data/x/y");
    put["context"] = json!({"aws:SourceIp": "10.1.2.3", "s3:max-keys": 3});
    assert_eq!(evaluation(addr, &put).await["decision"], true);
    put["context"] = json!({"aws:SourceIp": "192.0.2.1", "s3:max-keys": 3});
    assert_eq!(evaluation(addr, &put).await["decision"], false);

    // Access keys are checked by the sidecar; wrong ones are a false decision with the error.
    let key = |secret: &str| {
        json!({"type": "access_key", "id": creds.id,
               "properties": {"secret_access_key": secret}})
    };
    let answer = evaluation(
        addr,
        &ask(&key(&creds.secret), "s3:GetObject", "data/alice/a"),
    )
    .await;
    assert_eq!(answer["decision"], true, "{answer}");
    let answer = evaluation(
        addr,
        &ask(&key("wrong-secret"), "s3:GetObject", "data/alice/a"),
    )
    .await;
    assert_eq!(answer["decision"], false, "{answer}");
    let error = &answer["context"]["error"];
    assert!(
        error["code"].is_string() && error["status"].as_u64().is_some(),
        "{answer}"
    );
    assert!(!answer.to_string().contains("wrong-secret"), "{answer}");

    // A principal the tenant does not have.
    let ghost = json!({"type": "iam_principal", "id": arn("ghost")});
    let answer = evaluation(addr, &ask(&ghost, "s3:GetObject", "data/ghost/a")).await;
    assert_eq!(answer["decision"], false);
    assert_eq!(
        answer["context"]["error"]["code"], "NoSuchEntity",
        "{answer}"
    );

    // Every evaluation is counted by the domain as an Authorize.
    let metrics = send(addr, "GET", "/metrics", &[("host".into(), "x".into())], "").await;
    for (result, n) in [
        ("allow", 3),
        ("implicit_deny", 2),
        ("explicit_deny", 1),
        ("error", 2),
    ] {
        let line = format!(
            "iamlet_request_duration_seconds_count{{method=\"Authorize\",result=\"{result}\"}} {n}"
        );
        assert!(metrics.body.contains(&line), "{line}\n{}", metrics.body);
    }
}

#[tokio::test]
async fn batches_inherit_defaults_and_follow_each_evaluation_semantic() {
    let f = Fixture::start("authzen-batch").await;
    reader(&f, "alice");
    f.synced().await;
    let addr = edge(&f).await;
    let alice = json!({"type": "iam_principal", "id": arn("alice")});
    let object = |id: &str| json!({"resource": {"type": "s3_object", "id": id}});
    // allow, deny, allow, with the subject and action from the top level; the last replaces
    // the action.
    let batch = |semantic: Option<&str>, items: Vec<Value>| {
        let mut body = json!({
            "subject": alice,
            "action": {"name": "s3:GetObject"},
            "evaluations": items,
        });
        if let Some(s) = semantic {
            body["options"] = json!({"evaluations_semantic": s});
        }
        body
    };
    let mixed = || {
        vec![
            object("data/alice/1"),
            object("data/bob/2"),
            json!({"action": {"name": "s3:DeleteObject"},
                   "resource": {"type": "s3_object", "id": "data/alice/3"}}),
            object("data/alice/4"),
        ]
    };

    let all = evaluations(addr, &batch(None, mixed())).await;
    assert_eq!(decisions(&all), [true, false, false, true]);
    assert_eq!(
        all[2]["context"]["reason_admin"]["statement"]["sid"],
        "NeverDelete"
    );
    let all = evaluations(addr, &batch(Some("execute_all"), mixed())).await;
    assert_eq!(decisions(&all), [true, false, false, true]);

    // Stops at the first deny, which it answers.
    let first_deny = evaluations(addr, &batch(Some("deny_on_first_deny"), mixed())).await;
    assert_eq!(decisions(&first_deny), [true, false]);
    // Stops at the first permit.
    let mut denied_first = mixed();
    denied_first.rotate_left(1);
    let first_permit =
        evaluations(addr, &batch(Some("permit_on_first_permit"), denied_first)).await;
    assert_eq!(decisions(&first_permit), [false, false, true]);

    // An evaluation the domain cannot decide is that evaluation's false decision.
    let mut items = mixed();
    items.insert(
        1,
        json!({"subject": {"type": "iam_principal", "id": arn("ghost")},
               "resource": {"type": "s3_object", "id": "data/ghost/1"}}),
    );
    let answers = evaluations(addr, &batch(None, items)).await;
    assert_eq!(decisions(&answers), [true, false, false, false, true]);
    assert_eq!(answers[1]["context"]["error"]["code"], "NoSuchEntity");

    // A large batch (decided on the blocking pool) answers every evaluation, in order.
    let items: Vec<Value> = (0..40)
        .map(|i| {
            object(&format!(
                "data/{}/{i}",
                if i % 3 == 0 { "bob" } else { "alice" }
            ))
        })
        .collect();
    let answers = evaluations(addr, &batch(None, items)).await;
    let expected: Vec<bool> = (0..40).map(|i| i % 3 != 0).collect();
    assert_eq!(decisions(&answers), expected);

    // No `evaluations`: one evaluation, answered as one.
    let reply = post(
        addr,
        "/access/v1/evaluations",
        &ask(&alice, "s3:GetObject", "data/alice/1").to_string(),
        &[],
    )
    .await;
    let answer = json_of(&reply);
    assert_eq!(answer["decision"], true, "{answer}");
    assert!(answer.get("evaluations").is_none());

    // Each of a batch's evaluations is counted as a BatchAuthorize (4 + 4 + 2 + 3 + 5 + 40).
    let metrics = send(addr, "GET", "/metrics", &[("host".into(), "x".into())], "").await;
    let counted: u64 = metrics
        .body
        .lines()
        .filter(|l| {
            l.starts_with("iamlet_request_duration_seconds_count{method=\"BatchAuthorize\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(counted, 58, "{}", metrics.body);
}

#[tokio::test]
async fn the_metadata_document_names_the_pdp_and_its_endpoints() {
    let f = Fixture::start("authzen-metadata").await;
    let addr = edge(&f).await;
    let get = |host: &str| {
        let headers = vec![("host".to_owned(), host.to_owned())];
        async move {
            send(
                addr,
                "GET",
                "/.well-known/authzen-configuration",
                &headers,
                "",
            )
            .await
        }
    };
    let reply = get("pdp.example:7081").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        json_of(&reply),
        json!({
            "policy_decision_point": "http://pdp.example:7081",
            "access_evaluation_endpoint": "http://pdp.example:7081/access/v1/evaluation",
            "access_evaluations_endpoint": "http://pdp.example:7081/access/v1/evaluations",
        })
    );
    assert_eq!(get("user@evil").await.status, 400);

    // A configured base URL wins over the Host header.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let configured = listener.local_addr().unwrap();
    tokio::spawn(iamlet::http::serve(
        iamlet::http::authzen::authzen_routes(
            std::sync::Arc::clone(&f.handle.api),
            iamlet::http::authzen::PdpBase::fixed("https://pdp.example.com/"),
        ),
        listener,
        None,
        std::future::pending(),
    ));
    let headers = vec![("host".to_owned(), "elsewhere".to_owned())];
    let reply = send(
        configured,
        "GET",
        "/.well-known/authzen-configuration",
        &headers,
        "",
    )
    .await;
    let document = json_of(&reply);
    assert_eq!(document["policy_decision_point"], "https://pdp.example.com");
    assert_eq!(
        document["access_evaluations_endpoint"],
        "https://pdp.example.com/access/v1/evaluations"
    );

    // An edge serving TLS itself names https: the request line carries no scheme.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls_edge = listener.local_addr().unwrap();
    tokio::spawn(iamlet::http::serve(
        iamlet::http::authzen::authzen_routes(
            std::sync::Arc::clone(&f.handle.api),
            iamlet::http::authzen::PdpBase::FromRequest { tls: true },
        ),
        listener,
        None,
        std::future::pending(),
    ));
    let headers = vec![("host".to_owned(), "pdp.example:7443".to_owned())];
    let reply = send(
        tls_edge,
        "GET",
        "/.well-known/authzen-configuration",
        &headers,
        "",
    )
    .await;
    assert_eq!(
        json_of(&reply)["access_evaluation_endpoint"],
        "https://pdp.example:7443/access/v1/evaluation"
    );
}

#[tokio::test]
async fn malformed_requests_get_400_with_a_json_reason() {
    let f = Fixture::start("authzen-bad").await;
    reader(&f, "alice");
    f.synced().await;
    let addr = edge(&f).await;
    let good = ask(
        &json!({"type": "iam_principal", "id": arn("alice")}),
        "s3:GetObject",
        "data/alice/1",
    );
    let with = |path: &str, value: Value| {
        let mut body = good.clone();
        let (outer, inner) = path.split_once('.').unwrap_or((path, ""));
        if inner.is_empty() {
            body[outer] = value;
        } else {
            body[outer][inner] = value;
        }
        body.to_string()
    };
    let mut too_many = good.clone();
    too_many["evaluations"] = Value::Array(vec![json!({}); 1001]);
    let cases: Vec<(&str, String, &str)> = vec![
        ("/access/v1/evaluation", "not json".into(), "not JSON"),
        (
            "/access/v1/evaluation",
            "[1]".into(),
            "request: not a JSON object",
        ),
        (
            "/access/v1/evaluation",
            with("subject", Value::Null),
            "subject: missing",
        ),
        (
            "/access/v1/evaluation",
            with("action", json!({})),
            "action.name: missing",
        ),
        (
            "/access/v1/evaluation",
            with("action.name", json!(5)),
            "action.name: not a string",
        ),
        (
            "/access/v1/evaluation",
            with("resource.id", json!("q")),
            "resource.id:",
        ),
        (
            "/access/v1/evaluation",
            with("subject.type", json!("user")),
            "subject.type:",
        ),
        (
            "/access/v1/evaluation",
            with("context", json!({"k": {"a": 1}})),
            "context.k: objects",
        ),
        (
            "/access/v1/evaluation",
            with("context", json!("x")),
            "context: not a JSON object",
        ),
        // Refused by the domain, named as AuthZEN members.
        (
            "/access/v1/evaluation",
            with("action.name", json!("nocolon")),
            "action.name:",
        ),
        (
            "/access/v1/evaluation",
            with("subject.id", json!("alice")),
            "subject.id:",
        ),
        (
            "/access/v1/evaluations",
            too_many.to_string(),
            "1001 evaluations; at most 1000",
        ),
        (
            "/access/v1/evaluations",
            with("options", json!({"evaluations_semantic": "all"})),
            "options.evaluations_semantic:",
        ),
        (
            "/access/v1/evaluations",
            json!({"evaluations": [{"resource": {"type": "t", "id": "*"}}]}).to_string(),
            "subject: missing",
        ),
    ];
    for (path, body, reason) in &cases {
        let reply = post(addr, path, body, &[("x-request-id", "bad-1")]).await;
        assert_eq!(reply.status, 400, "{path} {body}: {}", reply.body);
        assert_eq!(reply.header("x-request-id"), Some("bad-1"));
        let error = json_of(&reply);
        assert_eq!(error["__type"], "ValidationError", "{error}");
        assert_eq!(reply.header("x-amzn-requestid"), Some("bad-1"));
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(reason), "{path} {body}: {message}");
    }
    let long_id = "r".repeat(200);
    let reply = post(
        addr,
        "/access/v1/evaluation",
        &good.to_string(),
        &[("x-request-id", &long_id)],
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body.contains("X-Request-ID"), "{}", reply.body);
    // Without a usable id of the caller's, the error still carries one.
    assert!(reply
        .header("x-amzn-requestid")
        .is_some_and(|id| !id.is_empty()));
    // A declared length over the edge's limit is refused unread by the edge's shared layer.
    let headers = vec![
        ("host".to_owned(), "pdp.local".to_owned()),
        (
            "content-length".to_owned(),
            (iamlet::http::MAX_BODY_BYTES + 1).to_string(),
        ),
    ];
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = "POST /access/v1/evaluation HTTP/1.1\r\nconnection: close\r\n".to_owned();
    for (n, v) in &headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    tokio::io::AsyncWriteExt::write_all(&mut stream, head.as_bytes())
        .await
        .unwrap();
    let mut text = String::new();
    let _ = tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut text).await;
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    // Other methods are not the endpoints'.
    let reply = send(
        addr,
        "GET",
        "/access/v1/evaluation",
        &[("host".into(), "x".into())],
        "",
    )
    .await;
    assert_eq!(reply.status, 405);
    // The service still answers.
    assert_eq!(evaluation(addr, &good).await["decision"], true);
}
