//! The REST surface: one module per resource of API.md, plus the operational routes.

pub mod coupons;
pub mod ops;
pub mod orders;
pub mod points;
pub mod products;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::http::{HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use kit::ErrorCode;

use crate::problem::Problem;
use crate::upstream::Upstreams;

#[derive(Clone)]
pub struct AppState {
    /// Shared, not cloned per request: the clients inside are cloned only at the call.
    pub upstreams: Arc<Upstreams>,
    /// Turned off when shutdown starts, so `/readyz` sends traffic elsewhere while in-flight
    /// requests finish.
    pub accepting: Arc<AtomicBool>,
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-11-21T10:00:00.123Z`.
pub fn timestamp(ts: Option<&mesh_proto::Timestamp>) -> String {
    ts.and_then(kit::time::from_proto)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

pub fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("digits and quotes are a valid header")
}

pub async fn not_found(uri: Uri) -> Response {
    Problem::new(ErrorCode::NotFound, format!("no route for {}", uri.path())).into_response()
}

pub async fn method_not_allowed(method: Method) -> Response {
    Problem::new(ErrorCode::MethodNotAllowed, format!("method {method} is not allowed here")).into_response()
}
