//! Authentication and per-route authorization through the real gateway and services: who
//! may do what (API.md), and a refused request changes nothing.

use std::time::Duration;

use dev_token::Signer;
use reqwest::RequestBuilder;
use serde_json::{Value, json};

use crate::helpers::{ISSUER, TestMesh, expect_problem, spawn_mesh, spawn_mesh_tuned, token};

/// A token that expired a minute ago (beyond the 5 s leeway).
fn expired(user: i64) -> String {
    let now = kit::time::now_millis().timestamp();
    ISSUER.signer.mint_claims(&json!({"sub": user.to_string(), "iat": now - 120, "exp": now - 60})).unwrap()
}

fn bearer(request: RequestBuilder, token: &str) -> RequestBuilder {
    request.header("authorization", format!("Bearer {token}"))
}

async fn balance(mesh: &TestMesh, admin: &str, user: i64) -> i64 {
    let resp = bearer(mesh.anonymous.get(mesh.url(&format!("/v1/points/{user}"))), admin).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().await.unwrap()["balance"].as_i64().unwrap()
}

#[tokio::test]
async fn tokens_decide_who_may_act_and_a_refused_request_changes_nothing() {
    let mesh = spawn_mesh().await;
    let (alice, admin) = (token(7, false), token(1, true));

    // Public reads need no token.
    assert_eq!(mesh.anonymous.get(mesh.url("/v1/products")).send().await.unwrap().status(), 200);
    assert_eq!(mesh.anonymous.get(mesh.url("/v1/coupons")).send().await.unwrap().status(), 200);

    // No token, a malformed one, another issuer's, an expired one: 401 with the challenge.
    let points = mesh.url("/v1/points/7");
    let resp = mesh.anonymous.get(&points).send().await.unwrap();
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    expect_problem(resp, 401, "UNAUTHENTICATED").await;
    let another_issuer = Signer::generate().unwrap().mint(7, false, 600).unwrap();
    for bad in ["garbage".to_owned(), another_issuer, expired(7)] {
        let resp = bearer(mesh.anonymous.get(&points), &bad).send().await.unwrap();
        assert_eq!(resp.headers()["www-authenticate"], "Bearer error=\"invalid_token\"");
        expect_problem(resp, 401, "UNAUTHENTICATED").await;
    }
    let resp = mesh.anonymous.get(&points).header("authorization", "Basic dTpw").send().await.unwrap();
    expect_problem(resp, 401, "UNAUTHENTICATED").await;

    // A user acts for themselves only; an admin for anyone.
    assert_eq!(bearer(mesh.anonymous.get(&points), &alice).send().await.unwrap().status(), 200);
    let other = bearer(mesh.anonymous.get(mesh.url("/v1/points/8")), &alice).send().await.unwrap();
    expect_problem(other, 403, "FORBIDDEN").await;
    let charge = |user: i64| json!({"userId": user, "amount": 500});
    let refused =
        bearer(mesh.anonymous.post(mesh.url("/v1/points/charge")), &alice).json(&charge(8)).send().await.unwrap();
    expect_problem(refused, 403, "FORBIDDEN").await;
    assert_eq!(balance(&mesh, &admin, 8).await, 0, "the refused charge changed nothing");
    let own = bearer(mesh.anonymous.post(mesh.url("/v1/points/charge")), &alice).json(&charge(7)).send().await.unwrap();
    assert_eq!(own.status(), 200);
    let by_admin =
        bearer(mesh.anonymous.post(mesh.url("/v1/points/charge")), &admin).json(&charge(8)).send().await.unwrap();
    assert_eq!(by_admin.status(), 200);
    assert_eq!(balance(&mesh, &admin, 8).await, 500);

    // Admin-only routes.
    let product = json!({"name": "Keyboard", "price": 100, "stock": 5});
    let anonymous = mesh.anonymous.post(mesh.url("/v1/products")).json(&product).send().await.unwrap();
    expect_problem(anonymous, 401, "UNAUTHENTICATED").await;
    let by_user = bearer(mesh.anonymous.post(mesh.url("/v1/products")), &alice).json(&product).send().await.unwrap();
    expect_problem(by_user, 403, "FORBIDDEN").await;
    let list: Value = mesh.anonymous.get(mesh.url("/v1/products")).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["totalItems"], 0, "the refused create changed nothing");
    let created = bearer(mesh.anonymous.post(mesh.url("/v1/products")), &admin).json(&product).send().await.unwrap();
    assert_eq!(created.status(), 201);
}

#[tokio::test]
async fn another_users_order_is_not_found_and_cannot_be_cancelled() {
    let mesh = spawn_mesh().await;
    let (alice, bob, admin) = (token(7, false), token(8, false), token(1, true));
    let created = bearer(mesh.anonymous.post(mesh.url("/v1/products")), &admin)
        .json(&json!({"name": "Mouse", "price": 1000, "stock": 5}))
        .send()
        .await
        .unwrap();
    let product: Value = created.json().await.unwrap();
    let charged = bearer(mesh.anonymous.post(mesh.url("/v1/points/charge")), &admin)
        .json(&json!({"userId": 7, "amount": 5000}))
        .send()
        .await
        .unwrap();
    assert_eq!(charged.status(), 200);
    let placed = bearer(mesh.anonymous.post(mesh.url("/v1/orders")), &alice)
        .header("idempotency-key", "auth-order-1")
        .json(&json!({"userId": 7, "items": [{"productId": product["id"], "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(placed.status(), 201);
    let order: Value = placed.json().await.unwrap();
    let url = mesh.url(&format!("/v1/orders/{}", order["orderId"].as_str().unwrap()));

    expect_problem(bearer(mesh.anonymous.get(&url), &bob).send().await.unwrap(), 404, "NOT_FOUND").await;
    let cancel = bearer(mesh.anonymous.put(format!("{url}/status")), &bob)
        .json(&json!({"status": "CANCELLED"}))
        .send()
        .await
        .unwrap();
    expect_problem(cancel, 404, "NOT_FOUND").await;
    let mine: Value = bearer(mesh.anonymous.get(&url), &alice).send().await.unwrap().json().await.unwrap();
    assert_eq!(mine["status"], "COMPLETED", "the refused cancel changed nothing");
    assert_eq!(bearer(mesh.anonymous.get(&url), &admin).send().await.unwrap().status(), 200);
    let theirs = bearer(mesh.anonymous.get(mesh.url("/v1/users/7/orders")), &bob).send().await.unwrap();
    expect_problem(theirs, 403, "FORBIDDEN").await;
    // Placing an order for someone else is refused before anything starts.
    let for_alice = bearer(mesh.anonymous.post(mesh.url("/v1/orders")), &bob)
        .header("idempotency-key", "auth-order-2")
        .json(&json!({"userId": 7, "items": [{"productId": product["id"], "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    expect_problem(for_alice, 403, "FORBIDDEN").await;
    let stock: Value = mesh
        .anonymous
        .get(mesh.url(&format!("/v1/products/{}", product["id"])))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stock["stock"], 4, "only alice's own order took stock");
}

#[tokio::test]
async fn the_rate_limit_counts_per_user_once_the_user_is_known() {
    let mesh = spawn_mesh_tuned(Duration::from_secs(5), move |c| {
        c.rate_limit_per_sec = 1;
        c.rate_limit_burst = 3;
    })
    .await;
    let (alice, bob) = (token(7, false), token(8, false));
    for _ in 0..3 {
        assert_eq!(bearer(mesh.anonymous.get(mesh.url("/v1/points/7")), &alice).send().await.unwrap().status(), 200);
    }
    let limited = bearer(mesh.anonymous.get(mesh.url("/v1/points/7")), &alice).send().await.unwrap();
    expect_problem(limited, 429, "RATE_LIMITED").await;
    let charge = json!({"userId": 7, "amount": 500});
    let refused =
        bearer(mesh.anonymous.post(mesh.url("/v1/points/charge")), &alice).json(&charge).send().await.unwrap();
    expect_problem(refused, 429, "RATE_LIMITED").await;
    let from_same_address = bearer(mesh.anonymous.get(mesh.url("/v1/points/8")), &bob).send().await.unwrap();
    assert_eq!(from_same_address.status(), 200, "another user from the same address has a bucket of their own");
    let admin = token(1, true);
    assert_eq!(balance(&mesh, &admin, 7).await, 0, "the limited charge changed nothing");
}

#[test]
fn a_gateway_with_auth_on_and_no_usable_key_stops_at_start_naming_the_setting() {
    let run = |env: &[(&str, &str)]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
            .env_clear()
            .env("GATEWAY_HTTP_ADDR", "127.0.0.1:0")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, stderr) = run(&[("GATEWAY_AUTH", "on")]);
    assert_eq!(code, Some(64));
    assert!(stderr.contains("GATEWAY_JWT_PUBLIC_KEY_FILE"), "{stderr}");
    let (code, stderr) = run(&[("GATEWAY_AUTH", "on"), ("GATEWAY_JWT_PUBLIC_KEY_FILE", "/nonexistent/key.pem")]);
    assert_eq!(code, Some(64));
    assert!(stderr.contains("GATEWAY_JWT_PUBLIC_KEY_FILE") && stderr.contains("/nonexistent/key.pem"), "{stderr}");
    let (code, stderr) = run(&[("GATEWAY_AUTH", "maybe")]);
    assert_eq!(code, Some(64), "{stderr}");
}

#[tokio::test]
async fn the_openapi_document_states_who_needs_a_token() {
    let shutdown = kit::shutdown::CancellationToken::new();
    let base = crate::helpers::spawn_gateway(None, shutdown.clone()).await;
    let doc: Value = reqwest::get(format!("{base}/openapi.json")).await.unwrap().json().await.unwrap();
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!((scheme["type"].as_str(), scheme["scheme"].as_str()), (Some("http"), Some("bearer")));
    for (path, method) in [("/v1/points/charge", "post"), ("/v1/products", "post"), ("/v1/orders/{orderId}", "get")] {
        let operation = &doc["paths"][path][method];
        assert_eq!(operation["security"], json!([{"bearer": []}]), "{method} {path}");
        assert!(
            operation["responses"]["401"].is_object() && operation["responses"]["403"].is_object(),
            "{method} {path}"
        );
    }
    for (path, method) in [("/v1/products", "get"), ("/v1/products/{id}", "get"), ("/v1/coupons/{couponId}", "get")] {
        assert!(doc["paths"][path][method]["security"].is_null(), "{method} {path} is public");
    }
    shutdown.cancel();
}
