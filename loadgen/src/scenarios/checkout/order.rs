//! One checkout through the gateway (`POST /v1/orders` with its own Idempotency-Key), and the
//! book of every attempt of a phase: the invariants are checked attempt by attempt against
//! what the API acknowledged, not against counters.

use std::sync::{Arc, Mutex, PoisonError};

use reqwest::StatusCode;
use serde_json::Value;

use crate::driver::Outcome;
use crate::scenarios::{RestPool, problem_code, transport_error};

pub const OUT_OF_STOCK: &str = "409 OUT_OF_STOCK";

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
    /// No final answer (timeout, lost connection, `503`/`504`, `REQUEST_IN_PROGRESS`): the
    /// order may or may not exist. Settled afterwards by sending the same key again.
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

/// Places `line` with `key`: how the driver counts it, and what the book keeps.
pub async fn place(rest: &RestPool, key: &str, line: Line) -> (Outcome, Answer) {
    match rest.post_keyed("/v1/orders", Some(key), line.body()).await {
        Ok((status, body)) => judge(status, &body, line),
        Err(err) => {
            let outcome = transport_error(&err);
            let why = match &outcome {
                Outcome::Error(kind) => kind.clone(),
                _ => "transport".to_owned(),
            };
            (outcome, Answer::Unknown(why))
        }
    }
}

/// Reads an answer of `POST /v1/orders`.
pub fn judge(status: StatusCode, body: &[u8], line: Line) -> (Outcome, Answer) {
    if status == StatusCode::CREATED {
        return match completed(body, line) {
            Ok((order_id, paid)) => (Outcome::Ok, Answer::Completed { order_id, paid }),
            // Not the order asked for, or not finished: the listing afterwards tells what it is.
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
        // Nothing ran (429, or a request loadgen got wrong), or the saga rolled back (502).
        400..=499 => code != "REQUEST_IN_PROGRESS",
        502 => code == "EXTERNAL_SERVICE_FAILED",
        _ => false,
    };
    let answer = if settled { Answer::Failed { order_id, code } } else { Answer::Unknown(label.clone()) };
    (Outcome::Error(label), answer)
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
}
