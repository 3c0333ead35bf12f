//! Creating a checkout's rows and reading orders back.

use sea_orm::{ConnectionTrait, QueryResult, Value};

use super::{Store, stmt, store_err};
use crate::domain::{
    Failure, ListLimit, Order, OrderId, OrderLine, OrderStatus, PaymentError, StepName, StepState, StepStatus, UserId,
};

const ORDER_COLUMNS: &str = "id, user_id, status, total_amount, discount_amount, paid_amount, user_coupon_id, \
     failure_code, failure_product_id, failure_detail, version, created_at, updated_at";

impl Store {
    /// The order with its lines and steps.
    pub async fn order(&self, id: &OrderId) -> Result<Option<Order>, PaymentError> {
        let row = self
            .db
            .query_one_raw(stmt(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?"), [id.as_str().into()]))
            .await
            .map_err(store_err)?;
        let Some(row) = row else { return Ok(None) };
        let mut order = order_from_row(&row).map_err(store_err)?;
        order.lines = self.lines(&[id.as_str()]).await?.into_iter().map(|(_, line)| line).collect();
        order.steps = self.steps(&order).await?;
        Ok(Some(order))
    }

    /// A user's orders, newest first, with their lines (not their steps).
    pub async fn user_orders(&self, user: UserId, limit: ListLimit) -> Result<Vec<Order>, PaymentError> {
        let rows = self
            .db
            .query_all_raw(stmt(
                &format!("SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = ? ORDER BY created_at DESC, id LIMIT ?"),
                [user.get().into(), limit.get().into()],
            ))
            .await
            .map_err(store_err)?;
        let mut orders = rows.iter().map(order_from_row).collect::<Result<Vec<_>, _>>().map_err(store_err)?;
        let ids: Vec<&str> = orders.iter().map(|o| o.id.as_str()).collect();
        let lines = self.lines(&ids).await?;
        for order in &mut orders {
            order.lines = lines.iter().filter(|(id, _)| *id == order.id).map(|(_, l)| l.clone()).collect();
        }
        Ok(orders)
    }

    async fn lines(&self, ids: &[&str]) -> Result<Vec<(String, OrderLine)>, PaymentError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let marks = vec!["?"; ids.len()].join(", ");
        let rows = self
            .db
            .query_all_raw(stmt(
                &format!(
                    "SELECT order_id, product_id, quantity, unit_price FROM order_line \
                     WHERE order_id IN ({marks}) ORDER BY order_id, line_no"
                ),
                ids.iter().map(|id| Value::from(*id)),
            ))
            .await
            .map_err(store_err)?;
        rows.iter()
            .map(|row| -> Result<_, sea_orm::DbErr> {
                Ok((
                    row.try_get_by_index(0)?,
                    OrderLine {
                        product_id: row.try_get_by_index(1)?,
                        quantity: row.try_get_by_index(2)?,
                        unit_price: row.try_get_by_index::<Option<i64>>(3)?.unwrap_or(0),
                    },
                ))
            })
            .collect::<Result<_, _>>()
            .map_err(store_err)
    }

    /// The saga's steps as the order shows them. A step has a row of its own only once
    /// something happened to it off the happy path (a failed call, a failure, a
    /// compensation); a step without one is what the order's state implies: DONE in a
    /// checkout that completed (every step ran once) or before the step that failed, else
    /// PENDING (not run yet, or running now).
    pub(super) async fn steps(&self, order: &Order) -> Result<Vec<StepState>, PaymentError> {
        let rows = self
            .db
            .query_all_raw(stmt(
                "SELECT seq, status, attempts, last_error, updated_at FROM saga_step WHERE saga_id = ? ORDER BY seq",
                [order.id.as_str().into()],
            ))
            .await
            .map_err(store_err)?;
        let mut written = Vec::with_capacity(rows.len());
        for row in &rows {
            let status: String = row.try_get_by_index(1).map_err(store_err)?;
            written.push((
                row.try_get_by_index::<i8>(0).map_err(store_err)? as usize,
                StepStatus::parse(&status).ok_or_else(|| store_err(unknown("step status", &status)))?,
                row.try_get_by_index::<i32>(2).map_err(store_err)?,
                row.try_get_by_index::<Option<String>>(3).map_err(store_err)?,
                row.try_get_by_index::<chrono::NaiveDateTime>(4).map_err(store_err)?.and_utc(),
            ));
        }
        let failed_at = written.iter().find(|w| w.1 == StepStatus::Failed).map(|w| w.0);
        let ran = matches!(order.status, OrderStatus::Completed | OrderStatus::Cancelling | OrderStatus::Cancelled);
        let plan = StepName::plan(order.user_coupon_id.is_some());
        Ok(plan
            .into_iter()
            .enumerate()
            .map(|(seq, name)| match written.iter().find(|w| w.0 == seq) {
                Some((_, status, attempts, last_error, updated_at)) => StepState {
                    name,
                    status: *status,
                    attempts: *attempts,
                    last_error: last_error.clone(),
                    updated_at: *updated_at,
                },
                None => {
                    let done = ran || failed_at.is_some_and(|failed| seq < failed);
                    StepState {
                        name,
                        status: if done { StepStatus::Done } else { StepStatus::Pending },
                        attempts: i32::from(done),
                        last_error: None,
                        updated_at: order.updated_at,
                    }
                }
            })
            .collect())
    }
}

pub(super) fn unknown(what: &str, value: &str) -> sea_orm::DbErr {
    sea_orm::DbErr::Custom(format!("unknown {what} {value:?} in the database"))
}

fn order_from_row(row: &QueryResult) -> Result<Order, sea_orm::DbErr> {
    let status: String = row.try_get_by_index(2)?;
    let code: Option<String> = row.try_get_by_index(7)?;
    let failure = code.map(|code| -> Result<Failure, sea_orm::DbErr> {
        Ok(Failure {
            code,
            product_id: row.try_get_by_index(8)?,
            detail: row.try_get_by_index::<Option<String>>(9)?.unwrap_or_default(),
        })
    });
    Ok(Order {
        id: row.try_get_by_index(0)?,
        user_id: row.try_get_by_index(1)?,
        status: OrderStatus::parse(&status).ok_or_else(|| unknown("order status", &status))?,
        lines: Vec::new(),
        total_amount: row.try_get_by_index(3)?,
        discount_amount: row.try_get_by_index(4)?,
        paid_amount: row.try_get_by_index(5)?,
        user_coupon_id: row.try_get_by_index(6)?,
        failure: failure.transpose()?,
        version: row.try_get_by_index(10)?,
        created_at: row.try_get_by_index::<chrono::NaiveDateTime>(11)?.and_utc(),
        updated_at: row.try_get_by_index::<chrono::NaiveDateTime>(12)?.and_utc(),
        steps: Vec::new(),
    })
}
