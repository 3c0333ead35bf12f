use serde_json::{Value, json};

use crate::helpers::{expect_problem, spawn_mesh};

fn is_rfc3339_millis_utc(v: &Value) -> bool {
    let s = v.as_str().unwrap_or("");
    s.len() == 24 && s.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

#[tokio::test]
async fn create_returns_201_with_location_etag_and_the_product() {
    let mesh = spawn_mesh().await;
    let resp = mesh
        .http
        .post(mesh.url("/v1/products"))
        .json(&json!({"name": "Keyboard", "price": 39000, "stock": 100, "color": "ignored"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let id_location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(resp.headers()["etag"], "\"1\"");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(id_location, format!("/v1/products/{}", body["id"]));
    assert_eq!(
        (body["name"].clone(), body["price"].clone(), body["stock"].clone()),
        (json!("Keyboard"), json!(39000), json!(100))
    );
    assert_eq!(body["version"], 1);
    assert!(is_rfc3339_millis_utc(&body["createdAt"]) && is_rfc3339_millis_utc(&body["updatedAt"]), "{body}");

    let fetched = mesh.http.get(mesh.url(&id_location)).send().await.unwrap();
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.headers()["etag"], "\"1\"");
    assert_eq!(fetched.json::<Value>().await.unwrap(), body);
}

#[tokio::test]
async fn unknown_product_is_404_and_bad_ids_are_400() {
    let mesh = spawn_mesh().await;
    let resp = mesh.http.get(mesh.url("/v1/products/424242")).send().await.unwrap();
    expect_problem(resp, 404, "NOT_FOUND").await;
    for bad in ["abc", "0", "-3", "1.5", "99999999999999999999"] {
        let resp = mesh.http.get(mesh.url(&format!("/v1/products/{bad}"))).send().await.unwrap();
        let body = expect_problem(resp, 400, "VALIDATION_FAILED").await;
        assert_eq!(body["field"], "id", "{bad}");
    }
}

#[tokio::test]
async fn list_filters_sorts_and_pages() {
    let mesh = spawn_mesh().await;
    for (name, price) in [("Mechanical Keyboard", 90), ("keycap", 10), ("Mouse", 50)] {
        mesh.create_product(name, price, 1).await;
    }
    let page: Value = mesh
        .http
        .get(mesh.url("/v1/products?name=KEY&sort=-price&page=0&size=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["totalItems"], 2);
    assert_eq!((page["page"].clone(), page["size"].clone()), (json!(0), json!(1)));
    assert_eq!(page["items"][0]["price"], 90);
    let second: Value = mesh
        .http
        .get(mesh.url("/v1/products?name=key&sort=-price&page=1&size=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(second["items"][0]["price"], 10);
    let all: Value = mesh.http.get(mesh.url("/v1/products")).send().await.unwrap().json().await.unwrap();
    assert_eq!((all["size"].clone(), all["totalItems"].clone()), (json!(20), json!(3)));
    let by_name: Value = mesh.http.get(mesh.url("/v1/products?sort=name")).send().await.unwrap().json().await.unwrap();
    assert_eq!(by_name["items"][0]["name"], "keycap");
    let spaced: Value =
        mesh.http.get(mesh.url("/v1/products?name=Mechanical%20Key")).send().await.unwrap().json().await.unwrap();
    assert_eq!(spaced["totalItems"], 1);

    for (query, field) in [
        ("size=0", "size"),
        ("size=101", "size"),
        ("page=-1", "page"),
        ("page=abc", "page"),
        ("sort=cheapest", "sort"),
        ("name=%ZZ", "query"),
        ("name=%FF", "query"),
    ] {
        let resp = mesh.http.get(mesh.url(&format!("/v1/products?{query}"))).send().await.unwrap();
        let body = expect_problem(resp, 400, "VALIDATION_FAILED").await;
        assert_eq!(body["field"], field, "{query}");
    }
}

#[tokio::test]
async fn put_stock_sets_it_with_if_match_and_412_on_a_stale_version() {
    let mesh = spawn_mesh().await;
    let p = mesh.create_product("Desk", 100, 5).await;
    let url = mesh.url(&format!("/v1/products/{}/stock", p["id"]));
    let ok = mesh.http.put(&url).header("if-match", "\"1\"").json(&json!({"stock": 250})).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["etag"], "\"2\"");
    let body: Value = ok.json().await.unwrap();
    assert_eq!((body["stock"].clone(), body["version"].clone()), (json!(250), json!(2)));

    let stale = mesh.http.put(&url).header("if-match", "\"1\"").json(&json!({"stock": 1})).send().await.unwrap();
    expect_problem(stale, 412, "VERSION_MISMATCH").await;
    let now: Value =
        mesh.http.get(mesh.url(&format!("/v1/products/{}", p["id"]))).send().await.unwrap().json().await.unwrap();
    assert_eq!(now["stock"], 250, "a stale If-Match changes nothing");

    let unconditional = mesh.http.put(&url).json(&json!({"stock": 7})).send().await.unwrap();
    assert_eq!(unconditional.status(), 200);
    let star = mesh.http.put(&url).header("if-match", "*").json(&json!({"stock": 8})).send().await.unwrap();
    assert_eq!(star.status(), 200);

    let garbage = mesh.http.put(&url).header("if-match", "yesterday").json(&json!({"stock": 1})).send().await.unwrap();
    assert_eq!(expect_problem(garbage, 400, "VALIDATION_FAILED").await["field"], "If-Match");
    let negative = mesh.http.put(&url).json(&json!({"stock": -1})).send().await.unwrap();
    assert_eq!(expect_problem(negative, 400, "VALIDATION_FAILED").await["field"], "stock");
    let missing = mesh.http.put(mesh.url("/v1/products/999999/stock")).json(&json!({"stock": 1})).send().await.unwrap();
    expect_problem(missing, 404, "NOT_FOUND").await;
}

#[tokio::test]
async fn twenty_racing_puts_with_the_same_if_match_one_wins() {
    let mesh = spawn_mesh().await;
    let p = mesh.create_product("Lamp", 100, 5).await;
    let url = mesh.url(&format!("/v1/products/{}/stock", p["id"]));
    let puts = (0..20).map(|i| {
        let (http, url) = (mesh.http.clone(), url.clone());
        async move { http.put(url).header("if-match", "\"1\"").json(&json!({"stock": 100 + i})).send().await.unwrap() }
    });
    let responses = futures::future::join_all(puts).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 412).count(), 19, "{statuses:?}");
    for resp in responses.into_iter().filter(|r| r.status() == 412) {
        expect_problem(resp, 412, "VERSION_MISMATCH").await;
    }
}

#[tokio::test]
async fn request_ids_are_echoed_or_minted() {
    let mesh = spawn_mesh().await;
    let resp =
        mesh.http.get(mesh.url("/v1/products/77777")).header("x-request-id", "req-abc-123").send().await.unwrap();
    assert_eq!(resp.headers()["x-request-id"], "req-abc-123");
    let body = expect_problem(resp, 404, "NOT_FOUND").await;
    assert_eq!(body["requestId"], "req-abc-123");
    let minted = mesh.http.get(mesh.url("/healthz")).send().await.unwrap();
    let id = minted.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    let rude = mesh.http.get(mesh.url("/healthz")).header("x-request-id", "x".repeat(500)).send().await.unwrap();
    assert_ne!(rude.headers()["x-request-id"].to_str().unwrap().len(), 500, "an absurd id is replaced");
}
