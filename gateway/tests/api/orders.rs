//! The order routes' own checks: everything the gateway refuses before payment-svc is asked.
//! The gateway here has no upstream at all, so a request that passes every check gets
//! `503 UNAVAILABLE` ("payment is not configured"), never a 5xx for a malformed one.

use kit::shutdown::CancellationToken;
use serde_json::{Value, json};

use crate::helpers::{expect_problem, spawn_gateway};

const ORDER_ID: &str = "67e55044-10b1-426f-9247-bb680e5fe0c8";

struct Gateway {
    base: String,
    http: reqwest::Client,
    shutdown: CancellationToken,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn gateway_without_payment() -> Gateway {
    let shutdown = CancellationToken::new();
    let base = spawn_gateway(None, shutdown.clone()).await;
    Gateway { base, http: crate::helpers::admin_client(), shutdown }
}

impl Gateway {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn place(&self, body: &str, key: Option<&str>) -> reqwest::Response {
        let mut request =
            self.http.post(self.url("/v1/orders")).header("content-type", "application/json").body(body.to_owned());
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        request.send().await.unwrap()
    }

    async fn change_status(&self, order_id: &str, body: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self
            .http
            .put(self.url(&format!("/v1/orders/{order_id}/status")))
            .header("content-type", "application/json")
            .body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }
}

/// The answer to a request that passed every check of the gateway.
async fn expect_payment_unavailable(resp: reqwest::Response) {
    let problem = expect_problem(resp, 503, "UNAVAILABLE").await;
    assert!(problem["detail"].as_str().unwrap().contains("payment"), "{problem}");
}

#[tokio::test]
async fn every_place_order_validation_row_is_a_400_naming_the_field() {
    let gw = gateway_without_payment().await;
    let fifty_one = (1..=51).map(|p| json!({"productId": p, "quantity": 1})).collect::<Vec<_>>();
    let fifty = (1..=50).map(|p| json!({"productId": p, "quantity": 1})).collect::<Vec<_>>();
    let cases: Vec<(String, &str)> = vec![
        ("{not json".into(), "body"),
        ("".into(), "body"),
        ("[]".into(), "body"),
        (r#"{"items":[{"productId":1,"quantity":1}]}"#.into(), "userId"),
        (r#"{"userId":0,"items":[{"productId":1,"quantity":1}]}"#.into(), "userId"),
        (r#"{"userId":-7,"items":[{"productId":1,"quantity":1}]}"#.into(), "userId"),
        (r#"{"userId":"7","items":[{"productId":1,"quantity":1}]}"#.into(), "userId"),
        (r#"{"userId":7}"#.into(), "items"),
        (r#"{"userId":7,"items":null}"#.into(), "items"),
        (r#"{"userId":7,"items":{}}"#.into(), "items"),
        (r#"{"userId":7,"items":[]}"#.into(), "items"),
        (json!({"userId": 7, "items": fifty_one}).to_string(), "items"),
        (r#"{"userId":7,"items":[{"productId":1,"quantity":0}]}"#.into(), "items[0].quantity"),
        (r#"{"userId":7,"items":[{"productId":1,"quantity":-1}]}"#.into(), "items[0].quantity"),
        (
            r#"{"userId":7,"items":[{"productId":1,"quantity":1},{"productId":2,"quantity":1001}]}"#.into(),
            "items[1].quantity",
        ),
        (r#"{"userId":7,"items":[{"productId":1,"quantity":1.5}]}"#.into(), "items[0].quantity"),
        (r#"{"userId":7,"items":[{"productId":1,"quantity":"2"}]}"#.into(), "items[0].quantity"),
        (r#"{"userId":7,"items":[{"productId":1}]}"#.into(), "items[0].quantity"),
        (r#"{"userId":7,"items":[{"quantity":1}]}"#.into(), "items[0].productId"),
        (r#"{"userId":7,"items":[{"productId":0,"quantity":1}]}"#.into(), "items[0].productId"),
        (
            r#"{"userId":7,"items":[{"productId":2,"quantity":1},{"productId":-2,"quantity":1}]}"#.into(),
            "items[1].productId",
        ),
        (r#"{"userId":7,"items":[{"productId":99999999999999999999,"quantity":1}]}"#.into(), "items[0].productId"),
        (r#"{"userId":7,"items":[{"productId":3,"quantity":1},{"productId":3,"quantity":2}]}"#.into(), "items"),
        (r#"{"userId":7,"items":[{"productId":1,"quantity":1}],"userCouponId":0}"#.into(), "userCouponId"),
        (r#"{"userId":7,"items":[{"productId":1,"quantity":1}],"userCouponId":-1}"#.into(), "userCouponId"),
        (r#"{"userId":7,"items":[{"productId":1,"quantity":1}],"userCouponId":"981"}"#.into(), "userCouponId"),
    ];
    for (body, field) in cases {
        let resp = gw.place(&body, Some("order-key-1")).await;
        let problem = expect_problem(resp, 400, "VALIDATION_FAILED").await;
        assert_eq!(problem["field"], field, "body {body}: {problem}");
    }

    // The bounds themselves pass, as do a null coupon and unknown fields.
    let valid = [
        json!({"userId": 7, "items": fifty}),
        json!({"userId": 7, "items": [{"productId": 1, "quantity": 1000}], "userCouponId": 981}),
        json!({"userId": 7, "items": [{"productId": 1, "quantity": 1}], "userCouponId": null, "note": "x"}),
    ];
    for body in valid {
        expect_payment_unavailable(gw.place(&body.to_string(), Some("order-key-1")).await).await;
    }
}

#[tokio::test]
async fn placing_an_order_requires_a_sane_idempotency_key() {
    let gw = gateway_without_payment().await;
    let body = json!({"userId": 7, "items": [{"productId": 1, "quantity": 2}]}).to_string();
    let too_long = "k".repeat(256);
    for key in [None, Some(""), Some("  "), Some("\"\""), Some(too_long.as_str())] {
        let resp = gw.place(&body, key).await;
        expect_problem(resp, 400, "IDEMPOTENCY_KEY_MISSING").await;
    }
    for key in ["a", "\"quoted-key\"", &"k".repeat(255)] {
        expect_payment_unavailable(gw.place(&body, Some(key)).await).await;
    }
}

#[tokio::test]
async fn order_ids_in_paths_must_be_uuids() {
    let gw = gateway_without_payment().await;
    for bad in ["1", "abc", "67e55044-10b1-426f-9247-bb680e5fe0c", "67e55044-10b1-426f-9247-bb680e5fe0c8x", "%20"] {
        let resp = gw.http.get(gw.url(&format!("/v1/orders/{bad}"))).send().await.unwrap();
        assert_eq!(expect_problem(resp, 400, "VALIDATION_FAILED").await["field"], "orderId", "{bad}");
        let resp = gw.change_status(bad, r#"{"status":"CANCELLED"}"#, &[]).await;
        assert_eq!(expect_problem(resp, 400, "VALIDATION_FAILED").await["field"], "orderId", "{bad}");
    }
    for good in [ORDER_ID, "67E55044-10B1-426F-9247-BB680E5FE0C8", "67e5504410b1426f9247bb680e5fe0c8"] {
        let resp = gw.http.get(gw.url(&format!("/v1/orders/{good}"))).send().await.unwrap();
        expect_payment_unavailable(resp).await;
    }
}

#[tokio::test]
async fn user_orders_check_the_user_and_the_limit() {
    let gw = gateway_without_payment().await;
    for bad in ["0", "-1", "abc", "99999999999999999999"] {
        let resp = gw.http.get(gw.url(&format!("/v1/users/{bad}/orders"))).send().await.unwrap();
        assert_eq!(expect_problem(resp, 400, "VALIDATION_FAILED").await["field"], "userId", "{bad}");
    }
    for bad in ["limit=0", "limit=101", "limit=-1", "limit=x", "limit="] {
        let resp = gw.http.get(gw.url(&format!("/v1/users/7/orders?{bad}"))).send().await.unwrap();
        assert_eq!(expect_problem(resp, 400, "VALIDATION_FAILED").await["field"], "limit", "{bad}");
    }
    for good in ["", "?limit=1", "?limit=100"] {
        let resp = gw.http.get(gw.url(&format!("/v1/users/7/orders{good}"))).send().await.unwrap();
        expect_payment_unavailable(resp).await;
    }
}

#[tokio::test]
async fn every_status_change_validation_row_is_a_400() {
    let gw = gateway_without_payment().await;
    let bodies = [
        (r#"{"status":"cancelled"}"#, "status"),
        (r#"{"status":"UNSPECIFIED"}"#, "status"),
        (r#"{"status":"ORDER_STATUS_CANCELLED"}"#, "status"),
        (r#"{"status":""}"#, "status"),
        (r#"{"status":5}"#, "status"),
        (r#"{"status":null}"#, "status"),
        (r#"{}"#, "status"),
        ("", "body"),
        ("{", "body"),
    ];
    for (body, field) in bodies {
        let resp = gw.change_status(ORDER_ID, body, &[]).await;
        assert_eq!(expect_problem(resp, 400, "VALIDATION_FAILED").await["field"], field, "{body}");
    }
    for if_match in ["\"abc\"", "W/\"3\"", "\"\"", "1.5"] {
        let resp = gw.change_status(ORDER_ID, r#"{"status":"CANCELLED"}"#, &[("if-match", if_match)]).await;
        assert_eq!(expect_problem(resp, 400, "VALIDATION_FAILED").await["field"], "If-Match", "{if_match}");
    }
    let too_long = "k".repeat(256);
    for key in ["", "\"\"", too_long.as_str()] {
        let resp = gw.change_status(ORDER_ID, r#"{"status":"CANCELLED"}"#, &[("idempotency-key", key)]).await;
        expect_problem(resp, 400, "IDEMPOTENCY_KEY_MISSING").await;
    }
    // Every status is accepted; If-Match and Idempotency-Key are optional.
    for status in ["PENDING", "COMPLETED", "FAILED", "CANCELLING", "CANCELLED"] {
        let body = json!({"status": status}).to_string();
        expect_payment_unavailable(gw.change_status(ORDER_ID, &body, &[]).await).await;
    }
    let headers = [("if-match", "\"3\""), ("idempotency-key", "cancel-1")];
    expect_payment_unavailable(gw.change_status(ORDER_ID, r#"{"status":"CANCELLED"}"#, &headers).await).await;
    expect_payment_unavailable(gw.change_status(ORDER_ID, r#"{"status":"CANCELLED"}"#, &[("if-match", "*")]).await)
        .await;
}

#[tokio::test]
async fn order_routes_are_documented_and_other_methods_are_405() {
    let gw = gateway_without_payment().await;
    let spec: Value = gw.http.get(gw.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    for (path, method) in [
        ("/v1/orders", "post"),
        ("/v1/orders/{orderId}", "get"),
        ("/v1/orders/{orderId}/status", "put"),
        ("/v1/users/{userId}/orders", "get"),
    ] {
        let operation = &spec["paths"][path][method];
        assert_eq!(operation["tags"], json!(["orders"]), "{method} {path}");
    }
    let order = &spec["components"]["schemas"]["OrderBody"];
    assert!(order["properties"]["steps"].is_object() && order["properties"]["failureCode"].is_object(), "{order}");

    let resp = gw.http.get(gw.url("/v1/orders")).send().await.unwrap();
    expect_problem(resp, 405, "METHOD_NOT_ALLOWED").await;
    let resp = gw.http.delete(gw.url(&format!("/v1/orders/{ORDER_ID}"))).send().await.unwrap();
    expect_problem(resp, 405, "METHOD_NOT_ALLOWED").await;
}
