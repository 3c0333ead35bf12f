//! Wiring: connect MySQL (schema + migrations), start the idempotency purger, serve.

use std::net::SocketAddr;

use kit::grpc::GrpcServer;
use kit::invariants::Findings;
use kit::shutdown::CancellationToken;
use point_migration::Migrator;
use sea_orm::DatabaseConnection;

use crate::config::PointConfig;
use crate::grpc::PointGrpc;
use crate::service::Points;

/// A built, bound point-svc, ready to serve. Tests build it on port 0.
pub struct Application {
    addr: SocketAddr,
    server: GrpcServer,
    db: DatabaseConnection,
    config: PointConfig,
    /// What the invariant watcher found (it runs from `build` until the server stops).
    invariants: Findings,
    watching: CancellationToken,
}

impl Application {
    pub async fn build(config: &PointConfig) -> anyhow::Result<Self> {
        let settings = &config.service;
        let kit::startup::Foundation { db, server, addr, .. } = kit::startup::foundation::<Migrator>(settings).await?;
        let watching = CancellationToken::new();
        let invariants =
            crate::store::invariant_watcher(db.clone(), settings.invariant_check_every()).spawn(watching.clone());
        Ok(Self { addr, server, db, config: config.clone(), invariants, watching })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The invariant watcher's findings (tests read them; production reads the gauges).
    pub fn invariants(&self) -> Findings {
        self.invariants.clone()
    }

    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(addr = %self.addr, "point-svc serving");
        kit::idempotency::spawn_purger(
            self.db.clone(),
            self.config.idempotency_retention,
            self.config.idempotency_purge_every,
            shutdown.clone(),
        );
        let served = self
            .server
            .serve(
                PointGrpc::new(Points::new(self.db, self.config.pay_batch_max, self.config.pay_lanes)).into_server(),
                shutdown,
            )
            .await;
        self.watching.cancel();
        served?;
        tracing::info!("point-svc stopped");
        Ok(())
    }
}

/// The whole process: config (exit 64 if bad), telemetry, build, serve until SIGTERM.
pub async fn run_from_env() -> anyhow::Result<()> {
    let config = kit::config::or_exit(PointConfig::from_env());
    let _telemetry = kit::telemetry::init("point-svc", &config.service.log_format);
    let app = Application::build(&config).await?;
    app.run_until_stopped(kit::shutdown::on_signal()).await
}
