//! coupon: 10,000 distinct users race through the gateway (REST) for the 1,000 copies of
//! one coupon, then sold-out traffic of new users continues for the rest of the run. The
//! `sequence` of every 201 is kept, so the check is on positions, not only on a count.
//! Closed loop (N clients), or open loop at a fixed arrival rate; one user per request either way.

mod race;

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::{Context, ensure};
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Map, Value, json};

pub use self::race::{ALREADY_ISSUED, Answers, Issued, SOLD_OUT, race_reports, sequences};
use super::{Caller, Ledger, RestPool, Target, fresh_users, problem_code, status_of, transport_error};
use crate::driver::{Limits, Outcome, Pace, Sample, run_phased};
use crate::report::Report;

/// Copies a coupon may have at most (coupon-svc's own bound).
pub const MAX_TOTAL: i64 = 10_000_000;

/// The race: `users` distinct users, one request each, for `total` copies.
#[derive(Clone, Copy, Debug)]
pub struct Race {
    /// Closed loop: the concurrent clients. Open loop: the connections opened before the run.
    pub clients: usize,
    pub users: u64,
    pub total: i64,
    pub pace: Pace,
}

impl Race {
    pub fn validate(&self) -> anyhow::Result<()> {
        ensure!((1..=MAX_TOTAL).contains(&self.total), "total must be 1..={MAX_TOTAL}");
        ensure!((1..=10_000_000).contains(&self.users), "users must be 1..=10000000");
        ensure!(self.clients >= 1, "at least one client is needed");
        self.pace.validate()
    }
}

const ANSWERS: Answers = ["201 issued", "409 COUPON_SOLD_OUT", "409 COUPON_ALREADY_ISSUED"];

async fn create_coupon(rest: Caller<'_>, name: &str, total: i64) -> anyhow::Result<i64> {
    let body = json!({"name": name, "discountType": "FIXED", "discountValue": 1000, "totalQuantity": total});
    let (status, answer) = rest.post("/v1/coupons", body.to_string()).await.context("POST /v1/coupons failed")?;
    ensure!(status == StatusCode::CREATED, "POST /v1/coupons answered {status}: {}", String::from_utf8_lossy(&answer));
    let coupon: Value = serde_json::from_slice(&answer).context("the created coupon is not JSON")?;
    coupon["id"].as_i64().context("the created coupon has no id")
}

/// The `sequence` of a 201, which must be for the user who asked.
fn issued_sequence(body: &[u8], user: i64) -> Result<i64, &'static str> {
    let issued: Value = serde_json::from_slice(body).map_err(|_| "201 not JSON")?;
    if issued["userId"].as_i64() != Some(user) {
        return Err("201 for another user");
    }
    issued["sequence"].as_i64().ok_or("201 without sequence")
}

/// One issue request: a 201 is recorded with its sequence, a 409 is told apart by its code.
async fn issue(rest: Caller<'_>, path: &str, user: i64, issued: &Issued) -> Sample {
    let (status, body) = match rest.acting_for(user).post(path, format!(r#"{{"userId":{user}}}"#)).await {
        Ok(answer) => answer,
        Err(err) => return transport_error(&err),
    };
    judge(status, &body, user, issued).over_http(status_of(status))
}

fn judge(status: StatusCode, body: &[u8], user: i64, issued: &Issued) -> Outcome {
    if status == StatusCode::CREATED {
        return match issued_sequence(body, user) {
            Ok(sequence) => {
                issued.record(user, sequence);
                Outcome::Ok
            }
            Err(why) => Outcome::Error(why.to_owned()),
        };
    }
    let code = problem_code(body).unwrap_or_else(|| "-".to_owned());
    match (status, code.as_str()) {
        (StatusCode::CONFLICT, "COUPON_SOLD_OUT") => Outcome::Rejected(SOLD_OUT),
        (StatusCode::CONFLICT, "COUPON_ALREADY_ISSUED") => Outcome::Rejected(ALREADY_ISSUED),
        _ => Outcome::Error(format!("{} {code}", status.as_u16())),
    }
}

/// Creates a coupon of `total` copies, then `clients` tasks issue it to user after user:
/// the first `users` requests are the race, the rest of the run is sold-out traffic.
/// Three reports, named after `scenario`: the race, the sold-out phase, and both (with the
/// checks). Any server with the gateway's coupon API can be the target (the one-hop baseline
/// is one).
pub async fn race(scenario: &str, target: &Target, cfg: &Race, limits: Limits) -> anyhow::Result<Vec<Report>> {
    cfg.validate()?;
    let rest = RestPool::new(target, cfg.clients, cfg.pace)?;
    rest.warm_up().await?;
    let run_id = kit::testing::unique_prefix();
    let coupon_id = create_coupon(rest.any(), &format!("loadgen coupon race {run_id}"), cfg.total).await?;
    let first_user = fresh_users();
    if let Some(credentials) = rest.credentials() {
        // Minted before the clock: the race's users, and as many sold-out users as the run
        // may send (any past a closed loop's guess are minted as they come, on the clock).
        let users = cfg.users.max(expected_requests(cfg.pace, limits)).min(MAX_MINTED_AHEAD);
        credentials.mint_ahead((0..users).map(|n| first_user + n as i64)).await?;
    }

    let issued = Issued::default();
    let path: Arc<str> = format!("/v1/coupons/{coupon_id}/issue").into();
    let (shared, log) = (rest.clone(), issued.clone());
    let phases = run_phased(cfg.clients, cfg.pace, limits, cfg.users, move |client, seq| {
        let (rest, path, log) = (shared.clone(), path.clone(), log.clone());
        async move { issue(rest.caller(client), &path, first_user + seq as i64, &log).await }
    })
    .await;

    let mut params = Map::new();
    params.insert("target".into(), json!(target.url));
    params.insert("http1_connections".into(), json!(rest.len()));
    params.insert("source_addresses".into(), json!(rest.sources()));
    params.insert("auth".into(), json!(rest.auth()));
    params.insert("users".into(), json!(cfg.users));
    params.insert("total".into(), json!(cfg.total));
    let issued = issued.take();
    let mut reports = race_reports(scenario, phases, &params, &ANSWERS, cfg.total, &issued);
    let both = &mut reports[2];
    // Request n is user first + n, sent or (open loop, pool full) dropped.
    let last_user = first_user + both.run.budget_used() as i64 - 1;
    both.extra("coupon_id", coupon_id).extra("user_ids", format!("{first_user}..={last_user}"));
    if let Some(ledger) = &target.ledger {
        let t = &both.run.tally;
        let sold_out = t.rejected.get(SOLD_OUT).is_some_and(|&n| n > 0);
        let (passed, detail) = check_mysql(ledger, coupon_id, cfg.total, &issued, t.errors_total(), sold_out).await?;
        both.check("mysql user_coupon", passed, detail);
    }
    Ok(reports)
}

/// Tokens minted before a run at most (about 400 bytes each).
const MAX_MINTED_AHEAD: u64 = 1_000_000;

/// A closed loop's guess of its rate, for minting ahead: above the gateway's 12,000/s target.
/// Minting on the clock instead cost loadgen ~25 us of CPU per request, beside the gateway.
const CLOSED_LOOP_GUESS_RPS: f64 = 20_000.0;

/// Requests a run may send: at its rate (or the guess) for its duration, at most its budget.
fn expected_requests(pace: Pace, limits: Limits) -> u64 {
    let rate = match pace {
        Pace::Open(open) => open.rate,
        Pace::Closed => CLOSED_LOOP_GUESS_RPS,
    };
    let paced = (rate * limits.duration.as_secs_f64()).ceil() as u64;
    limits.max_requests.map_or(paced, |max| paced.min(max))
}

/// Reads the coupon's rows straight from coupon-svc's schema: `(COUNT, MIN(sequence),
/// MAX(sequence), COUNT(DISTINCT user_id))` must be `(total, 1, total, total)` once sold out,
/// `issued_quantity` must agree, and every acknowledged (user, sequence) must be a row.
async fn check_mysql(
    ledger: &Ledger,
    coupon_id: i64,
    total: i64,
    issued: &[(i64, i64)],
    errors: u64,
    sold_out: bool,
) -> anyhow::Result<(bool, String)> {
    let db = ledger.connect().await?;
    let one = |sql: &str| Statement::from_sql_and_values(DbBackend::MySql, sql, [coupon_id.into()]);
    let summary = db
        .query_one_raw(one(
            "SELECT CAST(COUNT(*) AS SIGNED), MIN(sequence), MAX(sequence), CAST(COUNT(DISTINCT user_id) AS SIGNED) \
             FROM user_coupon WHERE coupon_id = ?",
        ))
        .await?
        .context("no user_coupon summary")?;
    let rows = db.query_all_raw(one("SELECT user_id, sequence FROM user_coupon WHERE coupon_id = ?")).await?;
    let coupon = db.query_one_raw(one("SELECT issued_quantity FROM coupon WHERE id = ?")).await?;
    let _ = db.close().await;
    let count: i64 = summary.try_get_by_index(0)?;
    let (min, max): (Option<i64>, Option<i64>) = (summary.try_get_by_index(1)?, summary.try_get_by_index(2)?);
    let users: i64 = summary.try_get_by_index(3)?;
    let quantity: i64 = coupon.context("coupon row missing")?.try_get_by_index(0)?;
    let stored: HashSet<(i64, i64)> =
        rows.iter().map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?))).collect::<anyhow::Result<_>>()?;
    let found = issued.iter().filter(|pair| stored.contains(pair)).count();

    let acknowledged = issued.len() as i64;
    // Before a sell-out a failed call may have been issued: the rows may exceed the 201s by that much.
    let want = match sold_out {
        true => total,
        false if (acknowledged..=acknowledged + errors as i64).contains(&count) => count,
        false => acknowledged,
    };
    let bounds = if want > 0 { (Some(1), Some(want)) } else { (None, None) };
    let exact = (count, min, max, users) == (want, bounds.0, bounds.1, want);
    let show = |v: Option<i64>| v.map_or("NULL".to_owned(), |v| v.to_string());
    let detail = format!(
        "({count}, {}, {}, {users}) want ({want}, 1, {want}, {want}); issued_quantity {quantity}; \
         {found} of {acknowledged} acknowledged (user, sequence) found",
        show(min),
        show(max)
    );
    Ok((exact && quantity == count && found == issued.len(), detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_201_counts_only_for_the_user_who_asked() {
        let body = br#"{"userCouponId":9,"couponId":3,"userId":7,"sequence":42,"status":"AVAILABLE"}"#;
        assert_eq!(issued_sequence(body, 7), Ok(42));
        assert_eq!(issued_sequence(body, 8), Err("201 for another user"));
        assert_eq!(issued_sequence(b"{}", 7), Err("201 for another user"));
        let race = Race { clients: 256, users: 10_000, total: 1_000, pace: Pace::Closed };
        assert!(race.validate().is_ok());
        assert!(Race { total: 0, ..race }.validate().is_err());
        let flood = crate::driver::OpenLoop { rate: 5_000.0, max_inflight: 0 };
        assert!(Race { pace: Pace::Open(flood), ..race }.validate().is_err(), "no request could be sent");
    }
}
