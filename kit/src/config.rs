//! Settings from environment variables with a per-service prefix (`INVENTORY_GRPC_ADDR`, ...).
//!
//! A bad value is a startup error naming the variable; [`load_or_exit`] prints it and exits
//! with 64 (`EX_USAGE`) before the process binds a port or opens a connection, so a
//! misconfigured pod fails fast and visibly instead of half-starting.

use std::net::SocketAddr;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Serialized};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Exit code for a configuration error (`EX_USAGE` from sysexits.h).
pub const EXIT_CONFIG: i32 = 64;

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {}", .problems.join("; "))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

/// Reads `T` from the variables that start with `prefix` (e.g. `"INVENTORY_"`), on top of
/// `defaults`. Keys are the field names upper-cased: field `grpc_addr` is `<prefix>GRPC_ADDR`.
pub fn load<T, D>(prefix: &str, defaults: D) -> Result<T, ConfigError>
where
    T: DeserializeOwned,
    D: Serialize,
{
    Figment::from(Serialized::defaults(defaults)).merge(Env::prefixed(prefix)).extract().map_err(|err| ConfigError {
        problems: err
            .into_iter()
            .map(|e| {
                let var = format!("{prefix}{}", e.path.join("_").to_uppercase());
                format!("{var}: {}", e.kind)
            })
            .collect(),
    })
}

/// The loaded configuration, or the problem on stderr and exit code [`EXIT_CONFIG`],
/// before anything binds or connects.
pub fn or_exit<T>(loaded: Result<T, ConfigError>) -> T {
    match loaded {
        Ok(config) => config,
        Err(err) => {
            eprintln!("{err}");
            std::process::exit(EXIT_CONFIG);
        }
    }
}

/// The settings every service has, under its own prefix.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServiceSettings {
    /// Where the gRPC server listens.
    pub grpc_addr: SocketAddr,
    /// Where Prometheus scrapes `/metrics`; unset = no metrics listener.
    pub metrics_addr: Option<SocketAddr>,
    /// MySQL server, without a database path.
    pub mysql_url: String,
    /// The schema this service owns (created at start if missing).
    pub database: String,
    pub db_max_connections: u32,
    pub redis_url: String,
    /// `host:port,host:port,...`: seed nodes of a Redis Cluster for the gate and the caches,
    /// instead of `redis_url` (the same as `redis_url = redis+cluster://host:port,...`).
    pub redis_cluster_nodes: Option<String>,
    /// Prepended to every Redis key, so several meshes (or tests) can share one Redis.
    pub redis_key_prefix: String,
    /// After SIGTERM, how long health reports NOT_SERVING while the listener still accepts,
    /// so load balancers stop routing here before connections are refused.
    pub shutdown_drain_ms: u64,
    /// How long in-flight calls may take to finish after SIGTERM.
    pub shutdown_grace_secs: u64,
    /// Longest a single call may run on the server, whatever deadline the client sent.
    pub request_timeout_ms: u64,
    /// HTTP/2 streams (calls) one client connection may have open at once; a client past it
    /// queues the call until a stream frees, it is never refused. 1..=4096 (see
    /// `kit::grpc::server` for why the ceiling).
    pub grpc_max_concurrent_streams: crate::grpc::StreamLimit,
    /// `json` (default) or `pretty`.
    pub log_format: String,
    /// How often the invariant watcher checks this service's own data (`kit::invariants`).
    pub invariant_check_every_secs: u64,
}

impl ServiceSettings {
    /// Defaults for a service named `name` (its schema) listening on `grpc_port`.
    pub fn defaults(name: &str, grpc_port: u16) -> Self {
        Self {
            grpc_addr: SocketAddr::from(([0, 0, 0, 0], grpc_port)),
            metrics_addr: Some(SocketAddr::from(([0, 0, 0, 0], grpc_port + 1000))),
            mysql_url: "mysql://root@127.0.0.1:3306".into(),
            database: name.into(),
            db_max_connections: 32,
            redis_url: "redis://127.0.0.1:6379".into(),
            redis_cluster_nodes: None,
            redis_key_prefix: String::new(),
            shutdown_drain_ms: 1_000,
            shutdown_grace_secs: 25,
            request_timeout_ms: 10_000,
            grpc_max_concurrent_streams: crate::grpc::StreamLimit::DEFAULT,
            log_format: "json".into(),
            invariant_check_every_secs: 30,
        }
    }

    pub fn shutdown_timing(&self) -> crate::grpc::ShutdownTiming {
        crate::grpc::ShutdownTiming {
            drain: Duration::from_millis(self.shutdown_drain_ms),
            grace: Duration::from_secs(self.shutdown_grace_secs),
        }
    }

    pub fn invariant_check_every(&self) -> Duration {
        Duration::from_secs(self.invariant_check_every_secs.max(1))
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The Redis (or Redis Cluster) URL for the gate and the caches.
    pub fn redis_target(&self) -> String {
        match self.redis_cluster_nodes.as_deref().map(str::trim).filter(|nodes| !nodes.is_empty()) {
            Some(nodes) => format!("{}{nodes}", crate::cache::CLUSTER_SCHEME),
            None => self.redis_url.clone(),
        }
    }
}

#[cfg(test)]
// figment::Jail fixes the closure's error type; it is not ours to shrink.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_value_names_the_variable() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("KITTEST_GRPC_ADDR", "not-an-address");
            let err = load::<ServiceSettings, _>("KITTEST_", ServiceSettings::defaults("t", 1)).unwrap_err();
            assert!(err.to_string().contains("KITTEST_GRPC_ADDR"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn env_overrides_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("KITTEST_DATABASE", "shop_inventory");
            jail.set_env("KITTEST_DB_MAX_CONNECTIONS", "4");
            let cfg: ServiceSettings = load("KITTEST_", ServiceSettings::defaults("inventory", 50051)).unwrap();
            assert_eq!(cfg.database, "shop_inventory");
            assert_eq!(cfg.db_max_connections, 4);
            assert_eq!(cfg.grpc_addr.port(), 50051);
            Ok(())
        });
    }
}
