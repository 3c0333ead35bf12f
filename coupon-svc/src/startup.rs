//! Wiring: MySQL (schema + migrations), the Redis gate, the reconciler, serving.

use std::net::SocketAddr;

use coupon_migration::Migrator;
use kit::grpc::GrpcServer;
use kit::invariants::Findings;
use kit::shutdown::CancellationToken;

use crate::config::CouponConfig;
use crate::grpc::CouponGrpc;
use crate::service::Coupons;
use crate::store::IssueGate;

/// A built, bound coupon-svc, ready to serve. Tests build it on port 0.
pub struct Application {
    addr: SocketAddr,
    server: GrpcServer,
    coupons: Coupons,
    config: CouponConfig,
    /// What the invariant watcher found (it runs from `build` until the server stops).
    invariants: Findings,
    watching: CancellationToken,
}

impl Application {
    pub async fn build(config: &CouponConfig) -> anyhow::Result<Self> {
        let settings = &config.service;
        let kit::startup::Foundation { db, server, addr, .. } = kit::startup::foundation::<Migrator>(settings).await?;
        let redis = kit::startup::redis(settings).await?;
        kit::telemetry::declare_counters("redis_errors_total", "operation", &["coupon_gate"]);
        let gate = IssueGate::new(redis, &settings.redis_key_prefix);
        let watching = CancellationToken::new();
        let invariants = crate::store::invariant_watcher(db.clone(), gate.clone(), settings.invariant_check_every())
            .spawn(watching.clone());
        let coupons = Coupons::new(db, gate, config.issue_batch_max);
        Ok(Self { addr, server, coupons, config: config.clone(), invariants, watching })
    }

    /// The invariant watcher's findings (tests read them; production reads the gauges).
    pub fn invariants(&self) -> Findings {
        self.invariants.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The use cases, for tests that need to drive the reconciler directly.
    pub fn coupons(&self) -> Coupons {
        self.coupons.clone()
    }

    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(addr = %self.addr, "coupon-svc serving");
        self.coupons.spawn_reconciler(self.config.reconcile_every, shutdown.clone());
        let served = self.server.serve(CouponGrpc::new(self.coupons).into_server(), shutdown).await;
        self.watching.cancel();
        served?;
        tracing::info!("coupon-svc stopped");
        Ok(())
    }
}

/// The whole process: config (exit 64 if bad), telemetry, build, serve until SIGTERM.
pub async fn run_from_env() -> anyhow::Result<()> {
    let config = kit::config::or_exit(CouponConfig::from_env());
    let _telemetry = kit::telemetry::init("coupon-svc", &config.service.log_format);
    let app = Application::build(&config).await?;
    app.run_until_stopped(kit::shutdown::on_signal()).await
}
