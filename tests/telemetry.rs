//! Traces reach an OTLP collector (in process here) and continue the caller's trace.

use std::sync::Arc;
use std::time::{Duration, Instant};

use iamlet::grpc::serve_sidecar;
use iamlet::proto::v1 as pb;
use iamlet::sidecar::{spawn_sidecar, SidecarConfig};
use iamlet::sync::Readiness;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tracing_subscriber::layer::SubscriberExt;

/// Keeps every span it is sent.
#[derive(Default, Clone)]
struct Collector {
    spans: Arc<Mutex<Vec<opentelemetry_proto::tonic::trace::v1::Span>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_span_reaches_the_collector_as_a_child_of_the_callers_trace() {
    let collector = Collector::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let provider =
        iamlet::telemetry::tracer_provider(Some(&format!("http://{collector_addr}"))).unwrap();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("iamlet-test")));
    // Spans are made on the server's worker threads: the subscriber must be global. Other
    // tests in this binary only gain spans nobody exports.
    let _ = tracing::subscriber::set_global_default(subscriber);

    let state = std::env::temp_dir().join(format!("iamlet-otel-{}", std::process::id()));
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let (handle, _) = spawn_sidecar(
        &SidecarConfig {
            control_plane: "http://127.0.0.1:9".into(),
            readiness: Readiness::All,
            state_dir: state,
            snapshot_trust: super::support::snapshot_trust(),
            ..SidecarConfig::default()
        },
        shutdown,
    );
    let local = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = local.local_addr().unwrap();
    tokio::spawn(serve_sidecar(handle, local, std::future::pending()));
    let mut client = pb::authorizer_client::AuthorizerClient::connect(format!("http://{addr}"))
        .await
        .unwrap();

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_span = "00f067aa0ba902b7";
    let mut request = tonic::Request::new(pb::AuthorizeRequest {
        caller: Some(pb::authorize_request::Caller::PrincipalArn(
            "arn:aws:iam::111122223333:user/alice".into(),
        )),
        action: "s3:GetObject".into(),
        resource: "*".into(),
        ..pb::AuthorizeRequest::default()
    });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{parent_span}-01").parse().unwrap(),
    );
    // No tenant is loaded: an error answer is still a traced request.
    let _ = client.authorize(request).await;

    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let started = Instant::now();
    let span = loop {
        let _ = provider.force_flush();
        // Tests running beside this one send their own Authorize calls, whose spans reach
        // this process-wide provider too: the caller's is the one in the caller's trace.
        let found = collector
            .spans
            .lock()
            .iter()
            .find(|s| s.name == "/iamlet.v1.Authorizer/Authorize" && hex(&s.trace_id) == trace_id)
            .cloned();
        if let Some(span) = found {
            break span;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no Authorize span reached the collector"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        hex(&span.trace_id),
        trace_id,
        "the caller's trace continues"
    );
    assert_eq!(
        hex(&span.parent_span_id),
        parent_span,
        "under the caller's span"
    );
    let _ = provider.shutdown();
}
