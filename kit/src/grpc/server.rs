use std::convert::Infallible;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tower::Service;

use super::GrpcMetricsLayer;
use crate::config::ServiceSettings;
use crate::telemetry;

#[derive(Debug, thiserror::Error)]
#[error("cannot listen for {what} on {addr}: {source}")]
pub struct BindError {
    what: &'static str,
    addr: std::net::SocketAddr,
    source: std::io::Error,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("gRPC reflection could not be built: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// One service's gRPC server: the service itself plus `grpc.health.v1` and reflection.
pub struct GrpcServer {
    listener: TcpListener,
    request_timeout: Duration,
    shutdown: ShutdownTiming,
    max_streams: StreamLimit,
}

/// How many calls one client connection may have open at once (HTTP/2
/// `SETTINGS_MAX_CONCURRENT_STREAMS`).
///
/// Why a limit at all: h2 defends a server against floods of small DATA frames by closing the
/// whole connection (`GOAWAY ENHANCE_YOUR_CALM`, "too_many_data_frames") once the framing
/// overhead of frames it holds unread passes a budget of half the connection window. Every
/// gRPC request body is one small frame (~250 bytes of budget), so with no stream limit (tonic's
/// default) a client with a few thousand calls queued on a busy server trips it, and every call
/// on the connection fails at once as a transport error. Bounding the streams bounds the unread
/// frames: the client queues the rest until a stream frees, which is a wait, not a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct StreamLimit(u32);

impl StreamLimit {
    pub const DEFAULT: Self = Self(1_024);
    /// With [`CONNECTION_WINDOW`] the frame budget is 2 MiB: room for two small frames per
    /// stream (message and end of stream) at 4,096 streams.
    pub const MAX: u32 = 4_096;

    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for StreamLimit {
    type Error = String;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        if (1..=Self::MAX).contains(&value) {
            Ok(Self(value))
        } else {
            Err(format!("must be 1..={}, got {value}", Self::MAX))
        }
    }
}

impl From<StreamLimit> for u32 {
    fn from(limit: StreamLimit) -> u32 {
        limit.0
    }
}

/// HTTP/2 connection-level receive window of the server. Flow-control credit, not memory
/// held up front; h2 derives its small-frame budget from it (half), see [`StreamLimit`].
const CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;

/// How a server winds down after its shutdown token is cancelled.
#[derive(Clone, Copy, Debug)]
pub struct ShutdownTiming {
    /// Health reports NOT_SERVING this long before the listener closes.
    pub drain: Duration,
    /// In-flight calls get this long to finish once the listener is closed.
    pub grace: Duration,
}

impl GrpcServer {
    /// Binds the service's gRPC port (port 0 in tests: the real port is known before
    /// serving) and starts its Prometheus listener, as `settings` say.
    pub async fn bind(settings: &ServiceSettings) -> Result<Self, BindError> {
        let listener = TcpListener::bind(settings.grpc_addr).await.map_err(|source| BindError {
            what: "gRPC",
            addr: settings.grpc_addr,
            source,
        })?;
        if let Some(addr) = settings.metrics_addr {
            telemetry::serve_metrics(addr).await.map_err(|source| BindError { what: "metrics", addr, source })?;
        }
        Ok(Self {
            listener,
            request_timeout: settings.request_timeout(),
            shutdown: settings.shutdown_timing(),
            max_streams: settings.grpc_max_concurrent_streams,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `service` until `shutdown` is cancelled. Then health turns NOT_SERVING, the
    /// listener closes after the drain delay, and in-flight calls get the grace period.
    pub async fn serve<S>(self, service: S, shutdown: CancellationToken) -> Result<(), ServeError>
    where
        S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_service_status(S::NAME, ServingStatus::Serving).await;
        health.set_service_status("", ServingStatus::Serving).await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(mesh_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;

        let mut routes = Routes::new(service);
        routes = routes.add_service(health_service).add_service(reflection);

        let drained = CancellationToken::new();
        let timing = self.shutdown;
        let signal = {
            let (shutdown, drained) = (shutdown.clone(), drained.clone());
            async move {
                shutdown.cancelled().await;
                health.set_service_status(S::NAME, ServingStatus::NotServing).await;
                health.set_service_status("", ServingStatus::NotServing).await;
                tokio::time::sleep(timing.drain).await;
                drained.cancel();
            }
        };
        let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true));
        let serving = Server::builder()
            .timeout(self.request_timeout)
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .max_concurrent_streams(self.max_streams.get())
            .initial_connection_window_size(CONNECTION_WINDOW)
            .trace_fn(request_span)
            .layer(GrpcMetricsLayer)
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, signal);
        tokio::pin!(serving);
        tokio::select! {
            result = &mut serving => return result.map_err(ServeError::from),
            () = drained.cancelled() => {}
        }
        match tokio::time::timeout(timing.grace, serving).await {
            Ok(result) => result.map_err(ServeError::from),
            Err(_) => {
                tracing::warn!(grace = ?timing.grace, "in-flight calls did not finish within the grace period");
                Ok(())
            }
        }
    }
}

/// One span per call, continuing the caller's W3C trace context.
fn request_span(req: &http::Request<()>) -> tracing::Span {
    let span = tracing::info_span!(
        "grpc",
        method = %req.uri().path(),
        request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or(""),
        // The user the gateway authenticated (absent for internal calls and with auth off).
        user_id = req.headers().get("x-user-id").and_then(|v| v.to_str().ok()).unwrap_or(""),
    );
    telemetry::continue_trace(&span, req.headers());
    span
}
