//! Persistence of coupons: MySQL (the record) and the Redis issue gate (a fast, rebuildable
//! admission check in front of it). The only module that speaks SQL or Redis.

mod coupons;
mod gate;
mod invariants;
mod issue;
mod saga;

pub use coupons::{create, get, holds, issued_quantity, list, user_coupons};
pub use gate::{Admission, IssueGate};
pub use invariants::watcher as invariant_watcher;
pub use issue::{IssueRequest, all_holders, holders_among, issue_batch};
pub use saga::{Restored, Used, restore, use_coupon, used_by};

use crate::domain::CouponError;

fn store_err(err: sea_orm::DbErr) -> CouponError {
    CouponError::Store(anyhow::Error::new(err))
}

async fn retry_transient<T, F, Fut>(attempt: F) -> Result<T, CouponError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CouponError>>,
{
    kit::db::retry_transient(
        |err| matches!(err, CouponError::Store(cause) if kit::db::is_transient_cause(cause)),
        attempt,
    )
    .await
}

async fn finish<T>(txn: sea_orm::DatabaseTransaction, outcome: Result<T, CouponError>) -> Result<T, CouponError> {
    kit::db::finish(txn, outcome, store_err).await
}
