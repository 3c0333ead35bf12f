//! Group commit of saga payments: the payments that queued up together (distinct users,
//! mostly) are decided in one transaction: each payment costs its debit, and shares two
//! statements (the barrier rows, the ledger lines) and the commit with the others.
//!
//! Each payment still succeeds or fails on its own, in arrival order, with the barrier
//! holding per saga exactly as in the one-by-one path ([`super::saga::pay`]). The batch is
//! decided result first: the debits, then one claim of all the barrier rows with their
//! records, then the ledger lines. A payment whose points are short is checked against the
//! barrier (a replay or a compensated saga, else refused); a claim that finds a row already
//! there rolls the whole batch back to be decided one by one. Balance rows are locked in
//! arrival order by conditional UPDATEs; callers keep one user's payments in one lane, so
//! two batches never wait on each other's rows.

use std::collections::HashMap;

use kit::barrier::{self, ActionGate};
use kit::batch::together_or_alone;
use kit::saga::SagaRef;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, Statement, TransactionTrait, Value,
};

use super::saga::{PaymentRecord, debit_payment, pay};
use super::{finish, store_err};
use crate::domain::{EntryType, OrderRef, PayAmount, PointError, UserId};

/// One queued saga payment.
#[derive(Clone, Debug)]
pub struct QueuedPayment {
    pub saga: SagaRef,
    pub user: UserId,
    pub order: OrderRef,
    pub amount: PayAmount,
}

type Outcome = Result<PaymentRecord, PointError>;

/// Decides `items` (arrival order): one result per item, in order.
pub async fn pay_batch(db: &DatabaseConnection, items: &[QueuedPayment]) -> Vec<Outcome> {
    together_or_alone(
        items,
        async {
            let txn = db.begin().await.map_err(store_err)?;
            let outcome = decide(&txn, items).await;
            finish(txn, outcome).await
        },
        |item| pay(db, &item.saga, item.user, &item.order, item.amount),
    )
    .await
}

fn key_of(saga: &SagaRef) -> (&str, &str) {
    (saga.saga_id(), saga.step())
}

async fn decide(txn: &DatabaseTransaction, items: &[QueuedPayment]) -> Result<Vec<Outcome>, PointError> {
    // The first occurrence of a saga in the batch speaks for its duplicates.
    let mut first_of: HashMap<(&str, &str), usize> = HashMap::new();
    let mut unique = Vec::new();
    for (i, item) in items.iter().enumerate() {
        first_of.entry(key_of(&item.saga)).or_insert_with(|| {
            unique.push(i);
            i
        });
    }
    // Result first, as a first call: every debit in arrival order, then one claim of the
    // barrier rows with their records (`kit::barrier::claim_actions`).
    let mut outcomes: Vec<Option<Outcome>> = (0..items.len()).map(|_| None).collect();
    let mut paid: Vec<(usize, PaymentRecord)> = Vec::new();
    let mut short: Vec<usize> = Vec::new();
    for &i in &unique {
        let item = &items[i];
        match debit_payment(txn, item.user, &item.order, item.amount).await? {
            Some(record) => paid.push((i, record)),
            None => short.push(i),
        }
    }
    // A debit that found the points short is a refusal, unless the barrier knows the action:
    // done before (its record is the answer) or compensated first (refused). Those gates are
    // entered only for the short ones; a fresh refusal's row goes again, as a rollback would.
    let short_sagas: Vec<&SagaRef> = short.iter().map(|&i| &items[i].saga).collect();
    let gates = barrier::enter_actions(txn, &short_sagas).await.map_err(store_err)?;
    let mut refused: Vec<&SagaRef> = Vec::new();
    for (&i, gate) in short.iter().zip(gates) {
        outcomes[i] = Some(match gate {
            ActionGate::Proceed => {
                refused.push(&items[i].saga);
                Err(PointError::InsufficientPoints)
            }
            ActionGate::AlreadyDone(stored) => replay(stored),
            ActionGate::Compensated => Err(PointError::StepCompensated),
        });
    }
    barrier::forget_actions(txn, &refused).await.map_err(store_err)?;
    let results: Vec<(&SagaRef, Vec<u8>)> =
        paid.iter().map(|(i, record)| (&items[*i].saga, serde_json::to_vec(record).unwrap_or_default())).collect();
    // A row that was there before (a duplicate of a call that went through, a compensation
    // that came first) means a debit here must not stand: the batch rolls back whole and its
    // payments are decided one by one, each through the gate if it needs it.
    if !barrier::claim_actions(txn, &results).await.map_err(store_err)? {
        return Err(PointError::Store(anyhow::anyhow!("a payment of the batch was not a first call")));
    }
    append_payments(txn, &paid).await?;
    for (i, record) in paid {
        outcomes[i] = Some(Ok(record));
    }
    // Duplicates within the batch: a duplicate of a payment made here is its replay.
    Ok(items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let first = first_of[&key_of(&item.saga)];
            match &outcomes[first] {
                Some(outcome) => copy_of(outcome, first != i),
                None => Err(PointError::Store(anyhow::anyhow!("payment batch left an item undecided"))),
            }
        })
        .collect())
}

/// The stored record of a payment made before.
fn replay(stored: Option<Vec<u8>>) -> Outcome {
    let mut record: PaymentRecord = stored
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| PointError::Store(anyhow::anyhow!("payment barrier row without its record")))?;
    record.replayed = true;
    Ok(record)
}

fn copy_of(outcome: &Outcome, as_replay: bool) -> Outcome {
    match outcome {
        Ok(record) => Ok(PaymentRecord { replayed: record.replayed || as_replay, ..record.clone() }),
        Err(PointError::InsufficientPoints) => Err(PointError::InsufficientPoints),
        Err(PointError::StepCompensated) => Err(PointError::StepCompensated),
        Err(err) => Err(PointError::Store(anyhow::anyhow!("{err}"))),
    }
}

/// The ledger lines of the payments made, each with the balance its debit left.
async fn append_payments(txn: &DatabaseTransaction, paid: &[(usize, PaymentRecord)]) -> Result<(), PointError> {
    let moved: Vec<&PaymentRecord> = paid.iter().map(|(_, r)| r).filter(|r| r.amount > 0).collect();
    if moved.is_empty() {
        return Ok(());
    }
    let now = kit::time::now_millis().naive_utc();
    let mut values: Vec<Value> = Vec::with_capacity(moved.len() * 6);
    for record in &moved {
        values.extend([
            record.user_id.into(),
            EntryType::Payment.as_str().into(),
            record.amount.into(),
            record.balance_after.into(),
            record.order_id.as_str().into(),
            now.into(),
        ]);
    }
    let rows = vec!["(?, ?, ?, ?, ?, ?)"; moved.len()].join(", ");
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::MySql,
        format!(
            "INSERT INTO point_history (user_id, entry_type, amount, balance_after, order_id, created_at) VALUES {rows}"
        ),
        values,
    ))
    .await
    .map_err(store_err)?;
    Ok(())
}
