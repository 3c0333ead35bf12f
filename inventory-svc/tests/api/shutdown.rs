use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::helpers::spawn_app_configured;

/// Long enough that a loaded test machine still checks health inside the drain window.
const DRAIN: Duration = Duration::from_millis(1_500);

#[tokio::test]
async fn shutdown_reports_not_serving_then_lets_in_flight_calls_finish() {
    let app = spawn_app_configured(|config| config.service.shutdown_drain_ms = DRAIN.as_millis() as u64).await;
    let p = app.create_product("P", 1, 10).await;

    // Hold the product's row lock so a reservation is provably in flight during shutdown.
    let db = app.db().await;
    let blocker = db.begin().await.unwrap();
    blocker
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            "SELECT id FROM product WHERE id = ? FOR UPDATE",
            [p.id.into()],
        ))
        .await
        .unwrap();
    let in_flight = {
        let mut client = app.client.clone();
        let req = mesh_proto::inventory::v1::ReserveStockRequest {
            saga: Some(crate::helpers::saga("in-flight", kit::saga::Op::Action)),
            lines: vec![mesh_proto::inventory::v1::StockLine { product_id: p.id, quantity: 2 }],
        };
        tokio::spawn(async move { client.reserve_stock(req).await })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;

    app.begin_shutdown();
    let shutdown_began = Instant::now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // During the drain delay the listener still accepts, and health says NOT_SERVING.
    let channel =
        tonic::transport::Channel::from_shared(format!("http://{}", app.addr)).unwrap().connect().await.unwrap();
    let health = HealthClient::new(channel).check(HealthCheckRequest { service: String::new() }).await.unwrap();
    assert_eq!(health.into_inner().status, ServingStatus::NotServing as i32);

    blocker.commit().await.unwrap();
    let reserved = in_flight.await.unwrap().expect("the in-flight call finishes normally");
    assert_eq!(reserved.into_inner().lines[0].quantity, 2);
    assert_eq!(app.stock_in_db(p.id).await, 8);

    tokio::time::sleep((shutdown_began + DRAIN + Duration::from_millis(500)).saturating_duration_since(Instant::now()))
        .await;
    let refused = tonic::transport::Channel::from_shared(format!("http://{}", app.addr)).unwrap().connect().await;
    assert!(refused.is_err(), "after the drain the listener is closed");
}
