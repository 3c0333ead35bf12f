use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;

use coupon_svc::config::CouponConfig;
use coupon_svc::service::Coupons;
use coupon_svc::startup::Application;
use kit::shutdown::CancellationToken;
use kit::{ErrorCode, ServiceError};
use mesh_proto::coupon::v1 as pb;
use pb::coupon_service_client::CouponServiceClient;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use tonic::transport::Channel;

pub type Client = CouponServiceClient<Channel>;

/// One or more coupon-svc replicas on one schema and Redis prefix; dropped = cleaned up.
pub struct TestApp {
    pub clients: Vec<Client>,
    pub coupons: Vec<Coupons>,
    pub schema: String,
    pub redis_prefix: String,
    /// What each replica's invariant watcher found (checking every second).
    pub invariants: Vec<kit::invariants::Findings>,
    shutdown: CancellationToken,
}

pub async fn spawn_app() -> TestApp {
    spawn_replicas(1).await
}

pub async fn spawn_replicas(replicas: usize) -> TestApp {
    spawn_on_redis(replicas, &kit::testing::redis_url()).await
}

/// Replicas whose gate lives in the Redis at `redis_url` (a `kit::testing::RedisNode` of the test's own
/// when the test takes Redis away).
pub async fn spawn_on_redis(replicas: usize, redis_url: &str) -> TestApp {
    spawn_checking_every(replicas, redis_url, 30).await
}

/// Replicas whose invariant watchers check every `secs` (the invariant test uses 1).
pub async fn spawn_checking_every(replicas: usize, redis_url: &str, secs: u64) -> TestApp {
    kit::testing::install_crypto_provider();
    let prefix = kit::testing::unique_prefix();
    let schema = format!("{prefix}coupon");
    let shutdown = CancellationToken::new();
    let (mut clients, mut coupons, mut invariants) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..replicas {
        let mut service = kit::testing::service_settings(&schema, &prefix);
        service.redis_url = redis_url.to_owned();
        service.invariant_check_every_secs = secs;
        let config = CouponConfig { service, issue_batch_max: 512, reconcile_every: Duration::from_secs(3600) };
        let app = Application::build(&config).await.expect("coupon-svc builds");
        let addr = app.addr();
        coupons.push(app.coupons());
        invariants.push(app.invariants());
        tokio::spawn(app.run_until_stopped(shutdown.clone()));
        clients.push(CouponServiceClient::connect(format!("http://{addr}")).await.expect("connects"));
    }
    TestApp { clients, coupons, schema, redis_prefix: prefix, invariants, shutdown }
}

/// Fires one issue per user, all at once, spread over the replicas; the winners' sequences
/// (sorted) and the error counts.
pub async fn race(
    app: &TestApp,
    coupon_id: i64,
    users: impl Iterator<Item = i64>,
) -> (Vec<i64>, HashMap<ErrorCode, usize>) {
    race_at_most(usize::MAX, app, coupon_id, users).await
}

/// [`race`] with at most `in_flight` issues at once.
pub async fn race_at_most(
    in_flight: usize,
    app: &TestApp,
    coupon_id: i64,
    users: impl Iterator<Item = i64>,
) -> (Vec<i64>, HashMap<ErrorCode, usize>) {
    let calls = users.enumerate().map(|(i, user)| app.issue_via(i, coupon_id, user));
    let results: Vec<_> = futures::stream::iter(calls).buffer_unordered(in_flight).collect().await;
    let mut sequences = Vec::new();
    let mut errors = HashMap::new();
    for result in results {
        match result {
            Ok(issued) => sequences.push(issued.sequence),
            Err(status) => *errors.entry(code(&status)).or_default() += 1,
        }
    }
    sequences.sort_unstable();
    (sequences, errors)
}

pub fn code(status: &tonic::Status) -> ErrorCode {
    ServiceError::from_status(status).code
}

pub fn fixed(name: &str, value: i64, total: i64) -> pb::CreateCouponRequest {
    pb::CreateCouponRequest {
        name: name.into(),
        discount_type: pb::DiscountType::Fixed as i32,
        discount_value: value,
        total_quantity: total,
        ..Default::default()
    }
}

impl TestApp {
    pub fn client(&self) -> Client {
        self.clients[0].clone()
    }

    pub async fn create(&self, req: pb::CreateCouponRequest) -> pb::Coupon {
        self.client().create_coupon(req).await.expect("coupon created").into_inner()
    }

    pub async fn issue(&self, coupon_id: i64, user_id: i64) -> Result<pb::UserCoupon, tonic::Status> {
        self.issue_via(0, coupon_id, user_id).await
    }

    pub async fn issue_via(
        &self,
        replica: usize,
        coupon_id: i64,
        user_id: i64,
    ) -> Result<pb::UserCoupon, tonic::Status> {
        let mut client = self.clients[replica % self.clients.len()].clone();
        client.issue_coupon(pb::IssueCouponRequest { coupon_id, user_id }).await.map(tonic::Response::into_inner)
    }

    pub async fn db(&self) -> DatabaseConnection {
        Database::connect(format!("{}/{}", kit::testing::mysql_url(), self.schema)).await.unwrap()
    }

    /// (count, min sequence, max sequence, distinct users) of `coupon_id` in MySQL.
    pub async fn issued_in_db(&self, coupon_id: i64) -> (i64, i64, i64, i64) {
        let row = self
            .db()
            .await
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::MySql,
                "SELECT COUNT(*), COALESCE(MIN(sequence), 0), COALESCE(MAX(sequence), 0), COUNT(DISTINCT user_id) \
                 FROM user_coupon WHERE coupon_id = ?",
                [coupon_id.into()],
            ))
            .await
            .unwrap()
            .unwrap();
        (
            row.try_get_by_index(0).unwrap(),
            row.try_get_by_index(1).unwrap(),
            row.try_get_by_index(2).unwrap(),
            row.try_get_by_index(3).unwrap(),
        )
    }

    /// What FLUSHALL would do to this test's keys.
    pub async fn flush_redis(&self) {
        kit::cache::delete_prefix(&kit::testing::redis_url(), &self.redis_prefix).await.unwrap();
    }

    pub fn gate_key(&self, coupon_id: i64) -> String {
        format!("{}coupon:gate:{{{coupon_id}}}", self.redis_prefix)
    }

    /// An admission made a minute ago (by Redis's clock) that never reached MySQL, as a
    /// replica that died between the gate and its write leaves behind.
    pub async fn plant_stale_admission(&self, coupon_id: i64, user_id: i64) {
        let mut redis = kit::cache::connect(&kit::testing::redis_url()).await.unwrap();
        let (secs, _): (i64, i64) = redis::cmd("TIME").query_async(&mut redis).await.unwrap();
        let _: () = redis::cmd("ZADD")
            .arg(self.gate_key(coupon_id))
            .arg((secs - 60) * 1000)
            .arg(user_id)
            .query_async(&mut redis)
            .await
            .unwrap();
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        kit::testing::cleanup_blocking(vec![self.schema.clone()], Some(self.redis_prefix.clone()));
    }
}
