//! Settings of coupon-svc: the shared [`ServiceSettings`] plus its own, under `COUPON_`.

use std::time::Duration;

use kit::config::{self, ConfigError, ServiceSettings};
use serde::{Deserialize, Serialize};

pub const ENV_PREFIX: &str = "COUPON_";
pub const DEFAULT_GRPC_PORT: u16 = 50052;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Extras {
    /// Most issues of one coupon written in one transaction.
    issue_batch_max: usize,
    /// How often admissions that never reached MySQL are looked for.
    reconcile_every_secs: u64,
}

#[derive(Clone, Debug)]
pub struct CouponConfig {
    pub service: ServiceSettings,
    pub issue_batch_max: usize,
    pub reconcile_every: Duration,
}

impl CouponConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let service = config::load(ENV_PREFIX, ServiceSettings::defaults("coupon", DEFAULT_GRPC_PORT))?;
        let extras: Extras = config::load(ENV_PREFIX, Extras { issue_batch_max: 512, reconcile_every_secs: 15 })?;
        Ok(Self {
            service,
            issue_batch_max: extras.issue_batch_max,
            reconcile_every: Duration::from_secs(extras.reconcile_every_secs.max(1)),
        })
    }
}
