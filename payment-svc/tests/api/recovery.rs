use kit::testing::RedisNode;
use std::time::Duration;

use futures::future::join_all;
use kit::ErrorCode;
use mesh_proto::payment::v1 as pb;
use serde_json::json;

use crate::helpers::{
    PaymentTuning, checkout_on_a_replica_killed_after, code, keyed, line, spawn_mesh_with, start_inventory,
    start_payment, status_of,
};

/// Polls `order_id` until it settles (COMPLETED, FAILED or CANCELLED) or `limit` passes.
async fn settled(mesh: &crate::helpers::TestMesh, order_id: &str, limit: Duration) -> pb::Order {
    let started = std::time::Instant::now();
    loop {
        let order = mesh.order(order_id).await;
        let s = status_of(&order);
        if matches!(s, pb::OrderStatus::Completed | pb::OrderStatus::Failed | pb::OrderStatus::Cancelled) {
            return order;
        }
        assert!(started.elapsed() < limit, "order never settled: {order:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_compensation_that_keeps_failing_is_retried_in_the_background() {
    let tuning = PaymentTuning {
        recover_every: Duration::from_millis(200),
        forward_budget: Duration::from_millis(800),
        ..PaymentTuning::default()
    };
    let mesh = spawn_mesh_with(tuning).await;
    let product = mesh.product(1_000, 10).await;
    mesh.charge(41, 5_000).await;

    // inventory-svc goes down past the forward budget: the reservation cannot be made, nor
    // undone. The checkout gives up, its rollback is deferred, the request answers PENDING.
    mesh.inventory_stop.cancel();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answer = mesh.place("down", 41, vec![line(product, 1)], None).await.unwrap().into_inner();
    assert_eq!(status_of(&answer), pb::OrderStatus::Pending, "{answer:?}");
    let order_id = answer.order_id;

    // The order shows the retries instead of hiding them.
    let pending = mesh.order(&order_id).await;
    assert_eq!(status_of(&pending), pb::OrderStatus::Pending);
    let reserve = &pending.steps[0];
    assert!(reserve.attempts >= 5, "{pending:?}");
    assert!(reserve.last_error.as_deref().unwrap_or_default().contains("UNAVAILABLE"), "{pending:?}");

    // The key belongs to that request: another body with it is refused, not joined to its saga.
    let err = mesh.place("down", 41, vec![line(product, 2)], None).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::IdempotencyKeyReused, "{err:?}");

    // It comes back on the same address; recovery finishes the rollback by itself.
    let stop = kit::shutdown::CancellationToken::new();
    start_inventory(&mesh.prefix, Some(mesh.inventory_addr), stop.clone()).await;
    let order = settled(&mesh, &order_id, Duration::from_secs(30)).await;
    assert_eq!(status_of(&order), pb::OrderStatus::Failed);
    assert_eq!(order.failure_code.as_deref(), Some("UNAVAILABLE"));
    assert_eq!(mesh.stock(product).await, 10);
    assert_eq!(mesh.balance(41).await, 5_000);

    // The client retrying with its key gets the settled answer, marked as a replay.
    let again = mesh.place("down", 41, vec![line(product, 1)], None).await.unwrap();
    assert_eq!(again.metadata().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
    let again = again.into_inner();
    assert_eq!(again.order_id, order_id);
    assert_eq!(status_of(&again), pb::OrderStatus::Failed);
    stop.cancel();
}

#[tokio::test]
async fn a_saga_whose_replica_died_mid_way_is_recovered() {
    let mesh = spawn_mesh_with(PaymentTuning::fast_recovery()).await;
    // The mesh's own replica is stopped: only the doomed one, then its successor, drive.
    mesh.stop_payment_replicas();
    let product = mesh.product(1_000, 10).await;
    mesh.charge(42, 5_000).await;
    mesh.platform_control(json!({"failMode": "none", "latencyMs": 5_000})).await;

    // Let a replica reserve, pay and hang on the slow platform, then kill it.
    let request = pb::PlaceOrderRequest { user_id: 42, items: vec![line(product, 3)], user_coupon_id: None };
    let answer = checkout_on_a_replica_killed_after(
        &mesh.payment_config,
        request.clone(),
        "crash",
        Duration::from_millis(1_500),
    )
    .await;
    assert!(answer.is_err(), "the client lost its connection");
    assert_eq!(mesh.stock(product).await, 7, "the dead replica had reserved");

    // A new replica takes the saga over once its lease ran out and finishes it.
    mesh.platform_control(json!({"failMode": "none", "latencyMs": 0})).await;
    let mut successor = start_payment(&mesh.payment_config, kit::shutdown::CancellationToken::new()).await;
    let started = std::time::Instant::now();
    let answer = loop {
        let answer = successor.place_order(keyed(request.clone(), "crash")).await.expect("answered").into_inner();
        if status_of(&answer) != pb::OrderStatus::Pending {
            break answer;
        }
        assert!(started.elapsed() < Duration::from_secs(40), "never settled: {answer:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status_of(&answer), pb::OrderStatus::Completed, "{answer:?}");
    assert_eq!(mesh.stock(product).await, 7);
    assert_eq!(mesh.balance(42).await, 2_000);
    let payments = mesh.ledger(42).await.into_iter().filter(|e| e.order_id.is_some()).count();
    assert_eq!(payments, 1, "paid once");
}

#[tokio::test]
async fn two_replicas_over_a_redlock_quorum_that_loses_a_node() {
    let mut nodes: Vec<RedisNode> = (0..3).map(|_| RedisNode::start()).collect();
    let tuning = PaymentTuning {
        replicas: 2,
        redlock_urls: Some(nodes.iter().map(|n| n.url.clone()).collect()),
        ..PaymentTuning::default()
    };
    let mesh = spawn_mesh_with(tuning).await;
    let product = mesh.product(100, 1_000).await;
    let users: Vec<i64> = (51..=80).collect();
    join_all(users.iter().map(|&u| mesh.charge(u, 10_000))).await;

    // Each user checks out twice at once through both replicas, in two rounds; a quorum
    // node dies between them.
    let round = |round: usize| {
        let mesh = &mesh;
        let users = &users;
        async move {
            let calls = users.iter().flat_map(|&user| {
                (0..2).map(move |replica| {
                    let mut client = mesh.payments[replica].clone();
                    let req =
                        pb::PlaceOrderRequest { user_id: user, items: vec![line(product, 1)], user_coupon_id: None };
                    let key = format!("r{round}-u{user}-{replica}");
                    async move {
                        // The user's other checkout may hold the user's lock past this one's
                        // start budget on a busy machine: OVERLOADED ("another checkout of this
                        // user is running; retry"), nothing started; UNAVAILABLE while a killed
                        // quorum node is noticed. A client asks again with its key; a final
                        // answer would stay the same.
                        let mut answer = client.place_order(keyed(req.clone(), &key)).await;
                        for _ in 0..100 {
                            match &answer {
                                Err(status)
                                    if matches!(code(status), ErrorCode::Overloaded | ErrorCode::Unavailable) =>
                                {
                                    tokio::time::sleep(Duration::from_millis(200)).await;
                                    answer = client.place_order(keyed(req.clone(), &key)).await;
                                }
                                _ => break,
                            }
                        }
                        answer
                    }
                })
            });
            join_all(calls).await
        }
    };
    let first = round(1).await;
    nodes[0].stop();
    let second = round(2).await;
    let mut orders = Vec::new();
    for answer in first.into_iter().chain(second) {
        let order = answer.expect("every checkout answered").into_inner();
        assert_eq!(status_of(&order), pb::OrderStatus::Completed, "{order:?}");
        orders.push(order);
    }
    assert_eq!(orders.len(), users.len() * 4);
    assert_eq!(mesh.stock(product).await, 1_000 - orders.len() as i64);
    for &user in &users {
        assert_eq!(mesh.balance(user).await, 10_000 - 4 * 100);
        let paid = mesh.ledger(user).await.into_iter().filter(|e| e.order_id.is_some()).count();
        assert_eq!(paid, 4, "user {user}: one payment per order, none twice");
    }
    // No step needed a second call (a retried call leaves a row with its attempts).
    for order in &orders {
        let stored = mesh.order(&order.order_id).await;
        assert!(stored.steps.iter().all(|s| s.attempts == 1), "{stored:?}");
    }
}
