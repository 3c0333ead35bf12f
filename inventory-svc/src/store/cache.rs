//! Read-through Redis cache of single products, never the record (MySQL is).
//!
//! Entries are `"<version>|<json>"`. Every write path stores a tombstone `"<version>|"`
//! carrying the row's new version after it commits, and a put never replaces an entry of
//! a newer version (one Lua step). So a reader that loaded the row before a write cannot
//! put its stale copy back after the write invalidated it: the classic delete-then-stale-
//! refill race is closed by versions, not by timing. Redis trouble only costs cache hits.

use std::sync::Arc;
use std::time::Duration;

use kit::cache::Redis;
use redis::Script;

use crate::domain::Product;

const PUT_IF_NEWER: &str = r"
local cur = redis.call('GET', KEYS[1])
local v = tonumber(ARGV[1])
if cur then
  local sep = string.find(cur, '|', 1, true)
  local cv = tonumber(string.sub(cur, 1, sep - 1))
  if cv > v then return 0 end
  if cv == v and sep < #cur then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'PX', ARGV[3])
return 1
";

#[derive(Clone)]
pub struct ProductCache {
    conn: Redis,
    key_prefix: String,
    ttl: Duration,
    put_if_newer: Arc<Script>,
}

impl ProductCache {
    pub fn new(conn: Redis, key_prefix: &str, ttl: Duration) -> Self {
        Self {
            conn,
            key_prefix: format!("{key_prefix}inventory:product:"),
            ttl,
            put_if_newer: Arc::new(Script::new(PUT_IF_NEWER)),
        }
    }

    fn key(&self, id: i64) -> String {
        format!("{}{id}", self.key_prefix)
    }

    /// The cached product, or `None` on a miss, a tombstone, or any Redis trouble.
    pub async fn get(&self, id: i64) -> Option<Product> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = match redis::cmd("GET").arg(self.key(id)).query_async(&mut conn).await {
            Ok(raw) => raw,
            Err(err) => {
                kit::cache::count_error("product_cache_read");
                tracing::warn!(error = %err, "product cache read failed; reading MySQL");
                return None;
            }
        };
        let (_, json) = raw?.split_once('|').map(|(v, j)| (v.to_owned(), j.to_owned()))?;
        if json.is_empty() {
            return None;
        }
        serde_json::from_str(&json).ok()
    }

    pub async fn put(&self, product: &Product) {
        match serde_json::to_string(product) {
            Ok(json) => self.put_raw(product.id, product.version, &json).await,
            Err(err) => tracing::warn!(error = %err, "product cache encode failed"),
        }
    }

    /// Marks `id` as changed at `version`: older copies can no longer be cached.
    pub async fn invalidate(&self, id: i64, version: i64) {
        self.put_raw(id, version, "").await;
    }

    async fn put_raw(&self, id: i64, version: i64, json: &str) {
        let mut conn = self.conn.clone();
        let ttl_ms = self.ttl.as_millis() as u64;
        let result: redis::RedisResult<i64> =
            self.put_if_newer.key(self.key(id)).arg(version).arg(json).arg(ttl_ms).invoke_async(&mut conn).await;
        if let Err(err) = result {
            kit::cache::count_error("product_cache_write");
            tracing::warn!(error = %err, product_id = id, "product cache write failed; entry expires by TTL");
        }
    }
}
