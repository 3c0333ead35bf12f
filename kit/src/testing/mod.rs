//! Isolation helpers for integration tests: every test gets its own schema names and Redis
//! key prefix, and removes them afterwards, so tests run in parallel and twice in a row.
//!
//! Also the servers of our own that tests and devstack start from the installed binaries
//! ([`LocalServer`], [`shared`], [`MariadbNode`], [`RedisNode`]): one mechanism in
//! [`programs`] and [`server`], so devstack's private servers and the tests' start alike.

use std::sync::OnceLock;

use rand::Rng;

mod local_server;
mod mariadb;
pub mod probe;
pub mod programs;
pub mod server;
pub mod shared;

pub use local_server::LocalServer;
pub use mariadb::MariadbNode;
pub use server::{ServerError, ServerKind};

/// MySQL server the tests use: `TEST_MYSQL_URL`, else the local MariaDB when anything
/// accepts at `mysql://root@127.0.0.1:3306`, else the machine's shared test server of our
/// own ([`shared`]). Decided once per process.
pub fn mysql_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| shared::resolve(ServerKind::Mysql)).clone()
}

/// Redis the tests use: `TEST_REDIS_URL`, else the local Redis when anything accepts at
/// `redis://127.0.0.1:6379`, else the machine's shared test server of our own ([`shared`]).
pub fn redis_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| shared::resolve(ServerKind::Redis)).clone()
}

/// A fresh prefix like `t3f9a0c1d_`, valid in schema names and Redis keys.
pub fn unique_prefix() -> String {
    format!("t{:08x}_", rand::rng().random::<u32>())
}

/// See [`crate::startup::install_crypto_provider`].
pub fn install_crypto_provider() {
    crate::startup::install_crypto_provider();
}

/// Deletes every key under `prefix` (see [`crate::cache::delete_prefix`]).
pub async fn delete_redis_keys(url: &str, prefix: &str) -> redis::RedisResult<()> {
    crate::cache::delete_prefix(url, prefix).await
}

/// Drops `schemas` and the Redis keys under `redis_prefix`, blocking: for `Drop` impls of
/// test fixtures, which run outside any async context guarantee (and on panics too).
pub fn cleanup_blocking(schemas: Vec<String>, redis_prefix: Option<String>) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async {
            for schema in &schemas {
                let _ = crate::db::drop_schema(&mysql_url(), schema).await;
            }
            if let Some(prefix) = redis_prefix {
                let _ = delete_redis_keys(&redis_url(), &prefix).await;
            }
        });
    })
    .join()
    .ok();
}

/// Settings for a service under test: loopback port 0, no metrics listener, the test
/// MySQL and Redis, `schema` and `redis_prefix` of the test's own, no drain delay.
pub fn service_settings(schema: &str, redis_prefix: &str) -> crate::config::ServiceSettings {
    let mut settings = crate::config::ServiceSettings::defaults(schema, 0);
    settings.grpc_addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    settings.metrics_addr = None;
    settings.mysql_url = mysql_url();
    settings.redis_url = redis_url();
    settings.redis_key_prefix = redis_prefix.to_owned();
    settings.db_max_connections = 8;
    settings.shutdown_drain_ms = 0;
    settings
}

/// Waits for two more passes of the watcher behind `findings` (5 s at most: tests check every
/// second), then asserts it checked exactly `invariants` invariants and found every one healthy.
pub async fn assert_every_invariant_holds(findings: &crate::invariants::Findings, invariants: usize) {
    let passes = findings.passes();
    let ran = eventually(std::time::Duration::from_secs(5), || findings.passes() >= passes + 2).await;
    assert!(ran, "the invariant watcher ran two passes");
    let counts = findings.counts();
    assert_eq!(counts.len(), invariants, "{counts:?}");
    assert!(counts.values().all(|&n| n == 0), "{counts:?}");
}

/// Waits up to `within` for `done` to hold, checking every 50 ms; whether it did.
pub async fn eventually(within: std::time::Duration, mut done: impl FnMut() -> bool) -> bool {
    let until = tokio::time::Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if tokio::time::Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A `redis-server` of the test's own on a free port (a Redlock node that dies, a gate whose
/// Redis goes away), killed by [`RedisNode::stop`] or on drop.
pub struct RedisNode {
    child: std::process::Child,
    pub url: String,
}

impl RedisNode {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = programs::redis_command(port)
            .unwrap_or_else(|err| panic!("{err}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server runs");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Self { child, url: format!("redis://127.0.0.1:{port}") }
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisNode {
    fn drop(&mut self) {
        self.stop();
    }
}

mod redis_cluster;
pub use redis_cluster::RedisCluster;
