//! Settings of inventory-svc: the shared [`ServiceSettings`] plus its own, all under
//! the `INVENTORY_` prefix (e.g. `INVENTORY_GRPC_ADDR`, `INVENTORY_CACHE_TTL_MS`).

use std::time::Duration;

use kit::config::{self, ConfigError, ServiceSettings};
use kit::replicas::ReplicaSettings;
use serde::{Deserialize, Serialize};

pub const ENV_PREFIX: &str = "INVENTORY_";
pub const DEFAULT_GRPC_PORT: u16 = 50051;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Extras {
    /// How long a cached product may be served before it is read from MySQL again.
    cache_ttl_ms: u64,
    /// Most single-line reservations of one product decided in one transaction (0 = off).
    hot_batch_max: usize,
    /// Read replicas for listing and search: comma-separated MySQL URLs (no database path).
    mysql_read_url: String,
    /// A replica further behind the primary than this gets no reads.
    read_max_lag_ms: u64,
    /// Longest a read may take on a replica before it runs on the primary instead.
    read_timeout_ms: u64,
    /// How long a cached list page is served: the most a listing's stock may lag (0 = off).
    list_cache_ttl_ms: u64,
    /// How long a name query's ranking (total and first ids of every sort) is kept while no
    /// product is created.
    search_cache_ttl_ms: u64,
}

impl Default for Extras {
    fn default() -> Self {
        Self {
            cache_ttl_ms: 30_000,
            hot_batch_max: 256,
            mysql_read_url: String::new(),
            read_max_lag_ms: 1_000,
            read_timeout_ms: 1_000,
            list_cache_ttl_ms: 1_000,
            search_cache_ttl_ms: 300_000,
        }
    }
}

#[derive(Clone, Debug)]
pub struct InventoryConfig {
    pub service: ServiceSettings,
    pub cache_ttl: Duration,
    pub hot_batch_max: usize,
    /// `urls` empty: every read on the primary.
    pub replicas: ReplicaSettings,
    pub list_cache_ttl: Duration,
    pub search_cache_ttl: Duration,
}

impl InventoryConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let service = config::load(ENV_PREFIX, ServiceSettings::defaults("inventory", DEFAULT_GRPC_PORT))?;
        let extras: Extras = config::load(ENV_PREFIX, Extras::default())?;
        Ok(Self::new(service, extras))
    }

    /// Defaults for everything but the shared settings (tests).
    pub fn with_service(service: ServiceSettings) -> Self {
        Self::new(service, Extras::default())
    }

    fn new(service: ServiceSettings, extras: Extras) -> Self {
        let urls =
            extras.mysql_read_url.split(',').map(str::trim).filter(|u| !u.is_empty()).map(str::to_owned).collect();
        let replicas = ReplicaSettings {
            urls,
            schema: service.database.clone(),
            max_connections: service.db_max_connections,
            max_lag: Duration::from_millis(extras.read_max_lag_ms),
            beat_every: Duration::from_millis((extras.read_max_lag_ms / 4).clamp(50, 1_000)),
            read_timeout: Duration::from_millis(extras.read_timeout_ms.max(1)),
        };
        Self {
            service,
            cache_ttl: Duration::from_millis(extras.cache_ttl_ms),
            hot_batch_max: extras.hot_batch_max,
            replicas,
            list_cache_ttl: Duration::from_millis(extras.list_cache_ttl_ms),
            search_cache_ttl: Duration::from_millis(extras.search_cache_ttl_ms.max(1)),
        }
    }
}
