//! The MySQL side of a service: one pool on the schema the service owns.
//!
//! At start the schema is created if missing and the service's migrations run under a
//! MySQL named lock, so replicas that start together do not race each other's DDL.

use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, Statement};
use sea_orm_migration::MigratorTrait;

#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    #[error("schema name {0:?} must be 1..=64 characters of [A-Za-z0-9_]")]
    BadSchemaName(String),
    #[error("cannot reach MySQL at {url}: {source}")]
    Connect { url: String, source: DbErr },
    #[error("migrations of {schema} failed: {source}")]
    Migrate { schema: String, source: DbErr },
}

/// Checks a schema name before it is spliced into DDL (identifiers cannot be bound).
pub fn valid_schema_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Every pooled connection runs its transactions at READ COMMITTED. Each service decides with
/// locking writes (`UPDATE ... WHERE stock >= ?`) or locking reads, and sees its own writes,
/// so nothing here needs REPEATABLE READ's snapshots; what it would add are gap locks, which
/// deadlock concurrent first inserts of one key (two first charges of a new user).
const SESSION_SETUP: &str = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED";

pub(crate) fn options(url: String, max_connections: u32) -> ConnectOptions {
    let mut opts = ConnectOptions::new(url);
    opts.map_sqlx_mysql_pool_opts(|pool| {
        // sqlx reports how long each acquire waited as a TRACE event; the telemetry layer
        // turns it into `db_pool_acquire_wait_seconds` (the pool counts no waits itself).
        pool.acquire_time_level(log::LevelFilter::Trace).after_connect(|conn, _| {
            Box::pin(async move {
                use sea_orm::sqlx::Executor;
                conn.execute(SESSION_SETUP).await.map(|_| ())
            })
        })
    });
    opts.max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        // Idle connections go back soon: many services share one MySQL and its max_connections.
        .idle_timeout(Duration::from_secs(30))
        .sqlx_logging(false);
    opts
}

fn server_url(mysql_url: &str) -> String {
    mysql_url.trim_end_matches('/').to_owned()
}

pub(crate) fn schema_url(mysql_url: &str, schema: &str) -> String {
    format!("{}/{schema}", server_url(mysql_url))
}

/// Creates `schema` if needed, migrates it with `M`, and returns a pool on it.
pub async fn connect_and_migrate<M: MigratorTrait>(
    mysql_url: &str,
    schema: &str,
    max_connections: u32,
) -> Result<DatabaseConnection, DbSetupError> {
    if !valid_schema_name(schema) {
        return Err(DbSetupError::BadSchemaName(schema.to_owned()));
    }
    let connect_err = |source| DbSetupError::Connect { url: redact(mysql_url), source };
    let server = Database::connect(options(server_url(mysql_url), 1)).await.map_err(connect_err)?;
    server
        .execute_unprepared(&format!(
            "CREATE DATABASE IF NOT EXISTS `{schema}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        ))
        .await
        .map_err(connect_err)?;
    server.close().await.map_err(connect_err)?;

    // Migrations run on a single connection so the named lock (per session) covers them.
    let migrate_err = |source| DbSetupError::Migrate { schema: schema.to_owned(), source };
    let single = Database::connect(options(schema_url(mysql_url, schema), 1)).await.map_err(connect_err)?;
    let lock = format!("migrate:{schema}");
    single
        .execute_raw(Statement::from_sql_and_values(DbBackend::MySql, "SELECT GET_LOCK(?, 60)", [lock.clone().into()]))
        .await
        .map_err(migrate_err)?;
    let migrated = M::up(&single, None).await;
    let _ = single
        .execute_raw(Statement::from_sql_and_values(DbBackend::MySql, "SELECT RELEASE_LOCK(?)", [lock.into()]))
        .await;
    let _ = single.close().await;
    migrated.map_err(migrate_err)?;

    Database::connect(options(schema_url(mysql_url, schema), max_connections)).await.map_err(connect_err)
}

/// The ids of `ids` a query picks: `select(marks)` builds a one-column SELECT of string ids
/// whose `IN ({marks})` takes them as bound values (the participants' `SagaEffects`).
pub async fn ids_among<C: ConnectionTrait>(
    db: &C,
    select: impl FnOnce(&str) -> String,
    ids: &[String],
) -> Result<Vec<String>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let marks = vec!["?"; ids.len()].join(", ");
    let values = ids.iter().map(|id| sea_orm::Value::from(id.as_str()));
    let rows = db.query_all_raw(Statement::from_sql_and_values(DbBackend::MySql, select(&marks), values)).await?;
    rows.iter().map(|row| row.try_get_by_index(0)).collect()
}

/// Drops `schema` (tests and `devstack --fresh`).
pub async fn drop_schema(mysql_url: &str, schema: &str) -> Result<(), DbSetupError> {
    if !valid_schema_name(schema) {
        return Err(DbSetupError::BadSchemaName(schema.to_owned()));
    }
    let connect_err = |source| DbSetupError::Connect { url: redact(mysql_url), source };
    let server = Database::connect(options(server_url(mysql_url), 1)).await.map_err(connect_err)?;
    server.execute_unprepared(&format!("DROP DATABASE IF EXISTS `{schema}`")).await.map_err(connect_err)?;
    let _ = server.close().await;
    Ok(())
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// True for the MySQL errors a retry may cure: deadlock victim, lock wait timeout, a lost
/// connection. Everything else is a bug or a real conflict and must not be retried blindly.
pub fn is_transient(err: &DbErr) -> bool {
    let text = err.to_string();
    text.contains("1213")
        || text.contains("1205")
        || text.contains("Deadlock")
        || text.contains("Lock wait timeout")
        || matches!(err, DbErr::ConnectionAcquire(_) | DbErr::Conn(_))
}

/// Commits on success, rolls back on any error (a business rejection included).
pub async fn finish<T, E>(
    txn: sea_orm::DatabaseTransaction,
    outcome: Result<T, E>,
    db_err: impl FnOnce(DbErr) -> E,
) -> Result<T, E> {
    match outcome {
        Ok(value) => {
            txn.commit().await.map_err(db_err)?;
            Ok(value)
        }
        Err(err) => {
            let _ = txn.rollback().await;
            Err(err)
        }
    }
}

/// [`finish`] for an attempt that may decline: commits when `outcome` holds a value, rolls
/// back on `None` (the caller decides another way, e.g. a result-first barrier claim that
/// found its row already there) and on any error.
pub async fn finish_if_some<T, E>(
    txn: sea_orm::DatabaseTransaction,
    outcome: Result<Option<T>, E>,
    db_err: impl FnOnce(DbErr) -> E,
) -> Result<Option<T>, E> {
    match outcome {
        Ok(None) => {
            txn.rollback().await.map_err(db_err)?;
            Ok(None)
        }
        other => finish(txn, other, db_err).await,
    }
}

/// A derived table of `rows` rows of placeholders named `columns`, to join a batch's values
/// into one statement: `SELECT ? AS a, ? AS b UNION ALL SELECT ?, ? ...` (bind row by row).
pub fn values_table(columns: &[&str], rows: usize) -> String {
    let named = columns.iter().map(|c| format!("? AS {c}")).collect::<Vec<_>>().join(", ");
    let plain = vec!["?"; columns.len()].join(", ");
    std::iter::once(format!("SELECT {named}"))
        .chain(std::iter::repeat_n(format!("SELECT {plain}"), rows.saturating_sub(1)))
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// Runs `attempt` up to three times while `transient` says its error was a deadlock or
/// lock-wait timeout: MySQL rolled that transaction back whole, so trying again is safe.
pub async fn retry_transient<T, E, F, Fut>(transient: impl Fn(&E) -> bool, mut attempt: F) -> Result<T, E>
where
    E: std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    const ATTEMPTS: u32 = 3;
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Err(err) if tries < ATTEMPTS && transient(&err) => {
                tracing::warn!(error = ?err, tries, "transient database error, retrying the transaction");
                tokio::time::sleep(Duration::from_millis(5 * u64::from(tries))).await;
            }
            other => return other,
        }
    }
}

/// Whether an `anyhow` cause wraps a transient [`DbErr`].
pub fn is_transient_cause(cause: &anyhow::Error) -> bool {
    cause.downcast_ref::<DbErr>().is_some_and(is_transient)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_values_table_names_its_columns_once() {
        assert_eq!(values_table(&["a", "b"], 1), "SELECT ? AS a, ? AS b");
        assert_eq!(values_table(&["a", "b"], 3), "SELECT ? AS a, ? AS b UNION ALL SELECT ?, ? UNION ALL SELECT ?, ?");
    }

    #[test]
    fn schema_names_are_checked() {
        assert!(valid_schema_name("t_3f9a_inventory"));
        assert!(!valid_schema_name("x`; DROP DATABASE y"));
        assert!(!valid_schema_name(""));
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("mysql://root:secret@db:3306"), "mysql://root:***@db:3306");
        assert_eq!(redact("mysql://root@127.0.0.1:3306"), "mysql://root@127.0.0.1:3306");
    }
}

/// What a pool ran: statements by kind (sea-orm's metric callback sees every statement,
/// inside transactions too) and the transactions its owner opened ([`SqlCounters::began`]).
/// Exported as `db_statements_total{kind}` and `db_transactions_total`; the per-operation
/// figures of DESIGN.md ("statements and transactions per order") come from these.
#[derive(Debug, Default)]
pub struct SqlCounters {
    reads: std::sync::atomic::AtomicU64,
    writes: std::sync::atomic::AtomicU64,
    transactions: std::sync::atomic::AtomicU64,
}

/// A snapshot of [`SqlCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SqlCount {
    pub reads: u64,
    pub writes: u64,
    pub transactions: u64,
}

impl SqlCount {
    pub fn statements(&self) -> u64 {
        self.reads + self.writes
    }

    /// What happened between `earlier` and this snapshot.
    pub fn since(&self, earlier: SqlCount) -> SqlCount {
        SqlCount {
            reads: self.reads - earlier.reads,
            writes: self.writes - earlier.writes,
            transactions: self.transactions - earlier.transactions,
        }
    }
}

impl SqlCounters {
    /// Counts every statement `db` runs from now on.
    pub fn install(db: &mut DatabaseConnection) -> std::sync::Arc<Self> {
        let counters = std::sync::Arc::new(Self::default());
        let seen = counters.clone();
        db.set_metric_callback(move |info| {
            let sql = info.statement.sql.trim_start();
            let read = sql.len() >= 6 && sql[..6].eq_ignore_ascii_case("select");
            let (counter, kind) = if read { (&seen.reads, "read") } else { (&seen.writes, "write") };
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            metrics::counter!("db_statements_total", "kind" => kind).increment(1);
        });
        counters
    }

    /// Call once per explicit transaction begun.
    pub fn began(&self) {
        self.transactions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        metrics::counter!("db_transactions_total").increment(1);
    }

    pub fn snapshot(&self) -> SqlCount {
        use std::sync::atomic::Ordering::Relaxed;
        SqlCount {
            reads: self.reads.load(Relaxed),
            writes: self.writes.load(Relaxed),
            transactions: self.transactions.load(Relaxed),
        }
    }
}
