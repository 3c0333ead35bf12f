//! The saga barrier (DESIGN.md, "The saga barrier"): makes every participant call
//! idempotent and order-proof, inside the participant's own local transaction.
//!
//! A row `UNIQUE(saga_id, step, op)` is inserted with `INSERT IGNORE` in the same
//! transaction as the business change, so the row exists if and only if the change
//! committed:
//! - action: a fresh row means "do it"; an existing row means it was done (return the
//!   stored result), or that a compensation got there first (refuse: a hanging action);
//! - compensation: an existing compensation row means "already undone"; otherwise the
//!   action row is inserted too, and if *that* is fresh the action never ran, so nothing
//!   is undone and the row now blocks the late action (null compensation).
//!
//! InnoDB's duplicate-key check waits for an uncommitted insert of the same key, so an
//! action racing its compensation is serialised by the database, never by timing.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

use crate::saga::{Op, SagaRef};

/// DDL of the barrier table; every participant's first migration runs it.
pub const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS saga_barrier (
    saga_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    step VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    op VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    result MEDIUMBLOB NULL,
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (saga_id, step, op)
) ENGINE=InnoDB";

/// What an action call should do.
#[derive(Debug, PartialEq, Eq)]
pub enum ActionGate {
    /// First time: perform the change, then [`record_result`].
    Proceed,
    /// Done before: answer with the stored result, change nothing.
    AlreadyDone(Option<Vec<u8>>),
    /// The step was compensated before its action arrived: refuse the late action.
    Compensated,
}

/// What a compensation call should do.
#[derive(Debug, PartialEq, Eq)]
pub enum CompensationGate {
    /// The action committed and is not undone yet: undo it now.
    Undo,
    /// The action never ran; nothing to undo, and the late action is now blocked.
    NullCompensation,
    /// Undone before: change nothing.
    AlreadyCompensated,
}

async fn insert_row<C: ConnectionTrait>(txn: &C, saga: &SagaRef, op: Op) -> Result<bool, DbErr> {
    let stmt = Statement::from_sql_and_values(
        DbBackend::MySql,
        "INSERT IGNORE INTO saga_barrier (saga_id, step, op) VALUES (?, ?, ?)",
        [saga.saga_id().into(), saga.step().into(), op.as_str().into()],
    );
    Ok(txn.execute_raw(stmt).await?.rows_affected() == 1)
}

/// Reads a barrier row with a locking read, so it sees the latest committed state rather
/// than the transaction's snapshot. `None` = no row; `Some(result)` = row with its result.
async fn read_row<C: ConnectionTrait>(txn: &C, saga: &SagaRef, op: Op) -> Result<Option<Option<Vec<u8>>>, DbErr> {
    let stmt = Statement::from_sql_and_values(
        DbBackend::MySql,
        "SELECT result FROM saga_barrier WHERE saga_id = ? AND step = ? AND op = ? LOCK IN SHARE MODE",
        [saga.saga_id().into(), saga.step().into(), op.as_str().into()],
    );
    match txn.query_one_raw(stmt).await? {
        Some(row) => Ok(Some(row.try_get_by_index::<Option<Vec<u8>>>(0)?)),
        None => Ok(None),
    }
}

/// Enters the barrier for an action. Call inside the transaction of the business change.
pub async fn enter_action<C: ConnectionTrait>(txn: &C, saga: &SagaRef) -> Result<ActionGate, DbErr> {
    debug_assert_eq!(saga.op(), Op::Action);
    if insert_row(txn, saga, Op::Action).await? {
        return Ok(ActionGate::Proceed);
    }
    if read_row(txn, saga, Op::Compensate).await?.is_some() {
        return Ok(ActionGate::Compensated);
    }
    Ok(ActionGate::AlreadyDone(read_row(txn, saga, Op::Action).await?.flatten()))
}

/// Stores the action's answer so a duplicate call can be given the same one.
pub async fn record_result<C: ConnectionTrait>(txn: &C, saga: &SagaRef, result: Vec<u8>) -> Result<(), DbErr> {
    let stmt = Statement::from_sql_and_values(
        DbBackend::MySql,
        "UPDATE saga_barrier SET result = ? WHERE saga_id = ? AND step = ? AND op = ?",
        [Value::from(result), saga.saga_id().into(), saga.step().into(), Op::Action.as_str().into()],
    );
    txn.execute_raw(stmt).await?;
    Ok(())
}

/// Enters the barrier for a compensation. Call inside the transaction of the undo.
pub async fn enter_compensation<C: ConnectionTrait>(txn: &C, saga: &SagaRef) -> Result<CompensationGate, DbErr> {
    debug_assert_eq!(saga.op(), Op::Compensate);
    if !insert_row(txn, saga, Op::Compensate).await? {
        return Ok(CompensationGate::AlreadyCompensated);
    }
    if insert_row(txn, saga, Op::Action).await? {
        return Ok(CompensationGate::NullCompensation);
    }
    Ok(CompensationGate::Undo)
}

/// The stored result of the action this compensation undoes (what was actually done),
/// read under a lock. Call after [`enter_compensation`] said [`CompensationGate::Undo`].
pub async fn action_result<C: ConnectionTrait>(txn: &C, saga: &SagaRef) -> Result<Option<Vec<u8>>, DbErr> {
    Ok(read_row(txn, &saga.with_op(Op::Action), Op::Action).await?.flatten())
}

/// Enters the barrier for a batch of distinct actions decided in one transaction (group
/// commit): one multi-row insert, tagged with a marker of this batch, and, unless it inserted
/// every row, one locking read that tells each action's gate: our marker on its row means the
/// row is ours (proceed), any other row means done before (its stored result), a compensation
/// row means refused. Call [`forget_actions`] for the actions the batch then refuses, as their
/// rollback would.
pub async fn enter_actions<C: ConnectionTrait>(txn: &C, sagas: &[&SagaRef]) -> Result<Vec<ActionGate>, DbErr> {
    if sagas.is_empty() {
        return Ok(Vec::new());
    }
    let marker = rand::random::<u128>().to_le_bytes().to_vec();
    let marked: Vec<(&SagaRef, Vec<u8>)> = sagas.iter().map(|saga| (*saga, marker.clone())).collect();
    // Every row is ours, so no action was there before (a compensation that came first
    // leaves an action row too): all proceed, and the read below has nothing to tell.
    if claim_actions(txn, &marked).await? {
        return Ok(sagas.iter().map(|_| ActionGate::Proceed).collect());
    }
    let tuples = vec!["(?, ?)"; sagas.len()].join(", ");
    // A locking read: the latest committed rows, not this transaction's snapshot.
    let found = txn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            format!(
                "SELECT saga_id, step, op, result FROM saga_barrier WHERE (saga_id, step) IN ({tuples}) \
                 LOCK IN SHARE MODE"
            ),
            keys(sagas),
        ))
        .await?;
    let mut actions = std::collections::HashMap::new();
    let mut compensated = std::collections::HashSet::new();
    for row in &found {
        let key: (String, String) = (row.try_get_by_index(0)?, row.try_get_by_index(1)?);
        let op: String = row.try_get_by_index(2)?;
        if op == Op::Compensate.as_str() {
            compensated.insert(key);
        } else {
            actions.insert(key, row.try_get_by_index::<Option<Vec<u8>>>(3)?);
        }
    }
    Ok(sagas
        .iter()
        .map(|saga| {
            let key = (saga.saga_id().to_owned(), saga.step().to_owned());
            if compensated.contains(&key) {
                return ActionGate::Compensated;
            }
            match actions.remove(&key).flatten() {
                Some(result) if result == marker => ActionGate::Proceed,
                result => ActionGate::AlreadyDone(result),
            }
        })
        .collect())
}

/// Claims actions already performed in this transaction (result first): their rows go in
/// with their results, one statement for all. `true` when every row is new, so each action
/// ran for the first time and its change stands. `false` when some row was there before (a
/// duplicate of a call that went through, or a compensation that came first, which leaves an
/// action row too): the caller must roll back and decide through [`enter_action`].
///
/// The common case, a first call, then costs no statement beyond the change itself: no
/// separate gate insert before it, no result update after it. Inserting after the change is
/// as safe as before it: the row exists if and only if the change commits, and a racing
/// compensation still waits on this uncommitted key.
pub async fn claim_actions<C: ConnectionTrait>(txn: &C, results: &[(&SagaRef, Vec<u8>)]) -> Result<bool, DbErr> {
    if results.is_empty() {
        return Ok(true);
    }
    let mut values: Vec<Value> = Vec::with_capacity(results.len() * 3);
    for (saga, result) in results {
        values.extend([saga.saga_id().into(), saga.step().into(), result.clone().into()]);
    }
    let rows = vec!["(?, ?, 'action', ?)"; results.len()].join(", ");
    let inserted = txn
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            format!("INSERT IGNORE INTO saga_barrier (saga_id, step, op, result) VALUES {rows}"),
            values,
        ))
        .await?
        .rows_affected();
    Ok(inserted == results.len() as u64)
}

/// Removes the action rows of batch actions that were refused after all, as a rollback of
/// their own transaction would have.
pub async fn forget_actions<C: ConnectionTrait>(txn: &C, sagas: &[&SagaRef]) -> Result<(), DbErr> {
    if sagas.is_empty() {
        return Ok(());
    }
    let tuples = vec!["(?, ?)"; sagas.len()].join(", ");
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::MySql,
        format!("DELETE FROM saga_barrier WHERE op = 'action' AND (saga_id, step) IN ({tuples})"),
        keys(sagas),
    ))
    .await?;
    Ok(())
}

fn keys(sagas: &[&SagaRef]) -> Vec<Value> {
    sagas.iter().flat_map(|saga| [saga.saga_id().into(), saga.step().into()]).collect()
}
