//! No request, however malformed, gets a 500 (API.md), and a rejected write changes nothing.

use serde_json::{Value, json};

use crate::helpers::{expect_problem, spawn_mesh};

#[tokio::test]
async fn bad_create_bodies_are_400_naming_the_field() {
    let mesh = spawn_mesh().await;
    let long_name = "n".repeat(201);
    let cases: Vec<(String, &str)> = vec![
        ("{not json".into(), "body"),
        ("".into(), "body"),
        ("[1,2]".into(), "body"),
        ("null".into(), "body"),
        (r#"{"name":"A","price":1,"stock":1} trailing"#.into(), "body"),
        (r#"{"price":1,"stock":1}"#.into(), "name"),
        (r#"{"name":"A","stock":1}"#.into(), "price"),
        (r#"{"name":"A","price":"abc","stock":1}"#.into(), "price"),
        (r#"{"name":"A","price":1.5,"stock":1}"#.into(), "price"),
        (r#"{"name":"A","price":null,"stock":1}"#.into(), "price"),
        (r#"{"name":"A","price":1e30,"stock":1}"#.into(), "price"),
        (r#"{"name":"A","price":99999999999999999999,"stock":1}"#.into(), "price"),
        (r#"{"name":"A","price":1000000001,"stock":1}"#.into(), "price"),
        (r#"{"name":"A","price":-1,"stock":1}"#.into(), "price"),
        (r#"{"name":"A","price":1,"stock":-1}"#.into(), "stock"),
        (r#"{"name":"A","price":1,"stock":1000000001}"#.into(), "stock"),
        (r#"{"name":"","price":1,"stock":1}"#.into(), "name"),
        (r#"{"name":7,"price":1,"stock":1}"#.into(), "name"),
        (format!(r#"{{"name":"{long_name}","price":1,"stock":1}}"#), "name"),
    ];
    for (body, field) in cases {
        let resp = mesh
            .http
            .post(mesh.url("/v1/products"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let problem = expect_problem(resp, 400, "VALIDATION_FAILED").await;
        assert_eq!(problem["field"], field, "body {body}: {problem}");
    }
    let list: Value = mesh.http.get(mesh.url("/v1/products")).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["totalItems"], 0, "no rejected request created anything");
}

#[tokio::test]
async fn an_oversized_body_is_rejected_not_a_500() {
    let mesh = spawn_mesh().await;
    let huge = json!({"name": "x".repeat(200_000), "price": 1, "stock": 1});
    let resp = mesh.http.post(mesh.url("/v1/products")).json(&huge).send().await.unwrap();
    expect_problem(resp, 400, "VALIDATION_FAILED").await;
}

#[tokio::test]
async fn odd_paths_and_methods_are_4xx_problems() {
    let mesh = spawn_mesh().await;
    let resp = mesh.http.get(mesh.url("/v1/nothing-here")).send().await.unwrap();
    expect_problem(resp, 404, "NOT_FOUND").await;
    let resp = mesh.http.delete(mesh.url("/v1/products/1")).send().await.unwrap();
    let allow = resp.headers().get("allow").map(|v| v.to_str().unwrap().to_owned());
    assert!(allow.as_deref().is_some_and(|a| a.contains("GET")), "Allow lists the methods: {allow:?}");
    expect_problem(resp, 405, "METHOD_NOT_ALLOWED").await;
    let resp = mesh.http.get(mesh.url("/v1/products/1/stock")).send().await.unwrap();
    expect_problem(resp, 405, "METHOD_NOT_ALLOWED").await;
    for path in
        ["/v1/products/%FF", "/v1/products/%00", "/v1/products/1%2F2", &format!("/v1/products/{}", "9".repeat(5000))]
    {
        let resp = mesh.http.get(mesh.url(path)).send().await.unwrap();
        assert!(resp.status().is_client_error(), "{path}: {}", resp.status());
    }
    let put_no_body = mesh.http.put(mesh.url("/v1/products/1/stock")).send().await.unwrap();
    expect_problem(put_no_body, 400, "VALIDATION_FAILED").await;
}
