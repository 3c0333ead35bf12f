//! Settings of payment-svc: the shared [`ServiceSettings`] plus its own, under `PAYMENT_`.

use std::time::Duration;

use kit::config::{self, ConfigError, ServiceSettings};
use serde::{Deserialize, Serialize};

pub const ENV_PREFIX: &str = "PAYMENT_";
pub const DEFAULT_GRPC_PORT: u16 = 50054;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Extras {
    /// The Redlock quorum, comma-separated; empty = the service's REDIS_URL alone.
    redlock_urls: String,
    /// Base URL of the external data platform (orders are POSTed to `<url>/orders`).
    data_platform_url: String,
    inventory_url: String,
    coupon_url: String,
    point_url: String,
    /// Deadline of one participant call.
    participant_timeout_ms: u64,
    /// Deadline of one POST to the data platform.
    platform_timeout_ms: u64,
    /// How long a driver owns a saga after its last write; a crashed driver's sagas are
    /// recovered this long after its last write.
    saga_lease_ms: u64,
    /// How often unsettled sagas with an expired lease are looked for.
    recover_every_ms: u64,
    /// How often a reconciliation pass asks the participants about the next chunk of orders.
    reconcile_every_ms: u64,
    /// TTL of the per-user Redlock (kept alive while held).
    lock_ttl_ms: u64,
    /// How long a checkout waits for another checkout of the same user.
    lock_wait_ms: u64,
    idempotency_retention_secs: u64,
    idempotency_purge_every_secs: u64,
    /// How long transient participant failures are retried before a checkout gives up.
    forward_budget_ms: u64,
    /// How long a checkout request waits for its saga before answering it PENDING (never
    /// past the caller's gRPC deadline).
    answer_budget_ms: u64,
    /// How long a checkout may wait to start before it is refused with nothing written.
    start_budget_ms: u64,
    /// Sagas one replica drives at once.
    max_sagas_in_flight: usize,
    /// Group commit of the saga's start and completion: concurrent batches, and their size.
    journal_lanes: usize,
    journal_max_batch: usize,
}

#[derive(Clone, Debug)]
pub struct PaymentConfig {
    pub service: ServiceSettings,
    pub redlock_urls: Vec<String>,
    pub data_platform_url: String,
    pub inventory_url: String,
    pub coupon_url: String,
    pub point_url: String,
    pub participant_timeout: Duration,
    pub platform_timeout: Duration,
    pub saga_lease: Duration,
    pub recover_every: Duration,
    pub reconcile_every: Duration,
    pub lock_ttl: Duration,
    pub lock_wait: Duration,
    pub idempotency_retention: Duration,
    pub idempotency_purge_every: Duration,
    pub forward_budget: Duration,
    pub answer_budget: Duration,
    pub start_budget: Duration,
    pub max_sagas_in_flight: usize,
    pub journal_lanes: usize,
    pub journal_max_batch: usize,
}

impl PaymentConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let service: ServiceSettings =
            config::load(ENV_PREFIX, ServiceSettings::defaults("payment", DEFAULT_GRPC_PORT))?;
        let extras: Extras = config::load(
            ENV_PREFIX,
            Extras {
                redlock_urls: String::new(),
                data_platform_url: "http://127.0.0.1:8090".into(),
                inventory_url: "http://127.0.0.1:50051".into(),
                coupon_url: "http://127.0.0.1:50052".into(),
                point_url: "http://127.0.0.1:50053".into(),
                participant_timeout_ms: 3_000,
                platform_timeout_ms: 1_000,
                saga_lease_ms: 10_000,
                recover_every_ms: 1_000,
                reconcile_every_ms: 10_000,
                lock_ttl_ms: 10_000,
                lock_wait_ms: 3_000,
                idempotency_retention_secs: 24 * 3600,
                idempotency_purge_every_secs: 600,
                forward_budget_ms: 30_000,
                answer_budget_ms: 5_000,
                start_budget_ms: 2_000,
                max_sagas_in_flight: 4_096,
                journal_lanes: 4,
                journal_max_batch: 64,
            },
        )?;
        let redlock_urls = split_urls(&extras.redlock_urls, &service.redis_url);
        let ms = Duration::from_millis;
        Ok(Self {
            redlock_urls,
            data_platform_url: extras.data_platform_url,
            inventory_url: extras.inventory_url,
            coupon_url: extras.coupon_url,
            point_url: extras.point_url,
            participant_timeout: ms(extras.participant_timeout_ms.max(1)),
            platform_timeout: ms(extras.platform_timeout_ms.max(1)),
            saga_lease: ms(extras.saga_lease_ms.max(100)),
            recover_every: ms(extras.recover_every_ms.max(10)),
            reconcile_every: ms(extras.reconcile_every_ms.max(100)),
            lock_ttl: ms(extras.lock_ttl_ms.max(100)),
            lock_wait: ms(extras.lock_wait_ms),
            idempotency_retention: Duration::from_secs(extras.idempotency_retention_secs),
            idempotency_purge_every: Duration::from_secs(extras.idempotency_purge_every_secs.max(1)),
            forward_budget: ms(extras.forward_budget_ms),
            answer_budget: ms(extras.answer_budget_ms.max(1)),
            start_budget: ms(extras.start_budget_ms.max(1)),
            max_sagas_in_flight: extras.max_sagas_in_flight.max(1),
            journal_lanes: extras.journal_lanes.max(1),
            journal_max_batch: extras.journal_max_batch.max(1),
            service,
        })
    }

    /// Settings for tests and embedding: everything but the addresses at its default.
    pub fn with_upstreams(
        service: ServiceSettings,
        inventory_url: String,
        coupon_url: String,
        point_url: String,
        data_platform_url: String,
    ) -> Self {
        let ms = Duration::from_millis;
        Self {
            redlock_urls: vec![service.redis_url.clone()],
            data_platform_url,
            inventory_url,
            coupon_url,
            point_url,
            participant_timeout: ms(3_000),
            platform_timeout: ms(1_000),
            saga_lease: ms(10_000),
            recover_every: ms(1_000),
            reconcile_every: ms(10_000),
            lock_ttl: ms(10_000),
            lock_wait: ms(3_000),
            idempotency_retention: Duration::from_secs(24 * 3600),
            idempotency_purge_every: Duration::from_secs(600),
            forward_budget: ms(30_000),
            answer_budget: ms(5_000),
            start_budget: ms(2_000),
            max_sagas_in_flight: 4_096,
            journal_lanes: 4,
            journal_max_batch: 64,
            service,
        }
    }
}

fn split_urls(list: &str, fallback: &str) -> Vec<String> {
    let urls: Vec<String> = list.split(',').map(str::trim).filter(|u| !u.is_empty()).map(str::to_owned).collect();
    if urls.is_empty() { vec![fallback.to_owned()] } else { urls }
}
