//! Saga participant: reserve stock for every line of an order, and give it back.
//!
//! Each is one local transaction guarded by the kit barrier. A line is taken with the
//! conditional `UPDATE ... WHERE stock >= ?` (one round trip, no read-then-write window);
//! zero rows affected means that line is short and the whole transaction rolls back.

use kit::barrier::{self, ActionGate, CompensationGate};
use kit::saga::SagaRef;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, Statement, TransactionTrait, Value,
};

use super::{finish, products::versions, retry_transient, store_err};
use crate::domain::{InventoryError, ReservationRequest, ReservedLine};

/// The outcome of a reservation: the priced lines, and the products' new versions (for
/// cache invalidation; empty on a replay, which changed nothing).
#[derive(Clone, Debug)]
pub struct Reserved {
    pub lines: Vec<ReservedLine>,
    pub changed: Vec<(i64, i64)>,
    pub replayed: bool,
}

#[derive(Clone, Debug)]
pub struct Released {
    pub units: i64,
    pub null_compensation: bool,
    pub changed: Vec<(i64, i64)>,
}

pub async fn reserve(
    db: &DatabaseConnection,
    saga: &SagaRef,
    request: &ReservationRequest,
) -> Result<Reserved, InventoryError> {
    retry_transient(|| async {
        let txn = db.begin().await.map_err(store_err)?;
        let outcome = reserve_in(&txn, saga, request).await;
        finish(txn, outcome).await
    })
    .await
}

pub async fn release(db: &DatabaseConnection, saga: &SagaRef) -> Result<Released, InventoryError> {
    retry_transient(|| async {
        let txn = db.begin().await.map_err(store_err)?;
        let outcome = release_in(&txn, saga).await;
        finish(txn, outcome).await
    })
    .await
}

async fn reserve_in(
    txn: &DatabaseTransaction,
    saga: &SagaRef,
    request: &ReservationRequest,
) -> Result<Reserved, InventoryError> {
    match barrier::enter_action(txn, saga).await.map_err(store_err)? {
        ActionGate::Proceed => {}
        ActionGate::AlreadyDone(_) => {
            let lines = reserved_lines_of(txn, saga.saga_id()).await?;
            return Ok(Reserved { lines, changed: Vec::new(), replayed: true });
        }
        ActionGate::Compensated => return Err(InventoryError::StepCompensated),
    }
    let now = kit::time::now_millis().naive_utc();
    // Lines arrive sorted by product id: every transaction locks rows in one order.
    for line in request.lines() {
        let (id, qty) = (line.product_id.get(), line.quantity.get());
        let taken = txn
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::MySql,
                "UPDATE product SET stock = stock - ?, version = version + 1, updated_at = ? WHERE id = ? AND stock >= ?",
                [qty.into(), now.into(), id.into(), qty.into()],
            ))
            .await
            .map_err(store_err)?
            .rows_affected();
        if taken == 0 {
            return Err(if exists(txn, id).await? {
                InventoryError::OutOfStock(line.product_id)
            } else {
                InventoryError::ProductNotFound(line.product_id)
            });
        }
    }
    let ids: Vec<i64> = request.lines().iter().map(|l| l.product_id.get()).collect();
    // Read under the row locks just taken: the prices and versions of this very change.
    let current = versions(txn, &ids).await?;
    let mut lines = Vec::with_capacity(ids.len());
    for line in request.lines() {
        let id = line.product_id.get();
        let unit_price = current.iter().find(|(pid, ..)| *pid == id).map(|&(_, price, _)| price).unwrap_or_default();
        lines.push(ReservedLine { product_id: id, quantity: line.quantity.get(), unit_price });
    }
    let rows: Vec<(&str, i64, i64, i64)> =
        lines.iter().map(|l| (saga.saga_id(), l.product_id, l.quantity, l.unit_price)).collect();
    insert_reservations(txn, &rows, now).await?;
    let changed = current.into_iter().map(|(id, _, version)| (id, version)).collect();
    Ok(Reserved { lines, changed, replayed: false })
}

/// What each reservation took, at what price: `(saga id, product, quantity, unit price)`,
/// one multi-row INSERT. The rows are what a release gives back.
pub(super) async fn insert_reservations(
    txn: &DatabaseTransaction,
    rows: &[(&str, i64, i64, i64)],
    now: chrono::NaiveDateTime,
) -> Result<(), InventoryError> {
    let mut values: Vec<Value> = Vec::with_capacity(rows.len() * 5);
    for &(saga_id, product, quantity, unit_price) in rows {
        values.extend([saga_id.into(), product.into(), quantity.into(), unit_price.into(), now.into()]);
    }
    let marks = vec!["(?, ?, ?, ?, ?)"; rows.len()].join(", ");
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::MySql,
        format!("INSERT INTO reservation (saga_id, product_id, quantity, unit_price, created_at) VALUES {marks}"),
        values,
    ))
    .await
    .map_err(store_err)?;
    Ok(())
}

async fn release_in(txn: &DatabaseTransaction, saga: &SagaRef) -> Result<Released, InventoryError> {
    match barrier::enter_compensation(txn, saga).await.map_err(store_err)? {
        CompensationGate::Undo => {}
        CompensationGate::NullCompensation => {
            return Ok(Released { units: 0, null_compensation: true, changed: Vec::new() });
        }
        CompensationGate::AlreadyCompensated => {
            return Ok(Released { units: 0, null_compensation: false, changed: Vec::new() });
        }
    }
    let held = txn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            "SELECT product_id, quantity FROM reservation WHERE saga_id = ? AND released_at IS NULL ORDER BY product_id FOR UPDATE",
            [saga.saga_id().into()],
        ))
        .await
        .map_err(store_err)?;
    let now = kit::time::now_millis().naive_utc();
    let mut units = 0;
    let mut ids = Vec::with_capacity(held.len());
    for row in &held {
        let id: i64 = row.try_get_by_index(0).map_err(store_err)?;
        let qty: i64 = row.try_get_by_index(1).map_err(store_err)?;
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            "UPDATE product SET stock = stock + ?, version = version + 1, updated_at = ? WHERE id = ?",
            [qty.into(), now.into(), id.into()],
        ))
        .await
        .map_err(store_err)?;
        units += qty;
        ids.push(id);
    }
    if ids.is_empty() {
        return Ok(Released { units: 0, null_compensation: false, changed: Vec::new() });
    }
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::MySql,
        "UPDATE reservation SET released_at = ? WHERE saga_id = ? AND released_at IS NULL",
        [now.into(), saga.saga_id().into()],
    ))
    .await
    .map_err(store_err)?;
    let changed = versions(txn, &ids).await?.into_iter().map(|(id, _, version)| (id, version)).collect();
    Ok(Released { units, null_compensation: false, changed })
}

pub(super) async fn exists(txn: &DatabaseTransaction, id: i64) -> Result<bool, InventoryError> {
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            "SELECT 1 FROM product WHERE id = ?",
            [id.into()],
        ))
        .await
        .map_err(store_err)?;
    Ok(row.is_some())
}

/// What `saga_id` reserved, for answering a duplicate action.
pub(super) async fn reserved_lines_of(
    txn: &DatabaseTransaction,
    saga_id: &str,
) -> Result<Vec<ReservedLine>, InventoryError> {
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            "SELECT product_id, quantity, unit_price FROM reservation WHERE saga_id = ? ORDER BY product_id",
            [saga_id.into()],
        ))
        .await
        .map_err(store_err)?;
    rows.iter()
        .map(|row| {
            Ok(ReservedLine {
                product_id: row.try_get_by_index(0).map_err(store_err)?,
                quantity: row.try_get_by_index(1).map_err(store_err)?,
                unit_price: row.try_get_by_index(2).map_err(store_err)?,
            })
        })
        .collect()
}

/// Of `saga_ids`, those whose stock is reserved and not released (reconciliation).
pub async fn held_by(db: &DatabaseConnection, saga_ids: &[String]) -> Result<Vec<String>, InventoryError> {
    let select = |marks: &str| {
        format!("SELECT DISTINCT saga_id FROM reservation WHERE saga_id IN ({marks}) AND released_at IS NULL")
    };
    kit::db::ids_among(db, select, saga_ids).await.map_err(store_err)
}
