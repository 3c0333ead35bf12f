//! The first of a checkout's two commits (DESIGN.md, "The saga orchestrator"): the order and
//! its lines (PENDING), the saga row with its lease, and the user's fencing epoch minted, in
//! one transaction. The order's primary key is the Idempotency-Key's claim: the order id is
//! derived from the key, so a second start of the same key inserts nothing and joins the
//! first instead.
//!
//! Starts of concurrent checkouts share one transaction (group commit, `crate::saga::journal`).
//! If a batch cannot commit whole (a key that already has its order, a deadlock, a lost
//! connection), each of its checkouts is started alone, so one checkout never fails another.

use kit::batch::together_or_alone;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, Value};

use super::{Store, stmt};
use crate::domain::{OrderId, PlaceOrder};

/// A checkout to start, with the driver that will own it.
#[derive(Clone, Debug)]
pub struct NewCheckout {
    pub id: OrderId,
    pub request: PlaceOrder,
    /// The checkout's Idempotency-Key: scope, key and the request's fingerprint.
    pub idem_scope: String,
    pub idem_key: String,
    pub idem_hash: Vec<u8>,
    pub owner: String,
    /// The user's lock resource, whose epoch this start mints.
    pub fence: String,
    pub at: chrono::DateTime<chrono::Utc>,
    /// The W3C traceparent of the drive, for a replica that recovers the saga.
    pub trace_parent: Option<String>,
}

/// How a start ended.
#[derive(Debug)]
pub enum StartOutcome {
    /// Committed: the saga is this driver's, writing with `epoch`.
    Started {
        epoch: i64,
    },
    /// The key already has its order (a retry, or a concurrent duplicate): nothing written.
    Exists,
    Failed(DbErr),
}

impl Store {
    /// Starts `batch` in one transaction if it can, else one by one. One outcome per
    /// checkout, in order.
    pub async fn start_checkouts(&self, batch: &[NewCheckout]) -> Vec<StartOutcome> {
        together_or_alone(
            batch,
            async {
                match self.start_together(batch).await? {
                    Some(epochs) => Ok(epochs.into_iter().map(|epoch| StartOutcome::Started { epoch }).collect()),
                    None => Err(DbErr::Custom("a key of the batch already has its order".into())),
                }
            },
            |checkout| async move {
                match self.start_alone(checkout).await {
                    Ok(Some(epoch)) => StartOutcome::Started { epoch },
                    Ok(None) => StartOutcome::Exists,
                    Err(err) => StartOutcome::Failed(err),
                }
            },
        )
        .await
    }

    /// `Ok(None)`: some key of the batch already has its order; nothing was written.
    async fn start_together(&self, batch: &[NewCheckout]) -> Result<Option<Vec<i64>>, DbErr> {
        let txn = self.begin().await?;
        // Fence rows are locked in one order by every batch (callers sort by fence). The new
        // epochs come back from the upsert itself (MariaDB's RETURNING gives a row's values
        // after its ON DUPLICATE KEY UPDATE), so no read follows it.
        let marks = vec!["(?, 1)"; batch.len()].join(", ");
        let rows = txn
            .query_all_raw(stmt(
                &format!(
                    "INSERT INTO lock_fence (resource, epoch) VALUES {marks} \
                     ON DUPLICATE KEY UPDATE epoch = epoch + 1 RETURNING resource, epoch"
                ),
                batch.iter().map(|c| Value::from(c.fence.as_str())),
            ))
            .await?;
        let mut epochs = Vec::with_capacity(batch.len());
        for checkout in batch {
            let mut epoch = None;
            for row in &rows {
                if row.try_get_by_index::<String>(0)? == checkout.fence {
                    epoch = Some(row.try_get_by_index::<i64>(1)?);
                }
            }
            epochs.push(epoch.ok_or_else(|| DbErr::Custom(format!("no fence row for {}", checkout.fence)))?);
        }
        if !insert_checkouts(&txn, batch, &epochs, self.lease_span()).await? {
            txn.rollback().await?;
            return Ok(None);
        }
        txn.commit().await?;
        Ok(Some(epochs))
    }

    /// `Ok(None)`: the key already has its order.
    async fn start_alone(&self, checkout: &NewCheckout) -> Result<Option<i64>, DbErr> {
        let txn = self.begin().await?;
        let epoch = kit::redlock::mint_epoch(&txn, &checkout.fence).await?;
        if !insert_checkouts(&txn, std::slice::from_ref(checkout), &[epoch], self.lease_span()).await? {
            txn.rollback().await?;
            return Ok(None);
        }
        txn.commit().await?;
        Ok(Some(epoch))
    }
}

/// Inserts the orders, lines and sagas of `batch`, one statement per table. `Ok(false)`: an
/// order already existed (INSERT IGNORE left it), and the caller must roll back.
async fn insert_checkouts(
    txn: &DatabaseTransaction,
    batch: &[NewCheckout],
    epochs: &[i64],
    lease: chrono::Duration,
) -> Result<bool, DbErr> {
    let mut orders: Vec<Value> = Vec::with_capacity(batch.len() * 5);
    let mut lines: Vec<Value> = Vec::new();
    let mut sagas: Vec<Value> = Vec::with_capacity(batch.len() * 11);
    let mut line_count = 0;
    for (checkout, epoch) in batch.iter().zip(epochs) {
        let (id, at) = (checkout.id.as_str(), checkout.at.naive_utc());
        let user = checkout.request.user().get();
        let coupon = checkout.request.coupon().map(|c| c.get());
        orders.extend([id.into(), user.into(), coupon.into(), at.into(), at.into()]);
        for (no, line) in checkout.request.lines().iter().enumerate() {
            lines.extend([id.into(), (no as i32).into(), line.product.get().into(), line.quantity.get().into()]);
            line_count += 1;
        }
        sagas.extend([
            id.into(),
            user.into(),
            checkout.owner.as_str().into(),
            (at + lease).into(),
            (*epoch).into(),
            checkout.idem_scope.as_str().into(),
            checkout.idem_key.as_str().into(),
            checkout.idem_hash.clone().into(),
            checkout.trace_parent.clone().into(),
            at.into(),
            at.into(),
        ]);
    }
    let marks = vec!["(?, ?, 'PENDING', ?, 1, ?, ?)"; batch.len()].join(", ");
    let inserted = txn
        .execute_raw(stmt(
            &format!(
                "INSERT IGNORE INTO orders (id, user_id, status, user_coupon_id, version, created_at, updated_at) \
                 VALUES {marks}"
            ),
            orders,
        ))
        .await?
        .rows_affected();
    if inserted != batch.len() as u64 {
        return Ok(false);
    }
    let marks = vec!["(?, ?, ?, ?)"; line_count].join(", ");
    txn.execute_raw(stmt(
        &format!("INSERT INTO order_line (order_id, line_no, product_id, quantity) VALUES {marks}"),
        lines,
    ))
    .await?;
    let marks = vec!["(?, ?, 'FORWARD', ?, ?, ?, ?, ?, ?, ?, ?, ?)"; batch.len()].join(", ");
    txn.execute_raw(stmt(
        &format!(
            "INSERT INTO saga (id, user_id, phase, owner, lease_until, fence_epoch, idem_scope, idem_key, idem_hash, \
             trace_parent, created_at, updated_at) VALUES {marks}"
        ),
        sagas,
    ))
    .await?;
    Ok(true)
}
