//! `loadgen bench catalog`: a bulk load of N generated products, the bare listing query on
//! MySQL (the raw backend), then listing and name search through the gateway (search twice:
//! `catalog-search-first` meets every term for the first time, `catalog-search` again).

use std::time::Duration;

use anyhow::Context;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DbBackend, Statement};
use serde_json::Value;

use super::{Deployment, Headline, find, printed, target, with_services};
use crate::driver::{Limits, Outcome, Pace, run_closed_loop};
use crate::mysql_counters::MysqlCounters;
use crate::report::Report;
use crate::scenarios::catalog::{self, Browse, BrowseKind, names::mix};
use crate::scenarios::{Ledger, Target};

#[derive(Clone, Debug)]
pub struct CatalogBench {
    pub deployment: Deployment,
    pub limits: Limits,
    /// Products loaded before the runs (0: use the catalog as it is).
    pub products: u64,
    pub clients: usize,
    pub list_pace: Pace,
    pub search_pace: Pace,
    pub raw_clients: usize,
    /// Listing pages visited: `0..=list_pages`.
    pub list_pages: u64,
    pub search_pages: u64,
}

const HEADLINE: Headline = Headline {
    bench: "catalog",
    raw_scenario: "raw-mysql-list-page",
    hot_scenario: "catalog-list",
    hot_key: "catalog_list_rps",
    hot_unit: "listing pages/s",
    raw_key: "raw_list_page_rps",
    raw_unit: "raw page queries/s",
    rate: Report::ok_per_second,
    rate_title: "ok/s",
    also: &[],
};

pub async fn run(cfg: &CatalogBench) -> anyhow::Result<bool> {
    cfg.deployment.check_binaries()?;
    let counters = MysqlCounters::connect_or_warn(&cfg.deployment.mysql_url).await;
    let (reports, memory) =
        with_services(&cfg.deployment, |target| async move { scenarios(cfg, &target, counters.as_ref()).await })
            .await?;
    let targets = targets(&reports);
    Ok(super::finish(&HEADLINE, &reports, &memory, targets))
}

async fn scenarios(
    cfg: &CatalogBench,
    target: &Target,
    counters: Option<&MysqlCounters>,
) -> anyhow::Result<Vec<Report>> {
    // A spawned inventory-svc starts empty, so the catalog is exactly what was loaded.
    let fresh = !cfg.deployment.spawn.is_empty();
    if cfg.products > 0 {
        let grpc =
            target.backend.as_deref().context("the bulk load needs inventory-svc's gRPC address (--inventory)")?;
        let loaded = catalog::load(grpc, cfg.products).await?;
        println!(
            "loaded {} products in {:.1} s ({:.0} products/s, through ImportProducts)",
            loaded.products,
            loaded.elapsed.as_secs_f64(),
            loaded.per_second()
        );
        settle(&cfg.deployment.mysql_url).await?;
    }
    let mut reports = Vec::new();
    if let Some(ledger) = &target.ledger {
        reports.push(printed(raw_list_page(ledger, cfg.raw_clients, cfg.list_pages, cfg.limits)).await?);
    }
    let browse = |kind, max_page| Browse {
        kind,
        clients: cfg.clients,
        pace: if kind == BrowseKind::List { cfg.list_pace } else { cfg.search_pace },
        max_page,
        products: fresh.then_some(cfg.products),
    };
    let list = browse(BrowseKind::List, cfg.list_pages);
    reports.push(printed(catalog::browse(target, &list, cfg.limits, counters)).await?);
    // Twice: first from whatever the cache holds (a fresh catalog: nothing, every term's first
    // search ranks it), then the same terms again, as a shop's steady state.
    let search = browse(BrowseKind::Search, cfg.search_pages);
    let cold = catalog::browse(target, &search, cfg.limits, counters).await?;
    let cold = Report { scenario: "catalog-search-first".into(), ..cold };
    cold.print();
    reports.push(cold);
    reports.push(printed(catalog::browse(target, &search, cfg.limits, counters)).await?);
    Ok(reports)
}

/// Waits until MySQL has written back what the load left dirty (at most two minutes): a
/// measurement that starts sooner measures InnoDB's page flushing, not the catalog.
async fn settle(mysql_url: &str) -> anyhow::Result<()> {
    let db = Database::connect(mysql_url).await.context("cannot watch MySQL settle")?;
    let status = |name: &'static str| {
        let db = db.clone();
        async move {
            let sql = format!("SHOW GLOBAL STATUS LIKE '{name}'");
            let row = db.query_one_raw(Statement::from_string(DbBackend::MySql, sql)).await?;
            let value: String = row.map(|r| r.try_get_by_index(1)).transpose()?.unwrap_or_default();
            anyhow::Ok(value.parse::<u64>().unwrap_or(0))
        }
    };
    let started = std::time::Instant::now();
    let total = status("Innodb_buffer_pool_pages_total").await?;
    loop {
        let dirty = status("Innodb_buffer_pool_pages_dirty").await?;
        if dirty <= (total / 100).max(100) || started.elapsed() > Duration::from_secs(120) {
            println!(
                "mysql settled in {:.1} s: {dirty} dirty pages of {total} ({} MiB buffer pool)",
                started.elapsed().as_secs_f64(),
                total * 16 / 1024
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _ = db.close().await;
    Ok(())
}

const RAW_SORTS: [&str; 5] =
    ["p.id", "p.name, p.id", "p.price, p.id", "p.price DESC, p.id DESC", "p.created_at DESC, p.id DESC"];

/// The listing query inventory-svc runs for a page (the index walk for the page's ids, then
/// their rows), straight on MySQL over `clients` connections: the raw backend of a listing.
async fn raw_list_page(ledger: &Ledger, clients: usize, max_page: u64, limits: Limits) -> anyhow::Result<Report> {
    crate::net::ensure_loopback("mysql url", &ledger.mysql_url)?;
    let url = format!("{}/{}", ledger.mysql_url.trim_end_matches('/'), ledger.schema);
    let mut options = ConnectOptions::new(url);
    options.max_connections(clients as u32).min_connections(clients as u32).sqlx_logging(false);
    options.acquire_timeout(Duration::from_secs(10));
    let db = Database::connect(options).await.context("raw listing: cannot connect")?;
    let shared = db.clone();
    let run = run_closed_loop(clients, limits, move |_, seq| {
        let db = shared.clone();
        let seed = mix(seq ^ 0xb20e);
        let order = RAW_SORTS[(seed % RAW_SORTS.len() as u64) as usize];
        let offset = ((seed >> 8) % (max_page + 1)) * 20;
        async move {
            let sql = format!(
                "SELECT p.id, p.name, p.price, p.stock, p.version, p.created_at, p.updated_at \
                 FROM (SELECT p.id FROM product p ORDER BY {order} LIMIT 20 OFFSET {offset}) page \
                 JOIN product p ON p.id = page.id ORDER BY {order}"
            );
            match db.query_all_raw(Statement::from_string(DbBackend::MySql, sql)).await {
                Ok(rows) if !rows.is_empty() => Outcome::Ok,
                Ok(_) => Outcome::Error("an empty page".into()),
                Err(err) => Outcome::Error(crate::raw::label(&err)),
            }
        }
    })
    .await;
    let _ = db.close().await;
    let mut report = Report::new(HEADLINE.raw_scenario, run);
    report.param("schema", ledger.schema.as_str()).param("pool", clients as u64);
    report.param("pages", format!("0..={max_page}"));
    Ok(report)
}

fn targets(reports: &[Report]) -> Vec<Value> {
    let mut targets = Vec::new();
    if let Some(list) = find(reports, "catalog-list") {
        targets.push(target("listing pages/s >= 5000", list.ok_per_second(), 5_000.0, true));
        targets.push(target("listing p99 ms < 20", list.latency().p99, 20.0, false));
    }
    if let Some(search) = find(reports, "catalog-search") {
        targets.push(target("searches/s >= 500", search.ok_per_second(), 500.0, true));
        targets.push(target("search p99 ms < 100", search.latency().p99, 100.0, false));
    }
    targets
}
