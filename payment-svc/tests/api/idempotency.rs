use futures::future::join_all;
use kit::ErrorCode;
use mesh_proto::payment::v1 as pb;

use crate::helpers::{code, line, spawn_mesh, status_of};

fn replayed<T>(response: &tonic::Response<T>) -> bool {
    response.metadata().get("idempotent-replayed").is_some()
}

#[tokio::test]
async fn one_key_twenty_times_at_once_is_one_order() {
    let mesh = spawn_mesh().await;
    let product = mesh.product(1_000, 50).await;
    mesh.charge(21, 100_000).await;

    let answers = join_all((0..20).map(|_| mesh.place("same-key", 21, vec![line(product, 1)], None))).await;
    let mut fresh = 0;
    let mut ids = std::collections::HashSet::new();
    for answer in &answers {
        match answer {
            Ok(response) => {
                if !replayed(response) {
                    fresh += 1;
                }
                assert_eq!(status_of(response.get_ref()), pb::OrderStatus::Completed);
                ids.insert(response.get_ref().order_id.clone());
            }
            Err(status) => assert_eq!(code(status), ErrorCode::RequestInProgress, "{status:?}"),
        }
    }
    assert_eq!(fresh, 1, "exactly one request ran the saga");
    assert!(ids.len() <= 1);

    // After it settled every retry is a replay of the one answer.
    let again = mesh.place("same-key", 21, vec![line(product, 1)], None).await.unwrap();
    assert!(replayed(&again));
    assert!(ids.is_empty() || ids.contains(&again.get_ref().order_id));
    assert_eq!(mesh.stock(product).await, 49);
    assert_eq!(mesh.balance(21).await, 99_000);
    assert_eq!(mesh.platform_received().await.0, 1);

    // Same key, another body: refused, nothing changes.
    let err = mesh.place("same-key", 21, vec![line(product, 2)], None).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::IdempotencyKeyReused);
    assert_eq!(mesh.stock(product).await, 49);
}

#[tokio::test]
async fn a_failed_checkout_replays_its_failure() {
    let mesh = spawn_mesh().await;
    let product = mesh.product(1_000, 1).await;
    let first = mesh.place("broke", 22, vec![line(product, 1)], None).await.unwrap();
    assert_eq!(first.get_ref().failure_code.as_deref(), Some("INSUFFICIENT_POINTS"));
    // Points arrive, but the key's answer stays the first one: retries never re-run a saga.
    mesh.charge(22, 5_000).await;
    let again = mesh.place("broke", 22, vec![line(product, 1)], None).await.unwrap();
    assert!(replayed(&again));
    assert_eq!(again.get_ref().order_id, first.get_ref().order_id);
    assert_eq!(status_of(again.get_ref()), pb::OrderStatus::Failed);
    assert_eq!(mesh.stock(product).await, 1);
}

#[tokio::test]
async fn a_checkout_needs_a_key() {
    let mesh = spawn_mesh().await;
    let req = pb::PlaceOrderRequest { user_id: 1, items: vec![line(1, 1)], user_coupon_id: None };
    let err = mesh.payment().place_order(req).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::IdempotencyKeyMissing);
    let long = "k".repeat(256);
    let err = mesh.place(&long, 1, vec![line(1, 1)], None).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::IdempotencyKeyMissing);
}
