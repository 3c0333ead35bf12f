//! The one-hop baseline: what a monolith would do for a coupon issue. An axum server inside
//! loadgen, on a free loopback port, whose `POST /v1/coupons/{id}/issue` runs coupon-svc's Lua
//! gate ([`ADMIT`]) straight against Redis over one multiplexed connection and answers 201 or
//! a 409 problem as the gateway does. The `coupon` race drives it unchanged (same RestPool,
//! same checks on the sequences), so between the raw gate (no HTTP at all) and the mesh
//! (HTTP, then gRPC to coupon-svc, Redis and MySQL) it shows what one HTTP hop costs here.
//! Nothing is stored besides the gate; its keys are deleted after the run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kit::ErrorCode;
use kit::cache::Redis;
use redis::Script;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::ADMIT;
use crate::driver::Limits;
use crate::report::Report;
use crate::scenarios::Target;
use crate::scenarios::coupon::{self, Race};

pub const SCENARIO: &str = "raw-onehop-gate";

/// The race, and how its clients connect (as for the gateway).
#[derive(Clone, Copy, Debug)]
pub struct OneHop {
    pub race: Race,
    pub request_timeout: Duration,
    pub source_addresses: usize,
}

/// What the handlers share: the gate's connection, and the coupons created on it.
struct Gate {
    redis: Redis,
    script: Script,
    prefix: String,
    /// Coupon id -> total copies.
    coupons: Mutex<HashMap<i64, i64>>,
    next_id: AtomicI64,
}

impl Gate {
    fn key(&self, coupon: i64) -> String {
        format!("{}loadgen:onehop:gate:{coupon}", self.prefix)
    }
}

/// A problem document as the gateway writes one (RFC 9457, with the mesh's `code`).
fn problem(code: ErrorCode, detail: &str) -> Response {
    let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let kind = format!("/problems/{}", code.as_str().to_lowercase().replace('_', "-"));
    let doc = json!({"type": kind, "title": code.title(), "status": status.as_u16(), "detail": detail, "code": code.as_str()});
    let mut response = (status, Json(doc)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/problem+json"));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(header::RETRY_AFTER, header::HeaderValue::from(1));
    }
    response
}

/// `POST /v1/coupons`: a gate with its sentinel, for `totalQuantity` copies.
async fn create(State(gate): State<Arc<Gate>>, Json(body): Json<Value>) -> Response {
    let Some(total) = body["totalQuantity"].as_i64().filter(|&t| (1..=coupon::MAX_TOTAL).contains(&t)) else {
        return problem(ErrorCode::ValidationFailed, "totalQuantity must be 1..=10000000");
    };
    let id = gate.next_id.fetch_add(1, Ordering::Relaxed);
    let mut redis = gate.redis.clone();
    if let Err(err) = redis::cmd("ZADD").arg(gate.key(id)).arg(0).arg("_").query_async::<i64>(&mut redis).await {
        return problem(ErrorCode::Unavailable, &format!("redis: {err}"));
    }
    gate.coupons.lock().unwrap_or_else(PoisonError::into_inner).insert(id, total);
    (StatusCode::CREATED, Json(json!({"id": id, "totalQuantity": total, "issuedQuantity": 0}))).into_response()
}

/// `POST /v1/coupons/{id}/issue`: one EVALSHA, answered as the gateway answers.
async fn issue(State(gate): State<Arc<Gate>>, Path(id): Path<i64>, Json(body): Json<Value>) -> Response {
    let Some(user) = body["userId"].as_i64().filter(|&u| u >= 1) else {
        return problem(ErrorCode::ValidationFailed, "userId must be a positive integer");
    };
    let total = gate.coupons.lock().unwrap_or_else(PoisonError::into_inner).get(&id).copied();
    let Some(total) = total else {
        return problem(ErrorCode::NotFound, "no such coupon");
    };
    let mut redis = gate.redis.clone();
    match gate.script.key(gate.key(id)).arg(user).arg(total).invoke_async::<i64>(&mut redis).await {
        // No row is stored, so the position doubles as the user coupon's id.
        Ok(sequence) if sequence >= 1 => {
            let issued = json!({"userCouponId": sequence, "couponId": id, "userId": user, "sequence": sequence,
                "status": "AVAILABLE"});
            (StatusCode::CREATED, Json(issued)).into_response()
        }
        Ok(-1) => problem(ErrorCode::CouponAlreadyIssued, "this user already has this coupon"),
        Ok(-2) => problem(ErrorCode::CouponSoldOut, "every copy has been issued"),
        Ok(other) => problem(ErrorCode::Internal, &format!("the gate answered {other}")),
        Err(err) => problem(ErrorCode::Unavailable, &format!("redis: {err}")),
    }
}

/// The server, for as long as it is held.
struct Server {
    url: String,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(gate: Arc<Gate>) -> anyhow::Result<Server> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/coupons", post(create))
        .route("/v1/coupons/{id}/issue", post(issue))
        .with_state(gate);
    let listener = TcpListener::bind("127.0.0.1:0").await.context("cannot bind the one-hop server")?;
    let url = format!("http://{}", listener.local_addr()?);
    let task = tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            eprintln!("loadgen: the one-hop server stopped: {err}");
        }
    });
    Ok(Server { url, task })
}

/// Serves the one-hop gate, runs the coupon race against it, stops it and deletes its keys.
/// Three reports (race, sold-out phase, both), as for `coupon`.
pub async fn onehop_gate(redis_url: &str, cfg: &OneHop, limits: Limits) -> anyhow::Result<Vec<Report>> {
    crate::net::ensure_loopback("redis url", redis_url)?;
    cfg.race.validate()?;
    // Both ends of every connection are loadgen's own descriptors.
    let connections = cfg.race.pace.idle_connections(cfg.race.clients);
    crate::fds::ensure_room_for(2 * connections, &format!("{} clients, both ends in loadgen", cfg.race.clients))?;
    let redis = kit::cache::connect(redis_url)
        .await
        .with_context(|| format!("cannot reach Redis at {}", kit::db::redact(redis_url)))?;
    let script = Script::new(ADMIT);
    // Loaded before the clock starts, so every measured call is one EVALSHA.
    script.load_async(&mut redis.clone()).await.context("SCRIPT LOAD failed")?;
    let prefix = kit::testing::unique_prefix();
    let gate = Gate { redis, script, prefix: prefix.clone(), coupons: Mutex::default(), next_id: AtomicI64::new(1) };
    let server = serve(Arc::new(gate)).await?;
    let target = Target {
        url: server.url.clone(),
        channels: 1,
        request_timeout: cfg.request_timeout,
        ledger: None,
        data_platform: None,
        source_addresses: cfg.source_addresses,
        // A monolith's gate, without the gateway's token checks.
        credentials: None,
        backend: None,
    };
    let raced = coupon::race(SCENARIO, &target, &cfg.race, limits).await;
    drop(server);
    let deleted = kit::cache::delete_prefix(redis_url, &prefix).await;
    let mut reports = raced?;
    deleted.context("cannot delete the one-hop gate's keys")?;
    for report in &mut reports {
        report.param("server", "axum in loadgen (its CPU is loadgen's), one multiplexed Redis connection");
        report.param("keys", format!("{prefix}loadgen:onehop:gate:* (deleted)"));
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refusal_is_a_problem_document_as_the_gateway_sends_it() {
        let sold_out = problem(ErrorCode::CouponSoldOut, "gone");
        assert_eq!(sold_out.status(), StatusCode::CONFLICT);
        assert_eq!(sold_out.headers()[header::CONTENT_TYPE], "application/problem+json");
        let body = axum::body::to_bytes(sold_out.into_body(), 4_096).await.unwrap();
        assert_eq!(crate::scenarios::problem_code(&body).as_deref(), Some("COUPON_SOLD_OUT"));
        let down = problem(ErrorCode::Unavailable, "redis");
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(down.headers()[header::RETRY_AFTER], "1");
    }
}
