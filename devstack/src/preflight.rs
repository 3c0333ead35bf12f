//! Before anything starts: are MySQL and Redis there? If not, one clear line that says
//! how to start them, instead of a wall of connection errors from every child. (Backends
//! devstack runs itself, `own_servers`, are not asked: they answered before they were used.)

use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database};

use crate::cli::StackArgs;
use crate::own_servers::Needed;

/// The schemas of the mesh under `prefix`.
pub fn schemas(prefix: &str) -> [String; 4] {
    ["inventory", "coupon", "point", "payment"].map(|svc| format!("{prefix}{svc}"))
}

/// Checks the backends devstack does not run itself (`own`), each as named or defaulted.
pub async fn check_backends(args: &StackArgs, own: Needed) -> Result<(), String> {
    if !own.mysql {
        check_mysql(&args.mysql_url()).await?;
    }
    if !own.redis {
        check_redis(&args.redis_urls()).await?;
    }
    if let Some(url) = args.redis_cluster_url() {
        check_redis_cluster(&url).await?;
    }
    Ok(())
}

async fn check_redis_cluster(url: &str) -> Result<(), String> {
    let ping = async {
        let mut conn = kit::cache::connect(url).await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(Duration::from_secs(5), ping).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(format!("the Redis Cluster at {url} is not usable ({err})")),
        Err(_) => Err(format!("the Redis Cluster at {url} is not usable (timed out)")),
    }
}

async fn check_mysql(url: &str) -> Result<(), String> {
    let mut opts = ConnectOptions::new(url.trim_end_matches('/').to_owned());
    opts.connect_timeout(Duration::from_secs(3))
        .acquire_timeout(Duration::from_secs(3))
        .max_connections(1)
        .sqlx_logging(false);
    let mysql = async {
        let db = Database::connect(opts).await?;
        db.execute_unprepared("SELECT 1").await?;
        db.close().await
    };
    if let Err(err) = tokio::time::timeout(Duration::from_secs(5), mysql)
        .await
        .map_err(|_| "timed out".to_owned())
        .and_then(|r| r.map_err(|e| e.to_string()))
    {
        return Err(format!(
            "MySQL is not reachable at {} ({err}); start it with: start-stop-daemon --start --oknodo --background --pidfile /run/mysqld/mysqld.pid --exec /usr/sbin/mariadbd",
            kit::db::redact(url)
        ));
    }
    Ok(())
}

async fn check_redis(urls: &[String]) -> Result<(), String> {
    for url in urls {
        let ping = async {
            let client = redis::Client::open(url.as_str())?;
            let mut conn = client.get_multiplexed_async_connection().await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await
        };
        let result = tokio::time::timeout(Duration::from_secs(3), ping).await;
        if !matches!(result, Ok(Ok(_))) {
            let why = match result {
                Ok(Err(err)) => err.to_string(),
                _ => "timed out".to_owned(),
            };
            return Err(format!(
                "Redis is not reachable at {url} ({why}); start it with: redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save \"\" --appendonly no"
            ));
        }
    }
    Ok(())
}

/// `--fresh`: drop the mesh's schemas and delete its Redis keys.
pub async fn wipe(args: &StackArgs) -> anyhow::Result<()> {
    for schema in schemas(&args.db_prefix) {
        kit::db::drop_schema(&args.mysql_url(), &schema).await?;
    }
    for url in args.redis_urls().into_iter().chain(args.redis_cluster_url()) {
        kit::cache::delete_prefix(&url, &args.db_prefix).await?;
    }
    Ok(())
}
