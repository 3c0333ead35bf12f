//! Logs, traces and metrics.
//!
//! - Logs: `tracing` with JSON lines (or `pretty` for humans), filtered by `RUST_LOG`.
//! - Traces: every span gets an OpenTelemetry context, so a W3C `traceparent` that arrives
//!   is continued and passed on to the next hop even when nothing is exported. Spans are
//!   exported over OTLP only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//! - Metrics: the `metrics` facade with a Prometheus recorder, scraped at `/metrics`.

use std::net::SocketAddr;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Flushes exported spans when the process ends.
#[must_use = "dropping the guard flushes and stops span export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Installs the global subscriber once per process; later calls (tests) are no-ops.
///
/// `RUST_LOG` filters the logs and the spans; the pool-wait metric has a filter of its own,
/// so it counts every acquire whatever the log level.
pub fn init(service: &'static str, log_format: &str) -> TelemetryGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let provider = tracer_provider(service);
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer(service));
    let registry = tracing_subscriber::registry().with(crate::pool_waits::layer());
    let installed = if log_format == "pretty" {
        registry.with(otel.and_then(tracing_subscriber::fmt::layer()).with_filter(filter)).try_init()
    } else {
        let json = tracing_subscriber::fmt::layer().json().flatten_event(true).with_current_span(true);
        registry.with(otel.and_then(json).with_filter(filter)).try_init()
    };
    if installed.is_ok() {
        opentelemetry::global::set_tracer_provider(provider.clone());
    }
    TelemetryGuard { provider: installed.is_ok().then_some(provider) }
}

fn tracer_provider(service: &'static str) -> SdkTracerProvider {
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(service).build();
    let builder = SdkTracerProvider::builder().with_resource(resource);
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_none() {
        return builder.build();
    }
    match opentelemetry_otlp::SpanExporter::builder().with_tonic().build() {
        Ok(exporter) => builder.with_batch_exporter(exporter).build(),
        Err(err) => {
            eprintln!("OTLP exporter not started ({err}); continuing without span export");
            builder.build()
        }
    }
}

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

type ScrapeHook = Box<dyn Fn() + Send + Sync>;

/// Gauges that are read at scrape time rather than kept up to date (process, pools).
static SCRAPE_HOOKS: std::sync::Mutex<Vec<ScrapeHook>> = std::sync::Mutex::new(Vec::new());

/// Runs `hook` before every render of `/metrics` (it sets gauges from what it reads).
pub fn on_scrape(hook: impl Fn() + Send + Sync + 'static) {
    SCRAPE_HOOKS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(Box::new(hook));
}

/// Creates the series `name{label=value}` for each value at 0 without changing one that
/// exists: a counter that appears only at its first event hides that event from `rate()`
/// and `increase()`, and an alert on it has nothing to read until then.
pub fn declare_counters(name: &'static str, label: &'static str, values: &[&'static str]) {
    for value in values {
        metrics::counter!(name, label => *value).increment(0);
    }
}

/// The Prometheus text of this process: the scrape-time gauges refreshed first.
pub fn render() -> String {
    for hook in SCRAPE_HOOKS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter() {
        hook();
    }
    prometheus().render()
}

/// The process-wide Prometheus recorder (installed on first use).
pub fn prometheus() -> &'static PrometheusHandle {
    PROMETHEUS.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0])
            .expect("static buckets are valid")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (tests run several services per
        // process); the handle then stays empty, which is harmless.
        if metrics::set_global_recorder(recorder).is_ok() {
            // CPU, resident memory, open fds and threads of this process, read per scrape.
            let process = metrics_process::Collector::default();
            process.describe();
            on_scrape(move || process.collect());
            crate::metric_help::describe_common();
        }
        handle
    })
}

/// Serves `GET /metrics` of this process on `addr` (a plain HTTP listener, off the gRPC port).
pub async fn serve_metrics(addr: SocketAddr) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let _ = prometheus();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { continue };
            let body = render();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                // Scrapers send a small GET; whatever it asks for, the answer is the metrics.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf)).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Ok(())
}

/// Makes `span` a child of the W3C trace context found in `headers` (if any).
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    let _ = span.set_parent(parent);
}

/// Writes the W3C trace context of `span` into `headers`, for the next hop.
pub fn inject_trace(span: &tracing::Span, headers: &mut http::HeaderMap) {
    let context = span.context();
    TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
}

/// The W3C `traceparent` of `span`, to store with work that may be resumed by another
/// process (a saga recovered after a crash); `None` when the span has no valid context.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let mut carrier = std::collections::HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove("traceparent")
}

/// Makes `span` a child of a stored [`traceparent`], so resumed work joins the trace of the
/// work it resumes. A malformed value leaves `span` the root of a trace of its own.
pub fn resume_trace(span: &tracing::Span, traceparent: &str) {
    let carrier = std::collections::HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let _ = span.set_parent(TraceContextPropagator::new().extract(&carrier));
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (http::HeaderName::try_from(key), http::HeaderValue::try_from(value)) {
            self.0.insert(name, value);
        }
    }
}
