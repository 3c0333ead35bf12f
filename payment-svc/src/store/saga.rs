//! The saga log: leases, the driver's guarded step writes, and what recovery scans.

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};

use super::orders::unknown;
use super::{Store, WriteError, Writer, now, stmt, store_err};
use crate::domain::{Failure, Order, OrderId, PaymentError, Phase, StepName, StepStatus};

/// A saga as a driver resumes it: the order (lines, amounts, steps) and the driving state.
#[derive(Clone, Debug)]
pub struct SagaRecord {
    pub order: Order,
    pub phase: Phase,
    /// Fingerprint of the checkout request that started it (see `kit::idempotency`).
    pub request_hash: Option<Vec<u8>>,
    pub rounds: i32,
    /// A settled checkout's answer, as it was when it settled.
    pub answer: Option<Order>,
    /// Just started by this driver: no other drive has called any of its steps. A saga read
    /// back from the database never is.
    pub fresh: bool,
}

/// An unsettled saga whose lease ran out, as recovery claims it.
#[derive(Clone, Debug)]
pub struct Drivable {
    pub id: String,
    /// The W3C traceparent of the drive that started it (none when it was not traced).
    pub trace_parent: Option<String>,
}

/// Why a cancel could not start.
#[derive(Debug)]
pub enum CancelRefused {
    /// The order is no longer COMPLETED at the version asked for.
    Changed,
}

/// Writes step `seq`'s own row (steps without one show what the order's state implies, see
/// `orders::steps`). `call` counts one more call made for the step.
async fn set_step<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    seq: usize,
    name: StepName,
    status: StepStatus,
    error: Option<&str>,
    call: bool,
) -> Result<(), DbErr> {
    let (error, calls) = (error.map(truncate), i32::from(call));
    conn.execute_raw(stmt(
        "INSERT INTO saga_step (saga_id, seq, name, status, attempts, last_error, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE \
         status = VALUES(status), attempts = attempts + ?, last_error = VALUES(last_error), \
         updated_at = VALUES(updated_at)",
        [
            id.into(),
            (seq as i32).into(),
            name.as_str().into(),
            status.as_str().into(),
            calls.into(),
            error.into(),
            now().into(),
            calls.into(),
        ],
    ))
    .await?;
    Ok(())
}

fn truncate(text: &str) -> String {
    text.chars().take(500).collect()
}

async fn commit(txn: DatabaseTransaction) -> Result<(), WriteError> {
    txn.commit().await.map_err(WriteError::Db)
}

impl Store {
    pub async fn saga(&self, id: &OrderId) -> Result<Option<SagaRecord>, PaymentError> {
        let row = self
            .db
            .query_one_raw(stmt("SELECT phase, rounds, idem_hash, answer FROM saga WHERE id = ?", [id.as_str().into()]))
            .await
            .map_err(store_err)?;
        let Some(row) = row else { return Ok(None) };
        let Some(order) = self.order(id).await? else { return Ok(None) };
        let phase: String = row.try_get_by_index(0).map_err(store_err)?;
        Ok(Some(SagaRecord {
            order,
            phase: Phase::parse(&phase).ok_or_else(|| store_err(unknown("saga phase", &phase)))?,
            rounds: row.try_get_by_index(1).map_err(store_err)?,
            request_hash: row.try_get_by_index(2).map_err(store_err)?,
            answer: row
                .try_get_by_index::<Option<Vec<u8>>>(3)
                .map_err(store_err)?
                .and_then(|bytes| serde_json::from_slice(&bytes).ok()),
            fresh: false,
        }))
    }

    /// Takes over saga `id` if its driver's lease ran out (it crashed, hung, or gave up for
    /// now). Only one replica's UPDATE can match.
    pub async fn claim_expired(&self, id: &str, owner: &str) -> Result<bool, PaymentError> {
        let taken = self
            .db
            .execute_raw(stmt(
                "UPDATE saga SET owner = ?, lease_until = ?, updated_at = ? \
                 WHERE id = ? AND phase <> 'SETTLED' AND lease_until < ?",
                [owner.into(), self.lease_end().into(), now().into(), id.into(), now().into()],
            ))
            .await
            .map_err(store_err)?
            .rows_affected();
        Ok(taken == 1)
    }

    /// Unsettled sagas whose lease ran out, oldest first.
    pub async fn drivable(&self, limit: u64) -> Result<Vec<Drivable>, PaymentError> {
        let rows = self
            .db
            .query_all_raw(stmt(
                "SELECT id, trace_parent FROM saga WHERE phase <> 'SETTLED' AND lease_until < ? \
                 ORDER BY lease_until LIMIT ?",
                [now().into(), limit.into()],
            ))
            .await
            .map_err(store_err)?;
        rows.iter()
            .map(|row| Ok(Drivable { id: row.try_get_by_index(0)?, trace_parent: row.try_get_by_index(1)? }))
            .collect::<Result<_, DbErr>>()
            .map_err(store_err)
    }

    /// Sagas whose compensation failed at least one round and is still being retried.
    pub async fn stuck_compensations(&self) -> Result<i64, PaymentError> {
        let row = self
            .db
            .query_one_raw(stmt(
                "SELECT COUNT(*) FROM saga WHERE phase IN ('COMPENSATING', 'CANCELLING') AND rounds > 0",
                [],
            ))
            .await
            .map_err(store_err)?;
        Ok(row.map(|r| r.try_get_by_index::<i64>(0)).transpose().map_err(store_err)?.unwrap_or(0))
    }

    /// A step's action failed for good: record why, and turn the saga around.
    /// The amounts and prices learnt before the failure are kept, so the FAILED order shows
    /// what was asked and rolled back.
    pub async fn step_failed(
        &self,
        w: &Writer,
        order: &Order,
        seq: usize,
        failure: &Failure,
    ) -> Result<(), WriteError> {
        let id = order.id.as_str();
        let txn = self.guarded(w, id).await?;
        set_step(&txn, id, seq, order.steps[seq].name, StepStatus::Failed, Some(&failure.detail), true).await?;
        txn.execute_raw(stmt(
            "UPDATE orders SET failure_code = ?, failure_product_id = ?, failure_detail = ?, total_amount = ?, \
             discount_amount = ?, paid_amount = ?, updated_at = ? WHERE id = ?",
            [
                failure.code.as_str().into(),
                failure.product_id.into(),
                truncate(&failure.detail).into(),
                order.total_amount.into(),
                order.discount_amount.into(),
                order.paid_amount.into(),
                now().into(),
                id.into(),
            ],
        ))
        .await?;
        for (no, line) in order.lines.iter().enumerate().filter(|(_, l)| l.unit_price > 0) {
            txn.execute_raw(stmt(
                "UPDATE order_line SET unit_price = ? WHERE order_id = ? AND line_no = ?",
                [line.unit_price.into(), id.into(), (no as i32).into()],
            ))
            .await?;
        }
        txn.execute_raw(stmt("UPDATE saga SET phase = 'COMPENSATING' WHERE id = ?", [id.into()])).await?;
        commit(txn).await
    }

    /// A step refused before anything of the checkout took effect: the step FAILED, the
    /// order FAILED with its failure, the saga settled with its answer, in one transaction.
    pub async fn failed_at_once(&self, w: &Writer, order: &Order, seq: usize) -> Result<(), WriteError> {
        let id = order.id.as_str();
        let failure = order.failure.as_ref().ok_or(WriteError::Fenced)?;
        let txn = self.guarded(w, id).await?;
        set_step(&txn, id, seq, order.steps[seq].name, StepStatus::Failed, Some(&failure.detail), true).await?;
        let moved = txn
            .execute_raw(stmt(
                "UPDATE orders SET status = 'FAILED', failure_code = ?, failure_product_id = ?, failure_detail = ?, \
                 updated_at = ? WHERE id = ? AND status = 'PENDING'",
                [
                    failure.code.as_str().into(),
                    failure.product_id.into(),
                    truncate(&failure.detail).into(),
                    order.updated_at.naive_utc().into(),
                    id.into(),
                ],
            ))
            .await?
            .rows_affected();
        if moved != 1 {
            let _ = txn.rollback().await;
            return Err(WriteError::Fenced);
        }
        txn.execute_raw(stmt(
            "UPDATE saga SET phase = 'SETTLED', last_error = NULL, answer = ? WHERE id = ?",
            [kit::idempotency::encode(order).into(), id.into()],
        ))
        .await?;
        commit(txn).await
    }

    /// One attempt of step `seq` (either way) failed and will be retried: visible on the order.
    /// The step keeps its status; the write also renews the driver's lease, so a saga that
    /// keeps retrying is never mistaken for an abandoned one.
    pub async fn attempt_failed(
        &self,
        w: &Writer,
        id: &str,
        seq: usize,
        step: (StepName, StepStatus),
        error: &str,
    ) -> Result<(), WriteError> {
        let txn = self.guarded(w, id).await?;
        set_step(&txn, id, seq, step.0, step.1, Some(error), true).await?;
        commit(txn).await
    }

    /// Step `seq` undone (a FAILED step keeps its status: its failure is the story). Undoing
    /// RECORD_PAYMENT marks the payment row refunded.
    pub async fn compensated(
        &self,
        w: &Writer,
        id: &str,
        seq: usize,
        step: StepName,
        was: StepStatus,
    ) -> Result<(), WriteError> {
        let txn = self.guarded(w, id).await?;
        let status = if was == StepStatus::Failed { StepStatus::Failed } else { StepStatus::Compensated };
        // A FAILED step keeps the error that failed it.
        if was == StepStatus::Failed {
            txn.execute_raw(stmt(
                "UPDATE saga_step SET attempts = attempts + 1, updated_at = ? WHERE saga_id = ? AND seq = ?",
                [now().into(), id.into(), (seq as i32).into()],
            ))
            .await?;
        } else {
            set_step(&txn, id, seq, step, status, None, true).await?;
        }
        if step == StepName::RecordPayment {
            txn.execute_raw(stmt(
                "UPDATE payment SET status = 'REFUNDED', refunded_at = ? WHERE order_id = ? AND status = 'PAID'",
                [now().into(), id.into()],
            ))
            .await?;
        }
        commit(txn).await
    }

    /// Every step undone: the order ends FAILED (a checkout) or CANCELLED (a cancel: one more
    /// version) and the saga settles. The order is the checkout key's answer from then on.
    pub async fn rolled_back(&self, w: &Writer, id: &str, cancel: bool, answer: &Order) -> Result<(), WriteError> {
        let txn = self.guarded(w, id).await?;
        let sql = if cancel {
            "UPDATE orders SET status = 'CANCELLED', version = version + 1, updated_at = ? \
             WHERE id = ? AND status = 'CANCELLING'"
        } else {
            "UPDATE orders SET status = 'FAILED', updated_at = ? WHERE id = ? AND status = 'PENDING'"
        };
        if txn.execute_raw(stmt(sql, [now().into(), id.into()])).await?.rows_affected() != 1 {
            // Not the state this drive believed: someone else settled it. Write nothing.
            let _ = txn.rollback().await;
            return Err(WriteError::Fenced);
        }
        // A cancel keeps the checkout's answer: it has its own key and answer.
        txn.execute_raw(stmt(
            "UPDATE saga SET phase = 'SETTLED', last_error = NULL, answer = IF(?, answer, ?) WHERE id = ?",
            [cancel.into(), kit::idempotency::encode(answer).into(), id.into()],
        ))
        .await?;
        commit(txn).await
    }

    /// Gives the saga up for now: recovery (any replica) takes it again after `retry_in`.
    pub async fn defer(
        &self,
        w: &Writer,
        id: &str,
        retry_in: std::time::Duration,
        error: &str,
    ) -> Result<(), WriteError> {
        let txn = self.guarded(w, id).await?;
        let at = now() + chrono::Duration::from_std(retry_in).unwrap_or(chrono::Duration::seconds(1));
        txn.execute_raw(stmt(
            "UPDATE saga SET lease_until = ?, rounds = rounds + 1, last_error = ? WHERE id = ?",
            [at.into(), truncate(error).into(), id.into()],
        ))
        .await?;
        commit(txn).await
    }

    /// Starts a cancel: COMPLETED (at `expected_version`, if given) becomes CANCELLING, one
    /// version up, and the saga is `w`'s to drive backwards, in one transaction under the
    /// user's fence. `Ok(Err(_))`: the order changed meanwhile; nothing written.
    pub async fn start_cancel(
        &self,
        w: &Writer,
        id: &str,
        expected_version: Option<i64>,
    ) -> Result<Result<(), CancelRefused>, WriteError> {
        let txn = self.fenced(w).await?;
        let changed = txn
            .execute_raw(stmt(
                "UPDATE orders SET status = 'CANCELLING', version = version + 1, updated_at = ? \
                 WHERE id = ? AND status = 'COMPLETED' AND version = COALESCE(?, version)",
                [now().into(), id.into(), expected_version.into()],
            ))
            .await?
            .rows_affected();
        if changed == 0 {
            let _ = txn.rollback().await;
            return Ok(Err(CancelRefused::Changed));
        }
        txn.execute_raw(stmt(
            "UPDATE saga SET phase = 'CANCELLING', owner = ?, lease_until = ?, fence_epoch = ?, rounds = 0, \
             updated_at = ? WHERE id = ?",
            [w.owner.as_str().into(), self.lease_end().into(), w.epoch.into(), now().into(), id.into()],
        ))
        .await?;
        commit(txn).await?;
        Ok(Ok(()))
    }
}
