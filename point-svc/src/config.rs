//! Settings of point-svc: the shared [`ServiceSettings`] plus its own, under `POINT_`.

use std::time::Duration;

use kit::config::{self, ConfigError, ServiceSettings};
use serde::{Deserialize, Serialize};

pub const ENV_PREFIX: &str = "POINT_";
pub const DEFAULT_GRPC_PORT: u16 = 50053;
pub const DEFAULT_PAY_BATCH_MAX: usize = 64;
pub const DEFAULT_PAY_LANES: usize = 4;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Extras {
    /// How long Idempotency-Keys are kept (API.md: at least 24 hours).
    idempotency_retention_secs: u64,
    /// How often expired keys are purged.
    idempotency_purge_every_secs: u64,
    /// Most saga payments decided in one transaction; 0 = one transaction each.
    pay_batch_max: usize,
    /// Payment batches committing at once (users are spread over them).
    pay_lanes: usize,
}

#[derive(Clone, Debug)]
pub struct PointConfig {
    pub service: ServiceSettings,
    pub idempotency_retention: Duration,
    pub idempotency_purge_every: Duration,
    pub pay_batch_max: usize,
    pub pay_lanes: usize,
}

impl PointConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let service = config::load(ENV_PREFIX, ServiceSettings::defaults("point", DEFAULT_GRPC_PORT))?;
        let extras: Extras = config::load(
            ENV_PREFIX,
            Extras {
                idempotency_retention_secs: 24 * 3600,
                idempotency_purge_every_secs: 600,
                pay_batch_max: DEFAULT_PAY_BATCH_MAX,
                pay_lanes: DEFAULT_PAY_LANES,
            },
        )?;
        Ok(Self {
            service,
            idempotency_retention: Duration::from_secs(extras.idempotency_retention_secs),
            idempotency_purge_every: Duration::from_secs(extras.idempotency_purge_every_secs.max(1)),
            pay_batch_max: extras.pay_batch_max,
            pay_lanes: extras.pay_lanes.max(1),
        })
    }
}
