use futures::future::join_all;
use kit::ErrorCode;
use mesh_proto::coupon::v1::UserCouponStatus;
use mesh_proto::payment::v1 as pb;

use crate::helpers::{code, line, spawn_mesh, status_of};

fn step_statuses(order: &pb::Order) -> Vec<(String, pb::StepStatus)> {
    order.steps.iter().map(|s| (s.name.clone(), pb::StepStatus::try_from(s.status).unwrap())).collect()
}

#[tokio::test]
async fn a_checkout_runs_every_step_and_is_traceable() {
    let mesh = spawn_mesh().await;
    let product = mesh.product(1_000, 10).await;
    mesh.charge(7, 10_000).await;
    let coupon = mesh.coupon_for(7, 500).await;

    let order = mesh.place("k1", 7, vec![line(product, 2)], Some(coupon)).await.unwrap().into_inner();
    assert_eq!(status_of(&order), pb::OrderStatus::Completed, "{order:?}");
    assert_eq!((order.total_amount, order.discount_amount, order.paid_amount), (2_000, 500, 1_500));
    assert_eq!(order.items[0].unit_price, 1_000);
    assert_eq!(order.items[0].amount, 2_000);
    assert_eq!(order.version, 1);

    assert_eq!(mesh.stock(product).await, 8);
    assert_eq!(mesh.balance(7).await, 8_500);
    assert_eq!(mesh.coupon_status(7, coupon).await, UserCouponStatus::Used as i32);
    assert_eq!(mesh.platform_received().await.0, 1);

    // Audit: the stored order shows every step, the ledger names the order.
    let stored = mesh.order(&order.order_id).await;
    let names: Vec<String> = stored.steps.iter().map(|s| s.name.clone()).collect();
    assert_eq!(names, ["RESERVE_STOCK", "USE_COUPON", "PAY_POINTS", "RECORD_PAYMENT", "TRANSMIT_DATA"]);
    assert!(step_statuses(&stored).iter().all(|(_, s)| *s == pb::StepStatus::Done), "{stored:?}");
    let ledger = mesh.ledger(7).await;
    let payment = ledger.iter().find(|e| e.order_id.as_deref() == Some(order.order_id.as_str())).unwrap();
    assert_eq!(payment.amount, 1_500);

    let listed = mesh
        .payment()
        .list_user_orders(pb::ListUserOrdersRequest { user_id: 7, limit: 0 })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].order_id, order.order_id);
}

#[tokio::test]
async fn a_coupon_covering_everything_pays_zero_points() {
    let mesh = spawn_mesh().await;
    let product = mesh.product(300, 5).await;
    let coupon = mesh.coupon_for(8, 1_000).await;
    let order = mesh.place("free", 8, vec![line(product, 1)], Some(coupon)).await.unwrap().into_inner();
    assert_eq!(status_of(&order), pb::OrderStatus::Completed, "{order:?}");
    assert_eq!((order.total_amount, order.discount_amount, order.paid_amount), (300, 300, 0));
    assert_eq!(mesh.balance(8).await, 0);
}

#[tokio::test]
async fn a_hundred_and_one_buyers_of_a_hundred_units() {
    let mesh = spawn_mesh().await;
    let product = mesh.product(100, 100).await;
    join_all((1..=101).map(|user| mesh.charge(user, 1_000))).await;

    let results = join_all((1..=101).map(|user| {
        let mesh = &mesh;
        async move { mesh.place(&format!("buy-{user}"), user, vec![line(product, 1)], None).await }
    }))
    .await;
    let orders: Vec<pb::Order> =
        results.into_iter().map(|r| r.expect("an answer, not an error").into_inner()).collect();
    let completed = orders.iter().filter(|o| status_of(o) == pb::OrderStatus::Completed).count();
    let failed: Vec<&pb::Order> = orders.iter().filter(|o| status_of(o) == pb::OrderStatus::Failed).collect();
    assert_eq!(completed, 100);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].failure_code.as_deref(), Some("OUT_OF_STOCK"));
    assert_eq!(failed[0].failure_product_id, Some(product));
    assert_eq!(mesh.stock(product).await, 0);

    let balances = join_all((1..=101).map(|user| mesh.balance(user))).await;
    assert_eq!(balances.iter().filter(|b| **b == 900).count(), 100);
    assert_eq!(balances.iter().filter(|b| **b == 1_000).count(), 1);
    let loser = mesh.order(&failed[0].order_id).await;
    assert_eq!(status_of(&loser), pb::OrderStatus::Failed);
}

/// Stock, coupon and points of user 9 and the product, as a tuple to compare.
async fn snapshot(mesh: &crate::helpers::TestMesh, product: i64, coupon: i64) -> (i64, i32, i64) {
    (mesh.stock(product).await, mesh.coupon_status(9, coupon).await, mesh.balance(9).await)
}

#[tokio::test]
async fn each_failing_step_leaves_everything_as_it_was() {
    let mesh = spawn_mesh().await;
    let product = mesh.product(1_000, 10).await;
    mesh.charge(9, 2_500).await;
    let coupon = mesh.coupon_for(9, 100).await;
    let before = snapshot(&mesh, product, coupon).await;

    // Stock: more than there is.
    let order = mesh.place("f-stock", 9, vec![line(product, 11)], Some(coupon)).await.unwrap().into_inner();
    assert_eq!(order.failure_code.as_deref(), Some("OUT_OF_STOCK"));
    assert_eq!(snapshot(&mesh, product, coupon).await, before);

    // Coupon: somebody else's.
    let foreign = mesh.coupon_for(10, 100).await;
    let order = mesh.place("f-coupon", 9, vec![line(product, 1)], Some(foreign)).await.unwrap().into_inner();
    assert_eq!(order.failure_code.as_deref(), Some("COUPON_NOT_USABLE"), "{order:?}");
    assert_eq!(snapshot(&mesh, product, coupon).await, before);
    let steps = step_statuses(&mesh.order(&order.order_id).await);
    assert_eq!(steps[0], ("RESERVE_STOCK".into(), pb::StepStatus::Compensated));
    assert_eq!(steps[1], ("USE_COUPON".into(), pb::StepStatus::Failed));
    assert_eq!(steps[2], ("PAY_POINTS".into(), pb::StepStatus::Pending));

    // Points: 3 x 1,000 - 100 = 2,900 > 2,500.
    let order = mesh.place("f-points", 9, vec![line(product, 3)], Some(coupon)).await.unwrap().into_inner();
    assert_eq!(order.failure_code.as_deref(), Some("INSUFFICIENT_POINTS"));
    assert_eq!(snapshot(&mesh, product, coupon).await, before);

    // Data platform: down past every retry.
    mesh.fail_platform("always", 0).await;
    let order = mesh.place("f-platform", 9, vec![line(product, 2)], Some(coupon)).await.unwrap().into_inner();
    assert_eq!(order.failure_code.as_deref(), Some("EXTERNAL_SERVICE_FAILED"));
    assert_eq!(snapshot(&mesh, product, coupon).await, before);
    let stored = mesh.order(&order.order_id).await;
    assert_eq!(status_of(&stored), pb::OrderStatus::Failed);
    let steps = step_statuses(&stored);
    assert!(steps[..4].iter().all(|(_, s)| *s == pb::StepStatus::Compensated), "{steps:?}");
    assert_eq!(steps[4].1, pb::StepStatus::Failed);
    assert!(stored.steps[4].attempts >= 2, "retried before giving up: {stored:?}");
    // The ledger shows the payment and its refund, both naming the order.
    let ledger = mesh.ledger(9).await;
    let kinds: Vec<i32> =
        ledger.iter().filter(|e| e.order_id.as_deref() == Some(order.order_id.as_str())).map(|e| e.r#type).collect();
    assert_eq!(kinds.len(), 2, "{ledger:?}");

    // Nothing of any failed order reached the platform.
    assert_eq!(mesh.platform_received().await.0, 0);
}

#[tokio::test]
async fn two_transient_platform_failures_are_retried() {
    let mesh = spawn_mesh().await;
    let product = mesh.product(1_000, 10).await;
    mesh.charge(11, 5_000).await;
    mesh.fail_platform("next", 2).await;
    let order = mesh.place("flaky", 11, vec![line(product, 1)], None).await.unwrap().into_inner();
    assert_eq!(status_of(&order), pb::OrderStatus::Completed, "{order:?}");
    assert_eq!(mesh.platform_received().await, (1, 3));
    assert_eq!(mesh.stock(product).await, 9);
    assert_eq!(mesh.balance(11).await, 4_000);
}

#[tokio::test]
async fn unknown_products_and_bad_requests() {
    let mesh = spawn_mesh().await;
    mesh.charge(12, 5_000).await;
    let order = mesh.place("ghost", 12, vec![line(999_999, 1)], None).await.unwrap().into_inner();
    assert_eq!(order.failure_code.as_deref(), Some("NOT_FOUND"));
    assert_eq!(status_of(&order), pb::OrderStatus::Failed);

    let err = mesh.place("bad", 12, vec![], None).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::ValidationFailed);
    let err = mesh.place("bad", 12, vec![line(1, 1), line(1, 2)], None).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::ValidationFailed);
    let err = mesh.place("bad", 12, vec![line(1, 1_001)], None).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::ValidationFailed);
    let err = mesh
        .payment()
        .get_order(pb::GetOrderRequest { order_id: "00000000-0000-0000-0000-000000000000".into() })
        .await
        .unwrap_err();
    assert_eq!(code(&err), ErrorCode::NotFound);
    let err = mesh.payment().get_order(pb::GetOrderRequest { order_id: "nope".into() }).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::ValidationFailed);
}
