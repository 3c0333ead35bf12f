//! Group commit of the saga's two writes (DESIGN.md, "The saga orchestrator"): the starts of
//! concurrent checkouts share one transaction, and so do their completions (`kit::batch`).
//!
//! Checkouts are spread over `lanes` by user, so a few batches commit at once while the
//! fence rows one batch locks are never wanted by another lane's batch (no lock waits
//! between lanes, no deadlocks). A start carries a deadline: a checkout still queued when
//! its deadline passes is answered [`Started::Expired`] by the flusher, before anything of it
//! is written, so a refused client never leaves a saga behind.

use std::sync::Arc;

use kit::batch::Combiner;
use tokio::time::Instant;

use crate::store::{Completion, NewCheckout, StartOutcome, Store, WriteError};

/// A start request as the journal queues it.
struct Queued {
    checkout: NewCheckout,
    not_after: Instant,
}

/// How a queued start ended.
#[derive(Debug)]
pub enum Started {
    Outcome(StartOutcome),
    /// Not written: the deadline passed while it waited for its batch.
    Expired,
}

#[derive(Clone)]
pub struct Journal {
    starts: Combiner<usize, Queued, Started>,
    completions: Combiner<usize, Completion, Result<(), Arc<WriteError>>>,
    lanes: usize,
}

impl Journal {
    pub fn new(store: Store, lanes: usize, max_batch: usize) -> Self {
        let start_store = store.clone();
        let starts = Combiner::new(max_batch, move |_lane, queued: Vec<Queued>| {
            let store = start_store.clone();
            async move {
                let now = Instant::now();
                let mut slots: Vec<Option<NewCheckout>> =
                    queued.into_iter().map(|q| (q.not_after > now).then_some(q.checkout)).collect();
                let mut live: Vec<usize> = (0..slots.len()).filter(|&i| slots[i].is_some()).collect();
                // Fence rows in one order within the batch, as in every other batch.
                live.sort_by_key(|&i| slots[i].as_ref().map(|c| c.fence.clone()));
                let batch: Vec<NewCheckout> = live.iter().filter_map(|&i| slots[i].take()).collect();
                let mut outcomes: Vec<Started> = (0..slots.len()).map(|_| Started::Expired).collect();
                for (i, outcome) in live.into_iter().zip(store.start_checkouts(&batch).await) {
                    outcomes[i] = Started::Outcome(outcome);
                }
                outcomes
            }
        });
        let completions = Combiner::new(max_batch, move |_lane, batch: Vec<Completion>| {
            let store = store.clone();
            async move {
                let mut order: Vec<usize> = (0..batch.len()).collect();
                order.sort_by(|&a, &b| batch[a].writer.fence.cmp(&batch[b].writer.fence));
                let mut slots: Vec<Option<Completion>> = batch.into_iter().map(Some).collect();
                let sorted: Vec<Completion> = order.iter().filter_map(|&i| slots[i].take()).collect();
                let mut results: Vec<Result<(), Arc<WriteError>>> =
                    (0..sorted.len()).map(|_| Err(Arc::new(WriteError::Fenced))).collect();
                for (i, result) in order.into_iter().zip(store.complete_checkouts(&sorted).await) {
                    results[i] = result.map_err(Arc::new);
                }
                results
            }
        });
        Self { starts, completions, lanes: lanes.max(1) }
    }

    fn lane(&self, user_id: i64) -> usize {
        (user_id.unsigned_abs() % self.lanes as u64) as usize
    }

    /// Starts `checkout` with the next batch of its lane, unless `not_after` passes first.
    pub async fn start(&self, checkout: NewCheckout, not_after: Instant) -> Started {
        let lane = self.lane(checkout.request.user().get());
        match self.starts.submit(lane, Queued { checkout, not_after }).await {
            Ok(started) => started,
            Err(lost) => Started::Outcome(StartOutcome::Failed(sea_orm::DbErr::Custom(lost.to_string()))),
        }
    }

    /// Completes a checkout with the next batch of its lane.
    pub async fn complete(&self, completion: Completion) -> Result<(), Arc<WriteError>> {
        let lane = self.lane(completion.order.user_id);
        match self.completions.submit(lane, completion).await {
            Ok(result) => result,
            Err(lost) => Err(Arc::new(WriteError::Db(sea_orm::DbErr::Custom(lost.to_string())))),
        }
    }
}
