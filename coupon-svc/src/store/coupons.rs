//! Coupon definitions and a user's coupons.

use chrono::{DateTime, NaiveDateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, QueryResult, Statement};

use super::store_err;
use crate::domain::{Coupon, CouponError, CouponId, Discount, IssueWindow, NewCoupon, PageRequest, UserCoupon, UserId};

const COUPON_COLUMNS: &str = "id, name, discount_type, discount_value, max_discount, total_quantity, issued_quantity, \
                              issue_starts_at, issue_ends_at, valid_days, created_at";

pub async fn create(db: &DatabaseConnection, new: NewCoupon) -> Result<Coupon, CouponError> {
    let now = kit::time::now_millis();
    let naive = |t: Option<DateTime<Utc>>| t.map(|t| t.naive_utc());
    let result = db
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            "INSERT INTO coupon (name, discount_type, discount_value, max_discount, total_quantity, issued_quantity, \
             issue_starts_at, issue_ends_at, valid_days, created_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?)",
            [
                new.name.clone().into(),
                new.discount.kind().into(),
                new.discount.value().into(),
                new.discount.cap().into(),
                new.total_quantity.into(),
                naive(new.window.starts_at).into(),
                naive(new.window.ends_at).into(),
                new.valid_days.into(),
                now.naive_utc().into(),
            ],
        ))
        .await
        .map_err(store_err)?;
    Ok(Coupon {
        id: result.last_insert_id() as i64,
        name: new.name,
        discount: new.discount,
        total_quantity: new.total_quantity,
        issued_quantity: 0,
        window: new.window,
        valid_days: new.valid_days,
        created_at: now,
    })
}

pub async fn get<C: ConnectionTrait>(conn: &C, id: CouponId) -> Result<Coupon, CouponError> {
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            format!("SELECT {COUPON_COLUMNS} FROM coupon WHERE id = ?"),
            [id.get().into()],
        ))
        .await
        .map_err(store_err)?
        .ok_or(CouponError::CouponNotFound(id.get()))?;
    coupon_from_row(&row)
}

/// One page of coupons, newest first (ids grow with creation), and how many there are.
pub async fn list(db: &DatabaseConnection, page: PageRequest) -> Result<(Vec<Coupon>, i64), CouponError> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            format!("SELECT {COUPON_COLUMNS} FROM coupon ORDER BY id DESC LIMIT ? OFFSET ?"),
            [page.size().into(), page.offset().into()],
        ))
        .await
        .map_err(store_err)?;
    let items = rows.iter().map(coupon_from_row).collect::<Result<Vec<_>, _>>()?;
    let total: i64 = db
        .query_one_raw(Statement::from_string(DbBackend::MySql, "SELECT COUNT(*) FROM coupon"))
        .await
        .map_err(store_err)?
        .ok_or_else(|| CouponError::Store(anyhow::anyhow!("COUNT(*) returned no row")))?
        .try_get_by_index(0)
        .map_err(store_err)?;
    Ok((items, total))
}

/// How many copies of `coupon_id` MySQL holds (a primary-key read).
pub async fn issued_quantity(db: &DatabaseConnection, coupon_id: i64) -> Result<i64, CouponError> {
    db.query_one_raw(Statement::from_sql_and_values(
        DbBackend::MySql,
        "SELECT issued_quantity FROM coupon WHERE id = ?",
        [coupon_id.into()],
    ))
    .await
    .map_err(store_err)?
    .ok_or(CouponError::CouponNotFound(coupon_id))?
    .try_get_by_index(0)
    .map_err(store_err)
}

/// Whether `user_id` holds `coupon_id`: one probe of `UNIQUE(coupon_id, user_id)`.
pub async fn holds(db: &DatabaseConnection, coupon_id: i64, user_id: i64) -> Result<bool, CouponError> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            "SELECT 1 FROM user_coupon WHERE coupon_id = ? AND user_id = ?",
            [coupon_id.into(), user_id.into()],
        ))
        .await
        .map_err(store_err)?;
    Ok(row.is_some())
}

fn coupon_from_row(row: &QueryResult) -> Result<Coupon, CouponError> {
    let utc = |t: Option<NaiveDateTime>| t.map(|t| t.and_utc());
    let kind: String = row.try_get_by_index(2).map_err(store_err)?;
    Ok(Coupon {
        id: row.try_get_by_index(0).map_err(store_err)?,
        name: row.try_get_by_index(1).map_err(store_err)?,
        discount: Discount::parse(
            &kind,
            row.try_get_by_index(3).map_err(store_err)?,
            row.try_get_by_index(4).map_err(store_err)?,
        )
        .map_err(|e| CouponError::Store(anyhow::anyhow!("stored coupon is invalid: {e}")))?,
        total_quantity: row.try_get_by_index(5).map_err(store_err)?,
        issued_quantity: row.try_get_by_index(6).map_err(store_err)?,
        window: IssueWindow {
            starts_at: utc(row.try_get_by_index(7).map_err(store_err)?),
            ends_at: utc(row.try_get_by_index(8).map_err(store_err)?),
        },
        valid_days: row.try_get_by_index(9).map_err(store_err)?,
        created_at: row.try_get_by_index::<NaiveDateTime>(10).map_err(store_err)?.and_utc(),
    })
}

/// A user's coupons, newest first, with their coupon's name and discount.
pub async fn user_coupons(db: &DatabaseConnection, user: UserId) -> Result<Vec<UserCoupon>, CouponError> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            "SELECT uc.id, uc.coupon_id, uc.user_id, uc.sequence, uc.status, uc.issued_at, uc.expires_at, uc.used_at, \
             uc.order_id, c.name, c.discount_type, c.discount_value, c.max_discount \
             FROM user_coupon uc JOIN coupon c ON c.id = uc.coupon_id WHERE uc.user_id = ? ORDER BY uc.id DESC LIMIT 500",
            [user.get().into()],
        ))
        .await
        .map_err(store_err)?;
    let now = Utc::now();
    rows.iter()
        .map(|row| {
            let status: String = row.try_get_by_index(4).map_err(store_err)?;
            let expires_at = row.try_get_by_index::<NaiveDateTime>(6).map_err(store_err)?.and_utc();
            let kind: String = row.try_get_by_index(10).map_err(store_err)?;
            Ok(UserCoupon {
                id: row.try_get_by_index(0).map_err(store_err)?,
                coupon_id: row.try_get_by_index(1).map_err(store_err)?,
                user_id: row.try_get_by_index(2).map_err(store_err)?,
                sequence: row.try_get_by_index(3).map_err(store_err)?,
                status: UserCoupon::status_at(status == "USED", expires_at, now),
                issued_at: row.try_get_by_index::<NaiveDateTime>(5).map_err(store_err)?.and_utc(),
                expires_at,
                used_at: row.try_get_by_index::<Option<NaiveDateTime>>(7).map_err(store_err)?.map(|t| t.and_utc()),
                order_id: row.try_get_by_index(8).map_err(store_err)?,
                name: row.try_get_by_index(9).map_err(store_err)?,
                discount: Discount::parse(
                    &kind,
                    row.try_get_by_index(11).map_err(store_err)?,
                    row.try_get_by_index(12).map_err(store_err)?,
                )
                .map_err(|e| CouponError::Store(anyhow::anyhow!("stored coupon is invalid: {e}")))?,
            })
        })
        .collect()
}
