//! checkout: the payment saga end to end through the gateway (`POST /v1/orders`, each with its
//! own Idempotency-Key), in two phases, each on products and fresh users set up for it:
//! - distinct: many users and products, request `seq` buying product `seq % products` for
//!   user `seq % users`, so the orders in flight at once (consecutive `seq`s) never share a
//!   row; stock and points suffice for every order. The cost of the saga itself.
//! - hot: one product, `clients` buyers (each a user of its own, so in a closed loop one user
//!   never has two orders in flight) race for `stock` units, then the sold-out traffic continues.
//!
//! Either phase runs closed loop (its clients), or open loop at a fixed rate ([`Pace`]); in an
//! open loop the orders in flight at once may outnumber the users or products, and then share
//! rows, which costs contention but no correctness. MySQL's statements and transactions per
//! order are read around the load loop of each phase ([`crate::mysql_counters`]).
//!
//! After each phase, attempts without a final answer (`202`, timeouts) are settled by replaying
//! their key ([`settle`]) and the invariants are read back through the API ([`verify`]).

mod hot;
mod order;
mod settle;
mod setup;
mod verify;

use std::sync::Arc;

use anyhow::ensure;
use serde_json::json;

pub use self::hot::{Hot, hot};
use self::order::{Attempt, Book, Line, place};
pub use self::order::{OUT_OF_STOCK, PENDING};
use self::setup::Shop;
use super::{RestPool, Target};
use crate::driver::{Limits, Pace, Sample, run_loop};
use crate::mysql_counters::{MysqlCounters, around};
use crate::report::Report;
use crate::scenarios::points::MAX_CHARGE;

/// Stock of each product of the distinct phase: far more than any run sells of one.
const DISTINCT_STOCK: i64 = 1_000_000;
/// Charged to every user before a phase: at [`setup::PRICE`], 10,000 orders each.
const POINTS: i64 = MAX_CHARGE;

#[derive(Clone, Copy, Debug)]
pub struct Distinct {
    /// Closed loop: the concurrent clients. Open loop: the connections opened before the run.
    pub clients: usize,
    pub users: usize,
    pub products: usize,
    pub pace: Pace,
}

impl Distinct {
    pub fn validate(&self) -> anyhow::Result<()> {
        ensure!(self.clients >= 1, "at least one client is needed");
        self.pace.validate()?;
        // Fewer rows than clients would make concurrent orders share a user or a product.
        ensure!(self.users >= self.clients, "--users must be at least --clients");
        ensure!(self.products >= self.clients, "--products must be at least --clients");
        ensure!(self.users <= 100_000 && self.products <= 100_000, "--users and --products must be at most 100000");
        Ok(())
    }
}

/// A driver op that places one order per call, recording every attempt in `book`.
fn ordering(
    rest: RestPool,
    book: Book,
    line: impl Fn(usize, u64) -> Line + Send + Sync + 'static,
) -> impl Fn(usize, u64) -> futures::future::BoxFuture<'static, Sample> + Send + Sync + 'static {
    move |client, seq| {
        let (rest, book, line) = (rest.clone(), book.clone(), line(client, seq));
        Box::pin(async move {
            let key = uuid::Uuid::new_v4().to_string();
            let placed = place(rest.caller(client), &key, line).await;
            book.record(Attempt { key, line, answer: placed.answer, retry_after: placed.retry_after });
            placed.outcome.over_http(placed.http)
        })
    }
}

/// What every checkout report states about its setup.
fn describe(report: &mut Report, target: &Target, shop: &Shop, rest: &RestPool) {
    report.param("target", target.url.as_str()).param("http1_connections", rest.len() as u64);
    report.param("source_addresses", rest.sources()).param("auth", rest.auth());
    report.param("products", shop.products.len() as u64).param("users", shop.users.len() as u64);
    report.param("price", setup::PRICE).param("points_per_user", shop.charged);
}

/// Settles the phase's undecided attempts and checks its invariants into `report`.
async fn settle_and_verify(
    report: &mut Report,
    target: &Target,
    rest: &RestPool,
    shop: &Shop,
    book: &Book,
) -> anyhow::Result<verify::Stock> {
    let mut attempts = book.take();
    let settled = settle::settle(rest, &mut attempts).await;
    verify::verify(report, rest, shop, &attempts, &settled, target.data_platform.as_deref()).await
}

/// The distinct phase: one report, `checkout-distinct`, with MySQL's counts when `counters`.
pub async fn distinct(
    target: &Target,
    cfg: &Distinct,
    limits: Limits,
    counters: Option<&MysqlCounters>,
) -> anyhow::Result<Report> {
    cfg.validate()?;
    let rest = RestPool::new(target, cfg.clients, cfg.pace)?;
    let shop = setup::open(&rest, "checkout distinct", (cfg.products, DISTINCT_STOCK), (cfg.users, POINTS)).await?;
    rest.warm_up().await?;

    let book = Book::default();
    let users: Arc<[i64]> = shop.users.clone().into();
    let products: Arc<[i64]> = shop.products.iter().map(|p| p.id).collect();
    let op = ordering(rest.clone(), book.clone(), move |_, seq| Line {
        user: users[(seq % users.len() as u64) as usize],
        product: products[(seq % products.len() as u64) as usize],
        quantity: 1,
    });
    let (run, mysql) = around(counters, run_loop(cfg.clients, cfg.pace, limits, op)).await;

    let mut report = Report::new("checkout-distinct", run);
    report.mysql = mysql;
    describe(&mut report, target, &shop, &rest);
    report.param("stock_per_product", DISTINCT_STOCK);
    let rejected = report.run.tally.rejected.clone();
    settle_and_verify(&mut report, target, &rest, &shop, &book).await?;
    // Every order had stock and points enough: a business rejection here is a wrong answer.
    let detail = format!("{} orders, rejected: {}", report.run.tally.total(), json!(rejected));
    report.check("no order refused", rejected.is_empty(), detail);
    Ok(report)
}
