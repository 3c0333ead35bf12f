//! Settings of inventory-svc: the shared [`ServiceSettings`] plus its own, all under
//! the `INVENTORY_` prefix (e.g. `INVENTORY_GRPC_ADDR`, `INVENTORY_CACHE_TTL_MS`).

use std::time::Duration;

use kit::config::{self, ConfigError, ServiceSettings};
use serde::{Deserialize, Serialize};

pub const ENV_PREFIX: &str = "INVENTORY_";
pub const DEFAULT_GRPC_PORT: u16 = 50051;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Extras {
    /// How long a cached product may be served before it is read from MySQL again.
    cache_ttl_ms: u64,
    /// Most single-line reservations of one product decided in one transaction (0 = off).
    hot_batch_max: usize,
}

#[derive(Clone, Debug)]
pub struct InventoryConfig {
    pub service: ServiceSettings,
    pub cache_ttl: Duration,
    pub hot_batch_max: usize,
}

impl InventoryConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let service = config::load(ENV_PREFIX, ServiceSettings::defaults("inventory", DEFAULT_GRPC_PORT))?;
        let extras: Extras = config::load(ENV_PREFIX, Extras { cache_ttl_ms: 30_000, hot_batch_max: 256 })?;
        Ok(Self { service, cache_ttl: Duration::from_millis(extras.cache_ttl_ms), hot_batch_max: extras.hot_batch_max })
    }
}
