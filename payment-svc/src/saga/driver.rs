//! Drives one saga: forward through its steps, or backwards through what was done.
//!
//! The log is written before each call (the step's call is counted in the write that
//! closes the previous step, or in the create) and after each result, always through a
//! guarded write (lease + fencing epoch). A write that is fenced off ends the drive at once:
//! someone else owns the saga now, and every participant call it repeats is absorbed by the
//! barrier. Business rejections turn the saga around at once; transient failures are
//! retried with backoff, and a forward step that stays down past its budget fails the
//! checkout. A compensation is never given up: past its budget it is deferred, and
//! recovery tries again later (visible in the step's attempts and last error, and in
//! `saga_compensations_deferred_total`).

use std::time::Duration;

use kit::saga::{Op, SagaRef};
use kit::{ErrorCode, ServiceError};
use tokio_util::sync::CancellationToken;

use super::retry::RetryPolicy;
use super::{Participants, StepError};
use crate::domain::{Failure, Order, OrderStatus, Phase, StepName, StepStatus};
use crate::platform::DataPlatform;
use crate::store::{SagaRecord, Store, StoredLine, WriteError, Writer};

#[derive(Clone, Copy, Debug)]
pub struct Policies {
    pub participant: RetryPolicy,
    pub platform: RetryPolicy,
    pub compensation: RetryPolicy,
    /// Backoff between rounds of a deferred compensation.
    pub deferral: RetryPolicy,
}

#[derive(Clone)]
pub struct Driver {
    pub store: Store,
    pub participants: Participants,
    pub platform: DataPlatform,
    pub policies: Policies,
}

/// Where a drive stopped.
#[derive(Debug)]
pub enum Outcome {
    /// COMPLETED, FAILED or CANCELLED, with the answer for the client.
    Settled(Order),
    /// Not finished by this drive (deferred, lock lost, fenced off); recovery goes on.
    Unsettled(String),
}

/// Why a step stopped the forward drive.
enum Stop {
    Failed(StepError),
    /// The log could not be written: fenced off, or the database failed (a commit whose
    /// outcome is unknown included). Not a step failure: the drive stops and recovery,
    /// reading what did commit, redoes the step through the barrier.
    Interrupted,
}

impl From<WriteError> for Stop {
    fn from(err: WriteError) -> Self {
        if let WriteError::Db(db) = &err {
            tracing::warn!(error = %db, "saga log write failed; leaving the saga to recovery");
        }
        Stop::Interrupted
    }
}

fn saga_ref(order: &Order, step: StepName, op: Op) -> Result<SagaRef, StepError> {
    SagaRef::new(order.id.clone(), step.as_str(), op).map_err(|err: ServiceError| {
        StepError::Rejected(Failure {
            code: ErrorCode::Internal.as_str().to_owned(),
            product_id: None,
            detail: err.detail,
        })
    })
}

fn touch(order: &mut Order, seq: usize, status: StepStatus) {
    let now = kit::time::now_millis();
    order.steps[seq].status = status;
    order.steps[seq].updated_at = now;
    order.updated_at = now;
}

impl Driver {
    /// Drives `saga` as far as it goes now. `lost` fires if the user's lock is lost.
    pub async fn run(&self, saga: SagaRecord, writer: &Writer, lost: &CancellationToken) -> Outcome {
        let SagaRecord { mut order, phase, idempotency, rounds, .. } = saga;
        let idem = idempotency.as_ref().map(|(s, k)| (s.as_str(), k.as_str()));
        let outcome = match phase {
            Phase::Settled => return Outcome::Settled(order),
            Phase::Forward => match self.forward(&mut order, writer, lost, idem).await {
                Ok(true) => Ok(Outcome::Settled(order)),
                Ok(false) => self.backward(order, writer, lost, false, idem, rounds).await,
                Err(stop) => Err(stop),
            },
            Phase::Compensating => self.backward(order, writer, lost, false, idem, rounds).await,
            Phase::Cancelling => self.backward(order, writer, lost, true, None, rounds).await,
        };
        let outcome = outcome.unwrap_or_else(|reason| Outcome::Unsettled(reason.to_owned()));
        let label = match &outcome {
            Outcome::Settled(o) => o.status.as_str(),
            Outcome::Unsettled(_) => "UNSETTLED",
        };
        metrics::counter!("saga_outcomes_total", "outcome" => label).increment(1);
        outcome
    }

    /// `Ok(true)`: completed. `Ok(false)`: a step failed, the saga is turned around.
    async fn forward(
        &self,
        order: &mut Order,
        w: &Writer,
        lost: &CancellationToken,
        idem: Option<(&str, &str)>,
    ) -> Result<bool, &'static str> {
        for seq in 0..order.steps.len() {
            if order.steps[seq].status == StepStatus::Done {
                continue;
            }
            if lost.is_cancelled() {
                return Err("the user's lock was lost");
            }
            let step = order.steps[seq].name;
            match self.perform(order, seq, step, w, idem).await {
                Ok(()) => {}
                Err(Stop::Interrupted) => {
                    return Err("the saga log could not be written (fenced off or database down)");
                }
                Err(Stop::Failed(err)) => {
                    let failure = err.into_failure();
                    tracing::info!(order_id = %order.id, step = step.as_str(), code = %failure.code, "checkout step failed; compensating");
                    self.store
                        .step_failed(w, &order.id, seq, &failure)
                        .await
                        .map_err(|_| "could not record the failure")?;
                    touch(order, seq, StepStatus::Failed);
                    order.failure = Some(failure);
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// One step's action, retried while transient, and its result recorded.
    async fn perform(
        &self,
        order: &mut Order,
        seq: usize,
        step: StepName,
        w: &Writer,
        idem: Option<(&str, &str)>,
    ) -> Result<(), Stop> {
        let policy = if step == StepName::TransmitData { self.policies.platform } else { self.policies.participant };
        let mut retry = 0;
        let result = loop {
            match self.attempt(order, step).await {
                Err(StepError::Transient { code, detail }) if retry + 1 < policy.attempts => {
                    metrics::counter!("saga_step_retries_total", "step" => step.as_str(), "op" => "action")
                        .increment(1);
                    self.store.attempt_failed(w, &order.id, seq, &format!("{code}: {detail}")).await?;
                    tokio::time::sleep(policy.delay(retry)).await;
                    retry += 1;
                }
                other => break other,
            }
        };
        let reply = result.map_err(Stop::Failed)?;
        match (step, reply) {
            (StepName::ReserveStock, Reply::Prices(prices)) => {
                let mut lines = Vec::with_capacity(order.lines.len());
                for line in &mut order.lines {
                    let Some(&(_, price)) = prices.iter().find(|(p, _)| *p == line.product_id) else {
                        return Err(Stop::Failed(StepError::Rejected(Failure {
                            code: ErrorCode::Internal.as_str().to_owned(),
                            product_id: Some(line.product_id),
                            detail: "inventory answered without this line".to_owned(),
                        })));
                    };
                    line.unit_price = price;
                    lines.push(StoredLine { product_id: line.product_id, unit_price: price });
                }
                order.total_amount = order.lines.iter().map(|l| l.amount()).fold(0i64, i64::saturating_add);
                order.paid_amount = order.total_amount;
                self.store.reserved(w, &order.id, seq, &lines, order.total_amount).await?;
            }
            (StepName::UseCoupon, Reply::Discount(discount)) => {
                order.discount_amount = discount.clamp(0, order.total_amount);
                order.paid_amount = order.total_amount - order.discount_amount;
                self.store.discounted(w, &order.id, seq, order.discount_amount).await?;
            }
            (StepName::PayPoints | StepName::RecordPayment, _) => {
                let pay_seq = if step == StepName::PayPoints { seq } else { seq - 1 };
                self.store.paid(w, order, pay_seq, pay_seq + 1).await?;
                touch(order, pay_seq, StepStatus::Done);
                touch(order, pay_seq + 1, StepStatus::Done);
                return Ok(());
            }
            (StepName::TransmitData, _) => {
                touch(order, seq, StepStatus::Done);
                order.status = OrderStatus::Completed;
                let answer = kit::idempotency::encode(&*order);
                self.store.completed(w, &order.id, seq, idem, answer).await?;
                return Ok(());
            }
            _ => {}
        }
        touch(order, seq, StepStatus::Done);
        Ok(())
    }

    async fn attempt(&self, order: &Order, step: StepName) -> Result<Reply, StepError> {
        let saga = saga_ref(order, step, Op::Action)?;
        match step {
            StepName::ReserveStock => self.participants.reserve_stock(&saga, &order.lines).await.map(Reply::Prices),
            StepName::UseCoupon => {
                let coupon = order.user_coupon_id.unwrap_or_default();
                self.participants
                    .use_coupon(&saga, coupon, order.user_id, &order.id, order.total_amount)
                    .await
                    .map(Reply::Discount)
            }
            StepName::PayPoints => {
                self.participants.pay(&saga, order.user_id, &order.id, order.paid_amount).await.map(|()| Reply::Done)
            }
            StepName::RecordPayment => Ok(Reply::Done),
            StepName::TransmitData => self.platform.send(order).await.map(|()| Reply::Done),
        }
    }

    /// Undoes, in reverse, every step that ran; then settles FAILED or CANCELLED.
    async fn backward(
        &self,
        mut order: Order,
        w: &Writer,
        lost: &CancellationToken,
        cancel: bool,
        idem: Option<(&str, &str)>,
        rounds: i32,
    ) -> Result<Outcome, &'static str> {
        for seq in (0..order.steps.len()).rev() {
            let (step, was) = (order.steps[seq].name, order.steps[seq].status);
            // PENDING steps never ran (a failure stops the forward drive before them).
            if !step.compensable() || matches!(was, StepStatus::Pending | StepStatus::Compensated) {
                continue;
            }
            if lost.is_cancelled() {
                return Err("the user's lock was lost");
            }
            let policy = self.policies.compensation;
            let mut retry = 0;
            loop {
                match self.undo(&order, step).await {
                    Ok(()) => break,
                    Err(err) => {
                        let error = err.describe();
                        metrics::counter!("saga_step_retries_total", "step" => step.as_str(), "op" => "compensation")
                            .increment(1);
                        self.store.attempt_failed(w, &order.id, seq, &error).await.map_err(|_| "fenced off")?;
                        if retry + 1 >= policy.attempts {
                            let later = self.policies.deferral.delay(rounds.max(0) as u32);
                            tracing::warn!(order_id = %order.id, step = step.as_str(), %error, retry_in = ?later, "compensation keeps failing; deferred to recovery");
                            metrics::counter!("saga_compensations_deferred_total", "step" => step.as_str())
                                .increment(1);
                            self.store.defer(w, &order.id, later, &error).await.map_err(|_| "fenced off")?;
                            return Ok(Outcome::Unsettled(format!(
                                "compensation of {} deferred: {error}",
                                step.as_str()
                            )));
                        }
                        tokio::time::sleep(policy.delay(retry)).await;
                        retry += 1;
                    }
                }
            }
            self.store
                .compensated(w, &order.id, seq, was, step == StepName::RecordPayment)
                .await
                .map_err(|_| "fenced off")?;
            if was != StepStatus::Failed {
                touch(&mut order, seq, StepStatus::Compensated);
            }
        }
        if cancel {
            order.status = OrderStatus::Cancelled;
            order.version += 1;
        } else {
            order.status = OrderStatus::Failed;
        }
        order.updated_at = kit::time::now_millis();
        let answer = kit::idempotency::encode(&order);
        self.store.rolled_back(w, &order.id, cancel, idem, answer).await.map_err(|_| "fenced off")?;
        Ok(Outcome::Settled(order))
    }

    async fn undo(&self, order: &Order, step: StepName) -> Result<(), StepError> {
        let saga = saga_ref(order, step, Op::Compensate)?;
        match step {
            StepName::ReserveStock => self.participants.release_stock(&saga).await,
            StepName::UseCoupon => {
                self.participants.restore_coupon(&saga, order.user_coupon_id.unwrap_or_default()).await
            }
            StepName::PayPoints => self.participants.refund(&saga, order.user_id, &order.id).await,
            // Local: the payment row is marked refunded by the write that records this.
            StepName::RecordPayment | StepName::TransmitData => Ok(()),
        }
    }
}

/// What a step's action answered.
enum Reply {
    Prices(Vec<(i64, i64)>),
    Discount(i64),
    Done,
}

/// Default timings: the forward budget keeps a checkout within a client's patience; a
/// compensation round is longer, and deferred rounds back off up to a minute.
pub fn default_policies() -> Policies {
    let ms = Duration::from_millis;
    Policies {
        participant: RetryPolicy { attempts: 4, base: ms(50), cap: ms(400) },
        platform: RetryPolicy { attempts: 4, base: ms(100), cap: ms(800) },
        compensation: RetryPolicy { attempts: 5, base: ms(50), cap: ms(800) },
        deferral: RetryPolicy { attempts: u32::MAX, base: ms(500), cap: ms(60_000) },
    }
}
