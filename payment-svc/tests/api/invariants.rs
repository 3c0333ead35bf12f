//! The invariant watcher over a real mesh: a healthy mixed workload (completed, failed and
//! cancelled orders) keeps every gauge at 0; a payment row removed behind the saga's back and
//! a saga left unsettled past its budget are reported within one check period, by order id.

use std::time::Duration;

use mesh_proto::payment::v1 as pb;
use sea_orm::{ConnectionTrait, Database};

use crate::helpers::{PaymentTuning, TestMesh, line, spawn_mesh_with, status_of};

async fn spawn_mesh() -> TestMesh {
    spawn_mesh_with(PaymentTuning { fast_checks: true, ..PaymentTuning::default() }).await
}

const WITHIN: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_healthy_mixed_workload_keeps_every_invariant_at_zero_and_corruption_is_reported() {
    let mesh = spawn_mesh().await;
    let product = mesh.product(1_000, 2).await;
    mesh.charge(41, 10_000).await;
    let kept = mesh.place("inv-1", 41, vec![line(product, 1)], None).await.unwrap().into_inner();
    let cancelled = mesh.place("inv-2", 41, vec![line(product, 1)], None).await.unwrap().into_inner();
    let sold_out = mesh.place("inv-3", 41, vec![line(product, 1)], None).await.unwrap().into_inner();
    assert_eq!(status_of(&sold_out), pb::OrderStatus::Failed);
    let cancel = pb::ChangeOrderStatusRequest {
        order_id: cancelled.order_id.clone(),
        status: pb::OrderStatus::Cancelled as i32,
        expected_version: None,
    };
    mesh.payment().change_order_status(cancel).await.unwrap();
    let findings = &mesh.payment_invariants[0];
    kit::testing::assert_every_invariant_holds(findings, 2).await;

    let db = Database::connect(format!("{}/{}payment", kit::testing::mysql_url(), mesh.prefix)).await.unwrap();
    db.execute_unprepared(&format!("DELETE FROM payment WHERE order_id = '{}'", kept.order_id)).await.unwrap();
    // The cancelled order's saga back to FORWARD a day ago, its lease far ahead so that no
    // recovery takes it: a saga nobody will finish.
    db.execute_unprepared(&format!(
        "UPDATE saga SET phase = 'FORWARD', created_at = NOW(3) - INTERVAL 1 DAY, lease_until = NOW(3) + INTERVAL 1 DAY \
         WHERE id = '{}'",
        cancelled.order_id
    ))
    .await
    .unwrap();
    let found = || {
        findings.of("paid_amount_mismatch").is_some_and(|(n, _)| n == 1)
            && findings.of("stuck_saga").is_some_and(|(n, _)| n == 1)
    };
    assert!(kit::testing::eventually(WITHIN, found).await, "{:?}", findings.counts());
    let (_, mismatch) = findings.of("paid_amount_mismatch").unwrap();
    assert_eq!(mismatch, vec![format!("order {} is COMPLETED with paid 1000 but has no payment row", kept.order_id)]);
    let (_, stuck) = findings.of("stuck_saga").unwrap();
    assert!(stuck[0].starts_with(&format!("saga {} is still FORWARD since", cancelled.order_id)), "{stuck:?}");
}
