//! Per-request context: the request id (the caller's `X-Request-Id` when it is sane, else a
//! new UUID), a span continuing the caller's W3C `traceparent`, and HTTP metrics.
//!
//! The id lives in a task-local for the whole request, so a problem document built
//! anywhere (a handler, an extractor's rejection, the panic handler) carries it.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

tokio::task_local! {
    static REQUEST_ID: String;
    /// The authenticated user (id, admin) the request acts as, forwarded to the services.
    static USER: Option<(i64, bool)>;
}

/// Runs `work` with the authenticated user in scope, for [`grpc_request`].
pub fn as_user<F: Future>(user: Option<(i64, bool)>, work: F) -> impl Future<Output = F::Output> {
    USER.scope(user, work)
}

pub const USER_ID_METADATA: &str = "x-user-id";
pub const USER_ADMIN_METADATA: &str = "x-user-admin";

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of the request being served (empty outside a request).
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

/// A caller's id is echoed only if it is short, visible ASCII: it ends up in logs and headers.
fn acceptable(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// The request's id: the caller's `X-Request-Id` when it is sane, else a new UUID.
pub fn request_id<B>(request: &http::Request<B>) -> String {
    request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| acceptable(id))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// The request's span, continuing the caller's W3C trace context.
pub fn span_for<B>(request: &http::Request<B>, id: &str) -> tracing::Span {
    let span = tracing::info_span!("http", method = %request.method(), path = %request.uri().path(), request_id = %id);
    kit::telemetry::continue_trace(&span, request.headers());
    span
}

/// `work` with the request id in scope (so any problem document built inside carries it)
/// and inside the request's span. A plain function returning the future, not an async fn,
/// so the work is not stored twice.
pub fn scope<F: Future>(id: String, span: tracing::Span, work: F) -> impl Future<Output = F::Output> {
    REQUEST_ID.scope(id, work.instrument(span))
}

/// Echoes the id on the response and writes the access log line (a 5xx at WARN).
pub fn finish(response: &mut Response, id: &str, span: &tracing::Span, started: Instant) {
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let status = response.status();
    let _entered = span.enter();
    let elapsed_ms = started.elapsed().as_millis() as u64;
    if status.is_server_error() {
        tracing::warn!(status = status.as_u16(), elapsed_ms, "request failed");
    } else {
        tracing::debug!(status = status.as_u16(), elapsed_ms, "request served");
    }
}

/// Route-level metrics, labelled by the route template (bounded), not the raw path.
pub async fn route_metrics(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// An upstream call carrying the request id (and nothing else from the HTTP request).
pub fn grpc_request<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = current_request_id().parse() {
        request.metadata_mut().insert(REQUEST_ID_HEADER, value);
    }
    if let Some((user_id, admin)) = USER.try_with(|user| *user).ok().flatten() {
        request.metadata_mut().insert(USER_ID_METADATA, user_id.into());
        if admin {
            request.metadata_mut().insert(USER_ADMIN_METADATA, tonic::metadata::MetadataValue::from_static("true"));
        }
    }
    request
}

/// An upstream call that also carries the caller's Idempotency-Key.
pub fn idempotent_grpc_request<T>(message: T, key: Option<&str>) -> tonic::Request<T> {
    let mut request = grpc_request(message);
    if let Some(value) = key.and_then(|k| k.parse().ok()) {
        request.metadata_mut().insert(kit::idempotency::KEY_METADATA, value);
    }
    request
}

/// Whether an upstream answer is the replay of an earlier one with the same key.
pub fn is_replay(metadata: &tonic::metadata::MetadataMap) -> bool {
    metadata.get(kit::idempotency::REPLAYED_METADATA).is_some_and(|v| v == "true")
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_sane_ids_are_echoed() {
        assert!(super::acceptable("abc-123"));
        assert!(!super::acceptable(""));
        assert!(!super::acceptable("has space"));
        assert!(!super::acceptable(&"x".repeat(129)));
    }
}
