//! Saga participant: an order's payment with points (PAYMENT) and its refund (REFUND),
//! each in one transaction guarded by the kit barrier. The barrier row of the payment
//! stores what was taken, so the refund gives back exactly that, once.

use kit::barrier::{self, ActionGate, CompensationGate};
use kit::saga::SagaRef;
use sea_orm::{DatabaseConnection, DatabaseTransaction, TransactionTrait};
use serde::{Deserialize, Serialize};

use super::ledger::{append, credit, debit, read_balance};
use super::{finish, finish_if_some, retry_transient, store_err};
use crate::domain::{EntryType, OrderRef, PayAmount, PointError, UserId};

/// What a payment did; stored in its barrier row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRecord {
    pub user_id: i64,
    pub order_id: String,
    pub amount: i64,
    pub balance_after: i64,
    #[serde(skip)]
    pub replayed: bool,
}

/// A saga's payment. Tried result first ([`pay_first_time`]), which is what nearly every
/// call is; anything else (a duplicate, a compensation that came first, points that are not
/// there) is rolled back and decided through the barrier's gate.
pub async fn pay(
    db: &DatabaseConnection,
    saga: &SagaRef,
    user: UserId,
    order: &OrderRef,
    amount: PayAmount,
) -> Result<PaymentRecord, PointError> {
    retry_transient(|| async {
        let txn = db.begin().await.map_err(store_err)?;
        let first = pay_first_time(&txn, saga, user, order, amount).await;
        if let Some(record) = finish_if_some(txn, first).await? {
            return Ok(record);
        }
        let txn = db.begin().await.map_err(store_err)?;
        let outcome = pay_in(&txn, saga, user, order, amount).await;
        finish(txn, outcome).await
    })
    .await
}

/// The payment as a first call: the debit and its ledger line, then the barrier row claimed
/// with the record (`kit::barrier::claim_actions`): three statements. `None` when it is not
/// a plain first call (the points are short, or the barrier has the action already); the
/// caller rolls this back.
pub(super) async fn pay_first_time(
    txn: &DatabaseTransaction,
    saga: &SagaRef,
    user: UserId,
    order: &OrderRef,
    amount: PayAmount,
) -> Result<Option<PaymentRecord>, PointError> {
    let Some(record) = take_payment(txn, user, order, amount).await? else {
        return Ok(None);
    };
    let result = serde_json::to_vec(&record).unwrap_or_default();
    let fresh = barrier::claim_actions(txn, &[(saga, result)]).await.map_err(store_err)?;
    Ok(fresh.then_some(record))
}

/// Takes the payment off the balance (with its ledger line): its record, or `None` when the
/// points are not there. A zero payment takes nothing and records the balance as it is.
pub(super) async fn take_payment(
    txn: &DatabaseTransaction,
    user: UserId,
    order: &OrderRef,
    amount: PayAmount,
) -> Result<Option<PaymentRecord>, PointError> {
    let record = debit_payment(txn, user, order, amount).await?;
    if record.as_ref().is_some_and(|r| r.amount > 0) {
        append(txn, user, EntryType::Payment, amount.get(), Some(order.as_str())).await?;
    }
    Ok(record)
}

/// The balance side of a payment, without its ledger line (a batch writes those together).
pub(super) async fn debit_payment(
    txn: &DatabaseTransaction,
    user: UserId,
    order: &OrderRef,
    amount: PayAmount,
) -> Result<Option<PaymentRecord>, PointError> {
    let balance_after = if amount.get() > 0 {
        let Some(balance_after) = debit(txn, user, amount.get()).await? else {
            return Ok(None);
        };
        balance_after
    } else {
        read_balance(txn, user).await?.balance
    };
    Ok(Some(PaymentRecord {
        user_id: user.get(),
        order_id: order.as_str().to_owned(),
        amount: amount.get(),
        balance_after,
        replayed: false,
    }))
}

async fn pay_in(
    txn: &DatabaseTransaction,
    saga: &SagaRef,
    user: UserId,
    order: &OrderRef,
    amount: PayAmount,
) -> Result<PaymentRecord, PointError> {
    match barrier::enter_action(txn, saga).await.map_err(store_err)? {
        ActionGate::Proceed => {}
        ActionGate::AlreadyDone(stored) => {
            let mut record: PaymentRecord = stored
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .ok_or_else(|| PointError::Store(anyhow::anyhow!("payment barrier row without its record")))?;
            record.replayed = true;
            return Ok(record);
        }
        ActionGate::Compensated => return Err(PointError::StepCompensated),
    }
    let record = take_payment(txn, user, order, amount).await?.ok_or(PointError::InsufficientPoints)?;
    barrier::record_result(txn, saga, serde_json::to_vec(&record).unwrap_or_default()).await.map_err(store_err)?;
    Ok(record)
}

/// The outcome of a refund: how much went back, and whether the payment had never happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refunded {
    pub amount: i64,
    pub null_compensation: bool,
}

pub async fn refund(db: &DatabaseConnection, saga: &SagaRef) -> Result<Refunded, PointError> {
    retry_transient(|| async {
        let txn = db.begin().await.map_err(store_err)?;
        let outcome = refund_in(&txn, saga).await;
        finish(txn, outcome).await
    })
    .await
}

async fn refund_in(txn: &DatabaseTransaction, saga: &SagaRef) -> Result<Refunded, PointError> {
    match barrier::enter_compensation(txn, saga).await.map_err(store_err)? {
        CompensationGate::Undo => {}
        CompensationGate::NullCompensation => return Ok(Refunded { amount: 0, null_compensation: true }),
        CompensationGate::AlreadyCompensated => return Ok(Refunded { amount: 0, null_compensation: false }),
    }
    let record: PaymentRecord = barrier::action_result(txn, saga)
        .await
        .map_err(store_err)?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| PointError::Store(anyhow::anyhow!("payment barrier row without its record")))?;
    if record.amount > 0 {
        let user = UserId::parse(record.user_id)?;
        // A refund is never refused for the cap: a compensation must always succeed.
        credit(txn, user, record.amount, false).await?;
        append(txn, user, EntryType::Refund, record.amount, Some(&record.order_id)).await?;
    }
    Ok(Refunded { amount: record.amount, null_compensation: false })
}

/// Of `order_ids`, those whose points are paid and not refunded: the ledger's PAYMENT lines
/// of the order outweigh its REFUND lines (reconciliation).
pub async fn paid_for(db: &DatabaseConnection, order_ids: &[String]) -> Result<Vec<String>, PointError> {
    let select = |marks: &str| {
        format!(
            "SELECT order_id FROM point_history WHERE order_id IN ({marks}) AND entry_type IN ('PAYMENT', 'REFUND') \
             GROUP BY order_id HAVING SUM(CASE entry_type WHEN 'PAYMENT' THEN amount ELSE -amount END) > 0"
        )
    };
    kit::db::ids_among(db, select, order_ids).await.map_err(store_err)
}
