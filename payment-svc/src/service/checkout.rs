//! Placing an order: admission, the user's turn, the saga's start (its first commit), the
//! drive in a task of its own, and the answer within the request's budget; a key that
//! already has its order joins it.

use std::time::Duration;

use kit::ServiceError;
use kit::idempotency::{IdempotencyKey, Once};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};
use tracing::Instrument;

use super::{Payments, Progress};
use crate::domain::{Order, OrderId, PaymentError, Phase, PlaceOrder};
use crate::saga::driver::Outcome;
use crate::saga::journal::Started;
use crate::saga::locks::UserLocks;
use crate::store::{NewCheckout, SagaRecord, StartOutcome, Writer};

impl Payments {
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
        // The saga outlives the request, but stays in its trace: every participant call made
        // by the drive carries this span's context.
        let span = tracing::info_span!("checkout_saga", order_id = %id.as_str());
        tokio::spawn(
            async move {
                this.start_and_drive(task_id, request, &task_key, start_by, &tx).await;
                drop(slot);
            }
            .instrument(span),
        );
        match rx.recv().await {
            Some(Progress::Started(pending)) => match timeout_at(answer_by, rx.recv()).await {
                Ok(Some(Progress::Settled(order))) => Ok((order, false)),
                _ => Ok((pending, false)),
            },
            Some(Progress::Exists(known)) => self.join(&id, &key, known, answer_by).await,
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
        let held =
            match inner.locks.acquire(user, Duration::ZERO).instrument(tracing::info_span!("redlock.acquire")).await {
                Ok(held) => Ok(held),
                Err(_) => match inner.store.saga(&id).await {
                    Ok(Some(saga)) => {
                        let _ = tx.send(Progress::Exists(Some(Box::new(saga)))).await;
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
            trace_parent: kit::telemetry::traceparent(&tracing::Span::current()),
        };
        let epoch =
            match inner.journal.start(checkout, start_by).instrument(tracing::info_span!("sql.checkout_start")).await {
                Started::Outcome(StartOutcome::Started { epoch }) => epoch,
                other => {
                    held.release().await;
                    let progress = match other {
                        Started::Outcome(StartOutcome::Exists) => Progress::Exists(None),
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
        known: Option<Box<SagaRecord>>,
        answer_by: Instant,
    ) -> Result<(Order, bool), PaymentError> {
        let inner = &self.inner;
        let saga = match known {
            Some(saga) => *saga,
            None => inner.store.saga(id).await?.ok_or_else(|| PaymentError::OrderNotFound(id.as_str().into()))?,
        };
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
            let span = tracing::info_span!("checkout_saga_takeover", order_id = %id.as_str());
            tokio::spawn(
                async move {
                    let outcome = this.take_over(&task_id, user).await;
                    let _ = tx.send(outcome).await;
                }
                .instrument(span),
            );
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
}
