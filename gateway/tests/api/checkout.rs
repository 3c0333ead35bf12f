//! The order routes end to end: the gateway in front of the real payment-svc (the checkout
//! saga), inventory, coupon and point services and the mock data platform, over HTTP only.

use reqwest::Response;
use serde_json::{Value, json};

use crate::helpers::{TestMesh, expect_problem, spawn_mesh, spawn_mesh_answering_within};

const UNKNOWN_ORDER: &str = "67e55044-10b1-426f-9247-bb680e5fe0c8";
const STEP_NAMES: [&str; 5] = ["RESERVE_STOCK", "USE_COUPON", "PAY_POINTS", "RECORD_PAYMENT", "TRANSMIT_DATA"];

/// A product of `price` won with `stock` units; its id.
async fn product(mesh: &TestMesh, price: i64, stock: i64) -> i64 {
    mesh.create_product("checkout item", price, stock).await["id"].as_i64().unwrap()
}

async fn stock(mesh: &TestMesh, product_id: i64) -> i64 {
    let resp = mesh.http.get(mesh.url(&format!("/v1/products/{product_id}"))).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().await.unwrap()["stock"].as_i64().unwrap()
}

async fn charge(mesh: &TestMesh, user_id: i64, amount: i64) {
    let resp = mesh
        .http
        .post(mesh.url("/v1/points/charge"))
        .json(&json!({"userId": user_id, "amount": amount}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

async fn balance(mesh: &TestMesh, user_id: i64) -> i64 {
    let resp = mesh.http.get(mesh.url(&format!("/v1/points/{user_id}"))).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().await.unwrap()["balance"].as_i64().unwrap()
}

/// A FIXED coupon of `value` won, issued to `user_id`; the user coupon id.
async fn fixed_coupon(mesh: &TestMesh, user_id: i64, value: i64) -> i64 {
    let resp = mesh
        .http
        .post(mesh.url("/v1/coupons"))
        .json(&json!({"name": "checkout coupon", "discountType": "FIXED", "discountValue": value,
                      "maxDiscount": null, "totalQuantity": 10, "issueStartsAt": null, "issueEndsAt": null,
                      "validDays": 30}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let coupon_id = resp.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let resp = mesh
        .http
        .post(mesh.url(&format!("/v1/coupons/{coupon_id}/issue")))
        .json(&json!({"userId": user_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    resp.json::<Value>().await.unwrap()["userCouponId"].as_i64().unwrap()
}

/// User coupon `id` of `user_id` as listed by `GET /v1/users/{userId}/coupons`.
async fn user_coupon(mesh: &TestMesh, user_id: i64, id: i64) -> Value {
    let resp = mesh.http.get(mesh.url(&format!("/v1/users/{user_id}/coupons"))).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let list: Value = resp.json().await.unwrap();
    list["items"].as_array().unwrap().iter().find(|c| c["userCouponId"] == id).expect("user coupon listed").clone()
}

async fn coupon_status(mesh: &TestMesh, user_id: i64, id: i64) -> String {
    user_coupon(mesh, user_id, id).await["status"].as_str().unwrap().to_owned()
}

async fn place(mesh: &TestMesh, key: Option<&str>, body: &Value) -> Response {
    let mut request = mesh.http.post(mesh.url("/v1/orders")).json(body);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    request.send().await.unwrap()
}

async fn get_order(mesh: &TestMesh, order_id: &str) -> Response {
    mesh.http.get(mesh.url(&format!("/v1/orders/{order_id}"))).send().await.unwrap()
}

/// `GET /v1/orders/{orderId}`, expected to be a `200`.
async fn order(mesh: &TestMesh, order_id: &str) -> Value {
    let resp = get_order(mesh, order_id).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn change_status(mesh: &TestMesh, order_id: &str, status: &str, headers: &[(&str, &str)]) -> Response {
    let mut request =
        mesh.http.put(mesh.url(&format!("/v1/orders/{order_id}/status"))).json(&json!({"status": status}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

async fn user_orders(mesh: &TestMesh, user_id: i64, query: &str) -> Vec<Value> {
    let resp = mesh.http.get(mesh.url(&format!("/v1/users/{user_id}/orders{query}"))).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().await.unwrap()["items"].as_array().unwrap().clone()
}

async fn platform_control(mesh: &TestMesh, control: Value) {
    let resp = mesh.http.post(format!("{}/_control", mesh.platform)).json(&control).send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
}

/// Orders the mock data platform has accepted.
async fn platform_received(mesh: &TestMesh) -> u64 {
    let got: Value = mesh.http.get(format!("{}/received", mesh.platform)).send().await.unwrap().json().await.unwrap();
    got["count"].as_u64().unwrap()
}

fn header<'a>(resp: &'a Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).map(|v| v.to_str().unwrap())
}

/// (status, step name -> status) of an order read with `GET /v1/orders/{orderId}`.
fn steps(order: &Value) -> Vec<(String, String)> {
    let steps = order["steps"].as_array().unwrap_or_else(|| panic!("steps: {order}"));
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, STEP_NAMES, "{order}");
    for step in steps {
        assert!(step["updatedAt"].as_str().is_some_and(|t| t.ends_with('Z')), "{step}");
    }
    steps.iter().map(|s| (s["name"].as_str().unwrap().to_owned(), s["status"].as_str().unwrap().to_owned())).collect()
}

fn step_statuses(order: &Value) -> Vec<String> {
    steps(order).into_iter().map(|(_, status)| status).collect()
}

/// Stock of `product_id`, balance of `user_id`, status of the user coupon: what an order
/// changes, to compare before and after.
async fn snapshot(mesh: &TestMesh, product_id: i64, user_id: i64, user_coupon_id: i64) -> (i64, i64, String) {
    (stock(mesh, product_id).await, balance(mesh, user_id).await, coupon_status(mesh, user_id, user_coupon_id).await)
}

fn is_timestamp(value: &Value) -> bool {
    value.as_str().is_some_and(|t| t.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(t).is_ok())
}

#[tokio::test]
async fn an_order_with_a_fixed_coupon_takes_stock_coupon_and_points() {
    let mesh = spawn_mesh().await;
    let user = 101;
    let keyboard = product(&mesh, 39_000, 10).await;
    charge(&mesh, user, 100_000).await;
    let coupon = fixed_coupon(&mesh, user, 3_000).await;

    let body = json!({"userId": user, "items": [{"productId": keyboard, "quantity": 2}], "userCouponId": coupon});
    let resp = place(&mesh, Some("first-order"), &body).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(header(&resp, "content-type"), Some("application/json"));
    assert_eq!(header(&resp, "etag"), Some("\"1\""));
    assert_eq!(header(&resp, "idempotent-replayed"), None);
    let location = header(&resp, "location").expect("Location").to_owned();
    let placed: Value = resp.json().await.unwrap();
    let order_id = placed["orderId"].as_str().unwrap().to_owned();
    uuid::Uuid::parse_str(&order_id).expect("orderId is a UUID");
    assert_eq!(location, format!("/v1/orders/{order_id}"));

    let expected = json!({
        "orderId": order_id, "userId": user, "status": "COMPLETED",
        "items": [{"productId": keyboard, "quantity": 2, "unitPrice": 39_000, "amount": 78_000}],
        "totalAmount": 78_000, "discountAmount": 3_000, "paidAmount": 75_000,
        "userCouponId": coupon, "failureCode": null, "version": 1,
    });
    for (field, value) in expected.as_object().unwrap() {
        assert_eq!(&placed[field], value, "{field}: {placed}");
    }
    assert!(is_timestamp(&placed["createdAt"]) && is_timestamp(&placed["updatedAt"]), "{placed}");
    assert!(placed.get("steps").is_none(), "steps only in GET /v1/orders/{{orderId}}: {placed}");

    assert_eq!(stock(&mesh, keyboard).await, 8);
    assert_eq!(balance(&mesh, user).await, 25_000);
    let used = user_coupon(&mesh, user, coupon).await;
    assert_eq!(used["status"], "USED", "{used}");
    assert_eq!(used["orderId"], order_id.as_str(), "{used}");
    assert!(is_timestamp(&used["usedAt"]), "{used}");
    assert_eq!(platform_received(&mesh).await, 1);

    // The order as stored, with its saga.
    let resp = get_order(&mesh, &order_id).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "etag"), Some("\"1\""));
    assert_eq!(header(&resp, "location"), None);
    let stored: Value = resp.json().await.unwrap();
    for (field, value) in expected.as_object().unwrap() {
        assert_eq!(&stored[field], value, "{field}: {stored}");
    }
    assert_eq!(step_statuses(&stored), ["DONE"; 5]);

    // Any spelling of the id finds it.
    let upper = order(&mesh, &order_id.to_uppercase()).await;
    assert_eq!(upper["orderId"], order_id.as_str());
}

#[tokio::test]
async fn placing_an_order_is_idempotent_per_key() {
    let mesh = spawn_mesh().await;
    let user = 102;
    let mouse = product(&mesh, 5_000, 10).await;
    charge(&mesh, user, 50_000).await;
    let body = json!({"userId": user, "items": [{"productId": mouse, "quantity": 3}]});

    let first = place(&mesh, Some("idem-1"), &body).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    assert_eq!((first["totalAmount"].clone(), first["discountAmount"].clone()), (json!(15_000), json!(0)));
    assert_eq!((first["paidAmount"].clone(), first["userCouponId"].clone()), (json!(15_000), Value::Null));

    // The same request again: the first answer, replayed, nothing changed.
    let again = place(&mesh, Some("idem-1"), &body).await;
    assert_eq!(again.status(), 201);
    assert_eq!(header(&again, "idempotent-replayed"), Some("true"));
    assert_eq!(header(&again, "etag"), Some("\"1\""));
    let location = header(&again, "location").map(str::to_owned);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["orderId"], first["orderId"]);
    assert_eq!(location, Some(format!("/v1/orders/{}", first["orderId"].as_str().unwrap())));
    assert_eq!(again, first);
    assert_eq!(stock(&mesh, mouse).await, 7);
    assert_eq!(balance(&mesh, user).await, 35_000);

    // The same key with another body.
    let other = json!({"userId": user, "items": [{"productId": mouse, "quantity": 4}]});
    let problem = expect_problem(place(&mesh, Some("idem-1"), &other).await, 422, "IDEMPOTENCY_KEY_REUSED").await;
    assert!(problem.get("orderId").is_none_or(|id| id == &first["orderId"]), "{problem}");

    // No key at all.
    expect_problem(place(&mesh, None, &body).await, 400, "IDEMPOTENCY_KEY_MISSING").await;

    // A new key is a new order.
    let second = place(&mesh, Some("idem-2"), &body).await;
    assert_eq!(second.status(), 201);
    assert_eq!(header(&second, "idempotent-replayed"), None);
    let second: Value = second.json().await.unwrap();
    assert_ne!(second["orderId"], first["orderId"]);

    assert_eq!(stock(&mesh, mouse).await, 4);
    assert_eq!(balance(&mesh, user).await, 20_000);
    assert_eq!(user_orders(&mesh, user, "").await.len(), 2);
}

#[tokio::test]
async fn idempotency_keys_are_scoped_to_the_user() {
    let mesh = spawn_mesh().await;
    let pen = product(&mesh, 1_000, 10).await;
    charge(&mesh, 103, 5_000).await;
    charge(&mesh, 104, 5_000).await;

    let body = |user: i64| json!({"userId": user, "items": [{"productId": pen, "quantity": 1}]});
    let first = place(&mesh, Some("shared-key"), &body(103)).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let second = place(&mesh, Some("shared-key"), &body(104)).await;
    assert_eq!(second.status(), 201, "another user's key is another key");
    assert_eq!(header(&second, "idempotent-replayed"), None);
    let second: Value = second.json().await.unwrap();
    assert_ne!(second["orderId"], first["orderId"]);
    assert_eq!(second["userId"], 104);
    assert_eq!(stock(&mesh, pen).await, 8);
    assert_eq!((balance(&mesh, 103).await, balance(&mesh, 104).await), (4_000, 4_000));
}

#[tokio::test]
async fn more_than_in_stock_is_out_of_stock_and_changes_nothing() {
    let mesh = spawn_mesh().await;
    let user = 105;
    let plenty = product(&mesh, 1_000, 50).await;
    let scarce = product(&mesh, 2_000, 2).await;
    charge(&mesh, user, 100_000).await;
    let coupon = fixed_coupon(&mesh, user, 500).await;
    let before = (snapshot(&mesh, plenty, user, coupon).await, stock(&mesh, scarce).await);

    let body = json!({"userId": user, "items": [{"productId": plenty, "quantity": 5},
                      {"productId": scarce, "quantity": 3}], "userCouponId": coupon});
    let resp = place(&mesh, Some("too-many"), &body).await;
    let problem = expect_problem(resp, 409, "OUT_OF_STOCK").await;
    assert_eq!(problem["productId"], scarce, "{problem}");
    let order_id = problem["orderId"].as_str().unwrap_or_else(|| panic!("orderId: {problem}")).to_owned();
    uuid::Uuid::parse_str(&order_id).expect("orderId is a UUID");

    assert_eq!((snapshot(&mesh, plenty, user, coupon).await, stock(&mesh, scarce).await), before);
    assert_eq!(platform_received(&mesh).await, 0);

    let resp = get_order(&mesh, &order_id).await;
    assert_eq!(resp.status(), 200);
    assert!(header(&resp, "etag").is_some());
    let failed: Value = resp.json().await.unwrap();
    assert_eq!(failed["status"], "FAILED", "{failed}");
    assert_eq!(failed["failureCode"], "OUT_OF_STOCK", "{failed}");
    assert_eq!(failed["userId"], user);
    let statuses = step_statuses(&failed);
    assert_eq!(statuses[0], "FAILED", "{failed}");
    assert!(statuses[1..].iter().all(|s| s == "PENDING"), "{failed}");

    // Retrying with the same key answers the same failure, replayed.
    let resp = place(&mesh, Some("too-many"), &body).await;
    assert_eq!(header(&resp, "idempotent-replayed"), Some("true"));
    let replayed = expect_problem(resp, 409, "OUT_OF_STOCK").await;
    assert_eq!((replayed["orderId"].as_str(), replayed["productId"].clone()), (Some(order_id.as_str()), json!(scarce)));
    assert_eq!((snapshot(&mesh, plenty, user, coupon).await, stock(&mesh, scarce).await), before);

    // What is in stock can still be bought, with the untouched coupon.
    let body = json!({"userId": user, "items": [{"productId": scarce, "quantity": 2}], "userCouponId": coupon});
    let resp = place(&mesh, Some("just-enough"), &body).await;
    assert_eq!(resp.status(), 201);
    let placed: Value = resp.json().await.unwrap();
    assert_eq!((placed["totalAmount"].clone(), placed["paidAmount"].clone()), (json!(4_000), json!(3_500)));
    assert_eq!(stock(&mesh, scarce).await, 0);
}

#[tokio::test]
async fn insufficient_points_fail_the_order_and_release_the_stock() {
    let mesh = spawn_mesh().await;
    let user = 106;
    let lamp = product(&mesh, 10_000, 5).await;
    charge(&mesh, user, 7_000).await;
    let coupon = fixed_coupon(&mesh, user, 2_000).await;
    let before = snapshot(&mesh, lamp, user, coupon).await;

    // 10,000 - 2,000 = 8,000 > 7,000.
    let body = json!({"userId": user, "items": [{"productId": lamp, "quantity": 1}], "userCouponId": coupon});
    let problem = expect_problem(place(&mesh, Some("short"), &body).await, 409, "INSUFFICIENT_POINTS").await;
    let order_id = problem["orderId"].as_str().unwrap_or_else(|| panic!("orderId: {problem}")).to_owned();
    assert_eq!(snapshot(&mesh, lamp, user, coupon).await, before);
    assert_eq!(platform_received(&mesh).await, 0);

    let failed = order(&mesh, &order_id).await;
    assert_eq!(
        (failed["status"].as_str(), failed["failureCode"].as_str()),
        (Some("FAILED"), Some("INSUFFICIENT_POINTS"))
    );
    assert_eq!(step_statuses(&failed), ["COMPENSATED", "COMPENSATED", "FAILED", "PENDING", "PENDING"], "{failed}");

    // Topped up, the same order goes through under a new key.
    charge(&mesh, user, 1_000).await;
    let resp = place(&mesh, Some("enough"), &body).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(snapshot(&mesh, lamp, user, coupon).await, (4, 0, "USED".to_owned()));
}

#[tokio::test]
async fn a_failing_data_platform_is_a_502_and_rolls_everything_back() {
    let mesh = spawn_mesh().await;
    let user = 107;
    let chair = product(&mesh, 20_000, 3).await;
    charge(&mesh, user, 50_000).await;
    let coupon = fixed_coupon(&mesh, user, 1_000).await;
    let before = snapshot(&mesh, chair, user, coupon).await;

    platform_control(&mesh, json!({"failMode": "always"})).await;
    let body = json!({"userId": user, "items": [{"productId": chair, "quantity": 2}], "userCouponId": coupon});
    let problem =
        expect_problem(place(&mesh, Some("platform-down"), &body).await, 502, "EXTERNAL_SERVICE_FAILED").await;
    let order_id = problem["orderId"].as_str().unwrap_or_else(|| panic!("orderId: {problem}")).to_owned();
    assert_eq!(snapshot(&mesh, chair, user, coupon).await, before);
    assert_eq!(platform_received(&mesh).await, 0);

    let failed = order(&mesh, &order_id).await;
    assert_eq!(failed["status"], "FAILED", "{failed}");
    assert_eq!(failed["failureCode"], "EXTERNAL_SERVICE_FAILED", "{failed}");
    assert_eq!(step_statuses(&failed), ["COMPENSATED", "COMPENSATED", "COMPENSATED", "COMPENSATED", "FAILED"]);
    let transmit = &failed["steps"][4];
    assert!(transmit["attempts"].as_i64().is_some_and(|a| a >= 2), "retried before giving up: {transmit}");

    // The platform back up: the same order under a new key completes.
    platform_control(&mesh, json!({"failMode": "none"})).await;
    let resp = place(&mesh, Some("platform-up"), &body).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(snapshot(&mesh, chair, user, coupon).await, (1, 11_000, "USED".to_owned()));
    assert_eq!(platform_received(&mesh).await, 1);
}

#[tokio::test]
async fn a_users_orders_are_listed_newest_first() {
    let mesh = spawn_mesh().await;
    let (user, other) = (108, 109);
    let cup = product(&mesh, 100, 100).await;
    charge(&mesh, user, 10_000).await;
    charge(&mesh, other, 10_000).await;

    let mut placed = Vec::new();
    for quantity in 1..=3 {
        let body = json!({"userId": user, "items": [{"productId": cup, "quantity": quantity}]});
        let resp = place(&mesh, Some(&format!("list-{quantity}")), &body).await;
        assert_eq!(resp.status(), 201);
        placed.push(resp.json::<Value>().await.unwrap()["orderId"].as_str().unwrap().to_owned());
    }
    // A failed order is listed too.
    let body = json!({"userId": user, "items": [{"productId": cup, "quantity": 1000}]});
    let failed = expect_problem(place(&mesh, Some("list-fail"), &body).await, 409, "OUT_OF_STOCK").await;
    placed.push(failed["orderId"].as_str().unwrap().to_owned());
    let body = json!({"userId": other, "items": [{"productId": cup, "quantity": 1}]});
    assert_eq!(place(&mesh, Some("list-1"), &body).await.status(), 201);

    let items = user_orders(&mesh, user, "").await;
    let ids: Vec<&str> = items.iter().map(|o| o["orderId"].as_str().unwrap()).collect();
    let newest_first: Vec<&str> = placed.iter().rev().map(String::as_str).collect();
    assert_eq!(ids, newest_first);
    let statuses: Vec<&str> = items.iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["FAILED", "COMPLETED", "COMPLETED", "COMPLETED"]);
    for item in &items {
        assert_eq!(item["userId"], user);
        assert!(item.get("steps").is_none(), "{item}");
    }
    assert_eq!(items[1]["items"], json!([{"productId": cup, "quantity": 3, "unitPrice": 100, "amount": 300}]));
    let created: Vec<&str> = items.iter().map(|o| o["createdAt"].as_str().unwrap()).collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "{created:?}");

    let limited = user_orders(&mesh, user, "?limit=2").await;
    let ids: Vec<&str> = limited.iter().map(|o| o["orderId"].as_str().unwrap()).collect();
    assert_eq!(ids, newest_first[..2]);
    assert_eq!(user_orders(&mesh, other, "").await.len(), 1);
    assert!(user_orders(&mesh, 110, "").await.is_empty());
}

#[tokio::test]
async fn cancelling_a_completed_order_restores_stock_points_and_coupon() {
    let mesh = spawn_mesh().await;
    let user = 111;
    let desk = product(&mesh, 30_000, 4).await;
    charge(&mesh, user, 60_000).await;
    let coupon = fixed_coupon(&mesh, user, 5_000).await;
    let before = snapshot(&mesh, desk, user, coupon).await;

    let body = json!({"userId": user, "items": [{"productId": desk, "quantity": 2}], "userCouponId": coupon});
    let resp = place(&mesh, Some("to-cancel"), &body).await;
    assert_eq!(resp.status(), 201);
    let placed: Value = resp.json().await.unwrap();
    let order_id = placed["orderId"].as_str().unwrap().to_owned();
    assert_eq!(snapshot(&mesh, desk, user, coupon).await, (2, 5_000, "USED".to_owned()));

    // A stale If-Match changes nothing.
    let resp = change_status(&mesh, &order_id, "CANCELLED", &[("if-match", "\"99\"")]).await;
    expect_problem(resp, 412, "VERSION_MISMATCH").await;
    let unchanged = order(&mesh, &order_id).await;
    assert_eq!((unchanged["status"].as_str(), unchanged["version"].as_i64()), (Some("COMPLETED"), Some(1)));
    assert_eq!(snapshot(&mesh, desk, user, coupon).await, (2, 5_000, "USED".to_owned()));

    // The current version cancels it.
    let resp = change_status(&mesh, &order_id, "CANCELLED", &[("if-match", "\"1\"")]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "idempotent-replayed"), None);
    let etag = header(&resp, "etag").expect("ETag").to_owned();
    let cancelled: Value = resp.json().await.unwrap();
    assert_eq!(cancelled["status"], "CANCELLED", "{cancelled}");
    assert_eq!(cancelled["orderId"], order_id.as_str());
    let version = cancelled["version"].as_i64().unwrap();
    assert!(version > 1, "{cancelled}");
    assert_eq!(etag, format!("\"{version}\""));
    assert_eq!(
        (cancelled["totalAmount"].clone(), cancelled["discountAmount"].clone(), cancelled["paidAmount"].clone()),
        (json!(60_000), json!(5_000), json!(55_000))
    );
    assert!(cancelled.get("steps").is_none(), "{cancelled}");
    assert_eq!(snapshot(&mesh, desk, user, coupon).await, before);
    assert_eq!(before, (4, 60_000, "AVAILABLE".to_owned()));

    // Cancelling again is a no-op at the same version.
    let resp = change_status(&mesh, &order_id, "CANCELLED", &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "etag"), Some(etag.as_str()));
    let again: Value = resp.json().await.unwrap();
    assert_eq!((again["status"].as_str(), again["version"].as_i64()), (Some("CANCELLED"), Some(version)));
    let resp = change_status(&mesh, &order_id, "CANCELLED", &[("if-match", etag.as_str())]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["version"], version);
    assert_eq!(snapshot(&mesh, desk, user, coupon).await, before);

    // A cancelled order does not come back.
    expect_problem(change_status(&mesh, &order_id, "COMPLETED", &[]).await, 409, "INVALID_STATE_TRANSITION").await;

    let resp = get_order(&mesh, &order_id).await;
    assert_eq!(header(&resp, "etag"), Some(etag.as_str()));
    let stored: Value = resp.json().await.unwrap();
    assert_eq!((stored["status"].as_str(), stored["version"].as_i64()), (Some("CANCELLED"), Some(version)));
    assert_eq!(user_orders(&mesh, user, "").await[0]["status"], "CANCELLED");

    // The coupon can be used again.
    let resp = place(&mesh, Some("after-cancel"), &body).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(snapshot(&mesh, desk, user, coupon).await, (2, 5_000, "USED".to_owned()));
}

#[tokio::test]
async fn cancelling_with_an_idempotency_key_replays_the_answer() {
    let mesh = spawn_mesh().await;
    let user = 112;
    let book = product(&mesh, 12_000, 3).await;
    charge(&mesh, user, 12_000).await;
    let body = json!({"userId": user, "items": [{"productId": book, "quantity": 1}]});
    let resp = place(&mesh, Some("book"), &body).await;
    assert_eq!(resp.status(), 201);
    let order_id = resp.json::<Value>().await.unwrap()["orderId"].as_str().unwrap().to_owned();

    let key = [("idempotency-key", "cancel-book")];
    let first = change_status(&mesh, &order_id, "CANCELLED", &key).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["status"], "CANCELLED");
    assert_eq!((stock(&mesh, book).await, balance(&mesh, user).await), (3, 12_000));

    let again = change_status(&mesh, &order_id, "CANCELLED", &key).await;
    assert_eq!(again.status(), 200);
    assert_eq!(header(&again, "idempotent-replayed"), Some("true"));
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    let other = change_status(&mesh, &order_id, "COMPLETED", &key).await;
    expect_problem(other, 422, "IDEMPOTENCY_KEY_REUSED").await;
    assert_eq!((stock(&mesh, book).await, balance(&mesh, user).await), (3, 12_000));
}

#[tokio::test]
async fn only_completed_orders_can_be_cancelled_and_unknown_orders_are_404() {
    let mesh = spawn_mesh().await;
    let user = 113;
    let bag = product(&mesh, 8_000, 1).await;
    charge(&mesh, user, 20_000).await;

    let body = json!({"userId": user, "items": [{"productId": bag, "quantity": 2}]});
    let problem = expect_problem(place(&mesh, Some("bag"), &body).await, 409, "OUT_OF_STOCK").await;
    let order_id = problem["orderId"].as_str().unwrap().to_owned();
    let failed = order(&mesh, &order_id).await;
    let version = failed["version"].clone();

    let resp = change_status(&mesh, &order_id, "CANCELLED", &[]).await;
    let problem = expect_problem(resp, 409, "INVALID_STATE_TRANSITION").await;
    assert!(problem.get("orderId").is_none_or(|id| id == order_id.as_str()), "{problem}");
    // The status it already has is a no-op.
    let resp = change_status(&mesh, &order_id, "FAILED", &[]).await;
    assert_eq!(resp.status(), 200);
    let same: Value = resp.json().await.unwrap();
    assert_eq!((same["status"].as_str(), same["version"].clone()), (Some("FAILED"), version.clone()));
    let after = order(&mesh, &order_id).await;
    assert_eq!((after["status"].as_str(), after["version"].clone()), (Some("FAILED"), version));
    assert_eq!((stock(&mesh, bag).await, balance(&mesh, user).await), (1, 20_000));

    expect_problem(get_order(&mesh, UNKNOWN_ORDER).await, 404, "NOT_FOUND").await;
    let resp = change_status(&mesh, UNKNOWN_ORDER, "CANCELLED", &[]).await;
    expect_problem(resp, 404, "NOT_FOUND").await;
    let resp = change_status(&mesh, UNKNOWN_ORDER, "CANCELLED", &[("if-match", "\"1\"")]).await;
    expect_problem(resp, 404, "NOT_FOUND").await;
}

#[tokio::test]
async fn replaying_an_order_after_it_was_cancelled_gives_the_first_answer() {
    let mesh = spawn_mesh().await;
    let user = 114;
    let hat = product(&mesh, 2_000, 5).await;
    charge(&mesh, user, 10_000).await;
    let body = json!({"userId": user, "items": [{"productId": hat, "quantity": 1}]});
    let resp = place(&mesh, Some("hat"), &body).await;
    assert_eq!(resp.status(), 201);
    let first: Value = resp.json().await.unwrap();
    let order_id = first["orderId"].as_str().unwrap().to_owned();
    assert_eq!(change_status(&mesh, &order_id, "CANCELLED", &[]).await.status(), 200);

    // The replay is the first answer, not the order as it is now, and changes nothing.
    let resp = place(&mesh, Some("hat"), &body).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(header(&resp, "idempotent-replayed"), Some("true"));
    assert_eq!(header(&resp, "etag"), Some("\"1\""));
    assert_eq!(resp.json::<Value>().await.unwrap(), first);
    assert_eq!(order(&mesh, &order_id).await["status"], "CANCELLED");
    assert_eq!((stock(&mesh, hat).await, balance(&mesh, user).await), (5, 10_000));
    assert_eq!(user_orders(&mesh, user, "").await.len(), 1);
}

#[tokio::test]
async fn unknown_products_and_unusable_coupons_fail_the_order() {
    let mesh = spawn_mesh().await;
    let (user, stranger) = (115, 116);
    let sock = product(&mesh, 1_000, 10).await;
    charge(&mesh, user, 10_000).await;
    let coupon = fixed_coupon(&mesh, user, 100).await;
    let foreign = fixed_coupon(&mesh, stranger, 100).await;
    let before = snapshot(&mesh, sock, user, coupon).await;

    let failures = [
        (json!([{"productId": sock, "quantity": 1}, {"productId": 987_654, "quantity": 1}]), None, 404, "NOT_FOUND"),
        (json!([{"productId": sock, "quantity": 1}]), Some(987_654), 404, "NOT_FOUND"),
        (json!([{"productId": sock, "quantity": 1}]), Some(foreign), 409, "COUPON_NOT_USABLE"),
    ];
    for (i, (items, user_coupon_id, status, code)) in failures.into_iter().enumerate() {
        let body = json!({"userId": user, "items": items, "userCouponId": user_coupon_id});
        let problem = expect_problem(place(&mesh, Some(&format!("bad-{i}")), &body).await, status, code).await;
        let order_id = problem["orderId"].as_str().unwrap_or_else(|| panic!("orderId: {problem}")).to_owned();
        let failed = order(&mesh, &order_id).await;
        assert_eq!((failed["status"].as_str(), failed["failureCode"].as_str()), (Some("FAILED"), Some(code)));
        assert_eq!(snapshot(&mesh, sock, user, coupon).await, before, "{code}");
    }
    assert_eq!(coupon_status(&mesh, stranger, foreign).await, "AVAILABLE");

    // A used coupon cannot be used twice.
    let body = json!({"userId": user, "items": [{"productId": sock, "quantity": 1}], "userCouponId": coupon});
    assert_eq!(place(&mesh, Some("use-coupon"), &body).await.status(), 201);
    let after = snapshot(&mesh, sock, user, coupon).await;
    assert_eq!(after, (9, 9_100, "USED".to_owned()));
    expect_problem(place(&mesh, Some("reuse-coupon"), &body).await, 409, "COUPON_NOT_USABLE").await;
    assert_eq!(snapshot(&mesh, sock, user, coupon).await, after);
}

#[tokio::test]
async fn a_checkout_slower_than_the_answer_budget_is_accepted_then_answered() {
    let mesh = spawn_mesh_answering_within(std::time::Duration::from_millis(300)).await;
    let user = 131;
    let lamp = product(&mesh, 4_000, 3).await;
    charge(&mesh, user, 10_000).await;
    // Slower than the answer budget, within the platform call's own timeout (1 s).
    platform_control(&mesh, json!({"failMode": "none", "latencyMs": 900})).await;
    let body = json!({"userId": user, "items": [{"productId": lamp, "quantity": 1}]});

    // The data platform is slow: the checkout outlives its answer budget and goes on.
    let resp = place(&mesh, Some("slow"), &body).await;
    assert_eq!(resp.status(), 202);
    assert_eq!(header(&resp, "retry-after"), Some("1"));
    assert_eq!(header(&resp, "idempotent-replayed"), None);
    let location = header(&resp, "location").unwrap().to_owned();
    let pending: Value = resp.json().await.unwrap();
    assert_eq!(pending["status"], "PENDING");
    let order_id = pending["orderId"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/v1/orders/{order_id}"));

    // Asking again with the key: 202 while it runs, then the final answer, marked a replay.
    let started = std::time::Instant::now();
    let mut saw_pending_again = false;
    let done = loop {
        let resp = place(&mesh, Some("slow"), &body).await;
        if resp.status() == 202 {
            saw_pending_again = true;
            assert_eq!(header(&resp, "retry-after"), Some("1"));
            assert!(started.elapsed() < std::time::Duration::from_secs(20), "never settled");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            continue;
        }
        break resp;
    };
    assert!(saw_pending_again, "the key answers 202 while the saga runs");
    assert_eq!(done.status(), 201);
    assert_eq!(header(&done, "idempotent-replayed"), Some("true"));
    let completed: Value = done.json().await.unwrap();
    assert_eq!(
        (completed["orderId"].as_str(), completed["status"].as_str()),
        (Some(order_id.as_str()), Some("COMPLETED"))
    );
    assert_eq!((stock(&mesh, lamp).await, balance(&mesh, user).await), (2, 6_000));
    assert_eq!(platform_received(&mesh).await, 1);
}
