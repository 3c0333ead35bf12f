use std::time::Duration;

use kit::ErrorCode;
use mesh_proto::point::v1 as pb;
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::helpers::{TestApp, code, spawn_app};

fn keyed<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("idempotency-key", key.parse().unwrap());
    request
}

fn replayed<T>(response: &tonic::Response<T>) -> bool {
    response.metadata().get("idempotent-replayed").is_some_and(|v| v == "true")
}

async fn charge_with_key(
    app: &TestApp,
    user_id: i64,
    amount: i64,
    key: &str,
) -> Result<tonic::Response<pb::Balance>, tonic::Status> {
    app.client.clone().charge(keyed(pb::ChargeRequest { user_id, amount }, key)).await
}

#[tokio::test]
async fn the_same_key_ten_times_at_once_has_one_effect() {
    let app = spawn_app().await;
    let calls = futures::future::join_all((0..10).map(|_| charge_with_key(&app, 1, 500, "k-1"))).await;
    for result in &calls {
        match result {
            Ok(response) => assert_eq!(response.get_ref().balance, 500),
            Err(status) => assert_eq!(code(status), ErrorCode::RequestInProgress),
        }
    }
    assert_eq!(calls.iter().filter(|r| r.as_ref().is_ok_and(|r| !replayed(r))).count(), 1, "one execution");
    assert_eq!(app.balance(1).await, 500);
    assert_eq!(app.ledger_sum(1).await, 500);

    let later = charge_with_key(&app, 1, 500, "k-1").await.unwrap();
    assert!(replayed(&later));
    assert_eq!(later.get_ref().balance, 500);
    let other_body = charge_with_key(&app, 1, 501, "k-1").await.unwrap_err();
    assert_eq!(code(&other_body), ErrorCode::IdempotencyKeyReused);
    assert_eq!(app.balance(1).await, 500);
}

#[tokio::test]
async fn keys_are_scoped_per_endpoint_and_user() {
    let app = spawn_app().await;
    charge_with_key(&app, 1, 100, "same").await.unwrap();
    let other_user = charge_with_key(&app, 2, 100, "same").await.unwrap();
    assert!(!replayed(&other_user));
    let use_same_key =
        app.client.clone().r#use(keyed(pb::UseRequest { user_id: 1, amount: 10 }, "same")).await.unwrap();
    assert!(!replayed(&use_same_key));
    assert_eq!((app.balance(1).await, app.balance(2).await), (90, 100));
}

#[tokio::test]
async fn a_business_error_is_replayed_as_it_was() {
    let app = spawn_app().await;
    let first = app.client.clone().r#use(keyed(pb::UseRequest { user_id: 3, amount: 50 }, "u-1")).await.unwrap_err();
    assert_eq!(code(&first), ErrorCode::InsufficientPoints);
    app.charge(3, 100).await.unwrap();
    let again = app.client.clone().r#use(keyed(pb::UseRequest { user_id: 3, amount: 50 }, "u-1")).await.unwrap_err();
    assert_eq!(code(&again), ErrorCode::InsufficientPoints);
    assert_eq!(again.metadata().get("idempotent-replayed").unwrap(), "true");
    assert_eq!(app.balance(3).await, 100, "the replay changed nothing");
}

#[tokio::test]
async fn a_claim_whose_holder_died_is_taken_over_after_its_lease() {
    let app = spawn_app().await;
    let db = app.db().await;
    let request = pb::ChargeRequest { user_id: 4, amount: 700 };
    // What a crashed holder leaves behind: a running claim, no effect, an old timestamp.
    let hash = {
        use prost::Message;
        use sha2::Digest;
        sha2::Sha256::digest(request.encode_to_vec()).to_vec()
    };
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::MySql,
        "INSERT INTO idempotency_key (scope, idem_key, request_hash, status, created_at, updated_at) \
         VALUES ('point.charge/4', 'crashed', ?, 'running', NOW(3) - INTERVAL 5 MINUTE, NOW(3) - INTERVAL 5 MINUTE)",
        [hash.into()],
    ))
    .await
    .unwrap();
    let response = charge_with_key(&app, 4, 700, "crashed").await.expect("taken over and executed");
    assert!(!replayed(&response));
    assert_eq!(app.balance(4).await, 700);
}

#[tokio::test]
async fn a_fresh_running_claim_answers_request_in_progress() {
    let app = spawn_app().await;
    let db = app.db().await;
    let hash = {
        use prost::Message;
        use sha2::Digest;
        sha2::Sha256::digest(pb::ChargeRequest { user_id: 5, amount: 10 }.encode_to_vec()).to_vec()
    };
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::MySql,
        "INSERT INTO idempotency_key (scope, idem_key, request_hash, status, created_at, updated_at) \
         VALUES ('point.charge/5', 'busy', ?, 'running', NOW(3), NOW(3))",
        [hash.into()],
    ))
    .await
    .unwrap();
    let busy = charge_with_key(&app, 5, 10, "busy").await.unwrap_err();
    assert_eq!(code(&busy), ErrorCode::RequestInProgress);
    assert_eq!(app.balance(5).await, 0);
}

#[tokio::test]
async fn bad_keys_are_refused_and_expired_keys_are_purged() {
    let app = spawn_app().await;
    let too_long = "k".repeat(256);
    let err = charge_with_key(&app, 6, 10, &too_long).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::IdempotencyKeyMissing);
    charge_with_key(&app, 6, 10, "old").await.unwrap();
    let db = app.db().await;
    db.execute_unprepared("UPDATE idempotency_key SET created_at = NOW(3) - INTERVAL 2 DAY").await.unwrap();
    let purged = kit::idempotency::purge(&db, Duration::from_secs(24 * 3600)).await.unwrap();
    assert_eq!(purged, 1);
    let after_purge = charge_with_key(&app, 6, 10, "old").await.unwrap();
    assert!(!replayed(&after_purge), "a purged key is new again");
    assert_eq!(app.balance(6).await, 20);
}

#[tokio::test]
async fn a_request_abandoned_at_its_deadline_does_not_block_its_key() {
    use sea_orm::TransactionTrait;
    let app = spawn_app().await;
    app.charge(9, 100).await.unwrap();
    // Hold the balance row so the keyed charge is still working when its deadline passes.
    let db = app.db().await;
    let blocker = db.begin().await.unwrap();
    blocker
        .execute_raw(Statement::from_string(
            DbBackend::MySql,
            "SELECT balance FROM point_balance WHERE user_id = 9 FOR UPDATE",
        ))
        .await
        .unwrap();
    let mut request = keyed(pb::ChargeRequest { user_id: 9, amount: 50 }, "deadline");
    request.set_timeout(Duration::from_millis(300));
    let abandoned = app.client.clone().charge(request).await.unwrap_err();
    assert!(matches!(abandoned.code(), tonic::Code::DeadlineExceeded | tonic::Code::Cancelled), "{abandoned:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    blocker.rollback().await.unwrap();

    let retry = charge_with_key(&app, 9, 50, "deadline").await.expect("the key is free again, not in progress");
    assert!(!replayed(&retry));
    assert_eq!(app.balance(9).await, 150, "one effect");
}
