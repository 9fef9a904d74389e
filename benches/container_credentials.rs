//! Container credentials (EKS Pod Identity style): a cache hit in process (the domain call) and
//! over HTTP on loopback (`GET /v1/credentials` on a keep-alive connection).
//!
//! Run with `cargo bench --bench container_credentials`; results are in `benches/README.md`.
//! Each case asserts its outcome before it is timed: the hit answers the credentials the first
//! request got, without another assumption.

#![expect(
    clippy::expect_used,
    reason = "a benchmark whose fixtures do not load, or whose case does not give the outcome \
              it names, has nothing to measure"
)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use iamlet::directory::{
    CreateOidcProviderInput, CreateRoleInput, IdGenerator, PodIdentityAssociationInput, Tenant,
};
use iamlet::jose::Es256Signer;
use iamlet::policy::Timestamp;
use iamlet::sidecar::decision_log::DecisionLog;
use iamlet::sidecar::{
    Api, CacheConfig, ContainerCredentials, ContainerCredentialsConfig,
    DEFAULT_CONTAINER_CREDENTIALS_PATH,
};
use iamlet::snapshot::{AwsManagedCatalog, SnapshotStore, SnapshotVersion, TenantSnapshot};

const ISSUER: &str = "https://oidc.bench.example.com/id/C";
const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#;

/// An endpoint over one tenant with one association, and a pod's token for it.
fn fixture() -> (Arc<ContainerCredentials>, String) {
    let signer = Es256Signer::generate("k").expect("signer");
    let mut t = Tenant::new("111122223333", 0);
    let mut ids = IdGenerator::seeded(1);
    t.rotate_issuer_key(&mut ids, 0).expect("issuer key");
    let provider = t
        .create_open_id_connect_provider(
            0,
            CreateOidcProviderInput {
                url: ISSUER.into(),
                jwks: signer.jwks(),
                ..Default::default()
            },
        )
        .expect("provider")
        .arn
        .clone();
    let role = t
        .create_role(
            &mut ids,
            0,
            CreateRoleInput {
                name: "app".into(),
                assume_role_policy: TRUST.into(),
                ..Default::default()
            },
        )
        .expect("role")
        .arn
        .clone();
    t.create_pod_identity_association(
        &mut ids,
        0,
        PodIdentityAssociationInput {
            cluster_name: "bench".into(),
            oidc_provider_arn: provider,
            namespace: "web".into(),
            service_account: "app".into(),
            role_arn: role,
            tags: BTreeMap::new(),
        },
    )
    .expect("association");
    let store = Arc::new(SnapshotStore::new());
    store
        .apply(
            TenantSnapshot::compile(
                Arc::new(t),
                SnapshotVersion::new(1, 1),
                &AwsManagedCatalog::compile(),
            )
            .expect("compile"),
        )
        .expect("publish");
    let api = Arc::new(Api::new(store, &CacheConfig::default(), DecisionLog::off()));
    let endpoint = Arc::new(ContainerCredentials::new(
        api,
        ContainerCredentialsConfig::default(),
    ));
    let now = Timestamp::now().epoch_seconds();
    let token = signer
        .sign(&serde_json::json!({
            "iss": ISSUER, "aud": "pods.eks.amazonaws.com",
            "sub": "system:serviceaccount:web:app", "iat": now, "exp": now + 3600,
            "kubernetes.io": {"namespace": "web", "serviceaccount": {"name": "app"},
                              "pod": {"name": "app-0", "uid": "5e0f6c1e-2b1a-4d3c-9e8f-7a6b5c4d3e2f"}},
        }))
        .expect("token");
    (endpoint, token)
}

/// One request on a keep-alive connection: the status line's code and the body.
fn get(stream: &mut BufReader<TcpStream>, token: &str) -> (u16, String) {
    write!(
        stream.get_mut(),
        "GET {DEFAULT_CONTAINER_CREDENTIALS_PATH} HTTP/1.1\r\nHost: bench\r\nAuthorization: {token}\r\n\r\n"
    )
    .expect("write");
    let mut line = String::new();
    stream.read_line(&mut line).expect("status line");
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let mut length = 0;
    loop {
        line.clear();
        stream.read_line(&mut line).expect("header");
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().expect("length");
            }
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).expect("body");
    (status, String::from_utf8(body).expect("utf-8"))
}

fn container_credentials(c: &mut Criterion) {
    let (endpoint, token) = fixture();
    let first = endpoint.credentials(Some(&token)).expect("credentials");
    let hit = endpoint.credentials(Some(&token)).expect("hit");
    assert_eq!(hit.access_key_id, first.access_key_id);
    assert_eq!(endpoint.stats().assumptions, 1, "the second call is a hit");
    c.bench_function("container_credentials/hit_in_process", |b| {
        b.iter(|| black_box(endpoint.credentials(black_box(Some(&token)))))
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    runtime.spawn(iamlet::http::serve(
        iamlet::http::credentials_routes(Arc::clone(&endpoint), DEFAULT_CONTAINER_CREDENTIALS_PATH),
        listener,
        None,
        std::future::pending(),
    ));
    let mut stream = BufReader::new(TcpStream::connect(addr).expect("connect"));
    stream.get_ref().set_nodelay(true).expect("nodelay");
    let (status, body) = get(&mut stream, &token);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&first.access_key_id), "{body}");
    assert_eq!(endpoint.stats().assumptions, 1, "over HTTP too, a hit");
    c.bench_function("container_credentials/hit_over_http", |b| {
        b.iter(|| black_box(get(&mut stream, &token)))
    });
    assert_eq!(endpoint.stats().assumptions, 1);
}

criterion_group!(benches, container_credentials);
criterion_main!(benches);
