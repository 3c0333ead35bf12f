//! Saga participant: use a user coupon for an order (computing its discount) and restore
//! it, each in one transaction guarded by the kit barrier.

use chrono::{NaiveDateTime, Utc};
use kit::barrier::{self, ActionGate, CompensationGate};
use kit::saga::SagaRef;
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, Statement, TransactionTrait};
use serde::{Deserialize, Serialize};

use super::{finish, retry_transient, store_err};
use crate::domain::{CouponError, Discount, UserId};

/// What a use did; stored in its barrier row so a duplicate gets the same answer and the
/// restore knows which coupon to give back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Used {
    pub user_coupon_id: i64,
    pub discount: i64,
    #[serde(skip)]
    pub replayed: bool,
}

pub async fn use_coupon(
    db: &DatabaseConnection,
    saga: &SagaRef,
    user_coupon_id: i64,
    user: UserId,
    order_id: &str,
    order_amount: i64,
) -> Result<Used, CouponError> {
    retry_transient(|| async {
        let txn = db.begin().await.map_err(store_err)?;
        let outcome = use_in(&txn, saga, user_coupon_id, user, order_id, order_amount).await;
        finish(txn, outcome).await
    })
    .await
}

async fn use_in(
    txn: &DatabaseTransaction,
    saga: &SagaRef,
    user_coupon_id: i64,
    user: UserId,
    order_id: &str,
    order_amount: i64,
) -> Result<Used, CouponError> {
    match barrier::enter_action(txn, saga).await.map_err(store_err)? {
        ActionGate::Proceed => {}
        ActionGate::AlreadyDone(stored) => {
            let mut used: Used = stored
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .ok_or_else(|| CouponError::Store(anyhow::anyhow!("coupon barrier row without its record")))?;
            used.replayed = true;
            return Ok(used);
        }
        ActionGate::Compensated => return Err(CouponError::StepCompensated),
    }
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            "SELECT uc.user_id, uc.status, uc.expires_at, c.discount_type, c.discount_value, c.max_discount \
             FROM user_coupon uc JOIN coupon c ON c.id = uc.coupon_id WHERE uc.id = ? FOR UPDATE",
            [user_coupon_id.into()],
        ))
        .await
        .map_err(store_err)?
        .ok_or(CouponError::UserCouponNotFound(user_coupon_id))?;
    let owner: i64 = row.try_get_by_index(0).map_err(store_err)?;
    let status: String = row.try_get_by_index(1).map_err(store_err)?;
    let expires_at = row.try_get_by_index::<NaiveDateTime>(2).map_err(store_err)?.and_utc();
    if owner != user.get() || status != "AVAILABLE" || expires_at <= Utc::now() {
        return Err(CouponError::NotUsable);
    }
    let kind: String = row.try_get_by_index(3).map_err(store_err)?;
    let discount = Discount::parse(
        &kind,
        row.try_get_by_index(4).map_err(store_err)?,
        row.try_get_by_index(5).map_err(store_err)?,
    )
    .map_err(|e| CouponError::Store(anyhow::anyhow!("stored coupon is invalid: {e}")))?
    .apply(order_amount);
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::MySql,
        "UPDATE user_coupon SET status = 'USED', used_at = ?, order_id = ? WHERE id = ?",
        [kit::time::now_millis().naive_utc().into(), order_id.into(), user_coupon_id.into()],
    ))
    .await
    .map_err(store_err)?;
    let used = Used { user_coupon_id, discount, replayed: false };
    barrier::record_result(txn, saga, serde_json::to_vec(&used).unwrap_or_default()).await.map_err(store_err)?;
    Ok(used)
}

/// The outcome of a restore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restored {
    pub restored: bool,
    pub null_compensation: bool,
}

pub async fn restore(db: &DatabaseConnection, saga: &SagaRef) -> Result<Restored, CouponError> {
    retry_transient(|| async {
        let txn = db.begin().await.map_err(store_err)?;
        let outcome = restore_in(&txn, saga).await;
        finish(txn, outcome).await
    })
    .await
}

async fn restore_in<C: ConnectionTrait>(txn: &C, saga: &SagaRef) -> Result<Restored, CouponError> {
    match barrier::enter_compensation(txn, saga).await.map_err(store_err)? {
        CompensationGate::Undo => {}
        CompensationGate::NullCompensation => return Ok(Restored { restored: false, null_compensation: true }),
        CompensationGate::AlreadyCompensated => return Ok(Restored { restored: false, null_compensation: false }),
    }
    let used: Used = barrier::action_result(txn, saga)
        .await
        .map_err(store_err)?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| CouponError::Store(anyhow::anyhow!("coupon barrier row without its record")))?;
    let restored = txn
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            "UPDATE user_coupon SET status = 'AVAILABLE', used_at = NULL, order_id = NULL WHERE id = ? AND status = 'USED'",
            [used.user_coupon_id.into()],
        ))
        .await
        .map_err(store_err)?
        .rows_affected();
    Ok(Restored { restored: restored == 1, null_compensation: false })
}

/// Of `order_ids`, those that hold a used coupon now (reconciliation).
pub async fn used_by(db: &DatabaseConnection, order_ids: &[String]) -> Result<Vec<String>, CouponError> {
    let select = |marks: &str| {
        format!("SELECT DISTINCT order_id FROM user_coupon WHERE order_id IN ({marks}) AND status = 'USED'")
    };
    kit::db::ids_among(db, select, order_ids).await.map_err(store_err)
}
