//! The invariants of a checkout phase, read back through the public API once the run and the
//! replays are over. The users are fresh, so every order they have is one of the phase's:
//! - every order ended: none is left PENDING (or CANCELLING), and each order's status is the
//!   answer its client got (`GET /v1/users/{id}/orders`, `GET /v1/orders/{id}` beyond the page);
//! - stock: for every product, stock now + units of its COMPLETED orders == stock before;
//! - points: for every user, charged - balance now == paidAmount of its COMPLETED orders, and
//!   each paidAmount is price x quantity (no coupon);
//! - the data platform got every COMPLETED order and no FAILED one (when loadgen serves it).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;

use super::order::{Answer, Attempt};
use super::settle::Settled;
use super::setup::{Shop, fetch, retried};
use crate::report::Report;
use crate::scenarios::RestPool;

/// Orders asked for per user listing; a user with fewer is listed in full.
pub const LIST_LIMIT: usize = 100;
const CONCURRENCY: usize = 32;
/// How long an order seen PENDING is waited for before it counts as stuck.
const PENDING_WAIT: Duration = Duration::from_secs(10);

fn is_final(status: &str) -> bool {
    !matches!(status, "PENDING" | "CANCELLING")
}

/// Runs `read` on every item, [`CONCURRENCY`] at a time, failing on the first error.
async fn read_all<I, T, F, Fut>(items: I, read: F) -> anyhow::Result<Vec<T>>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let results: Vec<_> = futures::stream::iter(items).map(read).buffer_unordered(CONCURRENCY).collect().await;
    results.into_iter().collect()
}

/// The status of one order, `None` if the API does not know it.
async fn order_status(rest: &RestPool, user: i64, id: &str) -> anyhow::Result<Option<String>> {
    let path = format!("/v1/orders/{id}");
    retried(&format!("GET {path}"), || async {
        // As its buyer: the gateway limits each user's rate, the one admin's too.
        let (status, body) = rest.any().acting_for(user).get(&path).await?;
        match status {
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::OK => {
                let order: Value = serde_json::from_slice(&body).context("order not JSON")?;
                Ok(Some(order["status"].as_str().context("order without status")?.to_owned()))
            }
            other => anyhow::bail!("answered {other}"),
        }
    })
    .await
}

/// Every order of the phase's users the API shows, by id: `(user, status)`; plus the users
/// whose listing held all their orders, and the ids each listing held.
#[derive(Debug, Default)]
struct Orders {
    seen: HashMap<String, (i64, Option<String>)>,
    listed: HashSet<String>,
    complete: HashSet<i64>,
}

async fn read_orders(rest: &RestPool, shop: &Shop, attempts: &[Attempt]) -> anyhow::Result<Orders> {
    let pages = read_all(&shop.users, |&user| async move {
        Ok((user, fetch(rest, Some(user), &format!("/v1/users/{user}/orders?limit={LIST_LIMIT}")).await?))
    })
    .await?;
    let mut orders = Orders::default();
    for (user, page) in pages {
        let items = page["items"].as_array().context("an order listing without items")?;
        if items.len() < LIST_LIMIT {
            orders.complete.insert(user);
        }
        for item in items {
            let id = item["orderId"].as_str().context("a listed order without orderId")?.to_owned();
            let status = item["status"].as_str().map(str::to_owned);
            orders.listed.insert(id.clone());
            orders.seen.insert(id, (user, status));
        }
    }
    // Orders beyond a listing's page, one by one.
    let unlisted: Vec<(i64, &str)> = attempts
        .iter()
        .filter_map(|a| Some((a.line.user, a.answer.order_id()?)))
        .filter(|(_, id)| !orders.seen.contains_key(*id))
        .collect();
    let read =
        read_all(unlisted, |(user, id)| async move { Ok((user, id, order_status(rest, user, id).await?)) }).await?;
    for (user, id, status) in read {
        orders.seen.insert(id.to_owned(), (user, status));
    }
    // A saga still running (or being recovered) is given time to end.
    let started = Instant::now();
    loop {
        let pending: Vec<(i64, String)> = orders
            .seen
            .iter()
            .filter(|(_, (_, s))| s.as_deref().is_some_and(|s| !is_final(s)))
            .map(|(id, (user, _))| (*user, id.clone()))
            .collect();
        if pending.is_empty() || started.elapsed() > PENDING_WAIT {
            return Ok(orders);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let read =
            read_all(pending, |(user, id)| async move { Ok((order_status(rest, user, &id).await?, id)) }).await?;
        for (status, id) in read {
            if let Some(entry) = orders.seen.get_mut(&id) {
                entry.1 = status;
            }
        }
    }
}

fn check_orders(report: &mut Report, shop: &Shop, attempts: &[Attempt], orders: &Orders, settled: &Settled) {
    let count = |want: &str| orders.seen.values().filter(|(_, s)| s.as_deref() == Some(want)).count();
    let pending = orders.seen.values().filter(|(_, s)| s.as_deref().is_some_and(|s| !is_final(s))).count();
    let (mut differ, mut missing, mut unlisted) = (0, 0, 0);
    let mut acknowledged = HashSet::new();
    for attempt in attempts {
        let Some(id) = attempt.answer.order_id() else { continue };
        let want = if matches!(attempt.answer, Answer::Completed { .. }) { "COMPLETED" } else { "FAILED" };
        acknowledged.insert(id);
        match orders.seen.get(id).map(|(_, s)| s.as_deref()) {
            Some(Some(status)) if status == want => {}
            Some(Some(_)) => differ += 1,
            _ => missing += 1,
        }
        if orders.complete.contains(&attempt.line.user) && !orders.listed.contains(id) {
            unlisted += 1;
        }
    }
    let unacknowledged = orders
        .seen
        .iter()
        .filter(|(id, (_, s))| s.as_deref() == Some("COMPLETED") && !acknowledged.contains(id.as_str()))
        .count();
    let detail = format!(
        "{} orders: {} COMPLETED, {} FAILED, {pending} not final after {}s; {differ} differ from their answer, \
         {missing} not found, {unacknowledged} COMPLETED without a 201; {} of {} users listed in full, {unlisted} \
         orders missing from them",
        orders.seen.len(),
        count("COMPLETED"),
        count("FAILED"),
        PENDING_WAIT.as_secs(),
        orders.complete.len(),
        shop.users.len()
    );
    let passed = pending == 0 && differ == 0 && missing == 0 && unlisted == 0 && unacknowledged <= settled.unsettled;
    report.check("orders ended as answered", passed, detail);
}

/// Units sold per product and points paid per user by acknowledged orders, and what the
/// unsettled attempts could have taken on top.
#[derive(Debug, Default)]
struct Book {
    sold: HashMap<i64, i64>,
    sold_unsure: HashMap<i64, i64>,
    paid: HashMap<i64, i64>,
    paid_unsure: HashMap<i64, i64>,
    wrong_amounts: usize,
}

fn book(shop: &Shop, attempts: &[Attempt]) -> Book {
    let price: HashMap<i64, i64> = shop.products.iter().map(|p| (p.id, p.price)).collect();
    let mut book = Book::default();
    for Attempt { line, answer, .. } in attempts {
        let amount = price.get(&line.product).copied().unwrap_or(0) * line.quantity;
        match answer {
            Answer::Completed { paid, .. } => {
                *book.sold.entry(line.product).or_default() += line.quantity;
                *book.paid.entry(line.user).or_default() += paid;
                book.wrong_amounts += usize::from(*paid != amount);
            }
            Answer::Unknown(_) => {
                *book.sold_unsure.entry(line.product).or_default() += line.quantity;
                *book.paid_unsure.entry(line.user).or_default() += amount;
            }
            Answer::Failed { .. } => {}
        }
    }
    book
}

/// `now == before - taken`, where an unsettled attempt may have taken up to `unsure` more.
fn balanced(before: i64, taken: i64, unsure: i64, now: i64) -> bool {
    now >= 0 && (before - taken - unsure..=before - taken).contains(&now)
}

/// Totals of the stock check, for a scenario's own checks (sell-out, oversell).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stock {
    pub before: i64,
    pub sold: i64,
    pub left: i64,
}

async fn check_stock(report: &mut Report, rest: &RestPool, shop: &Shop, book: &Book) -> anyhow::Result<Stock> {
    let stocks = read_all(&shop.products, |p| async move {
        let product = fetch(rest, None, &format!("/v1/products/{}", p.id)).await?;
        Ok((p, product["stock"].as_i64().context("a product without stock")?))
    })
    .await?;
    let (mut off, mut before, mut sold, mut now) = (0, 0, 0, 0);
    for (p, stock) in stocks {
        let taken = book.sold.get(&p.id).copied().unwrap_or(0);
        off += usize::from(!balanced(p.stock, taken, book.sold_unsure.get(&p.id).copied().unwrap_or(0), stock));
        (before, sold, now) = (before + p.stock, sold + taken, now + stock);
    }
    let detail = format!(
        "{} products: stock now {now} + {sold} units of COMPLETED orders = {} (stock before {before}); {off} products off",
        shop.products.len(),
        now + sold
    );
    report.check("stock now + sold == stock before", off == 0, detail);
    Ok(Stock { before, sold, left: now })
}

async fn check_points(report: &mut Report, rest: &RestPool, shop: &Shop, book: &Book) -> anyhow::Result<()> {
    let balances = read_all(&shop.users, |&user| async move {
        let balance = fetch(rest, Some(user), &format!("/v1/points/{user}")).await?;
        Ok((user, balance["balance"].as_i64().context("a balance without balance")?))
    })
    .await?;
    let (mut off, mut paid, mut now) = (0, 0, 0);
    for (user, balance) in balances {
        let taken = book.paid.get(&user).copied().unwrap_or(0);
        off += usize::from(!balanced(shop.charged, taken, book.paid_unsure.get(&user).copied().unwrap_or(0), balance));
        (paid, now) = (paid + taken, now + balance);
    }
    let charged = shop.charged * shop.users.len() as i64;
    let detail = format!(
        "{} users: charged {charged} - balance now {now} = {} vs paidAmount of COMPLETED orders {paid}; {off} users \
         off; {} paidAmount != price x quantity",
        shop.users.len(),
        charged - now,
        book.wrong_amounts
    );
    report.check("points charged - balance == paid", off == 0 && book.wrong_amounts == 0, detail);
    Ok(())
}

/// What loadgen's mock data platform received, against the phase's orders.
async fn check_platform(report: &mut Report, url: &str, attempts: &[Attempt]) -> anyhow::Result<()> {
    let platform = RestPool::single(url, Duration::from_secs(30))?;
    let received = fetch(&platform, None, "/received").await?;
    let items = received["items"].as_array().context("GET /received without items")?;
    let ids: Vec<&str> =
        items.iter().filter_map(|o| o.get("orderId").or_else(|| o.get("order_id"))?.as_str()).collect();
    if ids.is_empty() && !items.is_empty() {
        report.extra("data_platform", format!("{} orders received, without orderId: not compared", items.len()));
        return Ok(());
    }
    let got: HashSet<&str> = ids.iter().copied().collect();
    let duplicates = ids.len() - got.len();
    let (mut completed, mut missing, mut failed_sent) = (0, 0, 0);
    for attempt in attempts {
        match &attempt.answer {
            Answer::Completed { order_id, .. } => {
                completed += 1;
                missing += usize::from(!got.contains(order_id.as_str()));
            }
            Answer::Failed { order_id: Some(id), .. } => failed_sent += usize::from(got.contains(id.as_str())),
            _ => {}
        }
    }
    let detail = format!(
        "{completed} COMPLETED orders: {missing} not received; {failed_sent} FAILED orders received; {} received in \
         all this run ({duplicates} repeated deliveries)",
        ids.len()
    );
    report.check("data platform got every completed order", missing == 0 && failed_sent == 0, detail);
    Ok(())
}

/// Adds the phase's invariant checks to `report`; the stock totals.
pub async fn verify(
    report: &mut Report,
    rest: &RestPool,
    shop: &Shop,
    attempts: &[Attempt],
    settled: &Settled,
    platform: Option<&str>,
) -> anyhow::Result<Stock> {
    report.extra("settled", settled.detail());
    let orders = read_orders(rest, shop, attempts).await?;
    check_orders(report, shop, attempts, &orders, settled);
    let book = book(shop, attempts);
    let stock = check_stock(report, rest, shop, &book).await?;
    check_points(report, rest, shop, &book).await?;
    if let Some(url) = platform {
        check_platform(report, url, attempts).await?;
    }
    Ok(stock)
}

#[cfg(test)]
mod tests {
    use super::balanced;

    #[test]
    fn only_unsettled_attempts_widen_the_balance() {
        assert!(balanced(100, 30, 0, 70));
        assert!(!balanced(100, 30, 0, 69), "a sale nobody acknowledged");
        assert!(!balanced(100, 30, 0, 71), "an acknowledged sale that did not happen");
        assert!(balanced(100, 30, 2, 68));
        assert!(!balanced(3, 4, 0, -1), "oversold");
    }
}
