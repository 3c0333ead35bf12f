//! The saga log: leases, the driver's guarded step writes, and what recovery scans.

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};

use super::orders::unknown;
use super::{Store, WriteError, Writer, now, stmt, store_err};
use crate::domain::{Failure, Order, OrderId, PaymentError, Phase, StepStatus};

/// A saga as a driver resumes it: the order (lines, amounts, steps) and the driving state.
#[derive(Clone, Debug)]
pub struct SagaRecord {
    pub order: Order,
    pub phase: Phase,
    /// The checkout's Idempotency-Key (scope, key), completed when the saga settles.
    pub idempotency: Option<(String, String)>,
    /// Fingerprint of the checkout request that started it (see `kit::idempotency`).
    pub request_hash: Option<Vec<u8>>,
    pub rounds: i32,
}

/// A reserved line's price, as inventory-svc answered it.
#[derive(Clone, Copy, Debug)]
pub struct StoredLine {
    pub product_id: i64,
    pub unit_price: i64,
}

/// Why a cancel could not start.
#[derive(Debug)]
pub enum CancelRefused {
    /// The order is no longer COMPLETED at the version asked for.
    Changed,
}

async fn set_step<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    seq: usize,
    status: StepStatus,
    error: Option<&str>,
) -> Result<(), DbErr> {
    conn.execute_raw(stmt(
        "UPDATE saga_step SET status = ?, last_error = ?, updated_at = ? WHERE saga_id = ? AND seq = ?",
        [status.as_str().into(), error.map(truncate).into(), now().into(), id.into(), (seq as i32).into()],
    ))
    .await?;
    Ok(())
}

/// Steps `first..=last` done and the call of step `last + 1` counted ("written before each
/// call"), in one statement: a saga's hot path writes its steps once per transaction.
async fn advance<C: ConnectionTrait>(conn: &C, id: &str, first: usize, last: usize) -> Result<(), DbErr> {
    let (first, last) = (first as i32, last as i32);
    conn.execute_raw(stmt(
        "UPDATE saga_step SET \
           status = IF(seq <= ?, 'DONE', status), \
           attempts = attempts + IF(seq = ? + 1 OR (seq > ? AND seq <= ?), 1, 0), \
           last_error = IF(seq <= ?, NULL, last_error), updated_at = ? \
         WHERE saga_id = ? AND seq BETWEEN ? AND ? + 1",
        [
            last.into(),
            last.into(),
            first.into(),
            last.into(),
            last.into(),
            now().into(),
            id.into(),
            first.into(),
            last.into(),
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
            .query_one_raw(stmt(
                "SELECT phase, idem_scope, idem_key, rounds, idem_hash FROM saga WHERE id = ?",
                [id.as_str().into()],
            ))
            .await
            .map_err(store_err)?;
        let Some(row) = row else { return Ok(None) };
        let Some(order) = self.order(id).await? else { return Ok(None) };
        let phase: String = row.try_get_by_index(0).map_err(store_err)?;
        let scope: Option<String> = row.try_get_by_index(1).map_err(store_err)?;
        let key: Option<String> = row.try_get_by_index(2).map_err(store_err)?;
        Ok(Some(SagaRecord {
            order,
            phase: Phase::parse(&phase).ok_or_else(|| store_err(unknown("saga phase", &phase)))?,
            idempotency: scope.zip(key),
            rounds: row.try_get_by_index(3).map_err(store_err)?,
            request_hash: row.try_get_by_index(4).map_err(store_err)?,
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
    pub async fn drivable(&self, limit: u64) -> Result<Vec<String>, PaymentError> {
        let rows = self
            .db
            .query_all_raw(stmt(
                "SELECT id FROM saga WHERE phase <> 'SETTLED' AND lease_until < ? ORDER BY lease_until LIMIT ?",
                [now().into(), limit.into()],
            ))
            .await
            .map_err(store_err)?;
        rows.iter().map(|row| row.try_get_by_index(0)).collect::<Result<_, _>>().map_err(store_err)
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

    /// RESERVE_STOCK done: prices and total recorded, the next step's call counted.
    pub async fn reserved(
        &self,
        w: &Writer,
        id: &str,
        seq: usize,
        lines: &[StoredLine],
        total: i64,
    ) -> Result<(), WriteError> {
        let txn = self.guarded(w, id).await?;
        for line in lines {
            txn.execute_raw(stmt(
                "UPDATE order_line SET unit_price = ? WHERE order_id = ? AND product_id = ?",
                [line.unit_price.into(), id.into(), line.product_id.into()],
            ))
            .await?;
        }
        txn.execute_raw(stmt(
            "UPDATE orders SET total_amount = ?, paid_amount = ?, updated_at = ? WHERE id = ?",
            [total.into(), total.into(), now().into(), id.into()],
        ))
        .await?;
        advance(&txn, id, seq, seq).await?;
        commit(txn).await
    }

    /// USE_COUPON done: the discount and what is left to pay.
    pub async fn discounted(&self, w: &Writer, id: &str, seq: usize, discount: i64) -> Result<(), WriteError> {
        let txn = self.guarded(w, id).await?;
        txn.execute_raw(stmt(
            "UPDATE orders SET discount_amount = ?, paid_amount = total_amount - ?, updated_at = ? WHERE id = ?",
            [discount.into(), discount.into(), now().into(), id.into()],
        ))
        .await?;
        advance(&txn, id, seq, seq).await?;
        commit(txn).await
    }

    /// PAY_POINTS done and RECORD_PAYMENT (a local step) done with it: the payment row is
    /// written in the same transaction that records the points as taken, so one never
    /// exists without the other.
    pub async fn paid(&self, w: &Writer, order: &Order, pay_seq: usize, record_seq: usize) -> Result<(), WriteError> {
        let id = order.id.as_str();
        let txn = self.guarded(w, id).await?;
        txn.execute_raw(stmt(
            "INSERT IGNORE INTO payment (order_id, user_id, points_amount, discount_amount, status, created_at) \
             VALUES (?, ?, ?, ?, 'PAID', ?)",
            [id.into(), order.user_id.into(), order.paid_amount.into(), order.discount_amount.into(), now().into()],
        ))
        .await?;
        advance(&txn, id, pay_seq, record_seq).await?;
        commit(txn).await
    }

    /// The last step done: the order COMPLETED, the saga settled, and the checkout's
    /// Idempotency-Key answered with `answer`, all in one commit.
    pub async fn completed(
        &self,
        w: &Writer,
        id: &str,
        seq: usize,
        idempotency: Option<(&str, &str)>,
        answer: Vec<u8>,
    ) -> Result<(), WriteError> {
        let txn = self.guarded(w, id).await?;
        set_step(&txn, id, seq, StepStatus::Done, None).await?;
        let moved = txn
            .execute_raw(stmt(
                "UPDATE orders SET status = 'COMPLETED', updated_at = ? WHERE id = ? AND status = 'PENDING'",
                [now().into(), id.into()],
            ))
            .await?
            .rows_affected();
        if moved != 1 {
            let _ = txn.rollback().await;
            return Err(WriteError::Fenced);
        }
        settle(&txn, id, idempotency, answer).await?;
        commit(txn).await
    }

    /// A step's action failed for good: record why, and turn the saga around.
    pub async fn step_failed(&self, w: &Writer, id: &str, seq: usize, failure: &Failure) -> Result<(), WriteError> {
        let txn = self.guarded(w, id).await?;
        set_step(&txn, id, seq, StepStatus::Failed, Some(&failure.detail)).await?;
        txn.execute_raw(stmt(
            "UPDATE orders SET failure_code = ?, failure_product_id = ?, failure_detail = ?, updated_at = ? \
             WHERE id = ?",
            [
                failure.code.as_str().into(),
                failure.product_id.into(),
                truncate(&failure.detail).into(),
                now().into(),
                id.into(),
            ],
        ))
        .await?;
        txn.execute_raw(stmt("UPDATE saga SET phase = 'COMPENSATING' WHERE id = ?", [id.into()])).await?;
        commit(txn).await
    }

    /// One attempt of step `seq` (either way) failed and will be retried: visible on the order.
    pub async fn attempt_failed(&self, w: &Writer, id: &str, seq: usize, error: &str) -> Result<(), WriteError> {
        let txn = self.guarded(w, id).await?;
        txn.execute_raw(stmt(
            "UPDATE saga_step SET attempts = attempts + 1, last_error = ?, updated_at = ? WHERE saga_id = ? AND seq = ?",
            [truncate(error).into(), now().into(), id.into(), (seq as i32).into()],
        ))
        .await?;
        commit(txn).await
    }

    /// Step `seq` undone (a FAILED step keeps its status: its failure is the story). Undoing
    /// RECORD_PAYMENT marks the payment row refunded.
    pub async fn compensated(
        &self,
        w: &Writer,
        id: &str,
        seq: usize,
        was: StepStatus,
        payment_record: bool,
    ) -> Result<(), WriteError> {
        let txn = self.guarded(w, id).await?;
        let status = if was == StepStatus::Failed { StepStatus::Failed } else { StepStatus::Compensated };
        set_step(&txn, id, seq, status, None).await?;
        if payment_record {
            txn.execute_raw(stmt(
                "UPDATE payment SET status = 'REFUNDED', refunded_at = ? WHERE order_id = ? AND status = 'PAID'",
                [now().into(), id.into()],
            ))
            .await?;
        }
        commit(txn).await
    }

    /// Every step undone: the order ends FAILED (a checkout) or CANCELLED (a cancel: one more
    /// version), the saga settles, and a checkout's key gets its answer.
    pub async fn rolled_back(
        &self,
        w: &Writer,
        id: &str,
        cancel: bool,
        idempotency: Option<(&str, &str)>,
        answer: Vec<u8>,
    ) -> Result<(), WriteError> {
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
        settle(&txn, id, idempotency, answer).await?;
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

async fn settle(
    txn: &DatabaseTransaction,
    id: &str,
    idempotency: Option<(&str, &str)>,
    answer: Vec<u8>,
) -> Result<(), DbErr> {
    txn.execute_raw(stmt("UPDATE saga SET phase = 'SETTLED', last_error = NULL WHERE id = ?", [id.into()])).await?;
    if let Some((scope, key)) = idempotency {
        kit::idempotency::complete_ok_by_name(txn, scope, key, answer).await?;
    }
    Ok(())
}
