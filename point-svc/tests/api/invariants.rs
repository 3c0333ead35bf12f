//! The invariant watcher over a real schema: a healthy workload keeps every gauge at 0, and
//! a balance changed behind the ledger's back is reported within one check period.

use std::time::Duration;

use kit::saga::Op;
use mesh_proto::point::v1 as pb;
use sea_orm::{ConnectionTrait, TransactionTrait};

use crate::helpers::{TestApp, saga, spawn_app_checking_every};

async fn spawn_app() -> TestApp {
    spawn_app_checking_every(1).await
}

const WITHIN: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_healthy_workload_keeps_every_invariant_at_zero() {
    let app = spawn_app().await;
    app.charge(1, 10_000).await.unwrap();
    app.use_points(1, 1_500).await.unwrap();
    let pay =
        pb::PayRequest { saga: saga("ok-1", Op::Action), user_id: 1, order_id: "order-ok-1".into(), amount: 2_000 };
    app.client.clone().pay(pay).await.unwrap();
    let refund = pb::RefundRequest { saga: saga("ok-1", Op::Compensate), user_id: 1, order_id: "order-ok-1".into() };
    app.client.clone().refund(refund).await.unwrap();
    kit::testing::assert_every_invariant_holds(&app.invariants, 2).await;
}

#[tokio::test]
async fn a_balance_changed_behind_the_ledger_is_reported_and_so_is_a_negative_one() {
    let app = spawn_app().await;
    app.charge(7, 1_000).await.unwrap();
    app.charge(8, 1_000).await.unwrap();
    let db = app.db().await;
    db.execute_unprepared("UPDATE point_balance SET balance = balance + 50 WHERE user_id = 7").await.unwrap();
    let txn = db.begin().await.unwrap();
    txn.execute_unprepared("SET SESSION check_constraint_checks = 0").await.unwrap();
    txn.execute_unprepared("UPDATE point_balance SET balance = -3 WHERE user_id = 8").await.unwrap();
    txn.commit().await.unwrap();
    let found = || {
        app.invariants.of("ledger_balance_mismatch").is_some_and(|(n, _)| n == 2)
            && app.invariants.of("negative_balance").is_some_and(|(n, _)| n == 1)
    };
    assert!(kit::testing::eventually(WITHIN, found).await, "{:?}", app.invariants.counts());
    let (_, mismatches) = app.invariants.of("ledger_balance_mismatch").unwrap();
    assert_eq!(mismatches[0], "user 7 has balance 1050 but the ledger sums to 1000");
    let (_, negative) = app.invariants.of("negative_balance").unwrap();
    assert_eq!(negative, vec!["user 8 has balance -3, expected >= 0".to_owned()]);
}
