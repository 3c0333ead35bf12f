//! Settings of the gateway, under the `GATEWAY_` prefix.

use std::net::SocketAddr;
use std::time::Duration;

use kit::config::{self, ConfigError};
use serde::{Deserialize, Serialize};

pub const ENV_PREFIX: &str = "GATEWAY_";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GatewayConfig {
    pub http_addr: SocketAddr,
    /// gRPC address(es) of each service; comma-separated replicas are balanced.
    /// A service left unset is not routed (its routes answer 503).
    pub inventory_url: Option<String>,
    pub coupon_url: Option<String>,
    pub point_url: Option<String>,
    pub payment_url: Option<String>,
    /// Deadline of one upstream call.
    pub upstream_timeout_ms: u64,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    pub shutdown_grace_secs: u64,
    pub log_format: String,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            inventory_url: Some("http://127.0.0.1:50051".into()),
            coupon_url: None,
            point_url: None,
            payment_url: None,
            upstream_timeout_ms: 5_000,
            max_body_bytes: 64 * 1024,
            shutdown_grace_secs: 25,
            log_format: "json".into(),
        }
    }
}

impl GatewayConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        config::load(ENV_PREFIX, GatewayConfig::default())
    }

    pub fn upstream_timeout(&self) -> Duration {
        Duration::from_millis(self.upstream_timeout_ms)
    }
}
