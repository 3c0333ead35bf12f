//! Single flight: concurrent requests for the same expensive read share one execution. A
//! popular search whose cached ranking just went stale is computed once, not once per visitor
//! asking for it in that moment.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

type Flight<T> = Shared<BoxFuture<'static, Result<Arc<T>, Arc<str>>>>;

pub struct Flights<T> {
    running: Mutex<HashMap<String, Flight<T>>>,
}

impl<T> Default for Flights<T> {
    fn default() -> Self {
        Self { running: Mutex::new(HashMap::new()) }
    }
}

impl<T: Send + Sync + 'static> Flights<T> {
    /// The result of the flight running for `key`, or of `start()` if none is.
    pub async fn join(
        &self,
        key: String,
        start: impl FnOnce() -> BoxFuture<'static, Result<Arc<T>, Arc<str>>>,
    ) -> Result<Arc<T>, Arc<str>> {
        let flight = {
            let mut running = self.running.lock().expect("flights lock");
            running.entry(key.clone()).or_insert_with(|| start().shared()).clone()
        };
        let result = flight.clone().await;
        let mut running = self.running.lock().expect("flights lock");
        // Only this flight's entry: a newer one for the same key may have started since.
        if running.get(&key).is_some_and(|current| current.ptr_eq(&flight)) {
            running.remove(&key);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn concurrent_callers_share_one_execution_and_later_ones_start_anew() {
        let flights = Arc::new(Flights::<usize>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let call = |flights: Arc<Flights<usize>>, runs: Arc<AtomicUsize>| async move {
            flights
                .join("k".into(), move || {
                    async move {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok(Arc::new(runs.fetch_add(1, Ordering::SeqCst)))
                    }
                    .boxed()
                })
                .await
        };
        let together = futures::future::join_all((0..10).map(|_| call(flights.clone(), runs.clone()))).await;
        assert!(together.iter().all(|r| **r.as_ref().unwrap() == 0));
        assert_eq!(*call(flights.clone(), runs.clone()).await.unwrap(), 1);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }
}
