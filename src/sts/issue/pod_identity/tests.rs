//! Pod tokens and role sessions for EKS Pod Identity's service principal.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::authz::{evaluate, Outcome, PolicySet, Request};
use crate::directory::{
    CreateOidcProviderInput, CreateRoleInput, IdGenerator, PodIdentityAssociationInput, Tenant,
};
use crate::jose::Es256Signer;
use crate::policy::CompiledPolicy;
use crate::snapshot::{AwsManagedLookup, SnapshotVersion};
use crate::sts::{authenticate, fill_session_context, MfaReplayGuard, Presented};

const A: &str = "111122223333";
const T0: i64 = 1_735_689_600;
const ISSUER: &str = "https://oidc.eks.us-east-1.amazonaws.com/id/CLUSTER";
const PROVIDER: &str =
    "arn:aws:iam::111122223333:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/CLUSTER";
const AUDIENCE: &str = "pods.eks.amazonaws.com";
const POD_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#;
const NO_TAG_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const OTHER_SERVICE_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#;
const NAMESPACE_ONLY_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"],"Condition":{"StringEquals":{"aws:RequestTag/kubernetes-namespace":"prod"}}}]}"#;
const BY_NAMESPACE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::data/${aws:PrincipalTag/kubernetes-namespace}/*"}]}"#;

struct NoAwsManaged;

impl AwsManagedLookup for NoAwsManaged {
    fn compiled(&self, _arn: &str) -> Option<Arc<CompiledPolicy>> {
        None
    }
}

struct NoMfa;

impl MfaReplayGuard for NoMfa {
    fn accept(&self, _tenant: &str, _serial: &str, _step: u64) -> bool {
        false
    }
}

struct World {
    snapshot: TenantSnapshot,
    signer: Es256Signer,
}

fn world() -> World {
    let signer = Es256Signer::generate("k1").unwrap();
    let mut t = Tenant::new(A, 0);
    let mut ids = IdGenerator::seeded(3);
    t.rotate_issuer_key(&mut ids, 0).unwrap();
    t.create_open_id_connect_provider(
        0,
        CreateOidcProviderInput {
            url: ISSUER.into(),
            client_ids: vec!["sts.amazonaws.com".into()],
            jwks: signer.jwks(),
            ..Default::default()
        },
    )
    .unwrap();
    for (name, trust) in [
        ("app", POD_TRUST),
        ("no-tags", NO_TAG_TRUST),
        ("ec2", OTHER_SERVICE_TRUST),
        ("prod-only", NAMESPACE_ONLY_TRUST),
    ] {
        t.create_role(
            &mut ids,
            0,
            CreateRoleInput {
                name: name.into(),
                assume_role_policy: trust.into(),
                ..Default::default()
            },
        )
        .unwrap();
        t.put_role_policy(name, "data", BY_NAMESPACE).unwrap();
        t.create_pod_identity_association(
            &mut ids,
            0,
            PodIdentityAssociationInput {
                cluster_name: "prod".into(),
                oidc_provider_arn: PROVIDER.into(),
                namespace: "web".into(),
                service_account: name.into(),
                role_arn: format!("arn:aws:iam::{A}:role/{name}"),
                tags: BTreeMap::new(),
            },
        )
        .unwrap();
    }
    let snapshot =
        TenantSnapshot::compile(Arc::new(t), SnapshotVersion::new(1, 1), &NoAwsManaged).unwrap();
    World { snapshot, signer }
}

#[expect(clippy::needless_pass_by_value, reason = "callers pass json! literals")]
fn pod_token(signer: &Es256Signer, sa: &str, extra: serde_json::Value) -> String {
    let mut claims = json!({
        "iss": ISSUER,
        "aud": [AUDIENCE],
        "sub": format!("system:serviceaccount:web:{sa}"),
        "iat": T0 - 10,
        "nbf": T0 - 10,
        "exp": T0 + 3600,
        "kubernetes.io": {
            "namespace": "web",
            "serviceaccount": {"name": sa, "uid": "sa-uid-1"},
            "pod": {"name": "api-7d4b9c-x2x9q", "uid": "0f7c3a52-1b7e-4a57-9b0d-2a6f3c1e9d11"},
        },
    });
    if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    signer.sign(&claims).unwrap()
}

fn verify(w: &World, token: &str) -> Result<PodToken, PodTokenError> {
    let provider = w.snapshot.oidc_provider(ISSUER).unwrap();
    verify_pod_token(
        token,
        &provider.jwks,
        ISSUER,
        AUDIENCE,
        Timestamp::from_epoch_seconds(T0),
    )
}

fn assume(w: &World, sa: &str) -> Result<Issued, StsError> {
    let pod = verify(w, &pod_token(&w.signer, sa, json!({}))).unwrap();
    let association = w.snapshot.pod_identity(ISSUER, "web", sa).unwrap();
    let mut ids = IdGenerator::seeded(11);
    let mut env = IssueEnv {
        now: Timestamp::from_epoch_seconds(T0),
        ids: &mut ids,
        mfa: &NoMfa,
        latest_expiry: None,
        issuing: crate::sts::Issuing::IssuerKey,
    };
    assume_role_for_service(
        &w.snapshot,
        &ServiceRoleParams {
            service: "pods.eks.amazonaws.com",
            association,
            pod: &pod,
        },
        &mut env,
    )
}

#[test]
fn a_pod_token_names_its_pod() {
    let w = world();
    let pod = verify(&w, &pod_token(&w.signer, "app", json!({}))).unwrap();
    assert_eq!(pod.namespace, "web");
    assert_eq!(pod.service_account, "app");
    assert_eq!(pod.pod_name, "api-7d4b9c-x2x9q");
    assert_eq!(pod.pod_uid, "0f7c3a52-1b7e-4a57-9b0d-2a6f3c1e9d11");
    assert_eq!(pod.expires_at, Timestamp::from_epoch_seconds(T0 + 3600));
}

#[test]
fn pod_tokens_that_do_not_verify_are_refused() {
    let w = world();
    let expired = pod_token(&w.signer, "app", json!({"exp": T0 - 120}));
    assert!(matches!(
        verify(&w, &expired),
        Err(PodTokenError::Expired(_))
    ));
    let irsa = pod_token(&w.signer, "app", json!({"aud": "sts.amazonaws.com"}));
    assert_eq!(
        verify(&w, &irsa),
        Err(PodTokenError::WrongAudience(AUDIENCE.into()))
    );
    let impostor = Es256Signer::generate("k1").unwrap();
    let forged = pod_token(&impostor, "app", json!({}));
    assert!(matches!(
        verify(&w, &forged),
        Err(PodTokenError::Invalid(_))
    ));
    let unsigned = {
        let genuine = pod_token(&w.signer, "app", json!({}));
        let mut parts: Vec<&str> = genuine.split('.').collect();
        parts[2] = "";
        parts.join(".")
    };
    assert!(matches!(
        verify(&w, &unsigned),
        Err(PodTokenError::Invalid(_))
    ));
    let no_pod = pod_token(
        &w.signer,
        "app",
        json!({"kubernetes.io": {"namespace": "web", "serviceaccount": {"name": "app"}}}),
    );
    assert!(matches!(
        verify(&w, &no_pod),
        Err(PodTokenError::Invalid(_))
    ));
    let other_subject = pod_token(
        &w.signer,
        "app",
        json!({"sub": "system:serviceaccount:kube-system:app"}),
    );
    assert!(matches!(
        verify(&w, &other_subject),
        Err(PodTokenError::Invalid(_))
    ));
    assert!(matches!(
        verify(&w, "not-a-token"),
        Err(PodTokenError::Invalid(_))
    ));
}

#[test]
fn the_service_assumes_the_role_with_the_six_tags() {
    let w = world();
    let issued = assume(&w, "app").unwrap();
    let name = "eks-prod-api-7d4b9c-x2x9q-0f7c3a52-1b7e-4a57-9b0d-2a6f3c1e9d11";
    assert_eq!(
        issued.arn,
        format!("arn:aws:sts::{A}:assumed-role/app/{name}")
    );
    assert_eq!(
        issued.expiration,
        Timestamp::from_epoch_seconds(T0 + 3600),
        "capped by the role's maximum session duration"
    );
    let caller = authenticate(
        &w.snapshot,
        &Presented::Keys {
            access_key_id: &issued.access_key_id,
            secret: &issued.secret_access_key,
            session_token: Some(&issued.session_token),
        },
        Timestamp::from_epoch_seconds(T0 + 1),
    )
    .unwrap();
    let session = caller.session.as_deref().unwrap();
    let tags: Vec<(&str, &str)> = session
        .claims
        .tags
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        tags,
        [
            (
                "eks-cluster-arn",
                "arn:aws:eks:us-east-1:111122223333:cluster/prod"
            ),
            ("eks-cluster-name", "prod"),
            ("kubernetes-namespace", "web"),
            ("kubernetes-service-account", "app"),
            ("kubernetes-pod-name", "api-7d4b9c-x2x9q"),
            ("kubernetes-pod-uid", "0f7c3a52-1b7e-4a57-9b0d-2a6f3c1e9d11"),
        ]
    );
    // The tags are principal tags: the role's policy grants the pod's namespace only.
    let resolved = w.snapshot.resolve(&caller.principal).unwrap();
    let decide = |resource: &str| {
        let mut ctx = Context::new();
        resolved.fill_context(&caller.principal, &mut ctx);
        fill_session_context(
            caller.session.as_deref(),
            Timestamp::from_epoch_seconds(T0 + 1),
            &mut ctx,
        );
        let request = Request::try_new(caller.principal.clone(), "s3:GetObject", resource)
            .unwrap()
            .with_context(ctx);
        let policies: PolicySet<'_> = resolved.policy_set(None, &caller.session_policies);
        evaluate(&policies, &request).outcome
    };
    assert_eq!(decide("arn:aws:s3:::data/web/x"), Outcome::Allow);
    assert_ne!(decide("arn:aws:s3:::data/jobs/x"), Outcome::Allow);
}

#[test]
fn the_trust_policy_must_allow_the_service_both_actions() {
    let w = world();
    for (sa, action) in [("no-tags", "sts:TagSession"), ("ec2", "sts:AssumeRole")] {
        let e = assume(&w, sa).unwrap_err();
        assert_eq!(
            e,
            StsError::AccessDenied(format!(
                "User: pods.eks.amazonaws.com is not authorized to perform: {action} on resource: arn:aws:iam::{A}:role/{sa}"
            ))
        );
    }
    // The tags are request tags to the trust policy: it allows namespace prod only.
    let e = assume(&w, "prod-only").unwrap_err();
    assert_eq!(e.code(), "AccessDenied");
}

#[test]
fn session_names_fit_and_keep_the_uid() {
    let uid = "0f7c3a52-1b7e-4a57-9b0d-2a6f3c1e9d11";
    let long = pod_session_name(&"c".repeat(100), &"p".repeat(200), uid);
    assert_eq!(long.len(), 64);
    assert!(long.starts_with("eks-ccc"));
    assert!(long.ends_with(&format!("-{uid}")));
    assert_eq!(pod_session_name("prod", "api", "u1"), "eks-prod-api-u1");
    assert_eq!(
        pod_session_name("prod", "a/b c", "u:1"),
        "eks-prod-a-b-c-u-1"
    );
}
