//! points-spread: many users' balances side by side, so rows do not contend and the
//! figure is what point-svc itself costs per movement.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use futures::StreamExt;

use super::{
    Client, MAX_CHARGE, Move, Movements, SPREAD_CHARGE, SPREAD_USE, Spread, balance_invariant, get_balance, ledger,
    outcome, rows_counted, rows_detail, send, warm_up,
};
use crate::driver::{Limits, run_closed_loop};
use crate::report::Report;
use crate::scenarios::{ChannelPool, Target, fresh_users};

/// How often a seed charge is sent before the setup gives up.
const SEED_ATTEMPTS: u64 = 10;

/// Seed charges in flight at once. A user's first charge inserts its balance row, and under
/// REPEATABLE READ the conditional UPDATE before it gap-locks the primary key, so concurrent
/// first charges of neighbouring new users deadlock: on the 2-core box 4 at a time run
/// clean (~700/s), 8 already retry, 64 collapse to a few per second. The seed is setup, so
/// it runs at 4; `--seed-balance 0` leaves first charges in the measured run instead.
const SEED_CONCURRENCY: usize = 4;

/// Charges the seed balance to every user, [`SEED_CONCURRENCY`] at a time. Each charge
/// carries an idempotency key, so a failed one is sent again without charging twice.
/// Returns the retries.
async fn seed_users(pool: &ChannelPool, first: i64, cfg: &Spread, run_id: &str) -> anyhow::Result<u64> {
    let retries = AtomicU64::new(0);
    let charges = futures::stream::iter(0..cfg.users)
        .map(|i| {
            let (mut client, key, retries) =
                (Client::new(pool.channel(i as usize)), format!("lg-seed-{run_id}{i}"), &retries);
            let user_id = first + i as i64;
            async move {
                let mut attempt = 0;
                loop {
                    match send(&mut client, Move::Charge, user_id, cfg.seed_balance, Some(&key)).await {
                        // A deadlock point-svc's own 3 tries did not get past, most likely.
                        Err(_) if attempt < SEED_ATTEMPTS => {
                            attempt += 1;
                            retries.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(20 * attempt + (user_id as u64 % 20))).await;
                        }
                        done => break done.with_context(|| format!("seed Charge of user {user_id} failed")),
                    }
                }
            }
        })
        .buffer_unordered(SEED_CONCURRENCY);
    charges.collect::<Vec<_>>().await.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    Ok(retries.into_inner())
}

/// Reads every user's balance through the API and adds them up.
async fn total_balance(pool: &ChannelPool, first: i64, users: u64, clients: usize) -> anyhow::Result<i64> {
    let reads = futures::stream::iter(0..users)
        .map(|i| {
            let mut client = Client::new(pool.channel(i as usize));
            async move { get_balance(&mut client, first + i as i64).await }
        })
        .buffer_unordered(clients.max(1));
    reads.collect::<Vec<_>>().await.into_iter().sum()
}

/// `users` users, `clients` tasks: request `seq` goes to user `seq % users` (with uses,
/// the pair `2k, 2k + 1` charges user `k % users`, then uses some of it).
pub async fn spread(target: &Target, cfg: &Spread, limits: Limits) -> anyhow::Result<Report> {
    ensure!((1..=1_000_000).contains(&cfg.users), "users must be 1..=1000000");
    ensure!((0..=MAX_CHARGE).contains(&cfg.seed_balance), "seed balance must be 0..={MAX_CHARGE}");
    let pool = ChannelPool::new(&target.url, target.channels, target.request_timeout)?;
    let run_id = kit::testing::unique_prefix();
    let first = fresh_users();
    let last = first + cfg.users as i64 - 1;
    let seeding = Instant::now();
    let seed_retries = if cfg.seed_balance > 0 { seed_users(&pool, first, cfg, &run_id).await? } else { 0 };
    let seed_secs = seeding.elapsed().as_secs_f64();
    warm_up(&pool, first).await?;

    let moves = Arc::new(Movements::default());
    let keys: Option<Arc<str>> = cfg.idempotency_keys.then(|| format!("lg-points-spread-{run_id}").into());
    let (shared, tally, users, uses) = (pool.clone(), moves.clone(), cfg.users, cfg.uses);
    let run = run_closed_loop(cfg.clients, limits, move |client, seq| {
        let mut points = Client::new(shared.channel(client));
        let (lap, op) = match (uses, seq % 2) {
            (true, 1) => (seq / 2, Move::Use),
            (true, _) => (seq / 2, Move::Charge),
            (false, _) => (seq, Move::Charge),
        };
        let user_id = first + (lap % users) as i64;
        let amount = if op == Move::Charge { SPREAD_CHARGE } else { SPREAD_USE };
        let key = keys.as_ref().map(|prefix| format!("{prefix}{seq}"));
        let tally = tally.clone();
        async move {
            let outcome = outcome(&send(&mut points, op, user_id, amount, key.as_deref()).await);
            tally.record(op, &outcome);
            outcome
        }
    })
    .await;

    let c = moves.counts();
    let seeded = cfg.seed_balance * cfg.users as i64;
    let total = total_balance(&pool, first, cfg.users, cfg.clients).await.context("final balances")?;
    let mut report = Report::new("points-spread", run);
    report.param("target", target.url.as_str()).param("channels", pool.len() as u64).param("users", cfg.users);
    report.param("seed_balance", cfg.seed_balance).param("uses", cfg.uses);
    report.param("idempotency_keys", cfg.idempotency_keys);
    report.extra("user_ids", format!("{first}..={last}"));
    if cfg.seed_balance > 0 {
        let rate = cfg.users as f64 / seed_secs.max(1e-9);
        let seed = format!(
            "{} first charges, {SEED_CONCURRENCY} at a time, in {seed_secs:.2} s ({rate:.0}/s), {seed_retries} retried",
            cfg.users
        );
        report.extra("seed", seed);
    }
    report.extra("charges_ok", c.charged).extra("uses_ok", c.used).extra("total_balance", total);
    let (passed, detail) = balance_invariant(seeded, c, SPREAD_CHARGE, SPREAD_USE, total);
    report.check("balance total", passed, detail);
    if let Some(ledger) = &target.ledger {
        let audit = ledger::audit(ledger, first, last).await?;
        let balanced = audit.consistent() && audit.total_balance == audit.ledger_net;
        report.check("mysql ledger", balanced, audit.detail());
        let seed_charges = if cfg.seed_balance > 0 { cfg.users as i64 } else { 0 };
        report.check("ledger rows", rows_counted(&audit, seed_charges, c), rows_detail(&audit, seed_charges, c));
    }
    Ok(report)
}
