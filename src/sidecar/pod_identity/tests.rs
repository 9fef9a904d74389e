//! The container-credentials domain: verification, association lookup, the caches.

use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::directory::{
    CreateOidcProviderInput, CreateRoleInput, PodIdentityAssociationInput, Tenant,
};
use crate::jose::Es256Signer;
use crate::sidecar::decision_log::DecisionLog;
use crate::sidecar::CacheConfig;
use crate::snapshot::{AwsManagedCatalog, SnapshotStore};

const ISSUER: &str = "https://oidc.example.com/id/CLUSTER";
const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#;

fn tenant(account: &str, signer: &Es256Signer, service_accounts: &[&str]) -> Tenant {
    let mut t = Tenant::new(account, 0);
    let mut ids = IdGenerator::seeded(5);
    t.rotate_issuer_key(&mut ids, 0).unwrap();
    let provider = t
        .create_open_id_connect_provider(
            0,
            CreateOidcProviderInput {
                url: ISSUER.into(),
                jwks: signer.jwks(),
                ..Default::default()
            },
        )
        .unwrap()
        .arn
        .clone();
    for sa in service_accounts {
        let role = t
            .create_role(
                &mut ids,
                0,
                CreateRoleInput {
                    name: (*sa).into(),
                    assume_role_policy: TRUST.into(),
                    ..Default::default()
                },
            )
            .unwrap()
            .arn
            .clone();
        t.create_pod_identity_association(
            &mut ids,
            0,
            PodIdentityAssociationInput {
                cluster_name: "prod".into(),
                oidc_provider_arn: provider.clone(),
                namespace: "web".into(),
                service_account: (*sa).into(),
                role_arn: role,
                tags: BTreeMap::new(),
            },
        )
        .unwrap();
    }
    t
}

fn endpoint(tenants: Vec<Tenant>) -> (Arc<SnapshotStore>, ContainerCredentials) {
    let store = Arc::new(SnapshotStore::new());
    let catalog = AwsManagedCatalog::compile();
    for t in tenants {
        store
            .apply(
                TenantSnapshot::compile(Arc::new(t), SnapshotVersion::new(1, 1), &catalog).unwrap(),
            )
            .unwrap();
    }
    let api = Arc::new(Api::new(
        Arc::clone(&store),
        &CacheConfig::default(),
        DecisionLog::off(),
    ));
    let endpoint = ContainerCredentials::new(api, ContainerCredentialsConfig::default());
    (store, endpoint)
}

#[expect(clippy::needless_pass_by_value, reason = "callers pass json! literals")]
fn token(signer: &Es256Signer, sa: &str, pod_uid: &str, extra: serde_json::Value) -> String {
    let now = Timestamp::now().epoch_seconds();
    let mut claims = json!({
        "iss": ISSUER,
        "aud": ["pods.eks.amazonaws.com"],
        "sub": format!("system:serviceaccount:web:{sa}"),
        "iat": now - 5,
        "exp": now + 3600,
        "kubernetes.io": {
            "namespace": "web",
            "serviceaccount": {"name": sa, "uid": "sa-1"},
            "pod": {"name": format!("pod-{pod_uid}"), "uid": pod_uid},
        },
    });
    if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    signer.sign(&claims).unwrap()
}

#[test]
fn a_pod_gets_its_roles_credentials_once_then_from_the_cache() {
    let signer = Es256Signer::generate("k").unwrap();
    let (_, endpoint) = endpoint(vec![tenant("111122223333", &signer, &["app"])]);
    let t = token(&signer, "app", "uid-1", json!({}));
    assert!(endpoint.cached(Some(&t)).is_none(), "nothing cached yet");
    let first = endpoint.credentials(Some(&t)).unwrap();
    assert!(first.access_key_id.starts_with("ASIA"));
    assert_eq!(first.account_id, "111122223333");
    assert_eq!(
        first.arn,
        "arn:aws:sts::111122223333:assumed-role/app/eks-prod-pod-uid-1-uid-1"
    );
    let second = endpoint.credentials(Some(&format!("Bearer {t}"))).unwrap();
    assert_eq!(first, second);
    assert_eq!(
        endpoint.stats(),
        ContainerCredentialsStats {
            assumptions: 1,
            hits: 1,
            misses: 1,
            verifications: 1,
        }
    );
    // The non-blocking path answers the same hit.
    assert_eq!(endpoint.cached(Some(&t)).unwrap(), first);
    assert_eq!(endpoint.stats().hits, 2);
    assert!(endpoint.cached(None).is_none());
    // Another pod of the same service account has its own session.
    let other = endpoint
        .credentials(Some(&token(&signer, "app", "uid-2", json!({}))))
        .unwrap();
    assert_ne!(other.access_key_id, first.access_key_id);
    assert_eq!(endpoint.stats().assumptions, 2);
}

#[test]
fn refusals_carry_the_agents_status() {
    let signer = Es256Signer::generate("k").unwrap();
    let (_, endpoint) = endpoint(vec![tenant("111122223333", &signer, &["app"])]);
    let now = Timestamp::now().epoch_seconds();
    let status = |auth: Option<&str>| endpoint.credentials(auth).unwrap_err().status();
    assert_eq!(status(None), 400);
    assert_eq!(status(Some("  ")), 400);
    assert_eq!(status(Some("garbage")), 401);
    assert_eq!(status(Some(&"x".repeat(MAX_TOKEN_CHARS + 1))), 401);
    let expired = token(
        &signer,
        "app",
        "u",
        json!({"exp": now - 600, "iat": now - 4000}),
    );
    assert_eq!(status(Some(&expired)), 401);
    let wrong_audience = token(&signer, "app", "u", json!({"aud": "sts.amazonaws.com"}));
    assert_eq!(status(Some(&wrong_audience)), 403);
    let stranger = Es256Signer::generate("k").unwrap();
    assert_eq!(status(Some(&token(&stranger, "app", "u", json!({})))), 401);
    let unknown_issuer = token(
        &signer,
        "app",
        "u",
        json!({"iss": "https://elsewhere.example.com"}),
    );
    assert_eq!(status(Some(&unknown_issuer)), 401);
    let unassociated = token(&signer, "nobody", "u", json!({}));
    let e = endpoint.credentials(Some(&unassociated)).unwrap_err();
    assert_eq!((e.status(), e.code()), (404, "ResourceNotFoundException"));
    assert_eq!(endpoint.stats().assumptions, 0);
}

#[test]
fn a_pod_associated_in_two_tenants_is_refused() {
    let signer = Es256Signer::generate("k").unwrap();
    let (_, endpoint) = endpoint(vec![
        tenant("111122223333", &signer, &["app"]),
        tenant("444455556666", &signer, &["app"]),
    ]);
    let e = endpoint
        .credentials(Some(&token(&signer, "app", "u", json!({}))))
        .unwrap_err();
    assert_eq!(e.status(), 403);
    assert_eq!(endpoint.stats().assumptions, 0);
}

#[test]
fn a_new_snapshot_verifies_the_token_again() {
    let signer = Es256Signer::generate("k").unwrap();
    let (store, endpoint) = endpoint(vec![tenant("111122223333", &signer, &["app"])]);
    let t = token(&signer, "app", "u", json!({}));
    endpoint.credentials(Some(&t)).unwrap();
    // The association is deleted: the next snapshot has none, and the token no longer gets
    // credentials even though they are cached.
    let mut changed = tenant("111122223333", &signer, &["app"]);
    changed.pod_identity_associations.clear();
    store
        .apply(
            TenantSnapshot::compile(
                Arc::new(changed),
                SnapshotVersion::new(1, 2),
                &AwsManagedCatalog::compile(),
            )
            .unwrap(),
        )
        .unwrap();
    assert!(
        endpoint.cached(Some(&t)).is_none(),
        "a new snapshot is no hit"
    );
    assert_eq!(endpoint.credentials(Some(&t)).unwrap_err().status(), 404);
    assert_eq!(endpoint.stats().verifications, 2);
}

#[test]
fn concurrent_identical_requests_share_one_assumption() {
    let signer = Es256Signer::generate("k").unwrap();
    let (_, endpoint) = endpoint(vec![tenant("111122223333", &signer, &["app"])]);
    let endpoint = Arc::new(endpoint);
    let t = Arc::new(token(&signer, "app", "u", json!({})));
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (endpoint, t, barrier) =
                (Arc::clone(&endpoint), Arc::clone(&t), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                endpoint
                    .credentials(Some(&t))
                    .unwrap()
                    .access_key_id
                    .clone()
            })
        })
        .collect();
    let keys: Vec<String> = threads.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(keys.iter().all(|k| *k == keys[0]));
    assert_eq!(endpoint.stats().assumptions, 1);
}

#[test]
fn refresh_comes_before_expiry_with_jitter() {
    let mut ids = IdGenerator::seeded(1);
    let max = Duration::from_secs(60);
    let draws: Vec<Duration> = (0..50).map(|_| jitter(&mut ids, max)).collect();
    assert!(draws.iter().all(|d| *d < max));
    assert!(draws.iter().any(|d| *d != draws[0]), "jitter varies");
    assert_eq!(jitter(&mut ids, Duration::ZERO), Duration::ZERO);
}

#[test]
fn credentials_never_print_their_secrets() {
    let c = PodCredentials {
        access_key_id: "ASIAEXAMPLE".into(),
        secret_access_key: "CANARY-SECRET".into(),
        token: "CANARY-TOKEN".into(),
        account_id: "111122223333".into(),
        expiration: Timestamp::from_epoch_seconds(0),
        arn: "arn".into(),
    };
    let printed = format!("{c:?}");
    assert!(!printed.contains("CANARY"), "{printed}");
}
