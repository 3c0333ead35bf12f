//! `--seed-demo`: demo data loaded through the public REST API, like a user would, so
//! the data is valid by construction. With auth on, as an admin (a short-lived token
//! minted in-process with the devstack's key), since creating products and coupons and
//! charging other users' points are admin-only.

use serde_json::{Value, json};

use crate::logs;

/// `admin_token`: a bearer token with the admin role, or `None` when auth is off.
pub async fn load(gateway: &str, admin_token: Option<&str>) -> anyhow::Result<()> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = admin_token {
        headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse()?);
    }
    let http = reqwest::Client::builder().default_headers(headers).build()?;
    let existing: Value = http.get(format!("{gateway}/v1/products?size=1")).send().await?.json().await?;
    if existing["totalItems"].as_i64().unwrap_or(0) > 0 {
        logs::say("demo data already present; not seeding again");
        return Ok(());
    }
    let products = [
        ("Mechanical Keyboard", 89_000, 100),
        ("Wireless Mouse", 39_000, 250),
        ("27-inch Monitor", 329_000, 40),
        ("USB-C Hub", 45_000, 500),
        ("Limited Edition Keycaps", 120_000, 10),
    ];
    for (name, price, stock) in products {
        let resp = http
            .post(format!("{gateway}/v1/products"))
            .json(&json!({"name": name, "price": price, "stock": stock}))
            .send()
            .await?;
        if !resp.status().is_success() {
            anyhow::bail!("seeding product {name:?} failed: {}", resp.status());
        }
    }
    logs::say(format_args!("seeded {} demo products", products.len()));
    for user_id in 1..=5 {
        let resp = http
            .post(format!("{gateway}/v1/points/charge"))
            .header("idempotency-key", format!("devstack-seed-{user_id}"))
            .json(&json!({"userId": user_id, "amount": 1_000_000}))
            .send()
            .await?;
        if !resp.status().is_success() {
            anyhow::bail!("seeding points of user {user_id} failed: {}", resp.status());
        }
    }
    logs::say("seeded 1,000,000 points for users 1..=5");
    let coupons = [
        json!({"name": "Welcome 3,000 won", "discountType": "FIXED", "discountValue": 3000, "totalQuantity": 1000}),
        json!({"name": "Black Friday 15%", "discountType": "PERCENT", "discountValue": 15, "maxDiscount": 50000, "totalQuantity": 100}),
    ];
    for coupon in coupons {
        let resp = http.post(format!("{gateway}/v1/coupons")).json(&coupon).send().await?;
        if !resp.status().is_success() {
            anyhow::bail!("seeding coupon {coupon} failed: {}", resp.status());
        }
    }
    logs::say("seeded 2 demo coupons");
    Ok(())
}
