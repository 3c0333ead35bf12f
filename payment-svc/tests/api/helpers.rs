//! The whole mesh in-process: inventory, coupon and point services, the mock data
//! platform, and one or more payment-svc replicas, on one schema prefix and Redis prefix.

use std::net::SocketAddr;
use std::time::Duration;

use kit::shutdown::CancellationToken;
use kit::{ErrorCode, ServiceError};
use mesh_proto::coupon::v1::{self as coupon_pb, coupon_service_client::CouponServiceClient};
use mesh_proto::inventory::v1::{self as inventory_pb, inventory_service_client::InventoryServiceClient};
use mesh_proto::payment::v1::{self as pb, payment_service_client::PaymentServiceClient};
use mesh_proto::point::v1::{self as point_pb, point_service_client::PointServiceClient};
use payment_svc::config::PaymentConfig;
use serde_json::{Value, json};
use tonic::transport::Channel;

pub struct TestMesh {
    pub prefix: String,
    /// How this mesh's payment replicas are configured, to start more (or a doomed one).
    pub payment_config: PaymentConfig,
    pub payments: Vec<PaymentServiceClient<Channel>>,
    pub inventory: InventoryServiceClient<Channel>,
    pub coupon: CouponServiceClient<Channel>,
    pub point: PointServiceClient<Channel>,
    pub platform: String,
    pub inventory_addr: SocketAddr,
    pub inventory_stop: CancellationToken,
    pub point_addr: SocketAddr,
    pub point_stop: CancellationToken,
    pub coupon_addr: SocketAddr,
    pub coupon_stop: CancellationToken,
    /// What each payment replica ran on MySQL.
    pub payment_sql: Vec<std::sync::Arc<kit::db::SqlCounters>>,
    /// What each payment replica's invariant watcher found (checking every second).
    pub payment_invariants: Vec<kit::invariants::Findings>,
    /// What each payment replica's reconciliation found (a pass every 500 ms).
    pub payment_reconciliation: Vec<payment_svc::saga::reconciliation::Mismatches>,
    pub payment_stops: Vec<CancellationToken>,
    shutdown: CancellationToken,
    http: reqwest::Client,
}

/// Tunables of the payment replicas a test starts.
#[derive(Clone)]
pub struct PaymentTuning {
    pub replicas: usize,
    pub redlock_urls: Option<Vec<String>>,
    pub saga_lease: Duration,
    pub recover_every: Duration,
    pub lock_ttl: Duration,
    pub forward_budget: Duration,
    /// Invariant watcher every second and reconciliation every 500 ms (their own tests);
    /// otherwise the defaults, sparing the shared MariaDB while the suite runs.
    pub fast_checks: bool,
}

impl Default for PaymentTuning {
    fn default() -> Self {
        Self {
            replicas: 1,
            redlock_urls: None,
            saga_lease: Duration::from_secs(10),
            recover_every: Duration::from_secs(1),
            lock_ttl: Duration::from_secs(10),
            forward_budget: Duration::from_secs(30),
            fast_checks: false,
        }
    }
}

impl PaymentTuning {
    /// Short leases and frequent sweeps: a dead replica's sagas are recovered within seconds.
    pub fn fast_recovery() -> Self {
        Self {
            saga_lease: Duration::from_secs(1),
            recover_every: Duration::from_millis(200),
            lock_ttl: Duration::from_secs(2),
            ..Self::default()
        }
    }
}

/// Sends `request` with `key` to a payment-svc replica of its own, and kills that replica
/// `after` later the way a killed process dies: its runtime is dropped, every task
/// mid-await, nothing cleaned up. Answers what the client saw (normally a lost connection).
pub async fn checkout_on_a_replica_killed_after(
    config: &PaymentConfig,
    request: pb::PlaceOrderRequest,
    key: &str,
    after: Duration,
) -> Result<tonic::Response<pb::Order>, tonic::Status> {
    call_on_a_replica_killed_after(config, keyed(request, key), after).await
}

/// [`checkout_on_a_replica_killed_after`] with the whole request (its metadata too).
pub async fn call_on_a_replica_killed_after(
    config: &PaymentConfig,
    request: tonic::Request<pb::PlaceOrderRequest>,
    after: Duration,
) -> Result<tonic::Response<pb::Order>, tonic::Status> {
    let doomed = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let config = config.clone();
    let mut client = doomed.spawn(async move { start_payment(&config, CancellationToken::new()).await }).await.unwrap();
    let in_flight = tokio::spawn(async move { client.place_order(request).await });
    tokio::time::sleep(after).await;
    doomed.shutdown_background();
    in_flight.await.unwrap()
}

pub async fn spawn_mesh() -> TestMesh {
    spawn_mesh_with(PaymentTuning::default()).await
}

pub async fn start_inventory(prefix: &str, addr: Option<SocketAddr>, stop: CancellationToken) -> SocketAddr {
    let mut service = kit::testing::service_settings(&format!("{prefix}inventory"), prefix);
    if let Some(addr) = addr {
        service.grpc_addr = addr;
    }
    let config = inventory_svc::config::InventoryConfig::with_service(service);
    let app = inventory_svc::startup::Application::build(&config).await.expect("inventory-svc builds");
    let addr = app.addr();
    tokio::spawn(app.run_until_stopped(stop));
    addr
}

pub async fn spawn_mesh_with(tuning: PaymentTuning) -> TestMesh {
    kit::testing::install_crypto_provider();
    let prefix = kit::testing::unique_prefix();
    let shutdown = CancellationToken::new();

    let inventory_stop = shutdown.child_token();
    let inventory_addr = start_inventory(&prefix, None, inventory_stop.clone()).await;

    let point_stop = shutdown.child_token();
    let point_addr = start_point(&prefix, None, point_stop.clone()).await;
    let coupon_stop = shutdown.child_token();
    let coupon_addr = start_coupon(&prefix, None, coupon_stop.clone()).await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let platform = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(data_platform::serve(listener));

    let service = kit::testing::service_settings(&format!("{prefix}payment"), &prefix);
    let mut payment_config = PaymentConfig::with_upstreams(
        service,
        format!("http://{inventory_addr}"),
        format!("http://{coupon_addr}"),
        format!("http://{point_addr}"),
        platform.clone(),
    );
    if let Some(urls) = &tuning.redlock_urls {
        payment_config.redlock_urls = urls.clone();
    }
    payment_config.saga_lease = tuning.saga_lease;
    payment_config.recover_every = tuning.recover_every;
    payment_config.lock_ttl = tuning.lock_ttl;
    payment_config.forward_budget = tuning.forward_budget;
    if tuning.fast_checks {
        payment_config.reconcile_every = Duration::from_millis(500);
        payment_config.service.invariant_check_every_secs = 1;
    }
    payment_config.participant_timeout = Duration::from_millis(1_500);
    let mut payments = Vec::new();
    let mut payment_stops = Vec::new();
    let mut payment_sql = Vec::new();
    let mut payment_invariants = Vec::new();
    let mut payment_reconciliation = Vec::new();
    for _ in 0..tuning.replicas {
        let stop = shutdown.child_token();
        let (client, sql, (invariants, reconciliation)) = start_payment_watched(&payment_config, stop.clone()).await;
        payments.push(client);
        payment_sql.push(sql);
        payment_invariants.push(invariants);
        payment_reconciliation.push(reconciliation);
        payment_stops.push(stop);
    }
    TestMesh {
        payment_config,
        payments,
        inventory: InventoryServiceClient::connect(format!("http://{inventory_addr}")).await.unwrap(),
        coupon: CouponServiceClient::connect(format!("http://{coupon_addr}")).await.unwrap(),
        point: PointServiceClient::connect(format!("http://{point_addr}")).await.unwrap(),
        platform,
        inventory_addr,
        inventory_stop,
        point_addr,
        point_stop,
        coupon_addr,
        coupon_stop,
        payment_sql,
        payment_invariants,
        payment_reconciliation,
        payment_stops,
        prefix,
        shutdown,
        http: reqwest::Client::new(),
    }
}

/// A payment-svc replica on the current runtime; a client to it.
pub async fn start_payment(config: &PaymentConfig, stop: CancellationToken) -> PaymentServiceClient<Channel> {
    start_payment_counted(config, stop).await.0
}

/// [`start_payment`], with the replica's SQL counters.
pub async fn start_payment_counted(
    config: &PaymentConfig,
    stop: CancellationToken,
) -> (PaymentServiceClient<Channel>, std::sync::Arc<kit::db::SqlCounters>) {
    let (client, sql, _) = start_payment_watched(config, stop).await;
    (client, sql)
}

/// What a payment replica's background checks found: its invariants, its reconciliation.
pub type Watched = (kit::invariants::Findings, payment_svc::saga::reconciliation::Mismatches);

/// [`start_payment_counted`], with what the replica's background checks find.
pub async fn start_payment_watched(
    config: &PaymentConfig,
    stop: CancellationToken,
) -> (PaymentServiceClient<Channel>, std::sync::Arc<kit::db::SqlCounters>, Watched) {
    let app = payment_svc::startup::Application::build(config).await.expect("payment-svc builds");
    let (addr, sql, invariants) = (app.addr(), app.sql_counters(), (app.invariants(), app.reconciliation()));
    tokio::spawn(app.run_until_stopped(stop));
    (PaymentServiceClient::connect(format!("http://{addr}")).await.unwrap(), sql, invariants)
}

/// point-svc on `addr` (or a free port), until `stop`.
pub async fn start_point(prefix: &str, addr: Option<SocketAddr>, stop: CancellationToken) -> SocketAddr {
    let mut service = kit::testing::service_settings(&format!("{prefix}point"), prefix);
    if let Some(addr) = addr {
        service.grpc_addr = addr;
    }
    let config = point_svc::config::PointConfig {
        service,
        idempotency_retention: Duration::from_secs(24 * 3600),
        idempotency_purge_every: Duration::from_secs(3600),
        pay_batch_max: point_svc::config::DEFAULT_PAY_BATCH_MAX,
        pay_lanes: point_svc::config::DEFAULT_PAY_LANES,
    };
    let app = point_svc::startup::Application::build(&config).await.expect("point-svc builds");
    let addr = app.addr();
    tokio::spawn(app.run_until_stopped(stop));
    addr
}

/// coupon-svc on `addr` (or a free port), until `stop`.
pub async fn start_coupon(prefix: &str, addr: Option<SocketAddr>, stop: CancellationToken) -> SocketAddr {
    let mut service = kit::testing::service_settings(&format!("{prefix}coupon"), prefix);
    if let Some(addr) = addr {
        service.grpc_addr = addr;
    }
    let config =
        coupon_svc::config::CouponConfig { service, issue_batch_max: 512, reconcile_every: Duration::from_secs(3600) };
    let app = coupon_svc::startup::Application::build(&config).await.expect("coupon-svc builds");
    let addr = app.addr();
    tokio::spawn(app.run_until_stopped(stop));
    addr
}

pub fn code(status: &tonic::Status) -> ErrorCode {
    ServiceError::from_status(status).code
}

pub fn line(product_id: i64, quantity: i64) -> pb::PlaceOrderLine {
    pb::PlaceOrderLine { product_id, quantity }
}

pub fn keyed<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("idempotency-key", key.parse().unwrap());
    request
}

pub fn status_of(order: &pb::Order) -> pb::OrderStatus {
    pb::OrderStatus::try_from(order.status).unwrap()
}

impl TestMesh {
    /// Stops the mesh's own payment replicas: only the ones a test starts drive sagas.
    pub fn stop_payment_replicas(&self) {
        for stop in &self.payment_stops {
            stop.cancel();
        }
    }

    pub fn payment(&self) -> PaymentServiceClient<Channel> {
        self.payments[0].clone()
    }

    pub async fn product(&self, price: i64, stock: i64) -> i64 {
        let req = inventory_pb::CreateProductRequest { name: "thing".into(), price, stock };
        self.inventory.clone().create_product(req).await.unwrap().into_inner().id
    }

    pub async fn stock(&self, id: i64) -> i64 {
        self.inventory.clone().get_product(inventory_pb::GetProductRequest { id }).await.unwrap().into_inner().stock
    }

    pub async fn charge(&self, user_id: i64, amount: i64) {
        self.point.clone().charge(point_pb::ChargeRequest { user_id, amount }).await.unwrap();
    }

    pub async fn balance(&self, user_id: i64) -> i64 {
        self.point.clone().get_balance(point_pb::GetBalanceRequest { user_id }).await.unwrap().into_inner().balance
    }

    pub async fn ledger(&self, user_id: i64) -> Vec<point_pb::LedgerEntry> {
        let req = point_pb::ListHistoryRequest { user_id, limit: 200 };
        self.point.clone().list_history(req).await.unwrap().into_inner().items
    }

    /// A FIXED coupon of `value` won issued to `user_id`; returns the user coupon id.
    pub async fn coupon_for(&self, user_id: i64, value: i64) -> i64 {
        let req = coupon_pb::CreateCouponRequest {
            name: "test".into(),
            discount_type: coupon_pb::DiscountType::Fixed as i32,
            discount_value: value,
            total_quantity: 100,
            valid_days: 30,
            ..Default::default()
        };
        let coupon = self.coupon.clone().create_coupon(req).await.unwrap().into_inner();
        let req = coupon_pb::IssueCouponRequest { coupon_id: coupon.id, user_id };
        self.coupon.clone().issue_coupon(req).await.unwrap().into_inner().user_coupon_id
    }

    /// The status of user coupon `id` ("AVAILABLE", "USED", ...).
    pub async fn coupon_status(&self, user_id: i64, id: i64) -> i32 {
        let req = coupon_pb::ListUserCouponsRequest { user_id };
        let items = self.coupon.clone().list_user_coupons(req).await.unwrap().into_inner().items;
        items.into_iter().find(|c| c.user_coupon_id == id).expect("user coupon listed").status
    }

    pub async fn place(
        &self,
        key: &str,
        user_id: i64,
        items: Vec<pb::PlaceOrderLine>,
        user_coupon_id: Option<i64>,
    ) -> Result<tonic::Response<pb::Order>, tonic::Status> {
        let req = pb::PlaceOrderRequest { user_id, items, user_coupon_id };
        self.payment().place_order(keyed(req, key)).await
    }

    pub async fn order(&self, order_id: &str) -> pb::Order {
        let req = pb::GetOrderRequest { order_id: order_id.into() };
        self.payment().get_order(req).await.unwrap().into_inner()
    }

    pub async fn platform_control(&self, control: Value) {
        self.http.post(format!("{}/_control", self.platform)).json(&control).send().await.unwrap();
    }

    /// (orders received, calls made) by the mock data platform.
    pub async fn platform_received(&self) -> (u64, u64) {
        let got: Value =
            self.http.get(format!("{}/received", self.platform)).send().await.unwrap().json().await.unwrap();
        (got["count"].as_u64().unwrap(), got["calls"].as_u64().unwrap())
    }

    pub async fn fail_platform(&self, mode: &str, count: u64) {
        self.platform_control(json!({"failMode": mode, "count": count})).await;
    }
}

impl Drop for TestMesh {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let schemas =
            ["inventory", "point", "coupon", "payment"].iter().map(|s| format!("{}{s}", self.prefix)).collect();
        kit::testing::cleanup_blocking(schemas, Some(self.prefix.clone()));
    }
}
