//! The bare conditional UPDATE on one hot MySQL row, in a throwaway schema.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, Statement};

use crate::driver::{Limits, Outcome, run_closed_loop};
use crate::report::Report;

/// Large enough that no run can drain it, small enough to stay far from BIGINT limits.
const RAW_STOCK: i64 = 1_000_000_000_000;

/// One hot row and the bare conditional decrement a service's hot path is built on.
#[derive(Debug)]
pub struct HotRow {
    pub scenario: &'static str,
    /// What the row holds ("stock", "balance"), for the check's name.
    pub amount: &'static str,
    /// The table, shaped like the service's own.
    pub create: &'static str,
    /// Inserts row 1 holding the bound amount.
    pub insert: &'static str,
    pub update: &'static str,
    /// The amount left, then (if `counts_updates`) a column the update increments.
    pub select: &'static str,
    pub counts_updates: bool,
}

/// inventory-svc's reservation: `stock >= 1` on one product.
pub static PRODUCT_STOCK: HotRow = HotRow {
    scenario: "raw-mysql-hot-update",
    amount: "stock",
    create: "CREATE TABLE product (id BIGINT PRIMARY KEY, stock BIGINT NOT NULL, version BIGINT NOT NULL) ENGINE=InnoDB",
    insert: "INSERT INTO product (id, stock, version) VALUES (1, ?, 0)",
    update: "UPDATE product SET stock = stock - 1, version = version + 1 WHERE id = 1 AND stock >= 1",
    select: "SELECT stock, version FROM product WHERE id = 1",
    counts_updates: true,
};

/// point-svc's debit: `balance >= 1` on one user's balance row.
pub static POINT_BALANCE: HotRow = HotRow {
    scenario: "raw-mysql-hot-debit",
    amount: "balance",
    create: "CREATE TABLE point_balance (user_id BIGINT NOT NULL PRIMARY KEY, balance BIGINT NOT NULL, \
             version BIGINT NOT NULL DEFAULT 1, updated_at DATETIME(3) NOT NULL) ENGINE=InnoDB",
    insert: "INSERT INTO point_balance (user_id, balance, version, updated_at) VALUES (1, ?, 1, NOW(3))",
    update: "UPDATE point_balance SET balance = balance - 1 WHERE user_id = 1 AND balance >= 1",
    select: "SELECT balance FROM point_balance WHERE user_id = 1",
    counts_updates: false,
};

pub(crate) fn label(err: &DbErr) -> String {
    match err {
        DbErr::ConnectionAcquire(_) => "ConnectionAcquire",
        DbErr::Conn(_) => "Connection",
        DbErr::Exec(_) => "Exec",
        DbErr::Query(_) => "Query",
        _ => "Db",
    }
    .to_owned()
}

/// `clients` connections each run the autocommit conditional UPDATE on one row, back to
/// back: the ceiling any MySQL-backed hot-row movement (a hot-SKU reservation, a debit of
/// one user's points) can reach on this machine.
pub async fn mysql_hot_update(
    row: &'static HotRow,
    mysql_url: &str,
    clients: usize,
    limits: Limits,
) -> anyhow::Result<Report> {
    in_throwaway_schema(mysql_url, |server_url, schema| async move {
        run_in_schema(row, &server_url, &schema, clients, limits).await
    })
    .await
}

/// Creates a schema of its own, runs `run(server_url, schema)`, and drops the schema
/// whatever happened, so a failed run leaves nothing behind.
pub(super) async fn in_throwaway_schema<F, Fut>(mysql_url: &str, run: F) -> anyhow::Result<Report>
where
    F: FnOnce(String, String) -> Fut,
    Fut: Future<Output = anyhow::Result<Report>>,
{
    crate::net::ensure_loopback("mysql url", mysql_url)?;
    let server_url = mysql_url.trim_end_matches('/').to_owned();
    let schema = format!("{}loadgen_raw", kit::testing::unique_prefix());
    let server = Database::connect(server_url.as_str())
        .await
        .with_context(|| format!("cannot reach MySQL at {}", kit::db::redact(&server_url)))?;
    server.execute_unprepared(&format!("CREATE DATABASE `{schema}`")).await?;
    let _ = server.close().await;

    let outcome = run(server_url.clone(), schema.clone()).await;
    let dropped = kit::db::drop_schema(&server_url, &schema).await;
    let mut report = outcome?;
    dropped.context("cannot drop the raw benchmark schema")?;
    report.param("schema", format!("{schema} (dropped)"));
    Ok(report)
}

/// A pool of exactly `clients` connections to `schema`, every one of them open: a connect
/// is not an UPDATE, so none may happen after the clock starts.
pub(super) async fn open_pool(
    server_url: &str,
    schema: &str,
    clients: usize,
) -> anyhow::Result<Arc<DatabaseConnection>> {
    let mut opts = ConnectOptions::new(format!("{server_url}/{schema}"));
    opts.max_connections(clients as u32)
        .min_connections(clients as u32)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    let db: Arc<DatabaseConnection> = Arc::new(Database::connect(opts).await.context("cannot open the raw pool")?);
    let opens = (0..clients).map(|_| {
        let db = db.clone();
        async move { db.execute_unprepared("DO SLEEP(0.05)").await }
    });
    futures::future::try_join_all(opens).await.context("cannot open the raw connections")?;
    Ok(db)
}

async fn run_in_schema(
    row: &'static HotRow,
    server_url: &str,
    schema: &str,
    clients: usize,
    limits: Limits,
) -> anyhow::Result<Report> {
    let clients = clients.max(1);
    let db = open_pool(server_url, schema, clients).await?;
    db.execute_unprepared(row.create).await?;
    db.execute_raw(Statement::from_sql_and_values(DbBackend::MySql, row.insert, [RAW_STOCK.into()])).await?;

    let shared = db.clone();
    let run = run_closed_loop(clients, limits, move |_, _| {
        let db = shared.clone();
        async move {
            match db.execute_raw(Statement::from_string(DbBackend::MySql, row.update)).await {
                Ok(done) if done.rows_affected() == 1 => Outcome::Ok,
                Ok(_) => Outcome::Rejected("no_stock"),
                Err(err) => Outcome::Error(label(&err)),
            }
        }
    })
    .await;

    let left_row = db
        .query_one_raw(Statement::from_string(DbBackend::MySql, row.select))
        .await?
        .context("the raw row vanished")?;
    let stock: i64 = left_row.try_get_by_index(0)?;
    let version: Option<i64> = if row.counts_updates { Some(left_row.try_get_by_index(1)?) } else { None };
    let _ = db.close_by_ref().await;

    let mut report = Report::new(row.scenario, run);
    report.param("mysql", kit::db::redact(server_url)).param("pool", clients as u64);
    if let Some(version) = version {
        report.extra("final_version", version);
    }
    let ok = report.run.tally.ok as i64;
    let errors = report.run.tally.errors_total() as i64;
    let (passed, detail) = crate::scenarios::inventory::stock_invariant(RAW_STOCK, ok, errors, stock);
    let counted = version.is_none_or(|version| stock + version == RAW_STOCK);
    report.check(&format!("{} invariant", row.amount), passed && counted, detail);
    Ok(report)
}
