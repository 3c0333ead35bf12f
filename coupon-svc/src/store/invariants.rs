//! What coupon-svc's own data must satisfy, as checks for the invariant watcher
//! (`kit::invariants`). Each returns what breaks its invariant, at most `LIMIT` rows.
//!
//! Cost: the three MySQL checks group `user_coupon` by coupon through its unique keys
//! (`(coupon_id, user_id)`, `(coupon_id, sequence)`); `gate_drift` asks Redis two cheap
//! questions per coupon. Coupons are few (an admin creates them); their holders are many.
//! Full passes every `COUPON_INVARIANT_CHECK_EVERY_SECS`.

use kit::invariants::{Violation, Watcher};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, QueryResult, Statement};

use super::IssueGate;

const LIMIT: u32 = 1_000;

/// The coupons' invariants, checked on `db` and `gate`.
pub fn watcher(db: DatabaseConnection, gate: IssueGate, every: std::time::Duration) -> Watcher {
    let (over, dup, gap) = (db.clone(), db.clone(), db.clone());
    Watcher::new("coupon-svc", every)
        .check("over_issued", move || over_issued(over.clone()))
        .check("duplicate_holder", move || duplicate_holder(dup.clone()))
        .check("sequence_gap", move || sequence_gap(gap.clone()))
        .check("gate_drift", move || gate_drift(db.clone(), gate.clone()))
}

async fn rows(db: &DatabaseConnection, sql: String) -> anyhow::Result<Vec<QueryResult>> {
    Ok(db.query_all_raw(Statement::from_string(DbBackend::MySql, sql)).await?)
}

fn ints<const N: usize>(row: &QueryResult) -> anyhow::Result<[i64; N]> {
    let mut out = [0; N];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = row.try_get_by_index(i)?;
    }
    Ok(out)
}

/// No coupon has more holders than copies, and its issued counter is its holder count.
async fn over_issued(db: DatabaseConnection) -> anyhow::Result<Vec<Violation>> {
    let found = rows(
        &db,
        format!(
            "SELECT c.id, c.total_quantity, c.issued_quantity, COUNT(u.id) FROM coupon c \
             LEFT JOIN user_coupon u ON u.coupon_id = c.id GROUP BY c.id, c.total_quantity, c.issued_quantity \
             HAVING COUNT(u.id) > c.total_quantity OR COUNT(u.id) <> c.issued_quantity ORDER BY c.id LIMIT {LIMIT}"
        ),
    )
    .await?;
    found
        .iter()
        .map(|row| {
            let [id, total, counter, holders] = ints::<4>(row)?;
            Ok(format!("coupon {id} has {holders} holders for {total} copies (issued counter {counter})"))
        })
        .collect()
}

/// No user holds a coupon twice (the unique key says so; this proves the key is there).
async fn duplicate_holder(db: DatabaseConnection) -> anyhow::Result<Vec<Violation>> {
    let found = rows(
        &db,
        format!(
            "SELECT coupon_id, user_id, COUNT(*) FROM user_coupon GROUP BY coupon_id, user_id HAVING COUNT(*) > 1 \
             ORDER BY coupon_id, user_id LIMIT {LIMIT}"
        ),
    )
    .await?;
    found
        .iter()
        .map(|row| {
            let [coupon, user, copies] = ints::<3>(row)?;
            Ok(format!("user {user} holds coupon {coupon} {copies} times"))
        })
        .collect()
}

/// The holders of a coupon are numbered exactly 1..=n in arrival order: with distinct
/// sequences (a unique key), that is a largest sequence equal to the count.
async fn sequence_gap(db: DatabaseConnection) -> anyhow::Result<Vec<Violation>> {
    let found = rows(
        &db,
        format!(
            "SELECT coupon_id, COUNT(*), MIN(sequence), MAX(sequence) FROM user_coupon GROUP BY coupon_id \
             HAVING MAX(sequence) <> COUNT(*) OR MIN(sequence) <> 1 ORDER BY coupon_id LIMIT {LIMIT}"
        ),
    )
    .await?;
    found
        .iter()
        .map(|row| {
            let [coupon, holders, first, last] = ints::<4>(row)?;
            Ok(format!("coupon {coupon} has {holders} holders numbered {first}..={last}, expected 1..={holders}"))
        })
        .collect()
}

/// A complete gate admits at least every holder MySQL has: one that has fewer forgot
/// someone, and would admit more users than there are copies (MySQL's constraints then
/// refuse them, as errors). More admissions than holders is normal while writes are in
/// flight, and the reconciler drops the ones that never got written.
async fn gate_drift(db: DatabaseConnection, gate: IssueGate) -> anyhow::Result<Vec<Violation>> {
    let coupons =
        rows(&db, format!("SELECT id, issued_quantity, total_quantity FROM coupon ORDER BY id DESC LIMIT {LIMIT}"))
            .await?;
    let mut found = Vec::new();
    for row in &coupons {
        let [id, issued, total] = ints::<3>(row)?;
        // The same pass refreshes the dashboard's copies left (newest coupons only: bounded labels).
        metrics::gauge!("coupon_remaining", "coupon_id" => id.to_string()).set((total - issued).max(0) as f64);
        if let Some((admitted, true)) = gate.admitted(id).await.map_err(|err| anyhow::anyhow!("{err}"))?
            && admitted < issued
        {
            found.push(format!("coupon {id}'s gate admits {admitted} users but MySQL holds {issued} issues"));
        }
    }
    Ok(found)
}
