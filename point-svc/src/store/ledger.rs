//! Balances and the ledger: read, charge, use, and the movement primitives the saga uses.

use kit::idempotency::{self, IdempotencyKey};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait};

use super::{retry_transient, store_err};
use crate::domain::{
    Balance, ChargeAmount, DebitAmount, EntryType, HistoryLimit, LedgerEntry, MAX_BALANCE, PointError, UserId,
};

pub async fn balance(db: &DatabaseConnection, user: UserId) -> Result<Balance, PointError> {
    read_balance(db, user).await
}

pub(super) async fn read_balance<C: ConnectionTrait>(conn: &C, user: UserId) -> Result<Balance, PointError> {
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            "SELECT balance, updated_at FROM point_balance WHERE user_id = ?",
            [user.get().into()],
        ))
        .await
        .map_err(store_err)?;
    Ok(match row {
        Some(row) => Balance {
            user_id: user.get(),
            balance: row.try_get_by_index(0).map_err(store_err)?,
            updated_at: Some(row.try_get_by_index::<chrono::NaiveDateTime>(1).map_err(store_err)?.and_utc()),
        },
        None => Balance { user_id: user.get(), balance: 0, updated_at: None },
    })
}

/// Adds to the balance, at most up to [`MAX_BALANCE`] unless `capped` is false (refunds).
/// Returns false when the cap would be passed (nothing changed).
pub(super) async fn credit<C: ConnectionTrait>(
    conn: &C,
    user: UserId,
    amount: i64,
    capped: bool,
) -> Result<bool, PointError> {
    let now = kit::time::now_millis().naive_utc();
    let limit = if capped { MAX_BALANCE - amount } else { i64::MAX - amount };
    let add = || {
        Statement::from_sql_and_values(
            DbBackend::MySql,
            "UPDATE point_balance SET balance = balance + ?, version = version + 1, updated_at = ? \
             WHERE user_id = ? AND balance <= ?",
            [amount.into(), now.into(), user.get().into(), limit.into()],
        )
    };
    if conn.execute_raw(add()).await.map_err(store_err)?.rows_affected() == 1 {
        return Ok(true);
    }
    // No row yet (a first charge), or the cap. A plain INSERT settles which: a duplicate
    // key means the row exists (maybe a concurrent first charge just made it), so try the
    // conditional UPDATE once more; it now decides on the committed balance.
    let inserted = conn
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            "INSERT INTO point_balance (user_id, balance, version, updated_at) VALUES (?, ?, 1, ?)",
            [user.get().into(), amount.into(), now.into()],
        ))
        .await;
    match inserted {
        Ok(_) => Ok(true),
        Err(err) if err.to_string().contains("1062") || err.to_string().contains("Duplicate entry") => {
            Ok(conn.execute_raw(add()).await.map_err(store_err)?.rows_affected() == 1)
        }
        Err(err) => Err(store_err(err)),
    }
}

/// Takes `amount` off the balance only if it is there: `Some(balance after)`, or `None`
/// when it is not. The new balance comes back in the UPDATE's own answer
/// (`LAST_INSERT_ID(expr)` is returned as the statement's insert id), so no read follows.
pub(super) async fn debit<C: ConnectionTrait>(conn: &C, user: UserId, amount: i64) -> Result<Option<i64>, PointError> {
    let now = kit::time::now_millis().naive_utc();
    let result = conn
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            "UPDATE point_balance SET balance = LAST_INSERT_ID(balance - ?), version = version + 1, updated_at = ? \
             WHERE user_id = ? AND balance >= ?",
            [amount.into(), now.into(), user.get().into(), amount.into()],
        ))
        .await
        .map_err(store_err)?;
    if result.rows_affected() != 1 {
        return Ok(None);
    }
    i64::try_from(result.last_insert_id())
        .map(Some)
        .map_err(|_| PointError::Store(anyhow::anyhow!("balance after a debit out of range")))
}

/// Appends the ledger line of a movement just made, with the balance read in the same
/// statement (the row is locked by this transaction's UPDATE, so it is this movement's).
pub(super) async fn append<C: ConnectionTrait>(
    conn: &C,
    user: UserId,
    entry_type: EntryType,
    amount: i64,
    order_id: Option<&str>,
) -> Result<(), PointError> {
    let now = kit::time::now_millis().naive_utc();
    conn.execute_raw(Statement::from_sql_and_values(
        DbBackend::MySql,
        "INSERT INTO point_history (user_id, entry_type, amount, balance_after, order_id, created_at) \
         SELECT user_id, ?, ?, balance, ?, ? FROM point_balance WHERE user_id = ?",
        [entry_type.as_str().into(), amount.into(), order_id.map(str::to_owned).into(), now.into(), user.get().into()],
    ))
    .await
    .map_err(store_err)?;
    Ok(())
}

pub async fn charge(
    db: &DatabaseConnection,
    user: UserId,
    amount: ChargeAmount,
    key: Option<&IdempotencyKey>,
) -> Result<Balance, PointError> {
    retry_transient(|| async {
        let txn = db.begin().await.map_err(store_err)?;
        if !credit(&txn, user, amount.get(), true).await? {
            let _ = txn.rollback().await;
            return Err(PointError::validation("amount", "the charge would take the balance above 1000000000"));
        }
        append(&txn, user, EntryType::Charge, amount.get(), None).await?;
        finish(txn, user, key).await
    })
    .await
}

pub async fn use_points(
    db: &DatabaseConnection,
    user: UserId,
    amount: DebitAmount,
    key: Option<&IdempotencyKey>,
) -> Result<Balance, PointError> {
    retry_transient(|| async {
        let txn = db.begin().await.map_err(store_err)?;
        if debit(&txn, user, amount.get()).await?.is_none() {
            let _ = txn.rollback().await;
            return Err(PointError::InsufficientPoints);
        }
        append(&txn, user, EntryType::Use, amount.get(), None).await?;
        finish(txn, user, key).await
    })
    .await
}

/// Reads the new balance, stores it as the idempotent answer in the same transaction, commits.
async fn finish(
    txn: sea_orm::DatabaseTransaction,
    user: UserId,
    key: Option<&IdempotencyKey>,
) -> Result<Balance, PointError> {
    let balance = read_balance(&txn, user).await?;
    if let Some(key) = key {
        idempotency::complete_ok(&txn, key, idempotency::encode(&balance)).await.map_err(store_err)?;
    }
    txn.commit().await.map_err(store_err)?;
    Ok(balance)
}

pub async fn history(
    db: &DatabaseConnection,
    user: UserId,
    limit: HistoryLimit,
) -> Result<Vec<LedgerEntry>, PointError> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            "SELECT id, entry_type, amount, balance_after, order_id, created_at FROM point_history \
             WHERE user_id = ? ORDER BY id DESC LIMIT ?",
            [user.get().into(), limit.get().into()],
        ))
        .await
        .map_err(store_err)?;
    rows.iter()
        .map(|row| {
            let kind: String = row.try_get_by_index(1).map_err(store_err)?;
            Ok(LedgerEntry {
                id: row.try_get_by_index(0).map_err(store_err)?,
                entry_type: EntryType::parse(&kind)
                    .ok_or_else(|| PointError::Store(anyhow::anyhow!("unknown ledger type {kind:?}")))?,
                amount: row.try_get_by_index(2).map_err(store_err)?,
                balance_after: row.try_get_by_index(3).map_err(store_err)?,
                order_id: row.try_get_by_index(4).map_err(store_err)?,
                created_at: row.try_get_by_index::<chrono::NaiveDateTime>(5).map_err(store_err)?.and_utc(),
            })
        })
        .collect()
}
