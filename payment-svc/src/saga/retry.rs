//! Capped exponential backoff with jitter: retries of many sagas spread out instead of
//! hitting a recovering participant in lockstep.

use std::time::Duration;

use rand::Rng;

/// How often and how patiently one kind of call is retried within one drive.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Calls per drive, the first included.
    pub attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl RetryPolicy {
    /// The pause before retry number `retry` (0-based): a random point in the upper half
    /// of `min(cap, base * 2^retry)`, so it never collapses to zero.
    pub fn delay(&self, retry: u32) -> Duration {
        let ceiling = self.base.saturating_mul(1u32 << retry.min(16)).min(self.cap);
        let half = ceiling / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_capped() {
        let policy = RetryPolicy { attempts: 5, base: Duration::from_millis(100), cap: Duration::from_millis(1_000) };
        for _ in 0..100 {
            let first = policy.delay(0);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let late = policy.delay(30);
            assert!(late >= Duration::from_millis(500) && late <= Duration::from_millis(1_000));
        }
    }
}
