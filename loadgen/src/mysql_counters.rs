//! MySQL's own counters around a phase: the SQL statements and transactions one operation
//! costs, read from the server (`SHOW GLOBAL STATUS`), figures that do not drift from machine
//! to machine the way throughput does (DESIGN.md, "Performance targets").
//!
//! What the counters count, measured on MariaDB 10.11 (global deltas, each line run 10 times in
//! one session and divided by 10; sqlx's prepared statements, as the services send them, count
//! exactly like text ones: `raw-mysql-checkout-tx` reads 2 statements and 1 transaction per op):
//!
//! | per execution                  | Com_update | Com_select | Com_commit | Com_rollback | Handler_commit |
//! |--------------------------------|-----------:|-----------:|-----------:|-------------:|---------------:|
//! | autocommit UPDATE              |          1 |          0 |          0 |            0 |              1 |
//! | autocommit UPDATE, no row      |          1 |          0 |          0 |            0 |              1 |
//! | autocommit SELECT              |          0 |          1 |          0 |            0 |              1 |
//! | BEGIN; UPDATE; UPDATE; COMMIT  |          2 |          0 |          1 |            0 |              3 |
//! | BEGIN; SELECT; COMMIT          |          0 |          1 |          1 |            0 |              2 |
//! | BEGIN; UPDATE; ROLLBACK        |          1 |          0 |          0 |            1 |              1 |
//!
//! (`INSERT`, `INSERT IGNORE` of a duplicate, `INSERT ... SELECT` count 1 each under
//! `Com_insert` / `Com_insert_select`; `SHOW GLOBAL STATUS` itself counts only under
//! `Com_show_status` and `Questions`.) Under 16 concurrent clients of `raw-mysql-checkout-tx`
//! (12,669 transactions of 2 UPDATEs): `Com_update` 25,338, `Com_commit` 12,669,
//! `Handler_commit` 38,023 (3 each), `Innodb_max_trx_id` +25,357 (an id at the start and a
//! serialisation number at the commit of every writing transaction, 1 for a locking read that
//! wrote nothing, 0 for a plain read) and `Innodb_log_writes` 4,461 (group commit), so neither
//! of the last two counts transactions either. Hence the definitions:
//!
//! - statements = Δ(`Com_select` + `Com_insert` + `Com_insert_select` + `Com_update` +
//!   `Com_update_multi` + `Com_delete` + `Com_delete_multi` + `Com_replace`): every data
//!   statement executed, text or prepared, whether it matched a row or not.
//! - transactions = Δ(`Com_commit` + `Com_rollback`): explicit transactions (sqlx's `begin()`
//!   sends `BEGIN`, then `COMMIT` or `ROLLBACK`). An autocommit statement is a transaction of
//!   its own too, but no status counter singles those out: `Handler_commit` is bumped once per
//!   statement that touched an InnoDB table and once more per `COMMIT` (3 for BEGIN; UPDATE;
//!   UPDATE; COMMIT), so it counts statements, not transactions, and is left out.
//! - questions = Δ`Questions`: every command clients sent, `BEGIN`, `COMMIT` and `SET` included.
//!
//! The counters are global: the mesh's background work (payment-svc's recovery sweep, once a
//! second) counts too. It is measured over an idle window just before the phase and its rate x
//! the phase's length is subtracted. The phase's snapshots are taken right around its load loop,
//! so loadgen's own setup and verification queries fall outside. Other clients of the server
//! count too, and no subtraction removes a burst of theirs: a high idle rate, printed next to
//! the figures, says the box was not quiet and the figures are off.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Context;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use serde_json::{Value, json};

/// How long the idle rate is measured before each phase: two of the mesh's one-second sweeps.
pub const IDLE_WINDOW: Duration = Duration::from_secs(2);

const STATEMENTS: [&str; 8] = [
    "Com_select",
    "Com_insert",
    "Com_insert_select",
    "Com_update",
    "Com_update_multi",
    "Com_delete",
    "Com_delete_multi",
    "Com_replace",
];
const TRANSACTIONS: [&str; 2] = ["Com_commit", "Com_rollback"];
const QUESTIONS: &str = "Questions";

/// Statements, transactions and questions: a delta, a rate or a per-operation figure.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counts {
    pub statements: f64,
    pub transactions: f64,
    pub questions: f64,
}

impl Counts {
    fn map(self, other: Counts, f: impl Fn(f64, f64) -> f64) -> Counts {
        Counts {
            statements: f(self.statements, other.statements),
            transactions: f(self.transactions, other.transactions),
            questions: f(self.questions, other.questions),
        }
    }

    fn scaled(self, k: f64) -> Counts {
        self.map(self, |a, _| a * k)
    }

    fn to_json(self) -> Value {
        let r = |x: f64| (x * 100.0).round() / 100.0;
        json!({"statements": r(self.statements), "transactions": r(self.transactions), "questions": r(self.questions)})
    }
}

/// What the server did during one phase, its idle background already subtracted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MysqlWork {
    /// Deltas over the phase minus the idle rate x `window`, never below zero.
    pub net: Counts,
    /// The idle background, per second.
    pub idle_per_s: Counts,
    /// Between the phase's two snapshots.
    pub window: Duration,
}

impl MysqlWork {
    fn from_deltas(phase: Counts, window: Duration, idle: Counts, idle_window: Duration) -> Self {
        let idle_per_s = idle.scaled(1.0 / idle_window.as_secs_f64().max(1e-9));
        let background = idle_per_s.scaled(window.as_secs_f64());
        Self { net: phase.map(background, |a, b| (a - b).max(0.0)), idle_per_s, window }
    }

    /// Per operation, `ops` being the operations the server answered in the phase.
    pub fn per_op(&self, ops: u64) -> Option<Counts> {
        (ops > 0).then(|| self.net.scaled(1.0 / ops as f64))
    }

    pub fn to_json(&self, ops: u64) -> Value {
        json!({
            "per_op": self.per_op(ops).map(Counts::to_json),
            "ops": ops,
            "net": self.net.to_json(),
            "idle_per_s": self.idle_per_s.to_json(),
            "window_s": (self.window.as_secs_f64() * 1000.0).round() / 1000.0,
        })
    }

    /// The table's line: per operation, then what was subtracted.
    pub fn summary(&self, ops: u64) -> String {
        let per = self.per_op(ops).unwrap_or_default();
        format!(
            "{:.2} statements, {:.2} transactions, {:.2} questions (idle {:.1} statements/s subtracted)",
            per.statements, per.transactions, per.questions, self.idle_per_s.statements
        )
    }
}

/// One connection to the server, kept for reading its status counters.
pub struct MysqlCounters {
    db: DatabaseConnection,
}

impl std::fmt::Debug for MysqlCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MysqlCounters")
    }
}

impl MysqlCounters {
    /// Connects to the server at `mysql_url` (loopback only; no schema needed).
    pub async fn connect(mysql_url: &str) -> anyhow::Result<Self> {
        crate::net::ensure_loopback("mysql url", mysql_url)?;
        let url = mysql_url.trim_end_matches('/');
        let mut opts = ConnectOptions::new(url.to_owned());
        opts.max_connections(1).min_connections(1).connect_timeout(Duration::from_secs(5)).sqlx_logging(false);
        let db =
            Database::connect(opts).await.with_context(|| format!("cannot reach MySQL at {}", kit::db::redact(url)))?;
        let counters = Self { db };
        counters.snapshot().await?;
        Ok(counters)
    }

    /// Connects, or says on stderr why the reports will go without MySQL's counters.
    pub async fn connect_or_warn(mysql_url: &str) -> Option<Self> {
        match Self::connect(mysql_url).await {
            Ok(counters) => Some(counters),
            Err(err) => {
                eprintln!("loadgen: no MySQL statement counts: {err:#}");
                None
            }
        }
    }

    async fn snapshot(&self) -> anyhow::Result<(Instant, Counts)> {
        let names: Vec<String> =
            STATEMENTS.iter().chain(&TRANSACTIONS).chain([&QUESTIONS]).map(|n| format!("'{n}'")).collect();
        let sql = format!("SHOW GLOBAL STATUS WHERE Variable_name IN ({})", names.join(", "));
        let rows = self.db.query_all_raw(Statement::from_string(DbBackend::MySql, sql)).await?;
        let at = Instant::now();
        let mut counts = Counts::default();
        for row in rows {
            let (name, value): (String, String) = (row.try_get_by_index(0)?, row.try_get_by_index(1)?);
            let value: f64 = value.parse().with_context(|| format!("{name} = {value:?}"))?;
            if STATEMENTS.contains(&name.as_str()) {
                counts.statements += value;
            } else if TRANSACTIONS.contains(&name.as_str()) {
                counts.transactions += value;
            } else {
                counts.questions += value;
            }
        }
        Ok((at, counts))
    }

    /// Measures the idle rate over [`IDLE_WINDOW`], then runs `phase` between two snapshots.
    async fn measure<T>(&self, phase: impl Future<Output = T>) -> (T, anyhow::Result<MysqlWork>) {
        let idle_start = self.snapshot().await;
        tokio::time::sleep(IDLE_WINDOW).await;
        let before = self.snapshot().await;
        let result = phase.await;
        let after = self.snapshot().await;
        let work = (|| {
            let ((t0, c0), (t1, c1), (t2, c2)) = (idle_start?, before?, after?);
            let delta = |a: Counts, b: Counts| b.map(a, |b, a| b - a);
            Ok(MysqlWork::from_deltas(delta(c1, c2), t2 - t1, delta(c0, c1), t1 - t0))
        })();
        (result, work)
    }
}

/// Runs `phase`, measured by `counters` when there are any; a failed reading is told on stderr
/// and leaves the phase without counts, since it says nothing about the phase itself.
pub async fn around<T>(counters: Option<&MysqlCounters>, phase: impl Future<Output = T>) -> (T, Option<MysqlWork>) {
    let Some(counters) = counters else { return (phase.await, None) };
    match counters.measure(phase).await {
        (result, Ok(work)) => (result, Some(work)),
        (result, Err(err)) => {
            eprintln!("loadgen: MySQL counters not read: {err:#}");
            (result, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_idle_rate_is_subtracted_over_the_phase_length() {
        let phase = Counts { statements: 1_030.0, transactions: 210.0, questions: 2_000.0 };
        let idle = Counts { statements: 6.0, transactions: 4.0, questions: 10.0 };
        let work = MysqlWork::from_deltas(phase, Duration::from_secs(10), idle, Duration::from_secs(2));
        assert_eq!(work.idle_per_s, Counts { statements: 3.0, transactions: 2.0, questions: 5.0 });
        assert_eq!(work.net, Counts { statements: 1_000.0, transactions: 190.0, questions: 1_950.0 });
        let per_op = work.to_json(100)["per_op"].clone();
        assert_eq!(per_op, json!({"statements": 10.0, "transactions": 1.9, "questions": 19.5}));
        assert_eq!(work.per_op(0), None);
        let quiet = MysqlWork::from_deltas(Counts::default(), Duration::from_secs(1), idle, Duration::from_secs(2));
        assert_eq!(quiet.net, Counts::default(), "never below zero");
    }
}
