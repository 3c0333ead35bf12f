//! The per-user lock of checkouts and cancels: a Redlock across payment-svc replicas, and
//! the fencing epoch minted in MySQL right after taking it. The lock keeps two sagas of one
//! user from interleaving; the epoch (checked by every saga write, see `store`) keeps a
//! holder whose lock expired from writing anything after someone else took it.
//!
//! Within one replica, checkouts of one user first queue on a local async mutex: a waiter
//! sleeps until the holder is done instead of polling Redis, so a burst of one user's
//! checkouts costs no Redis traffic and no CPU while it waits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kit::redlock::{HeldLock, Redlock};
use tokio::sync::OwnedMutexGuard;
use tokio_util::sync::CancellationToken;

use crate::domain::PaymentError;
use crate::store::{Store, Writer};

type LocalTable = Arc<Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>>;

#[derive(Clone)]
pub struct UserLocks {
    redlock: Redlock,
    /// How long a checkout waits for another one of the same user.
    wait: Duration,
    /// This replica's holders and waiters, by user; an entry lives while someone uses it.
    local: LocalTable,
}

/// A user's lock, held: this replica's turn and the Redlock.
pub struct UserLock {
    held: Option<HeldLock>,
    lost: CancellationToken,
    turn: Option<OwnedMutexGuard<()>>,
    user_id: i64,
    local: LocalTable,
}

impl UserLock {
    /// Fires when the Redlock can no longer be trusted; the holder stops at its next step.
    pub fn lost(&self) -> &CancellationToken {
        &self.lost
    }

    /// Gives the Redlock back (then this replica's turn, on drop).
    pub async fn release(mut self) {
        if let Some(held) = self.held.take() {
            held.release().await;
        }
    }
}

impl Drop for UserLock {
    fn drop(&mut self) {
        let Some(turn) = self.turn.take() else { return };
        let mutex = OwnedMutexGuard::mutex(&turn).clone();
        drop(turn);
        let mut table = self.local.lock().unwrap_or_else(PoisonError::into_inner);
        // The table's reference and ours: nobody else waits for this user.
        if Arc::strong_count(&mutex) == 2 {
            table.remove(&self.user_id);
        }
    }
}

impl UserLocks {
    pub fn new(redlock: Redlock, wait: Duration) -> Self {
        Self { redlock, wait, local: LocalTable::default() }
    }

    /// Waits for this replica's turn on `user_id`, then for the Redlock, `wait` in all.
    async fn take(&self, user_id: i64, wait: Duration) -> Result<UserLock, PaymentError> {
        let started = tokio::time::Instant::now();
        let mutex = {
            let mut table = self.local.lock().unwrap_or_else(PoisonError::into_inner);
            table.entry(user_id).or_default().clone()
        };
        let turn = match mutex.clone().try_lock_owned() {
            Ok(turn) => Some(turn),
            Err(_) if wait.is_zero() => None,
            Err(_) => tokio::time::timeout(wait, mutex.clone().lock_owned()).await.ok(),
        };
        let forget = |local: &LocalTable| {
            let mut table = local.lock().unwrap_or_else(PoisonError::into_inner);
            if Arc::strong_count(&mutex) == 2 {
                table.remove(&user_id);
            }
        };
        let Some(turn) = turn else {
            forget(&self.local);
            tracing::info!(user_id, "user lock busy in this replica");
            return Err(PaymentError::UserBusy);
        };
        let left = wait.saturating_sub(started.elapsed());
        let mut lock = UserLock {
            held: None,
            lost: CancellationToken::new(),
            turn: Some(turn),
            user_id,
            local: self.local.clone(),
        };
        match self.redlock.acquire(&Self::resource(user_id), left).await {
            Ok(held) => {
                lock.lost = held.lost().clone();
                lock.held = Some(held);
                Ok(lock)
            }
            Err(err) => {
                tracing::info!(user_id, error = %err, "user lock not acquired");
                Err(PaymentError::UserBusy)
            }
        }
    }

    /// The resource (and fence) name of user `user_id`'s lock.
    pub fn resource(user_id: i64) -> String {
        format!("user:{user_id}")
    }

    /// Takes user `user_id`'s lock, waiting at most `wait` (and never longer than the
    /// configured wait); the caller mints the epoch in its own first write.
    pub async fn acquire(&self, user_id: i64, wait: Duration) -> Result<UserLock, PaymentError> {
        self.take(user_id, wait.min(self.wait)).await
    }

    /// Takes user `user_id`'s lock and mints the epoch `owner` will write with.
    pub async fn lock(&self, store: &Store, owner: &str, user_id: i64) -> Result<(UserLock, Writer), PaymentError> {
        let resource = Self::resource(user_id);
        let held = self.take(user_id, self.wait).await?;
        match store.mint_epoch(&resource).await {
            Ok(epoch) => Ok((held, Writer { owner: owner.to_owned(), fence: resource, epoch })),
            Err(err) => {
                held.release().await;
                Err(err)
            }
        }
    }
}
