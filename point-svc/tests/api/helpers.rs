use std::net::SocketAddr;
use std::time::Duration;

use kit::saga::{Op, SagaRef};
use kit::shutdown::CancellationToken;
use kit::{ErrorCode, ServiceError};
use mesh_proto::point::v1 as pb;
use pb::point_service_client::PointServiceClient;
use point_svc::config::PointConfig;
use point_svc::startup::Application;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use tonic::transport::Channel;

pub type Client = PointServiceClient<Channel>;

/// A running point-svc on its own schema; dropped = cleaned up.
pub struct TestApp {
    pub client: Client,
    pub schema: String,
    /// What the invariant watcher found (checking every second in tests).
    pub invariants: kit::invariants::Findings,
    shutdown: CancellationToken,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_checking_every(30).await
}

/// An app whose invariant watcher checks every `secs` (the invariant tests use 1).
pub async fn spawn_app_checking_every(secs: u64) -> TestApp {
    kit::testing::install_crypto_provider();
    let schema = format!("{}point", kit::testing::unique_prefix());
    let mut service = kit::testing::service_settings(&schema, "");
    service.db_max_connections = 24;
    service.invariant_check_every_secs = secs;
    let config = PointConfig {
        service,
        idempotency_retention: Duration::from_secs(24 * 3600),
        idempotency_purge_every: Duration::from_secs(3600),
        pay_batch_max: point_svc::config::DEFAULT_PAY_BATCH_MAX,
        pay_lanes: point_svc::config::DEFAULT_PAY_LANES,
    };
    let app = Application::build(&config).await.expect("point-svc builds");
    let addr: SocketAddr = app.addr();
    let invariants = app.invariants();
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let client = PointServiceClient::connect(format!("http://{addr}")).await.expect("connects");
    TestApp { client, schema, invariants, shutdown }
}

pub fn code(status: &tonic::Status) -> ErrorCode {
    ServiceError::from_status(status).code
}

pub fn saga(saga_id: &str, op: Op) -> Option<mesh_proto::saga::v1::SagaStep> {
    Some(SagaRef::new(saga_id, "PAY_POINTS", op).unwrap().to_proto())
}

impl TestApp {
    pub async fn charge(&self, user_id: i64, amount: i64) -> Result<pb::Balance, tonic::Status> {
        self.client.clone().charge(pb::ChargeRequest { user_id, amount }).await.map(tonic::Response::into_inner)
    }

    pub async fn use_points(&self, user_id: i64, amount: i64) -> Result<pb::Balance, tonic::Status> {
        self.client.clone().r#use(pb::UseRequest { user_id, amount }).await.map(tonic::Response::into_inner)
    }

    pub async fn balance(&self, user_id: i64) -> i64 {
        self.client.clone().get_balance(pb::GetBalanceRequest { user_id }).await.unwrap().into_inner().balance
    }

    pub async fn db(&self) -> DatabaseConnection {
        Database::connect(format!("{}/{}", kit::testing::mysql_url(), self.schema)).await.unwrap()
    }

    pub async fn scalar(&self, sql: &str, user_id: i64) -> i64 {
        let db = self.db().await;
        let row =
            db.query_one_raw(Statement::from_sql_and_values(DbBackend::MySql, sql, [user_id.into()])).await.unwrap();
        row.and_then(|r| r.try_get_by_index::<Option<i64>>(0).unwrap()).unwrap_or(0)
    }

    /// Credits minus debits of `user_id`'s ledger, straight from MySQL.
    pub async fn ledger_sum(&self, user_id: i64) -> i64 {
        self.scalar(
            "SELECT CAST(SUM(CASE WHEN entry_type IN ('CHARGE', 'REFUND') THEN amount ELSE -amount END) AS SIGNED) \
             FROM point_history WHERE user_id = ?",
            user_id,
        )
        .await
    }

    pub async fn newest_balance_after(&self, user_id: i64) -> i64 {
        let resp = self.client.clone().list_history(pb::ListHistoryRequest { user_id, limit: 1 }).await.unwrap();
        resp.into_inner().items.first().map_or(0, |e| e.balance_after)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        kit::testing::cleanup_blocking(vec![self.schema.clone()], None);
    }
}
