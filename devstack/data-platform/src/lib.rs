//! The mock external data platform: a real HTTP server standing in for the one external
//! system, with a control endpoint to make it fail or slow (API.md, "Mock data platform").

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Mutex;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    #[default]
    None,
    Always,
    Next,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Control {
    pub fail_mode: FailMode,
    /// With `next`: how many calls fail before it succeeds again.
    #[serde(default = "one")]
    pub count: u64,
    #[serde(default)]
    pub latency_ms: u64,
}

fn one() -> u64 {
    1
}

#[derive(Default)]
struct Platform {
    control: Control,
    received: Vec<Value>,
    calls: u64,
}

type Shared = Arc<Mutex<Platform>>;

pub fn router() -> Router {
    Router::new()
        .route("/orders", post(receive_order))
        .route("/received", get(received))
        .route("/_control", post(control))
        .with_state(Shared::default())
}

/// Serves the mock on `listener` until the process ends.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router()).await
}

async fn receive_order(State(platform): State<Shared>, body: axum::body::Bytes) -> Response {
    let latency = {
        let mut p = platform.lock().await;
        p.calls += 1;
        p.control.latency_ms
    };
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let Ok(order) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "body must be JSON"}))).into_response();
    };
    let mut p = platform.lock().await;
    let fail = match p.control.fail_mode {
        FailMode::None => false,
        FailMode::Always => true,
        FailMode::Next => {
            p.control.count = p.control.count.saturating_sub(1);
            if p.control.count == 0 {
                p.control.fail_mode = FailMode::None;
            }
            true
        }
    };
    if fail {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": "data platform unavailable (mock)"})))
            .into_response();
    }
    p.received.push(order);
    (StatusCode::OK, Json(json!({"accepted": true, "received": p.received.len()}))).into_response()
}

async fn received(State(platform): State<Shared>) -> Json<Value> {
    let p = platform.lock().await;
    Json(json!({"items": p.received, "count": p.received.len(), "calls": p.calls}))
}

async fn control(State(platform): State<Shared>, Json(control): Json<Control>) -> Json<Control> {
    let mut p = platform.lock().await;
    p.control = control;
    Json(p.control.clone())
}
