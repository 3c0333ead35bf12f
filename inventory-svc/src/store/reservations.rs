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

use super::{finish, finish_if_some, products::versions, retry_transient, store_err};
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

/// A saga's reservation. Tried result first ([`reserve_first_time`]), which is what nearly
/// every call is; a duplicate or a compensation that came first is rolled back and decided
/// through the barrier's gate.
pub async fn reserve(
    db: &DatabaseConnection,
    saga: &SagaRef,
    request: &ReservationRequest,
) -> Result<Reserved, InventoryError> {
    retry_transient(|| async {
        let txn = db.begin().await.map_err(store_err)?;
        let first = reserve_first_time(&txn, saga, request).await;
        if let Some(reserved) = finish_if_some(txn, first).await? {
            return Ok(reserved);
        }
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

/// The reservation as a first call: the stock taken, the reservations priced and inserted,
/// then the barrier row claimed (`kit::barrier::claim_actions`): three statements for one
/// line. A short line is refused here unless the barrier knows the action. `None`: not a
/// plain first call (done before, or compensated first); the caller rolls this back.
async fn reserve_first_time(
    txn: &DatabaseTransaction,
    saga: &SagaRef,
    request: &ReservationRequest,
) -> Result<Option<Reserved>, InventoryError> {
    if let Err(short) = take_lines(txn, request).await? {
        return match barrier::enter_action(txn, saga).await.map_err(store_err)? {
            ActionGate::Proceed => Err(short),
            ActionGate::AlreadyDone(_) | ActionGate::Compensated => Ok(None),
        };
    }
    let Some(reserved) = price_lines(txn, saga, request).await? else {
        return Ok(None);
    };
    let fresh = barrier::claim_actions(txn, &[(saga, Vec::new())]).await.map_err(store_err)?;
    Ok(fresh.then_some(reserved))
}

/// The reservation through the barrier's gate: a replay, a refusal, or the first call.
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
    take_lines(txn, request).await??;
    price_lines(txn, saga, request)
        .await?
        .ok_or_else(|| InventoryError::Store(anyhow::anyhow!("reservations of a fresh action already there")))
}

/// Takes every line's stock with its conditional UPDATE. `Ok(Err(_))`: a line is short (out
/// of stock, or no such product) and the caller must roll back what was taken.
async fn take_lines(
    txn: &DatabaseTransaction,
    request: &ReservationRequest,
) -> Result<Result<(), InventoryError>, InventoryError> {
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
            return Ok(Err(if exists(txn, id).await? {
                InventoryError::OutOfStock(line.product_id)
            } else {
                InventoryError::ProductNotFound(line.product_id)
            }));
        }
    }
    Ok(Ok(()))
}

/// Inserts the reservations of lines just taken and answers them priced. `None`: the saga
/// has its reservations already (a duplicate); the caller must roll back.
async fn price_lines(
    txn: &DatabaseTransaction,
    saga: &SagaRef,
    request: &ReservationRequest,
) -> Result<Option<Reserved>, InventoryError> {
    let rows: Vec<(&str, i64, i64)> =
        request.lines().iter().map(|l| (saga.saga_id(), l.product_id.get(), l.quantity.get())).collect();
    let priced = insert_priced_reservations(txn, &rows, kit::time::now_millis().naive_utc()).await?;
    if priced.len() != rows.len() {
        return Ok(None);
    }
    let mut lines = Vec::with_capacity(rows.len());
    for line in request.lines() {
        let id = line.product_id.get();
        let unit_price = priced.iter().find(|p| p.product_id == id).map(|p| p.unit_price).unwrap_or_default();
        lines.push(ReservedLine { product_id: id, quantity: line.quantity.get(), unit_price });
    }
    let changed = priced.iter().map(|p| (p.product_id, p.version)).collect();
    Ok(Some(Reserved { lines, changed, replayed: false }))
}

/// A reservation row as inserted: its product's price (now the reservation's) and the
/// product's version after the take.
#[derive(Clone, Debug)]
pub(super) struct PricedReservation {
    pub saga_id: String,
    pub product_id: i64,
    pub unit_price: i64,
    pub version: i64,
}

/// Inserts the reservations `(saga id, product, quantity)` of stock just taken, each at its
/// product's current price, and answers the rows inserted, with the prices and the
/// products' new versions. A saga that has its reservation already (a duplicate call) gets
/// no row, so fewer rows than asked means a duplicate. One
/// `INSERT ... SELECT ... RETURNING` (MariaDB), where a separate read of the locked rows
/// and an insert were two round trips. The product rows are locked by the caller's UPDATEs,
/// so the price and version read are those of this very change.
pub(super) async fn insert_priced_reservations(
    txn: &DatabaseTransaction,
    rows: &[(&str, i64, i64)],
    now: chrono::NaiveDateTime,
) -> Result<Vec<PricedReservation>, InventoryError> {
    let mut values: Vec<Value> = Vec::with_capacity(1 + rows.len() * 3);
    values.push(now.into());
    for &(saga_id, product, quantity) in rows {
        values.extend([saga_id.into(), product.into(), quantity.into()]);
    }
    let wanted = kit::db::values_table(&["saga_id", "product_id", "quantity"], rows.len());
    let inserted = txn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            format!(
                "INSERT IGNORE INTO reservation (saga_id, product_id, quantity, unit_price, created_at) \
                 SELECT w.saga_id, p.id, w.quantity, p.price, ? FROM ({wanted}) w JOIN product p ON p.id = w.product_id \
                 RETURNING saga_id, product_id, unit_price, (SELECT v.version FROM product v WHERE v.id = product_id)"
            ),
            values,
        ))
        .await
        .map_err(store_err)?;
    inserted
        .iter()
        .map(|row| {
            Ok(PricedReservation {
                saga_id: row.try_get_by_index(0).map_err(store_err)?,
                product_id: row.try_get_by_index(1).map_err(store_err)?,
                unit_price: row.try_get_by_index(2).map_err(store_err)?,
                version: row.try_get_by_index(3).map_err(store_err)?,
            })
        })
        .collect()
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
