//! The coupon use cases. Issuing is: the Redis gate admits (or refuses at once: sold out,
//! already issued), then the admission is written to MySQL in a batch with its neighbours;
//! a write that fails gives the admission back. MySQL's constraints decide in the end. A
//! coupon MySQL holds every copy of is answered from memory, before the gate ([`SoldOut`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::Instrument;

use chrono::Utc;
use kit::batch::Combiner;
use kit::saga::SagaRef;
use kit::shutdown::CancellationToken;
use sea_orm::DatabaseConnection;

use crate::domain::{Coupon, CouponError, CouponId, NewCoupon, PageRequest, UserCoupon, UserId};
use crate::sold_out::{SoldOut, SoldOutView, batch_shows_final};
use crate::store::{self, Admission, IssueGate, IssueRequest, Restored, Used};

type Writer = Combiner<i64, IssueRequest, Result<UserCoupon, CouponError>>;

/// An admission older than this without a MySQL row was lost by a crashed holder: every
/// write finishes or fails long before (server deadline 10 s).
const STALE_ADMISSION_MS: i64 = 30_000;

#[derive(Clone)]
pub struct Coupons {
    db: DatabaseConnection,
    gate: IssueGate,
    writer: Writer,
    /// Coupon definitions never change after creation, so they are cached for good.
    definitions: Arc<Mutex<HashMap<i64, Arc<Coupon>>>>,
    /// One gate rebuild at a time in this process.
    rebuilding: Arc<tokio::sync::Mutex<()>>,
    /// Coupons this process issued, for the reconciler.
    touched: Arc<Mutex<HashSet<i64>>>,
    sold_out: SoldOut,
}

impl Coupons {
    pub fn new(db: DatabaseConnection, gate: IssueGate, batch_max: usize) -> Self {
        let sold_out = SoldOut::new(db.clone());
        let (writer_db, writer_sold_out) = (db.clone(), sold_out.clone());
        let writer = Combiner::new(batch_max.max(1), move |_coupon: i64, items: Vec<IssueRequest>| {
            let (db, sold_out) = (writer_db.clone(), writer_sold_out.clone());
            async move {
                let outcomes = store::issue_batch(&db, &items).await;
                // Recorded before anyone hears back, so no request after a sell-out needs Redis.
                if let Some(first) = items.first()
                    && batch_shows_final(first.coupon.total_quantity, &outcomes)
                {
                    sold_out.reached(first.coupon.id, first.coupon.total_quantity);
                }
                outcomes
            }
        });
        Self {
            db,
            gate,
            writer,
            definitions: Arc::default(),
            rebuilding: Arc::default(),
            touched: Arc::default(),
            sold_out,
        }
    }

    pub async fn create(&self, new: NewCoupon) -> Result<Coupon, CouponError> {
        let coupon = store::create(&self.db, new).await?;
        self.gate.rebuild(coupon.id, &[]).await?;
        self.remember(coupon.clone());
        Ok(coupon)
    }

    /// The coupon with its current issued count (from MySQL, the record).
    pub async fn get(&self, id: CouponId) -> Result<Coupon, CouponError> {
        store::get(&self.db, id).await
    }

    /// A page of coupons, newest first, and how many there are in all.
    pub async fn list(&self, page: PageRequest) -> Result<(Vec<Coupon>, i64), CouponError> {
        store::list(&self.db, page).await
    }

    /// What this process knows about the coupon being sold out for good.
    pub fn sold_out_view(&self, coupon_id: i64) -> SoldOutView {
        self.sold_out.view(coupon_id)
    }

    /// See [`SoldOut::set_holders_in_memory_max`].
    pub fn set_holders_in_memory_max(&self, max: i64) {
        self.sold_out.set_holders_in_memory_max(max);
    }

    fn remember(&self, coupon: Coupon) -> Arc<Coupon> {
        let coupon = Arc::new(coupon);
        self.definitions.lock().expect("definitions lock").insert(coupon.id, coupon.clone());
        coupon
    }

    async fn definition(&self, id: CouponId) -> Result<Arc<Coupon>, CouponError> {
        if let Some(hit) = self.definitions.lock().expect("definitions lock").get(&id.get()) {
            return Ok(hit.clone());
        }
        Ok(self.remember(store::get(&self.db, id).await?))
    }

    pub async fn issue(&self, id: CouponId, user: UserId) -> Result<UserCoupon, CouponError> {
        let coupon = self.definition(id).await?;
        if !coupon.window.contains(Utc::now()) {
            return Err(CouponError::NotIssuable);
        }
        if let Some(done) = self.sold_out.final_of(coupon.id) {
            // The gate's order: a holder is told so before anyone is told "sold out".
            let refused: Result<UserCoupon, CouponError> = if self.sold_out.holds(&done, user.get()).await? {
                Err(CouponError::AlreadyIssued)
            } else {
                Err(CouponError::SoldOut)
            };
            metrics::counter!("coupon_issues_total", "outcome" => outcome_label(&refused)).increment(1);
            return refused;
        }
        let admitted = self.admit(&coupon, user).await?;
        self.touched.lock().expect("touched lock").insert(coupon.id);
        let request = IssueRequest { coupon: coupon.clone(), user_id: user.get(), admitted };
        let written =
            self.writer.submit(coupon.id, request).await.unwrap_or_else(|lost| Err(CouponError::Store(lost.into())));
        match &written {
            Ok(issued) => self.gate.confirm(coupon.id, &[issued.user_id]).await,
            // MySQL knows this holder (the gate had lost it): the admission stands.
            Err(CouponError::AlreadyIssued) => {}
            Err(_) => self.gate.undo(coupon.id, user.get()).await,
        }
        metrics::counter!("coupon_issues_total", "outcome" => outcome_label(&written)).increment(1);
        written
    }

    async fn admit(&self, coupon: &Coupon, user: UserId) -> Result<i64, CouponError> {
        for _ in 0..3 {
            let admitted = self.gate.admit(coupon.id, user.get(), coupon.total_quantity);
            match admitted.instrument(tracing::info_span!("redis.coupon_gate", coupon_id = coupon.id)).await? {
                Admission::Admitted(position) => return Ok(position),
                Admission::AlreadyIssued => {
                    metrics::counter!("coupon_issues_total", "outcome" => "already_issued").increment(1);
                    return Err(CouponError::AlreadyIssued);
                }
                Admission::SoldOut => {
                    self.sold_out.gate_said_sold_out(coupon.id, coupon.total_quantity);
                    metrics::counter!("coupon_issues_total", "outcome" => "sold_out").increment(1);
                    return Err(CouponError::SoldOut);
                }
                Admission::Missing => self.rebuild_gate(coupon.id).await?,
            }
        }
        Err(CouponError::Gate(anyhow::anyhow!("the issue gate of coupon {} keeps disappearing", coupon.id)))
    }

    /// Rebuilds a gate Redis lost, from MySQL's holders.
    async fn rebuild_gate(&self, coupon_id: i64) -> Result<(), CouponError> {
        let _one_at_a_time = self.rebuilding.lock().await;
        let holders = store::all_holders(&self.db, coupon_id).await?;
        self.gate.rebuild(coupon_id, &holders).await?;
        metrics::counter!("coupon_gate_rebuilds_total").increment(1);
        Ok(())
    }

    pub async fn user_coupons(&self, user: UserId) -> Result<Vec<UserCoupon>, CouponError> {
        store::user_coupons(&self.db, user).await
    }

    pub async fn use_coupon(
        &self,
        saga: &SagaRef,
        user_coupon_id: i64,
        user: UserId,
        order_id: &str,
        order_amount: i64,
    ) -> Result<Used, CouponError> {
        store::use_coupon(&self.db, saga, user_coupon_id, user, order_id, order_amount)
            .instrument(tracing::info_span!("sql.use_coupon", saga_id = saga.saga_id()))
            .await
    }

    pub async fn restore(&self, saga: &SagaRef) -> Result<Restored, CouponError> {
        store::restore(&self.db, saga)
            .instrument(tracing::info_span!("sql.restore_coupon", saga_id = saga.saga_id()))
            .await
    }

    /// Of `order_ids`, those holding a used coupon now.
    pub async fn used_by(&self, order_ids: &[String]) -> Result<Vec<String>, CouponError> {
        store::used_by(&self.db, order_ids).await
    }

    /// Drops admissions that never reached MySQL (their holder crashed), so the copy they
    /// held becomes issuable again; confirms the ones that did.
    pub async fn reconcile(&self) -> Result<u64, CouponError> {
        let coupons: Vec<i64> = self.touched.lock().expect("touched lock").iter().copied().collect();
        let mut dropped = 0;
        for coupon_id in coupons {
            let (cutoff, old) = self.gate.old_admissions(coupon_id, STALE_ADMISSION_MS).await?;
            if old.is_empty() {
                continue;
            }
            let holders = store::holders_among(&self.db, coupon_id, &old).await?;
            let (confirmed, stale): (Vec<i64>, Vec<i64>) = old.into_iter().partition(|u| holders.contains(u));
            self.gate.confirm(coupon_id, &confirmed).await;
            let n = self.gate.drop_stale(coupon_id, cutoff, &stale).await?;
            if n > 0 {
                tracing::warn!(coupon_id, dropped = n, "dropped gate admissions that never reached MySQL");
            }
            dropped += n as u64;
        }
        Ok(dropped)
    }

    pub fn spawn_reconciler(&self, every: Duration, shutdown: CancellationToken) {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
                if let Err(err) = this.reconcile().await {
                    tracing::warn!(error = %err, "coupon gate reconcile failed; retrying later");
                }
            }
        });
    }
}

fn outcome_label(result: &Result<UserCoupon, CouponError>) -> &'static str {
    match result {
        Ok(_) => "issued",
        Err(CouponError::SoldOut) => "sold_out",
        Err(CouponError::AlreadyIssued) => "already_issued",
        Err(_) => "failed",
    }
}
