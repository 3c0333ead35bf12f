//! Extractors whose every rejection is a `400 VALIDATION_FAILED` problem naming the field,
//! so no malformed request reaches a handler, let alone a 500.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use kit::ErrorCode;

use crate::problem::Problem;

/// A JSON body of type `T`. Unknown fields are ignored; anything else off is a 400.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| match rejection {
            BytesRejection::FailedToBufferBody(_) => {
                Problem::validation("body", "the request body is too large or could not be read")
            }
            other => Problem::validation("body", other.body_text()),
        })?;
        // serde would also take a struct from a JSON array (its sequence form); the contract
        // says bodies are objects, so anything else is refused before it is parsed.
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            None => return Err(Problem::validation("body", "a JSON request body is required")),
            Some(b'{') => {}
            Some(_) => return Err(Problem::validation("body", "the request body must be a JSON object")),
        }
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut de).map_err(json_problem)?;
        de.end().map_err(|_| Problem::validation("body", "the request body has trailing characters after the JSON"))?;
        Ok(JsonBody(value))
    }
}

fn json_problem(err: serde_path_to_error::Error<serde_json::Error>) -> Problem {
    let path = err.path().to_string();
    let inner = err.into_inner();
    match inner.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            Problem::validation("body", format!("the request body is not valid JSON: {inner}"))
        }
        Category::Data => {
            let message = inner.to_string();
            let missing = message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next());
            let field = match (missing, path.as_str()) {
                (Some(name), ".") => name.to_owned(),
                (Some(name), parent) => format!("{parent}.{name}"),
                (None, ".") => "body".to_owned(),
                (None, path) => path.to_owned(),
            };
            // serde's message ends with a position; the field name says more to a client.
            let detail = message.split(" at line ").next().unwrap_or(&message).to_owned();
            Problem::validation(field, detail)
        }
    }
}

/// The raw query string as pairs; bad percent-encoding is a 400.
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let raw = parts.uri.query().unwrap_or("");
        let mut pairs = Vec::new();
        for piece in raw.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = piece.split_once('=').unwrap_or((piece, ""));
            pairs.push((decode(key)?, decode(value)?));
        }
        Ok(QueryPairs(pairs))
    }
}

fn decode(raw: &str) -> Result<String, Problem> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
                out.push(byte.ok_or_else(|| Problem::validation("query", "bad percent-encoding in the query string"))?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| Problem::validation("query", "the query string is not UTF-8"))
}

impl QueryPairs {
    /// The last value given for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// An integer parameter within `range`, or `default` when absent.
    pub fn int(&self, name: &str, default: i64, range: std::ops::RangeInclusive<i64>) -> Result<i64, Problem> {
        let Some(raw) = self.get(name) else { return Ok(default) };
        raw.parse::<i64>().ok().filter(|v| range.contains(v)).ok_or_else(|| {
            Problem::validation(name, format!("{name} must be an integer in {}..={}", range.start(), range.end()))
        })
    }
}

/// A positive int64 path id; anything else is a 400 naming `field`.
pub fn positive_id(raw: &str, field: &str) -> Result<i64, Problem> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| Problem::validation(field, format!("{field} must be a positive 64-bit integer")))
}

/// `If-Match: "<version>"`: `None` when absent or `*` (any version matches).
pub fn if_match_version(headers: &HeaderMap) -> Result<Option<i64>, Problem> {
    let Some(raw) = headers.get(axum::http::header::IF_MATCH) else { return Ok(None) };
    let text = raw.to_str().map_err(|_| Problem::validation("If-Match", "If-Match must be an ETag like \"3\""))?.trim();
    if text == "*" {
        return Ok(None);
    }
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text)
        .parse::<i64>()
        .map(Some)
        .map_err(|_| Problem::validation("If-Match", "If-Match must be an ETag like \"3\""))
}

/// The `Idempotency-Key` header: `None` when absent. A present key must be 1..=255 visible
/// ASCII characters; the draft's quoted form (`"abc"`) and a bare token are both accepted.
pub fn idempotency_key(headers: &HeaderMap, required: bool) -> Result<Option<String>, Problem> {
    let missing =
        || Problem::new(ErrorCode::IdempotencyKeyMissing, "Idempotency-Key must be 1..=255 visible ASCII characters");
    let Some(raw) = headers.get(crate::context::IDEMPOTENCY_KEY_HEADER) else {
        return if required {
            Err(Problem::new(ErrorCode::IdempotencyKeyMissing, "this endpoint requires an Idempotency-Key header"))
        } else {
            Ok(None)
        };
    };
    let text = raw.to_str().map_err(|_| missing())?.trim();
    let key = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text);
    let valid = (1..=255).contains(&key.len()) && key.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
    if valid { Ok(Some(key.to_owned())) } else { Err(missing()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(decode("key%20cap+x").unwrap(), "key cap x");
        assert!(decode("%zz").is_err());
        assert!(decode("%e2%82").is_err());
    }

    #[test]
    fn ids_must_be_positive_int64() {
        assert_eq!(positive_id("7", "id").unwrap(), 7);
        for bad in ["0", "-1", "abc", "99999999999999999999", "1.5", ""] {
            assert!(positive_id(bad, "id").is_err(), "{bad}");
        }
    }
}
