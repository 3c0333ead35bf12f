//! The per-user lock of checkouts and cancels: a Redlock across payment-svc replicas, and
//! the fencing epoch minted in MySQL right after taking it. The lock keeps two sagas of one
//! user from interleaving; the epoch (checked by every saga write, see `store`) keeps a
//! holder whose lock expired from writing anything after someone else took it.

use std::time::Duration;

use kit::redlock::{HeldLock, Redlock};

use crate::domain::PaymentError;
use crate::store::{Store, Writer};

#[derive(Clone)]
pub struct UserLocks {
    redlock: Redlock,
    /// How long a checkout waits for another one of the same user.
    wait: Duration,
}

impl UserLocks {
    pub fn new(redlock: Redlock, wait: Duration) -> Self {
        Self { redlock, wait }
    }

    /// The resource (and fence) name of user `user_id`'s lock.
    pub fn resource(user_id: i64) -> String {
        format!("user:{user_id}")
    }

    /// Takes user `user_id`'s lock, waiting at most `wait` (and never longer than the
    /// configured wait); the caller mints the epoch in its own first write.
    pub async fn acquire(&self, user_id: i64, wait: Duration) -> Result<HeldLock, PaymentError> {
        self.redlock.acquire(&Self::resource(user_id), wait.min(self.wait)).await.map_err(|err| {
            tracing::info!(user_id, error = %err, "user lock not acquired");
            PaymentError::UserBusy
        })
    }

    /// Takes user `user_id`'s lock and mints the epoch `owner` will write with.
    pub async fn lock(&self, store: &Store, owner: &str, user_id: i64) -> Result<(HeldLock, Writer), PaymentError> {
        let resource = Self::resource(user_id);
        let held = self.redlock.acquire(&resource, self.wait).await.map_err(|err| {
            tracing::info!(user_id, error = %err, "user lock not acquired");
            PaymentError::UserBusy
        })?;
        match store.mint_epoch(&resource).await {
            Ok(epoch) => Ok((held, Writer { owner: owner.to_owned(), fence: resource, epoch })),
            Err(err) => {
                held.release().await;
                Err(err)
            }
        }
    }
}
