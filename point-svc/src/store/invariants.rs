//! What point-svc's own data must satisfy, as queries for the invariant watcher
//! (`kit::invariants`). Each returns what breaks its invariant, at most `LIMIT` rows.
//!
//! Cost: both read every balance row; `ledger_balance_mismatch` also walks each user's
//! ledger through `point_history_user (user_id, id)`. One statement each, so each sees one
//! consistent snapshot: a movement's balance and ledger line commit together, and no pass
//! can see one without the other. Full passes every `POINT_INVARIANT_CHECK_EVERY_SECS`.

use kit::invariants::{Violation, Watcher};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

const LIMIT: u32 = 1_000;

/// The points' invariants, checked on `db`.
pub fn watcher(db: DatabaseConnection, every: std::time::Duration) -> Watcher {
    let balance_db = db.clone();
    Watcher::new("point-svc", every)
        .check("negative_balance", move || negative_balance(balance_db.clone()))
        .check("ledger_balance_mismatch", move || ledger_balance_mismatch(db.clone()))
}

async fn negative_balance(db: DatabaseConnection) -> anyhow::Result<Vec<Violation>> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::MySql,
            format!("SELECT user_id, balance FROM point_balance WHERE balance < 0 ORDER BY user_id LIMIT {LIMIT}"),
        ))
        .await?;
    rows.iter()
        .map(|row| {
            let (user, balance): (i64, i64) = (row.try_get_by_index(0)?, row.try_get_by_index(1)?);
            Ok(format!("user {user} has balance {balance}, expected >= 0"))
        })
        .collect()
}

/// The ledger is the record: credits (CHARGE, REFUND) minus debits (USE, PAYMENT) must be
/// the balance, for every user.
async fn ledger_balance_mismatch(db: DatabaseConnection) -> anyhow::Result<Vec<Violation>> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::MySql,
            format!(
                "SELECT b.user_id, b.balance, CAST(COALESCE(SUM(CASE h.entry_type WHEN 'CHARGE' THEN h.amount \
                 WHEN 'REFUND' THEN h.amount ELSE -h.amount END), 0) AS SIGNED) AS ledger \
                 FROM point_balance b LEFT JOIN point_history h ON h.user_id = b.user_id \
                 GROUP BY b.user_id, b.balance HAVING ledger <> b.balance ORDER BY b.user_id LIMIT {LIMIT}"
            ),
        ))
        .await?;
    rows.iter()
        .map(|row| {
            let (user, balance, ledger): (i64, i64, i64) =
                (row.try_get_by_index(0)?, row.try_get_by_index(1)?, row.try_get_by_index(2)?);
            Ok(format!("user {user} has balance {balance} but the ledger sums to {ledger}"))
        })
        .collect()
}
