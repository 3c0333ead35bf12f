use kit::shutdown::CancellationToken;
use serde_json::Value;

use crate::helpers::{spawn_gateway, spawn_mesh};

#[tokio::test]
async fn health_readiness_metrics_openapi_and_docs() {
    let mesh = spawn_mesh().await;
    assert_eq!(mesh.http.get(mesh.url("/healthz")).send().await.unwrap().status(), 200);
    let ready = mesh.http.get(mesh.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<Value>().await.unwrap()["upstreams"]["inventory"], "serving");

    mesh.http.get(mesh.url("/v1/products")).send().await.unwrap();
    let metrics = mesh.http.get(mesh.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("http_requests_total"), "{metrics}");

    let spec: Value = mesh.http.get(mesh.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in ["/v1/products", "/v1/products/{id}", "/v1/products/{id}/stock"] {
        assert!(spec["paths"][path].is_object(), "{path} documented");
    }
    let docs = mesh.http.get(mesh.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    let html = docs.text().await.unwrap();
    assert!(html.contains("swagger"), "the docs page is served locally");
    assert!(!html.contains("cdn."), "the docs page loads nothing from a CDN");
}

#[tokio::test]
async fn readiness_fails_when_an_upstream_is_down_and_calls_are_503() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let shutdown = CancellationToken::new();
    let base = spawn_gateway(Some(dead), shutdown.clone()).await;
    let http = reqwest::Client::new();
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let resp = http.get(format!("{base}/v1/products/1")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "UNAVAILABLE");
    shutdown.cancel();
}

#[tokio::test]
async fn an_unconfigured_service_answers_503_not_500() {
    let shutdown = CancellationToken::new();
    let base = spawn_gateway(None, shutdown.clone()).await;
    let resp = reqwest::get(format!("{base}/v1/products")).await.unwrap();
    assert_eq!(resp.status(), 503);
    shutdown.cancel();
}
