//! Reads point-svc's own tables after a run: whatever the API said, the rows must show a
//! ledger that sums to every balance (DESIGN.md, "Points").

use anyhow::Context;
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::scenarios::Ledger;

/// The ledger of the users `lo..=hi`, in one query.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Audit {
    /// Users with a balance row.
    pub users: i64,
    /// Users whose balance differs from SUM(credits) - SUM(debits) of their entries.
    pub mismatched: i64,
    /// Users whose newest entry's `balance_after` is not their balance (or who have none).
    pub stale: i64,
    pub negative: i64,
    /// Users with entries but no balance row.
    pub orphans: i64,
    /// Entries whose `balance_after` is not the previous one's plus (or minus) their amount.
    pub chain_breaks: i64,
    pub total_balance: i64,
    /// SUM(credits) - SUM(debits) over every entry of the range.
    pub ledger_net: i64,
    pub charge_rows: i64,
    pub use_rows: i64,
}

impl Audit {
    pub fn consistent(&self) -> bool {
        self.mismatched == 0 && self.stale == 0 && self.negative == 0 && self.orphans == 0 && self.chain_breaks == 0
    }

    pub fn detail(&self) -> String {
        format!(
            "{} users: balances {} vs ledger {}; {} with a ledger sum != balance, {} with newest balance_after \
             != balance, {} negative, {} orphaned, {} chain breaks ({} CHARGE + {} USE rows)",
            self.users,
            self.total_balance,
            self.ledger_net,
            self.mismatched,
            self.stale,
            self.negative,
            self.orphans,
            self.chain_breaks,
            self.charge_rows,
            self.use_rows
        )
    }
}

/// Signed amount of an entry: credits raise the balance, debits lower it.
const SIGNED: &str = "IF(entry_type IN ('CHARGE', 'REFUND'), amount, -amount)";

fn audit_sql() -> String {
    let n = |expr: &str| format!("CAST(COALESCE({expr}, 0) AS SIGNED)");
    let in_range = "user_id BETWEEN ? AND ?";
    format!(
        "SELECT {users}, {mismatched}, {stale}, {negative}, {total}, {net}, \
           (SELECT COUNT(DISTINCT x.user_id) FROM point_history x WHERE x.{in_range} \
              AND NOT EXISTS (SELECT 1 FROM point_balance y WHERE y.user_id = x.user_id)), \
           (SELECT COUNT(*) FROM (SELECT balance_after, {SIGNED} AS delta, \
              COALESCE(LAG(balance_after) OVER (PARTITION BY user_id ORDER BY id), 0) AS before_it \
              FROM point_history WHERE {in_range}) c WHERE c.balance_after <> c.before_it + c.delta), \
           (SELECT COUNT(*) FROM point_history WHERE {in_range} AND entry_type = 'CHARGE'), \
           (SELECT COUNT(*) FROM point_history WHERE {in_range} AND entry_type = 'USE') \
         FROM point_balance b \
         LEFT JOIN (SELECT user_id, SUM({SIGNED}) AS net, MAX(id) AS last_id FROM point_history \
                    WHERE {in_range} GROUP BY user_id) h ON h.user_id = b.user_id \
         LEFT JOIN point_history l ON l.id = h.last_id \
         WHERE b.{in_range}",
        users = "CAST(COUNT(*) AS SIGNED)",
        mismatched = n("SUM(b.balance <> COALESCE(h.net, 0))"),
        stale = n("SUM(NOT (b.balance <=> l.balance_after))"),
        negative = n("SUM(b.balance < 0)"),
        total = n("SUM(b.balance)"),
        net = n("SUM(h.net)"),
    )
}

/// Audits the users `lo..=hi` straight from the service's schema.
pub async fn audit(ledger: &Ledger, lo: i64, hi: i64) -> anyhow::Result<Audit> {
    let sql = audit_sql();
    // Every placeholder pair is the same range.
    let values = (0..sql.matches('?').count() / 2).flat_map(|_| [lo.into(), hi.into()]);
    let statement = Statement::from_sql_and_values(DbBackend::MySql, sql.as_str(), values);
    let db = ledger.connect().await?;
    let row = db.query_one_raw(statement).await;
    let _ = db.close().await;
    let row = row.context("the ledger audit query failed")?.context("the ledger audit returned no row")?;
    let get = |i: usize| row.try_get_by_index::<i64>(i).with_context(|| format!("ledger audit column {i}"));
    Ok(Audit {
        users: get(0)?,
        mismatched: get(1)?,
        stale: get(2)?,
        negative: get(3)?,
        total_balance: get(4)?,
        ledger_net: get(5)?,
        orphans: get(6)?,
        chain_breaks: get(7)?,
        charge_rows: get(8)?,
        use_rows: get(9)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audit_binds_ranges_and_judges_consistency() {
        assert_eq!(audit_sql().matches('?').count(), 12, "six `BETWEEN ? AND ?`");
        let clean = Audit { users: 1, total_balance: 100, ledger_net: 100, charge_rows: 1, ..Audit::default() };
        assert!(clean.consistent());
        assert!(!Audit { chain_breaks: 1, ..clean }.consistent());
        assert!(clean.detail().contains("0 with a ledger sum != balance"));
    }
}
