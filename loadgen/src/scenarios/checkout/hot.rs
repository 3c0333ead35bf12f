//! The hot phase: `clients` buyers, each a fresh user of its own, order one unit of one
//! product with `stock` units, `attempts` orders in all. The first `stock` attempts are the
//! race (each should win: its rate is reservations/s), the rest meet a sold-out product.
//! Zero oversell is checked through the API, and so is an exact sell-out.

use std::sync::Arc;

use anyhow::ensure;

use super::order::{Book, Line, OUT_OF_STOCK};
use super::{POINTS, describe, ordering, settle_and_verify, setup};
use crate::driver::{Limits, Pace, run_phased};
use crate::mysql_counters::{MysqlCounters, around};
use crate::report::Report;
use crate::scenarios::inventory::MAX_STOCK;
use crate::scenarios::{RestPool, Target};

#[derive(Clone, Copy, Debug)]
pub struct Hot {
    /// Buyers, each a user of its own: the concurrent clients of a closed loop; in an open
    /// loop, order `n` is user `n % clients`'s.
    pub clients: usize,
    pub stock: i64,
    /// Orders in all, race included; more than `stock`, so the product sells out.
    pub attempts: u64,
    pub pace: Pace,
}

impl Hot {
    pub fn validate(&self) -> anyhow::Result<()> {
        ensure!(self.clients >= 1 && self.clients <= 100_000, "--hot-clients must be 1..=100000");
        ensure!((1..=MAX_STOCK).contains(&self.stock), "--hot-stock must be 1..={MAX_STOCK}");
        ensure!(self.attempts >= self.stock as u64, "--hot-attempts must be at least --hot-stock");
        self.pace.validate()
    }
}

/// Three reports, as for the coupon race: `checkout-hot-race` (the first `stock` attempts),
/// `checkout-hot-soldout` (the rest) and `checkout-hot` (both, with the checks). `limits`
/// bounds the whole phase; its request budget is `attempts`. MySQL's counts, when `counters`,
/// go with `checkout-hot` (the whole phase, one load loop).
pub async fn hot(
    target: &Target,
    cfg: &Hot,
    limits: Limits,
    counters: Option<&MysqlCounters>,
) -> anyhow::Result<Vec<Report>> {
    cfg.validate()?;
    let rest = RestPool::new(target, cfg.clients, cfg.pace)?;
    let shop = setup::open(&rest, "checkout hot", (1, cfg.stock), (cfg.clients, POINTS)).await?;
    rest.warm_up().await?;

    let book = Book::default();
    let (users, product): (Arc<[i64]>, i64) = (shop.users.clone().into(), shop.products[0].id);
    // Client `i` is always user `i`: in a closed loop a user's orders follow one another and
    // never overlap (in an open loop they overlap only if one takes longer than the
    // `clients / rate` seconds between them).
    let op = ordering(rest.clone(), book.clone(), move |client, _| Line { user: users[client], product, quantity: 1 });
    let limits = Limits { max_requests: Some(cfg.attempts.min(limits.max_requests.unwrap_or(u64::MAX))), ..limits };
    let ((race, soldout), mysql) =
        around(counters, run_phased(cfg.clients, cfg.pace, limits, cfg.stock as u64, op)).await;
    let race_oos = race.tally.rejected.get(OUT_OF_STOCK).copied().unwrap_or(0);

    let both = race.then(&soldout);
    let mut reports = vec![
        Report::new("checkout-hot-race", race),
        Report::new("checkout-hot-soldout", soldout),
        Report::new("checkout-hot", both),
    ];
    for report in &mut reports {
        describe(report, target, &shop, &rest);
        report.param("stock", cfg.stock).param("attempts", cfg.attempts).param("product_id", product);
    }
    let all = &mut reports[2];
    all.mysql = mysql;
    let stock = settle_and_verify(all, target, &rest, &shop, &book).await?;
    let oos = all.run.tally.rejected.get(OUT_OF_STOCK).copied().unwrap_or(0);
    all.extra("units_sold", stock.sold).extra("stock_left", stock.left);
    all.extra("out_of_stock", oos).extra("out_of_stock_in_race", race_oos);
    let detail = format!("{} sold of {} units, {} left", stock.sold, cfg.stock, stock.left);
    all.check("zero oversell", stock.sold <= cfg.stock && stock.left >= 0, detail.clone());
    if oos > 0 {
        // An OUT_OF_STOCK is only right once nothing is left to sell.
        all.check("exact sell-out", stock.left == 0 && stock.sold == cfg.stock, detail);
    }
    Ok(reports)
}
