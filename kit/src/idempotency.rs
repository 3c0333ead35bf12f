//! Idempotency keys (IETF draft "The Idempotency-Key HTTP Header Field"; DESIGN.md).
//!
//! A row `UNIQUE(scope, key)` is claimed before the work starts. The work's own transaction
//! marks it done together with the business change ([`complete_ok`]), so a crash can never
//! leave a finished effect without its stored answer, or the reverse. Then:
//! same fingerprint and done → the stored answer again; same fingerprint and running →
//! `REQUEST_IN_PROGRESS`; another fingerprint → `IDEMPOTENCY_KEY_REUSED`. A claim whose
//! holder died (running past the lease) is taken over; since its work never committed,
//! doing it now is doing it once. MySQL holds the rows, so this works across replicas and
//! restarts; [`spawn_purger`] drops rows past the retention.

use std::future::Future;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, Value};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::error::{ErrorCode, ServiceError};

/// DDL of the table; each service that takes keys runs it in a migration.
pub const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS idempotency_key (
    scope VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    idem_key VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    request_hash BINARY(32) NOT NULL,
    status VARCHAR(16) CHARACTER SET ascii NOT NULL,
    response_ok TINYINT(1) NULL,
    response_body MEDIUMBLOB NULL,
    created_at DATETIME(3) NOT NULL,
    updated_at DATETIME(3) NOT NULL,
    PRIMARY KEY (scope, idem_key),
    KEY idempotency_created (created_at)
) ENGINE=InnoDB";

/// The metadata entry a key travels in (gateway → service), and the one that marks a replay.
pub const KEY_METADATA: &str = "idempotency-key";
pub const REPLAYED_METADATA: &str = "idempotent-replayed";

/// How long a claim may stay `running` before another request may take it over.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// A validated key with its scope (endpoint and user) and the request's fingerprint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey {
    scope: String,
    key: String,
    fingerprint: [u8; 32],
}

impl IdempotencyKey {
    /// `key` as the caller sent it: 1..=255 visible ASCII characters (spaces allowed inside).
    /// `request` is a canonical encoding of the request, so "the same body" means the same bytes.
    pub fn new(endpoint: &str, user_id: i64, key: &str, request: &[u8]) -> Result<Self, ServiceError> {
        let valid = (1..=255).contains(&key.len()) && key.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
        if !valid {
            return Err(ServiceError::new(
                ErrorCode::IdempotencyKeyMissing,
                "Idempotency-Key must be 1..=255 visible ASCII characters",
            ));
        }
        Ok(Self {
            scope: format!("{endpoint}/{user_id}"),
            key: key.to_owned(),
            fingerprint: Sha256::digest(request).into(),
        })
    }

    /// SHA-256 of the request's canonical encoding: "the same request".
    pub fn fingerprint(&self) -> &[u8; 32] {
        &self.fingerprint
    }

    /// `endpoint/user`: where the key is unique.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// The key as the caller sent it.
    pub fn key(&self) -> &str {
        &self.key
    }

    fn params(&self) -> [Value; 2] {
        [self.scope.as_str().into(), self.key.as_str().into()]
    }
}

/// What to do with a request that carries a key.
#[derive(Debug)]
pub enum Claim {
    /// First time (or the first holder died): do the work and [`complete_ok`] in its transaction.
    Execute,
    /// Done before: answer with this, change nothing.
    Replay(Result<Vec<u8>, ServiceError>),
}

#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// In progress, or reused with another request: the answer for the client.
    #[error("{0}")]
    Refused(ServiceError),
    #[error("idempotency store: {0}")]
    Db(#[from] DbErr),
}

/// The error half of a stored answer.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredError {
    code: String,
    detail: String,
    field: Option<String>,
    product_id: Option<i64>,
    order_id: Option<String>,
}

fn now() -> chrono::NaiveDateTime {
    crate::time::now_millis().naive_utc()
}

pub async fn claim(db: &DatabaseConnection, key: &IdempotencyKey, lease: Duration) -> Result<Claim, ClaimError> {
    // Twice at most: a row released between our insert and our read is simply claimed anew.
    for _ in 0..2 {
        let inserted = db
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::MySql,
                "INSERT IGNORE INTO idempotency_key (scope, idem_key, request_hash, status, created_at, updated_at) \
                 VALUES (?, ?, ?, 'running', ?, ?)",
                [
                    key.scope.as_str().into(),
                    key.key.as_str().into(),
                    key.fingerprint.to_vec().into(),
                    now().into(),
                    now().into(),
                ],
            ))
            .await?
            .rows_affected();
        if inserted == 1 {
            return Ok(Claim::Execute);
        }
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::MySql,
                "SELECT request_hash, status, response_ok, response_body, updated_at FROM idempotency_key \
                 WHERE scope = ? AND idem_key = ?",
                key.params(),
            ))
            .await?;
        let Some(row) = row else { continue };
        let hash: Vec<u8> = row.try_get_by_index(0)?;
        if hash != key.fingerprint {
            return Err(ClaimError::Refused(ServiceError::new(
                ErrorCode::IdempotencyKeyReused,
                "this Idempotency-Key was used with a different request",
            )));
        }
        let status: String = row.try_get_by_index(1)?;
        if status == "done" {
            let ok: Option<bool> = row.try_get_by_index(2)?;
            let body: Option<Vec<u8>> = row.try_get_by_index(3)?;
            return Ok(Claim::Replay(decode(ok.unwrap_or(false), body.unwrap_or_default())));
        }
        let updated: chrono::NaiveDateTime = row.try_get_by_index(4)?;
        let expired = now() - updated > chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
        if expired {
            let taken = db
                .execute_raw(Statement::from_sql_and_values(
                    DbBackend::MySql,
                    "UPDATE idempotency_key SET updated_at = ? WHERE scope = ? AND idem_key = ? AND status = 'running' AND updated_at = ?",
                    [now().into(), key.scope.as_str().into(), key.key.as_str().into(), updated.into()],
                ))
                .await?
                .rows_affected();
            if taken == 1 {
                tracing::warn!(scope = %key.scope, "took over an idempotency claim whose holder did not finish");
                return Ok(Claim::Execute);
            }
        }
        return Err(ClaimError::Refused(ServiceError::new(
            ErrorCode::RequestInProgress,
            "a request with this Idempotency-Key is being processed",
        )));
    }
    Err(ClaimError::Refused(ServiceError::new(
        ErrorCode::RequestInProgress,
        "a request with this Idempotency-Key is being processed",
    )))
}

fn decode(ok: bool, body: Vec<u8>) -> Result<Vec<u8>, ServiceError> {
    if ok {
        return Ok(body);
    }
    match serde_json::from_slice::<StoredError>(&body) {
        Ok(stored) => Err(ServiceError {
            code: ErrorCode::parse(&stored.code).unwrap_or(ErrorCode::Internal),
            detail: stored.detail,
            field: stored.field,
            product_id: stored.product_id,
            order_id: stored.order_id,
        }),
        Err(err) => Err(ServiceError::internal(&format!("undecodable stored idempotent answer: {err}"))),
    }
}

/// Marks the claim done with a success body. Call inside the transaction of the work. The
/// first answer stored wins: a claim already done (taken over and finished elsewhere) keeps
/// its answer.
pub async fn complete_ok<C: ConnectionTrait>(conn: &C, key: &IdempotencyKey, body: Vec<u8>) -> Result<(), DbErr> {
    store(conn, &key.scope, &key.key, true, body).await
}

/// [`complete_ok`] by the key's [`IdempotencyKey::scope`] and [`IdempotencyKey::key`], for
/// work that outlives its request (a saga finished by crash recovery) and kept only those.
/// A claim that was released or taken over meanwhile simply matches nothing.
pub async fn complete_ok_by_name<C: ConnectionTrait>(
    conn: &C,
    scope: &str,
    key: &str,
    body: Vec<u8>,
) -> Result<(), DbErr> {
    store(conn, scope, key, true, body).await
}

/// Marks the claim done with a business error (nothing changed, and nothing will: a retry
/// with the same key gets the same error).
pub async fn complete_err<C: ConnectionTrait>(conn: &C, key: &IdempotencyKey, err: &ServiceError) -> Result<(), DbErr> {
    let stored = StoredError {
        code: err.code.as_str().to_owned(),
        detail: err.detail.clone(),
        field: err.field.clone(),
        product_id: err.product_id,
        order_id: err.order_id.clone(),
    };
    store(conn, &key.scope, &key.key, false, serde_json::to_vec(&stored).unwrap_or_default()).await
}

async fn store<C: ConnectionTrait>(conn: &C, scope: &str, key: &str, ok: bool, body: Vec<u8>) -> Result<(), DbErr> {
    conn.execute_raw(Statement::from_sql_and_values(
        DbBackend::MySql,
        "UPDATE idempotency_key SET status = 'done', response_ok = ?, response_body = ?, updated_at = ? \
         WHERE scope = ? AND idem_key = ? AND status = 'running'",
        [ok.into(), body.into(), now().into(), scope.into(), key.into()],
    ))
    .await?;
    Ok(())
}

/// Gives a claim up after a failure that changed nothing and may pass (a dependency was
/// down), so a retry with the same key runs the work instead of waiting for the lease.
pub async fn release(db: &DatabaseConnection, key: &IdempotencyKey) -> Result<(), DbErr> {
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::MySql,
        "DELETE FROM idempotency_key WHERE scope = ? AND idem_key = ? AND status = 'running'",
        key.params(),
    ))
    .await?;
    Ok(())
}

/// True for errors that say nothing about the request itself: those are not stored, the
/// claim is released and a retry runs again.
pub fn is_transient(err: &ServiceError) -> bool {
    matches!(err.code, ErrorCode::Unavailable | ErrorCode::Overloaded | ErrorCode::Timeout | ErrorCode::Internal)
}

fn is_about_the_key(err: &ServiceError) -> bool {
    matches!(err.code, ErrorCode::IdempotencyKeyReused | ErrorCode::RequestInProgress)
}

/// The answer to a request that may carry a key: the result, and whether it is a replay
/// of an earlier request's (success or business error).
#[derive(Debug)]
pub struct Once<T> {
    pub result: Result<T, ServiceError>,
    pub replayed: bool,
}

/// Runs `work` at most once per key. `work` gets the key to [`complete_ok`] inside its own
/// transaction; business errors are stored for replay, transient ones release the claim.
pub async fn run_once<T, F, Fut>(
    db: &DatabaseConnection,
    key: Option<IdempotencyKey>,
    lease: Duration,
    work: F,
) -> Once<T>
where
    T: Serialize + for<'de> Deserialize<'de>,
    F: FnOnce(Option<IdempotencyKey>) -> Fut,
    Fut: Future<Output = Result<T, ServiceError>>,
{
    let fresh = |result| Once { result, replayed: false };
    let Some(key) = key else { return fresh(work(None).await) };
    match claim(db, &key, lease).await {
        Ok(Claim::Execute) => {}
        Ok(Claim::Replay(stored)) => {
            let result = stored.and_then(|body| {
                serde_json::from_slice(&body)
                    .map_err(|err| ServiceError::internal(&format!("undecodable stored idempotent answer: {err}")))
            });
            return Once { result, replayed: true };
        }
        Err(ClaimError::Refused(err)) => return fresh(Err(err)),
        Err(ClaimError::Db(err)) => return fresh(Err(ServiceError::unavailable("idempotency store", &err))),
    }
    // If this future is dropped mid-work (the caller's deadline passed), the transaction rolls
    // back; the guard then gives the claim up so a retry need not wait for the lease.
    let guard = ClaimGuard { db: db.clone(), key: Some(key.clone()) };
    let result = work(Some(key.clone())).await;
    guard.disarm();
    match &result {
        Ok(_) => {}
        // Transient failures, and refusals about the key rather than the request (another
        // request holds or owns it), are not this request's answer: give the claim back.
        Err(err) if is_transient(err) || is_about_the_key(err) => {
            if let Err(db_err) = release(db, &key).await {
                tracing::warn!(error = %db_err, "could not release an idempotency claim; it expires with its lease");
            }
        }
        Err(err) => {
            if let Err(db_err) = complete_err(db, &key, err).await {
                tracing::warn!(error = %db_err, "could not store an idempotent error answer");
            }
        }
    }
    fresh(result)
}

/// Releases a claim whose work was abandoned. Only `running` rows are deleted, so a claim
/// that completed (its answer committed) is never touched.
struct ClaimGuard {
    db: DatabaseConnection,
    key: Option<IdempotencyKey>,
}

impl ClaimGuard {
    fn disarm(mut self) {
        self.key = None;
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if let (Some(key), Ok(runtime)) = (self.key.take(), tokio::runtime::Handle::try_current()) {
            let db = self.db.clone();
            runtime.spawn(async move {
                if let Err(err) = release(&db, &key).await {
                    tracing::warn!(error = %err, "could not release an abandoned idempotency claim; it expires with its lease");
                }
            });
        }
    }
}

/// Serialises an answer for [`complete_ok`].
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// Deletes keys older than `retention`, in bounded chunks so a backlog never holds long locks.
pub async fn purge(db: &DatabaseConnection, retention: Duration) -> Result<u64, DbErr> {
    let cutoff = now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let mut total = 0;
    loop {
        let deleted = db
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::MySql,
                "DELETE FROM idempotency_key WHERE created_at < ? LIMIT 5000",
                [cutoff.into()],
            ))
            .await?
            .rows_affected();
        total += deleted;
        if deleted < 5000 {
            return Ok(total);
        }
    }
}

/// Purges every `every` until `shutdown`.
pub fn spawn_purger(db: DatabaseConnection, retention: Duration, every: Duration, shutdown: CancellationToken) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            match purge(&db, retention).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "purged expired idempotency keys"),
                Err(err) => tracing::warn!(error = %err, "idempotency purge failed; retrying later"),
            }
        }
    });
}
