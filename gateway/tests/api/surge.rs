//! The gateway under a surge: thousands of concurrent requests are served or shed with
//! `Retry-After`, never failed by the transport; one caller's rate does not touch another's.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestMesh, spawn_mesh_tuned, token};

/// A client that opens a connection per concurrent request, as a crowd of browsers does.
fn crowd_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap()
}

async fn create_coupon(mesh: &TestMesh, total: i64) -> i64 {
    let resp = mesh
        .http
        .post(mesh.url("/v1/coupons"))
        .json(&json!({"name": "surge", "discountType": "FIXED", "discountValue": 100, "totalQuantity": total}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    resp.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
}

/// What each of `users` concurrent issue requests was answered: (status, code, Retry-After, sequence).
async fn race(mesh: &TestMesh, coupon: i64, users: i64) -> Vec<(u16, String, Option<String>, Option<i64>)> {
    let client = crowd_client();
    // Each user with a token of their own, minted before the race: the gateway verifies
    // every one of them once, as it would a crowd's.
    let users: Vec<(i64, String)> =
        (1..=users).map(|user| (1_000_000 + user, token(1_000_000 + user, false))).collect();
    let calls = users.into_iter().map(|(user, token)| {
        let (client, url) = (client.clone(), mesh.url(&format!("/v1/coupons/{coupon}/issue")));
        async move {
            let resp = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"userId": user}))
                .send()
                .await
                .expect("an answer, not a transport error");
            let status = resp.status().as_u16();
            let retry = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            let body: Value = resp.json().await.unwrap();
            (status, body["code"].as_str().unwrap_or("").to_owned(), retry, body["sequence"].as_i64())
        }
    });
    futures::future::join_all(calls).await
}

async fn issued_quantity(mesh: &TestMesh, coupon: i64) -> i64 {
    let coupon: Value =
        mesh.http.get(mesh.url(&format!("/v1/coupons/{coupon}"))).send().await.unwrap().json().await.unwrap();
    coupon["issuedQuantity"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_concurrent_requests_are_answered_by_the_service_with_default_settings() {
    let mesh = spawn_mesh_tuned(Duration::from_secs(5), |_| {}).await;
    let coupon = create_coupon(&mesh, 300).await;
    let answers = race(&mesh, coupon, 4_000).await;
    let mut sequences = BTreeSet::new();
    for (status, code, _, sequence) in &answers {
        match (status, code.as_str()) {
            (201, _) => assert!(sequences.insert(sequence.unwrap())),
            (409, "COUPON_SOLD_OUT") => {}
            other => panic!("a surge of 4,000 must be served: got {other:?}"),
        }
    }
    assert_eq!(sequences, (1..=300).collect(), "exactly the 300 copies, in order");
    assert_eq!(issued_quantity(&mesh, coupon).await, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_in_flight_bound_requests_are_shed_with_retry_after_and_change_nothing() {
    let mesh = spawn_mesh_tuned(Duration::from_secs(5), |c| {
        c.max_in_flight = 8;
        c.admission_queue_ms = 5;
    })
    .await;
    let coupon = create_coupon(&mesh, 5_000).await;
    let answers = race(&mesh, coupon, 2_000).await;
    let (mut shed, mut sequences) = (0, BTreeSet::new());
    for (status, code, retry, sequence) in &answers {
        match (status, code.as_str()) {
            (201, _) => assert!(sequences.insert(sequence.unwrap())),
            (503, "OVERLOADED") => {
                assert_eq!(retry.as_deref(), Some("1"), "a shed request says when to come back");
                shed += 1;
            }
            other => panic!("served or shed, nothing else: got {other:?}"),
        }
    }
    assert!(shed > 0, "2,000 at once past a bound of 8 with a 5 ms queue must shed some");
    let issued = sequences.len() as i64;
    assert_eq!(sequences, (1..=issued).collect(), "the issued ones hold 1..=n");
    assert_eq!(issued_quantity(&mesh, coupon).await, issued, "a shed request issued nothing");
    // The operational routes are not behind admission control.
    assert_eq!(mesh.http.get(mesh.url("/healthz")).send().await.unwrap().status(), 200);
    let metrics = mesh.http.get(mesh.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("gateway_requests_shed_total"), "shedding is counted");
}

/// A client whose connections come from `ip` (any 127.x.y.z is this host).
fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder().local_address(std::net::IpAddr::from(ip)).build().unwrap()
}

#[tokio::test]
async fn an_address_over_its_rate_gets_429_with_headers_and_another_address_is_unaffected() {
    let mesh = spawn_mesh_tuned(Duration::from_secs(5), |c| {
        c.rate_limit_per_sec = 1;
        c.rate_limit_burst = 5;
    })
    .await;
    // Without a token the caller is its address (public reads); a token makes it the user
    // (auth.rs).
    let (greedy, other) = (client_from([127, 0, 0, 1]), client_from([127, 0, 0, 2]));
    for n in 0..5 {
        let resp = greedy.get(mesh.url("/v1/products")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "request {n} is within the burst");
        assert_eq!(resp.headers()["ratelimit-policy"], "\"caller\";q=5;w=5");
        assert_eq!(resp.headers()["ratelimit"], format!("\"caller\";r={};t=5", 4 - n).as_str());
    }
    let refused = greedy.get(mesh.url("/v1/products")).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    let retry: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1, "Retry-After is whole seconds, never 0");
    assert_eq!(refused.headers()["ratelimit-policy"], "\"caller\";q=5;w=5");
    assert_eq!(refused.headers()["ratelimit"], format!("\"caller\";r=0;t={retry}").as_str());
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "RATE_LIMITED");

    assert_eq!(
        other.get(mesh.url("/v1/products")).send().await.unwrap().status(),
        200,
        "another address has its own bucket"
    );
    let user = greedy.get(mesh.url("/v1/points/7")).bearer_auth(token(7, false)).send().await.unwrap();
    assert_eq!(user.status(), 200, "a user from the limited address is counted as the user");
    // Operational routes are not rate limited.
    assert_eq!(greedy.get(mesh.url("/healthz")).send().await.unwrap().status(), 200);
}
