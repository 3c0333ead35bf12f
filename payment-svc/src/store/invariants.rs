//! What payment-svc's own data must satisfy, as queries for the invariant watcher
//! (`kit::invariants`). Each returns what breaks its invariant, at most `LIMIT` rows.
//!
//! Cost: `stuck_saga` walks the unsettled sagas through `saga_drivable (phase, lease_until)`
//! (a handful in a healthy mesh); `paid_amount_mismatch` reads every COMPLETED order with its
//! payment row by primary key. Full passes every `PAYMENT_INVARIANT_CHECK_EVERY_SECS`.

use std::time::Duration;

use kit::invariants::{Violation, Watcher};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

const LIMIT: u32 = 1_000;

/// The payments' invariants, checked on `db`. A saga still unsettled `overdue` after it
/// started is stuck: past its forward budget and the leases of two drivers.
pub fn watcher(db: DatabaseConnection, every: Duration, overdue: Duration) -> Watcher {
    let saga_db = db.clone();
    Watcher::new("payment-svc", every)
        .check("stuck_saga", move || stuck_saga(saga_db.clone(), overdue))
        .check("paid_amount_mismatch", move || paid_amount_mismatch(db.clone()))
}

async fn stuck_saga(db: DatabaseConnection, overdue: Duration) -> anyhow::Result<Vec<Violation>> {
    let cutoff = kit::time::now_millis() - chrono::Duration::from_std(overdue)?;
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            format!(
                "SELECT id, phase, rounds, COALESCE(last_error, ''), created_at FROM saga \
                 WHERE phase IN ('FORWARD', 'COMPENSATING', 'CANCELLING') AND created_at < ? \
                 ORDER BY created_at LIMIT {LIMIT}"
            ),
            [cutoff.naive_utc().into()],
        ))
        .await?;
    metrics::gauge!("saga_overdue").set(rows.len() as f64);
    rows.iter()
        .map(|row| {
            let (id, phase, rounds, error): (String, String, i32, String) = (
                row.try_get_by_index(0)?,
                row.try_get_by_index(1)?,
                row.try_get_by_index(2)?,
                row.try_get_by_index(3)?,
            );
            let started: chrono::NaiveDateTime = row.try_get_by_index(4)?;
            Ok(format!(
                "saga {id} is still {phase} since {started} (deferred rounds {rounds}, last error {error:?}), \
                 expected settled within {overdue:?}"
            ))
        })
        .collect()
}

/// Every COMPLETED order has exactly its payment row: PAID, with the order's points and
/// discount; and no PAID payment belongs to an order that is not COMPLETED.
async fn paid_amount_mismatch(db: DatabaseConnection) -> anyhow::Result<Vec<Violation>> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::MySql,
            format!(
                "SELECT o.id, o.status, o.paid_amount, o.discount_amount, p.status, p.points_amount, p.discount_amount \
                 FROM orders o LEFT JOIN payment p ON p.order_id = o.id \
                 WHERE (o.status = 'COMPLETED' AND (p.order_id IS NULL OR p.status <> 'PAID' \
                        OR p.points_amount <> o.paid_amount OR p.discount_amount <> o.discount_amount)) \
                    OR (o.status <> 'COMPLETED' AND p.status = 'PAID') \
                 ORDER BY o.id LIMIT {LIMIT}"
            ),
        ))
        .await?;
    rows.iter()
        .map(|row| {
            let (id, status, paid, discount): (String, String, i64, i64) = (
                row.try_get_by_index(0)?,
                row.try_get_by_index(1)?,
                row.try_get_by_index(2)?,
                row.try_get_by_index(3)?,
            );
            let payment: Option<String> = row.try_get_by_index(4)?;
            let (points, its_discount): (Option<i64>, Option<i64>) =
                (row.try_get_by_index(5)?, row.try_get_by_index(6)?);
            Ok(match payment {
                None => format!("order {id} is {status} with paid {paid} but has no payment row"),
                Some(p) => format!(
                    "order {id} is {status} with paid {paid}, discount {discount}; its payment is {p} with points {}, \
                     discount {}",
                    points.unwrap_or_default(),
                    its_discount.unwrap_or_default()
                ),
            })
        })
        .collect()
}
