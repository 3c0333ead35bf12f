//! Scenarios: each sets up its data, drives it with [`crate::driver::run_loop`] and
//! returns a [`crate::report::Report`] with the checks it could verify afterwards.

pub mod catalog;
pub mod checkout;
pub mod coupon;
pub mod inventory;
pub mod points;
pub mod products;
mod rest;
pub mod tokens;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kit::grpc::{ClientSettings, MeshChannel};
use kit::{ErrorCode, ServiceError};
use sea_orm::{Database, DatabaseConnection};

pub use self::rest::{Caller, Reply, RestPool, problem_code, status_of, transport_error, transport_kind};
pub use self::tokens::Credentials;
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
    /// REST only: how many loopback source addresses the connections come from, at most
    /// ([`crate::net::source_addresses`]).
    pub source_addresses: usize,
    /// REST only: the tokens to send, `None` for a gateway with authentication off.
    pub credentials: Option<Arc<Credentials>>,
    /// REST only: the gRPC address of the service behind the gateway, when loadgen knows it,
    /// for setup that has no REST route (the catalog's bulk load).
    pub backend: Option<String>,
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
    fn spread_covers_every_bucket() {
        let mut seen = [0u32; 100];
        for seq in 0..10_000 {
            seen[(spread(seq) % 100) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
    }
}
