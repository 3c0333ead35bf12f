//! What a race for a limited coupon is checked by, through the service or straight
//! against its Redis gate: the answers told apart, the (user, position) of every issue,
//! and the three reports of a run (the race, the sold-out phase, both).

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Map, Value};

use crate::driver::{LoopResult, Tally};
use crate::report::Report;

/// The answers a race expects besides an issue.
pub const SOLD_OUT: &str = "sold_out";
pub const ALREADY_ISSUED: &str = "already_issued";

/// (user, sequence) of every acknowledged issue, shared by the client tasks.
#[derive(Clone, Debug, Default)]
pub struct Issued(Arc<Mutex<Vec<(i64, i64)>>>);

impl Issued {
    pub fn record(&self, user: i64, sequence: i64) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push((user, sequence));
    }

    pub fn take(&self) -> Vec<(i64, i64)> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// How a scenario names its three answers in the split line: issued, sold out, already issued.
pub type Answers = [&'static str; 3];

fn split(t: &Tally, answers: &Answers) -> String {
    let rejected = |label| t.rejected.get(label).copied().unwrap_or(0);
    let [issued, sold_out, already] = answers;
    format!(
        "{issued} {} / {sold_out} {} / {already} {} / other {}",
        t.ok,
        rejected(SOLD_OUT),
        rejected(ALREADY_ISSUED),
        t.total() - t.ok - rejected(SOLD_OUT) - rejected(ALREADY_ISSUED)
    )
}

/// The race (`<scenario>-race`), the sold-out phase (`<scenario>-soldout`) and both as one
/// run (`<scenario>`), sharing `params`, with the checks every coupon race must pass: no
/// issue and no "already issued" after the sell-out, and positions exactly 1..=total.
pub fn race_reports(
    scenario: &str,
    (head, tail): (LoopResult, LoopResult),
    params: &Map<String, Value>,
    answers: &Answers,
    total: i64,
    issued: &[(i64, i64)],
) -> Vec<Report> {
    let both = head.then(&tail);
    let mut reports = vec![
        Report::new(format!("{scenario}-race"), head),
        Report::new(format!("{scenario}-soldout"), tail),
        Report::new(scenario, both),
    ];
    for report in &mut reports {
        report.params = params.clone();
        let split = split(&report.run.tally, answers);
        report.extra("split", split);
    }
    let t = &reports[1].run.tally;
    let (late, already) = (t.ok, t.rejected.get(ALREADY_ISSUED).copied().unwrap_or(0));
    let detail = format!("{} requests of new users: {late} issued, {already} already issued", t.total());
    reports[1].check("sold-out phase", late == 0 && already == 0, detail);
    let t = &reports[2].run.tally;
    let sold_out = t.rejected.get(SOLD_OUT).is_some_and(|&n| n > 0);
    let already = t.rejected.get(ALREADY_ISSUED).copied().unwrap_or(0);
    let (passed, detail) = sequences(total, issued, t.errors_total(), sold_out);
    reports[2].check("issued sequences", passed, detail);
    reports[2].check("one request per user", already == 0, format!("{already} answered already issued"));
    reports
}

/// Every acknowledged issue holds its own position in 1..=total, every user at most one,
/// and no position is skipped: 1..=total once sold out (1..=the highest before). A call
/// that failed without an answer may have been issued, so each error may explain one gap.
pub fn sequences(total: i64, issued: &[(i64, i64)], errors: u64, sold_out: bool) -> (bool, String) {
    let positions: BTreeSet<i64> = issued.iter().map(|&(_, s)| s).collect();
    let users: HashSet<i64> = issued.iter().map(|&(u, _)| u).collect();
    let repeated = issued.len() - positions.len();
    let twice = issued.len() - users.len();
    let outside = positions.iter().filter(|s| !(1..=total).contains(*s)).count();
    let top = if sold_out { total } else { positions.last().copied().unwrap_or(0).clamp(0, total) };
    let missing: Vec<i64> = (1..=top).filter(|s| !positions.contains(s)).collect();
    let (lo, hi) = (positions.first().copied().unwrap_or(0), positions.last().copied().unwrap_or(0));
    let mut detail = format!("{} issued, sequences {lo}..={hi} (want each of 1..={top} once)", issued.len());
    for (n, what) in [(repeated, "repeated"), (twice, "users issued twice"), (outside, "outside 1..=total")] {
        if n > 0 {
            detail += &format!(", {n} {what}");
        }
    }
    if !missing.is_empty() {
        let shown: Vec<String> = missing.iter().take(10).map(i64::to_string).collect();
        detail += &format!(
            ", {} missing ({}{})",
            missing.len(),
            shown.join(" "),
            if missing.len() > 10 { " .." } else { "" }
        );
        if missing.len() as u64 <= errors {
            detail += &format!(", as many as {errors} failed calls may have taken");
        }
    }
    (repeated == 0 && twice == 0 && outside == 0 && missing.len() as u64 <= errors, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues(positions: impl IntoIterator<Item = i64>) -> Vec<(i64, i64)> {
        positions.into_iter().map(|s| (1_000 + s, s)).collect()
    }

    #[test]
    fn positions_must_be_exactly_one_to_total_once_sold_out() {
        assert!(sequences(1_000, &issues(1..=1_000), 0, true).0);
        assert!(!sequences(1_000, &issues(1..=999), 0, true).0, "one copy never issued");
        assert!(sequences(1_000, &issues(1..=999), 1, true).0, "the failed call may hold it");
        assert!(!sequences(1_000, &issues((1..=999).chain([1_001])), 0, true).0, "over-issue");
        let mut twice = issues(1..=1_000);
        twice[5].1 = 7;
        assert!(!sequences(1_000, &twice, 0, true).0, "a position given twice");
        twice = issues(1..=1_000);
        twice[5].0 = twice[6].0;
        assert!(!sequences(1_000, &twice, 0, true).0, "a user issued twice");
    }

    #[test]
    fn before_the_sell_out_positions_have_no_gap() {
        assert!(sequences(1_000, &issues(1..=400), 0, false).0);
        assert!(!sequences(1_000, &issues((1..=400).filter(|&s| s != 200)), 0, false).0);
        assert!(sequences(1_000, &[], 0, false).0);
    }
}
