//! product-read: the gateway's cached product reads (`GET /v1/products/{id}`) over keep-alive
//! connections, on products it creates through the gateway first. Where `inventory-read`
//! measures inventory-svc alone over gRPC, this is the path a shop page takes: HTTP/1.1,
//! JSON, the gateway's hop, then inventory-svc's cache.

use std::sync::Arc;

use anyhow::{Context, ensure};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Caller, RestPool, Target, problem_code, spread, status_of, transport_error};
use crate::driver::{Limits, Outcome, Pace, Sample, run_loop};
use crate::report::Report;

/// Products created at once while setting up: setup is not measured.
const SETUP_CONCURRENCY: usize = 16;

#[derive(Clone, Copy, Debug)]
pub struct ProductRead {
    /// Closed loop: the concurrent clients. Open loop: the connections opened before the run.
    pub clients: usize,
    pub products: usize,
    pub pace: Pace,
}

impl ProductRead {
    pub fn validate(&self) -> anyhow::Result<()> {
        ensure!(self.clients >= 1, "at least one client is needed");
        ensure!((1..=100_000).contains(&self.products), "--products must be 1..=100000");
        self.pace.validate()
    }
}

async fn create_product(rest: Caller<'_>, name: String) -> anyhow::Result<i64> {
    let body = json!({"name": name, "price": 1_000, "stock": 1_000}).to_string();
    let (status, answer) = rest.post("/v1/products", body).await.context("POST /v1/products failed")?;
    ensure!(status == StatusCode::CREATED, "POST /v1/products answered {status}: {}", String::from_utf8_lossy(&answer));
    let product: Value = serde_json::from_slice(&answer).context("the created product is not JSON")?;
    product["id"].as_i64().context("the created product has no id")
}

/// A 200 must be the product asked for.
fn judge(status: StatusCode, body: &[u8], id: i64) -> Outcome {
    if status != StatusCode::OK {
        return Outcome::Error(format!("{} {}", status.as_u16(), problem_code(body).as_deref().unwrap_or("-")));
    }
    match serde_json::from_slice::<Value>(body).ok().and_then(|p| p["id"].as_i64()) {
        Some(got) if got == id => Outcome::Ok,
        Some(_) => Outcome::Error("200 for another product".into()),
        None => Outcome::Error("200 without id".into()),
    }
}

async fn read(rest: Caller<'_>, id: i64) -> Sample {
    match rest.get(&format!("/v1/products/{id}")).await {
        Ok((status, body)) => judge(status, &body, id).over_http(status_of(status)),
        Err(err) => transport_error(&err),
    }
}

/// Creates `products` products, reads each once (the first read fills the cache, so the run
/// measures cached reads), then the clients read random ones of them.
pub async fn product_read(target: &Target, cfg: &ProductRead, limits: Limits) -> anyhow::Result<Report> {
    cfg.validate()?;
    let rest = RestPool::new(target, cfg.clients, cfg.pace)?;
    let run_id = kit::testing::unique_prefix();
    let creates = (0..cfg.products).map(|i| create_product(rest.any(), format!("loadgen product read {run_id}{i}")));
    let ids: Arc<[i64]> = futures::stream::iter(creates)
        .buffered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let fills = ids.iter().map(|&id| read(rest.any(), id));
    for filled in futures::stream::iter(fills).buffer_unordered(SETUP_CONCURRENCY).collect::<Vec<_>>().await {
        ensure!(filled.outcome == Outcome::Ok, "the first read of a product failed: {:?}", filled.outcome);
    }
    rest.warm_up().await?;

    let (shared, run_ids) = (rest.clone(), ids.clone());
    let run = run_loop(cfg.clients, cfg.pace, limits, move |client, seq| {
        let (rest, id) = (shared.clone(), run_ids[(spread(seq) % run_ids.len() as u64) as usize]);
        async move { read(rest.caller(client), id).await }
    })
    .await;

    let mut report = Report::new("product-read", run);
    report.param("target", target.url.as_str()).param("http1_connections", rest.len() as u64);
    report.param("source_addresses", rest.sources()).param("products", cfg.products as u64);
    report.param("auth", rest.auth());
    let (lo, hi) = (ids.iter().min().copied().unwrap_or(0), ids.iter().max().copied().unwrap_or(0));
    report.extra("product_ids", format!("{lo}..={hi}"));
    let t = &report.run.tally;
    let wrong: u64 = t.errors.iter().filter(|(e, _)| e.starts_with("200 ")).map(|(_, n)| n).sum();
    let detail = format!("{wrong} of {} answers 200 were not the product asked for", t.ok + wrong);
    report.check("every 200 is the product asked for", wrong == 0, detail);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_200_counts_only_for_the_product_asked_for() {
        let body = br#"{"id":42,"name":"x","price":1000,"stock":1000,"version":1}"#;
        assert_eq!(judge(StatusCode::OK, body, 42), Outcome::Ok);
        assert_eq!(judge(StatusCode::OK, body, 41), Outcome::Error("200 for another product".into()));
        assert_eq!(judge(StatusCode::OK, b"{}", 42), Outcome::Error("200 without id".into()));
        let gone = br#"{"status":404,"code":"NOT_FOUND"}"#;
        assert_eq!(judge(StatusCode::NOT_FOUND, gone, 42), Outcome::Error("404 NOT_FOUND".into()));
        let validation = ProductRead { clients: 8, products: 0, pace: Pace::Closed };
        assert!(validation.validate().is_err());
    }
}
