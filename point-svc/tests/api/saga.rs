use kit::ErrorCode;
use kit::saga::Op;
use mesh_proto::point::v1 as pb;

use crate::helpers::{TestApp, code, saga, spawn_app};

async fn pay(app: &TestApp, saga_id: &str, user_id: i64, amount: i64) -> Result<pb::PayResponse, tonic::Status> {
    let req = pb::PayRequest { saga: saga(saga_id, Op::Action), user_id, order_id: format!("order-{saga_id}"), amount };
    app.client.clone().pay(req).await.map(tonic::Response::into_inner)
}

async fn refund(app: &TestApp, saga_id: &str, user_id: i64) -> pb::RefundResponse {
    let req = pb::RefundRequest { saga: saga(saga_id, Op::Compensate), user_id, order_id: format!("order-{saga_id}") };
    app.client.clone().refund(req).await.unwrap().into_inner()
}

#[tokio::test]
async fn paying_twice_debits_once_and_the_ledger_names_the_order() {
    let app = spawn_app().await;
    app.charge(1, 10_000).await.unwrap();
    let first = pay(&app, "s1", 1, 3_000).await.unwrap();
    assert_eq!((first.balance_after, first.replayed), (7_000, false));
    let again = pay(&app, "s1", 1, 3_000).await.unwrap();
    assert_eq!((again.balance_after, again.replayed), (7_000, true));
    assert_eq!(app.balance(1).await, 7_000);
    let newest =
        app.client.clone().list_history(pb::ListHistoryRequest { user_id: 1, limit: 1 }).await.unwrap().into_inner();
    assert_eq!(newest.items[0].r#type, pb::EntryType::Payment as i32);
    assert_eq!(newest.items[0].order_id.as_deref(), Some("order-s1"));
}

#[tokio::test]
async fn a_refund_before_its_payment_does_nothing_and_refuses_the_late_payment() {
    let app = spawn_app().await;
    app.charge(2, 10_000).await.unwrap();
    let early = refund(&app, "s2", 2).await;
    assert_eq!((early.refunded_amount, early.null_compensation), (0, true));
    let late = pay(&app, "s2", 2, 3_000).await.unwrap_err();
    assert_eq!(code(&late), ErrorCode::InvalidStateTransition);
    assert_eq!(app.balance(2).await, 10_000);
}

#[tokio::test]
async fn refunding_twice_credits_once_even_past_the_charge_cap() {
    let app = spawn_app().await;
    for _ in 0..100 {
        app.charge(3, 10_000_000).await.unwrap();
    }
    pay(&app, "s3", 3, 5_000).await.unwrap();
    app.charge(3, 5_000).await.unwrap();
    assert_eq!(app.balance(3).await, 1_000_000_000);
    let first = refund(&app, "s3", 3).await;
    assert_eq!((first.refunded_amount, first.null_compensation), (5_000, false));
    let second = refund(&app, "s3", 3).await;
    assert_eq!((second.refunded_amount, second.null_compensation), (0, false));
    assert_eq!(app.balance(3).await, 1_000_005_000, "a compensation is never refused");
    assert_eq!(app.ledger_sum(3).await, 1_000_005_000);
}

#[tokio::test]
async fn an_insufficient_payment_changes_nothing_and_its_refund_is_null() {
    let app = spawn_app().await;
    app.charge(4, 100).await.unwrap();
    assert_eq!(code(&pay(&app, "s4", 4, 101).await.unwrap_err()), ErrorCode::InsufficientPoints);
    assert!(refund(&app, "s4", 4).await.null_compensation);
    assert_eq!(app.balance(4).await, 100);
}

#[tokio::test]
async fn a_zero_payment_is_recorded_but_moves_nothing() {
    let app = spawn_app().await;
    let paid = pay(&app, "s5", 5, 0).await.unwrap();
    assert_eq!(paid.balance_after, 0);
    let refunded = refund(&app, "s5", 5).await;
    assert_eq!((refunded.refunded_amount, refunded.null_compensation), (0, false));
    assert_eq!(app.ledger_sum(5).await, 0);
}

#[tokio::test]
async fn payments_racing_their_refunds_always_net_to_zero() {
    let app = spawn_app().await;
    app.charge(6, 100_000).await.unwrap();
    let races = (0..40).map(|i| {
        let app = &app;
        async move {
            let id = format!("race-{i}");
            let (paid, refunded) = tokio::join!(pay(app, &id, 6, 1_000), refund(app, &id, 6));
            if paid.is_ok() {
                assert_eq!(refunded.refunded_amount, 1_000);
            } else {
                assert!(refunded.null_compensation);
            }
        }
    });
    futures::future::join_all(races).await;
    assert_eq!(app.balance(6).await, 100_000);
    assert_eq!(app.ledger_sum(6).await, 100_000);
}

#[tokio::test]
async fn concurrent_payments_share_batches_and_each_is_decided_alone_in_arrival_order() {
    let app = spawn_app().await;
    // Users 20..30 hold 5,000 each; every one gets six payments of 1,000 at once, each sent
    // twice (a retried call), and a seventh that is refused: the batch decides every payment
    // on its own balance and answers the duplicate with the same record.
    let users: Vec<i64> = (20..30).collect();
    for &user in &users {
        app.charge(user, 5_000).await.unwrap();
    }
    let calls = users.iter().flat_map(|&user| {
        (0..6).flat_map(move |n| {
            let id = format!("b{user}-{n}");
            [(id.clone(), user), (id, user)]
        })
    });
    let answers = futures::future::join_all(calls.map(|(id, user)| {
        let app = &app;
        async move { (id.clone(), user, pay(app, &id, user, 1_000).await) }
    }))
    .await;
    for &user in &users {
        let mine: Vec<_> = answers.iter().filter(|(_, u, _)| *u == user).collect();
        let paid: std::collections::BTreeSet<&str> =
            mine.iter().filter(|(_, _, a)| a.is_ok()).map(|(id, _, _)| id.as_str()).collect();
        assert_eq!(paid.len(), 5, "user {user}: 5,000 pays five of six");
        for (id, _, answer) in &mine {
            match answer {
                Ok(_) => assert!(paid.contains(id.as_str())),
                Err(status) => {
                    assert_eq!(code(status), ErrorCode::InsufficientPoints, "{id}");
                    assert!(!paid.contains(id.as_str()), "{id}: both copies of a saga get one answer");
                }
            }
        }
        let replays = mine.iter().filter(|(_, _, a)| a.as_ref().is_ok_and(|r| r.replayed)).count();
        assert_eq!(replays, 5, "user {user}: each duplicate of a payment is its replay");
        assert_eq!(app.balance(user).await, 0);
        assert_eq!(app.ledger_sum(user).await, 0, "the ledger sums to the balance");
        assert_eq!(app.newest_balance_after(user).await, 0);
    }
    // A refund gives back exactly what its payment took, once.
    let (id, user) = (format!("b{}-0", users[0]), users[0]);
    let refunded = refund(&app, &id, user).await;
    let expected = if answers.iter().any(|(i, _, a)| *i == id && a.is_ok()) { 1_000 } else { 0 };
    assert_eq!(refunded.refunded_amount, expected);
    assert_eq!(app.balance(user).await, expected);
}
