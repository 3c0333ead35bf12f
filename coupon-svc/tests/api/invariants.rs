//! The invariant watcher over a real schema and Redis: a healthy race keeps every gauge at
//! 0; holders written behind the gate, or a gate that forgot its holders, are reported.

use std::time::Duration;

use sea_orm::ConnectionTrait;

use crate::helpers::{TestApp, fixed, spawn_checking_every};

async fn spawn_app() -> TestApp {
    spawn_checking_every(1, &kit::testing::redis_url(), 1).await
}

const WITHIN: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_healthy_race_keeps_every_invariant_at_zero_and_corruption_is_reported() {
    let app = spawn_app().await;
    let coupon = app.create(fixed("watched", 100, 3)).await;
    for user in 1..=5 {
        let _ = app.issue(coupon.id, user).await;
    }
    let findings = &app.invariants[0];
    kit::testing::assert_every_invariant_holds(findings, 4).await;

    // A holder removed behind the service: the counter and the numbering no longer agree
    // with the rows, and the gate now admits more than MySQL holds (normal in flight, so
    // not reported). Then the gate forgets everyone but its sentinel: reported.
    let db = app.db().await;
    db.execute_unprepared(&format!("DELETE FROM user_coupon WHERE coupon_id = {} AND sequence = 2", coupon.id))
        .await
        .unwrap();
    let found = || {
        findings.of("over_issued").is_some_and(|(n, _)| n == 1)
            && findings.of("sequence_gap").is_some_and(|(n, _)| n == 1)
    };
    assert!(kit::testing::eventually(WITHIN, found).await, "{:?}", findings.counts());
    assert_eq!(
        findings.of("over_issued").unwrap().1,
        vec![format!("coupon {} has 2 holders for 3 copies (issued counter 3)", coupon.id)]
    );
    assert_eq!(
        findings.of("sequence_gap").unwrap().1,
        vec![format!("coupon {} has 2 holders numbered 1..=3, expected 1..=2", coupon.id)]
    );
    assert_eq!(findings.of("gate_drift").map(|(n, _)| n), Some(0));

    let mut redis =
        redis::Client::open(kit::testing::redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let key = format!("{}coupon:gate:{{{}}}", app.redis_prefix, coupon.id);
    let _: i64 = redis::cmd("ZREMRANGEBYSCORE").arg(&key).arg("(1").arg("+inf").query_async(&mut redis).await.unwrap();
    let _: i64 = redis::cmd("ZREM").arg(&key).arg(1).arg(2).arg(3).query_async(&mut redis).await.unwrap();
    let drifted = || findings.of("gate_drift").is_some_and(|(n, _)| n == 1);
    assert!(kit::testing::eventually(WITHIN, drifted).await, "{:?}", findings.counts());
    assert_eq!(findings.of("duplicate_holder").map(|(n, _)| n), Some(0));
}
