//! Attempts that ended without a final answer (a `202` for a saga still running, a timeout, a
//! `504`, a lost connection) are sent again with the same Idempotency-Key after the run: the
//! API answers `202` while the saga runs and then replays its final answer, so this turns "may
//! or may not exist" into a fact instead of widening every invariant by a guess (API.md,
//! "Idempotency", "Orders and payment").

use std::time::{Duration, Instant};

use futures::StreamExt;

use super::order::{Answer, Attempt, PENDING, place};
use crate::scenarios::RestPool;

/// How long undecided attempts are asked again: longer than payment-svc's forward budget
/// (30 s by default), after which a saga that cannot go on settles as FAILED.
const BUDGET: Duration = Duration::from_secs(45);
/// The pause between rounds when no answer said how long (`Retry-After`).
const PAUSE: Duration = Duration::from_millis(500);
/// The longest `Retry-After` obeyed, so one odd header cannot stall the whole settle.
const MAX_PAUSE: Duration = Duration::from_secs(5);
const CONCURRENCY: usize = 16;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// Attempts that had no final answer after the run.
    pub undecided: usize,
    /// Of those, the ones answered `202` (the saga was still running).
    pub pending: usize,
    /// Of those, the ones still without one after the replays.
    pub unsettled: usize,
}

impl Settled {
    pub fn detail(&self) -> String {
        format!(
            "{} attempts without a final answer ({} of them {PENDING}), {} settled by replaying their \
             Idempotency-Key, {} unsettled",
            self.undecided,
            self.pending,
            self.undecided - self.unsettled,
            self.unsettled
        )
    }
}

/// Replays every [`Answer::Unknown`] attempt until it has a final answer, or [`BUDGET`] runs
/// out. Between rounds it waits what the answers' `Retry-After` asked for (the longest of
/// them, so every attempt waits at least its own), or [`PAUSE`].
pub async fn settle(rest: &RestPool, attempts: &mut [Attempt]) -> Settled {
    let undecided = |a: &Attempt| matches!(a.answer, Answer::Unknown(_));
    let mut open: Vec<usize> = attempts.iter().enumerate().filter(|(_, a)| undecided(a)).map(|(i, _)| i).collect();
    let pending = open.iter().filter(|&&i| attempts[i].answer == Answer::Unknown(PENDING.to_owned())).count();
    let total = open.len();
    let started = Instant::now();
    let mut pause = longest_ask(attempts, &open);
    while !open.is_empty() && started.elapsed() + pause < BUDGET {
        tokio::time::sleep(pause).await;
        let replays = open.iter().map(|&i| {
            let attempt = &attempts[i];
            async move { (i, place(rest.any(), &attempt.key, attempt.line).await) }
        });
        let answers: Vec<_> = futures::stream::iter(replays).buffer_unordered(CONCURRENCY).collect().await;
        open.clear();
        for (i, placed) in answers {
            attempts[i].retry_after = placed.retry_after;
            if matches!(placed.answer, Answer::Unknown(_)) {
                open.push(i);
            } else {
                attempts[i].answer = placed.answer;
            }
        }
        pause = longest_ask(attempts, &open);
    }
    Settled { undecided: total, pending, unsettled: open.len() }
}

/// The longest `Retry-After` the `open` attempts' last answers asked for (capped), so each
/// waits at least its own; [`PAUSE`] for those that named none.
fn longest_ask(attempts: &[Attempt], open: &[usize]) -> Duration {
    open.iter().map(|&i| attempts[i].retry_after.unwrap_or(PAUSE).min(MAX_PAUSE)).max().unwrap_or(PAUSE)
}
