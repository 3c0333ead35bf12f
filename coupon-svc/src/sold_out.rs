//! "Sold out for good", answered from memory.
//!
//! A sold-out answer of the Redis gate is not final: a failed MySQL write gives its admission
//! back (`gate.undo`) and the reconciler drops admissions that never reached MySQL, so a copy
//! can come back. MySQL holding `total_quantity` rows is final, because nothing ever deletes
//! a `user_coupon` row. Once this process has seen that, it answers the coupon's issue
//! requests without Redis, exactly as the gate would: a holder gets ALREADY_ISSUED (the gate
//! looks for the holder before it counts), everyone else SOLD_OUT.
//!
//! It learns it from a write batch that took the last copy or found none left, or from a
//! gate "sold out" followed by a look at MySQL's count, at most one per coupon per
//! [`CHECK_EVERY`], so a flood of sold-out answers never becomes a flood of queries.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;

use crate::domain::{CouponError, UserCoupon};
use crate::store;

/// Up to this many holders, a coupon sold out for good keeps them in memory: a sorted `i64`
/// slice of a million is 8 MB, while the biggest campaigns (10 million copies) would cost
/// 80 MB each for as long as the process lives. Above it, each answer is one probe of MySQL's
/// `UNIQUE(coupon_id, user_id)` instead: still no Redis, and far cheaper than a write.
pub const HOLDERS_IN_MEMORY_MAX: i64 = 1_000_000;

/// While a coupon is not known to be final, MySQL is asked at most this often whether a
/// gate "sold out" has become final.
pub const CHECK_EVERY: Duration = Duration::from_millis(100);

/// What this process knows about one coupon; for tests and diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SoldOutView {
    /// MySQL holds every copy: issue requests are answered without Redis.
    pub for_good: bool,
    /// The holders are in memory (else a holder is told apart by an index probe).
    pub holders_in_memory: bool,
    /// Looks at MySQL's count made after a gate "sold out".
    pub mysql_checks: u64,
}

/// A coupon MySQL holds every copy of.
pub struct Final {
    coupon_id: i64,
    total: i64,
    /// Every holder, sorted; unset until loaded, and for ever above the bound.
    holders: OnceLock<Box<[i64]>>,
    loading: AtomicBool,
}

#[derive(Default)]
struct Entry {
    done: Option<Arc<Final>>,
    last_check: Option<Instant>,
    checking: bool,
    checks: u64,
}

#[derive(Default)]
struct Book {
    entries: HashMap<i64, Entry>,
}

impl Book {
    fn final_of(&self, coupon_id: i64) -> Option<Arc<Final>> {
        self.entries.get(&coupon_id).and_then(|e| e.done.clone())
    }

    /// Records the coupon as final; `Some` only the first time.
    fn mark_final(&mut self, coupon_id: i64, total: i64) -> Option<Arc<Final>> {
        let entry = self.entries.entry(coupon_id).or_default();
        if entry.done.is_some() {
            return None;
        }
        let done = Arc::new(Final { coupon_id, total, holders: OnceLock::new(), loading: AtomicBool::new(false) });
        entry.done = Some(done.clone());
        Some(done)
    }

    /// Whether the caller should look at MySQL now; if so, the look is marked in flight.
    fn claim_check(&mut self, coupon_id: i64, now: Instant) -> bool {
        let entry = self.entries.entry(coupon_id).or_default();
        let recent = entry.last_check.is_some_and(|at| now.saturating_duration_since(at) < CHECK_EVERY);
        if entry.done.is_some() || entry.checking || recent {
            return false;
        }
        entry.checking = true;
        entry.last_check = Some(now);
        entry.checks += 1;
        true
    }

    fn check_done(&mut self, coupon_id: i64) {
        if let Some(entry) = self.entries.get_mut(&coupon_id) {
            entry.checking = false;
        }
    }

    fn view(&self, coupon_id: i64) -> SoldOutView {
        let Some(entry) = self.entries.get(&coupon_id) else { return SoldOutView::default() };
        SoldOutView {
            for_good: entry.done.is_some(),
            holders_in_memory: entry.done.as_ref().is_some_and(|d| d.holders.get().is_some()),
            mysql_checks: entry.checks,
        }
    }
}

/// Whether a written batch shows MySQL holds every copy: it issued the last one, or it found
/// none left (read under the coupon row's lock, so that count was committed).
pub fn batch_shows_final(total: i64, outcomes: &[Result<UserCoupon, CouponError>]) -> bool {
    outcomes.iter().any(|outcome| match outcome {
        Ok(issued) => issued.sequence == total,
        Err(err) => matches!(err, CouponError::SoldOut),
    })
}

#[derive(Clone)]
pub struct SoldOut {
    db: DatabaseConnection,
    book: Arc<Mutex<Book>>,
    holders_max: Arc<AtomicI64>,
}

impl SoldOut {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db, book: Arc::default(), holders_max: Arc::new(AtomicI64::new(HOLDERS_IN_MEMORY_MAX)) }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().expect("sold-out book lock")
    }

    pub fn final_of(&self, coupon_id: i64) -> Option<Arc<Final>> {
        self.book().final_of(coupon_id)
    }

    pub fn view(&self, coupon_id: i64) -> SoldOutView {
        self.book().view(coupon_id)
    }

    /// Lowers the in-memory bound for coupons that become final from now on (tests use it to
    /// reach the index probe without a million-copy coupon).
    pub fn set_holders_in_memory_max(&self, max: i64) {
        self.holders_max.store(max, Ordering::Relaxed);
    }

    /// MySQL holds every copy of the coupon (its caller saw it in a committed state).
    pub fn reached(&self, coupon_id: i64, total: i64) {
        let Some(done) = self.book().mark_final(coupon_id, total) else { return };
        tracing::info!(coupon_id, total, "coupon sold out for good; answering its issues from memory");
        metrics::counter!("coupon_sold_out_for_good_total").increment(1);
        self.load_holders(&done);
    }

    /// The gate answered "sold out": maybe final, maybe a copy held by an admission that will
    /// be given back. MySQL's count tells, looked at in the background (the answer is sold
    /// out either way) and not more often than [`CHECK_EVERY`].
    pub fn gate_said_sold_out(&self, coupon_id: i64, total: i64) {
        if !self.book().claim_check(coupon_id, Instant::now()) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            match store::issued_quantity(&this.db, coupon_id).await {
                Ok(issued) if issued >= total => this.reached(coupon_id, total),
                Ok(_) => {}
                Err(err) => tracing::debug!(error = %err, coupon_id, "could not read the issued count; later"),
            }
            this.book().check_done(coupon_id);
        });
    }

    /// Whether `user_id` holds the final coupon `done`.
    pub async fn holds(&self, done: &Arc<Final>, user_id: i64) -> Result<bool, CouponError> {
        if let Some(holders) = done.holders.get() {
            return Ok(holders.binary_search(&user_id).is_ok());
        }
        self.load_holders(done);
        store::holds(&self.db, done.coupon_id, user_id).await
    }

    /// Loads the holders once, in the background; answers meanwhile probe the index. The set
    /// cannot change any more: every copy is issued and no row is ever removed.
    fn load_holders(&self, done: &Arc<Final>) {
        if done.total > self.holders_max.load(Ordering::Relaxed)
            || done.holders.get().is_some()
            || done.loading.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let (db, done) = (self.db.clone(), done.clone());
        tokio::spawn(async move {
            match store::all_holders(&db, done.coupon_id).await {
                Ok(mut holders) if holders.len() as i64 == done.total => {
                    holders.sort_unstable();
                    let _ = done.holders.set(holders.into_boxed_slice());
                }
                // Left loading for good: probing is always right, and retrying would not help.
                Ok(holders) => tracing::error!(
                    coupon_id = done.coupon_id,
                    found = holders.len(),
                    total = done.total,
                    "a sold-out coupon's holders do not add up to its total; probing MySQL per request"
                ),
                Err(err) => {
                    tracing::warn!(error = %err, coupon_id = done.coupon_id, "could not load holders; the next answer retries");
                    done.loading.store(false, Ordering::Release);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_are_single_flight_and_spaced() {
        let mut book = Book::default();
        let t0 = Instant::now();
        assert!(book.claim_check(1, t0));
        assert!(!book.claim_check(1, t0 + CHECK_EVERY * 2), "one in flight");
        book.check_done(1);
        assert!(!book.claim_check(1, t0 + CHECK_EVERY / 2), "too soon after the last");
        assert!(book.claim_check(1, t0 + CHECK_EVERY), "due again");
        assert!(book.claim_check(2, t0), "per coupon");
        assert_eq!(book.view(1).mysql_checks, 2);
    }

    #[test]
    fn a_final_coupon_is_final_once_and_never_checked_again() {
        let mut book = Book::default();
        assert!(book.final_of(1).is_none());
        assert!(book.mark_final(1, 5).is_some());
        assert!(book.mark_final(1, 5).is_none(), "marked once");
        assert!(book.final_of(1).is_some());
        assert!(!book.claim_check(1, Instant::now()));
        assert_eq!(book.view(1), SoldOutView { for_good: true, holders_in_memory: false, mysql_checks: 0 });
    }

    #[test]
    fn only_a_batch_that_reached_the_total_is_final() {
        let issued = |sequence| {
            Ok(UserCoupon {
                id: sequence,
                coupon_id: 1,
                user_id: sequence,
                sequence,
                status: crate::domain::UserCouponStatus::Available,
                issued_at: chrono::Utc::now(),
                expires_at: chrono::Utc::now(),
                used_at: None,
                order_id: None,
                name: "c".into(),
                discount: crate::domain::Discount::Fixed(1),
            })
        };
        assert!(!batch_shows_final(3, &[issued(1), issued(2)]));
        assert!(batch_shows_final(3, &[issued(2), issued(3)]));
        assert!(batch_shows_final(3, &[Err(CouponError::SoldOut)]));
        // A write that failed or a holder refused says nothing about the count.
        assert!(!batch_shows_final(
            3,
            &[Err(CouponError::AlreadyIssued), Err(CouponError::Store(anyhow::anyhow!("x")))]
        ));
    }
}
