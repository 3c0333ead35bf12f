//! One checkout through the gateway (`POST /v1/orders` with its own Idempotency-Key), and the
//! book of every attempt of a phase: the invariants are checked attempt by attempt against
//! what the API acknowledged, not against counters.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::driver::{HttpStatus, Outcome};
use crate::scenarios::{Caller, problem_code, status_of, transport_kind};

pub const OUT_OF_STOCK: &str = "409 OUT_OF_STOCK";
/// `202 Accepted`: the saga is still running; the same key asked again later gets `202` until
/// it settles, then the final answer.
pub const PENDING: &str = "202 PENDING";

/// Business answers a checkout may get, by (status, code), with their report labels: each
/// is final (the order is FAILED and nothing of it remains), so they are rejections, not errors.
const REJECTIONS: [(u16, &str, &str); 4] = [
    (409, "OUT_OF_STOCK", OUT_OF_STOCK),
    (409, "INSUFFICIENT_POINTS", "409 INSUFFICIENT_POINTS"),
    (409, "COUPON_NOT_USABLE", "409 COUPON_NOT_USABLE"),
    (404, "NOT_FOUND", "404 NOT_FOUND"),
];

/// A single-line order, the only kind these scenarios send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Line {
    pub user: i64,
    pub product: i64,
    pub quantity: i64,
}

impl Line {
    /// The request body; the same line always gives the same bytes, so a replay with the
    /// same key is recognised as the same request.
    pub fn body(&self) -> String {
        format!(r#"{{"userId":{},"items":[{{"productId":{},"quantity":{}}}]}}"#, self.user, self.product, self.quantity)
    }
}

/// What an attempt came to, as far as the client can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// `201`: the order is COMPLETED and `paid` was taken from points.
    Completed { order_id: String, paid: i64 },
    /// A final failure: a business rejection, `502` (rolled back) or a refused request;
    /// nothing of it remains.
    Failed { order_id: Option<String>, code: String },
    /// No final answer (`202`, timeout, lost connection, `504` without `orderId`,
    /// `REQUEST_IN_PROGRESS`): the order may or may not exist, or may still be running.
    /// Settled afterwards by sending the same key again.
    Unknown(String),
}

impl Answer {
    pub fn order_id(&self) -> Option<&str> {
        match self {
            Answer::Completed { order_id, .. } => Some(order_id),
            Answer::Failed { order_id, .. } => order_id.as_deref(),
            Answer::Unknown(_) => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Attempt {
    /// Its Idempotency-Key (a fresh UUID).
    pub key: String,
    pub line: Line,
    pub answer: Answer,
    /// When its last answer asked to be asked again.
    pub retry_after: Option<Duration>,
}

/// Every attempt of a phase, shared by the client tasks.
#[derive(Clone, Debug, Default)]
pub struct Book(Arc<Mutex<Vec<Attempt>>>);

impl Book {
    pub fn record(&self, attempt: Attempt) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(attempt);
    }

    pub fn take(&self) -> Vec<Attempt> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// What one `POST /v1/orders` came to: how the driver counts it (with the HTTP status), what
/// the book keeps, and when the server asked to be asked again (`Retry-After`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    pub outcome: Outcome,
    pub http: HttpStatus,
    pub answer: Answer,
    pub retry_after: Option<Duration>,
}

/// Places `line` with `key`, as its buyer.
pub async fn place(rest: Caller<'_>, key: &str, line: Line) -> Placed {
    match rest.acting_for(line.user).send_keyed("/v1/orders", Some(key), line.body()).await {
        Ok(reply) => {
            let (outcome, answer) = judge(reply.status, &reply.body, line);
            Placed { outcome, http: status_of(reply.status), answer, retry_after: reply.retry_after }
        }
        Err(err) => {
            let kind = transport_kind(&err);
            let (outcome, answer) = (Outcome::Error(kind.to_owned()), Answer::Unknown(kind.to_owned()));
            Placed { outcome, http: HttpStatus::Transport, answer, retry_after: None }
        }
    }
}

/// Reads an answer of `POST /v1/orders` (API.md, "Orders and payment").
pub fn judge(status: StatusCode, body: &[u8], line: Line) -> (Outcome, Answer) {
    if status == StatusCode::CREATED {
        return match completed(body, line) {
            Ok((order_id, paid)) => (Outcome::Ok, Answer::Completed { order_id, paid }),
            // Not the order asked for, or not finished: the listing afterwards tells what it is.
            Err(why) => (Outcome::Error(why.clone()), Answer::Unknown(why)),
        };
    }
    if status == StatusCode::ACCEPTED {
        return match pending(body, line) {
            Ok(()) => (Outcome::Pending(PENDING), Answer::Unknown(PENDING.to_owned())),
            Err(why) => (Outcome::Error(why.clone()), Answer::Unknown(why)),
        };
    }
    let code = problem_code(body).unwrap_or_else(|| "-".to_owned());
    let order_id =
        serde_json::from_slice::<Value>(body).ok().and_then(|d| Some(d.get("orderId")?.as_str()?.to_owned()));
    let label = format!("{} {code}", status.as_u16());
    if let Some(&(_, _, label)) = REJECTIONS.iter().find(|(s, c, _)| *s == status.as_u16() && *c == code) {
        return (Outcome::Rejected(label), Answer::Failed { order_id, code });
    }
    let settled = match status.as_u16() {
        // Nothing ran (429, or a request loadgen got wrong).
        400..=499 => code != "REQUEST_IN_PROGRESS",
        // A problem naming its order is that order's final answer: FAILED, nothing of it left
        // (rolled back by the data platform's failure, or given up after the forward budget).
        502..=504 if order_id.is_some() => true,
        502 => code == "EXTERNAL_SERVICE_FAILED",
        // A refusal without an order: shed or refused before anything started. Taken at its
        // word: if it did start something, that order shows up COMPLETED without a 201 and
        // the "orders ended as answered" check fails.
        503 => matches!(code.as_str(), "UNAVAILABLE" | "OVERLOADED"),
        _ => false,
    };
    let answer = if settled { Answer::Failed { order_id, code } } else { Answer::Unknown(label.clone()) };
    (Outcome::Error(label), answer)
}

/// A `202` must carry the PENDING order of `line`.
fn pending(body: &[u8], line: Line) -> Result<(), String> {
    let order: Value = serde_json::from_slice(body).map_err(|_| "202 not JSON".to_owned())?;
    match order["status"].as_str().unwrap_or("-") {
        "PENDING" if order["userId"].as_i64() == Some(line.user) && order["orderId"].is_string() => Ok(()),
        "PENDING" => Err("202 for another order".to_owned()),
        other => Err(format!("202 {other}")),
    }
}

/// `(orderId, paidAmount)` of a 201, which must be the COMPLETED order of `line`.
fn completed(body: &[u8], line: Line) -> Result<(String, i64), String> {
    let order: Value = serde_json::from_slice(body).map_err(|_| "201 not JSON".to_owned())?;
    let status = order["status"].as_str().unwrap_or("-");
    if status != "COMPLETED" {
        return Err(format!("201 {status}"));
    }
    let item = &order["items"][0];
    let same = order["userId"].as_i64() == Some(line.user)
        && order["items"].as_array().is_some_and(|items| items.len() == 1)
        && item["productId"].as_i64() == Some(line.product)
        && item["quantity"].as_i64() == Some(line.quantity);
    if !same {
        return Err("201 for another order".to_owned());
    }
    let order_id = order["orderId"].as_str().ok_or("201 without orderId")?;
    let paid = order["paidAmount"].as_i64().ok_or("201 without paidAmount")?;
    Ok((order_id.to_owned(), paid))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: Line = Line { user: 7, product: 3, quantity: 1 };

    #[test]
    fn a_201_counts_only_as_the_completed_order_asked_for() {
        let ok = br#"{"orderId":"o-1","userId":7,"status":"COMPLETED","items":[{"productId":3,"quantity":1,
            "unitPrice":1000,"amount":1000}],"totalAmount":1000,"discountAmount":0,"paidAmount":1000}"#;
        let want = Answer::Completed { order_id: "o-1".into(), paid: 1_000 };
        assert_eq!(judge(StatusCode::CREATED, ok, LINE), (Outcome::Ok, want));
        let other = Line { product: 4, ..LINE };
        assert!(matches!(judge(StatusCode::CREATED, ok, other).1, Answer::Unknown(_)));
        let pending = br#"{"orderId":"o-1","userId":7,"status":"PENDING","items":[]}"#;
        assert_eq!(judge(StatusCode::CREATED, pending, LINE).0, Outcome::Error("201 PENDING".into()));
        assert_eq!(LINE.body(), r#"{"userId":7,"items":[{"productId":3,"quantity":1}]}"#);
    }

    #[test]
    fn problems_are_told_apart_by_whether_they_are_final() {
        let oos = br#"{"status":409,"code":"OUT_OF_STOCK","orderId":"o-2","productId":3}"#;
        let failed = Answer::Failed { order_id: Some("o-2".into()), code: "OUT_OF_STOCK".into() };
        assert_eq!(judge(StatusCode::CONFLICT, oos, LINE), (Outcome::Rejected(OUT_OF_STOCK), failed));
        let external = br#"{"status":502,"code":"EXTERNAL_SERVICE_FAILED","orderId":"o-3"}"#;
        let (outcome, answer) = judge(StatusCode::BAD_GATEWAY, external, LINE);
        assert_eq!(outcome, Outcome::Error("502 EXTERNAL_SERVICE_FAILED".into()));
        assert_eq!(answer.order_id(), Some("o-3"));
        for (status, body) in [
            (StatusCode::GATEWAY_TIMEOUT, &br#"{"code":"TIMEOUT"}"#[..]),
            (StatusCode::CONFLICT, br#"{"code":"REQUEST_IN_PROGRESS"}"#),
            (StatusCode::SERVICE_UNAVAILABLE, b"<html>"),
        ] {
            assert!(matches!(judge(status, body, LINE).1, Answer::Unknown(_)), "{status}");
        }
    }

    #[test]
    fn a_202_is_pending_and_a_5xx_is_final_when_it_names_an_order_or_started_nothing() {
        let accepted = br#"{"orderId":"o-4","userId":7,"status":"PENDING","items":[]}"#;
        let (outcome, answer) = judge(StatusCode::ACCEPTED, accepted, LINE);
        assert_eq!((outcome, answer), (Outcome::Pending(PENDING), Answer::Unknown(PENDING.into())));
        let done = br#"{"orderId":"o-4","userId":7,"status":"COMPLETED"}"#;
        assert_eq!(judge(StatusCode::ACCEPTED, done, LINE).0, Outcome::Error("202 COMPLETED".into()));
        let gave_up = br#"{"status":503,"code":"UNAVAILABLE","orderId":"o-5"}"#;
        let failed = Answer::Failed { order_id: Some("o-5".into()), code: "UNAVAILABLE".into() };
        assert_eq!(judge(StatusCode::SERVICE_UNAVAILABLE, gave_up, LINE).1, failed);
        let timed_out = br#"{"status":504,"code":"TIMEOUT","orderId":"o-6"}"#;
        assert_eq!(judge(StatusCode::GATEWAY_TIMEOUT, timed_out, LINE).1.order_id(), Some("o-6"));
        let shed = br#"{"status":503,"code":"OVERLOADED"}"#;
        let (outcome, answer) = judge(StatusCode::SERVICE_UNAVAILABLE, shed, LINE);
        assert_eq!(outcome, Outcome::Error("503 OVERLOADED".into()));
        assert_eq!(answer, Answer::Failed { order_id: None, code: "OVERLOADED".into() });
    }
}
