//! point-svc scenarios: one user's balance under 500 concurrent clients charging and using
//! (every movement locks the same balance row), and 10,000 users' balances side by side.

mod ledger;
mod spread;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, ensure};
use kit::ErrorCode;
use kit::grpc::MeshChannel;
use kit::idempotency::{KEY_METADATA, REPLAYED_METADATA};
use mesh_proto::point::v1 as pb;
use pb::point_service_client::PointServiceClient;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

pub use self::ledger::Audit;
pub use self::spread::spread;
use super::{ChannelPool, Target, classify, fresh_users};
use crate::driver::{Limits, Outcome, run_closed_loop};
use crate::report::Report;

/// No charge may take a balance above this (point-svc's own bound).
pub const MAX_BALANCE: i64 = 1_000_000_000;
/// One charge moves 1..=10,000,000.
pub const MAX_CHARGE: i64 = 10_000_000;
/// What each movement of points-hot moves, either way.
pub const HOT_AMOUNT: i64 = 100;
pub const SPREAD_CHARGE: i64 = 100;
pub const SPREAD_USE: i64 = 50;

type Client = PointServiceClient<MeshChannel>;

/// points-hot: `clients` tasks alternate Charge and Use of [`HOT_AMOUNT`] on one user.
#[derive(Clone, Copy, Debug)]
pub struct Hot {
    pub clients: usize,
    /// Charged before the clock starts, so uses are not refused for a lack of points.
    pub initial_balance: i64,
    /// Send a fresh `idempotency-key` with every call (the service then stores each answer).
    pub idempotency_keys: bool,
}

/// points-spread: `clients` tasks charge [`SPREAD_CHARGE`] to `users` users round-robin.
#[derive(Clone, Copy, Debug)]
pub struct Spread {
    pub clients: usize,
    pub users: u64,
    /// Charged to every user before the clock starts (0: first charges are in the run).
    pub seed_balance: i64,
    /// Every other request uses [`SPREAD_USE`] of the user just charged instead.
    pub uses: bool,
    pub idempotency_keys: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Move {
    Charge,
    Use,
}

fn keyed<T>(message: T, key: Option<&str>) -> Result<Request<T>, Status> {
    let mut request = Request::new(message);
    if let Some(key) = key {
        let value = MetadataValue::try_from(key).map_err(|_| Status::invalid_argument("bad idempotency key"))?;
        request.metadata_mut().insert(KEY_METADATA, value);
    }
    Ok(request)
}

/// An answered movement: whether it was the replay of an earlier call with its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Moved {
    replayed: bool,
}

/// One Charge or Use, with an `idempotency-key` when given.
async fn send(client: &mut Client, op: Move, user_id: i64, amount: i64, key: Option<&str>) -> Result<Moved, Status> {
    let response: Response<pb::Balance> = match op {
        Move::Charge => client.charge(keyed(pb::ChargeRequest { user_id, amount }, key)?).await?,
        Move::Use => client.r#use(keyed(pb::UseRequest { user_id, amount }, key)?).await?,
    };
    Ok(Moved { replayed: response.metadata().get(REPLAYED_METADATA).is_some_and(|v| v == "true") })
}

fn outcome(result: &Result<Moved, Status>) -> Outcome {
    match result {
        // Every key is sent once: a replay means a key was reused and would count twice.
        Ok(Moved { replayed: true }) => Outcome::Error("Replayed".into()),
        Ok(_) => Outcome::Ok,
        Err(status) => classify(status, &[(ErrorCode::InsufficientPoints, "insufficient_points")]),
    }
}

async fn get_balance(client: &mut Client, user_id: i64) -> anyhow::Result<i64> {
    let response = client.get_balance(pb::GetBalanceRequest { user_id }).await.context("GetBalance failed")?;
    Ok(response.into_inner().balance)
}

/// One call per connection before the clock starts (no measured request pays a handshake).
async fn warm_up(pool: &ChannelPool, user_id: i64) -> anyhow::Result<()> {
    let calls = (0..pool.len()).map(|i| async move { get_balance(&mut Client::new(pool.channel(i)), user_id).await });
    futures::future::try_join_all(calls).await.context("warm-up GetBalance failed")?;
    Ok(())
}

/// Per kind of movement: what succeeded, and what failed without a business answer (it
/// may or may not have committed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub charged: i64,
    pub used: i64,
    pub charge_unknown: i64,
    pub use_unknown: i64,
}

#[derive(Debug, Default)]
struct Movements([AtomicU64; 4]);

impl Movements {
    fn record(&self, op: Move, outcome: &Outcome) {
        let slot = match (op, outcome) {
            (_, Outcome::Rejected(_) | Outcome::Pending(_)) => return,
            (Move::Charge, Outcome::Ok) => 0,
            (Move::Use, Outcome::Ok) => 1,
            (Move::Charge, Outcome::Error(_)) => 2,
            (Move::Use, Outcome::Error(_)) => 3,
        };
        self.0[slot].fetch_add(1, Ordering::Relaxed);
    }

    fn counts(&self) -> Counts {
        let get = |i: usize| self.0[i].load(Ordering::Relaxed) as i64;
        Counts { charged: get(0), used: get(1), charge_unknown: get(2), use_unknown: get(3) }
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a.abs() } else { gcd(b, a % b) }
}

/// `initial + charge * charged - debit * used == final`, never negative. A call that failed
/// without a business answer may still have committed, so each such call widens the
/// accepted range by its amount, on its own side, instead of being guessed about.
pub fn balance_invariant(initial: i64, c: Counts, charge: i64, debit: i64, final_balance: i64) -> (bool, String) {
    let expected = initial + charge * c.charged - debit * c.used;
    let detail = format!(
        "initial {initial} + {charge} x {} charged - {debit} x {} used = {expected}, final {final_balance}",
        c.charged, c.used
    );
    if final_balance < 0 {
        return (false, format!("{detail}: negative balance"));
    }
    if final_balance == expected {
        return (true, detail);
    }
    let (lo, hi) = (expected - debit * c.use_unknown, expected + charge * c.charge_unknown);
    if (lo..=hi).contains(&final_balance) && (final_balance - expected) % gcd(charge, debit).max(1) == 0 {
        let failed = c.charge_unknown + c.use_unknown;
        return (true, format!("{detail}: within what {failed} failed calls may have committed"));
    }
    (false, format!("{detail}: mismatch"))
}

/// Charges `amount` to a user in charges of at most [`MAX_CHARGE`]; returns how many.
async fn charge_up_to(client: &mut Client, user_id: i64, amount: i64) -> anyhow::Result<i64> {
    let mut charges = 0;
    while charges * MAX_CHARGE < amount {
        let step = (amount - charges * MAX_CHARGE).min(MAX_CHARGE);
        send(client, Move::Charge, user_id, step, None).await.context("seed Charge failed")?;
        charges += 1;
    }
    Ok(charges)
}

/// One user, `clients` tasks: even `seq` charges [`HOT_AMOUNT`], odd `seq` uses it.
pub async fn hot(target: &Target, cfg: &Hot, limits: Limits) -> anyhow::Result<Report> {
    ensure!((0..=MAX_BALANCE / 2).contains(&cfg.initial_balance), "initial balance must be 0..={}", MAX_BALANCE / 2);
    let pool = ChannelPool::new(&target.url, target.channels, target.request_timeout)?;
    let run_id = kit::testing::unique_prefix();
    let user_id = fresh_users();
    let mut admin = Client::new(pool.channel(0));
    let seed_charges = charge_up_to(&mut admin, user_id, cfg.initial_balance).await?;
    warm_up(&pool, user_id).await?;
    let initial = get_balance(&mut admin, user_id).await?;

    let moves = Arc::new(Movements::default());
    let keys: Option<Arc<str>> = cfg.idempotency_keys.then(|| format!("lg-points-hot-{run_id}").into());
    let (shared, tally) = (pool.clone(), moves.clone());
    let run = run_closed_loop(cfg.clients, limits, move |client, seq| {
        let mut points = Client::new(shared.channel(client));
        let op = if seq % 2 == 0 { Move::Charge } else { Move::Use };
        let key = keys.as_ref().map(|prefix| format!("{prefix}{seq}"));
        let tally = tally.clone();
        async move {
            let outcome = outcome(&send(&mut points, op, user_id, HOT_AMOUNT, key.as_deref()).await);
            tally.record(op, &outcome);
            outcome
        }
    })
    .await;

    let final_balance = get_balance(&mut admin, user_id).await.context("final GetBalance failed")?;
    let c = moves.counts();
    let mut report = Report::new("points-hot", run);
    report.param("target", target.url.as_str()).param("channels", pool.len() as u64);
    report
        .param("initial_balance", initial)
        .param("amount", HOT_AMOUNT)
        .param("idempotency_keys", cfg.idempotency_keys);
    report.extra("user_id", user_id).extra("charges_ok", c.charged).extra("uses_ok", c.used);
    report.extra("final_balance", final_balance);
    let (passed, detail) = balance_invariant(initial, c, HOT_AMOUNT, HOT_AMOUNT, final_balance);
    report.check("balance invariant", passed, detail);
    if let Some(ledger) = &target.ledger {
        let audit = ledger::audit(ledger, user_id, user_id).await?;
        let balanced = audit.consistent() && audit.users <= 1 && audit.total_balance == audit.ledger_net;
        report.check("mysql ledger", balanced, audit.detail());
        report.check("ledger rows", rows_counted(&audit, seed_charges, c), rows_detail(&audit, seed_charges, c));
    }
    Ok(report)
}

/// One CHARGE row per acknowledged charge (seed included), one USE row per acknowledged use;
/// a failed call may have left its row.
fn rows_counted(audit: &Audit, seed_charges: i64, c: Counts) -> bool {
    let charges = seed_charges + c.charged;
    (charges..=charges + c.charge_unknown).contains(&audit.charge_rows)
        && (c.used..=c.used + c.use_unknown).contains(&audit.use_rows)
}

fn rows_detail(audit: &Audit, seed_charges: i64, c: Counts) -> String {
    format!(
        "{} CHARGE rows for {seed_charges} seed + {} acknowledged charges, {} USE rows for {} acknowledged uses",
        audit.charge_rows, c.charged, audit.use_rows, c.used
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_balance_invariant_tolerates_only_ambiguous_calls() {
        let c = Counts { charged: 10, used: 4, ..Counts::default() };
        assert!(balance_invariant(1_000, c, 100, 100, 1_600).0);
        assert!(!balance_invariant(1_000, c, 100, 100, 1_500).0, "an unacknowledged use");
        assert!(!balance_invariant(0, Counts { used: 1, ..c }, 100, 100, -100).0, "negative");
        let unknown = Counts { charge_unknown: 1, use_unknown: 2, ..c };
        assert!(balance_invariant(1_000, unknown, 100, 100, 1_700).0, "the failed charge committed");
        assert!(balance_invariant(1_000, unknown, 100, 100, 1_400).0, "both failed uses committed");
        assert!(!balance_invariant(1_000, unknown, 100, 100, 1_300).0);
        assert!(!balance_invariant(1_000, unknown, 100, 100, 1_650).0, "not a sum of movements");
        assert!(balance_invariant(1_000, unknown, 100, 50, 1_750).0);
    }

    #[test]
    fn movements_are_counted_per_kind_and_rejections_change_nothing() {
        let moves = Movements::default();
        moves.record(Move::Charge, &Outcome::Ok);
        moves.record(Move::Use, &Outcome::Ok);
        moves.record(Move::Use, &Outcome::Rejected("insufficient_points"));
        moves.record(Move::Use, &Outcome::Error("Unavailable".into()));
        assert_eq!(moves.counts(), Counts { charged: 1, used: 1, charge_unknown: 0, use_unknown: 1 });
        let insufficient: Status = kit::ServiceError::new(ErrorCode::InsufficientPoints, "no").into();
        assert_eq!(outcome(&Err(insufficient)), Outcome::Rejected("insufficient_points"));
        assert_eq!(outcome(&Ok(Moved { replayed: true })), Outcome::Error("Replayed".into()));
    }
}
