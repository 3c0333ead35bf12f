//! Persistence of points: the only module that speaks SQL.
//!
//! Every movement is one transaction: a conditional UPDATE of the balance row (a debit only
//! `WHERE balance >= ?`, a charge only below the cap) and the ledger line appended with the
//! balance read back in the same statement, so the ledger always sums to the balance.

mod invariants;
mod ledger;
mod pay_batch;
mod saga;

pub use invariants::watcher as invariant_watcher;
pub use ledger::{balance, charge, history, use_points};
pub use pay_batch::{QueuedPayment, pay_batch};
pub use saga::{PaymentRecord, Refunded, paid_for, pay, refund};

use crate::domain::PointError;

fn store_err(err: sea_orm::DbErr) -> PointError {
    PointError::Store(anyhow::Error::new(err))
}

/// Retries a transaction that MySQL rolled back as a deadlock victim or lock-wait timeout.
async fn retry_transient<T, F, Fut>(attempt: F) -> Result<T, PointError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, PointError>>,
{
    kit::db::retry_transient(
        |err| matches!(err, PointError::Store(cause) if kit::db::is_transient_cause(cause)),
        attempt,
    )
    .await
}

/// Commits on success, rolls back on any error.
async fn finish<T>(txn: sea_orm::DatabaseTransaction, outcome: Result<T, PointError>) -> Result<T, PointError> {
    kit::db::finish(txn, outcome, store_err).await
}

/// Commits when `outcome` holds a value; rolls back on `None` and on any error.
async fn finish_if_some<T>(
    txn: sea_orm::DatabaseTransaction,
    outcome: Result<Option<T>, PointError>,
) -> Result<Option<T>, PointError> {
    kit::db::finish_if_some(txn, outcome, store_err).await
}
