//! Settings of the gateway, under the `GATEWAY_` prefix.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use kit::config::{self, ConfigError};
use kit::grpc::BreakerSettings;
use serde::{Deserialize, Serialize};

use crate::admission::AdmissionSettings;
use crate::auth::verifier::MAX_LEEWAY_SECS;
use crate::auth::{KeyRing, KeySource, Verifier, VerifierSettings};
use crate::rate_limit::RateLimitSettings;
use crate::serve::ConnectionLimits;

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
    /// A keep-alive connection idle this long is closed (also the limit for sending a
    /// request's headers).
    pub keep_alive_idle_secs: u64,
    /// Largest request head (request line and headers), bytes; at least 8,192.
    pub max_header_bytes: usize,
    /// Most header fields in one request.
    pub max_headers: usize,
    /// Admission control: `/v1` requests worked on at once.
    pub max_in_flight: usize,
    /// Admission control: longest a request waits for a slot before `503 OVERLOADED`.
    pub admission_queue_ms: u64,
    /// Admission control: requests waiting at once; past it, shed without waiting.
    pub max_queued: usize,
    /// Per-caller token bucket: sustained requests per second; 0 turns rate limiting off.
    pub rate_limit_per_sec: u32,
    /// Per-caller token bucket: requests at once after a quiet spell.
    pub rate_limit_burst: u32,
    /// HTTP/2 connections to every upstream address.
    pub upstream_connections: usize,
    /// Circuit breaker: consecutive failures of an upstream that open its circuit; 0 = never.
    pub breaker_failures: u32,
    /// Circuit breaker: how long an open circuit fails calls fast before probing.
    pub breaker_open_ms: u64,
    /// `on`: bearer JWTs verified, per-route authorization (API.md); `off`: anyone may do
    /// anything (demos, load tests).
    pub auth: AuthMode,
    /// The verification key, PEM (Ed25519, P-256 or RSA public key).
    pub jwt_public_key_file: Option<PathBuf>,
    /// Or a JWKS file; tokens pick their key by `kid`. Re-read when it changes.
    pub jwks_file: Option<PathBuf>,
    /// `iss` every token must carry, when set.
    pub jwt_issuer: Option<String>,
    /// An `aud` every token must include, when set.
    pub jwt_audience: Option<String>,
    /// Clock skew tolerated on `exp`/`nbf`/`iat`, 0..=5 seconds.
    pub jwt_leeway_secs: u64,
    /// Verified tokens remembered (by SHA-256, until `exp`); 0 verifies every request.
    pub jwt_cache_capacity: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    On,
    Off,
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
            keep_alive_idle_secs: 60,
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            max_in_flight: 4_096,
            admission_queue_ms: 2_000,
            max_queued: 20_000,
            rate_limit_per_sec: 200,
            rate_limit_burst: 400,
            upstream_connections: 4,
            breaker_failures: 5,
            breaker_open_ms: 2_000,
            // Secure by default: a gateway without a key refuses to start rather than
            // accept everyone (exit 64); `off` is an explicit choice.
            auth: AuthMode::On,
            jwt_public_key_file: None,
            jwks_file: None,
            jwt_issuer: None,
            jwt_audience: None,
            jwt_leeway_secs: 5,
            jwt_cache_capacity: 100_000,
        }
    }
}

impl GatewayConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let config: Self = config::load(ENV_PREFIX, GatewayConfig::default())?;
        config.validate()?;
        Ok(config)
    }

    pub fn upstream_timeout(&self) -> Duration {
        Duration::from_millis(self.upstream_timeout_ms)
    }

    /// The settings that must make sense together, checked before anything binds.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut need = |ok: bool, what: &str| {
            if !ok {
                problems.push(format!("{ENV_PREFIX}{what}"));
            }
        };
        need(self.max_in_flight >= 1, "MAX_IN_FLIGHT: must be at least 1");
        need(self.upstream_connections >= 1, "UPSTREAM_CONNECTIONS: must be at least 1");
        need(self.keep_alive_idle_secs >= 1, "KEEP_ALIVE_IDLE_SECS: must be at least 1");
        need(self.max_headers >= 8, "MAX_HEADERS: must be at least 8");
        need(
            self.rate_limit_per_sec == 0 || self.rate_limit_burst >= 1,
            "RATE_LIMIT_BURST: must be at least 1 when RATE_LIMIT_PER_SEC is set",
        );
        need(self.jwt_leeway_secs <= MAX_LEEWAY_SECS, "JWT_LEEWAY_SECS: at most 5");
        if self.auth == AuthMode::On {
            need(
                self.jwt_public_key_file.is_some() != self.jwks_file.is_some(),
                "JWT_PUBLIC_KEY_FILE or JWKS_FILE: exactly one is required when GATEWAY_AUTH=on",
            );
        }
        if problems.is_empty() { Ok(()) } else { Err(ConfigError { problems }) }
    }

    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            idle_timeout: Duration::from_secs(self.keep_alive_idle_secs),
            max_header_bytes: self.max_header_bytes,
            max_headers: self.max_headers,
        }
    }

    pub fn admission(&self) -> AdmissionSettings {
        AdmissionSettings {
            max_in_flight: self.max_in_flight,
            queue_budget: Duration::from_millis(self.admission_queue_ms),
            max_queued: self.max_queued,
        }
    }

    /// `None` when rate limiting is off.
    pub fn rate_limit(&self) -> Option<RateLimitSettings> {
        Some(RateLimitSettings {
            per_second: NonZeroU32::new(self.rate_limit_per_sec)?,
            burst: NonZeroU32::new(self.rate_limit_burst)?,
        })
    }

    /// The token verifier (`None` when authentication is off), its keys loaded now: a key
    /// that cannot be read or used is a configuration error naming its setting.
    pub fn verifier(&self) -> Result<Option<Verifier>, ConfigError> {
        if self.auth == AuthMode::Off {
            return Ok(None);
        }
        let (source, setting) = match (&self.jwt_public_key_file, &self.jwks_file) {
            (Some(pem), None) => (KeySource::Pem(pem.clone()), "JWT_PUBLIC_KEY_FILE"),
            (None, Some(jwks)) => (KeySource::Jwks(jwks.clone()), "JWKS_FILE"),
            _ => {
                return Err(ConfigError {
                    problems: vec![format!(
                        "{ENV_PREFIX}JWT_PUBLIC_KEY_FILE or {ENV_PREFIX}JWKS_FILE: exactly one is required when GATEWAY_AUTH=on"
                    )],
                });
            }
        };
        let keys = KeyRing::load(source)
            .map_err(|err| ConfigError { problems: vec![format!("{ENV_PREFIX}{setting}: {err}")] })?;
        let settings = VerifierSettings {
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            leeway_secs: self.jwt_leeway_secs,
            cache_capacity: self.jwt_cache_capacity,
        };
        Ok(Some(Verifier::new(keys, settings)))
    }

    pub fn breaker(&self) -> BreakerSettings {
        BreakerSettings {
            failures_to_open: self.breaker_failures,
            open_for: Duration::from_millis(self.breaker_open_ms),
        }
    }
}
