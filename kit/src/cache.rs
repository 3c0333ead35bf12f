//! The Redis connection of a service. Redis is a gate, a cache or a lock hint here, never
//! the only record of anything: every key can be rebuilt from MySQL (ARCHITECTURE.md).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// A multiplexed, self-reconnecting connection with bounded connect and response times,
/// so a Redis outage surfaces as an error instead of a hung request. The response bound is
/// generous on purpose: thousands of requests share one connection, and on a saturated
/// machine a healthy Redis can take more than a second to work through that queue.
pub async fn connect(url: &str) -> redis::RedisResult<ConnectionManager> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(5)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_with_config(client, config).await
}

/// Deletes every key that starts with `prefix` (SCAN, never KEYS, so Redis stays responsive).
pub async fn delete_prefix(url: &str, prefix: &str) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let pattern = format!("{prefix}*");
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(500)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            redis::cmd("DEL").arg(&keys).query_async::<()>(&mut conn).await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// Counts a Redis command that failed (`redis_errors_total{operation}`); the caller logs it.
pub fn count_error(operation: &'static str) {
    metrics::counter!("redis_errors_total", "operation" => operation).increment(1);
}
