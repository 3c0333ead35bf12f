//! Two replicas of every process, the gateway's too, under a mixed load (coupons, orders,
//! cancels), while one replica of each is killed with SIGKILL in turn: every order settles,
//! every invariant and every reconciliation holds, and no client sees a 5xx but a deliberate
//! `503` with `Retry-After`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::stack::{Stack, StackOptions, start_stack_with};

const USERS: i64 = 12;
const PRODUCTS: usize = 4;
const STOCK: i64 = 100_000;
const POINTS: i64 = 1_000_000;
const PRICE: i64 = 100;

/// The addresses devstack printed for `kind` (`http` or `metrics`) of each process label:
/// `devstack: started gateway[1] pid=7 (http 127.0.0.1:8081)`.
fn addresses(stack: &Stack, kind: &str) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for line in stack.lines() {
        let Some(rest) = line.strip_prefix("devstack: started ") else { continue };
        let label = rest.split_whitespace().next().unwrap_or_default().to_owned();
        let marker = format!("{kind} ");
        if let Some(at) = rest.find(&marker) {
            let address: String = rest[at + marker.len()..].chars().take_while(|c| *c != ',' && *c != ')').collect();
            found.insert(label, address);
        }
    }
    found
}

/// What the clients saw, by status; and every 5xx that was not a `503` with `Retry-After`.
#[derive(Default)]
struct Seen {
    statuses: BTreeMap<u16, usize>,
    bad: Vec<String>,
    /// Transport errors: a killed gateway's connections (a load balancer would move them).
    failovers: usize,
}

/// Round-robin over the gateways, as a load balancer would: a request whose gateway is gone
/// goes to the next one; a `503` is retried after its `Retry-After` (with the same key).
struct Clients {
    http: reqwest::Client,
    gateways: Vec<String>,
    next: AtomicUsize,
    seen: Mutex<Seen>,
}

impl Clients {
    async fn send(&self, method: reqwest::Method, path: &str, body: Value, key: Option<&str>) -> (u16, Value) {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < until, "{method} {path} never answered for a minute");
            let gateway = &self.gateways[self.next.fetch_add(1, Ordering::Relaxed) % self.gateways.len()];
            let mut request = self.http.request(method.clone(), format!("{gateway}{path}")).json(&body);
            if let Some(key) = key {
                request = request.header("idempotency-key", key);
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(_) => {
                    self.seen.lock().await.failovers += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let status = response.status().as_u16();
            let retry_after = response.headers().contains_key("retry-after");
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let mut seen = self.seen.lock().await;
            *seen.statuses.entry(status).or_default() += 1;
            if status >= 500 && !(status == 503 && retry_after) {
                seen.bad.push(format!("{method} {path}: {status} {body}"));
            }
            drop(seen);
            if status == 503 && retry_after {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            // The same key still at work (its first attempt's answer was lost with a killed
            // process): ask again shortly, as the contract says.
            if status == 409 && body["code"] == "REQUEST_IN_PROGRESS" {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            return (status, body);
        }
    }

    async fn post(&self, path: &str, body: Value, key: Option<&str>) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, body, key).await
    }
}

/// One user's session until `stop`: a coupon, then orders (the first with the coupon), every
/// fourth completed one cancelled. Returns the ids of the orders it started.
async fn shop(clients: Arc<Clients>, user: i64, coupon: i64, products: Vec<i64>, stop: Arc<AtomicBool>) -> Vec<String> {
    let (status, issued) = clients.post(&format!("/v1/coupons/{coupon}/issue"), json!({"userId": user}), None).await;
    // 409 ALREADY_ISSUED: the first answer was lost with its gateway, the issue was not.
    assert!(status == 201 || status == 409, "issue for {user}: {status} {issued}");
    let mut user_coupon = issued["userCouponId"].as_i64();
    let mut orders = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let product = products[(user as usize + n) % products.len()];
        let mut order = json!({"userId": user, "items": [{"productId": product, "quantity": 1}]});
        if let Some(id) = user_coupon.take() {
            order["userCouponId"] = json!(id);
        }
        let key = format!("order-{user}-{n}");
        let (status, answer) = clients.post("/v1/orders", order, Some(&key)).await;
        assert!(matches!(status, 201 | 202), "order {key}: {status} {answer}");
        let id = answer["orderId"].as_str().expect("an order id").to_owned();
        if status == 201 && n % 4 == 0 {
            let path = format!("/v1/orders/{id}/status");
            let (status, answer) = clients
                .send(reqwest::Method::PUT, &path, json!({"status": "CANCELLED"}), Some(&format!("cancel-{id}")))
                .await;
            assert_eq!(status, 200, "cancel {id}: {answer}");
        }
        orders.push(id);
    }
    orders
}

fn pid_of(stack: &Stack, label: &str) -> i32 {
    stack.pid_of(label)
}

async fn restarted(stack: &Stack, label: &str, old: i32) {
    let until = Instant::now() + Duration::from_secs(30);
    while pid_of(stack, label) == old {
        assert!(Instant::now() < until, "{label} was not restarted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The sum of every sample of `metric` on the page.
fn sum_of(page: &str, metric: &str) -> f64 {
    page.lines()
        .filter(|line| line.starts_with(metric) && line[metric.len()..].starts_with(['{', ' ']))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn two_replicas_of_everything_lose_one_of_each_in_turn_under_load() {
    kit::testing::install_crypto_provider();
    let extra = [
        "--replicas",
        "gateway=2",
        "--replicas",
        "inventory=2",
        "--replicas",
        "coupon=2",
        "--replicas",
        "point=2",
        "--replicas",
        "payment=2",
    ];
    let env = [
        // A killed driver's sagas are taken over in seconds, not the default ten.
        ("PAYMENT_SAGA_LEASE_MS", "2000"),
        ("PAYMENT_RECONCILE_EVERY_MS", "500"),
        ("INVENTORY_INVARIANT_CHECK_EVERY_SECS", "1"),
        ("COUPON_INVARIANT_CHECK_EVERY_SECS", "1"),
        ("POINT_INVARIANT_CHECK_EVERY_SECS", "1"),
        ("PAYMENT_INVARIANT_CHECK_EVERY_SECS", "1"),
    ];
    let stack = start_stack_with(StackOptions { extra: &extra, env: &env, auth_off: true, ..Default::default() }).await;
    let gateways: Vec<String> =
        addresses(&stack, "http").into_values().map(|address| format!("http://{address}")).collect();
    assert_eq!(gateways.len(), 2, "two gateways: {:?}", stack.lines());
    let clients = Arc::new(Clients {
        http: reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap(),
        gateways,
        next: AtomicUsize::new(0),
        seen: Mutex::new(Seen::default()),
    });

    let mut products = Vec::new();
    for i in 0..PRODUCTS {
        let (status, product) =
            clients.post("/v1/products", json!({"name": format!("p{i}"), "price": PRICE, "stock": STOCK}), None).await;
        assert_eq!(status, 201, "{product}");
        products.push(product["id"].as_i64().unwrap());
    }
    for user in 1..=USERS {
        let (status, _) = clients.post("/v1/points/charge", json!({"userId": user, "amount": POINTS}), None).await;
        assert_eq!(status, 200);
    }
    let (status, coupon) = clients
        .post(
            "/v1/coupons",
            json!({"name": "replicas", "discountType": "FIXED", "discountValue": 10, "totalQuantity": USERS}),
            None,
        )
        .await;
    assert_eq!(status, 201, "{coupon}");
    let coupon = coupon["id"].as_i64().unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let sessions: Vec<_> = (1..=USERS)
        .map(|user| tokio::spawn(shop(clients.clone(), user, coupon, products.clone(), stop.clone())))
        .collect();
    // One replica of each, in turn, while the load runs.
    for label in ["inventory[0]", "coupon[0]", "point[0]", "payment[0]", "gateway[0]"] {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let victim = pid_of(&stack, label);
        kill(Pid::from_raw(victim), Signal::SIGKILL).unwrap();
        restarted(&stack, label, victim).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    let mut orders = Vec::new();
    for session in sessions {
        orders.extend(session.await.expect("a session ran to its end"));
    }
    assert!(orders.len() > 50, "a load worth the name: {} orders", orders.len());

    // Every order settles.
    let mut final_orders = Vec::new();
    for id in &orders {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, order) =
                clients.send(reqwest::Method::GET, &format!("/v1/orders/{id}"), Value::Null, None).await;
            assert_eq!(status, 200, "{order}");
            if matches!(order["status"].as_str(), Some("COMPLETED" | "FAILED" | "CANCELLED")) {
                final_orders.push(order);
                break;
            }
            assert!(Instant::now() < until, "order {id} never settled: {order}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let by_status = final_orders.iter().fold(BTreeMap::<String, usize>::new(), |mut counts, order| {
        *counts.entry(order["status"].as_str().unwrap().to_owned()).or_default() += 1;
        counts
    });
    assert_eq!(by_status.get("FAILED"), None, "no order failed: {by_status:?}");

    // What the services hold agrees with the orders: stock and points.
    let completed: Vec<&Value> = final_orders.iter().filter(|o| o["status"] == "COMPLETED").collect();
    for product in &products {
        let sold: i64 = completed.iter().filter(|o| o["items"][0]["productId"] == *product).count() as i64;
        let (_, now) = clients.send(reqwest::Method::GET, &format!("/v1/products/{product}"), Value::Null, None).await;
        assert_eq!(now["stock"].as_i64(), Some(STOCK - sold), "product {product}");
    }
    let paid: i64 = completed.iter().map(|o| o["paidAmount"].as_i64().unwrap()).sum();
    let mut balances = 0;
    for user in 1..=USERS {
        let (_, points) = clients.send(reqwest::Method::GET, &format!("/v1/points/{user}"), Value::Null, None).await;
        balances += points["balance"].as_i64().unwrap();
    }
    assert_eq!(USERS * POINTS - balances, paid, "points taken = paid by completed orders");
    let holders: BTreeSet<i64> =
        final_orders.iter().filter(|o| o["userCouponId"].is_i64()).map(|o| o["userId"].as_i64().unwrap()).collect();
    assert!(holders.len() as i64 <= USERS);

    // Every replica's invariant watcher and payment-svc's reconciliation find nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let http = reqwest::Client::new();
    for (label, address) in addresses(&stack, "metrics") {
        let page = http.get(format!("http://{address}/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("mesh_invariant_violations"), "{label} checks its invariants");
        assert_eq!(sum_of(&page, "mesh_invariant_violations"), 0.0, "{label}: {page}");
        assert_eq!(sum_of(&page, "mesh_reconciliation_mismatches"), 0.0, "{label}");
    }

    let seen = clients.seen.lock().await;
    assert!(seen.bad.is_empty(), "5xx other than 503 with Retry-After: {:?}", seen.bad);
    eprintln!(
        "{} orders {by_status:?}; statuses {:?}; {} fail-overs to the other gateway",
        orders.len(),
        seen.statuses,
        seen.failovers
    );
    drop(seen);
    assert!(stack.stop().await.success());
}
