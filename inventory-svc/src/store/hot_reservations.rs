//! Group commit of single-line reservations (DESIGN.md, "Stock"): the reservations that
//! queued up together, of one hot product or of many, are decided in one transaction.
//!
//! Each order still succeeds or fails on its own, in arrival order. Products are taken in
//! id order (no deadlocks): a product asked for once is taken with its conditional UPDATE; a
//! product asked for several times (a hot SKU) has its row read `FOR UPDATE`, the requests
//! allocated one by one against it, and the accepted ones taken with a single UPDATE. One
//! INSERT writes every reservation and answers every price and new version. The barrier holds
//! per saga exactly as in the one-by-one path (`kit::barrier::enter_actions`): a rejected
//! action's barrier row is removed again (as a rollback would), duplicates get the stored
//! reservation, and compensated sagas are refused.

use std::collections::{BTreeMap, HashMap};

use kit::barrier::{self, ActionGate};
use kit::batch::together_or_alone;
use kit::saga::SagaRef;
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, Statement, TransactionTrait};

use super::reservations::{Reserved, exists, insert_priced_reservations, reserve, reserved_lines_of};
use super::{finish, store_err};
use crate::domain::{InventoryError, ProductId, Quantity, ReservationRequest, ReservedLine, StockLine};

/// One queued single-line reservation.
#[derive(Clone, Debug)]
pub struct HotReservation {
    pub saga: SagaRef,
    pub product: ProductId,
    pub quantity: Quantity,
}

type Outcome = Result<Reserved, InventoryError>;

/// Decides `items` (arrival order): one result per item, in order.
pub async fn reserve_batch(db: &DatabaseConnection, items: &[HotReservation]) -> Vec<Outcome> {
    together_or_alone(
        items,
        async {
            let txn = db.begin().await.map_err(store_err)?;
            let outcome = decide(&txn, items).await;
            finish(txn, outcome).await
        },
        |item| async move {
            let line = StockLine { product_id: item.product, quantity: item.quantity };
            reserve(db, &item.saga, &ReservationRequest::parse(vec![line])?).await
        },
    )
    .await
}

async fn decide(txn: &DatabaseTransaction, items: &[HotReservation]) -> Result<Vec<Outcome>, InventoryError> {
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
    // Fresh actions by product, products in id order, each product's in arrival order.
    let mut by_product: BTreeMap<ProductId, Vec<usize>> = BTreeMap::new();
    for &i in &unique {
        if matches!(gates[&i], ActionGate::Proceed) {
            by_product.entry(items[i].product).or_default().push(i);
        }
    }
    let now = kit::time::now_millis().naive_utc();
    let mut rejected = Vec::new();
    let mut accepted = Vec::new();
    for (&product, fresh) in &by_product {
        let decided = match fresh.as_slice() {
            [one] => take_one(txn, product, items[*one].quantity, now).await?.map(|()| vec![*one]),
            many => take_many(txn, product, items, many, now).await?,
        };
        match decided {
            Ok(taken) => {
                rejected.extend(fresh.iter().filter(|i| !taken.contains(i)).inspect(|&&i| {
                    outcomes[i] = Some(Err(InventoryError::OutOfStock(product)));
                }));
                accepted.extend(taken);
            }
            Err(err) => {
                let shared = ShareableError::from_ref(&err);
                for &i in fresh {
                    outcomes[i] = Some(Err(shared.to_error()));
                }
                rejected.extend(fresh.iter().copied());
            }
        }
    }
    delete_barriers(txn, items, &rejected).await?;
    if !accepted.is_empty() {
        let rows: Vec<(&str, i64, i64)> = accepted
            .iter()
            .map(|&i| (items[i].saga.saga_id(), items[i].product.get(), items[i].quantity.get()))
            .collect();
        let priced = insert_priced_reservations(txn, &rows, now).await?;
        if priced.len() != rows.len() {
            return Err(InventoryError::Store(anyhow::anyhow!("reservations of fresh actions already there")));
        }
        for &i in &accepted {
            let (saga_id, id) = (items[i].saga.saga_id(), items[i].product.get());
            let row = priced.iter().find(|p| p.saga_id == saga_id && p.product_id == id);
            let (unit_price, version) = row.map(|p| (p.unit_price, p.version)).unwrap_or_default();
            let line = ReservedLine { product_id: id, quantity: items[i].quantity.get(), unit_price };
            outcomes[i] = Some(Ok(Reserved { lines: vec![line], changed: vec![(id, version)], replayed: false }));
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

/// One reservation of `product`: its conditional UPDATE. `Ok(Err(_))`: refused (out of
/// stock, or no such product), nothing taken.
async fn take_one(
    txn: &DatabaseTransaction,
    product: ProductId,
    quantity: Quantity,
    now: chrono::NaiveDateTime,
) -> Result<Result<(), InventoryError>, InventoryError> {
    let qty = quantity.get();
    let taken = txn
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            "UPDATE product SET stock = stock - ?, version = version + 1, updated_at = ? WHERE id = ? AND stock >= ?",
            [qty.into(), now.into(), product.get().into(), qty.into()],
        ))
        .await
        .map_err(store_err)?
        .rows_affected();
    if taken == 1 {
        return Ok(Ok(()));
    }
    Ok(Err(if exists(txn, product.get()).await? {
        InventoryError::OutOfStock(product)
    } else {
        InventoryError::ProductNotFound(product)
    }))
}

/// Several reservations of one hot `product`: its row read `FOR UPDATE`, the requests
/// allocated in arrival order, the accepted ones taken with one UPDATE. `Ok(Ok(taken))`:
/// the items accepted (the others are out of stock); `Ok(Err(_))`: no such product.
async fn take_many(
    txn: &DatabaseTransaction,
    product: ProductId,
    items: &[HotReservation],
    fresh: &[usize],
    now: chrono::NaiveDateTime,
) -> Result<Result<Vec<usize>, InventoryError>, InventoryError> {
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            "SELECT stock FROM product WHERE id = ? FOR UPDATE",
            [product.get().into()],
        ))
        .await
        .map_err(store_err)?;
    let Some(row) = row else { return Ok(Err(InventoryError::ProductNotFound(product))) };
    let mut stock: i64 = row.try_get_by_index(0).map_err(store_err)?;
    let mut accepted = Vec::new();
    for &i in fresh {
        let qty = items[i].quantity.get();
        if qty <= stock {
            stock -= qty;
            accepted.push(i);
        }
    }
    if accepted.is_empty() {
        return Ok(Ok(accepted));
    }
    let taken: i64 = accepted.iter().map(|&i| items[i].quantity.get()).sum();
    let orders = accepted.len() as i64;
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
        return Err(InventoryError::Store(anyhow::anyhow!("hot-row batch lost its row lock on product {product}")));
    }
    Ok(Ok(accepted))
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
