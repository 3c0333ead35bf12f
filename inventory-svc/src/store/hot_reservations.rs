//! Group commit for a hot product: the single-line reservations of one product that queued
//! up together are decided in one transaction (DESIGN.md, "Stock").
//!
//! Each order still succeeds or fails on its own, in arrival order: the row is read
//! `FOR UPDATE`, the requests are allocated one by one against it, and the accepted ones
//! are taken with a single UPDATE. The barrier holds per saga exactly as in the one-by-one
//! path: fresh actions are recognised by a per-batch marker on the row they inserted, a
//! rejected action's barrier row is removed again (as a rollback would), duplicates get
//! the stored reservation, and compensated sagas are refused.

use std::collections::HashMap;

use kit::barrier::{self, ActionGate};
use kit::saga::SagaRef;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, Statement, TransactionTrait, Value,
};

use super::reservations::{Reserved, reserve, reserved_lines_of};
use super::{finish, retry_transient, store_err};
use crate::domain::{InventoryError, ProductId, Quantity, ReservationRequest, ReservedLine, StockLine};

/// One queued single-line reservation.
#[derive(Clone, Debug)]
pub struct HotReservation {
    pub saga: SagaRef,
    pub quantity: Quantity,
}

type Outcome = Result<Reserved, InventoryError>;

/// Decides `items` (arrival order) for `product`: one result per item, in order.
pub async fn reserve_batch(db: &DatabaseConnection, product: ProductId, items: &[HotReservation]) -> Vec<Outcome> {
    // A batch of one is an ordinary reservation: the one-by-one path decides it in fewer
    // statements (no marker to read back, no row read before the conditional UPDATE).
    if let [item] = items {
        let line = StockLine { product_id: product, quantity: item.quantity };
        return vec![match ReservationRequest::parse(vec![line]) {
            Ok(request) => reserve(db, &item.saga, &request).await,
            Err(err) => Err(err),
        }];
    }
    let decided = retry_transient(|| async {
        let txn = db.begin().await.map_err(store_err)?;
        let outcome = decide(&txn, product, items).await;
        finish(txn, outcome).await
    })
    .await;
    match decided {
        Ok(outcomes) => outcomes,
        Err(err) => {
            // The transaction as a whole failed: every item fails the same way, nothing changed.
            let shared = ShareableError::from(err);
            items.iter().map(|_| Err(shared.to_error())).collect()
        }
    }
}

async fn decide(
    txn: &DatabaseTransaction,
    product: ProductId,
    items: &[HotReservation],
) -> Result<Vec<Outcome>, InventoryError> {
    // The first occurrence of a saga in the batch speaks for its duplicates.
    let mut first_of: HashMap<(&str, &str), usize> = HashMap::new();
    let mut unique = Vec::new();
    for (i, item) in items.iter().enumerate() {
        first_of.entry((item.saga.saga_id(), item.saga.step())).or_insert_with(|| {
            unique.push(i);
            i
        });
    }
    let sagas: Vec<&SagaRef> = unique.iter().map(|&i| &items[i].saga).collect();
    let gates: HashMap<usize, ActionGate> =
        unique.iter().copied().zip(barrier::enter_actions(txn, &sagas).await.map_err(store_err)?).collect();

    let mut outcomes: Vec<Option<Outcome>> = (0..items.len()).map(|_| None).collect();
    let fresh: Vec<usize> = unique.iter().copied().filter(|i| matches!(gates[i], ActionGate::Proceed)).collect();
    let mut rejected = Vec::new();
    let mut changed = Vec::new();
    if !fresh.is_empty() {
        let row = txn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::MySql,
                "SELECT stock, price, version FROM product WHERE id = ? FOR UPDATE",
                [product.get().into()],
            ))
            .await
            .map_err(store_err)?;
        let Some(row) = row else {
            for &i in &fresh {
                outcomes[i] = Some(Err(InventoryError::ProductNotFound(product)));
                rejected.push(i);
            }
            delete_barriers(txn, items, &rejected).await?;
            return Ok(settle_duplicates(items, &first_of, outcomes));
        };
        let (mut stock, price, version): (i64, i64, i64) = (
            row.try_get_by_index(0).map_err(store_err)?,
            row.try_get_by_index(1).map_err(store_err)?,
            row.try_get_by_index(2).map_err(store_err)?,
        );
        let mut accepted = Vec::new();
        for &i in &fresh {
            let qty = items[i].quantity.get();
            if qty <= stock {
                stock -= qty;
                accepted.push(i);
            } else {
                outcomes[i] = Some(Err(InventoryError::OutOfStock(product)));
                rejected.push(i);
            }
        }
        delete_barriers(txn, items, &rejected).await?;
        if !accepted.is_empty() {
            let taken: i64 = accepted.iter().map(|&i| items[i].quantity.get()).sum();
            let orders = accepted.len() as i64;
            let now = kit::time::now_millis().naive_utc();
            // `stock >= ?` again: the row is locked, so this only guards against a bug above.
            let updated = txn
                .execute_raw(Statement::from_sql_and_values(
                    DbBackend::MySql,
                    "UPDATE product SET stock = stock - ?, version = version + ?, updated_at = ? WHERE id = ? AND stock >= ?",
                    [taken.into(), orders.into(), now.into(), product.get().into(), taken.into()],
                ))
                .await
                .map_err(store_err)?
                .rows_affected();
            if updated != 1 {
                return Err(InventoryError::Store(anyhow::anyhow!(
                    "hot-row batch lost its row lock on product {product}"
                )));
            }
            let mut values: Vec<Value> = Vec::with_capacity(accepted.len() * 5);
            for &i in &accepted {
                let saga_id = items[i].saga.saga_id();
                values.extend([
                    saga_id.into(),
                    product.get().into(),
                    items[i].quantity.get().into(),
                    price.into(),
                    now.into(),
                ]);
            }
            let rows = vec!["(?, ?, ?, ?, ?)"; accepted.len()].join(", ");
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::MySql,
                format!(
                    "INSERT INTO reservation (saga_id, product_id, quantity, unit_price, created_at) VALUES {rows}"
                ),
                values,
            ))
            .await
            .map_err(store_err)?;
            changed.push((product.get(), version + orders));
            for &i in &accepted {
                let line =
                    ReservedLine { product_id: product.get(), quantity: items[i].quantity.get(), unit_price: price };
                outcomes[i] = Some(Ok(Reserved { lines: vec![line], changed: changed.clone(), replayed: false }));
            }
        }
    }
    for &i in &unique {
        match gates[&i] {
            ActionGate::Proceed => {}
            ActionGate::Compensated => outcomes[i] = Some(Err(InventoryError::StepCompensated)),
            ActionGate::AlreadyDone(_) => {
                let lines = reserved_lines_of(txn, items[i].saga.saga_id()).await?;
                outcomes[i] = Some(Ok(Reserved { lines, changed: Vec::new(), replayed: true }));
            }
        }
    }
    Ok(settle_duplicates(items, &first_of, outcomes))
}

/// Removes the action rows of rejected items, as the rollback of a failed action would.
async fn delete_barriers(
    txn: &DatabaseTransaction,
    items: &[HotReservation],
    rejected: &[usize],
) -> Result<(), InventoryError> {
    let sagas: Vec<&SagaRef> = rejected.iter().map(|&i| &items[i].saga).collect();
    barrier::forget_actions(txn, &sagas).await.map_err(store_err)
}

/// Fills in the duplicates from their first occurrence: a duplicate of a success is a replay.
fn settle_duplicates(
    items: &[HotReservation],
    first_of: &HashMap<(&str, &str), usize>,
    mut outcomes: Vec<Option<Outcome>>,
) -> Vec<Outcome> {
    for i in 0..items.len() {
        if outcomes[i].is_some() {
            continue;
        }
        let first = first_of[&(items[i].saga.saga_id(), items[i].saga.step())];
        outcomes[i] = Some(match &outcomes[first] {
            Some(Ok(reserved)) => Ok(Reserved { lines: reserved.lines.clone(), changed: Vec::new(), replayed: true }),
            Some(Err(err)) => Err(ShareableError::from_ref(err).to_error()),
            None => Err(InventoryError::Store(anyhow::anyhow!("batch left an item undecided"))),
        });
    }
    outcomes.into_iter().map(|o| o.expect("every item decided")).collect()
}

/// An error that can be handed to several waiters (the store error's cause is not `Clone`).
enum ShareableError {
    NotFound(ProductId),
    OutOfStock(ProductId),
    Compensated,
    Other(String),
}

impl ShareableError {
    fn from_ref(err: &InventoryError) -> Self {
        match err {
            InventoryError::ProductNotFound(id) => Self::NotFound(*id),
            InventoryError::OutOfStock(id) => Self::OutOfStock(*id),
            InventoryError::StepCompensated => Self::Compensated,
            other => Self::Other(format!("{other:#}")),
        }
    }

    fn to_error(&self) -> InventoryError {
        match self {
            Self::NotFound(id) => InventoryError::ProductNotFound(*id),
            Self::OutOfStock(id) => InventoryError::OutOfStock(*id),
            Self::Compensated => InventoryError::StepCompensated,
            Self::Other(cause) => InventoryError::Store(anyhow::anyhow!("{cause}")),
        }
    }
}

impl From<InventoryError> for ShareableError {
    fn from(err: InventoryError) -> Self {
        match err {
            InventoryError::Store(cause) => Self::Other(format!("{cause:#}")),
            other => Self::from_ref(&other),
        }
    }
}
