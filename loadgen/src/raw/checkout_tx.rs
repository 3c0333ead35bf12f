//! The bare minimum of a checkout straight against MySQL: one transaction that takes a unit
//! of a product's stock and its price from a user's balance, each a conditional UPDATE
//! shaped like the services' own, on distinct rows as in the checkout's distinct phase. A
//! real checkout does this and more (saga state, barriers, the ledger, the payment record,
//! across four schemas and four processes), so this is the ceiling it is measured against.
//! MySQL's counters read 2 statements and 1 transaction per checkout here, by construction:
//! the calibration of the per-order figures of the checkout phases.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait};

use super::mysql::{in_throwaway_schema, label, open_pool};
use crate::driver::{Limits, Outcome, run_closed_loop};
use crate::mysql_counters::{MysqlCounters, around};
use crate::report::Report;

pub const SCENARIO: &str = "raw-mysql-checkout-tx";
/// Products and users, one row each; request `seq` uses row `seq % ROWS + 1` of both.
const ROWS: i64 = 1_000;
const STOCK: i64 = 1_000_000_000;
const BALANCE: i64 = 1_000_000_000_000;
const PRICE: i64 = 1_000;

const CREATE: [&str; 2] = [
    "CREATE TABLE product (id BIGINT PRIMARY KEY, stock BIGINT NOT NULL, version BIGINT NOT NULL) ENGINE=InnoDB",
    "CREATE TABLE point_balance (user_id BIGINT PRIMARY KEY, balance BIGINT NOT NULL, version BIGINT NOT NULL) \
     ENGINE=InnoDB",
];
const TAKE_STOCK: &str = "UPDATE product SET stock = stock - 1, version = version + 1 WHERE id = ? AND stock >= 1";
const TAKE_POINTS: &str =
    "UPDATE point_balance SET balance = balance - ?, version = version + 1 WHERE user_id = ? AND balance >= ?";

/// One checkout: both UPDATEs or neither.
async fn checkout(db: &DatabaseConnection, row: i64) -> Outcome {
    let result = async {
        let txn = db.begin().await?;
        let stmt =
            |sql: &str, values: Vec<sea_orm::Value>| Statement::from_sql_and_values(DbBackend::MySql, sql, values);
        if txn.execute_raw(stmt(TAKE_STOCK, vec![row.into()])).await?.rows_affected() != 1 {
            txn.rollback().await?;
            return Ok(Outcome::Rejected("no_stock"));
        }
        let paid = txn.execute_raw(stmt(TAKE_POINTS, vec![PRICE.into(), row.into(), PRICE.into()])).await?;
        if paid.rows_affected() != 1 {
            txn.rollback().await?;
            return Ok(Outcome::Rejected("no_points"));
        }
        txn.commit().await?;
        Ok::<_, sea_orm::DbErr>(Outcome::Ok)
    };
    result.await.unwrap_or_else(|err| Outcome::Error(label(&err)))
}

/// `clients` connections run checkout transactions back to back, on [`ROWS`] products and
/// users; checks that the units taken and the points taken agree with the acknowledged ones.
pub async fn mysql_checkout_tx(mysql_url: &str, clients: usize, limits: Limits) -> anyhow::Result<Report> {
    in_throwaway_schema(mysql_url, |server_url, schema| async move {
        let clients = clients.max(1);
        let db = open_pool(&server_url, &schema, clients).await?;
        for create in CREATE {
            db.execute_unprepared(create).await?;
        }
        let rows = |v: i64| (1..=ROWS).map(|id| format!("({id}, {v}, 0)")).collect::<Vec<_>>().join(", ");
        db.execute_unprepared(&format!("INSERT INTO product (id, stock, version) VALUES {}", rows(STOCK))).await?;
        let insert = format!("INSERT INTO point_balance (user_id, balance, version) VALUES {}", rows(BALANCE));
        db.execute_unprepared(&insert).await?;

        let counters = MysqlCounters::connect_or_warn(&server_url).await;
        let shared = db.clone();
        let run = run_closed_loop(clients, limits, move |_, seq| {
            let db = shared.clone();
            async move { checkout(&db, seq as i64 % ROWS + 1).await }
        });
        let (run, mysql) = around(counters.as_ref(), run).await;

        let sums = "SELECT CAST((SELECT SUM(stock) FROM product) AS SIGNED), \
                    CAST((SELECT SUM(balance) FROM point_balance) AS SIGNED)";
        let row = db.query_one_raw(Statement::from_string(DbBackend::MySql, sums)).await?;
        let row = row.ok_or_else(|| anyhow::anyhow!("no sums"))?;
        let (stock, balance): (i64, i64) = (row.try_get_by_index(0)?, row.try_get_by_index(1)?);
        let _ = db.close_by_ref().await;

        let mut report = Report::new(SCENARIO, run);
        report.mysql = mysql;
        report.param("mysql", kit::db::redact(&server_url)).param("pool", clients as u64).param("rows", ROWS);
        let (ok, errors) = (report.run.tally.ok as i64, report.run.tally.errors_total() as i64);
        let (passed, detail) = crate::scenarios::inventory::stock_invariant(STOCK * ROWS, ok, errors, stock);
        let units = STOCK * ROWS - stock;
        let paid = BALANCE * ROWS - balance;
        let detail = format!("{detail}; points taken {paid} = {units} units x {PRICE}");
        report.check("stock and points invariant", passed && paid == units * PRICE, detail);
        Ok(report)
    })
    .await
}
