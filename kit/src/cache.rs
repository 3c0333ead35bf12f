//! The Redis connection of a service. Redis is a gate, a cache or a lock hint here, never
//! the only record of anything: every key can be rebuilt from MySQL (ARCHITECTURE.md).
//!
//! One Redis or a Redis Cluster, chosen by the URL: `redis://host:port` is one server,
//! `redis+cluster://host:port,host:port,...` names seed nodes of a cluster (the client learns
//! the rest and follows MOVED/ASK while slots move). Code that uses Redis sees one type,
//! [`Redis`], and keeps every script and pipeline to keys of one slot: a single key, or keys
//! that share a `{hash tag}`.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// The URL scheme of a Redis Cluster's seed nodes.
pub const CLUSTER_SCHEME: &str = "redis+cluster://";

/// A connection to one Redis or to a Redis Cluster; cheap to clone (clones share it).
#[derive(Clone)]
pub enum Redis {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Redis {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

/// Bounded connect and response times everywhere, so a Redis outage surfaces as an error
/// instead of a hung request. The response bound is generous on purpose: thousands of
/// requests share one connection, and on a saturated machine a healthy Redis can take more
/// than a second to work through that queue.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to the Redis or the Redis Cluster that `url` names.
pub async fn connect(url: &str) -> redis::RedisResult<Redis> {
    if let Some(nodes) = cluster_nodes(url) {
        let client = ClusterClient::builder(nodes)
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT)
            .retries(4)
            .build()?;
        return Ok(Redis::Cluster(client.get_async_connection().await?));
    }
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500));
    Ok(Redis::Single(ConnectionManager::new_with_config(client, config).await?))
}

/// The seed nodes of a `redis+cluster://a:1,b:2` URL as `redis://` URLs; `None` for a
/// single server's URL. Credentials given on the first node apply to every node.
pub fn cluster_nodes(url: &str) -> Option<Vec<String>> {
    let list = url.strip_prefix(CLUSTER_SCHEME)?;
    let (credentials, list) = match list.rsplit_once('@') {
        Some((credentials, list)) => (format!("{credentials}@"), list),
        None => (String::new(), list),
    };
    Some(
        list.trim_end_matches('/')
            .split(',')
            .filter(|node| !node.is_empty())
            .map(|node| format!("redis://{credentials}{node}"))
            .collect(),
    )
}

/// Deletes every key that starts with `prefix` (SCAN, never KEYS, so Redis stays responsive);
/// on a cluster, on every master.
pub async fn delete_prefix(url: &str, prefix: &str) -> redis::RedisResult<()> {
    let servers = match cluster_nodes(url) {
        Some(seeds) => masters(&seeds).await?,
        None => vec![url.to_owned()],
    };
    for server in servers {
        delete_prefix_on(&server, prefix).await?;
    }
    Ok(())
}

/// The masters of the cluster the `seeds` belong to, as `redis://` URLs (asked of the first
/// seed that answers).
async fn masters(seeds: &[String]) -> redis::RedisResult<Vec<String>> {
    let mut last_error = None;
    for seed in seeds {
        let asked = async {
            let mut conn = redis::Client::open(seed.as_str())?.get_multiplexed_async_connection().await?;
            redis::cmd("CLUSTER").arg("NODES").query_async::<String>(&mut conn).await
        };
        match asked.await {
            Ok(nodes) => {
                let credentials = seed.strip_prefix("redis://").and_then(|s| s.rsplit_once('@')).map(|(c, _)| c);
                return Ok(masters_in(&nodes, credentials));
            }
            Err(err) => last_error = Some(err),
        }
    }
    Err(last_error.unwrap_or_else(|| redis::RedisError::from((redis::ErrorKind::Client, "no cluster seed node"))))
}

/// The masters' addresses in `CLUSTER NODES` output (`<id> <ip:port@cport> <flags> ...`).
fn masters_in(nodes: &str, credentials: Option<&str>) -> Vec<String> {
    nodes
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let address = fields.nth(1)?.split('@').next()?;
            let flags = fields.next()?;
            let master = flags.split(',').any(|f| f == "master") && !flags.contains("fail");
            master.then(|| match credentials {
                Some(credentials) => format!("redis://{credentials}@{address}"),
                None => format!("redis://{address}"),
            })
        })
        .collect()
}

async fn delete_prefix_on(url: &str, prefix: &str) -> redis::RedisResult<()> {
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
            // One DEL per key: on a cluster node, one DEL of keys in several slots is refused.
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.cmd("DEL").arg(key).ignore();
            }
            pipe.query_async::<()>(&mut conn).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_url_names_its_seed_nodes_and_a_plain_url_none() {
        assert_eq!(
            cluster_nodes("redis+cluster://10.0.0.1:7000,10.0.0.2:7001/"),
            Some(vec!["redis://10.0.0.1:7000".to_owned(), "redis://10.0.0.2:7001".to_owned()])
        );
        assert_eq!(
            cluster_nodes("redis+cluster://:secret@a:1,b:2"),
            Some(vec!["redis://:secret@a:1".to_owned(), "redis://:secret@b:2".to_owned()])
        );
        assert_eq!(cluster_nodes("redis://127.0.0.1:6379"), None);
    }

    #[test]
    fn the_masters_are_read_from_cluster_nodes() {
        let nodes = "\
07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected
67ed 127.0.0.1:30002@40002 master - 0 1426238316232 2 connected 5461-10922
292f 127.0.0.1:30003@40003 myself,master - 0 0 3 connected 10923-16383
9fd8 127.0.0.1:30005@40005 master,fail - 0 0 5 disconnected
";
        assert_eq!(masters_in(nodes, None), ["redis://127.0.0.1:30002", "redis://127.0.0.1:30003"]);
        assert_eq!(masters_in(nodes, Some(":pw")), ["redis://:pw@127.0.0.1:30002", "redis://:pw@127.0.0.1:30003"]);
    }
}
