//! The Redis connection of a service. Redis is a gate, a cache or a lock hint here, never
//! the only record of anything: every key can be rebuilt from MySQL (ARCHITECTURE.md).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// A multiplexed, self-reconnecting connection with bounded connect and response times,
/// so a Redis outage surfaces as a quick error instead of a hung request.
pub async fn connect(url: &str) -> redis::RedisResult<ConnectionManager> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_with_config(client, config).await
}
