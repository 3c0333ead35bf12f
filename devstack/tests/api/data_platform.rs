use serde_json::{Value, json};

async fn spawn() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(devstack::data_platform::serve(listener));
    url
}

#[tokio::test]
async fn records_orders_and_fails_on_command() {
    kit::testing::install_crypto_provider();
    let base = spawn().await;
    let http = reqwest::Client::new();
    let ok = http.post(format!("{base}/orders")).json(&json!({"orderId": "a"})).send().await.unwrap();
    assert_eq!(ok.status(), 200);

    let control =
        http.post(format!("{base}/_control")).json(&json!({"failMode": "next", "count": 2})).send().await.unwrap();
    assert_eq!(control.status(), 200);
    for _ in 0..2 {
        let failed = http.post(format!("{base}/orders")).json(&json!({"orderId": "b"})).send().await.unwrap();
        assert_eq!(failed.status(), 503);
    }
    let recovered = http.post(format!("{base}/orders")).json(&json!({"orderId": "b"})).send().await.unwrap();
    assert_eq!(recovered.status(), 200);

    http.post(format!("{base}/_control")).json(&json!({"failMode": "always"})).send().await.unwrap();
    for _ in 0..3 {
        let failed = http.post(format!("{base}/orders")).json(&json!({"orderId": "c"})).send().await.unwrap();
        assert_eq!(failed.status(), 503);
    }
    http.post(format!("{base}/_control")).json(&json!({"failMode": "none", "latencyMs": 150})).send().await.unwrap();
    let started = std::time::Instant::now();
    http.post(format!("{base}/orders")).json(&json!({"orderId": "d"})).send().await.unwrap();
    assert!(started.elapsed().as_millis() >= 150, "latency is applied");

    let received: Value = http.get(format!("{base}/received")).send().await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = received["items"].as_array().unwrap().iter().map(|o| o["orderId"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["a", "b", "d"]);
    assert_eq!(received["calls"], 8);
}
