//! The issue gate on a real 3-master Redis Cluster: the race stays exact, also while the
//! gate's slot moves to another master.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use kit::ErrorCode;
use kit::testing::RedisCluster;

use crate::helpers::{fixed, race, race_at_most, spawn_on_redis};

#[tokio::test]
async fn the_race_is_exact_on_a_redis_cluster() {
    let cluster = RedisCluster::start(3);
    let app = spawn_on_redis(2, &cluster.url).await;
    let coupon = app.create(fixed("Clustered", 1_000, 100)).await;
    let (sequences, errors) = race(&app, coupon.id, 1..=1_000).await;
    assert_eq!(sequences, (1..=100).collect::<Vec<_>>(), "exactly 1..=100, no gap, no repeat");
    assert_eq!(errors.get(&ErrorCode::CouponSoldOut), Some(&900), "{errors:?}");
    assert_eq!(app.issued_in_db(coupon.id).await, (100, 1, 100, 100));

    // The gate is on the cluster: its 100 holders and its sentinel.
    let mut redis = kit::cache::connect(&cluster.url).await.unwrap();
    let members: i64 = redis::cmd("ZCARD").arg(app.gate_key(coupon.id)).query_async(&mut redis).await.unwrap();
    assert_eq!(members, 101);

    // Deleting a prefix (devstack --fresh, test clean-up) reaches every master.
    kit::cache::delete_prefix(&cluster.url, &app.redis_prefix).await.unwrap();
    let left: i64 = redis::cmd("EXISTS").arg(app.gate_key(coupon.id)).query_async(&mut redis).await.unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn the_race_stays_exact_while_the_gates_slot_moves() {
    let cluster = Arc::new(RedisCluster::start(3));
    let app = spawn_on_redis(2, &cluster.url).await;
    let total = 3_000;
    let coupon = app.create(fixed("Resharded", 1_000, total)).await;
    // The gate exists before the move starts (the first issue builds it).
    let (first, _) = race(&app, coupon.id, 1..=1).await;
    assert_eq!(first, [1]);

    // Every slot of the gate's master moves to another master (redis-cli --cluster reshard)
    // while users keep coming.
    let key = app.gate_key(coupon.id);
    let from = cluster.master_of(&key);
    let to = cluster.addresses().into_iter().find(|a| *a != from).unwrap();
    let moving = Arc::new(AtomicBool::new(true));
    let reshard = {
        let (cluster, moving, from, to) = (cluster.clone(), moving.clone(), from.clone(), to.clone());
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            cluster.move_all_slots(&from, &to);
            moving.store(false, Ordering::SeqCst);
            started.elapsed()
        })
    };
    let master = || {
        let (cluster, key) = (cluster.clone(), key.clone());
        async move { tokio::task::spawn_blocking(move || cluster.master_of(&key)).await.unwrap() }
    };
    // While the slots move, each wave is a few newcomers and the last wave's users again
    // (holders, refused by the gate's script without taking a copy), so the gate keeps
    // working through the whole move; afterwards, newcomers until the coupon is sold out.
    let (mut sequences, mut errors) = (first, HashMap::<ErrorCode, usize>::new());
    let (mut won_on_old, mut won_on_new, mut repeats) = (0, 0, 0);
    let (mut next_user, mut last_wave) = (2, 1..2);
    while moving.load(Ordering::SeqCst) || sequences.len() < total as usize {
        let newcomers = if moving.load(Ordering::SeqCst) { 4 } else { 256 };
        let fresh = next_user..next_user + newcomers;
        next_user += newcomers;
        repeats += last_wave.clone().count();
        let before = master().await;
        let (won, failed) = race_at_most(16, &app, coupon.id, fresh.clone().chain(last_wave)).await;
        let after = master().await;
        match (before == from, after == to) {
            (true, false) => won_on_old += won.len(),
            (false, true) => won_on_new += won.len(),
            _ => {}
        }
        sequences.extend(won);
        for (code, n) in failed {
            *errors.entry(code).or_default() += n;
        }
        last_wave = fresh;
        assert!(next_user < 60_000, "the race never ended: {} issued, {errors:?}", sequences.len());
    }
    let took = reshard.await.unwrap();
    sequences.sort_unstable();
    assert_eq!(master().await, to, "the gate's slot moved");
    cluster.wait_until_ok();
    assert!(won_on_old > 0 && won_on_new > 0, "issued before ({won_on_old}) and after ({won_on_new}) the slot moved");
    assert_eq!(sequences, (1..=total).collect::<Vec<_>>(), "exactly 1..={total}, no gap, no repeat");
    assert_eq!(errors.get(&ErrorCode::CouponAlreadyIssued), Some(&repeats), "every holder refused: {errors:?}");
    let unexpected: Vec<_> =
        errors.keys().filter(|c| !matches!(c, ErrorCode::CouponSoldOut | ErrorCode::CouponAlreadyIssued)).collect();
    assert!(unexpected.is_empty(), "no other refusal: {errors:?}");
    assert_eq!(app.issued_in_db(coupon.id).await, (total, 1, total, total));
    eprintln!("reshard took {took:?}; issued {won_on_old} on the old master, {won_on_new} on the new one");
}
