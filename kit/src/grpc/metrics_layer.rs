use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tower::{Layer, Service};

/// Records `grpc_server_requests_total{method,code}` and `grpc_server_duration_seconds{method}`.
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcMetricsLayer;

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner }
    }
}

#[derive(Clone, Debug)]
pub struct GrpcMetrics<S> {
    inner: S,
}

/// Known methods keep their name; anything else is one label, so a client sending random
/// paths cannot blow up the metric's cardinality.
fn method_label(path: &str) -> String {
    if path.starts_with("/mesh.") || path.starts_with("/grpc.") { path.to_owned() } else { "other".to_owned() }
}

impl<S, B, RB> Service<http::Request<B>> for GrpcMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = method_label(req.uri().path());
        let started = Instant::now();
        // The clone that was polled ready is the one that must take the call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let result = inner.call(req).await;
            // Errors of unary calls come back "trailers-only": grpc-status in the headers.
            let code = match &result {
                Ok(resp) => resp
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .map_or_else(|| "0".to_owned(), str::to_owned),
                Err(_) => "transport".to_owned(),
            };
            metrics::counter!("grpc_server_requests_total", "method" => method.clone(), "code" => code).increment(1);
            metrics::histogram!("grpc_server_duration_seconds", "method" => method)
                .record(started.elapsed().as_secs_f64());
            result
        })
    }
}
