//! Crash recovery: every `every`, and once at start, claim the unsettled sagas whose lease
//! ran out (their driver crashed, hung past its lease, or deferred a failing compensation)
//! and drive them on. The claim is one conditional UPDATE (`lease_until < now`), so two
//! replicas never both take a saga; the driver then takes the user's lock and a new fencing
//! epoch like any checkout, so a driver that only *seemed* dead cannot write any more.

use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::driver::{Driver, Outcome};
use super::locks::UserLocks;
use crate::domain::{OrderId, PaymentError};
use crate::store::{Drivable, Store};

/// Sagas claimed per sweep; the rest wait for the next one.
const BATCH: u64 = 64;

#[derive(Clone)]
pub struct Recovery {
    pub store: Store,
    pub driver: Driver,
    pub locks: UserLocks,
    pub owner: String,
    pub every: Duration,
}

impl Recovery {
    pub fn spawn(self, shutdown: CancellationToken) {
        tokio::spawn(async move {
            loop {
                match self.sweep().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(sagas = n, "recovery drove unsettled sagas"),
                    Err(err) => tracing::warn!(error = %err, "recovery sweep failed; retrying later"),
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(self.every) => {}
                }
            }
        });
    }

    /// One pass; returns how many sagas it drove.
    pub async fn sweep(&self) -> Result<usize, PaymentError> {
        let candidates = self.store.drivable(BATCH).await?;
        let mut drives = JoinSet::new();
        for Drivable { id, trace_parent } in candidates {
            match self.store.claim_expired(&id, &self.owner).await {
                Ok(true) => {}
                Ok(false) => continue, // another replica was faster
                Err(err) => {
                    // Not fatal to the drives already started: they finish, this one waits.
                    tracing::warn!(order_id = %id, error = %err, "could not claim a saga; next sweep");
                    continue;
                }
            }
            let this = self.clone();
            // The recovered drive continues the checkout's trace: its participant calls, the
            // compensations and the settle show up under the checkout that started them.
            let span = tracing::info_span!("saga_recovery", order_id = %id);
            if let Some(parent) = &trace_parent {
                kit::telemetry::resume_trace(&span, parent);
            }
            drives.spawn(async move { this.recover(&id).await }.instrument(span));
        }
        let (mut driven, mut failed, mut first_error) = (0, 0, None);
        while let Some(done) = drives.join_next().await {
            match done {
                Ok(Ok(())) => driven += 1,
                Ok(Err(err)) => {
                    failed += 1;
                    first_error.get_or_insert_with(|| with_causes(&err));
                }
                Err(err) => tracing::error!(error = %err, "a recovery task ended abnormally"),
            }
        }
        // One line per sweep, not one per saga: a database that is down fails them all.
        if let Some(error) = first_error {
            tracing::warn!(sagas = failed, %error, "could not recover some sagas; their leases will expire again");
        }
        match self.store.stuck_compensations().await {
            Ok(n) => metrics::gauge!("saga_compensations_stuck").set(n as f64),
            Err(err) => tracing::warn!(error = %err, "could not count stuck compensations"),
        }
        Ok(driven)
    }

    async fn recover(&self, id: &str) -> Result<(), PaymentError> {
        let id = OrderId::parse(id)?;
        let Some(saga) = self.store.saga(&id).await? else { return Ok(()) };
        let (held, writer) = self.locks.lock(&self.store, &self.owner, saga.order.user_id).await?;
        // Re-read under the lock: what we claimed may have moved on before we got it.
        let saga = self.store.saga(&id).await?;
        let outcome = match saga {
            Some(saga) => {
                tracing::info!(order_id = %id.as_str(), phase = saga.phase.as_str(), "recovering saga");
                self.driver.run(saga, &writer, held.lost()).await
            }
            None => Outcome::Unsettled("vanished".into()),
        };
        held.release().await;
        if let Outcome::Unsettled(reason) = outcome {
            tracing::info!(order_id = %id.as_str(), %reason, "recovered saga not settled yet");
        }
        metrics::counter!("saga_recoveries_total").increment(1);
        Ok(())
    }
}

/// An error and its causes on one line (the cause is what an operator needs: a schema
/// error is not an outage).
fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}
