//! Persistence of points: the only module that speaks SQL.
//!
//! Every movement is one transaction: a conditional UPDATE of the balance row (a debit only
//! `WHERE balance >= ?`, a charge only below the cap) and the ledger line appended with the
//! balance read back in the same statement, so the ledger always sums to the balance.

mod ledger;
mod saga;

pub use ledger::{balance, charge, history, use_points};
pub use saga::{PaymentRecord, Refunded, pay, refund};

use crate::domain::PointError;

fn store_err(err: sea_orm::DbErr) -> PointError {
    PointError::Store(anyhow::Error::new(err))
}

/// Runs `attempt` again when MySQL reports a deadlock or lock-wait timeout: the
/// transaction was rolled back as a whole, so trying it again is safe.
async fn retry_transient<T, F, Fut>(mut attempt: F) -> Result<T, PointError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, PointError>>,
{
    const ATTEMPTS: u32 = 3;
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Err(PointError::Store(cause))
                if tries < ATTEMPTS && cause.downcast_ref::<sea_orm::DbErr>().is_some_and(kit::db::is_transient) =>
            {
                tracing::warn!(error = %cause, tries, "transient database error, retrying the transaction");
                tokio::time::sleep(std::time::Duration::from_millis(5 * u64::from(tries))).await;
            }
            other => return other,
        }
    }
}
