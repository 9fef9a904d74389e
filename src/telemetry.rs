//! Logs and traces of the long-running processes.
//!
//! - Logs are `tracing` events on standard error, plain or JSON (`--log-format`), filtered by
//!   `IAMLET_LOG` or `RUST_LOG` (env-filter syntax; default `info`).
//! - Traces go to an OpenTelemetry collector over OTLP/gRPC when the standard variables ask
//!   for it (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, unless
//!   `OTEL_TRACES_EXPORTER=none`; `OTEL_SERVICE_NAME` names the service). Each gRPC request
//!   is a span that continues the W3C `traceparent` the caller sent.
//! - Request spans are made only when they go somewhere: [`init`] turns them off when no
//!   exporter is configured. A span per request costs the hot path more than deciding does
//!   (at the default `info` level the log layer formats its fields: ~9,500 instructions per
//!   `Authorize`, against ~4,500 for the decision), and log lines never printed it. A process
//!   that installs its own subscriber instead of calling [`init`] keeps them.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object a line.
    Json,
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `IAMLET_LOG` / `RUST_LOG` is not a valid filter.
    #[error("invalid log filter: {0}")]
    Filter(String),
    /// The OTLP exporter could not be built from the `OTEL_*` variables.
    #[error("cannot export traces: {0}")]
    Exporter(String),
}

/// Keeps the trace pipeline alive; [`Telemetry::shutdown`] flushes it.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

// === impl Telemetry ===

impl Telemetry {
    /// Sends the spans still buffered and stops the exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            let _ = provider.force_flush();
            let _ = provider.shutdown();
        }
    }
}

/// Whether [`grpc_span`] and the other per-request spans are made; see the module's docs.
static REQUEST_SPANS: AtomicBool = AtomicBool::new(true);

/// True when per-request spans are made (trace export is on, or the process installed its own
/// subscriber).
pub fn request_spans() -> bool {
    REQUEST_SPANS.load(Ordering::Relaxed)
}

/// True when the `OTEL_*` variables ask for trace export.
fn traces_requested() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let disabled = std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v.trim() == "none");
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// A tracer provider exporting over OTLP/gRPC; `endpoint` overrides the `OTEL_*` variables.
/// Call it inside a tokio runtime.
pub fn tracer_provider(endpoint: Option<&str>) -> Result<SdkTracerProvider, TelemetryError> {
    use opentelemetry_otlp::WithExportConfig;
    let mut builder = opentelemetry_otlp::SpanExporter::builder().with_tonic();
    if let Some(endpoint) = endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    let exporter = builder
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "iamlet".into());
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service)
                .build(),
        )
        .build())
}

/// Installs the process's subscriber: logs in `format`, and traces when the `OTEL_*`
/// variables ask for them. Call it inside the process's tokio runtime.
pub fn init(format: LogFormat) -> Result<Telemetry, TelemetryError> {
    let filter = std::env::var("IAMLET_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let filter = EnvFilter::try_new(&filter).map_err(|e| TelemetryError::Filter(e.to_string()))?;
    let logs = match format {
        // Colours only for a person at a terminal: a log collector would keep the escape
        // codes in every line.
        LogFormat::Plain => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_target(false)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let provider = if traces_requested() {
        Some(tracer_provider(None)?)
    } else {
        None
    };
    REQUEST_SPANS.store(provider.is_some(), Ordering::Relaxed);
    let traces = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("iamlet")));
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    // A subscriber installed earlier (tests, an embedding process) wins.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(traces)
        .try_init();
    Ok(Telemetry { provider })
}

/// Reads W3C trace context from gRPC (HTTP/2) headers.
struct HeaderExtractor<'a>(&'a tonic::codegen::http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The span of one gRPC request, child of the caller's `traceparent` when it sent one (for
/// tonic's `Server::trace_fn`); none when [`request_spans`] is off.
pub fn grpc_span<B>(request: &tonic::codegen::http::Request<B>) -> tracing::Span {
    if !request_spans() {
        return tracing::Span::none();
    }
    let path = request.uri().path();
    let span = tracing::info_span!(
        "grpc.request",
        otel.name = path,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.method = path.rsplit('/').next().unwrap_or(""),
    );
    if span.is_disabled() {
        return span;
    }
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(request.headers()));
    let _ = span.set_parent(parent);
    span
}
