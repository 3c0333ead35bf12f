//! Checkouts under kill -9: the payment-svc child is killed in the middle of a load, then
//! inventory-svc is frozen for 3 s (SIGSTOP) and later killed; the supervisor restarts what
//! died. No order fails for it: every order ends COMPLETED (some answered 202 first), and
//! stock, points and coupons balance exactly.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::future::join_all;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

use crate::stack::start_stack_with_env;

const USERS: i64 = 24;
const ORDERS_PER_USER: usize = 6;
const STOCK: i64 = 10_000;
const POINTS: i64 = 1_000_000;

/// Requests that had to be sent again: proof the kills hit checkouts in flight.
static RETRIES: AtomicU64 = AtomicU64::new(0);
/// `202 Accepted` answers: checkouts that outlived the answer budget and went on.
static ACCEPTED: AtomicU64 = AtomicU64::new(0);

/// POSTs until the answer is final: a retry with the key while the checkout is still running
/// (202), or while a service is down (503/504, connection errors), is what a client of this
/// API does.
async fn place_until_final(http: &reqwest::Client, gateway: &str, key: &str, body: &Value) -> (u16, Value, bool) {
    let started = std::time::Instant::now();
    let mut last = String::new();
    loop {
        assert!(started.elapsed() < Duration::from_secs(150), "key {key} never got a final answer; last: {last}");
        let sent = http
            .post(format!("{gateway}/v1/orders"))
            .header("idempotency-key", key)
            .timeout(Duration::from_secs(20))
            .json(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(err) => {
                last = err.to_string();
                RETRIES.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let status = response.status().as_u16();
        let replayed = response.headers().contains_key("idempotent-replayed");
        let body: Value = response.json().await.unwrap_or(Value::Null);
        // A 503 naming an order may be final: the order FAILED because a participant stayed
        // down past the retries (and was rolled back). The order itself says which.
        let settled = match body["orderId"].as_str() {
            Some(id) if status == 503 => order_settled(http, gateway, id).await,
            _ => false,
        };
        if status == 202 {
            assert_eq!(body["status"], "PENDING", "{key}: {body}");
            ACCEPTED.fetch_add(1, Ordering::Relaxed);
        }
        let retry = matches!(status, 202 | 503 | 504);
        if !retry || replayed || settled {
            return (status, body, replayed);
        }
        last = format!("{status} {body}");
        RETRIES.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn order_settled(http: &reqwest::Client, gateway: &str, id: &str) -> bool {
    let Ok(response) = http.get(format!("{gateway}/v1/orders/{id}")).send().await else { return false };
    let order: Value = response.json().await.unwrap_or(Value::Null);
    matches!(order["status"].as_str(), Some("COMPLETED" | "FAILED"))
}

#[tokio::test]
async fn checkouts_survive_kill_9_of_payment_svc_and_of_inventory_svc() {
    kit::testing::install_crypto_provider();
    // Short leases so recovery does not wait long for the killed replica's sagas; a short
    // answer budget so a frozen participant shows as 202s.
    let env = [
        ("PAYMENT_SAGA_LEASE_MS", "2000"),
        ("PAYMENT_LOCK_TTL_MS", "3000"),
        ("PAYMENT_RECOVER_EVERY_MS", "300"),
        ("PAYMENT_ANSWER_BUDGET_MS", "1000"),
    ];
    let stack = start_stack_with_env(&[], &env).await;
    let (http, gw) = (stack.client(), stack.gateway.clone());
    let post = |path: String, body: Value| {
        let http = http.clone();
        async move { http.post(path).json(&body).send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let product = post(format!("{gw}/v1/products"), json!({"name": "Crash test", "price": 700, "stock": STOCK})).await;
    let product = product["id"].as_i64().unwrap();
    let coupon = post(
        format!("{gw}/v1/coupons"),
        json!({"name": "Crash", "discountType": "FIXED", "discountValue": 300, "totalQuantity": 1000}),
    )
    .await;
    let mut coupons = HashMap::new();
    for user in 1..=USERS {
        post(format!("{gw}/v1/points/charge"), json!({"userId": user, "amount": POINTS})).await;
        let issued = post(format!("{gw}/v1/coupons/{}/issue", coupon["id"]), json!({"userId": user})).await;
        coupons.insert(user, issued["userCouponId"].as_i64().unwrap());
    }

    // Each user orders one after another (the first order with the coupon), all users at
    // once, until the kills are over and a few more orders went through.
    let done = AtomicBool::new(false);
    let clients = (1..=USERS).map(|user| {
        let (http, gw, coupon, done) = (http.clone(), gw.clone(), coupons[&user], &done);
        async move {
            let mut answers = Vec::new();
            let mut n = 0;
            while n < ORDERS_PER_USER || !done.load(Ordering::Relaxed) {
                let mut body = json!({"userId": user, "items": [{"productId": product, "quantity": 1 + n % 2}]});
                if n == 0 {
                    body["userCouponId"] = json!(coupon);
                }
                let key = format!("crash-{user}-{n}");
                let (status, answer, _) = place_until_final(&http, &gw, &key, &body).await;
                answers.push((key, body, status, answer));
                n += 1;
            }
            answers
        }
    });
    let killer = async {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        kill(Pid::from_raw(stack.pid_of("payment[0]")), Signal::SIGKILL).unwrap();
        tokio::time::sleep(Duration::from_millis(4_000)).await;
        // inventory-svc unresponsive for 3 s: its calls hang until their deadline.
        let inventory = Pid::from_raw(stack.pid_of("inventory[0]"));
        kill(inventory, Signal::SIGSTOP).unwrap();
        tokio::time::sleep(Duration::from_millis(3_000)).await;
        kill(inventory, Signal::SIGCONT).unwrap();
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        kill(Pid::from_raw(stack.pid_of("inventory[0]")), Signal::SIGKILL).unwrap();
        tokio::time::sleep(Duration::from_millis(3_000)).await;
        done.store(true, Ordering::Relaxed);
    };
    let (answers, ()) = tokio::join!(join_all(clients), killer);
    let answers: Vec<_> = answers.into_iter().flatten().collect();
    assert!(RETRIES.load(Ordering::Relaxed) > 0, "the kills interrupted checkouts in flight");
    assert!(ACCEPTED.load(Ordering::Relaxed) > 0, "checkouts waiting on the frozen participant answered 202");
    assert!(stack.pid_of("payment[0]") > 0);

    let mut sold = 0;
    let mut paid: HashMap<i64, i64> = HashMap::new();
    let mut coupon_used: HashMap<i64, bool> = HashMap::new();
    for (key, body, status, answer) in &answers {
        let order_id = answer["orderId"].as_str().unwrap_or_else(|| panic!("{key}: {status} {answer}"));
        let order: Value = http.get(format!("{gw}/v1/orders/{order_id}")).send().await.unwrap().json().await.unwrap();
        let user = body["userId"].as_i64().unwrap();
        match order["status"].as_str().unwrap() {
            "COMPLETED" => {
                assert_eq!(*status, 201, "{key}: {answer}");
                sold += order["items"][0]["quantity"].as_i64().unwrap();
                *paid.entry(user).or_default() += order["paidAmount"].as_i64().unwrap();
                if order["userCouponId"].is_i64() {
                    coupon_used.insert(user, true);
                }
            }
            other => panic!("{key}: no order fails or stays pending for a restart, this one is {other}: {order}"),
        }
        // The key gives the one answer again.
        let (again, replay, replayed) = place_until_final(&http, &gw, key, body).await;
        assert_eq!((again, replay["orderId"].as_str()), (*status, Some(order_id)), "{key}");
        assert!(replayed, "{key}: a replay is marked");
    }
    assert!(sold > 0, "some orders went through despite the kills");

    let stock: Value = http.get(format!("{gw}/v1/products/{product}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(stock["stock"].as_i64().unwrap() + sold, STOCK, "stock + sold = initial");
    for user in 1..=USERS {
        let balance: Value = http.get(format!("{gw}/v1/points/{user}")).send().await.unwrap().json().await.unwrap();
        let spent = POINTS - balance["balance"].as_i64().unwrap();
        assert_eq!(spent, paid.get(&user).copied().unwrap_or(0), "user {user}: points spent = sum of paidAmount");
        let held: Value = http.get(format!("{gw}/v1/users/{user}/coupons")).send().await.unwrap().json().await.unwrap();
        let status = held["items"][0]["status"].as_str().unwrap().to_owned();
        let expected = if coupon_used.contains_key(&user) { "USED" } else { "AVAILABLE" };
        assert_eq!(status, expected, "user {user}'s coupon");
    }
    assert!(stack.stop().await.success());
}
