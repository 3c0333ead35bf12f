//! `catalog-list` and `catalog-search`: `GET /v1/products` through the gateway, every sort, as a
//! shop's visitors page through it. Each answer is checked, not only counted: a listing's
//! `totalItems` is the catalog's exact size and its page is in order; every product a search
//! returns holds the term.

use anyhow::ensure;
use reqwest::StatusCode;
use serde_json::Value;

use super::names::{mix, search_term};
use crate::driver::{Limits, Outcome, Pace, Sample, run_loop};
use crate::mysql_counters::{MysqlCounters, around};
use crate::report::Report;
use crate::scenarios::{RestPool, Target, problem_code, status_of, transport_error};

const SORTS: [&str; 5] = ["id", "name", "price", "-price", "newest"];
const PAGE_SIZE: u64 = 20;
/// Distinct search terms the visitors type.
const TERMS: u64 = 300;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrowseKind {
    /// No name filter, pages `0..=max_page`.
    List,
    /// A name filter, pages `0..=max_page`.
    Search,
}

#[derive(Clone, Copy, Debug)]
pub struct Browse {
    pub kind: BrowseKind,
    pub clients: usize,
    pub pace: Pace,
    pub max_page: u64,
    /// The catalog's size when loadgen knows it exactly (it loaded a fresh one): every
    /// listing's `totalItems` must be this.
    pub products: Option<u64>,
}

/// The request of sequence number `seq`, and the term it searches.
fn request(cfg: &Browse, seq: u64) -> (String, Option<String>) {
    let seed = mix(seq ^ 0xb20e);
    let sort = SORTS[(seed % SORTS.len() as u64) as usize];
    let page = (seed >> 8) % (cfg.max_page + 1);
    let mut url = reqwest::Url::parse("http://gateway/v1/products").expect("a valid base");
    let term = (cfg.kind == BrowseKind::Search).then(|| search_term((seed >> 20) % TERMS));
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("sort", sort)
            .append_pair("page", &page.to_string())
            .append_pair("size", &PAGE_SIZE.to_string());
        if let Some(term) = &term {
            query.append_pair("name", term);
        }
    }
    (format!("{}?{}", url.path(), url.query().unwrap_or_default()), term)
}

/// What is wrong with a 200, if anything.
fn judge(body: &[u8], path: &str, term: Option<&str>, products: Option<u64>) -> Outcome {
    let Ok(page) = serde_json::from_slice::<Value>(body) else { return Outcome::Error("200 not JSON".into()) };
    let (Some(items), Some(total)) = (page["items"].as_array(), page["totalItems"].as_u64()) else {
        return Outcome::Error("200 without items or totalItems".into());
    };
    let number = page["page"].as_u64().unwrap_or(0);
    if term.is_none() {
        if products.is_some_and(|products| total != products) {
            return Outcome::Error("totalItems is not the catalog's size".into());
        }
        let expected = total.saturating_sub(number * PAGE_SIZE).min(PAGE_SIZE);
        if items.len() as u64 != expected {
            return Outcome::Error("a listing page short of products".into());
        }
    }
    if let Some(term) = term {
        let holds = |p: &Value| p["name"].as_str().is_some_and(|n| n.to_lowercase().contains(term));
        if !items.iter().all(holds) {
            return Outcome::Error("a search answer without its term".into());
        }
    }
    let key = |p: &Value| (p["price"].as_i64().unwrap_or(0), p["id"].as_i64().unwrap_or(0));
    let in_order =
        |ordered: fn(&(i64, i64), &(i64, i64)) -> bool| items.windows(2).all(|w| ordered(&key(&w[0]), &key(&w[1])));
    let sorted = if path.contains("sort=-price") {
        in_order(|a, b| a >= b)
    } else if path.contains("sort=price") {
        in_order(|a, b| a <= b)
    } else if path.contains("sort=id") {
        in_order(|a, b| a.1 < b.1)
    } else {
        true
    };
    if sorted { Outcome::Ok } else { Outcome::Error("a page out of order".into()) }
}

async fn get(rest: crate::scenarios::Caller<'_>, path: &str, term: Option<&str>, products: Option<u64>) -> Sample {
    match rest.get(path).await {
        Ok((StatusCode::OK, body)) => judge(&body, path, term, products).over_http(status_of(StatusCode::OK)),
        Ok((status, body)) => {
            let code = problem_code(&body).unwrap_or_else(|| "-".into());
            Outcome::Error(format!("{} {code}", status.as_u16())).over_http(status_of(status))
        }
        Err(err) => transport_error(&err),
    }
}

/// Runs listing or search requests against the gateway and checks every answer.
pub async fn browse(
    target: &Target,
    cfg: &Browse,
    limits: Limits,
    counters: Option<&MysqlCounters>,
) -> anyhow::Result<Report> {
    ensure!(cfg.clients >= 1, "at least one client is needed");
    cfg.pace.validate()?;
    let rest = RestPool::new(target, cfg.clients, cfg.pace)?;
    rest.warm_up().await?;
    let (shared, cfg_copy) = (rest.clone(), *cfg);
    let op = move |client: usize, seq: u64| {
        let rest = shared.clone();
        let (path, term) = request(&cfg_copy, seq);
        async move { get(rest.caller(client), &path, term.as_deref(), cfg_copy.products).await }
    };
    let (run, mysql) = around(counters, run_loop(cfg.clients, cfg.pace, limits, op)).await;
    let name = match cfg.kind {
        BrowseKind::List => "catalog-list",
        BrowseKind::Search => "catalog-search",
    };
    let mut report = Report::new(name, run);
    report.mysql = mysql;
    report.param("target", target.url.as_str()).param("http1_connections", rest.len() as u64);
    report
        .param("pages", format!("0..={}", cfg.max_page))
        .param("page_size", PAGE_SIZE)
        .param("sorts", SORTS.join(","));
    if cfg.kind == BrowseKind::Search {
        report.param("terms", TERMS);
    }
    if let Some(products) = cfg.products {
        report.param("products", products);
    }
    let t = &report.run.tally;
    let wrong: u64 = t.errors.values().sum();
    report.check(
        "every answer is right",
        wrong == 0,
        format!("{wrong} of {} answers wrong: {:?}", t.total(), t.errors),
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(kind: BrowseKind) -> Browse {
        Browse { kind, clients: 1, pace: Pace::Closed, max_page: 100, products: Some(50) }
    }

    #[test]
    fn a_listing_is_judged_by_its_total_its_length_and_its_order() {
        let list = cfg(BrowseKind::List);
        let page = |items: &str, total: u64, number: u64| {
            format!(r#"{{"items":[{items}],"page":{number},"size":20,"totalItems":{total}}}"#).into_bytes()
        };
        let two = r#"{"id":1,"name":"a","price":5},{"id":2,"name":"b","price":7}"#;
        let path = "/v1/products?sort=price&page=2&size=20";
        assert_eq!(judge(&page(&"x".repeat(0), 50, 3), path, None, list.products), Outcome::Ok);
        assert_eq!(judge(&page(two, 42, 2), path, None, Some(42)), Outcome::Ok);
        assert!(matches!(judge(&page(two, 43, 2), path, None, Some(42)), Outcome::Error(_)));
        assert!(matches!(
            judge(&page(two, 42, 2), "/v1/products?sort=-price&page=2", None, Some(42)),
            Outcome::Error(_)
        ));
        assert!(matches!(judge(&page(two, 60, 2), path, None, None), Outcome::Error(_)));
    }

    #[test]
    fn a_search_answer_must_hold_its_term() {
        let body =
            br#"{"items":[{"id":1,"name":"LG Mini Keyboard AB-1234","price":5}],"page":0,"size":20,"totalItems":1}"#;
        assert_eq!(judge(body, "/v1/products?sort=id", Some("keyboard"), None), Outcome::Ok);
        assert!(matches!(judge(body, "/v1/products?sort=id", Some("mouse"), None), Outcome::Error(_)));
        let (path, term) = request(&cfg(BrowseKind::Search), 7);
        assert!(path.starts_with("/v1/products?sort=") && path.contains("&name="), "{path}");
        assert!(term.is_some());
    }
}
