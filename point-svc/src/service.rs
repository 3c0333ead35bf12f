//! The point use cases. Charges and uses may carry an Idempotency-Key: they then run at
//! most once per key, and a retry gets the first answer again (kit::idempotency).

use kit::ServiceError;
use kit::batch::Combiner;
use kit::idempotency::{self, IdempotencyKey, Once};
use kit::saga::SagaRef;
use sea_orm::DatabaseConnection;
use tracing::Instrument;

use crate::domain::{
    Balance, ChargeAmount, DebitAmount, EntryType, HistoryLimit, LedgerEntry, OrderRef, PayAmount, PointError, UserId,
};
use crate::store::{self, PaymentRecord, QueuedPayment, Refunded};

type PayLanes = Combiner<usize, QueuedPayment, Result<PaymentRecord, PointError>>;

#[derive(Clone)]
pub struct Points {
    db: DatabaseConnection,
    /// Group commit of saga payments (`store::pay_batch`), a lane per slice of users.
    payments: Option<(PayLanes, usize)>,
}

impl Points {
    /// `pay_batch_max`: most saga payments decided in one transaction (0 = one each);
    /// `lanes`: batches that commit at once.
    pub fn new(db: DatabaseConnection, pay_batch_max: usize, lanes: usize) -> Self {
        let payments = (pay_batch_max > 0).then(|| {
            let db = db.clone();
            let combiner = Combiner::new(pay_batch_max, move |_lane, items: Vec<QueuedPayment>| {
                let db = db.clone();
                async move { store::pay_batch(&db, &items).await }
            });
            (combiner, lanes.max(1))
        });
        Self { db, payments }
    }

    pub async fn balance(&self, user: UserId) -> Result<Balance, PointError> {
        store::balance(&self.db, user).await
    }

    pub async fn charge(&self, user: UserId, amount: ChargeAmount, key: Option<IdempotencyKey>) -> Once<Balance> {
        let outcome = idempotency::run_once(&self.db, key, idempotency::DEFAULT_LEASE, |key| async move {
            store::charge(&self.db, user, amount, key.as_ref()).await.map_err(ServiceError::from)
        })
        .await;
        count("charge", &outcome);
        moved(EntryType::Charge, &outcome, amount.get());
        outcome
    }

    pub async fn use_points(&self, user: UserId, amount: DebitAmount, key: Option<IdempotencyKey>) -> Once<Balance> {
        let outcome = idempotency::run_once(&self.db, key, idempotency::DEFAULT_LEASE, |key| async move {
            store::use_points(&self.db, user, amount, key.as_ref()).await.map_err(ServiceError::from)
        })
        .await;
        count("use", &outcome);
        moved(EntryType::Use, &outcome, amount.get());
        outcome
    }

    pub async fn history(&self, user: UserId, limit: HistoryLimit) -> Result<Vec<LedgerEntry>, PointError> {
        store::history(&self.db, user, limit).await
    }

    pub async fn pay(
        &self,
        saga: &SagaRef,
        user: UserId,
        order: &OrderRef,
        amount: PayAmount,
    ) -> Result<PaymentRecord, PointError> {
        let result = match &self.payments {
            Some((lanes, count)) => {
                let lane = (user.get().unsigned_abs() % *count as u64) as usize;
                let item = QueuedPayment { saga: saga.clone(), user, order: order.clone(), amount };
                lanes
                    .submit(lane, item)
                    .instrument(tracing::info_span!("sql.pay_points", saga_id = saga.saga_id(), batched = true))
                    .await
                    .unwrap_or_else(|lost| Err(PointError::Store(lost.into())))
            }
            None => {
                store::pay(&self.db, saga, user, order, amount)
                    .instrument(tracing::info_span!("sql.pay_points", saga_id = saga.saga_id(), batched = false))
                    .await
            }
        };
        let outcome = match &result {
            Ok(record) if record.replayed => "replayed",
            Ok(_) => "paid",
            Err(PointError::InsufficientPoints) => "insufficient",
            Err(_) => "failed",
        };
        metrics::counter!("point_payments_total", "outcome" => outcome).increment(1);
        if let Ok(record) = &result
            && !record.replayed
        {
            points_moved(EntryType::Payment, record.amount);
        }
        result
    }

    /// Of `order_ids`, those whose points are paid and not refunded now.
    pub async fn paid_for(&self, order_ids: &[String]) -> Result<Vec<String>, PointError> {
        store::paid_for(&self.db, order_ids).await
    }

    pub async fn refund(&self, saga: &SagaRef) -> Result<Refunded, PointError> {
        let refunded = store::refund(&self.db, saga)
            .instrument(tracing::info_span!("sql.refund_points", saga_id = saga.saga_id()))
            .await?;
        metrics::counter!("point_refunds_total").increment(1);
        points_moved(EntryType::Refund, refunded.amount);
        Ok(refunded)
    }
}

fn count<T>(operation: &'static str, outcome: &Once<T>) {
    let label = match (&outcome.result, outcome.replayed) {
        (_, true) => "replayed".to_owned(),
        (Ok(_), false) => "ok".to_owned(),
        (Err(err), false) => err.code.as_str().to_lowercase(),
    };
    metrics::counter!("point_movements_total", "operation" => operation, "outcome" => label).increment(1);
}

/// Points that changed hands, by ledger entry type (a replay moved nothing).
fn points_moved(entry: EntryType, amount: i64) {
    if amount > 0 {
        metrics::counter!("points_moved_total", "type" => entry.as_str()).increment(amount.unsigned_abs());
    }
}

fn moved<T>(entry: EntryType, outcome: &Once<T>, amount: i64) {
    if outcome.result.is_ok() && !outcome.replayed {
        points_moved(entry, amount);
    }
}
