//! The point use cases. Charges and uses may carry an Idempotency-Key: they then run at
//! most once per key, and a retry gets the first answer again (kit::idempotency).

use kit::ServiceError;
use kit::idempotency::{self, IdempotencyKey, Once};
use kit::saga::SagaRef;
use sea_orm::DatabaseConnection;

use crate::domain::{
    Balance, ChargeAmount, DebitAmount, HistoryLimit, LedgerEntry, OrderRef, PayAmount, PointError, UserId,
};
use crate::store::{self, PaymentRecord, Refunded};

#[derive(Clone)]
pub struct Points {
    db: DatabaseConnection,
}

impl Points {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
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
        outcome
    }

    pub async fn use_points(&self, user: UserId, amount: DebitAmount, key: Option<IdempotencyKey>) -> Once<Balance> {
        let outcome = idempotency::run_once(&self.db, key, idempotency::DEFAULT_LEASE, |key| async move {
            store::use_points(&self.db, user, amount, key.as_ref()).await.map_err(ServiceError::from)
        })
        .await;
        count("use", &outcome);
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
        let result = store::pay(&self.db, saga, user, order, amount).await;
        let outcome = match &result {
            Ok(record) if record.replayed => "replayed",
            Ok(_) => "paid",
            Err(PointError::InsufficientPoints) => "insufficient",
            Err(_) => "failed",
        };
        metrics::counter!("point_payments_total", "outcome" => outcome).increment(1);
        result
    }

    pub async fn refund(&self, saga: &SagaRef) -> Result<Refunded, PointError> {
        let refunded = store::refund(&self.db, saga).await?;
        metrics::counter!("point_refunds_total").increment(1);
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
