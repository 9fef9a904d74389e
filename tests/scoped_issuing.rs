//! Issue #20, item 3: scoped issuing keys. Two sidecars with their own mTLS identities: the
//! `--tenant-access` file scopes `team-a`'s to role path `/team-a/`. It cannot mint a session
//! of `/team-b/x` (refused with `AccessDenied`, recorded in its decision log, counted), while
//! the sessions it mints for `/team-a/app` verify at the other sidecar, which never received
//! the tenant's issuer private key.

use std::sync::Arc;

use iamlet::sidecar::{AssumeRoleInput, CallerId, GetCallerIdentityInput, SecurityTokenService};
use iamlet::tls::{ClientTlsFiles, ServerTlsFiles};
use serde_json::json;

use super::support::eventually;
use super::tls::{control_plane, sidecar, Pki};

const A: &str = "111122223333";

fn assume(caller: &(String, String), role_arn: &str) -> AssumeRoleInput {
    AssumeRoleInput {
        caller: Some(CallerId::Keys {
            access_key_id: caller.0.clone(),
            secret: caller.1.clone(),
            session_token: None,
        }),
        role_arn: role_arn.into(),
        role_session_name: "scoped".into(),
        ..AssumeRoleInput::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_sidecar_mints_only_within_scope_and_its_tokens_verify_elsewhere() {
    let pki = Pki::new("scoped-issuing");
    let (ca, ca_path) = pki.authority("ca");
    let (server_cert, server_key) = pki.leaf(&ca, "server", &["localhost", "127.0.0.1"], false);
    let (a_cert, a_key) = pki.leaf(&ca, "team-a", &["team-a.iamlet.test"], false);
    let (b_cert, b_key) = pki.leaf(&ca, "ops", &["ops.iamlet.test"], false);
    let access = "team-a.iamlet.test:\n  tenants: ['111122223333']\n  scope:\n    role_paths: ['/team-a/']\nops.iamlet.test: ['111122223333']\n";
    let (cp, addr) = control_plane(
        &pki,
        ServerTlsFiles {
            cert: server_cert,
            key: server_key,
            client_ca: Some(ca_path.clone()),
        },
        Some(access),
    )
    .await;
    let call =
        |action: &str, params: serde_json::Value| cp.call(A, "test", action, &params).unwrap().0;
    call("RotateIssuerKey", json!({}));
    call("CreateUser", json!({"UserName": "alice"}));
    let key = call("CreateAccessKey", json!({"UserName": "alice"}));
    let alice = (
        key["AccessKey"]["AccessKeyId"].as_str().unwrap().to_owned(),
        key["AccessKey"]["SecretAccessKey"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    let trust = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{A}:user/alice")},
        "Action": "sts:AssumeRole"
    }]})
    .to_string();
    let mut arns = Vec::new();
    for (path, name) in [("/team-a/", "app"), ("/team-b/", "x")] {
        let role = call(
            "CreateRole",
            json!({"RoleName": name, "Path": path, "AssumeRolePolicyDocument": trust}),
        );
        arns.push(role["Role"]["Arn"].as_str().unwrap().to_owned());
    }
    let (team_a_role, team_b_role) = (arns[0].clone(), arns[1].clone());
    assert!(team_b_role.ends_with(":role/team-b/x"), "{team_b_role}");

    let client = |cert: &std::path::PathBuf, key: &std::path::PathBuf| ClientTlsFiles {
        ca: ca_path.clone(),
        server_name: None,
        identity: Some((cert.clone(), key.clone())),
    };
    let scoped = sidecar(addr, &pki.dir.join("team-a"), &[A], client(&a_cert, &a_key));
    let other = sidecar(addr, &pki.dir.join("ops"), &[A], client(&b_cert, &b_key));
    for (name, handle) in [("team-a", &scoped), ("ops", &other)] {
        eventually(&format!("the {name} sidecar's issuing certificate"), || {
            handle.is_ready() && handle.store.issuing().get(A).is_some()
        })
        .await;
    }
    let certificate = scoped.store.issuing().get(A).unwrap();
    assert_eq!(certificate.claims().sidecar, "team-a.iamlet.test");
    assert_eq!(
        certificate.claims().scope.role_paths,
        vec!["/team-a/".to_owned()]
    );
    // Neither sidecar holds the issuer's private key: only the control plane can certify.
    for handle in [&scoped, &other] {
        assert!(!handle.store.load(A).unwrap().issuer_keys().can_sign());
    }

    let sts = SecurityTokenService::new(Arc::clone(&scoped.api));
    // Out of scope: refused with AWS's AccessDenied, counted, and in the decision log.
    let refused = sts.assume_role(&assume(&alice, &team_b_role)).unwrap_err();
    assert_eq!(refused.code().as_str(), "AccessDenied", "{refused}");
    assert!(
        refused.to_string().contains("issuing certificate"),
        "{refused}"
    );
    assert_eq!(scoped.store.issuing().out_of_scope_refusals(), 1);

    // In scope: minted by the scoped sidecar, verified by the other one.
    let issued = sts.assume_role(&assume(&alice, &team_a_role)).unwrap();
    assert!(issued.session_token.starts_with("iamlet2.111122223333."));
    assert!(issued.session_token.len() <= iamlet::jose::session::MAX_TOKEN_LEN);
    let elsewhere = SecurityTokenService::new(Arc::clone(&other.api));
    let identity = elsewhere
        .get_caller_identity(&GetCallerIdentityInput {
            caller: Some(CallerId::Keys {
                access_key_id: issued.access_key_id.clone(),
                secret: issued.secret_access_key.clone(),
                session_token: Some(issued.session_token.clone()),
            }),
            request_id: None,
        })
        .unwrap();
    assert!(
        identity.arn.ends_with(":assumed-role/app/scoped"),
        "{}",
        identity.arn
    );
    // A wrong secret with the genuine token is refused there too.
    let wrong = elsewhere.get_caller_identity(&GetCallerIdentityInput {
        caller: Some(CallerId::Keys {
            access_key_id: issued.access_key_id.clone(),
            secret: "x".repeat(40),
            session_token: Some(issued.session_token),
        }),
        request_id: None,
    });
    assert!(wrong.is_err());
    // The unscoped sidecar may mint for team-b.
    let ops = SecurityTokenService::new(Arc::clone(&other.api));
    assert!(ops.assume_role(&assume(&alice, &team_b_role)).is_ok());
}
