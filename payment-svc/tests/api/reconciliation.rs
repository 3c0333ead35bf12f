//! Reconciliation over a real mesh: a healthy mixed workload (completed with a coupon,
//! failed, cancelled) reports nothing; a reservation released behind the saga's back for a
//! COMPLETED order, and a coupon marked used for a CANCELLED one, are reported by kind.

use std::time::Duration;

use mesh_proto::payment::v1 as pb;
use sea_orm::{ConnectionTrait, Database};

use crate::helpers::{PaymentTuning, TestMesh, line, spawn_mesh_with, status_of};

async fn spawn_mesh() -> TestMesh {
    spawn_mesh_with(PaymentTuning { fast_checks: true, ..PaymentTuning::default() }).await
}

const WITHIN: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_healthy_workload_reconciles_and_effects_changed_behind_the_saga_are_reported() {
    let mesh = spawn_mesh().await;
    let product = mesh.product(1_000, 2).await;
    mesh.charge(51, 10_000).await;
    let coupon = mesh.coupon_for(51, 300).await;
    let kept = mesh.place("rec-1", 51, vec![line(product, 1)], Some(coupon)).await.unwrap().into_inner();
    assert_eq!(status_of(&kept), pb::OrderStatus::Completed);
    let second_coupon = mesh.coupon_for(51, 200).await;
    let cancelled = mesh.place("rec-2", 51, vec![line(product, 1)], Some(second_coupon)).await.unwrap().into_inner();
    let failed = mesh.place("rec-3", 51, vec![line(product, 1)], None).await.unwrap().into_inner();
    assert_eq!(status_of(&failed), pb::OrderStatus::Failed);
    let cancel = pb::ChangeOrderStatusRequest {
        order_id: cancelled.order_id.clone(),
        status: pb::OrderStatus::Cancelled as i32,
        expected_version: None,
    };
    mesh.payment().change_order_status(cancel).await.unwrap();

    let reconciled = &mesh.payment_reconciliation[0];
    let passes = reconciled.passes();
    assert!(kit::testing::eventually(WITHIN, || reconciled.passes() >= passes + 2).await, "reconciliation runs");
    assert_eq!(reconciled.all(), vec![], "a healthy workload has nothing to report");

    let server = kit::testing::mysql_url();
    let inventory = Database::connect(format!("{server}/{}inventory", mesh.prefix)).await.unwrap();
    inventory
        .execute_unprepared(&format!("UPDATE reservation SET released_at = NOW(3) WHERE saga_id = '{}'", kept.order_id))
        .await
        .unwrap();
    let coupons = Database::connect(format!("{server}/{}coupon", mesh.prefix)).await.unwrap();
    coupons
        .execute_unprepared(&format!(
            "UPDATE user_coupon SET status = 'USED', used_at = NOW(3), order_id = '{}' WHERE id = {second_coupon}",
            cancelled.order_id
        ))
        .await
        .unwrap();
    let mut expected =
        vec![(kept.order_id.clone(), "reservation_missing"), (cancelled.order_id.clone(), "coupon_use_orphaned")];
    expected.sort();
    let found = || {
        let mut all = reconciled.all();
        all.sort();
        all == expected
    };
    assert!(kit::testing::eventually(WITHIN, found).await, "{:?}", reconciled.all());
}
