//! The product cache and the catalog cache on a real 3-master Redis Cluster.

use kit::testing::RedisCluster;
use mesh_proto::inventory::v1 as pb;
use pb::ProductSort;
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::helpers::spawn_app_configured;

async fn cached(cluster: &RedisCluster, key: &str) -> Option<String> {
    let mut redis = kit::cache::connect(&cluster.url).await.unwrap();
    redis::cmd("GET").arg(key).query_async(&mut redis).await.unwrap()
}

#[tokio::test]
async fn product_and_catalog_reads_are_cached_across_a_redis_cluster() {
    let cluster = RedisCluster::start(3);
    let nodes = cluster.addresses().join(",");
    let app = spawn_app_configured(|config| config.service.redis_cluster_nodes = Some(nodes)).await;

    // A read fills the product's entry, on whichever master serves its slot.
    let product = app.create_product("Clustered chair", 100, 10).await;
    assert_eq!(app.product(product.id).await.stock, 10);
    let key = format!("{}inventory:product:{}", app.redis_prefix, product.id);
    assert!(cached(&cluster, &key).await.is_some_and(|v| v.contains("Clustered chair")), "{key} is in the cluster");

    // The next read is the cache's: a change made behind the service's back is not seen...
    app.db()
        .await
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            "UPDATE product SET name = 'changed behind the cache' WHERE id = ?",
            [product.id.into()],
        ))
        .await
        .unwrap();
    assert_eq!(app.product(product.id).await.name, "Clustered chair", "served from the cluster");
    // ...and a change through the service replaces the entry (a newer version).
    app.reserve("cluster-saga", &[(product.id, 3)]).await.unwrap();
    let after = app.product(product.id).await;
    assert_eq!((after.stock, after.version, after.name.as_str()), (7, 2, "changed behind the cache"));

    // The catalog: the generation and a page share one hash tag, so its one-pipeline lookup
    // works on a cluster; a new product raises the generation and shows up.
    assert_eq!(app.list("", ProductSort::Id, 0, 20).await.total_items, 1);
    assert_eq!(app.list("", ProductSort::Id, 0, 20).await.total_items, 1);
    let generation = format!("{}inventory:{{catalog}}:generation", app.redis_prefix);
    assert!(cached(&cluster, &generation).await.is_some(), "{generation} is in the cluster");
    let second = app.create_product("Clustered table", 200, 5).await;
    let page = app.list("", ProductSort::Id, 0, 20).await;
    assert_eq!(page.total_items, 2);
    assert_eq!(page.items.iter().map(|p| p.id).collect::<Vec<_>>(), [product.id, second.id]);
}
