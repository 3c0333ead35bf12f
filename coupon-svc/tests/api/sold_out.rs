//! A coupon MySQL holds every copy of is answered from memory: Redis may be gone, and the
//! answers stay what the gate would say (holders ALREADY_ISSUED, everyone else SOLD_OUT).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use coupon_svc::service::Coupons;
use coupon_svc::sold_out::{CHECK_EVERY, SoldOutView};
use kit::ErrorCode;

use kit::testing::RedisNode;

use crate::helpers::{TestApp, code, fixed, spawn_app, spawn_on_redis};

/// Winners' (user, sequence) and the error counts of one issue per user, all at once, via
/// one replica.
async fn race(
    app: &TestApp,
    replica: usize,
    coupon_id: i64,
    users: impl Iterator<Item = i64>,
) -> (Vec<(i64, i64)>, HashMap<ErrorCode, usize>) {
    let calls = users.map(|user| async move { (user, app.issue_via(replica, coupon_id, user).await) });
    let mut winners = Vec::new();
    let mut errors = HashMap::new();
    for (user, result) in futures::future::join_all(calls).await {
        match result {
            Ok(issued) => winners.push((user, issued.sequence)),
            Err(status) => *errors.entry(code(&status)).or_default() += 1,
        }
    }
    winners.sort_unstable_by_key(|&(_, sequence)| sequence);
    (winners, errors)
}

async fn eventually(what: &str, coupons: &Coupons, coupon_id: i64, done: impl Fn(SoldOutView) -> bool) {
    let started = Instant::now();
    while !done(coupons.sold_out_view(coupon_id)) {
        assert!(started.elapsed() < Duration::from_secs(10), "{what}: {:?}", coupons.sold_out_view(coupon_id));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `coupon_issues_total{outcome}` so far in this process (one test per process under nextest;
/// under `cargo test` other tests add to it, hence the `>=` below).
fn issues_counted(outcome: &str) -> u64 {
    let wanted = format!("coupon_issues_total{{outcome=\"{outcome}\"}} ");
    kit::telemetry::prometheus()
        .render()
        .lines()
        .find_map(|line| line.strip_prefix(&wanted).and_then(|v| v.trim().parse::<f64>().ok()))
        .map_or(0, |v| v as u64)
}

/// Every holder and as many newcomers ask again, all at once; returns the answers' codes.
async fn ask_again(app: &TestApp, replica: usize, coupon_id: i64, holders: &[i64]) -> HashMap<ErrorCode, usize> {
    let newcomers = (0..holders.len() as i64).map(|i| 1_000_000 + i);
    let (winners, errors) = race(app, replica, coupon_id, holders.iter().copied().chain(newcomers)).await;
    assert!(winners.is_empty(), "nobody is issued after the sell-out: {winners:?}");
    errors
}

#[tokio::test]
async fn a_coupon_sold_out_for_good_is_answered_without_redis() {
    let mut redis = RedisNode::start();
    let app = spawn_on_redis(1, &redis.url).await;
    let coupon = app.create(fixed("Gone", 1_000, 50)).await;
    let spare = app.create(fixed("Spare", 1_000, 50)).await;
    let (winners, errors) = race(&app, 0, coupon.id, 1..=300).await;
    assert_eq!(winners.iter().map(|w| w.1).collect::<Vec<_>>(), (1..=50).collect::<Vec<_>>());
    assert_eq!(errors.get(&ErrorCode::CouponSoldOut), Some(&250));
    assert!(app.coupons[0].sold_out_view(coupon.id).for_good, "the batch that took the last copy says so");
    eventually("holders loaded", &app.coupons[0], coupon.id, |v| v.holders_in_memory).await;

    redis.stop();
    let refused = app.issue(spare.id, 1).await.unwrap_err();
    assert_eq!(code(&refused), ErrorCode::Unavailable, "Redis really is gone: {refused:?}");
    let (sold_out_before, already_before) = (issues_counted("sold_out"), issues_counted("already_issued"));
    let holders: Vec<i64> = winners.iter().map(|w| w.0).collect();
    let errors = ask_again(&app, 0, coupon.id, &holders).await;
    assert_eq!(errors.get(&ErrorCode::CouponAlreadyIssued), Some(&50), "{errors:?}");
    assert_eq!(errors.get(&ErrorCode::CouponSoldOut), Some(&50), "{errors:?}");
    assert!(issues_counted("sold_out") >= sold_out_before + 50, "answers from memory are counted");
    assert!(issues_counted("already_issued") >= already_before + 50);
    assert_eq!(app.issued_in_db(coupon.id).await, (50, 1, 50, 50));
}

#[tokio::test]
async fn a_replica_that_never_wrote_learns_it_from_mysql_and_probes_the_index() {
    let mut redis = RedisNode::start();
    let app = spawn_on_redis(2, &redis.url).await;
    // Replica 1 keeps no holders in memory: every holder question is one index probe.
    app.coupons[1].set_holders_in_memory_max(0);
    let coupon = app.create(fixed("Elsewhere", 1_000, 20)).await;
    let (winners, _) = race(&app, 0, coupon.id, 1..=40).await;
    assert_eq!(winners.len(), 20);
    assert!(!app.coupons[1].sold_out_view(coupon.id).for_good, "replica 1 wrote nothing");

    let started = Instant::now();
    let (none, errors) = race(&app, 1, coupon.id, 100..=149).await;
    let burst = started.elapsed();
    assert!(none.is_empty());
    assert_eq!(errors.get(&ErrorCode::CouponSoldOut), Some(&50));
    eventually("replica 1 learns it", &app.coupons[1], coupon.id, |v| v.for_good).await;
    let view = app.coupons[1].sold_out_view(coupon.id);
    let most = 1 + (burst.as_millis() / CHECK_EVERY.as_millis()) as u64;
    assert!((1..=most).contains(&view.mysql_checks), "50 sold-out answers, {} checks in {burst:?}", view.mysql_checks);
    assert!(!view.holders_in_memory);

    redis.stop();
    let holders: Vec<i64> = winners.iter().map(|w| w.0).collect();
    let errors = ask_again(&app, 1, coupon.id, &holders).await;
    assert_eq!(errors.get(&ErrorCode::CouponAlreadyIssued), Some(&20), "{errors:?}");
    assert_eq!(errors.get(&ErrorCode::CouponSoldOut), Some(&20), "{errors:?}");
    assert_eq!(app.issued_in_db(coupon.id).await, (20, 1, 20, 20));
}

#[tokio::test]
async fn a_gate_sold_out_that_mysql_does_not_hold_is_not_final() {
    let app = spawn_app().await;
    let coupon = app.create(fixed("Phantom", 100, 2)).await;
    app.issue(coupon.id, 1).await.unwrap();
    // An admission whose write never happened (its replica died) holds the last copy.
    app.plant_stale_admission(coupon.id, 2).await;

    // Sold-out answers for a while: long enough for MySQL to be asked more than once.
    let started = Instant::now();
    let mut answers = 0;
    while started.elapsed() < CHECK_EVERY * 4 || app.coupons[0].sold_out_view(coupon.id).mysql_checks < 2 {
        assert!(started.elapsed() < Duration::from_secs(10), "MySQL was never asked again");
        assert_eq!(code(&app.issue(coupon.id, 3).await.unwrap_err()), ErrorCode::CouponSoldOut);
        answers += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    // Let the last look at MySQL finish: it must not make the coupon final either.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let view = app.coupons[0].sold_out_view(coupon.id);
    assert!(!view.for_good, "MySQL holds 1 of 2: {view:?}");
    let most = 1 + (elapsed.as_millis() / CHECK_EVERY.as_millis()) as u64;
    assert!((2..=most).contains(&view.mysql_checks), "{answers} answers, {} checks in {elapsed:?}", view.mysql_checks);

    assert_eq!(app.coupons[0].reconcile().await.unwrap(), 1);
    assert_eq!(app.issue(coupon.id, 3).await.expect("the copy came back").sequence, 2);
    assert!(app.coupons[0].sold_out_view(coupon.id).for_good, "now MySQL holds both");
    assert_eq!(code(&app.issue(coupon.id, 4).await.unwrap_err()), ErrorCode::CouponSoldOut);
    assert_eq!(code(&app.issue(coupon.id, 1).await.unwrap_err()), ErrorCode::CouponAlreadyIssued);
    assert_eq!(app.issued_in_db(coupon.id).await, (2, 1, 2, 2));
}
