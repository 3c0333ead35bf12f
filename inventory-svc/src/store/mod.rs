//! Persistence of the inventory: the only module that speaks SQL (MySQL via sea-orm) or
//! talks to Redis.

mod cache;
mod entity;
mod hot_reservations;
mod products;
mod reservations;

pub use cache::ProductCache;
pub use hot_reservations::{HotReservation, reserve_batch};
pub use products::{create, get, list, set_stock};
pub use reservations::{Released, Reserved, release, reserve};

use crate::domain::InventoryError;

fn store_err(err: sea_orm::DbErr) -> InventoryError {
    InventoryError::Store(anyhow::Error::new(err))
}

/// Runs `attempt` again when MySQL reports a deadlock or lock-wait timeout: the
/// transaction was rolled back as a whole, so trying it again is safe.
async fn retry_transient<T, F, Fut>(mut attempt: F) -> Result<T, InventoryError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, InventoryError>>,
{
    const ATTEMPTS: u32 = 3;
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Err(InventoryError::Store(cause)) if tries < ATTEMPTS && is_transient(&cause) => {
                tracing::warn!(error = %cause, tries, "transient database error, retrying the transaction");
                tokio::time::sleep(std::time::Duration::from_millis(5 * u64::from(tries))).await;
            }
            other => return other,
        }
    }
}

fn is_transient(cause: &anyhow::Error) -> bool {
    cause.downcast_ref::<sea_orm::DbErr>().is_some_and(kit::db::is_transient)
}
