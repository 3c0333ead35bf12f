use std::net::SocketAddr;

use inventory_svc::config::InventoryConfig;
use inventory_svc::startup::Application;
use kit::saga::{Op, SagaRef};
use kit::shutdown::CancellationToken;
use kit::{ErrorCode, ServiceError};
use mesh_proto::inventory::v1 as pb;
use pb::inventory_service_client::InventoryServiceClient;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use tonic::transport::Channel;

pub type Client = InventoryServiceClient<Channel>;

/// A running inventory-svc on its own schema and Redis key prefix; dropped = cleaned up.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: Client,
    pub schema: String,
    pub redis_prefix: String,
    /// The MySQL server holding `schema`.
    pub mysql_url: String,
    /// What the invariant watcher found (checking every second in tests).
    pub invariants: kit::invariants::Findings,
    shutdown: CancellationToken,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(256).await
}

/// Both reservation paths must hold every invariant: coalesced (`hot_batch_max` > 0) and
/// one transaction per request (0).
pub const RESERVATION_MODES: [usize; 2] = [256, 0];

pub async fn spawn_app_with(hot_batch_max: usize) -> TestApp {
    spawn_app_configured(|config| config.hot_batch_max = hot_batch_max).await
}

/// An app whose settings the test adjusts (read replicas, cache TTLs, another MySQL).
pub async fn spawn_app_configured(adjust: impl FnOnce(&mut InventoryConfig)) -> TestApp {
    kit::testing::install_crypto_provider();
    let prefix = kit::testing::unique_prefix();
    let mut service = kit::testing::service_settings(&format!("{prefix}inventory"), &prefix);
    service.db_max_connections = 24;
    service.shutdown_drain_ms = 300;
    let mut config = InventoryConfig::with_service(service);
    adjust(&mut config);
    let app = Application::build(&config).await.expect("inventory-svc builds");
    let addr: SocketAddr = app.addr();
    let invariants = app.invariants();
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let client = InventoryServiceClient::connect(format!("http://{addr}")).await.expect("connects");
    let (schema, redis_prefix) = (config.service.database.clone(), config.service.redis_key_prefix.clone());
    let mysql_url = config.service.mysql_url.clone();
    TestApp { addr, client, schema, redis_prefix, mysql_url, invariants, shutdown }
}

impl TestApp {
    /// What SIGTERM does in production.
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    pub async fn list(&self, name: &str, sort: pb::ProductSort, page: i64, size: i64) -> pb::ListProductsResponse {
        let req = pb::ListProductsRequest { name_contains: name.into(), sort: sort as i32, page, size };
        self.client.clone().list_products(req).await.expect("listing answers").into_inner()
    }

    pub async fn import(&self, products: &[(String, i64, i64)]) -> Vec<i64> {
        let products = products
            .iter()
            .map(|(name, price, stock)| pb::CreateProductRequest { name: name.clone(), price: *price, stock: *stock })
            .collect();
        let req = pb::ImportProductsRequest { products };
        self.client.clone().import_products(req).await.expect("products imported").into_inner().ids
    }

    pub async fn create_product(&self, name: &str, price: i64, stock: i64) -> pb::Product {
        let req = pb::CreateProductRequest { name: name.into(), price, stock };
        self.client.clone().create_product(req).await.expect("product created").into_inner()
    }

    pub async fn product(&self, id: i64) -> pb::Product {
        self.client.clone().get_product(pb::GetProductRequest { id }).await.expect("product exists").into_inner()
    }

    /// Stock as MySQL has it, bypassing the service and its cache.
    pub async fn stock_in_db(&self, id: i64) -> i64 {
        let db = self.db().await;
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::MySql,
                "SELECT stock FROM product WHERE id = ?",
                [id.into()],
            ))
            .await
            .unwrap()
            .expect("row");
        row.try_get_by_index(0).unwrap()
    }

    pub async fn db(&self) -> DatabaseConnection {
        Database::connect(format!("{}/{}", self.mysql_url, self.schema)).await.unwrap()
    }

    pub async fn reserve(&self, saga_id: &str, lines: &[(i64, i64)]) -> Result<pb::ReserveStockResponse, ServiceError> {
        let req = pb::ReserveStockRequest {
            saga: Some(saga(saga_id, Op::Action)),
            lines: lines.iter().map(|&(product_id, quantity)| pb::StockLine { product_id, quantity }).collect(),
        };
        self.client.clone().reserve_stock(req).await.map(|r| r.into_inner()).map_err(|s| ServiceError::from_status(&s))
    }

    pub async fn release(&self, saga_id: &str) -> Result<pb::ReleaseStockResponse, ServiceError> {
        let req = pb::ReleaseStockRequest { saga: Some(saga(saga_id, Op::Compensate)) };
        self.client.clone().release_stock(req).await.map(|r| r.into_inner()).map_err(|s| ServiceError::from_status(&s))
    }
}

pub fn saga(saga_id: &str, op: Op) -> mesh_proto::saga::v1::SagaStep {
    SagaRef::new(saga_id, "RESERVE_STOCK", op).unwrap().to_proto()
}

pub fn code_of(status: &tonic::Status) -> ErrorCode {
    ServiceError::from_status(status).code
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        kit::testing::cleanup_blocking(vec![self.schema.clone()], Some(self.redis_prefix.clone()));
    }
}
