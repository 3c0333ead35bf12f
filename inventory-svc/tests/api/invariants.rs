//! The invariant watcher over a real schema: a healthy workload keeps every gauge at 0, and
//! a row corrupted behind the service's back is reported within one check period, by id.

use std::time::Duration;

use sea_orm::{ConnectionTrait, TransactionTrait};

use crate::helpers::{TestApp, spawn_app_configured};

/// An app whose watcher checks every second (others keep the 30 s default: less load on a
/// shared MariaDB while the whole suite runs).
async fn spawn_app() -> TestApp {
    spawn_app_configured(|config| config.service.invariant_check_every_secs = 1).await
}

/// One check period (1 s in tests) and room for a pass under load.
const WITHIN: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_healthy_workload_keeps_every_invariant_at_zero() {
    let app = spawn_app().await;
    let product = app.create_product("watched", 100, 10).await;
    app.reserve("healthy-1", &[(product.id, 3)]).await.unwrap();
    app.reserve("healthy-2", &[(product.id, 2)]).await.unwrap();
    app.release("healthy-1").await.unwrap();
    app.release("healthy-1").await.unwrap();
    app.release("never-reserved").await.unwrap();
    kit::testing::assert_every_invariant_holds(&app.invariants, 2).await;
}

#[tokio::test]
async fn a_negative_stock_written_behind_the_service_is_reported_by_id() {
    let app = spawn_app().await;
    let product = app.create_product("corrupted", 100, 10).await;
    let db = app.db().await;
    let txn = db.begin().await.unwrap();
    // The CHECK constraint refuses this; an operator's session can switch it off.
    txn.execute_unprepared("SET SESSION check_constraint_checks = 0").await.unwrap();
    txn.execute_unprepared(&format!("UPDATE product SET stock = -4 WHERE id = {}", product.id)).await.unwrap();
    txn.commit().await.unwrap();
    let found = || app.invariants.of("negative_stock").is_some_and(|(n, _)| n == 1);
    assert!(kit::testing::eventually(WITHIN, found).await, "{:?}", app.invariants.counts());
    let (_, violations) = app.invariants.of("negative_stock").unwrap();
    assert_eq!(violations, vec![format!("product {} has stock -4, expected >= 0", product.id)]);
    assert_eq!(app.invariants.of("reservation_overrelease").map(|(n, _)| n), Some(0));
}

#[tokio::test]
async fn a_reservation_released_without_its_compensation_is_reported() {
    let app = spawn_app().await;
    let product = app.create_product("overreleased", 100, 10).await;
    app.reserve("by-hand", &[(product.id, 2)]).await.unwrap();
    app.db()
        .await
        .execute_unprepared("UPDATE reservation SET released_at = NOW(3) WHERE saga_id = 'by-hand'")
        .await
        .unwrap();
    let found = || app.invariants.of("reservation_overrelease").is_some_and(|(n, _)| n == 1);
    assert!(kit::testing::eventually(WITHIN, found).await, "{:?}", app.invariants.counts());
    let (_, violations) = app.invariants.of("reservation_overrelease").unwrap();
    assert!(violations[0].contains("saga by-hand") && violations[0].contains(&format!("product {}", product.id)));
}
