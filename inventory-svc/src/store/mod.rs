//! Persistence of the inventory: the only module that speaks SQL (MySQL via sea-orm) or
//! talks to Redis. `catalog` (with `fold` and `search`, the name index) creates and lists
//! products; `list_cache` caches pages; `cache` single products.

mod cache;
mod catalog;
mod entity;
mod fold;
mod hot_reservations;
mod invariants;
mod list_cache;
mod products;
mod reservations;
mod search;

pub use cache::ProductCache;
pub use catalog::{CatalogStat, Created, Match, NameMatch, backfill, by_ids, create, matches, page, stat};
pub use fold::{CollationFold, NAME_COLLATION};
pub use hot_reservations::{HotReservation, reserve_batch};
pub use invariants::watcher as invariant_watcher;
pub use list_cache::ListCache;
pub use products::{get, set_stock};
pub use reservations::{Released, Reserved, held_by, release, reserve};

use crate::domain::InventoryError;

fn store_err(err: sea_orm::DbErr) -> InventoryError {
    InventoryError::Store(anyhow::Error::new(err))
}

/// Retries a transaction that MySQL rolled back as a deadlock victim or lock-wait timeout.
async fn retry_transient<T, F, Fut>(attempt: F) -> Result<T, InventoryError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, InventoryError>>,
{
    kit::db::retry_transient(
        |err| matches!(err, InventoryError::Store(cause) if kit::db::is_transient_cause(cause)),
        attempt,
    )
    .await
}

/// Commits on success, rolls back on any error.
async fn finish<T>(txn: sea_orm::DatabaseTransaction, outcome: Result<T, InventoryError>) -> Result<T, InventoryError> {
    kit::db::finish(txn, outcome, store_err).await
}

/// Commits when `outcome` holds a value; rolls back on `None` and on any error.
async fn finish_if_some<T>(
    txn: sea_orm::DatabaseTransaction,
    outcome: Result<Option<T>, InventoryError>,
) -> Result<Option<T>, InventoryError> {
    kit::db::finish_if_some(txn, outcome, store_err).await
}
