//! The journal design (DESIGN.md, "The saga orchestrator"): two commits per happy checkout,
//! re-drives from the first step answered by the participants' barriers, and a forward
//! budget measured in time.

use std::time::{Duration, Instant};

use futures::future::join_all;
use kit::shutdown::CancellationToken;
use mesh_proto::payment::v1 as pb;
use serde_json::json;

use crate::helpers::{
    PaymentTuning, checkout_on_a_replica_killed_after, keyed, line, spawn_mesh_with, start_coupon, start_inventory,
    start_payment, start_point, status_of,
};

const REPLAYED: &str = "idempotent-replayed";

fn replayed<T>(response: &tonic::Response<T>) -> bool {
    response.metadata().get(REPLAYED).is_some_and(|v| v == "true")
}

#[tokio::test]
async fn a_happy_checkout_commits_twice_in_payment_svc() {
    // No recovery sweep between the snapshots: only the checkout's own statements count.
    let tuning = PaymentTuning { recover_every: Duration::from_secs(3600), ..PaymentTuning::default() };
    let mesh = spawn_mesh_with(tuning).await;
    let product = mesh.product(1_000, 100).await;
    for user in [61, 62] {
        mesh.charge(user, 10_000).await;
    }
    // A first checkout warms the pool and the fence row's page; the second is measured.
    let first = mesh.place("warm", 61, vec![line(product, 1)], None).await.unwrap().into_inner();
    assert_eq!(status_of(&first), pb::OrderStatus::Completed);

    let before = mesh.payment_sql[0].snapshot();
    let order = mesh.place("measured", 62, vec![line(product, 2)], None).await.unwrap().into_inner();
    let spent = mesh.payment_sql[0].snapshot().since(before);
    assert_eq!(status_of(&order), pb::OrderStatus::Completed, "{order:?}");
    assert_eq!((order.total_amount, order.paid_amount), (2_000, 2_000));
    assert_eq!(spent.transactions, 2, "start + completion, nothing in between: {spent:?}");
    assert!(spent.statements() <= 7, "start 4 + completion 3 statements at most: {spent:?}");
    assert_eq!(spent.reads, 0, "a checkout reads nothing back from payment's schema: {spent:?}");

    // What the two commits wrote is the whole order.
    let stored = mesh.order(&order.order_id).await;
    assert_eq!(status_of(&stored), pb::OrderStatus::Completed);
    assert_eq!(stored.items[0].unit_price, 1_000);
    assert!(stored.steps.iter().all(|s| s.status == pb::StepStatus::Done as i32), "{stored:?}");
}

/// The last step a doomed replica finished before it died, calling the next one, which is
/// kept from answering.
#[derive(Clone, Copy, Debug)]
enum DoneUpTo {
    /// RESERVE_STOCK done; USE_COUPON cannot be answered (coupon-svc down).
    Reserve,
    /// USE_COUPON done; PAY_POINTS cannot be answered (point-svc down).
    Coupon,
    /// PAY_POINTS and RECORD_PAYMENT done; TRANSMIT_DATA hangs on the data platform.
    Payment,
}

#[tokio::test]
async fn a_saga_interrupted_after_each_step_is_completed_by_recovery() {
    for cut in [DoneUpTo::Reserve, DoneUpTo::Coupon, DoneUpTo::Payment] {
        interrupted_after(cut).await;
    }
}

async fn interrupted_after(cut: DoneUpTo) {
    let mesh = spawn_mesh_with(PaymentTuning::fast_recovery()).await;
    mesh.stop_payment_replicas();
    let (user, price, qty, discount) = (70, 1_500, 2, 500);
    let product = mesh.product(price, 10).await;
    mesh.charge(user, 10_000).await;
    let coupon = mesh.coupon_for(user, discount).await;
    match cut {
        DoneUpTo::Reserve => mesh.coupon_stop.cancel(),
        DoneUpTo::Coupon => mesh.point_stop.cancel(),
        DoneUpTo::Payment => mesh.platform_control(json!({"failMode": "none", "latencyMs": 5_000})).await,
    }

    // The replica dies mid-call: nothing was recorded after the saga's start.
    let request =
        pb::PlaceOrderRequest { user_id: user, items: vec![line(product, qty)], user_coupon_id: Some(coupon) };
    let _ =
        checkout_on_a_replica_killed_after(&mesh.payment_config, request.clone(), "cut", Duration::from_millis(1_200))
            .await;
    assert_eq!(mesh.stock(product).await, 10 - qty, "{cut:?}: the dead replica had reserved");

    // The participant comes back; a new replica finds the saga's lease run out and drives it
    // again from the first step. Nothing but the start was written: the prices, the discount
    // and the payment come back from the participants' barriers.
    match cut {
        DoneUpTo::Reserve => drop(start_coupon(&mesh.prefix, Some(mesh.coupon_addr), CancellationToken::new()).await),
        DoneUpTo::Coupon => drop(start_point(&mesh.prefix, Some(mesh.point_addr), CancellationToken::new()).await),
        DoneUpTo::Payment => mesh.platform_control(json!({"failMode": "none", "latencyMs": 0})).await,
    }
    let mut successor = start_payment(&mesh.payment_config, CancellationToken::new()).await;
    let order = settle_by_key(&mut successor, &request, "cut").await;
    assert_eq!(status_of(&order), pb::OrderStatus::Completed, "{cut:?}: {order:?}");
    let total = price * qty;
    assert_eq!((order.total_amount, order.discount_amount, order.paid_amount), (total, discount, total - discount));
    assert_eq!(order.items[0].unit_price, price, "{cut:?}");

    // Each effect once.
    assert_eq!(mesh.stock(product).await, 10 - qty, "{cut:?}: reserved once");
    assert_eq!(mesh.balance(user).await, 10_000 - (total - discount), "{cut:?}: paid once");
    let payments = mesh.ledger(user).await.into_iter().filter(|e| e.order_id.is_some()).count();
    assert_eq!(payments, 1, "{cut:?}");
    let used = mesh_proto::coupon::v1::UserCouponStatus::Used as i32;
    assert_eq!(mesh.coupon_status(user, coupon).await, used, "{cut:?}");
    let (received, _) = mesh.platform_received().await;
    assert_eq!(received, 1, "{cut:?}: the platform has the order once");
}

/// Sends `request` with `key` until its answer is no longer PENDING.
async fn settle_by_key(
    client: &mut pb::payment_service_client::PaymentServiceClient<tonic::transport::Channel>,
    request: &pb::PlaceOrderRequest,
    key: &str,
) -> pb::Order {
    let started = Instant::now();
    loop {
        let answer = client.place_order(keyed(request.clone(), key)).await.expect("answered").into_inner();
        if status_of(&answer) != pb::OrderStatus::Pending {
            return answer;
        }
        assert!(started.elapsed() < Duration::from_secs(40), "never settled: {answer:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A checkout request that answers within `patience` (its gRPC deadline, less a margin).
fn impatient(request: pb::PlaceOrderRequest, key: &str, patience: Duration) -> tonic::Request<pb::PlaceOrderRequest> {
    let mut request = keyed(request, key);
    request.set_timeout(patience);
    request
}

#[tokio::test]
async fn a_participant_restarting_delays_orders_instead_of_failing_them() {
    let mesh = spawn_mesh_with(PaymentTuning::default()).await;
    let product = mesh.product(100, 1_000).await;
    let users: Vec<i64> = (101..=124).collect();
    join_all(users.iter().map(|&u| mesh.charge(u, 10_000))).await;

    // inventory-svc is down for 3 s while checkouts keep arriving.
    mesh.inventory_stop.cancel();
    let restart = {
        let prefix = mesh.prefix.clone();
        let addr = mesh.inventory_addr;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            start_inventory(&prefix, Some(addr), CancellationToken::new()).await
        })
    };
    let first = join_all(users.iter().map(|&user| {
        let mut client = mesh.payment();
        let req = pb::PlaceOrderRequest { user_id: user, items: vec![line(product, 1)], user_coupon_id: None };
        async move {
            tokio::time::sleep(Duration::from_millis((user as u64 - 100) * 40)).await;
            (req.clone(), client.place_order(impatient(req, &format!("k{user}"), Duration::from_millis(1_500))).await)
        }
    }))
    .await;
    restart.await.unwrap();

    let mut pending_first = 0;
    for (request, answer) in first {
        let answer = answer.expect("a restarting participant is never an error");
        if status_of(answer.get_ref()) == pb::OrderStatus::Pending {
            pending_first += 1;
            assert!(!replayed(&answer), "a PENDING answer is not a replay");
        }
        let mut client = mesh.payment();
        let order = settle_by_key(&mut client, &request, &format!("k{}", request.user_id)).await;
        assert_eq!(status_of(&order), pb::OrderStatus::Completed, "no order fails for a restart: {order:?}");
        let again = client.place_order(keyed(request.clone(), &format!("k{}", request.user_id))).await.unwrap();
        assert!(replayed(&again), "a settled answer is replayed");
        assert_eq!(again.get_ref().order_id, order.order_id);
    }
    assert!(pending_first > 0, "some checkouts outlived their answer budget and answered PENDING first");
    assert_eq!(mesh.stock(product).await, 1_000 - users.len() as i64);
    for &user in &users {
        assert_eq!(mesh.balance(user).await, 10_000 - 100, "user {user} paid once");
    }
}

#[tokio::test]
async fn a_participant_down_past_the_forward_budget_fails_the_order_fully_compensated() {
    let tuning = PaymentTuning { forward_budget: Duration::from_millis(1_000), ..PaymentTuning::default() };
    let mesh = spawn_mesh_with(tuning).await;
    let product = mesh.product(300, 10).await;
    mesh.charge(90, 5_000).await;
    mesh.point_stop.cancel();

    // Stock is reserved, then PAY_POINTS keeps failing until the budget is spent. The
    // checkout gives up; its rollback must refund a payment that may have happened, which
    // waits for point-svc: the answer is PENDING meanwhile.
    let started = Instant::now();
    let request = pb::PlaceOrderRequest { user_id: 90, items: vec![line(product, 3)], user_coupon_id: None };
    let first = mesh.payment().place_order(keyed(request.clone(), "gone")).await.unwrap().into_inner();
    assert!(started.elapsed() >= Duration::from_millis(900), "retried for its budget first");
    assert_eq!(status_of(&first), pb::OrderStatus::Pending, "{first:?}");

    // point-svc comes back: recovery finishes the rollback; the order is FAILED for good.
    start_point(&mesh.prefix, Some(mesh.point_addr), CancellationToken::new()).await;
    let mut client = mesh.payment();
    let order = settle_by_key(&mut client, &request, "gone").await;
    assert_eq!(status_of(&order), pb::OrderStatus::Failed, "{order:?}");
    assert_eq!(order.failure_code.as_deref(), Some("UNAVAILABLE"));
    assert_eq!(mesh.stock(product).await, 10, "the reservation was given back");
    let stored = mesh.order(&order.order_id).await;
    let statuses: Vec<i32> = stored.steps.iter().map(|s| s.status).collect();
    assert_eq!(statuses[0], pb::StepStatus::Compensated as i32, "{stored:?}");
    assert_eq!(statuses[1], pb::StepStatus::Failed as i32, "{stored:?}");
    assert!(stored.steps[1].attempts >= 3, "PAY_POINTS was retried: {stored:?}");

    // The answer is final: replayed to the same key, and the points were never touched.
    let again = mesh.payment().place_order(keyed(request, "gone")).await.unwrap();
    assert!(replayed(&again));
    assert_eq!(status_of(again.get_ref()), pb::OrderStatus::Failed);
    assert_eq!(mesh.balance(90).await, 5_000);
}

#[tokio::test]
async fn one_users_checkouts_at_once_take_turns_and_all_complete() {
    let mesh = spawn_mesh_with(PaymentTuning::default()).await;
    let product = mesh.product(250, 100).await;
    mesh.charge(95, 10_000).await;
    let orders = join_all((0..8).map(|n| {
        let mut client = mesh.payment();
        let req = pb::PlaceOrderRequest { user_id: 95, items: vec![line(product, 1)], user_coupon_id: None };
        async move { client.place_order(keyed(req, &format!("turn-{n}"))).await }
    }))
    .await;
    for order in orders {
        let order = order.expect("each waits for its turn").into_inner();
        assert_eq!(status_of(&order), pb::OrderStatus::Completed, "{order:?}");
    }
    assert_eq!(mesh.stock(product).await, 92);
    assert_eq!(mesh.balance(95).await, 10_000 - 8 * 250);
}
