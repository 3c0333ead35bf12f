//! What the reconciliation pass reads of the orders: settled state only, by primary key.

use sea_orm::{ConnectionTrait, QueryResult, Value};

use super::{Store, stmt};

/// An order as the reconciliation pass compares it with the participants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditedOrder {
    pub id: String,
    /// `COMPLETED`, `FAILED`, `CANCELLED`, or an unsettled state (`PENDING`, `CANCELLING`).
    pub status: String,
    pub with_coupon: bool,
    pub paid_amount: i64,
}

fn audited(row: &QueryResult) -> Result<AuditedOrder, sea_orm::DbErr> {
    Ok(AuditedOrder {
        id: row.try_get_by_index(0)?,
        status: row.try_get_by_index(1)?,
        with_coupon: row.try_get_by_index::<Option<i64>>(2)?.is_some(),
        paid_amount: row.try_get_by_index(3)?,
    })
}

impl Store {
    /// The next `limit` orders after `after` in id order (a sweep over every order, by its
    /// primary key: no index to keep up on the checkout path).
    pub async fn orders_after(&self, after: &str, limit: u32) -> Result<Vec<AuditedOrder>, sea_orm::DbErr> {
        let rows = self
            .db
            .query_all_raw(stmt(
                "SELECT id, status, user_coupon_id, paid_amount FROM orders WHERE id > ? ORDER BY id LIMIT ?",
                [after.into(), limit.into()],
            ))
            .await?;
        rows.iter().map(audited).collect()
    }

    /// The orders `ids` as they are now.
    pub async fn orders_by_id(&self, ids: &[String]) -> Result<Vec<AuditedOrder>, sea_orm::DbErr> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let marks = vec!["?"; ids.len()].join(", ");
        let rows = self
            .db
            .query_all_raw(stmt(
                &format!("SELECT id, status, user_coupon_id, paid_amount FROM orders WHERE id IN ({marks})"),
                ids.iter().map(|id| Value::from(id.as_str())),
            ))
            .await?;
        rows.iter().map(audited).collect()
    }
}
