//! Turns one line a child wrote into the line devstack shows: readable (`pretty`) or JSON
//! with the service named in it (`json`).

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use crate::logs::Source;

/// Keys that are shown in their own column, or are too long to read on every line (the
/// spans' fields repeat the request's context on each event; the log file keeps them).
const NOT_SHOWN_AS_FIELDS: [&str; 10] =
    ["timestamp", "level", "message", "target", "span", "spans", "threadName", "threadId", "filename", "line_number"];

/// A JSON object's members in the order the child wrote them (serde_json's `Map` sorts
/// them, and the order a developer gave the fields is the readable one).
struct Members(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Value>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

impl Members {
    fn parse(line: &str) -> Option<Self> {
        serde_json::from_str(line).ok()
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// `payment-svc  INFO  message  key=value ...`; `prefix` is the source's name, padded so
/// the levels line up. A line that is not a JSON object is shown as it is.
pub fn pretty(prefix: &str, line: &str, color: bool) -> String {
    let Some(members) = Members::parse(line) else {
        return format!("{prefix}  {line}");
    };
    let level = members.get("level").and_then(Value::as_str).unwrap_or("");
    let mut out = format!("{prefix}  ");
    match (color, level_color(level)) {
        (true, Some(code)) => write!(out, "\x1b[{code}m{level:<5}\x1b[0m"),
        _ => write!(out, "{level:<5}"),
    }
    .expect("writing to a String");
    if let Some(message) = members.get("message") {
        out.push_str("  ");
        match message {
            Value::String(text) => out.push_str(&one_line(text)),
            other => out.push_str(&other.to_string()),
        }
    }
    let mut first = true;
    for (key, value) in members.0.iter().filter(|(k, _)| !NOT_SHOWN_AS_FIELDS.contains(&k.as_str())) {
        out.push_str(if first { "  " } else { " " });
        first = false;
        write!(out, "{key}=").expect("writing to a String");
        match value {
            Value::String(text) if bare(text) => out.push_str(text),
            other => out.push_str(&other.to_string()),
        }
    }
    out
}

/// The child's JSON object unchanged but for `"service"` (and `"replica"`) added in front,
/// unless the child already wrote that key itself (a duplicate key would leave readers to
/// guess). Anything else becomes a JSON object holding the line, so the output stays pure JSON.
pub fn json(source: &Source, line: &str) -> String {
    let members = Members::parse(line);
    let trimmed = line.trim_start();
    let Some(members) = members.filter(|_| trimmed.starts_with('{')) else {
        return raw_as_json(source, line);
    };
    let has = |key: &str| members.get(key).is_some();
    let mut added = Vec::new();
    if !has("service") {
        added.push(format!("\"service\":{}", Value::from(source.service)));
    }
    if let Some(replica) = source.replica
        && !has("replica")
    {
        added.push(format!("\"replica\":{replica}"));
    }
    if added.is_empty() {
        return trimmed.to_owned();
    }
    let rest = &trimmed[1..];
    let separator = if members.0.is_empty() { "" } else { "," };
    format!("{{{}{separator}{rest}", added.join(","))
}

fn raw_as_json(source: &Source, line: &str) -> String {
    let mut object = serde_json::Map::new();
    object.insert("timestamp".into(), now().into());
    object.insert("service".into(), source.service.into());
    if let Some(replica) = source.replica {
        object.insert("replica".into(), replica.into());
    }
    object.insert("message".into(), line.into());
    Value::Object(object).to_string()
}

/// One of devstack's own messages, as a JSON line like the children's.
pub fn own_json(level: &str, message: &str) -> String {
    format!(
        "{{\"timestamp\":{},\"level\":{},\"service\":\"devstack\",\"message\":{}}}",
        Value::from(now()),
        Value::from(level),
        Value::from(message)
    )
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn level_color(level: &str) -> Option<&'static str> {
    match level {
        "ERROR" => Some("31"),
        "WARN" => Some("33"),
        "INFO" => Some("32"),
        "DEBUG" => Some("34"),
        "TRACE" => Some("35"),
        _ => None,
    }
}

/// A value that reads unambiguously without quotes after `key=`.
fn bare(text: &str) -> bool {
    !text.is_empty() && !text.chars().any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '=')
}

/// A message with a newline would break "one line per event".
fn one_line(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.into() }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = r#"{"timestamp":"2026-05-01T10:00:00.000001Z","level":"INFO","message":"saga not settled by this drive; recovery continues it","order_id":"0f1e","reason":"deadline exceeded","attempt":2,"target":"payment_svc::saga","span":{"order_id":"0f1e","name":"checkout"},"spans":[{"name":"checkout"}]}"#;

    #[test]
    fn pretty_is_level_message_then_the_fields_in_their_order() {
        assert_eq!(
            pretty("payment-svc  ", EVENT, false),
            r#"payment-svc    INFO   saga not settled by this drive; recovery continues it  order_id=0f1e reason="deadline exceeded" attempt=2"#
        );
        assert_eq!(
            pretty("gateway", r#"{"level":"WARN","message":"two\nlines"}"#, true),
            "gateway  \x1b[33mWARN \x1b[0m  two\\nlines"
        );
    }

    #[test]
    fn a_line_that_is_not_a_json_object_is_shown_as_it_is() {
        assert_eq!(
            pretty("point-svc", "thread 'main' panicked at {x}", false),
            "point-svc  thread 'main' panicked at {x}"
        );
        assert_eq!(pretty("point-svc", "42", false), "point-svc  42");
    }

    #[test]
    fn json_adds_the_service_and_leaves_the_rest_unchanged() {
        let one = Source { service: "payment-svc", replica: None };
        let out = json(&one, EVENT);
        assert_eq!(out, format!("{{\"service\":\"payment-svc\",{}", &EVENT[1..]));
        let mut parsed: serde_json::Map<String, Value> = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed.remove("service"), Some("payment-svc".into()));
        assert_eq!(Value::Object(parsed), serde_json::from_str::<Value>(EVENT).unwrap());

        let second = Source { service: "coupon-svc", replica: Some(2) };
        assert_eq!(json(&second, "{}"), r#"{"service":"coupon-svc","replica":2}"#);
        assert_eq!(json(&second, r#"{"service":"coupon-svc","x":1}"#), r#"{"replica":2,"service":"coupon-svc","x":1}"#);
        let raw: Value = serde_json::from_str(&json(&second, "not json")).unwrap();
        assert_eq!((raw["service"].as_str(), raw["replica"].as_u64()), (Some("coupon-svc"), Some(2)));
        assert_eq!(raw["message"], "not json");
        let own: Value = serde_json::from_str(&own_json("WARN", "a \"quoted\" word")).unwrap();
        assert_eq!((own["service"].as_str(), own["message"].as_str()), (Some("devstack"), Some("a \"quoted\" word")));
    }
}
