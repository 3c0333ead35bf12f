//! Wiring: MySQL (schema + migrations), participants, data platform, Redlock quorum, the
//! recovery loop and the idempotency purger; then serve.

use std::net::SocketAddr;

use kit::grpc::{ClientSettings, GrpcServer};
use kit::invariants::Findings;
use kit::redlock::Redlock;
use kit::shutdown::CancellationToken;
use payment_migration::Migrator;
use sea_orm::DatabaseConnection;

use crate::config::PaymentConfig;
use crate::grpc::PaymentGrpc;
use crate::grpc::clients::Participants;
use crate::platform::DataPlatform;
use crate::saga::driver::{Driver, Policies, default_policies};
use crate::saga::journal::Journal;
use crate::saga::locks::UserLocks;
use crate::saga::reconciliation::{Mismatches, Reconciliation};
use crate::saga::recovery::Recovery;
use crate::service::{Admission, Payments};
use crate::store::Store;

/// A built, bound payment-svc, ready to serve. Tests build it on port 0.
pub struct Application {
    addr: SocketAddr,
    server: GrpcServer,
    db: DatabaseConnection,
    payments: Payments,
    recovery: Recovery,
    sql: std::sync::Arc<kit::db::SqlCounters>,
    config: PaymentConfig,
    /// What the invariant watcher found (it runs from `build` until the server stops).
    invariants: Findings,
    /// What the reconciliation pass found (it runs as long as the watcher).
    reconciliation: Mismatches,
    watching: CancellationToken,
}

/// This replica's name in the saga log: host and pid, plus randomness so a restarted
/// process (same pid in a container) is a new owner.
fn replica_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
    let host: String = host.chars().take(40).collect();
    format!("{host}-{}-{:08x}", std::process::id(), rand::random::<u32>())
}

impl Application {
    pub async fn build(config: &PaymentConfig) -> anyhow::Result<Self> {
        let settings = &config.service;
        // reqwest (the data platform's client) needs the process-wide rustls provider.
        kit::startup::install_crypto_provider();
        let kit::startup::Foundation { db, sql, server, addr } = kit::startup::foundation::<Migrator>(settings).await?;
        let store = Store::new(db.clone(), sql.clone(), config.saga_lease);
        kit::telemetry::declare_counters("checkout_refused_total", "reason", &["slots", "start_batch"]);
        let compensable = crate::domain::StepName::compensable_names();
        kit::telemetry::declare_counters("saga_compensations_deferred_total", "step", &compensable);
        kit::telemetry::declare_counters("saga_compensations_total", "step", &compensable);
        let clients = ClientSettings { request_timeout: config.participant_timeout, ..ClientSettings::default() };
        let participants =
            Participants::connect(&config.inventory_url, &config.coupon_url, &config.point_url, &clients)?;
        let platform = DataPlatform::new(&config.data_platform_url, config.platform_timeout)?;
        let redlock = Redlock::new(&config.redlock_urls, &settings.redis_key_prefix, config.lock_ttl)?;
        let locks = UserLocks::new(redlock, config.lock_wait);
        let journal = Journal::new(store.clone(), config.journal_lanes, config.journal_max_batch);
        let policies = Policies { forward_budget: config.forward_budget, ..default_policies() };
        let driver = Driver { store: store.clone(), journal: journal.clone(), participants, platform, policies };
        let owner = replica_name();
        let admission = Admission {
            max_sagas: config.max_sagas_in_flight,
            start_budget: config.start_budget,
            answer_budget: config.answer_budget,
        };
        let payments = Payments::new(store.clone(), driver.clone(), journal, locks.clone(), owner.clone(), admission);
        let watching = CancellationToken::new();
        let reconciliation = Mismatches::default();
        Reconciliation {
            store: store.clone(),
            participants: driver.participants.clone(),
            every: config.reconcile_every,
            chunk: kit::saga::MAX_EFFECTS_ASKED as u32,
            mismatches: reconciliation.clone(),
        }
        .spawn(watching.clone());
        let recovery = Recovery { store, driver, locks, owner, every: config.recover_every };
        let overdue = config.forward_budget + config.saga_lease * 2;
        let invariants = crate::store::invariant_watcher(db.clone(), settings.invariant_check_every(), overdue)
            .spawn(watching.clone());
        Ok(Self {
            addr,
            server,
            db,
            payments,
            recovery,
            sql,
            config: config.clone(),
            invariants,
            reconciliation,
            watching,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The invariant watcher's findings (tests read them; production reads the gauges).
    pub fn invariants(&self) -> Findings {
        self.invariants.clone()
    }

    /// The reconciliation pass's known mismatches.
    pub fn reconciliation(&self) -> Mismatches {
        self.reconciliation.clone()
    }

    /// What this replica ran on MySQL so far (tests count a checkout's statements with it).
    pub fn sql_counters(&self) -> std::sync::Arc<kit::db::SqlCounters> {
        self.sql.clone()
    }

    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(addr = %self.addr, redlock_nodes = self.config.redlock_urls.len(), "payment-svc serving");
        kit::idempotency::spawn_purger(
            self.db.clone(),
            self.config.idempotency_retention,
            self.config.idempotency_purge_every,
            shutdown.clone(),
        );
        self.recovery.spawn(shutdown.clone());
        let served = self.server.serve(PaymentGrpc::new(self.payments).into_server(), shutdown).await;
        self.watching.cancel();
        served?;
        tracing::info!("payment-svc stopped");
        Ok(())
    }
}

/// The whole process: config (exit 64 if bad), telemetry, build, serve until SIGTERM.
pub async fn run_from_env() -> anyhow::Result<()> {
    let config = kit::config::or_exit(PaymentConfig::from_env());
    let _telemetry = kit::telemetry::init("payment-svc", &config.service.log_format);
    let app = Application::build(&config).await?;
    app.run_until_stopped(kit::shutdown::on_signal()).await
}
