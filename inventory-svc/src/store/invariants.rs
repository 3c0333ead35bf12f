//! What inventory-svc's own data must satisfy, as queries for the invariant watcher
//! (`kit::invariants`). Each returns what breaks its invariant, at most `LIMIT` rows.
//!
//! Cost: `negative_stock` reads every product row (the CHECK constraint already refuses a
//! negative stock; this catches a constraint dropped or bypassed); `reservation_overrelease`
//! reads only released reservations through the barrier's primary key. Both are full passes
//! every `INVENTORY_INVARIANT_CHECK_EVERY_SECS` (default 30); their cost is in the README.

use kit::invariants::{Violation, Watcher};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

/// Rows reported per check and pass; the gauge counts up to this many.
const LIMIT: u32 = 1_000;

/// The inventory's invariants, checked on `db`.
pub fn watcher(db: DatabaseConnection, every: std::time::Duration) -> Watcher {
    let stock_db = db.clone();
    Watcher::new("inventory-svc", every)
        .check("negative_stock", move || negative_stock(stock_db.clone()))
        .check("reservation_overrelease", move || reservation_overrelease(db.clone()))
}

async fn negative_stock(db: DatabaseConnection) -> anyhow::Result<Vec<Violation>> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::MySql,
            format!("SELECT id, stock FROM product WHERE stock < 0 ORDER BY id LIMIT {LIMIT}"),
        ))
        .await?;
    rows.iter()
        .map(|row| {
            let (id, stock): (i64, i64) = (row.try_get_by_index(0)?, row.try_get_by_index(1)?);
            Ok(format!("product {id} has stock {stock}, expected >= 0"))
        })
        .collect()
}

/// Stock is given back only by a compensation, which first writes its barrier row in the
/// same transaction: a released reservation without that row was given back some other way
/// (twice, or by hand), and the product's stock is off by its quantity.
async fn reservation_overrelease(db: DatabaseConnection) -> anyhow::Result<Vec<Violation>> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::MySql,
            format!(
                "SELECT r.saga_id, r.product_id, r.quantity FROM reservation r \
                 LEFT JOIN saga_barrier b ON b.saga_id = r.saga_id AND b.step = 'RESERVE_STOCK' AND b.op = 'compensate' \
                 WHERE r.released_at IS NOT NULL AND b.saga_id IS NULL ORDER BY r.saga_id LIMIT {LIMIT}"
            ),
        ))
        .await?;
    rows.iter()
        .map(|row| {
            let (saga, product, quantity): (String, i64, i64) =
                (row.try_get_by_index(0)?, row.try_get_by_index(1)?, row.try_get_by_index(2)?);
            Ok(format!(
                "reservation of saga {saga} released {quantity} units of product {product} without its compensation"
            ))
        })
        .collect()
}
