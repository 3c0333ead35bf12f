//! Scenarios: each sets up its data, drives it with [`crate::driver::run_loop`] and
//! returns a [`crate::report::Report`] with the checks it could verify afterwards.

pub mod checkout;
pub mod coupon;
pub mod inventory;
pub mod points;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kit::grpc::{ClientSettings, MeshChannel};
use kit::{ErrorCode, ServiceError};
use sea_orm::{Database, DatabaseConnection};

use crate::driver::Outcome;

/// Where the service is, and how to reach it.
#[derive(Clone, Debug)]
pub struct Target {
    pub url: String,
    pub channels: usize,
    pub request_timeout: Duration,
    /// The service's own MySQL schema, when loadgen knows it (it spawned the service, or
    /// `--verify-schema`): then the checks also read the rows themselves, not only the API.
    pub ledger: Option<Ledger>,
    /// The mock data platform's URL, when loadgen serves it: then a checkout also checks
    /// what it received (`GET /received`).
    pub data_platform: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Ledger {
    pub mysql_url: String,
    pub schema: String,
}

impl Ledger {
    /// A connection to the service's schema (loopback only), for reading its rows.
    pub async fn connect(&self) -> anyhow::Result<DatabaseConnection> {
        crate::net::ensure_loopback("mysql url", &self.mysql_url)?;
        let url = format!("{}/{}", self.mysql_url.trim_end_matches('/'), self.schema);
        Database::connect(url).await.context("cannot open the service's schema")
    }
}

/// A few HTTP/2 connections shared round-robin by all client tasks: 1,000 buyers behind
/// a handful of connections is how a gateway's upstream traffic looks, not 1,000 sockets.
#[derive(Clone)]
pub struct ChannelPool {
    channels: Vec<MeshChannel>,
}

impl ChannelPool {
    pub fn new(target: &str, channels: usize, request_timeout: Duration) -> anyhow::Result<Self> {
        crate::net::ensure_loopback("target", target)?;
        let settings =
            ClientSettings { connect_timeout: Duration::from_secs(2), request_timeout, ..ClientSettings::default() };
        // One `channel` call per slot: each is its own lazily connected HTTP/2 connection.
        let channels = (0..channels.max(1))
            .map(|_| kit::grpc::channel(target, &settings).with_context(|| format!("bad target {target:?}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self { channels })
    }

    pub fn channel(&self, client: usize) -> MeshChannel {
        self.channels[client % self.channels.len()].clone()
    }

    pub fn len(&self) -> usize {
        self.channels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }
}

/// Keep-alive HTTP/1.1 connections to the gateway, one per client task, as a crowd of
/// browsers would hold them (plain http: loopback only).
#[derive(Clone)]
pub struct RestPool {
    client: reqwest::Client,
    base: Arc<str>,
    size: usize,
}

/// An HTTP answer with the header that says when to ask again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: reqwest::StatusCode,
    /// `Retry-After`, in whole seconds (the only form the gateway sends).
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

impl RestPool {
    pub fn new(target: &str, clients: usize, request_timeout: Duration) -> anyhow::Result<Self> {
        Self::with_idle(target, clients, clients, request_timeout)
    }

    /// [`Self::new`] warming up `clients` connections but keeping up to `idle` open between
    /// requests: an open loop may have more requests in flight than it has clients, and each
    /// needs a connection of its own, which should not be closed and reopened every time.
    pub fn with_idle(target: &str, clients: usize, idle: usize, request_timeout: Duration) -> anyhow::Result<Self> {
        crate::net::ensure_loopback("target", target)?;
        let size = clients.max(1);
        let client = reqwest::Client::builder()
            .http1_only()
            .pool_max_idle_per_host(idle.max(size))
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(2))
            .timeout(request_timeout)
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self { client, base: target.trim_end_matches('/').into(), size })
    }

    /// Opens every connection before the clock starts (`GET /healthz` on each, all at
    /// once), so no measured request pays for a TCP handshake.
    pub async fn warm_up(&self) -> anyhow::Result<()> {
        let calls = (0..self.size).map(|_| async {
            let resp = self.client.get(format!("{}/healthz", self.base)).send().await?;
            resp.error_for_status()?.bytes().await
        });
        futures::future::try_join_all(calls).await.with_context(|| format!("{}/healthz failed", self.base))?;
        Ok(())
    }

    /// `POST <target><path>` with a JSON body; the status and the whole body.
    pub async fn post(&self, path: &str, json: String) -> Result<(reqwest::StatusCode, Vec<u8>), reqwest::Error> {
        self.post_keyed(path, None, json).await
    }

    /// [`Self::post`] with an `Idempotency-Key` header, when given.
    pub async fn post_keyed(
        &self,
        path: &str,
        idempotency_key: Option<&str>,
        json: String,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), reqwest::Error> {
        let reply = self.send_keyed(path, idempotency_key, json).await?;
        Ok((reply.status, reply.body))
    }

    /// [`Self::post_keyed`], with the answer's `Retry-After`.
    pub async fn send_keyed(
        &self,
        path: &str,
        idempotency_key: Option<&str>,
        json: String,
    ) -> Result<Reply, reqwest::Error> {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(json);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let resp = request.send().await?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Ok(Reply { status, retry_after, body: resp.bytes().await?.into() })
    }

    /// `GET <target><path>`; the status and the whole body.
    pub async fn get(&self, path: &str) -> Result<(reqwest::StatusCode, Vec<u8>), reqwest::Error> {
        let resp = self.client.get(format!("{}{path}", self.base)).send().await?;
        let status = resp.status();
        Ok((status, resp.bytes().await?.into()))
    }

    pub fn len(&self) -> usize {
        self.size
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }
}

/// What a failed HTTP exchange is counted as.
pub fn transport_error(err: &reqwest::Error) -> Outcome {
    let kind = if err.is_timeout() {
        "Timeout"
    } else if err.is_connect() {
        "Connect"
    } else if err.is_body() || err.is_decode() {
        "Body"
    } else {
        "Request"
    };
    Outcome::Error(kind.to_owned())
}

/// The `code` of a problem+json answer (API.md, "Error codes").
pub fn problem_code(body: &[u8]) -> Option<String> {
    let doc: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(doc.get("code")?.as_str()?.to_owned())
}

/// The first of a range of user ids no earlier run has used: random, above any demo id,
/// and (with up to a million users after it) below 2^53, so JSON clients read them exactly.
pub fn fresh_users() -> i64 {
    let random = uuid::Uuid::new_v4().as_u64_pair().0 % (1 << 40);
    1_000_000_000 + i64::try_from(random).unwrap_or(0)
}

/// Maps a failed call to its outcome: the listed business codes are expected rejections,
/// anything else is an error labelled by its gRPC code.
pub fn classify(status: &tonic::Status, expected: &[(ErrorCode, &'static str)]) -> Outcome {
    let code = ServiceError::from_status(status).code;
    match expected.iter().find(|(c, _)| *c == code) {
        Some(&(_, label)) => Outcome::Rejected(label),
        None => Outcome::Error(format!("{:?}", status.code())),
    }
}

/// A cheap, well-mixed hash of `seq` (splitmix64), for spreading reads without a RNG.
pub fn spread(seq: u64) -> u64 {
    let mut z = seq.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn business_codes_are_rejections_and_the_rest_errors() {
        let sold_out: tonic::Status = ServiceError::new(ErrorCode::OutOfStock, "gone").into();
        let expected = [(ErrorCode::OutOfStock, "out_of_stock")];
        assert_eq!(classify(&sold_out, &expected), Outcome::Rejected("out_of_stock"));
        assert_eq!(classify(&tonic::Status::unavailable("down"), &expected), Outcome::Error("Unavailable".into()));
    }

    #[test]
    fn problem_codes_are_read_from_problem_json() {
        let body = br#"{"type":"/problems/coupon-sold-out","status":409,"code":"COUPON_SOLD_OUT"}"#;
        assert_eq!(problem_code(body).as_deref(), Some("COUPON_SOLD_OUT"));
        assert_eq!(problem_code(b"<html>bad gateway</html>"), None);
    }

    #[test]
    fn spread_covers_every_bucket() {
        let mut seen = [0u32; 100];
        for seq in 0..10_000 {
            seen[(spread(seq) % 100) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
    }
}
