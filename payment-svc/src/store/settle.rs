//! The second of a checkout's two commits: the order COMPLETED with its amounts and prices,
//! the payment row (RECORD_PAYMENT), the saga settled with the Idempotency-Key's stored
//! answer (the order as it completed; a retry with the key gets it back as it was).
//!
//! Each checkout's first statement is its guard (lease owner + newest fencing epoch, see
//! [`Store::guarded`]) merged with the state change, so a stale driver changes nothing;
//! completions of concurrent checkouts share the transaction (group commit), and their
//! guarded changes one statement.

use kit::batch::together_or_alone;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, Value};

use super::{Store, WriteError, Writer, stmt};
use crate::domain::Order;

/// A checkout whose every step is done, with the driver that completes it.
#[derive(Clone, Debug)]
pub struct Completion {
    pub writer: Writer,
    /// The order as it will be answered: COMPLETED, amounts and unit prices set.
    pub order: Order,
    /// Some step wrote a row of its own (a retried call): mark those rows DONE too.
    pub step_rows: bool,
}

impl Store {
    /// Completes `batch` in one transaction if it can, else one by one. One result per
    /// checkout, in order; [`WriteError::Fenced`] for a driver that no longer owns its saga.
    pub async fn complete_checkouts(&self, batch: &[Completion]) -> Vec<Result<(), WriteError>> {
        together_or_alone(batch, self.complete_together(batch), |completion| async move {
            let one = self.complete_together(std::slice::from_ref(completion)).await;
            one.map_err(WriteError::Db).and_then(|mut r| r.pop().unwrap_or(Err(WriteError::Fenced)))
        })
        .await
    }

    async fn complete_together(&self, batch: &[Completion]) -> Result<Vec<Result<(), WriteError>>, DbErr> {
        let txn = self.begin().await?;
        let all_owned = settle_all_guarded(&txn, batch).await?;
        if !all_owned && batch.len() > 1 {
            // Which one was fenced off is for the one-by-one path to tell.
            txn.rollback().await?;
            return Err(DbErr::Custom("a checkout of the batch no longer owns its saga".into()));
        }
        let owned = vec![all_owned; batch.len()];
        let done: Vec<&Completion> = batch.iter().zip(&owned).filter(|(_, ok)| **ok).map(|(c, _)| c).collect();
        if !done.is_empty() {
            record_prices(&txn, &done).await?;
            record_payments(&txn, &done).await?;
            let with_rows: Vec<&&Completion> = done.iter().filter(|c| c.step_rows).collect();
            if !with_rows.is_empty() {
                let marks = vec!["?"; with_rows.len()].join(", ");
                let mut values: Vec<Value> = vec![super::now().into()];
                values.extend(with_rows.iter().map(|c| Value::from(c.order.id.as_str())));
                txn.execute_raw(stmt(
                    &format!(
                        "UPDATE saga_step SET status = 'DONE', attempts = attempts + 1, last_error = NULL, \
                         updated_at = ? WHERE saga_id IN ({marks}) AND status = 'PENDING'"
                    ),
                    values,
                ))
                .await?;
            }
        }
        txn.commit().await?;
        Ok(owned.into_iter().map(|ok| if ok { Ok(()) } else { Err(WriteError::Fenced) }).collect())
    }
}

/// The sagas settled and the orders COMPLETED in one statement, their values joined in as a
/// derived table, each only if its driver still owns the saga (lease owner, newest epoch) and
/// both are still where the drive left them. `true` when every one was settled (two rows
/// matched each: its saga and its order).
async fn settle_all_guarded(txn: &DatabaseTransaction, batch: &[Completion]) -> Result<bool, DbErr> {
    let mut values: Vec<Value> = Vec::with_capacity(batch.len() * 9);
    for c in batch {
        let (o, w) = (&c.order, &c.writer);
        values.extend([
            o.id.as_str().into(),
            w.fence.as_str().into(),
            w.owner.as_str().into(),
            w.epoch.into(),
            kit::idempotency::encode(o).into(),
            o.total_amount.into(),
            o.discount_amount.into(),
            o.paid_amount.into(),
            o.updated_at.naive_utc().into(),
        ]);
    }
    let settled = kit::db::values_table(
        &["id", "fence", "owner", "epoch", "answer", "total", "discount", "paid", "at"],
        batch.len(),
    );
    let matched = txn
        .execute_raw(stmt(
            &format!(
                "UPDATE saga s JOIN ({settled}) w ON w.id = s.id \
                 JOIN lock_fence f ON f.resource = w.fence AND f.epoch = w.epoch JOIN orders o ON o.id = s.id \
                 SET s.phase = 'SETTLED', s.last_error = NULL, s.updated_at = w.at, s.answer = w.answer, \
                     o.status = 'COMPLETED', o.total_amount = w.total, o.discount_amount = w.discount, \
                     o.paid_amount = w.paid, o.updated_at = w.at \
                 WHERE s.owner = w.owner AND s.phase = 'FORWARD' AND o.status = 'PENDING'"
            ),
            values,
        ))
        .await?
        .rows_affected();
    Ok(matched == 2 * batch.len() as u64)
}

/// The unit price of every line, as inventory-svc reserved it.
async fn record_prices(txn: &DatabaseTransaction, done: &[&Completion]) -> Result<(), DbErr> {
    let mut values: Vec<Value> = Vec::new();
    let mut rows = 0;
    for c in done {
        for (no, line) in c.order.lines.iter().enumerate() {
            values.extend([
                c.order.id.as_str().into(),
                (no as i32).into(),
                line.product_id.into(),
                line.quantity.into(),
                line.unit_price.into(),
            ]);
            rows += 1;
        }
    }
    let marks = vec!["(?, ?, ?, ?, ?)"; rows].join(", ");
    txn.execute_raw(stmt(
        &format!(
            "INSERT INTO order_line (order_id, line_no, product_id, quantity, unit_price) VALUES {marks} \
             ON DUPLICATE KEY UPDATE unit_price = VALUES(unit_price)"
        ),
        values,
    ))
    .await?;
    Ok(())
}

/// RECORD_PAYMENT: what the order took in points and coupon discount.
async fn record_payments(txn: &DatabaseTransaction, done: &[&Completion]) -> Result<(), DbErr> {
    let mut values: Vec<Value> = Vec::with_capacity(done.len() * 5);
    for c in done {
        let o = &c.order;
        values.extend([
            o.id.as_str().into(),
            o.user_id.into(),
            o.paid_amount.into(),
            o.discount_amount.into(),
            o.updated_at.naive_utc().into(),
        ]);
    }
    let marks = vec!["(?, ?, ?, ?, 'PAID', ?)"; done.len()].join(", ");
    txn.execute_raw(stmt(
        &format!(
            "INSERT IGNORE INTO payment (order_id, user_id, points_amount, discount_amount, status, created_at) \
             VALUES {marks}"
        ),
        values,
    ))
    .await?;
    Ok(())
}
