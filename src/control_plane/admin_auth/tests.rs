use std::net::{IpAddr, Ipv4Addr};

use serde_json::json;

use super::*;
use crate::client::{sign_admin_call, ADMIN_SIGNING_HOST};
use crate::control_plane::store::{AuthFailureLog, StoreError};
use crate::control_plane::SqliteStore;
use crate::directory::IdGenerator;
use crate::sts::sigv4::{Signature, SignedRequest};

const A: &str = "111122223333";
const B: &str = "444455556666";
const T0: i64 = 1_790_000_000;

fn env(now: i64) -> CallEnv {
    CallEnv {
        source: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7))),
        secure_transport: true,
        now: Timestamp::from_epoch_seconds(now),
    }
}

fn operator() -> OperatorKey {
    OperatorKey {
        name: "ops".into(),
        access_key_id: "IOPRTESTTESTTESTTEST".into(),
        secret: Secret::new("operator-secret"),
    }
}

/// A control plane with tenants A and B and the root keys of each.
fn control_plane() -> (ControlPlane, [(String, Secret); 2]) {
    let store = SqliteStore::open_in_memory().unwrap();
    let cp = ControlPlane::open(Arc::new(store), IdGenerator::seeded(3))
        .unwrap()
        .with_clock(|| T0);
    let (_, a) = cp.create_tenant_with_root(A, None, "test").unwrap();
    let (_, b) = cp.create_tenant_with_root(B, None, "test").unwrap();
    (cp, [a, b])
}

fn keys<'a>(id: &'a str, secret: &'a str) -> AdminCredentials<'a> {
    AdminCredentials::Key(Presented::Keys {
        access_key_id: id,
        secret,
        session_token: None,
    })
}

#[test]
fn the_operator_key_and_root_keys_authenticate_and_wrong_secrets_do_not() {
    let (cp, [(root_a, secret_a), _]) = control_plane();
    let auth = AdminAuth::new(vec![operator()], Vec::new());
    let caller = auth
        .authenticate(
            &cp,
            keys("IOPRTESTTESTTESTTEST", "operator-secret"),
            &env(T0),
        )
        .unwrap();
    assert_eq!(caller.actor(), "operator:ops");
    assert!(!caller.is_root());

    let root = auth
        .authenticate(&cp, keys(&root_a, secret_a.expose()), &env(T0))
        .unwrap();
    assert_eq!(root.actor(), format!("arn:aws:iam::{A}:root"));
    assert!(root.is_root());

    for (id, secret) in [
        ("IOPRTESTTESTTESTTEST", "wrong"),
        (root_a.as_str(), "wrong"),
        ("AKIAUNKNOWNUNKNOWN00", "x"),
    ] {
        let err = auth
            .authenticate(&cp, keys(id, secret), &env(T0))
            .unwrap_err();
        assert_eq!(err.code(), "InvalidClientTokenId", "{id}");
    }
    let err = auth
        .authenticate(&cp, AdminCredentials::None, &env(T0))
        .unwrap_err();
    assert_eq!(err.code(), "MissingAuthenticationToken");
    assert_eq!(auth.counters().auth_failures.load(Ordering::Relaxed), 4);
}

#[test]
fn a_signature_made_by_sign_admin_call_verifies_and_a_changed_message_does_not() {
    let (cp, [(root_a, secret_a), _]) = control_plane();
    let auth = AdminAuth::new(vec![operator()], Vec::new());
    let now = Timestamp::from_epoch_seconds(T0);
    let payload = b"\x0a\x0c111122223333";
    let headers = sign_admin_call("Call", payload, &root_a, secret_a.expose(), None, now);
    let hex = |b: &[u8]| -> String {
        data_encoding::HEXLOWER.encode(ring::digest::digest(&ring::digest::SHA256, b).as_ref())
    };
    let verify = |payload: &[u8], method: &str| {
        let mut sent: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        sent.push(("host".into(), ADMIN_SIGNING_HOST.into()));
        let hash = hex(payload);
        let path = format!("/iamlet.v1.Admin/{method}");
        let signature = Signature::parse(&SignedRequest {
            method: "POST",
            path: &path,
            query: "",
            headers: &sent,
            payload_sha256: Some(&hash),
        })
        .unwrap();
        auth.authenticate(
            &cp,
            AdminCredentials::Key(Presented::Signed(&signature)),
            &env(T0),
        )
    };
    assert!(verify(payload, "Call").unwrap().is_root());
    // Another message, or the same one sent to another method, does not verify.
    assert_eq!(
        verify(b"\x0a\x0c444455556666", "Call").unwrap_err().code(),
        "SignatureDoesNotMatch"
    );
    assert_eq!(
        verify(payload, "DeleteTenant").unwrap_err().code(),
        "SignatureDoesNotMatch"
    );
}

#[test]
fn an_expired_session_is_refused_with_expired_token() {
    let (cp, _) = control_plane();
    cp.call(A, "test", "CreateRole", &json!({
        "RoleName": "r",
        "AssumeRolePolicyDocument": r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"sts:AssumeRole"}]}"#,
    }))
    .unwrap();
    let (tenant, version) = cp.tenant(A).unwrap();
    let snapshot = TenantSnapshot::compile(tenant, version, &AwsManagedCatalog::compile()).unwrap();
    let role = snapshot.role("r").unwrap();
    let claims = crate::sts::SessionClaims {
        tenant: A.into(),
        access_key_id: "ASIATESTSESSION00001".into(),
        token_id: "t1".into(),
        subject: crate::sts::SessionSubject::Role {
            role_name: "r".into(),
            role_id: role.role_id.to_string(),
            session_name: "s".into(),
            chained: false,
            federated_provider: None,
        },
        issued_at: T0,
        expires_at: T0 + 900,
        source_identity: None,
        mfa_authenticated_at: None,
        session_policy: None,
        policy_arns: Vec::new(),
        tags: Vec::new(),
        transitive_tag_keys: Vec::new(),
    };
    let (token, secret) = snapshot.issuer_keys().mint(&claims).unwrap();
    let auth = AdminAuth::new(Vec::new(), Vec::new());
    let presented = AdminCredentials::Key(Presented::Keys {
        access_key_id: &claims.access_key_id,
        secret: &secret,
        session_token: Some(&token),
    });
    let caller = auth.authenticate(&cp, presented, &env(T0 + 60)).unwrap();
    assert!(caller.actor().contains(":assumed-role/r/"));
    let err = auth
        .authenticate(&cp, presented, &env(T0 + 900 + 3600))
        .unwrap_err();
    assert_eq!(err.code(), "ExpiredToken");
}

#[test]
fn a_source_that_fails_too_often_is_throttled_until_its_window_ends() {
    let (cp, [(root_a, secret_a), _]) = control_plane();
    let auth = AdminAuth::new(Vec::new(), Vec::new()).with_failure_limit(FailureLimit {
        max_failures: 3,
        window_seconds: 60,
    });
    for _ in 0..3 {
        let err = auth
            .authenticate(&cp, keys(&root_a, "wrong"), &env(T0))
            .unwrap_err();
        assert_eq!(err.code(), "InvalidClientTokenId");
    }
    // Even the right secret is refused now, without being checked.
    let err = auth
        .authenticate(&cp, keys(&root_a, secret_a.expose()), &env(T0 + 1))
        .unwrap_err();
    assert_eq!(err.code(), "Throttling");
    assert_eq!(auth.counters().throttled.load(Ordering::Relaxed), 1);
    // Another source is not affected.
    let mut other = env(T0 + 1);
    other.source = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 8)));
    assert!(auth
        .authenticate(&cp, keys(&root_a, secret_a.expose()), &other)
        .is_ok());
    // The window ends.
    assert!(auth
        .authenticate(&cp, keys(&root_a, secret_a.expose()), &env(T0 + 61))
        .is_ok());
}

#[test]
fn tenant_principals_act_on_their_own_tenant_only_and_never_on_scps() {
    let (cp, [(root_a, secret_a), _]) = control_plane();
    let auth = AdminAuth::new(Vec::new(), Vec::new());
    let root = auth
        .authenticate(&cp, keys(&root_a, secret_a.expose()), &env(T0))
        .unwrap();
    let err = auth.checker(&cp, &root, B, env(T0)).unwrap_err();
    assert_eq!(err.code(), "AccessDenied");

    let checker = auth.checker(&cp, &root, A, env(T0)).unwrap();
    let (tenant, _) = cp.tenant(A).unwrap();
    checker
        .check(&tenant, "CreateUser", &json!({"UserName": "x"}))
        .unwrap();
    let err = checker
        .check(
            &tenant,
            "PutServiceControlPolicy",
            &json!({"PolicyName": "p", "PolicyDocument": "{}"}),
        )
        .unwrap_err();
    assert_eq!(err.code(), "AccessDenied");
}

#[test]
fn an_scp_caps_the_root_user() {
    let (cp, [(root_a, secret_a), _]) = control_plane();
    cp.call(
        A,
        "operator:test",
        "PutServiceControlPolicy",
        &json!({"PolicyName": "no-deletes", "PolicyDocument":
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"iam:Delete*","Resource":"*"}]}"#}),
    )
    .unwrap();
    let auth = AdminAuth::new(Vec::new(), Vec::new());
    let root = auth
        .authenticate(&cp, keys(&root_a, secret_a.expose()), &env(T0))
        .unwrap();
    let checker = auth.checker(&cp, &root, A, env(T0)).unwrap();
    let (tenant, _) = cp.tenant(A).unwrap();
    checker
        .check(&tenant, "CreateUser", &json!({"UserName": "x"}))
        .unwrap();
    let err = checker
        .check(&tenant, "DeleteUser", &json!({"UserName": "x"}))
        .unwrap_err();
    assert_eq!(err.code(), "AccessDenied");
    assert!(
        err.to_string()
            .ends_with("with an explicit deny in a service control policy"),
        "{err}"
    );
}

#[test]
fn pod_identity_actions_are_eks_actions_and_pass_their_role() {
    let (cp, [(root_a, secret_a), _]) = control_plane();
    let auth = AdminAuth::new(Vec::new(), Vec::new());
    let root = auth
        .authenticate(&cp, keys(&root_a, secret_a.expose()), &env(T0))
        .unwrap();
    let create = json!({"clusterName": "prod", "roleArn": format!("arn:aws:iam::{A}:role/app"),
                        "oidcProviderArn": "p", "namespace": "web", "serviceAccount": "api"});
    for (denied, message) in [
        ("eks:Create*", "eks:CreatePodIdentityAssociation on resource: arn:aws:eks:us-east-1:111122223333:cluster/prod"),
        ("iam:PassRole", "iam:PassRole on resource: arn:aws:iam::111122223333:role/app"),
    ] {
        cp.call(
            A,
            "operator:test",
            "PutServiceControlPolicy",
            &json!({"PolicyName": "cap", "PolicyDocument": format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"*","Resource":"*"}},{{"Effect":"Deny","Action":"{denied}","Resource":"*"}}]}}"#
            )}),
        )
        .unwrap();
        let checker = auth.checker(&cp, &root, A, env(T0)).unwrap();
        let (tenant, _) = cp.tenant(A).unwrap();
        let err = checker
            .check(&tenant, "CreatePodIdentityAssociation", &create)
            .unwrap_err();
        assert_eq!(err.code(), "AccessDenied");
        assert!(err.to_string().contains(message), "{err}");
        // Reading is another action, on the association.
        checker
            .check(
                &tenant,
                "DescribePodIdentityAssociation",
                &json!({"clusterName": "prod", "associationId": "a-1"}),
            )
            .unwrap();
    }
}

// === Throttling shared through the store (issue #16, item 4) ===

/// Two opens of one SQLite file: two replicas' handles on one database.
fn shared_database(name: &str) -> [Arc<SqliteStore>; 2] {
    let dir = std::env::temp_dir().join(format!("iamlet-throttle-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("iamlet.db");
    [
        Arc::new(SqliteStore::open(&path, None).unwrap()),
        Arc::new(SqliteStore::open(&path, None).unwrap()),
    ]
}

fn limited(max_failures: u32) -> AdminAuth {
    AdminAuth::new(Vec::new(), Vec::new()).with_failure_limit(FailureLimit {
        max_failures,
        window_seconds: 60,
    })
}

#[test]
fn two_admin_auths_over_one_store_share_the_failure_budget() {
    let (cp, [(root_a, secret_a), _]) = control_plane();
    let [one, two] = shared_database("shared");
    let (first, second) = (limited(3), limited(3));
    first.count_failures_in(one);
    second.count_failures_in(two);
    // Two failures through one replica, one through the other: three in all.
    for (auth, at) in [(&first, T0), (&second, T0 + 1), (&first, T0 + 2)] {
        let err = auth
            .authenticate(&cp, keys(&root_a, "wrong"), &env(at))
            .unwrap_err();
        assert_eq!(err.code(), "InvalidClientTokenId");
    }
    // Both refuse now, even the right secret, though neither saw three failures itself.
    for auth in [&first, &second] {
        let err = auth
            .authenticate(&cp, keys(&root_a, secret_a.expose()), &env(T0 + 3))
            .unwrap_err();
        assert_eq!(err.code(), "Throttling");
        assert_eq!(auth.counters().throttled.load(Ordering::Relaxed), 1);
    }
    assert_eq!(first.counters().auth_failures.load(Ordering::Relaxed), 2);
    assert_eq!(second.counters().auth_failures.load(Ordering::Relaxed), 1);
    // A refused presentation and a failed proof count in the store as well.
    let [one, _] = shared_database("shared-proof");
    let (third, fourth) = (limited(2), limited(2));
    third.count_failures_in(Arc::clone(&one) as _);
    fourth.count_failures_in(one);
    let root = third
        .authenticate(&cp, keys(&root_a, secret_a.expose()), &env(T0))
        .unwrap();
    third.count_failed_proof(&env(T0), &root);
    let err = fourth.refuse(AdminError::invalid_client_token(), &env(T0), &root_a);
    assert_eq!(err.code(), "InvalidClientTokenId");
    let err = third
        .authenticate(&cp, keys(&root_a, secret_a.expose()), &env(T0 + 1))
        .unwrap_err();
    assert_eq!(err.code(), "Throttling");
    // The window ends for both.
    for auth in [&first, &second] {
        assert!(auth
            .authenticate(&cp, keys(&root_a, secret_a.expose()), &env(T0 + 61))
            .is_ok());
    }
    // Without a store each counts alone: the budget is per instance.
    let (alone, other) = (limited(3), limited(3));
    for auth in [&alone, &other, &alone] {
        auth.authenticate(&cp, keys(&root_a, "wrong"), &env(T0))
            .unwrap_err();
    }
    assert!(other
        .authenticate(&cp, keys(&root_a, secret_a.expose()), &env(T0 + 1))
        .is_ok());
}

/// A failure log that fails while `down`, and counts the calls it gets.
#[derive(Default)]
struct Flaky {
    down: std::sync::atomic::AtomicBool,
    calls: AtomicU64,
    inner: Mutex<HashMap<String, u32>>,
}

impl AuthFailureLog for Flaky {
    fn record_auth_failure(&self, source: &str, _: i64, _: i64) -> Result<u32, StoreError> {
        self.answer()?;
        let mut counts = self.inner.lock();
        let count = counts.entry(source.to_owned()).or_default();
        *count += 1;
        Ok(*count)
    }
    fn auth_failures(&self, source: &str, _: i64, _: i64) -> Result<u32, StoreError> {
        self.answer()?;
        Ok(self.inner.lock().get(source).copied().unwrap_or(0))
    }
}

impl Flaky {
    fn answer(&self) -> Result<(), StoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if self.down.load(Ordering::Relaxed) {
            Err(StoreError::Unavailable {
                reason: "connection refused".into(),
            })
        } else {
            Ok(())
        }
    }
}

#[test]
fn when_the_store_cannot_count_each_replica_counts_its_own_failures_neither_open_nor_closed() {
    let (cp, [(root_a, secret_a), _]) = control_plane();
    let log = Arc::new(Flaky::default());
    let auth = limited(3);
    auth.count_failures_in(Arc::clone(&log) as _);
    // One failure while the store answers: counted there, and here.
    auth.authenticate(&cp, keys(&root_a, "wrong"), &env(T0))
        .unwrap_err();
    assert_eq!(log.inner.lock().values().sum::<u32>(), 1);
    log.down.store(true, Ordering::Relaxed);
    // Not fail open: this replica's own count (the one before the outage included) still
    // throttles after the budget.
    for at in [T0 + 1, T0 + 2] {
        let err = auth
            .authenticate(&cp, keys(&root_a, "wrong"), &env(at))
            .unwrap_err();
        assert_eq!(err.code(), "InvalidClientTokenId");
    }
    let err = auth
        .authenticate(&cp, keys(&root_a, secret_a.expose()), &env(T0 + 3))
        .unwrap_err();
    assert_eq!(err.code(), "Throttling");
    // Not fail closed: another source, with no failures, gets in.
    let mut other = env(T0 + 3);
    other.source = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 8)));
    assert!(auth
        .authenticate(&cp, keys(&root_a, secret_a.expose()), &other)
        .is_ok());
    // The store failed once (at T0 + 1) and was left alone for the retry time since: one
    // call, not one per authentication.
    assert_eq!(log.calls.load(Ordering::Relaxed), 2 + 1);
    // Back: asked again once the retry time passed, and its count decides again (it missed
    // the outage's failures, so the source is not throttled by it).
    log.down.store(false, Ordering::Relaxed);
    let at = T0 + 1 + STORE_RETRY_SECONDS;
    assert!(auth
        .authenticate(&cp, keys(&root_a, secret_a.expose()), &env(at))
        .is_ok());
    assert_eq!(log.calls.load(Ordering::Relaxed), 4);
    // A clock that went back does not keep the store unasked (from the other source, which
    // this replica's own count does not throttle).
    let at_other = |now: i64| CallEnv {
        now: Timestamp::from_epoch_seconds(now),
        ..other
    };
    log.down.store(true, Ordering::Relaxed);
    auth.authenticate(&cp, keys(&root_a, secret_a.expose()), &at_other(at))
        .unwrap();
    let calls = log.calls.load(Ordering::Relaxed);
    log.down.store(false, Ordering::Relaxed);
    auth.authenticate(&cp, keys(&root_a, secret_a.expose()), &at_other(at - 3600))
        .unwrap();
    assert_eq!(log.calls.load(Ordering::Relaxed), calls + 1);
}

#[test]
fn adding_a_role_to_an_instance_profile_passes_the_role() {
    let (cp, [(root_a, secret_a), _]) = control_plane();
    let auth = AdminAuth::new(Vec::new(), Vec::new());
    let root = auth
        .authenticate(&cp, keys(&root_a, secret_a.expose()), &env(T0))
        .unwrap();
    let add = json!({"InstanceProfileName": "web", "RoleName": "app"});
    for (denied, message) in [
        (
            "iam:AddRoleToInstanceProfile",
            "iam:AddRoleToInstanceProfile on resource: arn:aws:iam::111122223333:instance-profile/web",
        ),
        ("iam:PassRole", "iam:PassRole on resource: arn:aws:iam::111122223333:role/app"),
    ] {
        cp.call(
            A,
            "operator:test",
            "PutServiceControlPolicy",
            &json!({"PolicyName": "cap", "PolicyDocument": format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"*","Resource":"*"}},{{"Effect":"Deny","Action":"{denied}","Resource":"*"}}]}}"#
            )}),
        )
        .unwrap();
        let checker = auth.checker(&cp, &root, A, env(T0)).unwrap();
        let (tenant, _) = cp.tenant(A).unwrap();
        let err = checker
            .check(&tenant, "AddRoleToInstanceProfile", &add)
            .unwrap_err();
        assert_eq!(err.code(), "AccessDenied");
        assert!(err.to_string().contains(message), "{err}");
        // Removing the role passes nothing.
        if denied == "iam:PassRole" {
            checker
                .check(&tenant, "RemoveRoleFromInstanceProfile", &add)
                .unwrap();
        }
    }
}

// === The password policy's AllowUsersToChangePassword (issue #17, item 4) ===

#[test]
fn allow_users_to_change_password_grants_users_their_own_password_and_never_beats_a_deny() {
    let (cp, _) = control_plane();
    let auth = AdminAuth::new(Vec::new(), Vec::new());
    let op = "operator:test";
    for user in ["alice", "bob"] {
        cp.call(A, op, "CreateUser", &json!({"UserName": user}))
            .unwrap();
    }
    let (key, _) = cp
        .call(A, op, "CreateAccessKey", &json!({"UserName": "alice"}))
        .unwrap();
    let (id, secret) = (
        key["AccessKey"]["AccessKeyId"].as_str().unwrap().to_owned(),
        key["AccessKey"]["SecretAccessKey"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    let alice = auth
        .authenticate(&cp, keys(&id, &secret), &env(T0))
        .unwrap();
    let check = |action: &str, params: serde_json::Value| {
        let checker = auth.checker(&cp, &alice, A, env(T0)).unwrap();
        let (tenant, _) = cp.tenant(A).unwrap();
        checker
            .check(&tenant, action, &params)
            .map_err(|e| e.code().to_string())
    };
    let own = json!({"UserName": "alice"});
    // No policy grants alice anything yet.
    assert_eq!(
        check("ChangePassword", own.clone()),
        Err("AccessDenied".into())
    );
    assert_eq!(
        check("GetAccountPasswordPolicy", json!({})),
        Err("AccessDenied".into())
    );
    cp.call(
        A,
        op,
        "UpdateAccountPasswordPolicy",
        &json!({"AllowUsersToChangePassword": false}),
    )
    .unwrap();
    assert_eq!(
        check("ChangePassword", own.clone()),
        Err("AccessDenied".into())
    );
    cp.call(
        A,
        op,
        "UpdateAccountPasswordPolicy",
        &json!({"AllowUsersToChangePassword": true}),
    )
    .unwrap();
    assert_eq!(check("ChangePassword", own.clone()), Ok(()));
    assert_eq!(check("GetAccountPasswordPolicy", json!({})), Ok(()));
    // Only her own password, and nothing else.
    assert_eq!(
        check("ChangePassword", json!({"UserName": "bob"})),
        Err("AccessDenied".into())
    );
    assert_eq!(
        check("UpdateLoginProfile", own.clone()),
        Err("AccessDenied".into())
    );
    assert_eq!(
        check("UpdateAccountPasswordPolicy", json!({})),
        Err("AccessDenied".into())
    );
    // An explicit deny still wins.
    cp.call(
        A,
        op,
        "PutUserPolicy",
        &json!({"UserName": "alice", "PolicyName": "no", "PolicyDocument":
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"iam:ChangePassword","Resource":"*"}]}"#}),
    )
    .unwrap();
    assert_eq!(check("ChangePassword", own), Err("AccessDenied".into()));
    assert_eq!(check("GetAccountPasswordPolicy", json!({})), Ok(()));
}
