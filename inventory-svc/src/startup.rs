//! Wiring: connect MySQL (schema + migrations) and Redis, bind the port, serve.

use std::net::SocketAddr;

use inventory_migration::Migrator;
use kit::grpc::GrpcServer;
use kit::shutdown::CancellationToken;

use crate::config::InventoryConfig;
use crate::grpc::InventoryGrpc;
use crate::service::Inventory;
use crate::store::ProductCache;

/// A built, bound inventory-svc, ready to serve. Tests build it on port 0.
pub struct Application {
    addr: SocketAddr,
    server: GrpcServer,
    inventory: Inventory,
}

impl Application {
    pub async fn build(config: &InventoryConfig) -> anyhow::Result<Self> {
        let settings = &config.service;
        let kit::startup::Foundation { db, server, addr, .. } = kit::startup::foundation::<Migrator>(settings).await?;
        let redis = kit::startup::redis(settings).await?;
        let cache = ProductCache::new(redis, &settings.redis_key_prefix, config.cache_ttl);
        Ok(Self { addr, server, inventory: Inventory::new(db, cache, config.hot_batch_max) })
    }

    /// The address actually bound (the real port when configured with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(addr = %self.addr, "inventory-svc serving");
        self.server.serve(InventoryGrpc::new(self.inventory).into_server(), shutdown).await?;
        tracing::info!("inventory-svc stopped");
        Ok(())
    }
}

/// The whole process: config (exit 64 if bad), telemetry, build, serve until SIGTERM.
pub async fn run_from_env() -> anyhow::Result<()> {
    let config = kit::config::or_exit(InventoryConfig::from_env());
    let _telemetry = kit::telemetry::init("inventory-svc", &config.service.log_format);
    let app = Application::build(&config).await?;
    app.run_until_stopped(kit::shutdown::on_signal()).await
}
