//! What a checkout phase sells and who buys, set up through the gateway like any client
//! would: products with stock (`POST /v1/products`), users with points
//! (`POST /v1/points/charge`). Plus the retried reads the checks afterwards make.

use std::future::Future;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::scenarios::points::{MAX_BALANCE, MAX_CHARGE};
use crate::scenarios::{RestPool, fresh_users};

/// Unit price of every product: small, so a user's 10,000,000-point charge buys 10,000 orders.
pub const PRICE: i64 = 1_000;
/// Setup requests in flight at once: setup is not measured, and a gentle pace keeps first
/// charges of neighbouring new users from contending.
const SETUP_CONCURRENCY: usize = 16;
/// How often a setup or check request is sent before the phase gives up. The waits between
/// tries add up to 2.8 s: long enough for the gateway's per-caller bucket to refill after a
/// burst of checks as the one admin (a `429` is then the normal answer, not a failure).
const TRIES: u64 = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Product {
    pub id: i64,
    pub price: i64,
    /// Its stock when the phase started.
    pub stock: i64,
}

/// The products and users of one phase; the users are fresh, so every order they have is
/// one of the phase's.
#[derive(Clone, Debug)]
pub struct Shop {
    pub products: Vec<Product>,
    pub users: Vec<i64>,
    /// What each user was charged before the phase.
    pub charged: i64,
}

/// Runs `call` until it succeeds, [`TRIES`] times at most, backing off a little.
pub async fn retried<T, F, Fut>(what: &str, mut call: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(err) if attempt >= TRIES => return Err(err.context(format!("{what} failed {TRIES} times"))),
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                attempt += 1;
            }
        }
    }
}

/// `GET <path>` answered 200 with JSON, asked as `user` (about whom it is) or, for `None`,
/// as an admin. Per user, because the gateway limits each user's rate: every check as the
/// one admin would be refused long before the checks were done.
pub async fn fetch(rest: &RestPool, user: Option<i64>, path: &str) -> anyhow::Result<Value> {
    retried(&format!("GET {path}"), || async {
        let caller = match user {
            Some(user) => rest.any().acting_for(user),
            None => rest.any(),
        };
        let (status, body) = caller.get(path).await?;
        if status != StatusCode::OK {
            bail!("GET {path} answered {status}: {}", String::from_utf8_lossy(&body));
        }
        serde_json::from_slice(&body).with_context(|| format!("GET {path} is not JSON"))
    })
    .await
}

async fn create_product(rest: &RestPool, name: String, stock: i64) -> anyhow::Result<Product> {
    let body = json!({"name": name, "price": PRICE, "stock": stock}).to_string();
    // A retried create may leave an unused product behind; only the one answered is sold.
    let created = retried("POST /v1/products", || async {
        let (status, answer) = rest.any().post("/v1/products", body.clone()).await?;
        ensure!(status == StatusCode::CREATED, "answered {status}: {}", String::from_utf8_lossy(&answer));
        Ok(serde_json::from_slice::<Value>(&answer)?)
    })
    .await?;
    let id = created["id"].as_i64().context("the created product has no id")?;
    Ok(Product { id, price: PRICE, stock })
}

/// Charges `amount` to `user` in charges of at most [`MAX_CHARGE`], each with its own
/// Idempotency-Key, so a retried charge is never counted twice.
async fn charge(rest: &RestPool, run_id: &str, user: i64, amount: i64) -> anyhow::Result<()> {
    let mut done = 0;
    for part in 0.. {
        if done >= amount {
            break;
        }
        let step = (amount - done).min(MAX_CHARGE);
        let (key, body) = (format!("lg-checkout-{run_id}-{user}-{part}"), json!({"userId": user, "amount": step}));
        retried("POST /v1/points/charge", || async {
            // As the user itself: the admin's rate limit would not last thousands of charges.
            let caller = rest.any().acting_for(user);
            let (status, answer) = caller.post_keyed("/v1/points/charge", Some(&key), body.to_string()).await?;
            ensure!(status == StatusCode::OK, "answered {status}: {}", String::from_utf8_lossy(&answer));
            Ok(())
        })
        .await?;
        done += step;
    }
    Ok(())
}

/// Creates `products` products of `stock` units, and `users` fresh users holding `points` each.
pub async fn open(
    rest: &RestPool,
    label: &str,
    (products, stock): (usize, i64),
    (users, points): (usize, i64),
) -> anyhow::Result<Shop> {
    ensure!((1..=MAX_BALANCE).contains(&points), "points per user must be 1..={MAX_BALANCE}");
    let run_id = kit::testing::unique_prefix();
    let creates = (0..products).map(|i| create_product(rest, format!("loadgen {label} {run_id}{i}"), stock));
    let products: Vec<Product> = futures::stream::iter(creates)
        .buffered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let first = fresh_users();
    let users: Vec<i64> = (0..users as i64).map(|i| first + i).collect();
    if let Some(credentials) = rest.credentials() {
        credentials.mint_ahead(users.iter().copied()).await?;
    }
    let charges = users.iter().map(|&user| charge(rest, &run_id, user, points));
    futures::stream::iter(charges)
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<()>>>()?;
    Ok(Shop { products, users, charged: points })
}
