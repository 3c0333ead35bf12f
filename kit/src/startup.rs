//! What every service's `Application::build` starts with, in one place: the metrics
//! recorder, its migrated MySQL schema, its Redis connection, its bound gRPC port.

use std::net::SocketAddr;

use anyhow::Context;

use sea_orm::DatabaseConnection;
use sea_orm_migration::MigratorTrait;

use crate::config::ServiceSettings;
use crate::grpc::GrpcServer;

/// Installs the process-wide rustls crypto provider (ring) once. Every binary that makes
/// TLS-capable HTTP calls (reqwest with `rustls-no-provider`) needs it before its first
/// client is built, or reqwest panics; see DEPENDENCIES.md. Calling it again is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A service's connected, migrated, bound base.
pub struct Foundation {
    pub db: DatabaseConnection,
    /// Statements (and, where the service counts them, transactions) `db` runs.
    pub sql: std::sync::Arc<crate::db::SqlCounters>,
    pub server: GrpcServer,
    /// The address actually bound (the real port when configured with port 0).
    pub addr: SocketAddr,
}

/// Installs the metrics recorder (before the first request, so no metric is lost), creates
/// and migrates the schema with `M`, and binds the gRPC and metrics ports.
pub async fn foundation<M: MigratorTrait>(settings: &ServiceSettings) -> anyhow::Result<Foundation> {
    let _ = crate::telemetry::prometheus();
    let mut db =
        crate::db::connect_and_migrate::<M>(&settings.mysql_url, &settings.database, settings.db_max_connections)
            .await
            .context("MySQL")?;
    let sql = crate::db::SqlCounters::install(&mut db);
    if settings.metrics_addr.is_some() {
        // Only a process that is scraped reads its pool (tests run many pools per process,
        // and a hook would keep each alive).
        let pool = db.get_mysql_connection_pool().clone();
        let max = f64::from(settings.db_max_connections);
        crate::telemetry::on_scrape(move || {
            let (size, idle) = (pool.size(), pool.num_idle() as u32);
            metrics::gauge!("db_pool_connections", "state" => "in_use").set(f64::from(size.saturating_sub(idle)));
            metrics::gauge!("db_pool_connections", "state" => "idle").set(f64::from(idle));
            metrics::gauge!("db_pool_max_connections").set(max);
        });
    }
    let server = GrpcServer::bind(settings).await?;
    let addr = server.local_addr()?;
    Ok(Foundation { db, sql, server, addr })
}

/// The service's Redis connection, or an error that says where it looked.
pub async fn redis(settings: &ServiceSettings) -> anyhow::Result<crate::cache::Redis> {
    let target = settings.redis_target();
    crate::cache::connect(&target).await.with_context(|| format!("cannot reach Redis at {target}"))
}
