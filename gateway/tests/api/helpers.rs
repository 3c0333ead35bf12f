use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use dev_token::Signer;
use gateway::config::{AuthMode, GatewayConfig};
use inventory_svc::config::InventoryConfig;
use kit::shutdown::CancellationToken;
use serde_json::{Value, json};

/// inventory, point, coupon and payment services, the mock data platform and the gateway on
/// loopback, on their own schemas and Redis prefix.
pub struct TestMesh {
    pub base: String,
    /// inventory-svc's gRPC address, for a test that puts something between it and a gateway.
    pub inventory_url: String,
    /// Base URL of the mock external data platform behind payment-svc.
    pub platform: String,
    /// Sends an admin token: an admin may act for every user, so the tests of what a route
    /// does need no token per user; `auth.rs` tests who may do what.
    pub http: reqwest::Client,
    /// Sends no token: public reads, or a test that sets its own `Authorization`.
    pub anonymous: reqwest::Client,
    schemas: Vec<String>,
    redis_prefix: String,
    shutdown: CancellationToken,
}

pub async fn spawn_mesh() -> TestMesh {
    spawn_mesh_answering_within(Duration::from_secs(5)).await
}

/// The mesh, with payment-svc answering a checkout PENDING after `answer_budget`.
pub async fn spawn_mesh_answering_within(answer_budget: Duration) -> TestMesh {
    spawn_mesh_tuned(answer_budget, |_| {}).await
}

/// The mesh with the gateway's settings adjusted by `tune` (after the tests' defaults).
pub async fn spawn_mesh_tuned(answer_budget: Duration, tune: impl FnOnce(&mut GatewayConfig)) -> TestMesh {
    kit::testing::install_crypto_provider();
    let prefix = kit::testing::unique_prefix();
    let schema = format!("{prefix}inventory");
    let service = kit::testing::service_settings(&schema, &prefix);
    let inventory = inventory_svc::startup::Application::build(&InventoryConfig::with_service(service))
        .await
        .expect("inventory-svc builds");
    let shutdown = CancellationToken::new();
    let inventory_url = format!("http://{}", inventory.addr());
    tokio::spawn(inventory.run_until_stopped(shutdown.clone()));

    let point_schema = format!("{prefix}point");
    let service = kit::testing::service_settings(&point_schema, &prefix);
    let point_config = point_svc::config::PointConfig {
        service,
        idempotency_retention: Duration::from_secs(24 * 3600),
        idempotency_purge_every: Duration::from_secs(3600),
        pay_batch_max: point_svc::config::DEFAULT_PAY_BATCH_MAX,
        pay_lanes: point_svc::config::DEFAULT_PAY_LANES,
    };
    let point = point_svc::startup::Application::build(&point_config).await.expect("point-svc builds");
    let point_url = format!("http://{}", point.addr());
    tokio::spawn(point.run_until_stopped(shutdown.clone()));

    let coupon_schema = format!("{prefix}coupon");
    let service = kit::testing::service_settings(&coupon_schema, &prefix);
    let coupon_config =
        coupon_svc::config::CouponConfig { service, issue_batch_max: 512, reconcile_every: Duration::from_secs(3600) };
    let coupon = coupon_svc::startup::Application::build(&coupon_config).await.expect("coupon-svc builds");
    let coupon_url = format!("http://{}", coupon.addr());
    tokio::spawn(coupon.run_until_stopped(shutdown.clone()));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("data platform binds");
    let platform = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(data_platform::serve(listener));

    let payment_schema = format!("{prefix}payment");
    let service = kit::testing::service_settings(&payment_schema, &prefix);
    let mut payment_config = payment_svc::config::PaymentConfig::with_upstreams(
        service,
        inventory_url.clone(),
        coupon_url.clone(),
        point_url.clone(),
        platform.clone(),
    );
    payment_config.answer_budget = answer_budget;
    let payment = payment_svc::startup::Application::build(&payment_config).await.expect("payment-svc builds");
    let payment_url = format!("http://{}", payment.addr());
    tokio::spawn(payment.run_until_stopped(shutdown.clone()));

    let config = GatewayConfig {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        point_url: Some(point_url),
        coupon_url: Some(coupon_url),
        payment_url: Some(payment_url),
        upstream_timeout_ms: 10_000,
        inventory_url: Some(inventory_url.clone()),
        ..test_defaults()
    };
    let mut config = config;
    tune(&mut config);
    let base = start_gateway(config, shutdown.clone()).await;
    TestMesh {
        base,
        inventory_url,
        platform,
        http: admin_client(),
        anonymous: reqwest::Client::new(),
        schemas: vec![schema, point_schema, coupon_schema, payment_schema],
        redis_prefix: prefix,
        shutdown,
    }
}

/// A gateway in front of `inventory_url` only; returns its base URL.
pub async fn spawn_gateway(inventory_url: Option<String>, shutdown: CancellationToken) -> String {
    let config = GatewayConfig {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        inventory_url,
        upstream_timeout_ms: 3_000,
        ..test_defaults()
    };
    start_gateway(config, shutdown).await
}

/// The defaults (authentication on, keyed by [`ISSUER`]), but no per-caller rate limit:
/// every test client sends from 127.0.0.1 and most act as the admin, so a crowd of test
/// users would look like one caller. The limiter has tests of its own.
pub fn test_defaults() -> GatewayConfig {
    GatewayConfig {
        rate_limit_per_sec: 0,
        auth: AuthMode::On,
        jwt_public_key_file: Some(ISSUER.public_pem.clone()),
        ..GatewayConfig::default()
    }
}

/// The identity provider of the tests: a throwaway key checked in under `testdata/`, so no
/// test process writes key files; every test gateway verifies against its public PEM.
pub struct TestIssuer {
    pub signer: Signer,
    pub public_pem: PathBuf,
}

pub static ISSUER: LazyLock<TestIssuer> = LazyLock::new(|| {
    let testdata = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/api/testdata");
    let pkcs8 = std::fs::read(testdata.join("jwt-signing.pk8")).expect("the test signing key");
    let signer = Signer::from_pkcs8(&pkcs8).expect("an Ed25519 key");
    let public_pem = testdata.join("jwt-public.pem");
    assert_eq!(std::fs::read_to_string(&public_pem).unwrap(), signer.public_pem(), "the PEM is the key's public half");
    TestIssuer { signer, public_pem }
});

/// A token of [`ISSUER`] for `user`, valid for ten minutes.
pub fn token(user: i64, admin: bool) -> String {
    ISSUER.signer.mint(user, admin, 600).expect("a token")
}

/// A client that sends an admin token with every request (unless the request sets its own).
pub fn admin_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = format!("Bearer {}", token(1, true)).parse().expect("a header value");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder().default_headers(headers).build().expect("a client")
}

pub async fn start_gateway(config: GatewayConfig, shutdown: CancellationToken) -> String {
    kit::testing::install_crypto_provider();
    let app = gateway::startup::Application::build(&config).await.expect("gateway builds");
    let base = format!("http://{}", app.addr());
    tokio::spawn(app.run_until_stopped(shutdown));
    base
}

impl TestMesh {
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn create_product(&self, name: &str, price: i64, stock: i64) -> Value {
        let resp = self
            .http
            .post(self.url("/v1/products"))
            .json(&json!({"name": name, "price": price, "stock": stock}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        resp.json().await.unwrap()
    }
}

/// Asserts `resp` is a problem document with `status` and `code`; returns its body.
pub async fn expect_problem(resp: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    let content_type = resp.headers().get("content-type").unwrap().to_str().unwrap().to_owned();
    assert_eq!(content_type, "application/problem+json");
    let request_id = resp.headers().get("x-request-id").expect("x-request-id").to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    assert_eq!(body["requestId"], request_id.as_str());
    assert!(body["title"].is_string() && body["type"].is_string() && body["detail"].is_string());
    body
}

impl Drop for TestMesh {
    fn drop(&mut self) {
        self.shutdown.cancel();
        kit::testing::cleanup_blocking(self.schemas.clone(), Some(self.redis_prefix.clone()));
    }
}
