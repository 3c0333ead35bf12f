//! Listing and search on a real MariaDB replica (binlog replication from a primary the test
//! starts): served by the replica while it is current, by the primary while it lags, is
//! paused or is gone, and never an error.

use std::time::{Duration, Instant};

use kit::testing::MariadbNode;
use mesh_proto::inventory::v1 as pb;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

use crate::helpers::{TestApp, spawn_app_configured};

/// A row only the replica has: proof that a listing was read there. Its `created_at` in the
/// future puts it first in the `newest` sort.
const REPLICA_ONLY: i64 = 9_000_000_000;

async fn sql(url: &str, statement: &str) {
    let db = Database::connect(url).await.expect("connects");
    db.execute_unprepared(statement).await.unwrap_or_else(|err| panic!("{statement}: {err}"));
    let _ = db.close().await;
}

async fn newest_first(app: &TestApp) -> i64 {
    let page = app.list("", pb::ProductSort::Newest, 0, 5).await;
    page.items.first().map_or(0, |p| p.id)
}

/// Waits until the newest product listed is `id` (every listing must succeed meanwhile).
async fn wait_for_newest(app: &TestApp, id: i64, why: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while newest_first(app).await != id {
        assert!(Instant::now() < deadline, "{why}: the newest listed is still {}", newest_first(app).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn replica_has(replica: &DatabaseConnection, id: i64) -> bool {
    let stmt = sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::MySql,
        "SELECT COUNT(*) FROM product WHERE id = ?",
        [id.into()],
    );
    let row = replica.query_one_raw(stmt).await.ok().flatten();
    row.and_then(|r| r.try_get_by_index::<i64>(0).ok()) == Some(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_reads_a_current_replica_and_falls_back_to_the_primary() {
    let primary = MariadbNode::start(1);
    let mut replica = MariadbNode::start(2);
    sql(
        &replica.url,
        &format!(
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='root', MASTER_PASSWORD='', \
             MASTER_USE_GTID=slave_pos",
            primary.port
        ),
    )
    .await;
    sql(&replica.url, "START SLAVE").await;

    let app = spawn_app_configured(|config| {
        config.service.mysql_url = primary.url.clone();
        config.replicas.urls = vec![replica.url.clone()];
        config.replicas.max_lag = Duration::from_millis(400);
        config.replicas.beat_every = Duration::from_millis(100);
        config.replicas.read_timeout = Duration::from_millis(300);
        config.list_cache_ttl = Duration::ZERO;
    })
    .await;
    let replica_schema = format!("{}/{}", replica.url, app.schema);
    let first = app.create_product("Replicated lamp", 100, 1).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let on_replica = loop {
        if let Ok(db) = Database::connect(&replica_schema).await
            && replica_has(&db, first.id).await
        {
            break db;
        }
        assert!(Instant::now() < deadline, "the product never reached the replica");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    on_replica
        .execute_unprepared(&format!(
            "INSERT INTO product (id, name, price, stock, version, created_at, updated_at) \
             VALUES ({REPLICA_ONLY}, 'Only on the replica', 1, 1, 1, '2100-01-01', '2100-01-01')"
        ))
        .await
        .unwrap();

    // Current: listings come from the replica; a single product (a decision's read) from the primary.
    wait_for_newest(&app, REPLICA_ONLY, "a current replica serves listings").await;
    let missing = app.client.clone().get_product(pb::GetProductRequest { id: REPLICA_ONLY }).await;
    assert_eq!(missing.unwrap_err().code(), tonic::Code::NotFound);

    // Lagging: replication stopped, a product created; past the lag bound the primary serves.
    sql(&replica.url, "STOP SLAVE SQL_THREAD").await;
    let second = app.create_product("Created while the replica lags", 100, 1).await;
    wait_for_newest(&app, second.id, "a lagging replica is left out").await;

    // Caught up: back on the replica (which now has the second product too).
    sql(&replica.url, "START SLAVE SQL_THREAD").await;
    wait_for_newest(&app, REPLICA_ONLY, "a replica that caught up is used again").await;

    // Paused (SIGSTOP), then gone: every listing still answers, from the primary.
    replica.pause();
    let started = Instant::now();
    wait_for_newest(&app, second.id, "a paused replica is left out").await;
    for _ in 0..20 {
        assert_eq!(newest_first(&app).await, second.id);
    }
    assert!(started.elapsed() < Duration::from_secs(10), "listings waited on a paused replica");
    replica.kill();
    for _ in 0..20 {
        assert_eq!(newest_first(&app).await, second.id);
    }
    assert_eq!(app.list("lags", pb::ProductSort::Id, 0, 5).await.total_items, 1);
}
