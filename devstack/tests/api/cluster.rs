//! devstack with `--redis-cluster`: coupon-svc's gate and inventory-svc's caches on a real
//! 3-master Redis Cluster, through the gateway.

use serde_json::{Value, json};

use crate::stack::{StackOptions, coupon_race, start_stack_with};

#[tokio::test]
async fn the_stack_keeps_its_gate_and_caches_on_a_redis_cluster() {
    kit::testing::install_crypto_provider();
    let cluster = kit::testing::RedisCluster::start(3);
    let nodes = cluster.addresses();
    let extra: Vec<&str> = nodes.iter().flat_map(|node| ["--redis-cluster", node.as_str()]).collect();
    let stack = start_stack_with(StackOptions { extra: &extra, auth_off: true, ..StackOptions::default() }).await;
    let http = reqwest::Client::new();
    let gw = stack.gateway.clone();

    let (coupon, sequences) = coupon_race(&http, &gw, 20, 1..=100).await;
    assert_eq!(sequences, (1..=20).collect::<Vec<_>>());

    let product: Value = http
        .post(format!("{gw}/v1/products"))
        .json(&json!({"name": "clustered", "price": 10, "stock": 5}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for _ in 0..2 {
        let read: Value =
            http.get(format!("{gw}/v1/products/{}", product["id"])).send().await.unwrap().json().await.unwrap();
        assert_eq!(read["stock"], 5);
    }

    // The keys are on the cluster, not on the stack's plain Redis.
    let gate = format!("{}coupon:gate:{{{}}}", stack.prefix(), coupon);
    let cached = format!("{}inventory:product:{}", stack.prefix(), product["id"]);
    let mut on_cluster = kit::cache::connect(&cluster.url).await.unwrap();
    let mut plain = kit::cache::connect(&kit::testing::redis_url()).await.unwrap();
    for key in [&gate, &cached] {
        let there: i64 = redis::cmd("EXISTS").arg(key).query_async(&mut on_cluster).await.unwrap();
        let here: i64 = redis::cmd("EXISTS").arg(key).query_async(&mut plain).await.unwrap();
        assert_eq!((there, here), (1, 0), "{key}");
    }
    assert!(stack.stop().await.success());
}
