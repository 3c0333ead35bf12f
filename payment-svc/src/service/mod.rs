//! The use cases: place an order (run its saga), read orders, change an order's status
//! (cancel = the saga driven backwards).
//!
//! A checkout's Idempotency-Key is claimed by its order: the order id is derived from the
//! key, so the start transaction that inserts the order is the claim, and the settled order
//! is the key's answer (replayed with `replayed = true`). The saga runs in a task of its own:
//! the request waits for it up to its answer budget and then answers the PENDING order,
//! while the saga goes on. A checkout that cannot *start* in time (too many in flight, the
//! user's lock busy, the start batch late) is refused with nothing written.

use std::sync::Arc;
use std::time::Duration;

use kit::ServiceError;
use kit::idempotency::{self, IdempotencyKey, Once};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::domain::{ListLimit, Order, OrderId, OrderStatus, PaymentError, Phase, UserId};
use crate::saga::driver::{Driver, Outcome};
use crate::saga::journal::Journal;
use crate::saga::locks::UserLocks;
use crate::store::{CancelRefused, SagaRecord, Store, WriteError};

mod checkout;

/// How often a request waiting for a saga driven elsewhere looks at it again.
const JOIN_POLL: Duration = Duration::from_millis(50);

/// How a checkout's admission is bounded.
#[derive(Clone, Copy, Debug)]
pub struct Admission {
    /// Sagas this replica drives at once; more wait for a slot within their start budget.
    pub max_sagas: usize,
    /// How long a checkout may wait to start (a slot, the user's lock, its start batch)
    /// before it is refused with nothing written.
    pub start_budget: Duration,
    /// How long a request waits for its saga to settle before it answers the PENDING order.
    pub answer_budget: Duration,
}

#[derive(Clone)]
pub struct Payments {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    driver: Driver,
    journal: Journal,
    locks: UserLocks,
    /// This replica's name in `saga.owner`.
    owner: String,
    admission: Admission,
    slots: Arc<Semaphore>,
}

/// What the task running a checkout tells the request waiting for it.
enum Progress {
    /// Not started, nothing written.
    Refused(PaymentError),
    /// The key already has its order (as read, when the task read it).
    Exists(Option<Box<SagaRecord>>),
    /// Started: the saga is durable and runs to its end whatever the request does.
    Started(Order),
    Settled(Order),
    Unsettled,
}

impl Payments {
    pub fn new(
        store: Store,
        driver: Driver,
        journal: Journal,
        locks: UserLocks,
        owner: String,
        admission: Admission,
    ) -> Self {
        let slots = Arc::new(Semaphore::new(admission.max_sagas.max(1)));
        Self { inner: Arc::new(Inner { store, driver, journal, locks, owner, admission, slots }) }
    }

    /// Drives a saga this replica just claimed: the user's lock, a new epoch, a re-read.
    async fn take_over(&self, id: &OrderId, user: i64) -> Result<Outcome, PaymentError> {
        let inner = &self.inner;
        let (held, writer) = inner.locks.lock(&inner.store, &inner.owner, user).await?;
        let outcome = match inner.store.saga(id).await {
            Ok(Some(saga)) => inner.driver.run(saga, &writer, held.lost()).await,
            Ok(None) => Outcome::Unsettled("vanished".into()),
            Err(err) => {
                held.release().await;
                return Err(err);
            }
        };
        held.release().await;
        Ok(outcome)
    }

    /// Waits until saga `id` settles, at most until `deadline`: the checkout's stored answer
    /// (`checkout`), else the order as it is.
    async fn settled(&self, id: &OrderId, deadline: Instant, checkout: bool) -> Result<Option<Order>, PaymentError> {
        loop {
            let saga =
                self.inner.store.saga(id).await?.ok_or_else(|| PaymentError::OrderNotFound(id.as_str().into()))?;
            if saga.phase == Phase::Settled {
                return Ok(Some(if checkout { saga.answer.unwrap_or(saga.order) } else { saga.order }));
            }
            if Instant::now() + JOIN_POLL >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(JOIN_POLL).await;
        }
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
                // A cancel already running: drive it on if its driver is gone, else wait.
                if inner.store.claim_expired(id.as_str(), &inner.owner).await? {
                    return match self.take_over(id, order.user_id).await? {
                        Outcome::Settled(order) => Ok(order),
                        Outcome::Unsettled(_) => Err(PaymentError::StillRunning(id.as_str().into())),
                    };
                }
                let deadline = Instant::now() + self.inner.admission.answer_budget;
                return self
                    .settled(id, deadline, false)
                    .await?
                    .ok_or_else(|| PaymentError::StillRunning(id.as_str().into()));
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
        // In a task of its own, so a client that gives up does not cut the cancel off.
        let driver = inner.driver.clone();
        let task = tokio::spawn(async move {
            let outcome = driver.run(saga, &writer, held.lost()).await;
            held.release().await;
            outcome
        });
        match task.await {
            Ok(Outcome::Settled(order)) => Ok(order),
            Ok(Outcome::Unsettled(reason)) => {
                tracing::info!(order_id = %id.as_str(), %reason, "cancel not settled by this drive; recovery continues it");
                Err(PaymentError::StillRunning(id.as_str().into()))
            }
            Err(join) => Err(PaymentError::store(anyhow::anyhow!("cancel task ended abnormally: {join}"))),
        }
    }
}
