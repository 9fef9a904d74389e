//! Container credentials, EKS Pod Identity style, in process: a sidecar's HTTP edge serving
//! `GET /v1/credentials` over a tenant with a pod identity association, and the sidecar's
//! Authorizer deciding with the credentials it hands out.

use std::collections::BTreeMap;
use std::sync::Arc;

use iamlet::authz::{Context, Outcome};
use iamlet::directory::{
    CreateOidcProviderInput, CreateRoleInput, IdGenerator, PodIdentityAssociationInput, Tenant,
};
use iamlet::jose::Es256Signer;
use iamlet::observe::Gauges;
use iamlet::policy::Timestamp;
use iamlet::sidecar::decision_log::DecisionLog;
use iamlet::sidecar::{
    Api, AuthorizeInput, Authorizer, CacheConfig, CallerId, ContainerCredentials,
    ContainerCredentialsConfig, DEFAULT_CONTAINER_CREDENTIALS_PATH,
};
use iamlet::snapshot::{AwsManagedCatalog, SnapshotStore, SnapshotVersion, TenantSnapshot};
use serde_json::{json, Value};

const ACCOUNT: &str = "111122223333";
const ISSUER: &str = "https://oidc.cluster.example.com/id/PROD";
const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#;
/// Reads the namespace's prefix only, by the session tag EKS adds.
const BY_NAMESPACE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::data/${aws:PrincipalTag/kubernetes-namespace}/*","Condition":{"StringEquals":{"aws:PrincipalTag/eks-cluster-name":"prod"}}}]}"#;

struct Node {
    addr: std::net::SocketAddr,
    api: Arc<Api>,
    endpoint: Arc<ContainerCredentials>,
    signer: Es256Signer,
}

struct NoGauges;

impl Gauges for NoGauges {
    fn render(&self, _out: &mut String) {}
}

async fn node() -> Node {
    let signer = Es256Signer::generate("cluster-key").unwrap();
    let mut t = Tenant::new(ACCOUNT, 0);
    let mut ids = IdGenerator::seeded(21);
    t.rotate_issuer_key(&mut ids, 0).unwrap();
    let provider = t
        .create_open_id_connect_provider(
            0,
            CreateOidcProviderInput {
                url: ISSUER.into(),
                client_ids: vec!["sts.amazonaws.com".into()],
                jwks: signer.jwks(),
                ..Default::default()
            },
        )
        .unwrap()
        .arn
        .clone();
    let role = t
        .create_role(
            &mut ids,
            0,
            CreateRoleInput {
                name: "reports".into(),
                assume_role_policy: TRUST.into(),
                ..Default::default()
            },
        )
        .unwrap()
        .arn
        .clone();
    t.put_role_policy("reports", "by-namespace", BY_NAMESPACE)
        .unwrap();
    t.create_pod_identity_association(
        &mut ids,
        0,
        PodIdentityAssociationInput {
            cluster_name: "prod".into(),
            oidc_provider_arn: provider,
            namespace: "web".into(),
            service_account: "reports".into(),
            role_arn: role,
            tags: BTreeMap::new(),
        },
    )
    .unwrap();
    let store = Arc::new(SnapshotStore::new());
    store
        .apply(
            TenantSnapshot::compile(
                Arc::new(t),
                SnapshotVersion::new(1, 1),
                &AwsManagedCatalog::compile(),
            )
            .unwrap(),
        )
        .unwrap();
    let api = Arc::new(Api::new(store, &CacheConfig::default(), DecisionLog::off()));
    let endpoint = Arc::new(ContainerCredentials::new(
        Arc::clone(&api),
        ContainerCredentialsConfig::default(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(iamlet::http::serve(
        iamlet::http::credentials_routes(Arc::clone(&endpoint), DEFAULT_CONTAINER_CREDENTIALS_PATH),
        listener,
        None,
        std::future::pending(),
    ));
    Node {
        addr,
        api,
        endpoint,
        signer,
    }
}

impl Node {
    fn token(&self, pod_uid: &str, extra: &Value) -> String {
        let now = Timestamp::now().epoch_seconds();
        let mut claims = json!({
            "iss": ISSUER,
            "aud": ["pods.eks.amazonaws.com"],
            "sub": "system:serviceaccount:web:reports",
            "iat": now - 5,
            "nbf": now - 5,
            "exp": now + 3600,
            "kubernetes.io": {
                "namespace": "web",
                "serviceaccount": {"name": "reports", "uid": "sa-uid"},
                "pod": {"name": "reports-0", "uid": pod_uid},
            },
        });
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        self.signer.sign(&claims).unwrap()
    }

    /// `GET /v1/credentials` with `authorization`: the status and the JSON body.
    async fn get(&self, authorization: Option<&str>) -> (u16, Value) {
        let addr = self.addr;
        let header = authorization
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(crate::support::HANG))
                .unwrap();
            stream
                .write_all(
                    format!(
                        "GET {DEFAULT_CONTAINER_CREDENTIALS_PATH} HTTP/1.1\r\nHost: x\r\n{header}Connection: close\r\n\r\n"
                    )
                    .as_bytes(),
                )
                .unwrap();
            let mut text = String::new();
            stream.read_to_string(&mut text).unwrap();
            let status: u16 = text[9..12].parse().unwrap();
            let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
            (status, serde_json::from_str(body).unwrap())
        })
        .await
        .unwrap()
    }

    fn decide(&self, creds: &Value, resource: &str) -> Outcome {
        let caller = CallerId::Keys {
            access_key_id: creds["AccessKeyId"].as_str().unwrap().into(),
            secret: creds["SecretAccessKey"].as_str().unwrap().into(),
            session_token: Some(creds["Token"].as_str().unwrap().into()),
        };
        Authorizer::new(Arc::clone(&self.api))
            .authorize(&AuthorizeInput {
                caller,
                action: "s3:GetObject".into(),
                resource: resource.into(),
                context: Context::new(),
                resource_tenant: None,
                resource_policy: None,
                explain: false,
                min_version: None,
                request_id: None,
            })
            .unwrap()
            .outcome
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pods_token_gets_credentials_the_authorizer_accepts_with_the_tags() {
    let n = node().await;
    let (status, creds) = n.get(Some(&n.token("pod-1", &json!({})))).await;
    assert_eq!(status, 200, "{creds}");
    let fields: Vec<&str> = creds
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        [
            "AccessKeyId",
            "SecretAccessKey",
            "Token",
            "AccountId",
            "Expiration"
        ]
    );
    assert!(creds["AccessKeyId"].as_str().unwrap().starts_with("ASIA"));
    assert_eq!(creds["AccountId"], ACCOUNT);
    let expiration = creds["Expiration"].as_str().unwrap();
    assert!(
        expiration.len() == 20 && expiration.ends_with('Z'),
        "RFC 3339 in whole seconds: {expiration}"
    );
    // The role's policy by the session tags: its own namespace, in cluster prod.
    assert_eq!(
        n.decide(&creds, "arn:aws:s3:::data/web/report.csv"),
        Outcome::Allow
    );
    assert_ne!(
        n.decide(&creds, "arn:aws:s3:::data/jobs/report.csv"),
        Outcome::Allow
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_get_the_documented_error_and_never_credentials() {
    let n = node().await;
    let now = Timestamp::now().epoch_seconds();
    let genuine = n.token("pod-1", &json!({}));
    let unsigned = {
        let mut parts: Vec<&str> = genuine.split('.').collect();
        parts[2] = "";
        parts.join(".")
    };
    let forged = Es256Signer::generate("cluster-key")
        .unwrap()
        .sign(&json!({"iss": ISSUER, "aud": "pods.eks.amazonaws.com", "sub": "system:serviceaccount:web:reports", "exp": now + 60}))
        .unwrap();
    let cases: Vec<(&str, Option<String>, u16, &str)> = vec![
        ("missing", None, 400, "InvalidParameterException"),
        (
            "empty",
            Some(String::new()),
            400,
            "InvalidParameterException",
        ),
        (
            "garbage",
            Some("not.a.jwt".into()),
            401,
            "InvalidTokenException",
        ),
        (
            "expired",
            Some(n.token(
                "pod-1",
                &json!({"exp": now - 600, "iat": now - 4000, "nbf": now - 4000}),
            )),
            401,
            "ExpiredTokenException",
        ),
        (
            "wrong audience",
            Some(n.token("pod-1", &json!({"aud": "sts.amazonaws.com"}))),
            403,
            "AccessDeniedException",
        ),
        ("unsigned", Some(unsigned), 401, "InvalidTokenException"),
        ("forged", Some(forged), 401, "InvalidTokenException"),
        (
            "unassociated",
            Some(n.token(
                "pod-1",
                &json!({"sub": "system:serviceaccount:web:other",
                        "kubernetes.io": {"namespace": "web", "serviceaccount": {"name": "other"},
                                          "pod": {"name": "other-0", "uid": "u"}}}),
            )),
            404,
            "ResourceNotFoundException",
        ),
    ];
    for (what, token, status, code) in &cases {
        let (got, body) = n.get(token.as_deref()).await;
        assert_eq!(
            (got, body["code"].as_str()),
            (*status, Some(*code)),
            "{what}: {body}"
        );
        assert!(body.get("AccessKeyId").is_none(), "{what}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}"
        );
    }
    assert_eq!(n.endpoint.stats().assumptions, 0);
    // Every refusal is counted.
    let metrics = n.api.metrics().render(&NoGauges);
    let line = format!(
        "iamlet_request_duration_seconds_count{{method=\"ContainerCredentials\",result=\"error\"}} {}",
        cases.len()
    );
    assert!(metrics.contains(&line), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_one_assumption_and_then_hit_the_cache() {
    let n = Arc::new(node().await);
    let token = Arc::new(n.token("pod-7", &json!({})));
    let requests: Vec<_> = (0..16)
        .map(|_| {
            let (n, token) = (Arc::clone(&n), Arc::clone(&token));
            tokio::spawn(async move { n.get(Some(&token)).await })
        })
        .collect();
    let mut keys = Vec::new();
    for r in requests {
        let (status, body) = r.await.unwrap();
        assert_eq!(status, 200, "{body}");
        keys.push(body["AccessKeyId"].as_str().unwrap().to_owned());
    }
    assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
    let stats = n.endpoint.stats();
    assert_eq!(stats.assumptions, 1, "{stats:?}");
    assert_eq!(stats.hits + stats.misses, 16);
    // A later request is a hit; another pod gets its own session.
    let (_, again) = n.get(Some(&token)).await;
    assert_eq!(again["AccessKeyId"], keys[0].as_str());
    assert_eq!(n.endpoint.stats().hits, stats.hits + 1);
    let (_, other) = n.get(Some(&n.token("pod-8", &json!({})))).await;
    assert_ne!(other["AccessKeyId"], keys[0].as_str());
    assert_eq!(n.endpoint.stats().assumptions, 2);
}
