//! Redis cache of catalog pages and of name-query rankings, never the record (MySQL is).
//!
//! Every value carries the catalog generation it was read at (`"<generation>|<payload>"`), and
//! Redis keeps the newest generation the service has seen (raised after each create commits).
//! A value older than that is a miss: a product created is in every listing served after its
//! create answered, with no keys to hunt down. Pages expire after a short TTL, so the stock a
//! listing shows lags by at most that; a name query's ranking (its total and first ids in each
//! sort) depends only on what never changes after a create, so it lives as long as its
//! generation is current (bounded by its own TTL). Without the generation key (Redis
//! restarted or evicted it) nothing cached is trusted. Redis trouble only costs cache hits.

use std::time::Duration;

use kit::cache::Redis;
use redis::Script;

use crate::domain::{Page, Product};

/// Raises the generation, never lowers it.
const RAISE: &str = r"
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
";

#[derive(Clone)]
pub struct ListCache {
    conn: Redis,
    prefix: String,
    page_ttl: Duration,
    ranking_ttl: Duration,
    raise: Script,
}

/// A cached value and the newest generation, read in one round trip.
struct Lookup {
    current: Option<u64>,
    value: Option<(u64, String)>,
}

impl ListCache {
    /// `page_ttl` of zero turns page caching off (rankings are still cached).
    pub fn new(conn: Redis, key_prefix: &str, page_ttl: Duration, ranking_ttl: Duration) -> Self {
        Self {
            conn,
            // One hash tag for every catalog key: a read asks for the generation and a page in
            // one pipeline, which a Redis Cluster serves only within one slot.
            prefix: format!("{key_prefix}inventory:{{catalog}}:"),
            page_ttl,
            ranking_ttl,
            raise: Script::new(RAISE),
        }
    }

    fn generation_key(&self) -> String {
        format!("{}generation", self.prefix)
    }

    /// The cached page if it is current, and the newest generation Redis knows (so a miss
    /// only raises it when the read found a newer one).
    pub async fn page(&self, key: &str) -> (Option<Page<Product>>, Option<u64>) {
        if self.page_ttl.is_zero() {
            return (None, None);
        }
        let Some(lookup) = self.lookup(&format!("{}page:{key}", self.prefix)).await else { return (None, None) };
        let page = Self::current(&lookup).and_then(|json| serde_json::from_str(json).ok());
        (page, lookup.current)
    }

    pub async fn put_page(&self, key: &str, generation: u64, page: &Page<Product>) {
        if self.page_ttl.is_zero() {
            return;
        }
        if let Ok(json) = serde_json::to_string(page) {
            self.put(&format!("{}page:{key}", self.prefix), generation, &json, self.page_ttl).await;
        }
    }

    /// A name query's ranking in one sort at the current generation: its total and first ids.
    pub async fn ranking(&self, sort: &str, filter: &str) -> Option<(u64, Vec<i64>)> {
        let payload = self.fresh(&format!("{}search:{sort}:{filter}", self.prefix)).await?;
        let (total, ids) = payload.split_once('|')?;
        let ids =
            if ids.is_empty() { Vec::new() } else { ids.split(',').map(str::parse).collect::<Result<_, _>>().ok()? };
        Some((total.parse().ok()?, ids))
    }

    /// Stores a name query's ranking in every sort (`lists`: sort name and first ids).
    pub async fn put_rankings(&self, filter: &str, generation: u64, total: u64, lists: &[(&str, &[i64])]) {
        let mut pipe = redis::pipe();
        for (sort, ids) in lists {
            let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
            pipe.cmd("SET")
                .arg(format!("{}search:{sort}:{filter}", self.prefix))
                .arg(format!("{generation}|{total}|{}", ids.join(",")))
                .arg("PX")
                .arg(self.ranking_ttl.as_millis().max(1) as u64)
                .ignore();
        }
        let mut conn = self.conn.clone();
        if let Err(err) = pipe.query_async::<()>(&mut conn).await {
            kit::cache::count_error("catalog_cache_write");
            tracing::warn!(error = %err, "search ranking not cached");
        }
    }

    /// Records that the catalog reached `generation` (after a create committed, or when a
    /// read saw a newer one than Redis holds).
    pub async fn advance(&self, generation: u64) {
        let mut conn = self.conn.clone();
        let raised: redis::RedisResult<i64> =
            self.raise.key(self.generation_key()).arg(generation).invoke_async(&mut conn).await;
        if let Err(err) = raised {
            kit::cache::count_error("catalog_generation");
            tracing::warn!(error = %err, "catalog generation not raised in Redis; cached pages expire by TTL");
        }
    }

    /// The payload under `key` if it was read at the current generation or later.
    async fn fresh(&self, key: &str) -> Option<String> {
        let lookup = self.lookup(key).await?;
        Self::current(&lookup).map(str::to_owned)
    }

    fn current(lookup: &Lookup) -> Option<&str> {
        let (generation, payload) = lookup.value.as_ref()?;
        (*generation >= lookup.current?).then_some(payload.as_str())
    }

    async fn lookup(&self, key: &str) -> Option<Lookup> {
        let mut conn = self.conn.clone();
        let (current, value): (Option<String>, Option<String>) = match redis::pipe()
            .cmd("GET")
            .arg(self.generation_key())
            .cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
        {
            Ok(pair) => pair,
            Err(err) => {
                kit::cache::count_error("catalog_cache_read");
                tracing::warn!(error = %err, "catalog cache read failed; reading MySQL");
                return None;
            }
        };
        let value = value.and_then(|v| {
            let (generation, payload) = v.split_once('|')?;
            Some((generation.parse().ok()?, payload.to_owned()))
        });
        Some(Lookup { current: current.and_then(|c| c.parse().ok()), value })
    }

    async fn put(&self, key: &str, generation: u64, payload: &str, ttl: Duration) {
        let mut conn = self.conn.clone();
        let written: redis::RedisResult<()> = redis::cmd("SET")
            .arg(key)
            .arg(format!("{generation}|{payload}"))
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async(&mut conn)
            .await;
        if let Err(err) = written {
            kit::cache::count_error("catalog_cache_write");
            tracing::warn!(error = %err, "catalog cache write failed");
        }
    }
}
