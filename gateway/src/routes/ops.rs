//! Operational routes: liveness, readiness, metrics.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

use super::AppState;

/// The process is up.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Every configured upstream answers its gRPC health check with SERVING.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let accepting = state.accepting.load(Ordering::Relaxed);
    let checks = state.upstreams.health_checks().iter().map(|(name, client)| {
        let mut client = client.clone();
        async move {
            let call = client.check(HealthCheckRequest { service: String::new() });
            let serving = matches!(
                tokio::time::timeout(Duration::from_secs(2), call).await,
                Ok(Ok(resp)) if resp.get_ref().status == ServingStatus::Serving as i32
            );
            (*name, serving)
        }
    });
    let results = futures::future::join_all(checks).await;
    let ready = accepting && results.iter().all(|(_, serving)| *serving);
    let upstreams: serde_json::Map<String, serde_json::Value> = results
        .into_iter()
        .map(|(name, ok)| (name.to_owned(), json!(if ok { "serving" } else { "not_serving" })))
        .collect();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body =
        json!({"status": if ready { "ready" } else { "not_ready" }, "accepting": accepting, "upstreams": upstreams});
    (status, Json(body)).into_response()
}

/// Prometheus text exposition of this process's metrics.
pub async fn metrics() -> Response {
    let body = kit::telemetry::render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
