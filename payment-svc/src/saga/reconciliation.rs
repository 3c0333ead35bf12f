//! Reconciliation across services (DESIGN.md, "Observability"): every COMPLETED order has
//! exactly its stock reservation, its coupon use and its points payment at the participants,
//! and nothing is reserved, used or paid for an order that settled FAILED or CANCELLED.
//!
//! payment-svc never reads another schema: it asks each participant (`SagaEffects`) which of
//! a chunk of sagas hold its effect now, and compares with the orders. A pass checks the next
//! `chunk` orders of a sweep over every order by primary key (wrapping around), plus every
//! mismatch still known, so a mismatch stays reported until it is gone. Unsettled orders are
//! skipped: their sagas are in flight (and `stuck_saga` watches the ones that stay).
//!
//! A mismatch is confirmed before it is reported: the order is read again after the
//! participants answered, and one whose status moved meanwhile (a cancel that just ran) is
//! checked again next pass instead.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Participants;
use crate::grpc::clients::HeldEffects;
use crate::store::{AuditedOrder, Store};

/// The kinds of mismatch, as the `kind` label of `mesh_reconciliation_mismatches`.
pub const KINDS: [&str; 6] = [
    "reservation_missing",
    "coupon_use_missing",
    "payment_missing",
    "reservation_orphaned",
    "coupon_use_orphaned",
    "payment_orphaned",
];

/// Known mismatches (order id -> its kinds) and the passes run. Shared with tests.
#[derive(Clone, Default)]
pub struct Mismatches(Arc<Known>);

#[derive(Default)]
struct Known {
    orders: Mutex<BTreeMap<String, BTreeSet<&'static str>>>,
    passes: AtomicU64,
}

impl Mismatches {
    /// Every known mismatch: (order id, kind).
    pub fn all(&self) -> Vec<(String, &'static str)> {
        let known = self.0.orders.lock().unwrap_or_else(PoisonError::into_inner);
        known.iter().flat_map(|(id, kinds)| kinds.iter().map(|kind| (id.clone(), *kind))).collect()
    }

    /// Completed passes, for tests that wait for one.
    pub fn passes(&self) -> u64 {
        self.0.passes.load(Ordering::Relaxed)
    }
}

pub struct Reconciliation {
    pub store: Store,
    pub participants: Participants,
    pub every: Duration,
    /// Orders per pass (at most `kit::saga::MAX_EFFECTS_ASKED`).
    pub chunk: u32,
    pub mismatches: Mismatches,
}

/// What should hold at the participants for `order`; `None` while it is unsettled.
fn expected(order: &AuditedOrder) -> Option<[bool; 3]> {
    match order.status.as_str() {
        "COMPLETED" => Some([true, order.with_coupon, order.paid_amount > 0]),
        "FAILED" | "CANCELLED" => Some([false, false, false]),
        _ => None,
    }
}

fn compare(order: &AuditedOrder, held: &HeldEffects) -> BTreeSet<&'static str> {
    let Some([reserve, coupon, pay]) = expected(order) else { return BTreeSet::new() };
    let found =
        [held.reserved.contains(&order.id), held.coupon_used.contains(&order.id), held.paid.contains(&order.id)];
    let mut kinds = BTreeSet::new();
    for (i, (want, got)) in [reserve, coupon, pay].into_iter().zip(found).enumerate() {
        match (want, got) {
            (true, false) => kinds.insert(KINDS[i]),
            (false, true) => kinds.insert(KINDS[i + 3]),
            _ => false,
        };
    }
    kinds
}

impl Reconciliation {
    pub fn spawn(self, stop: CancellationToken) {
        for kind in KINDS {
            metrics::gauge!("mesh_reconciliation_mismatches", "kind" => kind).set(0.0);
        }
        tokio::spawn(async move {
            let mut cursor = String::new();
            let mut ticks = tokio::time::interval(self.every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = ticks.tick() => match self.pass(&cursor).await {
                        Ok(next) => cursor = next,
                        Err(err) => tracing::warn!(error = %format!("{err:#}"), "reconciliation pass could not run; trying again next period"),
                    },
                }
            }
        });
    }

    /// One pass from `cursor`; the cursor of the next pass.
    async fn pass(&self, cursor: &str) -> anyhow::Result<String> {
        let mut orders = self.store.orders_after(cursor, self.chunk).await?;
        let next = orders.last().map(|o| o.id.clone()).unwrap_or_default();
        let known: Vec<String> =
            self.mismatches.0.orders.lock().unwrap_or_else(PoisonError::into_inner).keys().cloned().collect();
        let known: Vec<String> = known.into_iter().filter(|id| !orders.iter().any(|o| &o.id == id)).collect();
        orders.extend(self.store.orders_by_id(&known).await?);
        orders.retain(|o| expected(o).is_some());
        let mut found: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
        for chunk in orders.chunks(kit::saga::MAX_EFFECTS_ASKED) {
            let ids: Vec<String> = chunk.iter().map(|o| o.id.clone()).collect();
            let held = self.participants.effects(&ids).await?;
            for order in chunk {
                let kinds = compare(order, &held);
                if !kinds.is_empty() {
                    found.insert(order.id.clone(), kinds);
                }
            }
        }
        // Confirm against the orders as they are now: a status that moved meanwhile is
        // checked again next pass, not reported.
        let suspects: Vec<String> = found.keys().cloned().collect();
        let now = self.store.orders_by_id(&suspects).await?;
        found.retain(|id, _| {
            let before = orders.iter().find(|o| &o.id == id);
            now.iter().any(|o| &o.id == id && Some(o) == before)
        });
        self.record(&orders, found);
        self.mismatches.0.passes.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("mesh_reconciliation_last_run_timestamp_seconds")
            .set(kit::time::now_millis().timestamp() as f64);
        Ok(next)
    }

    /// Replaces what is known of the orders just checked with what was found.
    fn record(&self, checked: &[AuditedOrder], found: BTreeMap<String, BTreeSet<&'static str>>) {
        let mut known = self.mismatches.0.orders.lock().unwrap_or_else(PoisonError::into_inner);
        for order in checked {
            if !found.contains_key(&order.id) && known.remove(&order.id).is_some() {
                tracing::info!(order_id = %order.id, "reconciliation mismatch resolved");
            }
        }
        for (id, kinds) in found {
            if known.get(&id) != Some(&kinds) {
                for kind in &kinds {
                    tracing::error!(order_id = %id, kind, "reconciliation mismatch: the participants disagree with the order");
                }
            }
            known.insert(id, kinds);
        }
        for kind in KINDS {
            let count = known.values().filter(|kinds| kinds.contains(kind)).count();
            metrics::gauge!("mesh_reconciliation_mismatches", "kind" => kind).set(count as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(status: &str, with_coupon: bool, paid_amount: i64) -> AuditedOrder {
        AuditedOrder { id: "o".into(), status: status.into(), with_coupon, paid_amount }
    }

    fn held(reserved: bool, coupon: bool, paid: bool) -> HeldEffects {
        let set = |on: bool| if on { ["o".to_owned()].into() } else { Default::default() };
        HeldEffects { reserved: set(reserved), coupon_used: set(coupon), paid: set(paid) }
    }

    #[test]
    fn each_kind_of_disagreement_is_named() {
        assert!(compare(&order("COMPLETED", true, 10), &held(true, true, true)).is_empty());
        assert!(compare(&order("COMPLETED", false, 0), &held(true, false, false)).is_empty(), "fully discounted");
        assert!(compare(&order("FAILED", true, 10), &held(false, false, false)).is_empty());
        assert!(compare(&order("PENDING", true, 10), &held(false, true, false)).is_empty(), "in flight: skipped");
        let missing = compare(&order("COMPLETED", true, 10), &held(false, false, false));
        assert_eq!(
            missing.into_iter().collect::<Vec<_>>(),
            ["coupon_use_missing", "payment_missing", "reservation_missing"]
        );
        let orphaned = compare(&order("CANCELLED", true, 10), &held(true, true, true));
        assert_eq!(orphaned.len(), 3);
        let stray_coupon = compare(&order("COMPLETED", false, 10), &held(true, true, true));
        assert_eq!(stray_coupon.into_iter().collect::<Vec<_>>(), ["coupon_use_orphaned"]);
    }
}
