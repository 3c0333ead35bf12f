//! Redlock over one or more Redis nodes, plus the fencing epoch that makes it safe.
//!
//! A Redlock is a lease: a holder that pauses (GC, a stalled VM, a clock jump) can still
//! believe it holds the lock after the TTL ran out and another client took it. So the lock
//! only makes collisions rare; correctness comes from the **fence**: whoever takes the lock
//! mints a new epoch in MySQL ([`mint_epoch`]), and every write the holder makes checks that
//! the epoch is still the newest (the caller's store does this in the same statement as the
//! write). A stale holder's writes then match no row and it stops.
//!
//! rslock's traps (DEPENDENCIES.md) are handled here once: `LockManager::new` panics on a
//! bad URI (clients are built first, errors returned); `acquire` loops forever (we retry
//! `lock` with jitter under a deadline); a guard does not unlock on drop (the keeper releases
//! explicitly); an `extend` that misses quorum frees the lock everywhere, so any extend error
//! means "lost".

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use rslock::{Lock, LockManager};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use tokio_util::sync::CancellationToken;

/// DDL of the epoch table of a service that fences its lock holders.
pub const FENCE_TABLE: &str = "CREATE TABLE IF NOT EXISTS lock_fence (
    resource VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    epoch BIGINT NOT NULL,
    PRIMARY KEY (resource)
) ENGINE=InnoDB";

#[derive(Debug, thiserror::Error)]
pub enum RedlockError {
    #[error("bad Redis URL {0:?} for the lock quorum")]
    BadUrl(String),
    #[error("lock {resource} not acquired within {waited:?}")]
    Timeout { resource: String, waited: Duration },
}

/// A lock manager over a quorum of Redis nodes (majority = `n / 2 + 1`).
#[derive(Clone)]
pub struct Redlock {
    manager: LockManager,
    key_prefix: String,
    ttl: Duration,
}

impl Redlock {
    /// `urls`: the quorum (one node is the simplest setup). Nodes connect lazily: a node
    /// that is down only costs its vote.
    pub fn new(urls: &[String], key_prefix: &str, ttl: Duration) -> Result<Self, RedlockError> {
        let clients = urls
            .iter()
            .map(|url| redis::Client::open(url.as_str()).map_err(|_| RedlockError::BadUrl(crate::db::redact(url))))
            .collect::<Result<Vec<_>, _>>()?;
        if clients.is_empty() {
            return Err(RedlockError::BadUrl(String::new()));
        }
        let mut manager = LockManager::from_clients(clients);
        // One round per `lock` call: the retry loop (deadline, jitter) is ours.
        manager.set_retry(1, Duration::from_millis(1));
        Ok(Self { manager, key_prefix: key_prefix.to_owned(), ttl })
    }

    /// Takes `resource` within `wait`, then keeps it alive until released. The returned
    /// [`HeldLock::lost`] token fires if an extension misses quorum.
    pub async fn acquire(&self, resource: &str, wait: Duration) -> Result<HeldLock, RedlockError> {
        let key = format!("{}lock:{resource}", self.key_prefix);
        let started = Instant::now();
        let mut backoff = Duration::from_millis(2);
        let lock = loop {
            if let Ok(lock) = self.manager.lock(key.as_bytes(), self.ttl).await {
                break lock;
            }
            let left = wait.saturating_sub(started.elapsed());
            if left.is_zero() {
                metrics::counter!("redlock_timeouts_total").increment(1);
                return Err(RedlockError::Timeout { resource: resource.to_owned(), waited: wait });
            }
            let jittered = rand::rng().random_range(backoff / 2..=backoff);
            tokio::time::sleep(jittered.min(left)).await;
            backoff = (backoff * 2).min(Duration::from_millis(50));
        };
        metrics::histogram!("redlock_wait_seconds").record(started.elapsed().as_secs_f64());
        Ok(HeldLock::keep(self.manager.clone(), lock, self.ttl))
    }
}

/// A lock being kept alive by a background task until [`HeldLock::release`].
pub struct HeldLock {
    lost: CancellationToken,
    stop: CancellationToken,
    keeper: Option<tokio::task::JoinHandle<()>>,
}

impl HeldLock {
    fn keep(manager: LockManager, lock: Lock, ttl: Duration) -> Self {
        let lost = CancellationToken::new();
        let stop = CancellationToken::new();
        let lock = Arc::new(lock);
        let keeper = tokio::spawn({
            let (lost, stop) = (lost.clone(), stop.clone());
            async move {
                loop {
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(ttl / 3) => {}
                    }
                    if let Err(err) = manager.extend(&lock, ttl).await {
                        tracing::warn!(error = %err, "lock extension missed quorum; the lock is lost");
                        metrics::counter!("redlock_lost_total").increment(1);
                        lost.cancel();
                        return;
                    }
                }
                manager.unlock(&lock).await;
            }
        });
        Self { lost, stop, keeper: Some(keeper) }
    }

    /// Fires when the lock can no longer be trusted; the holder should stop at its next step.
    pub fn lost(&self) -> &CancellationToken {
        &self.lost
    }

    /// Stops the keeper and deletes the key on every node (best effort: a node that is down
    /// keeps it until its TTL).
    pub async fn release(mut self) {
        self.stop.cancel();
        if let Some(keeper) = self.keeper.take() {
            let _ = keeper.await;
        }
    }
}

impl Drop for HeldLock {
    /// A holder that is dropped without release (its task was cancelled) still stops the
    /// keeper, which then unlocks: the lock never outlives its holder by more than a round trip.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Mints the next fencing epoch of `resource`: 1 the first time, then one more each call.
/// One autocommitted statement; `LAST_INSERT_ID(expr)` hands the new value back in the
/// OK packet, so there is no read to race with.
pub async fn mint_epoch<C: ConnectionTrait>(conn: &C, resource: &str) -> Result<i64, DbErr> {
    let result = conn
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            "INSERT INTO lock_fence (resource, epoch) VALUES (?, LAST_INSERT_ID(1)) \
             ON DUPLICATE KEY UPDATE epoch = LAST_INSERT_ID(epoch + 1)",
            [resource.into()],
        ))
        .await?;
    i64::try_from(result.last_insert_id()).map_err(|_| DbErr::Custom("fencing epoch out of range".into()))
}
