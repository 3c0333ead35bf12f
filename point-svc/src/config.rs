//! Settings of point-svc: the shared [`ServiceSettings`] plus its own, under `POINT_`.

use std::time::Duration;

use kit::config::{self, ConfigError, ServiceSettings};
use serde::{Deserialize, Serialize};

pub const ENV_PREFIX: &str = "POINT_";
pub const DEFAULT_GRPC_PORT: u16 = 50053;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Extras {
    /// How long Idempotency-Keys are kept (API.md: at least 24 hours).
    idempotency_retention_secs: u64,
    /// How often expired keys are purged.
    idempotency_purge_every_secs: u64,
}

#[derive(Clone, Debug)]
pub struct PointConfig {
    pub service: ServiceSettings,
    pub idempotency_retention: Duration,
    pub idempotency_purge_every: Duration,
}

impl PointConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let service = config::load(ENV_PREFIX, ServiceSettings::defaults("point", DEFAULT_GRPC_PORT))?;
        let extras: Extras = config::load(
            ENV_PREFIX,
            Extras { idempotency_retention_secs: 24 * 3600, idempotency_purge_every_secs: 600 },
        )?;
        Ok(Self {
            service,
            idempotency_retention: Duration::from_secs(extras.idempotency_retention_secs),
            idempotency_purge_every: Duration::from_secs(extras.idempotency_purge_every_secs.max(1)),
        })
    }
}
