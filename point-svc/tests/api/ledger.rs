use kit::ErrorCode;
use mesh_proto::point::v1 as pb;

use crate::helpers::{code, spawn_app};

#[tokio::test]
async fn three_hundred_uses_of_100_on_10_000_leave_exactly_100_successes() {
    let app = spawn_app().await;
    app.charge(7, 10_000).await.unwrap();
    let uses = futures::future::join_all((0..300).map(|_| app.use_points(7, 100))).await;
    let ok = uses.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 100);
    for err in uses.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(code(err), ErrorCode::InsufficientPoints);
    }
    assert_eq!(app.balance(7).await, 0);
    assert_eq!(app.ledger_sum(7).await, 0);
}

#[tokio::test]
async fn interleaved_charges_and_uses_keep_the_ledger_equal_to_the_balance() {
    let app = spawn_app().await;
    app.charge(9, 15_000).await.unwrap();
    let charges = (0..150).map(|_| async { app.charge(9, 100).await.map(|_| ()) });
    let uses = (0..150).map(|_| async { app.use_points(9, 100).await.map(|_| ()) });
    let mixed: Vec<_> = charges
        .zip(uses)
        .flat_map(|(c, u)| [futures::future::Either::Left(c), futures::future::Either::Right(u)])
        .collect();
    let results = futures::future::join_all(mixed).await;
    assert!(results.iter().all(Result::is_ok), "no use can fail: the balance never drops below 0");
    assert_eq!(app.balance(9).await, 15_000);
    assert_eq!(app.ledger_sum(9).await, 15_000);
    assert_eq!(app.newest_balance_after(9).await, 15_000);
    let entries = app.scalar("SELECT COUNT(*) FROM point_history WHERE user_id = ?", 9).await;
    assert_eq!(entries, 301);
}

#[tokio::test]
async fn a_user_who_never_charged_has_zero_and_cannot_use() {
    let app = spawn_app().await;
    let balance = app.client.clone().get_balance(pb::GetBalanceRequest { user_id: 42 }).await.unwrap().into_inner();
    assert_eq!((balance.balance, balance.updated_at), (0, None));
    assert_eq!(code(&app.use_points(42, 1).await.unwrap_err()), ErrorCode::InsufficientPoints);
    assert_eq!(app.balance(42).await, 0);
}

#[tokio::test]
async fn amounts_outside_their_ranges_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    app.charge(3, 500).await.unwrap();
    for (amount, what) in [(0, "zero"), (-5, "negative"), (10_000_001, "above the charge cap")] {
        let err = app.charge(3, amount).await.unwrap_err();
        let err = kit::ServiceError::from_status(&err);
        assert_eq!((err.code, err.field.as_deref()), (ErrorCode::ValidationFailed, Some("amount")), "{what}");
    }
    for amount in [0, -1, 1_000_000_001] {
        assert_eq!(code(&app.use_points(3, amount).await.unwrap_err()), ErrorCode::ValidationFailed);
    }
    assert_eq!(code(&app.charge(0, 10).await.unwrap_err()), ErrorCode::ValidationFailed);
    assert_eq!(app.balance(3).await, 500);
    assert_eq!(app.ledger_sum(3).await, 500);
}

#[tokio::test]
async fn a_charge_past_one_billion_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    for _ in 0..100 {
        app.charge(5, 10_000_000).await.unwrap();
    }
    assert_eq!(app.balance(5).await, 1_000_000_000);
    let err = kit::ServiceError::from_status(&app.charge(5, 1).await.unwrap_err());
    assert_eq!((err.code, err.field.as_deref()), (ErrorCode::ValidationFailed, Some("amount")));
    assert_eq!(app.balance(5).await, 1_000_000_000);
    // A first charge from a fresh user races with itself correctly too.
    let firsts = futures::future::join_all((0..20).map(|_| app.charge(6, 1_000))).await;
    assert!(firsts.iter().all(Result::is_ok));
    assert_eq!(app.balance(6).await, 20_000);
}

#[tokio::test]
async fn history_is_newest_first_and_limited() {
    let app = spawn_app().await;
    app.charge(8, 1_000).await.unwrap();
    app.use_points(8, 300).await.unwrap();
    app.charge(8, 50).await.unwrap();
    let items = app
        .client
        .clone()
        .list_history(pb::ListHistoryRequest { user_id: 8, limit: 2 })
        .await
        .unwrap()
        .into_inner()
        .items;
    let seen: Vec<(i32, i64, i64)> = items.iter().map(|e| (e.r#type, e.amount, e.balance_after)).collect();
    assert_eq!(seen, vec![(pb::EntryType::Charge as i32, 50, 750), (pb::EntryType::Use as i32, 300, 700)]);
    let bad = app.client.clone().list_history(pb::ListHistoryRequest { user_id: 8, limit: 201 }).await.unwrap_err();
    assert_eq!(code(&bad), ErrorCode::ValidationFailed);
}

#[tokio::test]
async fn the_ledger_is_append_only_in_the_schema_itself() {
    let app = spawn_app().await;
    app.charge(1, 100).await.unwrap();
    let db = app.db().await;
    use sea_orm::ConnectionTrait;
    assert!(db.execute_unprepared("UPDATE point_history SET amount = 1").await.is_err());
    assert!(db.execute_unprepared("DELETE FROM point_history").await.is_err());
    assert!(db.execute_unprepared("UPDATE point_balance SET balance = -1").await.is_err(), "never negative");
    assert_eq!(app.ledger_sum(1).await, 100);
}

#[tokio::test]
async fn concurrent_first_charges_of_new_users_never_fail() {
    let app = spawn_app().await;
    // New users next to each other in the key space: under REPEATABLE READ their gap locks
    // deadlocked one another; every one of these must simply succeed.
    let charges = (1_000..1_200).map(|user| app.charge(user, 1_000));
    let results = futures::future::join_all(charges).await;
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failed.is_empty(), "{} failed, e.g. {:?}", failed.len(), failed.first());
    for user in [1_000, 1_099, 1_199] {
        assert_eq!(app.balance(user).await, 1_000);
    }
}
