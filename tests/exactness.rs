//! Issue 12, engine exactness: each rule's reproduction through `iamlet policy simulate` (the
//! binary, as a user runs it) and through a sidecar's `Authorize` over gRPC, against a
//! control plane whose policies reach the sidecar through its snapshot stream.
//!
//! The rules: (1) `Null` under a set qualifier; (2) a KMS key needs its key policy; (3)
//! `sts:GetCallerIdentity` needs no permission; (4) the RCP grammar; (5) malformed typed
//! values; (6) context keys that differ only in case; (7) policy variables in `Bool`.
//!
//! A sidecar receives no RCPs (the directory stores none, and `resource_policy_json` is a
//! resource policy), so rule 4 is shown through `policy validate --kind rcp` and
//! `policy simulate` only.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use iamlet::control_plane::{ControlPlane, SqliteStore};
use iamlet::directory::IdGenerator;
use iamlet::grpc::{serve_control_plane, serve_sidecar};
use iamlet::proto::v1 as pb;
use iamlet::sidecar::{spawn_sidecar, SidecarConfig, SidecarHandle};
use iamlet::snapshot::SnapshotVersion;
use iamlet::sync::{Backoff, Readiness};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

const A: &str = "111122223333";
const KEY: &str = "arn:aws:kms:eu-west-1:111122223333:key/0000aaaa-1111-2222-3333-444455556666";
const PATIENCE: Duration = Duration::from_secs(10);

// === the reproductions, as decision vectors ===

/// The issue's three reproductions, verbatim.
const NULL_QUALIFIER: &str = r#"{"id":"null-qualifier","source":"own","policies":{"identity":[{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:TagUser","Resource":"*","Condition":{"ForAnyValue:Null":{"aws:TagKeys":"true"}}}]}]},"request":{"principal":"arn:aws:iam::111122223333:user/alice","action":"iam:TagUser","resource":"arn:aws:iam::111122223333:user/bob","resource_account":"111122223333","context":{}},"expected":"ImplicitDeny"}"#;
const KMS_NO_KEY_POLICY: &str = r#"{"id":"kms-no-key-policy","source":"own","policies":{"identity":[{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Decrypt","Resource":"arn:aws:kms:eu-west-1:111122223333:key/0000aaaa-1111-2222-3333-444455556666"}]}]},"request":{"principal":"arn:aws:iam::111122223333:user/alice","action":"kms:Decrypt","resource":"arn:aws:kms:eu-west-1:111122223333:key/0000aaaa-1111-2222-3333-444455556666","resource_account":"111122223333","context":{}},"expected":"ImplicitDeny"}"#;
const GCI_UNDER_DENY: &str = r#"{"id":"gci-under-deny","source":"own","policies":{"identity":[{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"sts:*","Resource":"*"}]}]},"request":{"principal":"arn:aws:sts::111122223333:assumed-role/ops/laptop","action":"sts:GetCallerIdentity","resource":"*","resource_account":"111122223333","context":{}},"expected":"Allow"}"#;

fn policy(statements: &Value) -> Value {
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// A vector: alice asks for `action` on `resource` with `context`, under these policies.
fn vector(id: &str, policies: &Value, action: &str, resource: &str, context: &Value) -> String {
    json!({
        "id": id,
        "source": "own",
        "policies": policies,
        "request": {
            "principal": format!("arn:aws:iam::{A}:user/alice"),
            "action": action,
            "resource": resource,
            "resource_account": A,
            "context": context,
        },
    })
    .to_string()
}

fn with_expected(line: &str, expected: &str) -> String {
    let mut v: Value = serde_json::from_str(line).unwrap();
    v["expected"] = expected.into();
    v.to_string()
}

/// Rule 1, our own: `ForAllValues:Null` always holds, so a `Deny` with it always applies.
fn for_all_values_null_deny() -> String {
    let policies = json!({"identity": [policy(&json!([
        {"Effect": "Allow", "Action": "iam:TagUser", "Resource": "*"},
        {"Effect": "Deny", "Action": "iam:TagUser", "Resource": "*",
         "Condition": {"ForAllValues:Null": {"aws:TagKeys": "false"}}}
    ]))]});
    with_expected(
        &vector(
            "for-all-values-null",
            &policies,
            "iam:TagUser",
            &format!("arn:aws:iam::{A}:user/bob"),
            &json!({"aws:TagKeys": ["team"]}),
        ),
        "ExplicitDeny",
    )
}

/// Rule 2, our own: the default key policy delegates to IAM.
fn default_key_policy() -> Value {
    policy(&json!([{
        "Sid": "Enable IAM User Permissions",
        "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{A}:root")},
        "Action": "kms:*",
        "Resource": "*"
    }]))
}

fn kms_default_key_policy() -> String {
    let policies = json!({
        "identity": [policy(&json!([{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": KEY}]))],
        "resource": default_key_policy(),
    });
    with_expected(
        &vector(
            "kms-default-key-policy",
            &policies,
            "kms:Decrypt",
            KEY,
            &json!({}),
        ),
        "Allow",
    )
}

/// Rule 4: an RCP with `NotAction`.
fn rcp_not_action() -> String {
    let policies = json!({
        "identity": [policy(&json!([{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]))],
        "rcp": [{"level": "r-root", "policies": [policy(&json!([{
            "Effect": "Deny", "Principal": "*", "NotAction": "s3:GetObject", "Resource": "*"
        }]))]}],
    });
    with_expected(
        &vector(
            "rcp-not-action",
            &policies,
            "s3:PutObject",
            "arn:aws:s3:::b/k",
            &json!({}),
        ),
        "ExplicitDeny",
    )
}

/// Rule 5: an `Allow` whose `NotIpAddress` holds a prefix no IPv4 network has.
fn not_ip_address_slash_33() -> String {
    let policies = json!({"identity": [policy(&json!([{
        "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
        "Condition": {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/33"}}
    }]))]});
    with_expected(
        &vector(
            "not-ip-address-33",
            &policies,
            "s3:GetObject",
            "arn:aws:s3:::b/k",
            &json!({"aws:SourceIp": "192.0.2.1"}),
        ),
        "ImplicitDeny",
    )
}

/// Rule 6: two spellings of one key, with different values.
fn source_ip_twice() -> String {
    let policies = json!({"identity": [policy(&json!([{
        "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
        "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}
    }]))]});
    with_expected(
        &vector(
            "source-ip-twice",
            &policies,
            "s3:GetObject",
            "arn:aws:s3:::b/k",
            &json!({"aws:SourceIp": "10.0.0.1", "AWS:SOURCEIP": "192.0.2.1"}),
        ),
        "ImplicitDeny",
    )
}

/// Rule 7: `Bool` compared with a principal tag through a policy variable.
fn bool_variable(tag: &str, expected: &str) -> String {
    let policies = json!({"identity": [policy(&json!([{
        "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
        "Condition": {"Bool": {"aws:SecureTransport": "${aws:PrincipalTag/secure}"}}
    }]))]});
    with_expected(
        &vector(
            &format!("bool-variable-{tag}"),
            &policies,
            "s3:GetObject",
            "arn:aws:s3:::b/k",
            &json!({"aws:SecureTransport": true, "aws:PrincipalTag/secure": tag}),
        ),
        expected,
    )
}

// === iamlet policy simulate / validate ===

fn iamlet(args: &[&str], stdin: &str) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_iamlet"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    (out.status.code(), String::from_utf8(out.stdout).unwrap())
}

/// Runs `lines` through `iamlet policy simulate`; one JSON result per line, then the tally.
fn simulate(lines: &[String]) -> (Vec<Value>, String) {
    let (_, out) = iamlet(&["policy", "simulate", "--vectors", "-"], &lines.join("\n"));
    let mut results: Vec<&str> = out.lines().collect();
    let tally = results.pop().unwrap().to_owned();
    (
        results
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        tally,
    )
}

#[test]
fn simulate_decides_the_three_reproductions_as_aws_documents() {
    let (results, tally) = simulate(&[
        NULL_QUALIFIER.to_owned(),
        KMS_NO_KEY_POLICY.to_owned(),
        GCI_UNDER_DENY.to_owned(),
    ]);
    assert_eq!(tally, "3 passed, 0 failed", "{results:?}");
    let [null, kms, gci] = &results[..] else {
        panic!("{results:?}")
    };
    assert_eq!(null["decision"], "ImplicitDeny");
    assert_eq!(kms["decision"], "ImplicitDeny");
    assert!(
        kms["reason"]
            .as_str()
            .unwrap()
            .contains("because no resource-based policy allows the kms:Decrypt action"),
        "{kms}"
    );
    assert!(
        kms["rule"]
            .as_str()
            .unwrap()
            .starts_with("KeyPolicyRequired: no key policy"),
        "{kms}"
    );
    assert_eq!(gci["decision"], "Allow");
    let reason = gci["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("arn:aws:sts::111122223333:assumed-role/ops/laptop is authorized to perform: sts:GetCallerIdentity")
            && reason.contains("requires no permission")
            && reason.ends_with("(rule NoPermissionRequired)"),
        "{reason}"
    );
    assert!(gci["rule"]
        .as_str()
        .unwrap()
        .starts_with("NoPermissionRequired: "));
    // A decision no rule made carries no `rule` field.
    assert!(null.get("rule").is_none(), "{null}");
}

#[test]
fn simulate_decides_our_own_cases_for_rules_1_2_and_7() {
    let (results, tally) = simulate(&[
        for_all_values_null_deny(),
        kms_default_key_policy(),
        bool_variable("true", "Allow"),
        bool_variable("FALSE", "ImplicitDeny"),
        bool_variable("yes", "ImplicitDeny"),
    ]);
    assert_eq!(tally, "5 passed, 0 failed", "{results:#?}");
}

#[test]
fn simulate_refuses_rcp_not_action_malformed_values_and_case_twins() {
    let (results, tally) = simulate(&[
        rcp_not_action(),
        not_ip_address_slash_33(),
        source_ip_twice(),
    ]);
    assert_eq!(tally, "0 passed, 3 failed", "{results:#?}");
    let errors: Vec<&str> = results
        .iter()
        .map(|r| r["error"].as_str().unwrap())
        .collect();
    assert_eq!(
        errors[0],
        "policy `rcp[0].policies[0]` is invalid: MalformedPolicyDocument: Resource control policies do not support NotAction."
    );
    assert_eq!(
        errors[1],
        "policy `identity[0]` is invalid: MalformedPolicyDocument: The policy failed legacy parsing"
    );
    // Named in the order the vector gives them.
    assert_eq!(
        errors[2],
        "invalid request: context keys `aws:SourceIp` and `AWS:SOURCEIP` differ only in case; condition keys are case-insensitive, so give the key once"
    );
}

#[test]
fn validate_refuses_rcp_elements_and_malformed_values_with_their_location() {
    let rcp = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"s3:*","Resource":"*"}]}"#;
    let (code, out) = iamlet(&["policy", "validate", "--kind", "rcp", "-"], rcp);
    assert_eq!(code, Some(1));
    assert_eq!(
        out.trim(),
        "-: MalformedPolicyDocument: Resource control policies do not support NotPrincipal. (at Statement[0].NotPrincipal)"
    );
    for (kind, operator, key, value) in [
        ("identity", "NotIpAddress", "aws:SourceIp", "10.0.0.0/33"),
        ("resource", "NumericNotEquals", "s3:max-keys", "ten"),
        ("scp", "Bool", "aws:SecureTransport", "yes"),
        ("session", "DateNotEquals", "aws:CurrentTime", "tomorrow"),
    ] {
        let principal = if kind == "resource" {
            r#""Principal":"*","#
        } else {
            ""
        };
        let text = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny",{principal}"Action":"s3:*","Resource":"*","Condition":{{"{operator}":{{"{key}":"{value}"}}}}}}]}}"#
        );
        let (code, out) = iamlet(&["policy", "validate", "--kind", kind, "-"], &text);
        assert_eq!(code, Some(1), "{kind}: {out}");
        assert_eq!(
            out.trim(),
            format!("-: MalformedPolicyDocument: The policy failed legacy parsing (at Statement[0].Condition.{operator}.{key})")
        );
    }
}

// === the sidecar's Authorize over gRPC ===

/// A control plane with tenant A and a sidecar serving it.
struct Fixture {
    cp: Arc<ControlPlane>,
    handle: SidecarHandle,
    authorizer: pb::authorizer_client::AuthorizerClient<Channel>,
    _stop: watch::Sender<bool>,
}

impl Fixture {
    async fn start(name: &str) -> Self {
        let data = super::support::temp_dir("exactness", &format!("{name}-cp"));
        let store = SqliteStore::open(&data.join("iamlet.db"), None).unwrap();
        let cp = Arc::new(super::support::signed(
            ControlPlane::open(Arc::new(store), IdGenerator::system()).unwrap(),
        ));
        cp.create_tenant(A, None, "test").unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cp_addr = listener.local_addr().unwrap();
        tokio::spawn(serve_control_plane(
            Arc::clone(&cp),
            listener,
            Duration::from_millis(200),
            std::future::pending(),
        ));
        let config = SidecarConfig {
            control_plane: format!("http://{cp_addr}"),
            readiness: Readiness::Tenants(vec![A.to_owned()]),
            state_dir: super::support::temp_dir("exactness", &format!("{name}-sidecar")),
            sidecar_id: format!("{name}-sidecar"),
            backoff: Backoff {
                initial: Duration::from_millis(20),
                max: Duration::from_millis(200),
                multiplier: 1.6,
                jitter: 0.2,
            },
            snapshot_trust: super::support::snapshot_trust(),
            ..SidecarConfig::default()
        };
        let (stop, shutdown) = watch::channel(false);
        let (handle, _sync) = spawn_sidecar(&config, shutdown);
        super::support::eventually_within(PATIENCE, "the sidecar to be ready", || {
            handle.is_ready() && handle.store.version(A).is_some()
        })
        .await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let local = listener.local_addr().unwrap();
        tokio::spawn(serve_sidecar(
            handle.clone(),
            listener,
            std::future::pending(),
        ));
        let channel = Endpoint::from_shared(format!("http://{local}"))
            .unwrap()
            .connect_timeout(PATIENCE)
            .timeout(PATIENCE)
            .connect()
            .await
            .unwrap();
        Self {
            cp,
            handle,
            authorizer: pb::authorizer_client::AuthorizerClient::new(channel),
            _stop: stop,
        }
    }

    /// An IAM action on the control plane, which must succeed; waits until the sidecar
    /// serves its result.
    async fn call(&self, action: &str, params: &Value) -> Value {
        let (out, version) = self
            .cp
            .call(A, "test", action, params)
            .unwrap_or_else(|e| panic!("{action} {params}: {e}"));
        self.serving(version).await;
        out
    }

    async fn serving(&self, version: SnapshotVersion) {
        let store = Arc::clone(&self.handle.store);
        super::support::eventually_within(PATIENCE, "the sidecar to apply the change", || {
            store.version(A).is_some_and(|v| v >= version)
        })
        .await;
    }

    async fn user(&self, name: &str, policy: &Value) {
        self.call("CreateUser", &json!({"UserName": name})).await;
        self.call(
            "PutUserPolicy",
            &json!({"UserName": name, "PolicyName": "inline", "PolicyDocument": policy.to_string()}),
        )
        .await;
    }

    async fn authorize(
        &self,
        request: pb::AuthorizeRequest,
    ) -> Result<pb::AuthorizeResponse, Status> {
        self.authorizer
            .clone()
            .authorize(request)
            .await
            .map(tonic::Response::into_inner)
    }
}

fn ask(principal: &str, action: &str, resource: &str) -> pb::AuthorizeRequest {
    pb::AuthorizeRequest {
        caller: Some(pb::authorize_request::Caller::PrincipalArn(
            principal.into(),
        )),
        action: action.into(),
        resource: resource.into(),
        ..pb::AuthorizeRequest::default()
    }
}

fn user_arn(name: &str) -> String {
    format!("arn:aws:iam::{A}:user/{name}")
}

fn decision(r: &pb::AuthorizeResponse) -> pb::Decision {
    pb::Decision::try_from(r.decision).unwrap()
}

fn text(value: &str) -> pb::ContextValue {
    pb::ContextValue {
        value: Some(pb::context_value::Value::StringValue(value.into())),
    }
}

fn boolean(value: bool) -> pb::ContextValue {
    pb::ContextValue {
        value: Some(pb::context_value::Value::BoolValue(value)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorize_decides_null_qualifiers_kms_keys_and_get_caller_identity() {
    let f = Fixture::start("rules-1-3").await;

    // Rule 1: the issue's reproduction, then our own ForAllValues:Null deny.
    let reproduction: Value = serde_json::from_str(NULL_QUALIFIER).unwrap();
    f.user("alice", &reproduction["policies"]["identity"][0])
        .await;
    let r = f
        .authorize(ask(&user_arn("alice"), "iam:TagUser", &user_arn("bob")))
        .await
        .unwrap();
    assert_eq!(decision(&r), pb::Decision::ImplicitDeny, "{}", r.message);
    f.user(
        "dora",
        &policy(&json!([
            {"Effect": "Allow", "Action": "iam:TagUser", "Resource": "*"},
            {"Sid": "AlwaysApplies", "Effect": "Deny", "Action": "iam:TagUser", "Resource": "*",
             "Condition": {"ForAllValues:Null": {"aws:TagKeys": "false"}}}
        ])),
    )
    .await;
    let r = f
        .authorize(ask(&user_arn("dora"), "iam:TagUser", &user_arn("bob")))
        .await
        .unwrap();
    assert_eq!(decision(&r), pb::Decision::ExplicitDeny, "{}", r.message);
    assert_eq!(r.statement.unwrap().sid, "AlwaysApplies");

    // Rule 2: an identity allow alone is not enough on a key without a key policy, whether
    // none is registered or none is given in the request.
    f.user(
        "kim",
        &policy(&json!([{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": KEY}])),
    )
    .await;
    let decrypt = ask(&user_arn("kim"), "kms:Decrypt", KEY);
    let r = f.authorize(decrypt.clone()).await.unwrap();
    assert_eq!(decision(&r), pb::Decision::ImplicitDeny);
    assert_eq!(r.policy_type, pb::PolicyKind::Resource as i32);
    assert!(
        r.message
            .ends_with("because no resource-based policy allows the kms:Decrypt action"),
        "{}",
        r.message
    );
    // The default key policy, given with the request, delegates to IAM.
    let given = pb::AuthorizeRequest {
        resource_policy_json: default_key_policy().to_string(),
        ..decrypt.clone()
    };
    assert_eq!(
        decision(&f.authorize(given).await.unwrap()),
        pb::Decision::Allow
    );
    // Registered, it does the same; and it grants nothing to a user without an IAM allow.
    f.call(
        "PutResourcePolicy",
        &json!({"ResourceArn": KEY, "PolicyDocument": default_key_policy().to_string()}),
    )
    .await;
    let r = f.authorize(decrypt.clone()).await.unwrap();
    assert_eq!(decision(&r), pb::Decision::Allow, "{}", r.message);
    assert!(
        !r.cached,
        "a decision cached under the older snapshot was served"
    );
    let r = f
        .authorize(ask(&user_arn("alice"), "kms:Decrypt", KEY))
        .await
        .unwrap();
    assert_eq!(decision(&r), pb::Decision::ImplicitDeny);
    assert_eq!(r.policy_type, pb::PolicyKind::Identity as i32);

    // Rule 3: the issue's reproduction (a role session under `Deny sts:*`).
    let trust = policy(&json!([{
        "Effect": "Allow", "Principal": {"AWS": user_arn("alice")}, "Action": "sts:AssumeRole"
    }]));
    f.call(
        "CreateRole",
        &json!({"RoleName": "ops", "AssumeRolePolicyDocument": trust.to_string()}),
    )
    .await;
    f.call(
        "PutRolePolicy",
        &json!({"RoleName": "ops", "PolicyName": "no-sts", "PolicyDocument":
            policy(&json!([{"Sid": "NoSts", "Effect": "Deny", "Action": "sts:*", "Resource": "*"}])).to_string()}),
    )
    .await;
    let session = format!("arn:aws:sts::{A}:assumed-role/ops/laptop");
    let gci = pb::AuthorizeRequest {
        explain: true,
        ..ask(&session, "sts:GetCallerIdentity", "*")
    };
    let r = f.authorize(gci.clone()).await.unwrap();
    assert_eq!(decision(&r), pb::Decision::Allow, "{}", r.message);
    assert!(
        r.message.starts_with(&format!(
            "{session} is authorized to perform: sts:GetCallerIdentity on resource: * because sts:GetCallerIdentity requires no permission"
        )),
        "{}",
        r.message
    );
    assert_eq!(r.rule, "NoPermissionRequired", "the answer names the rule");
    // The trace shows the deny the rule overrode.
    assert!(
        r.trace
            .iter()
            .any(|e| e.effect == "Deny" && e.statement.as_ref().unwrap().sid == "NoSts"),
        "{:?}",
        r.trace
    );
    // Other STS actions stay denied; BatchAuthorize answers each the same way.
    let batch = f
        .authorizer
        .clone()
        .batch_authorize(pb::BatchAuthorizeRequest {
            requests: vec![
                ask(&session, "sts:GetCallerIdentity", "*"),
                ask(&session, "sts:GetSessionToken", "*"),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    let outcomes: Vec<pb::Decision> = batch
        .results
        .iter()
        .map(|r| match r.result.as_ref().unwrap() {
            pb::batch_authorize_result::Result::Response(r) => decision(r),
            pb::batch_authorize_result::Result::Error(e) => panic!("{e:?}"),
        })
        .collect();
    assert_eq!(outcomes, [pb::Decision::Allow, pb::Decision::ExplicitDeny]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorize_refuses_case_twins_and_malformed_values_and_substitutes_bool_variables() {
    let f = Fixture::start("rules-5-7").await;

    // Rule 5: the control plane refuses the document when it is written, with the location.
    let bad = policy(&json!([{
        "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
        "Condition": {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/33"}}
    }]));
    f.call("CreateUser", &json!({"UserName": "erin"})).await;
    for (action, params) in [
        (
            "PutUserPolicy",
            json!({"UserName": "erin", "PolicyName": "p", "PolicyDocument": bad.to_string()}),
        ),
        (
            "CreatePolicy",
            json!({"PolicyName": "p", "PolicyDocument": bad.to_string()}),
        ),
    ] {
        let e = f.cp.call(A, "test", action, &params).unwrap_err();
        assert_eq!(e.code(), "MalformedPolicyDocument", "{action}: {e}");
        assert_eq!(
            e.to_string(),
            "The policy failed legacy parsing",
            "{action}"
        );
    }
    // … and a sidecar refuses it given with a request.
    let given = pb::AuthorizeRequest {
        resource_policy_json: policy(&json!([{
            "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*",
            "Condition": {"NumericNotEquals": {"s3:max-keys": "ten"}}
        }]))
        .to_string(),
        ..ask(&user_arn("erin"), "s3:GetObject", "arn:aws:s3:::b/k")
    };
    let e = f.authorize(given).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message()
            .contains("MalformedPolicyDocument: The policy failed legacy parsing"),
        "{}",
        e.message()
    );

    // Rule 6: two spellings of one key are refused, naming both; one spelling or another
    // makes the same cache entry.
    f.user(
        "ivan",
        &policy(&json!([{
            "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
            "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}
        }])),
    )
    .await;
    let get = ask(&user_arn("ivan"), "s3:GetObject", "arn:aws:s3:::b/k");
    let twins = pb::AuthorizeRequest {
        context: [
            ("aws:SourceIp".to_owned(), text("10.0.0.1")),
            ("AWS:SOURCEIP".to_owned(), text("192.0.2.1")),
        ]
        .into(),
        ..get.clone()
    };
    for _ in 0..3 {
        let e = f.authorize(twins.clone()).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(
            e.message()
                .contains("`AWS:SOURCEIP` and `aws:SourceIp` differ only in case"),
            "{}",
            e.message()
        );
    }
    let spelled = |key: &str, ip: &str| pb::AuthorizeRequest {
        context: [(key.to_owned(), text(ip))].into(),
        ..get.clone()
    };
    let first = f
        .authorize(spelled("aws:SourceIp", "10.0.0.1"))
        .await
        .unwrap();
    assert_eq!(decision(&first), pb::Decision::Allow);
    assert!(!first.cached);
    let second = f
        .authorize(spelled("AWS:SOURCEIP", "10.0.0.1"))
        .await
        .unwrap();
    assert_eq!(decision(&second), pb::Decision::Allow);
    assert!(second.cached, "the cache key depends on the key's spelling");
    let outside = f
        .authorize(spelled("Aws:SourceIP", "192.0.2.1"))
        .await
        .unwrap();
    assert_eq!(decision(&outside), pb::Decision::ImplicitDeny);
    assert!(!outside.cached);

    // Rule 7: `Bool` compares with the caller's tag through a policy variable.
    f.user(
        "tess",
        &policy(&json!([{
            "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "${aws:PrincipalTag/secure}"}}
        }])),
    )
    .await;
    let secure = |over_tls: bool| pb::AuthorizeRequest {
        context: [("aws:SecureTransport".to_owned(), boolean(over_tls))].into(),
        ..ask(&user_arn("tess"), "s3:GetObject", "arn:aws:s3:::b/k")
    };
    // No tag yet: the variable has no value, so the condition does not hold.
    assert_eq!(
        decision(&f.authorize(secure(true)).await.unwrap()),
        pb::Decision::ImplicitDeny
    );
    f.call(
        "TagUser",
        &json!({"UserName": "tess", "Tags": [{"Key": "secure", "Value": "true"}]}),
    )
    .await;
    assert_eq!(
        decision(&f.authorize(secure(true)).await.unwrap()),
        pb::Decision::Allow
    );
    assert_eq!(
        decision(&f.authorize(secure(false)).await.unwrap()),
        pb::Decision::ImplicitDeny
    );
}
