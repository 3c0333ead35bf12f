//! The use cases: place an order (run its saga), read orders, change an order's status
//! (cancel = the saga driven backwards). Idempotency-Keys go through `kit::idempotency`.

use std::sync::Arc;
use std::time::Duration;

use kit::ServiceError;
use kit::idempotency::{self, IdempotencyKey, Once};

use crate::domain::{ListLimit, Order, OrderId, OrderStatus, PaymentError, Phase, PlaceOrder, UserId};
use crate::saga::driver::{Driver, Outcome};
use crate::saga::locks::UserLocks;
use crate::store::{CancelRefused, SagaRecord, Store, WriteError};

/// How long a request that finds its saga driven elsewhere waits for it to settle.
const JOIN_WAIT: Duration = Duration::from_secs(5);
const JOIN_POLL: Duration = Duration::from_millis(50);

#[derive(Clone)]
pub struct Payments {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    driver: Driver,
    locks: UserLocks,
    /// This replica's name in `saga.owner`.
    owner: String,
    /// How long a checkout's Idempotency-Key claim keeps retries out. As short as the saga
    /// lease: a retry that takes a live claim over derives the same saga id, so it joins
    /// that saga instead of starting a second one.
    claim_lease: Duration,
}

impl Payments {
    pub fn new(store: Store, driver: Driver, locks: UserLocks, owner: String, claim_lease: Duration) -> Self {
        Self { inner: Arc::new(Inner { store, driver, locks, owner, claim_lease }) }
    }

    /// Runs the checkout once per key. A business failure is an `Ok` FAILED order.
    pub async fn place_order(&self, request: PlaceOrder, key: IdempotencyKey) -> Once<Order> {
        let db = self.inner.store.db().clone();
        idempotency::run_once(&db, Some(key), self.inner.claim_lease, |key| async move {
            let key = key.ok_or_else(|| ServiceError::internal(&"a checkout without its key"))?;
            self.checkout(request, &key).await.map_err(ServiceError::from)
        })
        .await
    }

    async fn checkout(&self, request: PlaceOrder, key: &IdempotencyKey) -> Result<Order, PaymentError> {
        let inner = &self.inner;
        let id = OrderId::from_idempotency_key(key.scope(), key.key());
        if let Some(saga) = inner.store.saga(&id).await? {
            return self.join(saga, Some(key)).await;
        }
        let (held, writer) = inner.locks.lock(&inner.store, &inner.owner, request.user().get()).await?;
        let at = kit::time::now_millis();
        let created = inner.store.create_checkout(&writer, &id, &request, Some(key), at).await;
        match created {
            Ok(true) => {}
            Ok(false) => {
                held.release().await;
                let saga =
                    inner.store.saga(&id).await?.ok_or_else(|| PaymentError::StillRunning(id.as_str().into()))?;
                return self.join(saga, Some(key)).await;
            }
            Err(WriteError::Fenced) => {
                held.release().await;
                return Err(PaymentError::UserBusy);
            }
            Err(WriteError::Db(err)) => {
                held.release().await;
                return Err(PaymentError::store(err));
            }
        }
        let saga = SagaRecord {
            order: Order::new_checkout(&id, &request, at),
            phase: Phase::Forward,
            idempotency: Some((key.scope().to_owned(), key.key().to_owned())),
            request_hash: Some(key.fingerprint().to_vec()),
            rounds: 0,
        };
        self.drive(saga, held, writer).await
    }

    /// Drives in a task of its own, so a client that gives up (its deadline) does not cut a
    /// saga off half-way: the saga runs to its end (or its deferral) either way.
    async fn drive(
        &self,
        saga: SagaRecord,
        held: kit::redlock::HeldLock,
        writer: crate::store::Writer,
    ) -> Result<Order, PaymentError> {
        let id = saga.order.id.clone();
        let driver = self.inner.driver.clone();
        let task = tokio::spawn(async move {
            let outcome = driver.run(saga, &writer, held.lost()).await;
            held.release().await;
            outcome
        });
        match task.await {
            Ok(Outcome::Settled(order)) => Ok(order),
            Ok(Outcome::Unsettled(reason)) => {
                tracing::info!(order_id = %id, %reason, "saga not settled by this drive; recovery continues it");
                Err(PaymentError::StillRunning(id))
            }
            Err(join) => Err(PaymentError::store(anyhow::anyhow!("saga task ended abnormally: {join}"))),
        }
    }

    /// A request for a saga that already exists: answer if settled, drive it if its driver
    /// is gone, else wait a little for the driver that has it.
    async fn join(&self, saga: SagaRecord, key: Option<&IdempotencyKey>) -> Result<Order, PaymentError> {
        let inner = &self.inner;
        let id = OrderId::parse(&saga.order.id)?;
        // Same key (so same saga id), another request: refused, not joined. Its claim was
        // given back by a transient failure of the first request, which still owns the key.
        if let (Some(key), Some(hash)) = (key, &saga.request_hash)
            && hash.as_slice() != key.fingerprint()
        {
            return Err(PaymentError::KeyReused);
        }
        if saga.phase != Phase::Settled && inner.store.claim_expired(id.as_str(), &inner.owner).await? {
            let (held, writer) = inner.locks.lock(&inner.store, &inner.owner, saga.order.user_id).await?;
            // Re-read under the lock: the saga may have moved between the claim and now.
            let saga = inner.store.saga(&id).await?.ok_or_else(|| PaymentError::OrderNotFound(id.as_str().into()))?;
            let order = self.drive(saga, held, writer).await?;
            if let Some(key) = key {
                // Settled by this drive or before it: either way this is the key's answer
                // (a no-op if the settling transaction already stored it).
                idempotency::complete_ok(inner.store.db(), key, idempotency::encode(&order))
                    .await
                    .map_err(PaymentError::store)?;
            }
            return Ok(order);
        }
        let started = tokio::time::Instant::now();
        let mut saga = saga;
        while saga.phase != Phase::Settled {
            if started.elapsed() >= JOIN_WAIT {
                return Err(PaymentError::StillRunning(id.as_str().into()));
            }
            tokio::time::sleep(JOIN_POLL).await;
            saga = inner.store.saga(&id).await?.ok_or_else(|| PaymentError::OrderNotFound(id.as_str().into()))?;
        }
        if let Some(key) = key {
            // The first run's answer was not stored (its claim was released or taken over):
            // the settled order is that answer.
            idempotency::complete_ok(inner.store.db(), key, idempotency::encode(&saga.order))
                .await
                .map_err(PaymentError::store)?;
        }
        Ok(saga.order)
    }

    pub async fn order(&self, id: &OrderId) -> Result<Order, PaymentError> {
        self.inner.store.order(id).await?.ok_or_else(|| PaymentError::OrderNotFound(id.as_str().into()))
    }

    pub async fn user_orders(&self, user: UserId, limit: ListLimit) -> Result<Vec<Order>, PaymentError> {
        self.inner.store.user_orders(user, limit).await
    }

    /// `PUT /v1/orders/{id}/status`: only COMPLETED -> CANCELLED changes anything; asking
    /// for the current status is a no-op; a stale `expected_version` is refused first.
    pub async fn change_status(
        &self,
        id: OrderId,
        target: OrderStatus,
        expected_version: Option<i64>,
        key: Option<IdempotencyKey>,
    ) -> Once<Order> {
        let db = self.inner.store.db().clone();
        idempotency::run_once(&db, key, idempotency::DEFAULT_LEASE, |key| async move {
            let order = self.transition(&id, target, expected_version).await.map_err(ServiceError::from)?;
            if let Some(key) = key {
                idempotency::complete_ok(self.inner.store.db(), &key, idempotency::encode(&order))
                    .await
                    .map_err(|err| ServiceError::unavailable("idempotency store", &err))?;
            }
            Ok(order)
        })
        .await
    }

    async fn transition(
        &self,
        id: &OrderId,
        target: OrderStatus,
        expected_version: Option<i64>,
    ) -> Result<Order, PaymentError> {
        let inner = &self.inner;
        let order = self.order(id).await?;
        if let Some(expected) = expected_version.filter(|v| *v != order.version) {
            return Err(PaymentError::VersionMismatch { expected, current: order.version });
        }
        if order.status == target {
            return Ok(order);
        }
        let refused = || PaymentError::InvalidTransition { from: order.status.as_str(), to: target.as_str() };
        match (order.status, target) {
            (OrderStatus::Completed, OrderStatus::Cancelled) => {}
            (OrderStatus::Cancelling, OrderStatus::Cancelled) => {
                let saga =
                    inner.store.saga(id).await?.ok_or_else(|| PaymentError::OrderNotFound(id.as_str().into()))?;
                return self.join(saga, None).await;
            }
            _ => return Err(refused()),
        }
        let (held, writer) = inner.locks.lock(&inner.store, &inner.owner, order.user_id).await?;
        match inner.store.start_cancel(&writer, id.as_str(), Some(order.version)).await {
            Ok(Ok(())) => {}
            Ok(Err(CancelRefused::Changed)) => {
                held.release().await;
                // Someone else changed it between our read and our write: decide again.
                let now = self.order(id).await?;
                return match expected_version {
                    Some(expected) if expected != now.version => {
                        Err(PaymentError::VersionMismatch { expected, current: now.version })
                    }
                    _ if now.status == target => Ok(now),
                    _ => Err(PaymentError::InvalidTransition { from: now.status.as_str(), to: target.as_str() }),
                };
            }
            Err(err) => {
                held.release().await;
                return Err(match err {
                    WriteError::Fenced => PaymentError::UserBusy,
                    WriteError::Db(db) => PaymentError::store(db),
                });
            }
        }
        let saga = inner.store.saga(id).await?.ok_or_else(|| PaymentError::OrderNotFound(id.as_str().into()))?;
        self.drive(saga, held, writer).await
    }
}
