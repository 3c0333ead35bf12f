//! Durable issuance: the admissions of one coupon that queued up together are written in
//! one transaction (group commit, `kit::batch`), under the coupon row's lock.
//!
//! The sequence is assigned here, contiguously after the coupon's `issued_quantity`, in
//! gate admission order: positions have no gaps or repeats even when some admission is
//! given back, and MySQL's constraints remain the last word on "at most N, once per user".

use std::collections::HashSet;
use std::sync::Arc;

use chrono::NaiveDateTime;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, Statement, TransactionTrait, Value,
};

use super::{finish, retry_transient, store_err};
use crate::domain::{Coupon, CouponError, UserCoupon, UserCouponStatus};

/// One admitted issue request, waiting for its durable write.
#[derive(Clone, Debug)]
pub struct IssueRequest {
    pub coupon: Arc<Coupon>,
    pub user_id: i64,
    /// Position the gate admitted it at; orders the batch.
    pub admitted: i64,
}

type Outcome = Result<UserCoupon, CouponError>;

/// Writes `items` (all of one coupon): one result per item, in order.
pub async fn issue_batch(db: &DatabaseConnection, items: &[IssueRequest]) -> Vec<Outcome> {
    let Some(first) = items.first() else { return Vec::new() };
    let coupon = first.coupon.clone();
    let written = retry_transient(|| async {
        let txn = db.begin().await.map_err(store_err)?;
        let outcome = write(&txn, &coupon, items).await;
        finish(txn, outcome).await
    })
    .await;
    match written {
        Ok(outcomes) => outcomes,
        Err(err) => {
            let shared = format!("{err:#}");
            items.iter().map(|_| Err(CouponError::Store(anyhow::anyhow!("{shared}")))).collect()
        }
    }
}

async fn write(
    txn: &DatabaseTransaction,
    coupon: &Coupon,
    items: &[IssueRequest],
) -> Result<Vec<Outcome>, CouponError> {
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            "SELECT issued_quantity FROM coupon WHERE id = ? FOR UPDATE",
            [coupon.id.into()],
        ))
        .await
        .map_err(store_err)?
        .ok_or(CouponError::CouponNotFound(coupon.id))?;
    let mut issued: i64 = row.try_get_by_index(0).map_err(store_err)?;

    // Holders MySQL already has (a gate rebuilt from an older state cannot know them all).
    let placeholders = vec!["?"; items.len()].join(", ");
    let mut params: Vec<Value> = vec![coupon.id.into()];
    params.extend(items.iter().map(|i| Value::from(i.user_id)));
    let holders: HashSet<i64> = txn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            format!("SELECT user_id FROM user_coupon WHERE coupon_id = ? AND user_id IN ({placeholders})"),
            params,
        ))
        .await
        .map_err(store_err)?
        .iter()
        .map(|r| r.try_get_by_index::<i64>(0))
        .collect::<Result<_, _>>()
        .map_err(store_err)?;

    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| items[i].admitted);
    let mut outcomes: Vec<Option<Outcome>> = (0..items.len()).map(|_| None).collect();
    let mut seen = HashSet::new();
    let mut accepted = Vec::new();
    for i in order {
        let user = items[i].user_id;
        if holders.contains(&user) || !seen.insert(user) {
            outcomes[i] = Some(Err(CouponError::AlreadyIssued));
        } else if issued >= coupon.total_quantity {
            outcomes[i] = Some(Err(CouponError::SoldOut));
        } else {
            issued += 1;
            accepted.push((i, issued));
        }
    }
    if let (Some(&(_, first_seq)), Some(&(_, last_seq))) = (accepted.first(), accepted.last()) {
        let now = kit::time::now_millis();
        let expires = coupon.expires_at(now);
        let mut values: Vec<Value> = Vec::with_capacity(accepted.len() * 7);
        for &(i, sequence) in &accepted {
            values.extend([
                coupon.id.into(),
                items[i].user_id.into(),
                sequence.into(),
                coupon.total_quantity.into(),
                now.naive_utc().into(),
                expires.naive_utc().into(),
            ]);
        }
        let rows = vec!["(?, ?, ?, ?, 'AVAILABLE', ?, ?)"; accepted.len()].join(", ");
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            format!(
                "INSERT INTO user_coupon (coupon_id, user_id, sequence, total_quantity, status, issued_at, expires_at) VALUES {rows}"
            ),
            values,
        ))
        .await
        .map_err(store_err)?;
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            "UPDATE coupon SET issued_quantity = ? WHERE id = ?",
            [issued.into(), coupon.id.into()],
        ))
        .await
        .map_err(store_err)?;
        let ids = txn
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::MySql,
                "SELECT sequence, id, issued_at FROM user_coupon WHERE coupon_id = ? AND sequence BETWEEN ? AND ? ORDER BY sequence",
                [coupon.id.into(), first_seq.into(), last_seq.into()],
            ))
            .await
            .map_err(store_err)?;
        for (row, &(i, sequence)) in ids.iter().zip(&accepted) {
            let stored_seq: i64 = row.try_get_by_index(0).map_err(store_err)?;
            if stored_seq != sequence {
                return Err(CouponError::Store(anyhow::anyhow!("issued sequences came back out of step")));
            }
            let issued_at = row.try_get_by_index::<NaiveDateTime>(2).map_err(store_err)?.and_utc();
            outcomes[i] = Some(Ok(UserCoupon {
                id: row.try_get_by_index(1).map_err(store_err)?,
                coupon_id: coupon.id,
                user_id: items[i].user_id,
                sequence,
                status: UserCouponStatus::Available,
                issued_at,
                expires_at: coupon.expires_at(issued_at),
                used_at: None,
                order_id: None,
                name: coupon.name.clone(),
                discount: coupon.discount,
            }));
        }
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Err(CouponError::Store(anyhow::anyhow!("undecided issue")))))
        .collect())
}

/// Which of `users` hold `coupon_id` in MySQL.
pub async fn holders_among(
    db: &DatabaseConnection,
    coupon_id: i64,
    users: &[i64],
) -> Result<HashSet<i64>, CouponError> {
    if users.is_empty() {
        return Ok(HashSet::new());
    }
    let placeholders = vec!["?"; users.len()].join(", ");
    let mut params: Vec<Value> = vec![coupon_id.into()];
    params.extend(users.iter().map(|u| Value::from(*u)));
    db.query_all_raw(Statement::from_sql_and_values(
        DbBackend::MySql,
        format!("SELECT user_id FROM user_coupon WHERE coupon_id = ? AND user_id IN ({placeholders})"),
        params,
    ))
    .await
    .map_err(store_err)?
    .iter()
    .map(|r| r.try_get_by_index::<i64>(0).map_err(store_err))
    .collect()
}

/// Every holder of `coupon_id`, to rebuild the gate.
pub async fn all_holders(db: &DatabaseConnection, coupon_id: i64) -> Result<Vec<i64>, CouponError> {
    db.query_all_raw(Statement::from_sql_and_values(
        DbBackend::MySql,
        "SELECT user_id FROM user_coupon WHERE coupon_id = ?",
        [coupon_id.into()],
    ))
    .await
    .map_err(store_err)?
    .iter()
    .map(|r| r.try_get_by_index::<i64>(0).map_err(store_err))
    .collect()
}
