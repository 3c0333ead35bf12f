//! How a report shows an open loop's schedule next to its results.

use serde_json::{Value, json};

use super::round3;
use crate::driver::{LATE, OpenLoopStats};

/// The open loop's schedule: what was offered, what was achieved, and what the generator
/// itself could not keep to (late or dropped requests).
pub(super) fn open_loop_rows(o: &OpenLoopStats, achieved: f64) -> String {
    let late =
        format!("{} sent > {} ms after due (max {:.2} ms)", o.late, LATE.as_millis(), o.max_late.as_secs_f64() * 1e3);
    format!(
        "  {:<14}offered {:.1}/s, achieved {achieved:.1}/s; {} due, {} sent, {} dropped (pool full), peak {} in \
         flight\n  {:<14}{late}; *latency from each request's due time\n",
        "open loop", o.rate, o.due, o.sent, o.dropped, o.peak_inflight, "late"
    )
}

pub(super) fn open_loop_json(o: &OpenLoopStats, achieved: f64) -> Value {
    json!({
        "offered_rps": o.rate,
        "achieved_rps": round3(achieved),
        "max_inflight": o.max_inflight,
        "due": o.due,
        "sent": o.sent,
        "dropped": o.dropped,
        "late": o.late,
        "late_threshold_ms": LATE.as_secs_f64() * 1e3,
        "max_late_ms": round3(o.max_late.as_secs_f64() * 1e3),
        "peak_inflight": o.peak_inflight,
        "latency_from": "due time",
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::driver::{LoopResult, Outcome, Tally};
    use crate::mysql_counters::MysqlWork;
    use crate::report::Report;

    #[test]
    fn an_open_loop_reports_its_schedule_pending_answers_and_mysql_work() {
        let mut tally = Tally::new();
        tally.record(Outcome::Ok, Duration::from_millis(3));
        tally.record(Outcome::Pending("202 PENDING"), Duration::from_millis(5_000));
        let open = OpenLoopStats {
            rate: 1_000.0,
            max_inflight: 2_000,
            due: 4,
            sent: 2,
            dropped: 2,
            late: 1,
            max_late: Duration::from_micros(1_500),
            peak_inflight: 2,
        };
        let run = LoopResult {
            clients: 1,
            elapsed: Duration::from_secs(1),
            tally,
            aborted_clients: 0,
            loadgen_cpu_s: None,
            peer_cpu_s: Default::default(),
            open: Some(open),
        };
        let mut report = Report::new("open", run);
        let idle = crate::mysql_counters::Counts::default();
        let phase = crate::mysql_counters::Counts { statements: 24.0, transactions: 8.0, questions: 40.0 };
        report.mysql = Some(MysqlWork { net: phase, idle_per_s: idle, window: Duration::from_secs(1) });
        let json = report.to_json();
        assert_eq!(json["pending"]["202 PENDING"], 1);
        assert_eq!(json["ops"], 2);
        assert_eq!((json["open_loop"]["dropped"].clone(), json["open_loop"]["late"].clone()), (json!(2), json!(1)));
        assert_eq!(json["open_loop"]["max_late_ms"], 1.5);
        assert_eq!(json["mysql"]["per_op"], json!({"statements": 12.0, "transactions": 4.0, "questions": 20.0}));
        let table = report.table();
        for row in ["open loop 1000.0/s", "2 dropped", "202 PENDING   1", "12.00 statements, 4.00 transactions"] {
            assert!(table.contains(row), "{row:?} not in\n{table}");
        }
    }
}
