//! Group commit for hot keys: concurrent submissions for one key are flushed together,
//! one batch at a time per key, so a hot row (one SKU, one coupon) costs one transaction per
//! batch instead of one per request, while every submitter still gets its own answer.
//!
//! There is no timer: a batch is whatever queued up while the previous one was being
//! written. At low load a batch is one item and adds no delay; under contention batches
//! grow by themselves, which is exactly when amortising the transaction pays off.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// The queued items of each key, each with the channel its result goes back on.
type Lanes<K, T, R> = Arc<Mutex<HashMap<K, Vec<(T, oneshot::Sender<R>)>>>>;

type FlushFn<K, T, R> = dyn Fn(K, Vec<T>) -> Pin<Box<dyn Future<Output = Vec<R>> + Send>> + Send + Sync;

/// Batches submissions per key through `flush`, which must return one result per item, in order.
pub struct Combiner<K, T, R> {
    lanes: Lanes<K, T, R>,
    flush: Arc<FlushFn<K, T, R>>,
    max_batch: usize,
}

impl<K, T, R> Clone for Combiner<K, T, R> {
    fn clone(&self) -> Self {
        Self { lanes: self.lanes.clone(), flush: self.flush.clone(), max_batch: self.max_batch }
    }
}

/// The flusher went away without answering (it panicked or returned too few results).
#[derive(Debug, thiserror::Error)]
#[error("the batch this request was part of did not complete")]
pub struct BatchLost;

impl<K, T, R> Combiner<K, T, R>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Send + 'static,
    R: Send + 'static,
{
    pub fn new<F, Fut>(max_batch: usize, flush: F) -> Self
    where
        F: Fn(K, Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<R>> + Send + 'static,
    {
        Self {
            lanes: Arc::default(),
            flush: Arc::new(move |key, items| Box::pin(flush(key, items))),
            max_batch: max_batch.max(1),
        }
    }

    /// Queues `item` under `key` and waits for its result.
    pub async fn submit(&self, key: K, item: T) -> Result<R, BatchLost> {
        let (tx, rx) = oneshot::channel();
        let start_flusher = {
            let mut lanes = self.lanes.lock().expect("combiner lock poisoned");
            match lanes.get_mut(&key) {
                // A flusher owns this key and will pick the item up with the next batch.
                Some(queue) => {
                    queue.push((item, tx));
                    false
                }
                None => {
                    lanes.insert(key.clone(), vec![(item, tx)]);
                    true
                }
            }
        };
        if start_flusher {
            tokio::spawn(self.clone().drain(key));
        }
        rx.await.map_err(|_| BatchLost)
    }

    /// Flushes `key`'s queue batch by batch until it is empty, then retires the lane. The
    /// lane's presence in the map is what says "a flusher is running".
    async fn drain(self, key: K) {
        loop {
            let batch: Vec<(T, oneshot::Sender<R>)> = {
                let mut lanes = self.lanes.lock().expect("combiner lock poisoned");
                let Some(queue) = lanes.get_mut(&key) else { return };
                if queue.is_empty() {
                    lanes.remove(&key);
                    return;
                }
                let take = queue.len().min(self.max_batch);
                queue.drain(..take).collect()
            };
            metrics::histogram!("combiner_batch_size").record(batch.len() as f64);
            let (items, senders): (Vec<T>, Vec<oneshot::Sender<R>>) = batch.into_iter().unzip();
            let results = (self.flush)(key.clone(), items).await;
            for (sender, result) in senders.into_iter().zip(results) {
                let _ = sender.send(result);
            }
        }
    }
}

/// Decides a batch in one go if it can, else each item alone. A batch that cannot commit
/// whole (a deadlock between batches' locks, a key already taken, a lost connection) has
/// committed nothing, so deciding its items one by one is safe, and one item's trouble never
/// fails its neighbours. A batch of one goes straight to `alone`, the cheaper path, and
/// `together` (a future: nothing runs until it is awaited) is dropped unpolled.
pub async fn together_or_alone<'a, I, R, E, A, F>(
    items: &'a [I],
    together: impl Future<Output = Result<Vec<R>, E>>,
    alone: A,
) -> Vec<R>
where
    E: std::fmt::Display,
    A: Fn(&'a I) -> F,
    F: Future<Output = R>,
{
    if items.len() > 1 {
        match together.await {
            Ok(results) => return results,
            Err(err) => tracing::debug!(error = %err, size = items.len(), "batch not committed; deciding one by one"),
        }
    }
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        results.push(alone(item).await);
    }
    results
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn concurrent_submissions_share_batches_and_get_their_own_results() {
        let flushes = Arc::new(AtomicUsize::new(0));
        let counter = flushes.clone();
        let combiner = Combiner::new(64, move |key: u32, items: Vec<u32>| {
            counter.fetch_add(1, Ordering::Relaxed);
            async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                items.into_iter().map(|i| i * 10 + key).collect()
            }
        });
        let calls = (0..200u32).map(|i| {
            let c = combiner.clone();
            async move { (i, c.submit(i % 2, i).await.unwrap()) }
        });
        for (i, result) in futures::future::join_all(calls).await {
            assert_eq!(result, i * 10 + i % 2);
        }
        let flushes = flushes.load(Ordering::Relaxed);
        assert!(flushes < 100, "submissions were batched: {flushes} flushes for 200 items");
        assert!(combiner.lanes.lock().unwrap().is_empty(), "idle lanes are retired");
    }

    #[tokio::test]
    async fn a_flush_that_answers_too_little_is_an_error_not_a_hang() {
        let combiner = Combiner::new(8, |_: u8, _: Vec<u8>| async { Vec::<u8>::new() });
        assert!(combiner.submit(1, 1).await.is_err());
    }

    #[tokio::test]
    async fn a_batch_that_fails_is_decided_item_by_item_and_one_item_goes_alone() {
        let tried = AtomicUsize::new(0);
        let results = together_or_alone(
            &[1, 2, 3],
            async {
                tried.fetch_add(1, Ordering::Relaxed);
                Err::<Vec<i32>, _>("deadlock")
            },
            |item| async move { item * 10 },
        )
        .await;
        assert_eq!((results, tried.load(Ordering::Relaxed)), (vec![10, 20, 30], 1));
        let together =
            together_or_alone(&[1, 2], async { Ok::<_, &str>(vec![7, 8]) }, |item| async move { *item }).await;
        assert_eq!(together, vec![7, 8]);
        let alone = together_or_alone(&[5], async { Ok::<_, &str>(vec![0]) }, |item| async move { *item }).await;
        assert_eq!(alone, vec![5], "a batch of one takes the single path");
    }
}
