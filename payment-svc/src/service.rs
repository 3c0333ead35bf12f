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
use tokio::sync::{Semaphore, mpsc};
use tokio::time::{Instant, timeout_at};

use crate::domain::{ListLimit, Order, OrderId, OrderStatus, PaymentError, Phase, PlaceOrder, UserId};
use crate::saga::driver::{Driver, Outcome};
use crate::saga::journal::{Journal, Started};
use crate::saga::locks::UserLocks;
use crate::store::{CancelRefused, NewCheckout, SagaRecord, StartOutcome, Store, WriteError, Writer};

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
    /// The key already has its order.
    Exists,
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

    /// Runs the checkout once per key and answers within `patience` (and the answer budget):
    /// the settled order, or the PENDING one if it is still running. A business failure is
    /// an `Ok` FAILED order.
    pub async fn place_order(&self, request: PlaceOrder, key: IdempotencyKey, patience: Duration) -> Once<Order> {
        let answer_by = Instant::now() + patience.min(self.inner.admission.answer_budget);
        match self.checkout(request, key, answer_by).await {
            Ok((order, replayed)) => Once { result: Ok(order), replayed },
            Err(err) => Once { result: Err(ServiceError::from(err)), replayed: false },
        }
    }

    async fn checkout(
        &self,
        request: PlaceOrder,
        key: IdempotencyKey,
        answer_by: Instant,
    ) -> Result<(Order, bool), PaymentError> {
        let inner = &self.inner;
        let id = OrderId::from_idempotency_key(key.scope(), key.key());
        let start_by = (Instant::now() + inner.admission.start_budget).min(answer_by);
        let Ok(Ok(slot)) = timeout_at(start_by, inner.slots.clone().acquire_owned()).await else {
            metrics::counter!("checkout_refused_total", "reason" => "slots").increment(1);
            return Err(PaymentError::Overloaded);
        };
        let (tx, mut rx) = mpsc::channel(2);
        let this = self.clone();
        let (task_id, task_key) = (id.clone(), key.clone());
        tokio::spawn(async move {
            this.start_and_drive(task_id, request, &task_key, start_by, &tx).await;
            drop(slot);
        });
        match rx.recv().await {
            Some(Progress::Started(pending)) => match timeout_at(answer_by, rx.recv()).await {
                Ok(Some(Progress::Settled(order))) => Ok((order, false)),
                _ => Ok((pending, false)),
            },
            Some(Progress::Exists) => self.join(&id, &key, answer_by).await,
            Some(Progress::Refused(err)) => Err(err),
            Some(Progress::Settled(_) | Progress::Unsettled) | None => {
                Err(PaymentError::store(anyhow::anyhow!("the checkout task ended without starting")))
            }
        }
    }

    /// Takes the user's lock, starts the saga (the first commit) and drives it; tells `tx`
    /// how far it got. Runs in its own task: a client that leaves never cuts a saga off.
    async fn start_and_drive(
        &self,
        id: OrderId,
        request: PlaceOrder,
        key: &IdempotencyKey,
        start_by: Instant,
        tx: &mpsc::Sender<Progress>,
    ) {
        let inner = &self.inner;
        let user = request.user().get();
        // The lock is busy while any checkout of this user runs. If it is this very key's
        // (a retry, a duplicate), there is nothing to wait for: join it.
        let held = match inner.locks.acquire(user, Duration::ZERO).await {
            Ok(held) => Ok(held),
            Err(_) => match inner.store.saga(&id).await {
                Ok(Some(_)) => {
                    let _ = tx.send(Progress::Exists).await;
                    return;
                }
                Ok(None) => inner.locks.acquire(user, start_by.saturating_duration_since(Instant::now())).await,
                Err(err) => Err(err),
            },
        };
        let held = match held {
            Ok(held) => held,
            Err(err) => {
                let _ = tx.send(Progress::Refused(err)).await;
                return;
            }
        };
        let at = kit::time::now_millis();
        let checkout = NewCheckout {
            id: id.clone(),
            request: request.clone(),
            idem_scope: key.scope().to_owned(),
            idem_key: key.key().to_owned(),
            idem_hash: key.fingerprint().to_vec(),
            owner: inner.owner.clone(),
            fence: UserLocks::resource(user),
            at,
        };
        let epoch = match inner.journal.start(checkout, start_by).await {
            Started::Outcome(StartOutcome::Started { epoch }) => epoch,
            other => {
                held.release().await;
                let progress = match other {
                    Started::Outcome(StartOutcome::Exists) => Progress::Exists,
                    Started::Outcome(StartOutcome::Failed(err)) => Progress::Refused(PaymentError::store(err)),
                    _ => {
                        metrics::counter!("checkout_refused_total", "reason" => "start_batch").increment(1);
                        Progress::Refused(PaymentError::Overloaded)
                    }
                };
                let _ = tx.send(progress).await;
                return;
            }
        };
        let order = Order::new_checkout(&id, &request, at);
        let _ = tx.send(Progress::Started(order.clone())).await;
        let writer = Writer { owner: inner.owner.clone(), fence: UserLocks::resource(user), epoch };
        let saga = SagaRecord {
            order,
            phase: Phase::Forward,
            request_hash: Some(key.fingerprint().to_vec()),
            rounds: 0,
            answer: None,
            fresh: true,
        };
        let outcome = inner.driver.run(saga, &writer, held.lost()).await;
        held.release().await;
        let _ = tx.send(match outcome {
            Outcome::Settled(order) => Progress::Settled(order),
            Outcome::Unsettled(reason) => {
                tracing::info!(order_id = %id.as_str(), %reason, "saga not settled by this drive; recovery continues it");
                Progress::Unsettled
            }
        })
        .await;
    }

    /// A checkout whose key already has its order: the same request gets that order's
    /// answer (replayed once settled; PENDING while it runs, driving it on if its driver is
    /// gone); another request with the key is refused.
    async fn join(
        &self,
        id: &OrderId,
        key: &IdempotencyKey,
        answer_by: Instant,
    ) -> Result<(Order, bool), PaymentError> {
        let inner = &self.inner;
        let saga = inner.store.saga(id).await?.ok_or_else(|| PaymentError::OrderNotFound(id.as_str().into()))?;
        if saga.request_hash.as_deref().is_some_and(|hash| hash != key.fingerprint()) {
            return Err(PaymentError::KeyReused);
        }
        if saga.phase == Phase::Settled {
            return Ok((saga.answer.unwrap_or(saga.order), true));
        }
        let pending = saga.order.clone();
        if inner.store.claim_expired(id.as_str(), &inner.owner).await? {
            // Its driver is gone (crashed, or gave up for now): this request drives it on.
            let (tx, mut rx) = mpsc::channel(1);
            let this = self.clone();
            let user = saga.order.user_id;
            let task_id = id.clone();
            tokio::spawn(async move {
                let outcome = this.take_over(&task_id, user).await;
                let _ = tx.send(outcome).await;
            });
            return match timeout_at(answer_by, rx.recv()).await {
                Ok(Some(Ok(Outcome::Settled(order)))) => Ok((order, true)),
                Ok(Some(Err(err))) => Err(err),
                _ => Ok((pending, false)),
            };
        }
        match self.settled(id, answer_by, true).await? {
            Some(order) => Ok((order, true)),
            None => Ok((pending, false)),
        }
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
