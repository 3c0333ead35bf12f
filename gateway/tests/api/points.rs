use serde_json::{Value, json};

use crate::helpers::{TestMesh, expect_problem, spawn_mesh};

impl TestMesh {
    async fn post_points(&self, path: &str, body: Value, key: Option<&str>) -> reqwest::Response {
        let mut request = self.http.post(self.url(path)).json(&body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        request.send().await.unwrap()
    }

    async fn balance(&self, user: i64) -> Value {
        self.http.get(self.url(&format!("/v1/points/{user}"))).send().await.unwrap().json().await.unwrap()
    }
}

#[tokio::test]
async fn balance_charge_use_and_history() {
    let mesh = spawn_mesh().await;
    let fresh = mesh.balance(7).await;
    assert_eq!(fresh, json!({"userId": 7, "balance": 0, "updatedAt": null}));

    let charged = mesh.post_points("/v1/points/charge", json!({"userId": 7, "amount": 5000}), None).await;
    assert_eq!(charged.status(), 200);
    let body: Value = charged.json().await.unwrap();
    assert_eq!(body["balance"], 5000);
    assert!(body["updatedAt"].as_str().is_some_and(|t| t.ends_with('Z')));

    let used = mesh.post_points("/v1/points/use", json!({"userId": 7, "amount": 3000}), None).await;
    assert_eq!(used.json::<Value>().await.unwrap()["balance"], 2000);
    let short = mesh.post_points("/v1/points/use", json!({"userId": 7, "amount": 2001}), None).await;
    expect_problem(short, 409, "INSUFFICIENT_POINTS").await;
    assert_eq!(mesh.balance(7).await["balance"], 2000);

    let history: Value =
        mesh.http.get(mesh.url("/v1/points/7/history?limit=50")).send().await.unwrap().json().await.unwrap();
    let items = history["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        (items[0]["type"].clone(), items[0]["amount"].clone(), items[0]["balanceAfter"].clone()),
        (json!("USE"), json!(3000), json!(2000))
    );
    assert_eq!(items[1]["type"], "CHARGE");
    assert_eq!(items[0]["orderId"], Value::Null);
    for bad in ["limit=0", "limit=201", "limit=x"] {
        let resp = mesh.http.get(mesh.url(&format!("/v1/points/7/history?{bad}"))).send().await.unwrap();
        assert_eq!(expect_problem(resp, 400, "VALIDATION_FAILED").await["field"], "limit");
    }
}

#[tokio::test]
async fn every_points_validation_row_is_a_400_and_changes_nothing() {
    let mesh = spawn_mesh().await;
    mesh.post_points("/v1/points/charge", json!({"userId": 1, "amount": 100}), None).await;
    let cases = [
        ("/v1/points/charge", r#"{"userId":1,"amount":0}"#, "amount"),
        ("/v1/points/charge", r#"{"userId":1,"amount":-1}"#, "amount"),
        ("/v1/points/charge", r#"{"userId":1,"amount":10000001}"#, "amount"),
        ("/v1/points/charge", r#"{"userId":1}"#, "amount"),
        ("/v1/points/charge", r#"{"amount":5}"#, "userId"),
        ("/v1/points/charge", r#"{"userId":1,"amount":"5"}"#, "amount"),
        ("/v1/points/charge", r#"{"userId":1,"amount":5.5}"#, "amount"),
        ("/v1/points/charge", r#"{"userId":0,"amount":5}"#, "userId"),
        ("/v1/points/charge", r#"{"userId":"x","amount":5}"#, "userId"),
        ("/v1/points/use", r#"{"userId":1,"amount":0}"#, "amount"),
        ("/v1/points/use", r#"{"userId":1,"amount":-7}"#, "amount"),
        ("/v1/points/use", r#"{"userId":1,"amount":1000000001}"#, "amount"),
        ("/v1/points/use", r#"{"userId":1}"#, "amount"),
        ("/v1/points/use", r#"{"userId":1,"amount":null}"#, "amount"),
    ];
    for (path, body, field) in cases {
        let resp =
            mesh.http.post(mesh.url(path)).header("content-type", "application/json").body(body).send().await.unwrap();
        let problem = expect_problem(resp, 400, "VALIDATION_FAILED").await;
        assert_eq!(problem["field"], field, "{path} {body}");
    }
    for bad in ["0", "-1", "abc"] {
        let resp = mesh.http.get(mesh.url(&format!("/v1/points/{bad}"))).send().await.unwrap();
        assert_eq!(expect_problem(resp, 400, "VALIDATION_FAILED").await["field"], "userId");
    }
    assert_eq!(mesh.balance(1).await["balance"], 100);
}

#[tokio::test]
async fn a_charge_over_the_cap_is_400_on_amount() {
    let mesh = spawn_mesh().await;
    for _ in 0..100 {
        let ok = mesh.post_points("/v1/points/charge", json!({"userId": 2, "amount": 10_000_000}), None).await;
        assert_eq!(ok.status(), 200);
    }
    let over = mesh.post_points("/v1/points/charge", json!({"userId": 2, "amount": 1}), None).await;
    assert_eq!(expect_problem(over, 400, "VALIDATION_FAILED").await["field"], "amount");
    assert_eq!(mesh.balance(2).await["balance"], 1_000_000_000);
}

#[tokio::test]
async fn idempotency_keys_over_http() {
    let mesh = spawn_mesh().await;
    let body = json!({"userId": 3, "amount": 700});
    let calls = (0..10).map(|_| mesh.post_points("/v1/points/charge", body.clone(), Some("\"charge-3-a\"")));
    let responses = futures::future::join_all(calls).await;
    for resp in responses {
        assert!(resp.status() == 200 || resp.status() == 409, "{}", resp.status());
        if resp.status() == 409 {
            expect_problem(resp, 409, "REQUEST_IN_PROGRESS").await;
        }
    }
    assert_eq!(mesh.balance(3).await["balance"], 700, "one effect");

    let replay = mesh.post_points("/v1/points/charge", body.clone(), Some("charge-3-a")).await;
    assert_eq!(replay.status(), 200);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.unwrap()["balance"], 700);

    let reused = mesh.post_points("/v1/points/charge", json!({"userId": 3, "amount": 701}), Some("charge-3-a")).await;
    expect_problem(reused, 422, "IDEMPOTENCY_KEY_REUSED").await;

    let short = mesh.post_points("/v1/points/use", json!({"userId": 3, "amount": 5000}), Some("use-3")).await;
    expect_problem(short, 409, "INSUFFICIENT_POINTS").await;
    let short_again = mesh.post_points("/v1/points/use", json!({"userId": 3, "amount": 5000}), Some("use-3")).await;
    assert_eq!(short_again.headers()["idempotent-replayed"], "true");
    expect_problem(short_again, 409, "INSUFFICIENT_POINTS").await;

    for bad in ["", "\"\"", &"k".repeat(256)] {
        let resp = mesh.post_points("/v1/points/charge", body.clone(), Some(bad)).await;
        expect_problem(resp, 400, "IDEMPOTENCY_KEY_MISSING").await;
    }
    assert_eq!(mesh.balance(3).await["balance"], 700);
}
