//! `AssumeRole`'s per-core rate over the STS Query HTTP edge beside the gRPC edge: both edges
//! served in process on loopback, clients and server on one single-threaded tokio runtime (so
//! the whole request path shares one core), the same domain `SecurityTokenService` behind
//! both. The HTTP request is AWS's form-encoded POST, SigV4-signed once before timing (the
//! server verifies the signature on every request, as it would a fresh one); the gRPC request
//! carries the access key and secret.
//!
//! Run with `cargo bench --bench sts_query` (each edge for `STS_QUERY_BENCH_SECS`, default 5);
//! under `cargo test --benches` each edge runs a moment, after the same outcome checks.
//! Results are in `benches/README.md`.

#![expect(
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "a benchmark whose fixtures do not load, or whose case does not give the outcome \
              it names, has nothing to measure"
)]
#![expect(clippy::print_stdout, reason = "the results are the program's output")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use iamlet::grpc::StsService;
use iamlet::policy::Timestamp;
use iamlet::proto::v1 as pb;
use iamlet::sidecar::decision_log::DecisionLog;
use iamlet::sidecar::{Api, CacheConfig};
use iamlet::snapshot::SnapshotStore;
use iamlet::sts::sigv4::SigningKey;
use tokio::net::TcpListener;

const ROLE: &str = "arn:aws:iam::111122223333:role/reports-writer";
const SESSION_ARN: &str = "arn:aws:sts::111122223333:assumed-role/reports-writer/bench";
#[path = "support/demo.rs"]
#[expect(
    dead_code,
    reason = "this bench uses the store and alice's key, not the snapshot"
)]
mod support;

#[path = "support/http.rs"]
mod http;

use http::{rate, Http, CONCURRENCY};

/// The demo tenant's snapshot in a store, and alice's access key.
fn fixture() -> (Arc<SnapshotStore>, String, String) {
    let demo = support::demo("sts-query");
    (demo.store, demo.access_key_id, demo.secret)
}

/// The bytes of a keep-alive `POST /` of AssumeRole, SigV4-signed with alice's key.
fn signed_assume_role(key_id: &str, secret: &str) -> Vec<u8> {
    let body = format!(
        "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=bench&Tags.member.1.Key=project&Tags.member.1.Value=q4",
        ROLE.replace(':', "%3A").replace('/', "%2F")
    );
    let now = Timestamp::from_epoch_seconds(Timestamp::now().epoch_seconds()).to_string();
    let date = now.replace(['-', ':'], "");
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let canonical = format!(
        "POST\n/\n\ncontent-type:{content_type}\nhost:sts.local\nx-amz-date:{date}\n\ncontent-type;host;x-amz-date\n{}",
        iamlet::http::query::hex_sha256(body.as_bytes())
    );
    let scope = format!("{}/us-east-1/sts/aws4_request", &date[..8]);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        iamlet::http::query::hex_sha256(canonical.as_bytes())
    );
    let signature =
        SigningKey::derive(secret.as_bytes(), &date[..8], "us-east-1", "sts").sign_hex(&to_sign);
    format!(
        "POST / HTTP/1.1\r\nhost: sts.local\r\ncontent-type: {content_type}\r\nx-amz-date: {date}\r\n\
         authorization: AWS4-HMAC-SHA256 Credential={key_id}/{scope}, SignedHeaders=content-type;host;x-amz-date, Signature={signature}\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn main() {
    let timed = std::env::args().any(|a| a == "--bench");
    let span = if timed {
        Duration::from_secs(
            std::env::var("STS_QUERY_BENCH_SECS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(5),
        )
    } else {
        Duration::from_millis(200)
    };
    let (store, key_id, secret) = fixture();
    let api = Arc::new(Api::new(store, &CacheConfig::default(), DecisionLog::off()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        // The HTTP edge, with the layers `iamlet sidecar` serves it with.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let http_addr = listener.local_addr().expect("addr");
        tokio::spawn(iamlet::http::serve(
            iamlet::http::sts::sts_routes(Arc::clone(&api)),
            listener,
            None,
            std::future::pending(),
        ));
        // The gRPC edge, on the sidecar's own accept loop (connection limits, TCP_NODELAY:
        // without it, Nagle and delayed ACKs add tens of milliseconds to each answer).
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let grpc_addr = listener.local_addr().expect("addr");
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(StsService::new(Arc::clone(&api)).into_server())
                .serve_with_incoming(iamlet::net::accept(
                    listener,
                    iamlet::net::ConnectionLimits::default(),
                )),
        );
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc_addr}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        let grpc = pb::security_token_service_client::SecurityTokenServiceClient::new(channel);
        let grpc_request = pb::AssumeRoleRequest {
            caller: Some(pb::StsCaller {
                caller: Some(pb::sts_caller::Caller::Credentials(pb::Credentials {
                    access_key_id: key_id.clone(),
                    secret_access_key: secret.clone(),
                    session_token: String::new(),
                })),
            }),
            role_arn: ROLE.into(),
            role_session_name: "bench".into(),
            tags: vec![pb::SessionTag {
                key: "project".into(),
                value: "q4".into(),
            }],
            ..pb::AssumeRoleRequest::default()
        };
        let http_request = Arc::new(signed_assume_role(&key_id, &secret));

        // Each edge's outcome is checked before it is timed: a refusal must never be reported
        // as the rate of AssumeRole.
        let (status, body) = Http::connect(http_addr).await.call(&http_request).await;
        assert_eq!(status, 200, "query AssumeRole: {body}");
        assert!(
            body.contains(&format!("<Arn>{SESSION_ARN}</Arn>")),
            "{body}"
        );
        assert!(body.contains("<SessionToken>"), "{body}");
        let answer = grpc
            .clone()
            .assume_role(grpc_request.clone())
            .await
            .expect("grpc AssumeRole")
            .into_inner();
        assert_eq!(
            answer.assumed_role_user.expect("user").arn,
            SESSION_ARN,
            "grpc AssumeRole"
        );

        let query = rate(|_| {
            let request = Arc::clone(&http_request);
            async move {
                let mut client = Http::connect(http_addr).await;
                let (started, mut n) = (Instant::now(), 0);
                while started.elapsed() < span {
                    let (status, _) = client.call(&request).await;
                    assert_eq!(status, 200);
                    n += 1;
                }
                n
            }
        })
        .await;
        let grpc_rate = rate(|_| {
            let (mut client, request) = (grpc.clone(), grpc_request.clone());
            async move {
                let (started, mut n) = (Instant::now(), 0);
                while started.elapsed() < span {
                    client
                        .assume_role(request.clone())
                        .await
                        .expect("grpc AssumeRole");
                    n += 1;
                }
                n
            }
        })
        .await;
        println!(
            "sts_query: AssumeRole on one core, {CONCURRENCY} in flight, {:.1} s each",
            span.as_secs_f64()
        );
        println!("  STS Query (HTTP/1.1 keep-alive, SigV4): {query:>8.0} /s");
        println!("  gRPC (HTTP/2, access key and secret):    {grpc_rate:>8.0} /s");
        println!(
            "  Query / gRPC:                            {:>8.2}",
            query / grpc_rate
        );
    });
}
