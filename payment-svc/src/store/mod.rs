//! The only SQL of payment-svc: orders and lines ([`orders`]), the saga log and its guarded
//! writes ([`saga`]).
//!
//! Every write a saga driver makes goes through [`Store::guarded`]: one statement that
//! renews the driver's lease *and* checks, against `lock_fence`, that the driver's fencing
//! epoch is still the newest for the user. It runs first in the write's transaction and
//! holds the saga row (and a shared lock on the fence row) until commit, so a stale driver
//! (its lease taken over, or its Redlock expired and taken by someone else) matches no row
//! and writes nothing.

mod audit;
mod invariants;
mod orders;
mod saga;
mod settle;
mod start;

use std::time::Duration;

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, Statement, TransactionTrait,
};

pub use audit::AuditedOrder;
pub use invariants::watcher as invariant_watcher;
pub use saga::{CancelRefused, Drivable, SagaRecord};
pub use settle::Completion;
pub use start::{NewCheckout, StartOutcome};

use crate::domain::PaymentError;

#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    sql: std::sync::Arc<kit::db::SqlCounters>,
    /// How long a driver owns a saga after each of its writes.
    lease: Duration,
}

/// Who may write a saga: the replica holding its lease, with the fencing epoch it minted
/// when it took the user's lock.
#[derive(Clone, Debug)]
pub struct Writer {
    pub owner: String,
    pub fence: String,
    pub epoch: i64,
}

/// Why a guarded write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Another driver took the saga over (lease) or the user's lock (epoch), or the saga
    /// settled meanwhile: stop driving.
    #[error("fenced off: another driver owns this saga now, or it settled")]
    Fenced,
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl From<WriteError> for PaymentError {
    fn from(err: WriteError) -> Self {
        PaymentError::store(err)
    }
}

pub(crate) fn store_err(err: DbErr) -> PaymentError {
    PaymentError::store(err)
}

pub(crate) fn now() -> chrono::NaiveDateTime {
    kit::time::now_millis().naive_utc()
}

pub(crate) fn stmt(sql: &str, values: impl IntoIterator<Item = sea_orm::Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::MySql, sql, values)
}

impl Store {
    pub fn new(db: DatabaseConnection, sql: std::sync::Arc<kit::db::SqlCounters>, lease: Duration) -> Self {
        Self { db, sql, lease }
    }

    /// Every transaction payment-svc opens starts here, so each is counted.
    async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
        self.sql.began();
        self.db.begin().await
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    fn lease_span(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::seconds(30))
    }

    fn lease_end(&self) -> chrono::NaiveDateTime {
        now() + self.lease_span()
    }

    /// Opens a transaction in which `writer` still owns saga `id`, or says it is fenced off.
    async fn guarded(&self, writer: &Writer, id: &str) -> Result<DatabaseTransaction, WriteError> {
        let txn = self.begin().await?;
        let matched = txn
            .execute_raw(stmt(
                "UPDATE saga s JOIN lock_fence f ON f.resource = ? \
                 SET s.lease_until = ?, s.fence_epoch = ?, s.updated_at = ? \
                 WHERE s.id = ? AND s.owner = ? AND f.epoch = ? AND s.phase <> 'SETTLED'",
                [
                    writer.fence.as_str().into(),
                    self.lease_end().into(),
                    writer.epoch.into(),
                    now().into(),
                    id.into(),
                    writer.owner.as_str().into(),
                    writer.epoch.into(),
                ],
            ))
            .await?
            .rows_affected();
        if matched == 1 {
            Ok(txn)
        } else {
            let _ = txn.rollback().await;
            Err(WriteError::Fenced)
        }
    }

    /// Opens a transaction in which `writer`'s epoch is still the newest for its fence, for
    /// writes that start a drive (no lease to check yet). The shared lock on the fence row
    /// keeps a newer epoch from being minted until the transaction ends.
    async fn fenced(&self, writer: &Writer) -> Result<DatabaseTransaction, WriteError> {
        let txn = self.begin().await?;
        let epoch: Option<i64> = txn
            .query_one_raw(stmt(
                "SELECT epoch FROM lock_fence WHERE resource = ? LOCK IN SHARE MODE",
                [writer.fence.as_str().into()],
            ))
            .await?
            .map(|row| row.try_get_by_index(0))
            .transpose()?;
        if epoch == Some(writer.epoch) {
            Ok(txn)
        } else {
            let _ = txn.rollback().await;
            Err(WriteError::Fenced)
        }
    }

    /// Mints the next fencing epoch of `fence` (after taking its lock).
    pub async fn mint_epoch(&self, fence: &str) -> Result<i64, PaymentError> {
        kit::redlock::mint_epoch(&self.db, fence).await.map_err(store_err)
    }
}
