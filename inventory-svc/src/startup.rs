//! Wiring: connect MySQL (schema + migrations) and Redis, bind the port, serve.

use std::net::SocketAddr;

use inventory_migration::Migrator;
use kit::grpc::GrpcServer;
use kit::invariants::Findings;
use kit::replicas::ReadRouter;
use kit::shutdown::CancellationToken;

use crate::config::InventoryConfig;
use crate::grpc::InventoryGrpc;
use crate::service::{Catalog, Inventory};
use crate::store::{self, ListCache, ProductCache};

/// A built, bound inventory-svc, ready to serve. Tests build it on port 0.
pub struct Application {
    addr: SocketAddr,
    server: GrpcServer,
    inventory: Inventory,
    /// What the invariant watcher found (it runs from `build` until the server stops).
    invariants: Findings,
    /// Stops the replica heartbeat, the index backfill and the invariant watcher with the server.
    background: CancellationToken,
}

impl Application {
    pub async fn build(config: &InventoryConfig) -> anyhow::Result<Self> {
        let settings = &config.service;
        let kit::startup::Foundation { db, server, addr, .. } = kit::startup::foundation::<Migrator>(settings).await?;
        let redis = kit::startup::redis(settings).await?;
        kit::telemetry::declare_counters(
            "redis_errors_total",
            "operation",
            &[
                "product_cache_read",
                "product_cache_write",
                "catalog_cache_read",
                "catalog_cache_write",
                "catalog_generation",
            ],
        );
        let cache = ProductCache::new(redis.clone(), &settings.redis_key_prefix, config.cache_ttl);
        let background = CancellationToken::new();
        let reads = if config.replicas.urls.is_empty() {
            ReadRouter::primary_only(db.clone())
        } else {
            ReadRouter::start(db.clone(), &config.replicas, background.clone()).await?
        };
        let pages = ListCache::new(redis, &settings.redis_key_prefix, config.list_cache_ttl, config.search_cache_ttl);
        let catalog = Catalog::new(reads, pages);
        tokio::spawn(backfill(catalog.clone(), background.clone()));
        let invariants =
            store::invariant_watcher(db.clone(), settings.invariant_check_every()).spawn(background.clone());
        let inventory = Inventory::new(db, cache, catalog, config.hot_batch_max);
        Ok(Self { addr, server, inventory, invariants, background })
    }

    /// The address actually bound (the real port when configured with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The invariant watcher's findings (tests read them; production reads the gauges).
    pub fn invariants(&self) -> Findings {
        self.invariants.clone()
    }

    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(addr = %self.addr, "inventory-svc serving");
        let served = self.server.serve(InventoryGrpc::new(self.inventory).into_server(), shutdown).await;
        self.background.cancel();
        served?;
        tracing::info!("inventory-svc stopped");
        Ok(())
    }
}

/// Indexes the names of products that predate the name index; searches scan until it is done.
async fn backfill(catalog: Catalog, stop: CancellationToken) {
    tokio::select! {
        _ = stop.cancelled() => {}
        done = catalog.backfill() => match done {
            Ok(0) => {}
            Ok(indexed) => tracing::info!(indexed, "name index backfilled"),
            Err(err) => tracing::error!(error = %err, "name index backfill failed; name searches scan until a restart completes it"),
        },
    }
}

/// The whole process: config (exit 64 if bad), telemetry, build, serve until SIGTERM.
pub async fn run_from_env() -> anyhow::Result<()> {
    let config = kit::config::or_exit(InventoryConfig::from_env());
    let _telemetry = kit::telemetry::init("inventory-svc", &config.service.log_format);
    let app = Application::build(&config).await?;
    app.run_until_stopped(kit::shutdown::on_signal()).await
}
