//! Creating a checkout's rows and reading orders back.

use kit::idempotency::IdempotencyKey;
use sea_orm::{ConnectionTrait, QueryResult, Value};

use super::{Store, WriteError, Writer, stmt, store_err};
use crate::domain::{
    Failure, ListLimit, Order, OrderId, OrderLine, OrderStatus, PaymentError, PlaceOrder, StepName, StepState,
    StepStatus, UserId,
};

const ORDER_COLUMNS: &str = "id, user_id, status, total_amount, discount_amount, paid_amount, user_coupon_id, \
     failure_code, failure_product_id, failure_detail, version, created_at, updated_at";

impl Store {
    /// Writes a new checkout (order, lines, saga owned by `writer`, every step PENDING) in
    /// one transaction, if `writer`'s epoch is still the newest. `Ok(false)`: the order
    /// already exists (a retry of the same key got here first), nothing written.
    pub async fn create_checkout(
        &self,
        writer: &Writer,
        id: &OrderId,
        request: &PlaceOrder,
        idempotency: Option<&IdempotencyKey>,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, WriteError> {
        let txn = self.fenced(writer).await?;
        let at = at.naive_utc();
        let (user, coupon) = (request.user().get(), request.coupon().map(|c| c.get()));
        let inserted = txn
            .execute_raw(stmt(
                "INSERT IGNORE INTO orders (id, user_id, status, user_coupon_id, version, created_at, updated_at) \
                 VALUES (?, ?, 'PENDING', ?, 1, ?, ?)",
                [id.as_str().into(), user.into(), coupon.into(), at.into(), at.into()],
            ))
            .await?
            .rows_affected();
        if inserted == 0 {
            let _ = txn.rollback().await;
            return Ok(false);
        }
        let mut values: Vec<Value> = Vec::new();
        for (no, line) in request.lines().iter().enumerate() {
            values.extend([
                id.as_str().into(),
                (no as i32).into(),
                line.product.get().into(),
                line.quantity.get().into(),
            ]);
        }
        let rows = vec!["(?, ?, ?, ?)"; request.lines().len()].join(", ");
        txn.execute_raw(stmt(
            &format!("INSERT INTO order_line (order_id, line_no, product_id, quantity) VALUES {rows}"),
            values,
        ))
        .await?;
        let scope = idempotency.map(|k| k.scope().to_owned());
        let key = idempotency.map(|k| k.key().to_owned());
        let hash = idempotency.map(|k| k.fingerprint().to_vec());
        txn.execute_raw(stmt(
            "INSERT INTO saga (id, user_id, phase, owner, lease_until, fence_epoch, idem_scope, idem_key, \
             idem_hash, created_at, updated_at) VALUES (?, ?, 'FORWARD', ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                id.as_str().into(),
                user.into(),
                writer.owner.as_str().into(),
                self.lease_end().into(),
                writer.epoch.into(),
                scope.into(),
                key.into(),
                hash.into(),
                at.into(),
                at.into(),
            ],
        ))
        .await?;
        let plan = StepName::plan(coupon.is_some());
        let mut values: Vec<Value> = Vec::new();
        for (seq, step) in plan.iter().enumerate() {
            // The first step's call is made right after this commit: counted here.
            let attempts = i32::from(seq == 0);
            values.extend([id.as_str().into(), (seq as i32).into(), step.as_str().into(), attempts.into(), at.into()]);
        }
        let rows = vec!["(?, ?, ?, 'PENDING', ?, ?)"; plan.len()].join(", ");
        txn.execute_raw(stmt(
            &format!("INSERT INTO saga_step (saga_id, seq, name, status, attempts, updated_at) VALUES {rows}"),
            values,
        ))
        .await?;
        txn.commit().await?;
        Ok(true)
    }

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
        order.steps = self.steps(id.as_str()).await?;
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

    pub(super) async fn steps(&self, id: &str) -> Result<Vec<StepState>, PaymentError> {
        let rows = self
            .db
            .query_all_raw(stmt(
                "SELECT name, status, attempts, last_error, updated_at FROM saga_step WHERE saga_id = ? ORDER BY seq",
                [id.into()],
            ))
            .await
            .map_err(store_err)?;
        rows.iter()
            .map(|row| -> Result<StepState, sea_orm::DbErr> {
                let name: String = row.try_get_by_index(0)?;
                let status: String = row.try_get_by_index(1)?;
                Ok(StepState {
                    name: StepName::parse(&name).ok_or_else(|| unknown("step name", &name))?,
                    status: StepStatus::parse(&status).ok_or_else(|| unknown("step status", &status))?,
                    attempts: row.try_get_by_index(2)?,
                    last_error: row.try_get_by_index(3)?,
                    updated_at: row.try_get_by_index::<chrono::NaiveDateTime>(4)?.and_utc(),
                })
            })
            .collect::<Result<_, _>>()
            .map_err(store_err)
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
