//! Timestamps: the database stores UTC `DATETIME(3)`; the wire uses protobuf `Timestamp`.

use chrono::{DateTime, NaiveDateTime, Utc};
use mesh_proto::Timestamp;

/// Now, truncated to the millisecond precision the database keeps, so a value written and
/// a value read back compare equal.
pub fn now_millis() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

pub fn to_proto(at: DateTime<Utc>) -> Timestamp {
    Timestamp { seconds: at.timestamp(), nanos: at.timestamp_subsec_nanos() as i32 }
}

pub fn naive_to_proto(at: NaiveDateTime) -> Timestamp {
    to_proto(at.and_utc())
}

pub fn from_proto(ts: &Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).ok()?)
}
