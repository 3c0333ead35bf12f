//! The caller's deadline as it arrives: the `grpc-timeout` request header (gRPC over HTTP/2,
//! "Timeout"): an integer of at most 8 digits and a unit, H M S m u n.

use std::time::Duration;

use tonic::metadata::MetadataMap;

/// How long the caller said it would wait, if it said so.
pub fn caller_timeout(metadata: &MetadataMap) -> Option<Duration> {
    parse(metadata.get("grpc-timeout")?.to_str().ok()?)
}

fn parse(raw: &str) -> Option<Duration> {
    if raw.len() < 2 || raw.len() > 9 {
        return None;
    }
    let (digits, unit) = raw.split_at(raw.len() - 1);
    let value: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(value.saturating_mul(3600)),
        "M" => Duration::from_secs(value.saturating_mul(60)),
        "S" => Duration::from_secs(value),
        "m" => Duration::from_millis(value),
        "u" => Duration::from_micros(value),
        "n" => Duration::from_nanos(value),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_of_the_spec_is_read_and_nonsense_is_not() {
        assert_eq!(parse("5000m"), Some(Duration::from_millis(5000)));
        assert_eq!(parse("3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("250u"), Some(Duration::from_micros(250)));
        assert_eq!(parse("99n"), Some(Duration::from_nanos(99)));
        for bad in ["", "m", "5", "5x", "-5m", "123456789m"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
