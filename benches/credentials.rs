//! Credential and sidecar-path benchmarks: session tokens, SigV4, authentication, AssumeRole,
//! and `Authorize` through the sidecar's service (decision cache hit and miss), without gRPC;
//! and the worst-case request of issue 13, alone and beside an ordinary client over gRPC.
//!
//! Run with `cargo bench --bench credentials`; results and method are in `benches/README.md`.
//! The fixture is the demo tenant of `iamlet up` (`deploy/examples/demo-tenant.yaml`).

#![expect(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a benchmark whose fixtures do not load, or whose case does not give the outcome \
              it names, has nothing to measure"
)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use iamlet::directory::{IdGenerator, Tenant};
use iamlet::grpc::AuthorizerService;
use iamlet::jose::{IssuingCredential, IssuingCredentials, IssuingScope};
use iamlet::policy::Timestamp;
use iamlet::proto::v1 as pb;
use iamlet::sidecar::decision_log::{DecisionLog, DecisionLogConfig, LogSink};
use iamlet::sidecar::{Api, AuthorizeInput, Authorizer, CacheConfig, CallerId, Usage, UsageConfig};
use iamlet::snapshot::{for_sidecars, AwsManagedCatalog, TenantSnapshot};
use iamlet::sts::sigv4::{Signature, SignedRequest, SigningKey};
use iamlet::sts::{self, AssumeRoleParams, IssueEnv, MfaReplayGuard, Presented};

struct NoReplay;

impl MfaReplayGuard for NoReplay {
    fn accept(&self, _: &str, _: &str, _: u64) -> bool {
        true
    }
}

#[path = "support/demo.rs"]
mod support;

use support::{demo, Demo as Fixture, ACCOUNT};

fn fixture() -> Fixture {
    demo("credentials")
}

fn assume(f: &Fixture, now: Timestamp, issuing: sts::Issuing<'_>) -> sts::Issued {
    let caller = sts::authenticate(
        &f.snapshot,
        &Presented::Keys {
            access_key_id: &f.access_key_id,
            secret: &f.secret,
            session_token: None,
        },
        now,
    )
    .expect("alice authenticates");
    let tags = [iamlet::directory::Tag {
        key: "project".into(),
        value: "q4".into(),
    }];
    let params = AssumeRoleParams {
        role_arn: "arn:aws:iam::111122223333:role/reports-writer",
        role_session_name: "bench",
        tags: &tags,
        ..AssumeRoleParams::default()
    };
    let mut ids = IdGenerator::system();
    sts::assume_role(
        &caller,
        &f.snapshot,
        &f.snapshot,
        &params,
        &mut IssueEnv {
            now,
            ids: &mut ids,
            mfa: &NoReplay,
            latest_expiry: None,
            issuing,
        },
    )
    .expect("alice may assume reports-writer")
}

fn credentials(c: &mut Criterion) {
    let f = fixture();
    let now = Timestamp::now();
    let issued = assume(&f, now, sts::Issuing::IssuerKey);
    let ring = f.snapshot.issuer_keys();
    // A sidecar's way: a certified issuing key of its own (`iamlet2` tokens), as the control
    // plane's stream delivers it.
    let certified = IssuingCredentials::new();
    certified.insert(
        IssuingCredential::generate(
            ring,
            ACCOUNT,
            "bench-sidecar",
            IssuingScope::unscoped(),
            [7; 32],
            now.epoch_seconds(),
        )
        .expect("the demo tenant's issuer certifies a sidecar key"),
    );
    let by_sidecar = assume(&f, now, sts::Issuing::Certified(&certified));
    assert!(by_sidecar.session_token.starts_with("iamlet2."));
    assert!(
        ring.verify(ACCOUNT, &by_sidecar.session_token, now.epoch_seconds())
            .is_ok(),
        "assume_role_certified"
    );

    // Each case's outcome is checked before it is timed: an error path or a miss must never
    // be reported as the case it names (issue #13, item 12).
    let alice = "arn:aws:iam::111122223333:user/alice";
    let session = "arn:aws:sts::111122223333:assumed-role/reports-writer/bench";
    assert_eq!(issued.arn, session, "assume_role issues the session");
    let verified = ring.verify(ACCOUNT, &issued.session_token, now.epoch_seconds());
    assert!(verified.is_ok(), "session_token_verify: {verified:?}");
    let long_term = sts::authenticate(
        &f.snapshot,
        &Presented::Keys {
            access_key_id: &f.access_key_id,
            secret: &f.secret,
            session_token: None,
        },
        now,
    )
    .expect("authenticate_long_term_key succeeds");
    assert_eq!(long_term.principal.to_string(), alice);
    let by_session = sts::authenticate(
        &f.snapshot,
        &Presented::Keys {
            access_key_id: &issued.access_key_id,
            secret: &issued.secret_access_key,
            session_token: Some(&issued.session_token),
        },
        now,
    )
    .expect("authenticate_session_uncached succeeds");
    assert_eq!(by_session.principal.to_string(), session);
    assert!(by_session.session.is_some());

    let mut group = c.benchmark_group("credentials");
    group.bench_function("assume_role", |b| {
        b.iter(|| black_box(assume(&f, now, sts::Issuing::IssuerKey)))
    });
    group.bench_function("assume_role_certified", |b| {
        b.iter(|| black_box(assume(&f, now, sts::Issuing::Certified(&certified))))
    });
    group.bench_function("session_token_verify", |b| {
        b.iter(|| {
            black_box(ring.verify(
                ACCOUNT,
                black_box(&issued.session_token),
                now.epoch_seconds(),
            ))
        })
    });
    group.bench_function("authenticate_long_term_key", |b| {
        b.iter(|| {
            black_box(sts::authenticate(
                &f.snapshot,
                &Presented::Keys {
                    access_key_id: &f.access_key_id,
                    secret: black_box(&f.secret),
                    session_token: None,
                },
                now,
            ))
        })
    });
    group.bench_function("authenticate_session_uncached", |b| {
        b.iter(|| {
            black_box(sts::authenticate(
                &f.snapshot,
                &Presented::Keys {
                    access_key_id: &issued.access_key_id,
                    secret: &issued.secret_access_key,
                    session_token: Some(black_box(&issued.session_token)),
                },
                now,
            ))
        })
    });

    // A SigV4-signed POST, signed here with the verifier's own key derivation.
    let amz_date = {
        let t = now.to_string();
        let digits: String = t.chars().filter(char::is_ascii_digit).take(14).collect();
        format!("{}T{}Z", &digits[..8], &digits[8..14])
    };
    let date = &amz_date[..8];
    let headers_for = |signature: &str| {
        vec![
            ("host".to_owned(), "sidecar.local".to_owned()),
            ("x-amz-date".to_owned(), amz_date.clone()),
            (
                "authorization".to_owned(),
                format!(
                    "AWS4-HMAC-SHA256 Credential={}/{date}/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature={signature}",
                    f.access_key_id
                ),
            ),
        ]
    };
    let unsigned = headers_for(&"0".repeat(64));
    let request = |headers| SignedRequest {
        method: "GET",
        path: "/demo-data/home/alice/notes.txt",
        query: "",
        headers,
        payload_sha256: None,
    };
    let string_to_sign = Signature::parse(&request(&unsigned))
        .expect("parses")
        .string_to_sign()
        .to_owned();
    let key = SigningKey::derive(f.secret.as_bytes(), date, "us-east-1", "s3");
    let signature = key.sign_hex(&string_to_sign);
    let signed = headers_for(&signature);
    let checked = Signature::parse(&request(&signed))
        .expect("parses")
        .verify(f.secret.as_bytes(), now);
    assert!(checked.is_ok(), "sigv4_parse_and_verify: {checked:?}");
    group.bench_function("sigv4_parse_and_verify", |b| {
        b.iter(|| {
            let s = Signature::parse(&request(black_box(&signed))).expect("parses");
            black_box(s.verify(f.secret.as_bytes(), now))
        })
    });

    // Issue #20, item 2: the same request authenticated as the control plane does, from the
    // secret, and as a sidecar does, from the day's date key (the only key material it
    // holds: the tenant as shipped, `for_sidecars`); and the key + secret form against the
    // sidecar's keyed-hash verifier.
    let sidecar = TenantSnapshot::compile(
        Arc::new(for_sidecars(Tenant::clone(f.snapshot.tenant()))),
        f.snapshot.version(),
        &AwsManagedCatalog::compile(),
    )
    .expect("the sidecar's snapshot compiles");
    let parsed = Signature::parse(&request(&signed)).expect("parses");
    for (name, snapshot) in [("secret", &*f.snapshot), ("date_key", &sidecar)] {
        let caller = sts::authenticate(snapshot, &Presented::Signed(&parsed), now);
        assert_eq!(
            caller.map(|c| c.principal.to_string()).ok().as_deref(),
            Some(alice),
            "sigv4_authenticate_{name}"
        );
    }
    let verifier = sts::authenticate(
        &sidecar,
        &Presented::Keys {
            access_key_id: &f.access_key_id,
            secret: &f.secret,
            session_token: None,
        },
        now,
    )
    .expect("authenticate_long_term_key_verifier succeeds");
    assert_eq!(verifier.principal.to_string(), alice);
    group.bench_function("sigv4_authenticate_secret", |b| {
        b.iter(|| {
            let s = Signature::parse(&request(black_box(&signed))).expect("parses");
            black_box(sts::authenticate(&f.snapshot, &Presented::Signed(&s), now))
        })
    });
    group.bench_function("sigv4_authenticate_date_key", |b| {
        b.iter(|| {
            let s = Signature::parse(&request(black_box(&signed))).expect("parses");
            black_box(sts::authenticate(&sidecar, &Presented::Signed(&s), now))
        })
    });
    group.bench_function("authenticate_long_term_key_verifier", |b| {
        b.iter(|| {
            black_box(sts::authenticate(
                &sidecar,
                &Presented::Keys {
                    access_key_id: &f.access_key_id,
                    secret: black_box(&f.secret),
                    session_token: None,
                },
                now,
            ))
        })
    });
    group.finish();

    // Authorize through the sidecar's service: cache hit and miss, by principal ARN and by
    // session credentials.
    let api = Arc::new(Api::new(
        Arc::clone(&f.store),
        &CacheConfig::default(),
        DecisionLog::off(),
    ));
    let service = AuthorizerService::new(Arc::clone(&api));
    let by_arn = |resource: String| pb::AuthorizeRequest {
        caller: Some(pb::authorize_request::Caller::PrincipalArn(
            "arn:aws:iam::111122223333:user/alice".into(),
        )),
        action: "s3:PutObject".into(),
        resource,
        ..pb::AuthorizeRequest::default()
    };
    let by_session = |resource: String| pb::AuthorizeRequest {
        caller: Some(pb::authorize_request::Caller::Credentials(
            pb::Credentials {
                access_key_id: issued.access_key_id.clone(),
                secret_access_key: issued.secret_access_key.clone(),
                session_token: issued.session_token.clone(),
            },
        )),
        action: "s3:PutObject".into(),
        resource,
        ..pb::AuthorizeRequest::default()
    };
    let counter = AtomicU64::new(0);
    let fresh = || {
        format!(
            "arn:aws:s3:::demo-data/home/alice/{}.txt",
            counter.fetch_add(1, Ordering::Relaxed)
        )
    };
    let hit = "arn:aws:s3:::demo-data/home/alice/notes.txt".to_owned();
    let session_hit = "arn:aws:s3:::demo-data/reports/q4/x.csv".to_owned();
    // Warm the caches, then check that each case is the Allow, hit or miss it names.
    let _ = service.decide(&mut by_arn(hit.clone()));
    let _ = service.decide(&mut by_session(session_hit.clone()));
    expect_allow(
        &service,
        by_arn(hit.clone()),
        true,
        "principal_arn_cache_hit",
    );
    expect_allow(&service, by_arn(fresh()), false, "principal_arn_cache_miss");
    expect_allow(
        &service,
        by_session(session_hit.clone()),
        true,
        "session_credentials_cache_hit",
    );
    expect_allow(
        &service,
        by_session("arn:aws:s3:::demo-data/reports/q4/first.csv".into()),
        false,
        "session_credentials_cache_miss",
    );
    let mut group = c.benchmark_group("sidecar_authorize");
    // The domain's decision alone (P2's `decide` path): the input as the edge decodes it,
    // decided by the Authorizer, without the protobuf message on either side.
    let authorizer = Authorizer::new(api);
    let hit_input = AuthorizeInput {
        caller: CallerId::PrincipalArn("arn:aws:iam::111122223333:user/alice".into()),
        action: "s3:PutObject".into(),
        resource: hit.clone(),
        context: iamlet::authz::Context::new(),
        resource_tenant: None,
        resource_policy: None,
        explain: false,
        min_version: None,
        request_id: None,
    };
    let decided = authorizer.authorize(&hit_input).expect("decided");
    assert!(
        decided.is_allowed() && decided.cached(),
        "decide_hit is an allowed cache hit"
    );
    group.bench_function("decide_hit", |b| {
        b.iter(|| black_box(authorizer.authorize(black_box(&hit_input))))
    });
    // The same with session credentials (P2's session hit): the credentials found verified in
    // their cache and checked against the request, then the decision found in its cache.
    let session_input = AuthorizeInput {
        caller: CallerId::Keys {
            access_key_id: issued.access_key_id.clone(),
            secret: issued.secret_access_key.clone(),
            session_token: Some(issued.session_token.clone()),
        },
        resource: session_hit.clone(),
        ..hit_input.clone()
    };
    let decided = authorizer.authorize(&session_input).expect("decided");
    assert!(
        decided.is_allowed() && decided.cached(),
        "decide_hit_session is an allowed cache hit"
    );
    group.bench_function("decide_hit_session", |b| {
        b.iter(|| black_box(authorizer.authorize(black_box(&session_input))))
    });
    group.bench_function("principal_arn_cache_hit", |b| {
        b.iter_batched(
            || by_arn(hit.clone()),
            |mut r| black_box(service.decide(&mut r)),
            criterion::BatchSize::SmallInput,
        )
    });
    // The same hit with usage recorded for the control plane (issue 17): the cost of the
    // aggregation on the decision path, beside `principal_arn_cache_hit` without it.
    let usage = Arc::new(Usage::new(UsageConfig::default()));
    let recording = AuthorizerService::new(Arc::new(
        Api::new(
            Arc::clone(&f.store),
            &CacheConfig::default(),
            DecisionLog::off(),
        )
        .with_usage(Arc::clone(&usage)),
    ));
    let _ = recording.decide(&mut by_arn(hit.clone()));
    expect_allow(
        &recording,
        by_arn(hit.clone()),
        true,
        "principal_arn_cache_hit_usage",
    );
    group.bench_function("principal_arn_cache_hit_usage", |b| {
        b.iter_batched(
            || by_arn(hit.clone()),
            |mut r| black_box(recording.decide(&mut r)),
            criterion::BatchSize::SmallInput,
        )
    });
    let stats = usage.stats();
    assert_eq!(
        stats.entries_created, 1,
        "every hit is a use of one entry: {stats:?}"
    );
    eprintln!(
        "usage during principal_arn_cache_hit_usage: {} uses recorded in {} entry",
        stats.recorded, stats.entries_created
    );
    group.bench_function("principal_arn_cache_miss", |b| {
        b.iter_batched(
            || by_arn(fresh()),
            |mut r| black_box(service.decide(&mut r)),
            criterion::BatchSize::SmallInput,
        )
    });
    // P7: the same hit with every decision logged (to /dev/null, through the bounded queue and
    // its writer task on a runtime of its own).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (log, _task) = runtime
        .block_on(async {
            DecisionLog::spawn(DecisionLogConfig {
                sink: LogSink::File("/dev/null".into()),
                ..DecisionLogConfig::default()
            })
        })
        .expect("decision log");
    let logged = AuthorizerService::new(Arc::new(Api::new(
        Arc::clone(&f.store),
        &CacheConfig::default(),
        Arc::clone(&log),
    )));
    let _ = logged.decide(&mut by_arn(hit.clone()));
    expect_allow(
        &logged,
        by_arn(hit.clone()),
        true,
        "principal_arn_cache_hit_logged",
    );
    group.bench_function("principal_arn_cache_hit_logged", |b| {
        b.iter_batched(
            || by_arn(hit.clone()),
            |mut r| black_box(logged.decide(&mut r)),
            criterion::BatchSize::SmallInput,
        )
    });
    eprintln!(
        "decision log during principal_arn_cache_hit_logged: {} written, {} dropped (queue full)",
        log.written(),
        log.dropped()
    );
    group.bench_function("session_credentials_cache_hit", |b| {
        b.iter_batched(
            || by_session(session_hit.clone()),
            |mut r| black_box(service.decide(&mut r)),
            criterion::BatchSize::SmallInput,
        )
    });
    group.bench_function("session_credentials_cache_miss", |b| {
        b.iter_batched(
            || {
                by_session(format!(
                    "arn:aws:s3:::demo-data/reports/q4/{}.csv",
                    counter.fetch_add(1, Ordering::Relaxed)
                ))
            },
            |mut r| black_box(service.decide(&mut r)),
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// Fails the run unless `request` is allowed, from the cache or not as `cached` says.
fn expect_allow(
    service: &AuthorizerService,
    mut request: pb::AuthorizeRequest,
    cached: bool,
    case: &str,
) {
    match service.decide(&mut request) {
        Ok(answer) => {
            assert_eq!(
                answer.decision,
                pb::Decision::Allow as i32,
                "{case}: {answer:?}"
            );
            assert_eq!(answer.cached, cached, "{case}: {answer:?}");
        }
        Err(error) => panic!("{case}: an error, not a decision: {error}"),
    }
}

/// The worst request within issue 13's bounds: 256 statements of `*a*b*c*d*e*f*g*N*` supplied
/// with the request against a 2,000-character resource (nothing matches: an implicit deny).
/// `n` makes the resource new, so that the decision cache never answers it.
fn worst_case_request(n: u64) -> pb::AuthorizeRequest {
    let statements: Vec<String> = (0..256)
        .map(|i| {
            format!(
                r#"{{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::*a*b*c*d*e*f*g*{i}*"}}"#
            )
        })
        .collect();
    pb::AuthorizeRequest {
        caller: Some(pb::authorize_request::Caller::PrincipalArn(
            "arn:aws:iam::111122223333:user/alice".into(),
        )),
        action: "s3:GetObject".into(),
        resource: format!("arn:aws:s3:::{}{n}", "ab".repeat(1_000)),
        resource_policy_json: format!(
            r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
            statements.join(",")
        ),
        ..pb::AuthorizeRequest::default()
    }
}

/// Issue 13, item 4: the worst-case request's cost alone, and an ordinary client's latency
/// over gRPC on loopback while four clients send worst-case requests back to back (the
/// server's runtime has two workers, the sidecar's default on this machine). Each ordinary
/// request's latency is kept, and p50/p99 are printed beside criterion's figures.
fn worst_case(c: &mut Criterion) {
    let f = fixture();
    let api = Arc::new(Api::new(
        Arc::clone(&f.store),
        &CacheConfig::default(),
        DecisionLog::off(),
    ));
    let service = AuthorizerService::new(Arc::clone(&api));
    let fresh = Arc::new(AtomicU64::new(0));
    let next = {
        let fresh = Arc::clone(&fresh);
        move || worst_case_request(fresh.fetch_add(1, Ordering::Relaxed))
    };
    for _ in 0..2 {
        match service.decide(&mut next()) {
            Ok(answer) => {
                assert_eq!(
                    answer.decision,
                    pb::Decision::ImplicitDeny as i32,
                    "worst_case_request: {answer:?}"
                );
                assert!(!answer.cached, "worst_case_request is evaluated, not a hit");
            }
            Err(error) => panic!("worst_case_request: an error, not a decision: {error}"),
        }
    }
    let mut group = c.benchmark_group("worst_case");
    group.sample_size(10);
    group.bench_function("request_alone", |b| {
        b.iter_batched(
            &next,
            |mut r| black_box(service.decide(&mut r)),
            criterion::BatchSize::SmallInput,
        )
    });

    // The same ordinary client alone, then beside four clients sending the worst case back to
    // back. Each rig starts on first use: a run that filters its case out never starts it.
    let counter = AtomicU64::new(0);
    for (case, attackers) in [
        ("ordinary_request_alone", 0),
        ("ordinary_request_beside_four_worst_case_clients", 4),
    ] {
        let mut rig: Option<Rig> = None;
        let mut latencies = Vec::new();
        group.bench_function(case, |b| {
            let rig =
                rig.get_or_insert_with(|| Rig::start(Arc::clone(&api), next.clone(), attackers));
            b.iter_custom(|iterations| {
                let mut total = std::time::Duration::ZERO;
                for _ in 0..iterations {
                    let request = pb::AuthorizeRequest {
                        caller: Some(pb::authorize_request::Caller::PrincipalArn(
                            "arn:aws:iam::111122223333:user/alice".into(),
                        )),
                        action: "s3:PutObject".into(),
                        resource: format!(
                            "arn:aws:s3:::demo-data/home/alice/{}.txt",
                            counter.fetch_add(1, Ordering::Relaxed) % 64
                        ),
                        ..pb::AuthorizeRequest::default()
                    };
                    let started = std::time::Instant::now();
                    let answer = rig
                        .clients
                        .block_on(rig.ordinary.authorize(request))
                        .expect("the ordinary request is answered")
                        .into_inner();
                    let took = started.elapsed();
                    assert_eq!(answer.decision, pb::Decision::Allow as i32, "{answer:?}");
                    latencies.push(took);
                    total += took;
                }
                total
            })
        });
        if let Some(rig) = rig {
            rig.stop.store(true, Ordering::Relaxed);
            latencies.sort();
            if let (Some(p50), Some(p99)) = (
                latencies.get(latencies.len() / 2),
                latencies.get(latencies.len() * 99 / 100),
            ) {
                eprintln!(
                    "{case}: {} requests, p50 {p50:?}, p99 {p99:?}; {} worst-case requests \
                     answered meanwhile",
                    latencies.len(),
                    rig.heavy_sent.load(Ordering::Relaxed)
                );
            }
        }
    }
    group.finish();
}

/// The sidecar's Authorizer served over gRPC on loopback (two workers, the sidecar's default
/// on this machine), `attackers` clients sending worst-case requests back to back, and an
/// ordinary client, on a runtime of their own.
struct Rig {
    // The clients' runtime drops first, then the server's.
    clients: tokio::runtime::Runtime,
    _server: tokio::runtime::Runtime,
    ordinary: pb::authorizer_client::AuthorizerClient<tonic::transport::Channel>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    heavy_sent: Arc<AtomicU64>,
}

impl Rig {
    fn start(
        api: Arc<Api>,
        next: impl Fn() -> pb::AuthorizeRequest + Clone + Send + 'static,
        attackers: usize,
    ) -> Self {
        let server = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("server runtime");
        let listener = server
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("listener");
        let addr = listener.local_addr().expect("address");
        // The accept loop spawns its task on the server's runtime.
        let _entered = server.enter();
        server.spawn(
            tonic::transport::Server::builder()
                .add_service(pb::authorizer_server::AuthorizerServer::new(
                    AuthorizerService::new(api),
                ))
                // Accepted as the sidecar accepts (TCP_NODELAY among the rest): without it,
                // Nagle's algorithm and delayed ACKs add 40 ms to every answer.
                .serve_with_incoming(iamlet::net::accept(
                    listener,
                    iamlet::net::ConnectionLimits::default(),
                )),
        );
        let clients = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("client runtime");
        let connect = || {
            clients
                .block_on(pb::authorizer_client::AuthorizerClient::connect(format!(
                    "http://{addr}"
                )))
                .expect("connect")
        };
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let heavy_sent = Arc::new(AtomicU64::new(0));
        for _ in 0..attackers {
            let mut client = connect();
            let (stop, sent, next) = (Arc::clone(&stop), Arc::clone(&heavy_sent), next.clone());
            clients.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let answer = client.authorize(next()).await;
                    // Once stopped, the server may be gone mid-request.
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    assert!(answer.is_ok(), "a worst-case request failed: {answer:?}");
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let ordinary = connect();
        Self {
            clients,
            _server: server,
            ordinary,
            stop,
            heavy_sent,
        }
    }
}

criterion_group!(benches, credentials, worst_case);
criterion_main!(benches);
