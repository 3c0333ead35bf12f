use kit::ErrorCode;
use mesh_proto::coupon::v1::UserCouponStatus;
use mesh_proto::payment::v1 as pb;

use crate::helpers::{code, keyed, line, spawn_mesh, status_of};

fn cancel(order_id: &str, expected_version: Option<i64>) -> pb::ChangeOrderStatusRequest {
    pb::ChangeOrderStatusRequest {
        order_id: order_id.into(),
        status: pb::OrderStatus::Cancelled as i32,
        expected_version,
    }
}

#[tokio::test]
async fn cancel_refunds_restocks_and_restores_the_coupon_once() {
    let mesh = spawn_mesh().await;
    let product = mesh.product(2_000, 5).await;
    mesh.charge(31, 10_000).await;
    let coupon = mesh.coupon_for(31, 1_000).await;
    let order = mesh.place("c1", 31, vec![line(product, 2)], Some(coupon)).await.unwrap().into_inner();
    assert_eq!(status_of(&order), pb::OrderStatus::Completed);
    assert_eq!((mesh.stock(product).await, mesh.balance(31).await), (3, 7_000));

    // A stale version is refused and changes nothing.
    let err = mesh.payment().change_order_status(cancel(&order.order_id, Some(99))).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::VersionMismatch);
    assert_eq!(mesh.stock(product).await, 3);

    let cancelled =
        mesh.payment().change_order_status(cancel(&order.order_id, Some(order.version))).await.unwrap().into_inner();
    assert_eq!(status_of(&cancelled), pb::OrderStatus::Cancelled, "{cancelled:?}");
    assert!(cancelled.version > order.version);
    assert_eq!(mesh.stock(product).await, 5);
    assert_eq!(mesh.balance(31).await, 10_000);
    assert_eq!(mesh.coupon_status(31, coupon).await, UserCouponStatus::Available as i32);
    let stored = mesh.order(&order.order_id).await;
    let statuses: Vec<(String, i32)> = stored.steps.iter().map(|s| (s.name.clone(), s.status)).collect();
    for (name, status) in &statuses[..4] {
        assert_eq!(*status, pb::StepStatus::Compensated as i32, "{name}: {statuses:?}");
    }

    // Twice is a no-op (also under a key, replayed the second time).
    let again = mesh.payment().change_order_status(cancel(&order.order_id, None)).await.unwrap().into_inner();
    assert_eq!(status_of(&again), pb::OrderStatus::Cancelled);
    assert_eq!(again.version, cancelled.version);
    let keyed_once = mesh.payment().change_order_status(keyed(cancel(&order.order_id, None), "ck")).await.unwrap();
    let keyed_twice = mesh.payment().change_order_status(keyed(cancel(&order.order_id, None), "ck")).await.unwrap();
    assert!(keyed_once.metadata().get("idempotent-replayed").is_none());
    assert!(keyed_twice.metadata().get("idempotent-replayed").is_some());
    assert_eq!(mesh.stock(product).await, 5);
    assert_eq!(mesh.balance(31).await, 10_000);

    // A cancelled order cannot complete again.
    let back = pb::ChangeOrderStatusRequest {
        order_id: order.order_id.clone(),
        status: pb::OrderStatus::Completed as i32,
        expected_version: None,
    };
    let err = mesh.payment().change_order_status(back).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::InvalidStateTransition);
}

#[tokio::test]
async fn a_failed_order_cannot_be_cancelled() {
    let mesh = spawn_mesh().await;
    let product = mesh.product(2_000, 1).await;
    let order = mesh.place("poor", 32, vec![line(product, 1)], None).await.unwrap().into_inner();
    assert_eq!(status_of(&order), pb::OrderStatus::Failed);
    let err = mesh.payment().change_order_status(cancel(&order.order_id, None)).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::InvalidStateTransition);
    let err =
        mesh.payment().change_order_status(cancel("00000000-0000-0000-0000-000000000001", None)).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::NotFound);
}
