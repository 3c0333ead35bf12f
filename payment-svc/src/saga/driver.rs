//! Drives one saga: forward through its steps, or backwards through what was done.
//!
//! The participants' barrier rows are the journal: every call is idempotent and answers what
//! it answered the first time, so the forward drive writes nothing between its start and its
//! completion (two commits per checkout, both group-committed through [`Journal`]). Anything
//! else is written only when it goes wrong: a failed call (which also renews the lease), a
//! step that failed, compensation progress. A drive that stops half-way (a crash, a fenced
//! write) leaves a saga whose lease runs out; recovery re-drives it from the first step and
//! gets the same answers back.
//!
//! Transient participant failures are retried with capped backoff and jitter for up to the
//! forward budget, so a restarting participant delays a checkout rather than failing it; the
//! data platform gets a few attempts (its failure is the order's: 502). A business rejection
//! turns the saga around at once. A compensation is never given up: past its budget it is
//! deferred, and recovery tries again later (visible in the step's attempts and last error,
//! and in `saga_compensations_deferred_total`).

use std::time::Duration;

use kit::saga::{Op, SagaRef};
use kit::{ErrorCode, ServiceError};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::journal::Journal;
use super::retry::RetryPolicy;
use super::{Participants, StepError};
use crate::domain::{Failure, Order, OrderStatus, Phase, StepName, StepStatus};
use crate::platform::DataPlatform;
use crate::store::{Completion, SagaRecord, Store, WriteError, Writer};

#[derive(Clone, Copy, Debug)]
pub struct Policies {
    /// How long transient failures of one participant step are retried before the checkout
    /// gives up (`PAYMENT_FORWARD_BUDGET_MS`).
    pub forward_budget: Duration,
    /// Backoff between those retries (its `attempts` is not used: the budget is time).
    pub participant: RetryPolicy,
    pub platform: RetryPolicy,
    pub compensation: RetryPolicy,
    /// Backoff between rounds of a deferred compensation.
    pub deferral: RetryPolicy,
}

#[derive(Clone)]
pub struct Driver {
    pub store: Store,
    pub journal: Journal,
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
    /// The step failed for good after this many calls in this drive.
    Failed(StepError, u32),
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
        let SagaRecord { mut order, phase, rounds, fresh, .. } = saga;
        let outcome = match phase {
            Phase::Settled => return Outcome::Settled(order),
            Phase::Forward => match self.forward(&mut order, writer, lost, fresh).await {
                Ok(true) => Ok(Outcome::Settled(order)),
                Ok(false) if order.status == OrderStatus::Failed => Ok(Outcome::Settled(order)),
                Ok(false) => self.backward(order, writer, lost, false, rounds).await,
                Err(stop) => Err(stop),
            },
            Phase::Compensating => self.backward(order, writer, lost, false, rounds).await,
            Phase::Cancelling => self.backward(order, writer, lost, true, rounds).await,
        };
        let outcome = outcome.unwrap_or_else(|reason| Outcome::Unsettled(reason.to_owned()));
        let label = match &outcome {
            Outcome::Settled(o) => o.status.as_str(),
            Outcome::Unsettled(_) => "UNSETTLED",
        };
        metrics::counter!("saga_outcomes_total", "outcome" => label).increment(1);
        if let Outcome::Settled(Order { status: OrderStatus::Failed, failure: Some(failure), .. }) = &outcome {
            metrics::counter!("checkout_failures_total", "code" => failure.code.clone()).increment(1);
        }
        outcome
    }

    /// Every step from the first, then the completion. `Ok(true)`: completed. `Ok(false)`:
    /// a step failed and the saga is turned around. A re-drive calls the steps that already
    /// ran again: their barriers answer what they answered before.
    async fn forward(
        &self,
        order: &mut Order,
        w: &Writer,
        lost: &CancellationToken,
        fresh: bool,
    ) -> Result<bool, &'static str> {
        let budget_ends = tokio::time::Instant::now() + self.policies.forward_budget;
        let mut step_rows = order.steps.iter().any(|s| s.attempts > 1 || s.last_error.is_some());
        for seq in 0..order.steps.len() {
            if lost.is_cancelled() {
                return Err("the user's lock was lost");
            }
            let step = order.steps[seq].name;
            match self.perform(order, seq, w, budget_ends, &mut step_rows).await {
                Ok(()) => {
                    touch(order, seq, StepStatus::Done);
                    order.steps[seq].attempts = order.steps[seq].attempts.max(1);
                }
                Err(Stop::Interrupted) => {
                    return Err("the saga log could not be written (fenced off or database down)");
                }
                Err(Stop::Failed(err, calls)) => {
                    let failure = err.into_failure();
                    touch(order, seq, StepStatus::Failed);
                    // Refused at the only call ever made of the first step that changes
                    // anything (a sold-out product in a checkout just started): nothing took
                    // effect and no other call of it can arrive late, so the checkout
                    // settles FAILED in one write, with nothing to compensate.
                    let first_effect = (0..seq).all(|s| !order.steps[s].name.compensable());
                    if fresh && calls == 1 && first_effect && failure.left_no_effect() {
                        order.failure = Some(failure);
                        order.status = OrderStatus::Failed;
                        order.updated_at = kit::time::now_millis();
                        self.store.failed_at_once(w, order, seq).await.map_err(|_| "could not record the failure")?;
                        return Ok(false);
                    }
                    tracing::info!(order_id = %order.id, step = step.as_str(), code = %failure.code, "checkout step failed; compensating");
                    self.store
                        .step_failed(w, order, seq, &failure)
                        .await
                        .map_err(|_| "could not record the failure")?;
                    order.failure = Some(failure);
                    return Ok(false);
                }
            }
        }
        order.status = OrderStatus::Completed;
        order.updated_at = kit::time::now_millis();
        for step in &mut order.steps {
            step.updated_at = order.updated_at;
        }
        let completion = Completion { writer: w.clone(), order: order.clone(), step_rows };
        match self
            .journal
            .complete(completion)
            .instrument(tracing::info_span!("sql.checkout_settle", order_id = %order.id))
            .await
        {
            Ok(()) => Ok(true),
            Err(err) => {
                if let WriteError::Db(db) = &*err {
                    tracing::warn!(order_id = %order.id, error = %db, "could not complete the saga; leaving it to recovery");
                }
                Err("the completion could not be written (fenced off or database down)")
            }
        }
    }

    /// One step's action, retried while transient and within its budget; its answer is
    /// applied to the order in memory.
    async fn perform(
        &self,
        order: &mut Order,
        seq: usize,
        w: &Writer,
        budget_ends: tokio::time::Instant,
        step_rows: &mut bool,
    ) -> Result<(), Stop> {
        let step = order.steps[seq].name;
        let mut retry = 0;
        let reply = loop {
            let err = match self.attempt(order, step).await {
                Ok(reply) => break reply,
                Err(err @ StepError::Rejected(_)) => return Err(Stop::Failed(err, retry + 1)),
                Err(err) => err,
            };
            let (delay, give_up) = if step == StepName::TransmitData {
                let policy = self.policies.platform;
                (policy.delay(retry), retry + 1 >= policy.attempts)
            } else {
                let delay = self.policies.participant.delay(retry);
                (delay, tokio::time::Instant::now() + delay >= budget_ends)
            };
            if give_up {
                return Err(Stop::Failed(err, retry + 1));
            }
            metrics::counter!("saga_step_retries_total", "step" => step.as_str(), "op" => "action").increment(1);
            tracing::debug!(order_id = %order.id, step = step.as_str(), error = %err.describe(), retry_in = ?delay, "step failed for now; retrying");
            self.store.attempt_failed(w, &order.id, seq, (step, StepStatus::Pending), &err.describe()).await?;
            *step_rows = true;
            tokio::time::sleep(delay).await;
            retry += 1;
        };
        match reply {
            Reply::Prices(prices) => {
                for line in &mut order.lines {
                    let Some(&(_, price)) = prices.iter().find(|(p, _)| *p == line.product_id) else {
                        return Err(Stop::Failed(
                            StepError::Rejected(Failure {
                                code: ErrorCode::Internal.as_str().to_owned(),
                                product_id: Some(line.product_id),
                                detail: "inventory answered without this line".to_owned(),
                            }),
                            retry + 1,
                        ));
                    };
                    line.unit_price = price;
                }
                order.total_amount = order.lines.iter().map(|l| l.amount()).fold(0i64, i64::saturating_add);
                order.discount_amount = 0;
                order.paid_amount = order.total_amount;
            }
            Reply::Discount(discount) => {
                order.discount_amount = discount.clamp(0, order.total_amount);
                order.paid_amount = order.total_amount - order.discount_amount;
            }
            Reply::Done => {}
        }
        Ok(())
    }

    async fn attempt(&self, order: &Order, step: StepName) -> Result<Reply, StepError> {
        self.attempt_once(order, step).instrument(tracing::info_span!("saga.step", step = step.as_str())).await
    }

    async fn attempt_once(&self, order: &Order, step: StepName) -> Result<Reply, StepError> {
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
        rounds: i32,
    ) -> Result<Outcome, &'static str> {
        for seq in (0..order.steps.len()).rev() {
            let (step, was) = (order.steps[seq].name, order.steps[seq].status);
            // PENDING steps never ran (a failure stops the forward drive before them). The
            // step that failed is undone too: a call of it may still arrive late, and its
            // compensation is what bars it (the barrier's null compensation).
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
                        self.store
                            .attempt_failed(w, &order.id, seq, (step, was), &error)
                            .await
                            .map_err(|_| "fenced off")?;
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
            self.store.compensated(w, &order.id, seq, step, was).await.map_err(|_| "fenced off")?;
            metrics::counter!("saga_compensations_total", "step" => step.as_str()).increment(1);
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
        self.store.rolled_back(w, &order.id, cancel, &order).await.map_err(|_| "fenced off")?;
        Ok(Outcome::Settled(order))
    }

    async fn undo(&self, order: &Order, step: StepName) -> Result<(), StepError> {
        self.undo_once(order, step).instrument(tracing::info_span!("saga.compensate", step = step.as_str())).await
    }

    async fn undo_once(&self, order: &Order, step: StepName) -> Result<(), StepError> {
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

/// Default timings: transient participant failures are retried for 30 s (a participant's
/// restart delays checkouts instead of failing them); the data platform gets four attempts;
/// a compensation round is longer, and deferred rounds back off up to a minute.
pub fn default_policies() -> Policies {
    let ms = Duration::from_millis;
    Policies {
        forward_budget: ms(30_000),
        participant: RetryPolicy { attempts: u32::MAX, base: ms(50), cap: ms(1_000) },
        platform: RetryPolicy { attempts: 4, base: ms(100), cap: ms(800) },
        compensation: RetryPolicy { attempts: 5, base: ms(50), cap: ms(800) },
        deferral: RetryPolicy { attempts: u32::MAX, base: ms(500), cap: ms(60_000) },
    }
}
