//! Attempts that ended without a final answer (a timeout, a 503 or 504, a lost connection)
//! are sent again with the same Idempotency-Key after the run: the API answers each key
//! once and replays that answer, so this turns "may or may not exist" into a fact instead of
//! widening every invariant by a guess (API.md, "Idempotency").

use std::time::Duration;

use futures::StreamExt;

use super::order::{Answer, Attempt, place};
use crate::scenarios::RestPool;

/// How often an undecided attempt is asked again, and how long apart: a saga cut off by a
/// deadline finishes, or payment-svc's recovery finishes it, well within these ten seconds.
const ROUNDS: u32 = 20;
const PAUSE: Duration = Duration::from_millis(500);
const CONCURRENCY: usize = 16;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// Attempts that had no final answer after the run.
    pub undecided: usize,
    /// Of those, the ones still without one after the replays.
    pub unsettled: usize,
}

impl Settled {
    pub fn detail(&self) -> String {
        format!(
            "{} attempts without a final answer, {} settled by replaying their Idempotency-Key, {} unsettled",
            self.undecided,
            self.undecided - self.unsettled,
            self.unsettled
        )
    }
}

/// Replays every [`Answer::Unknown`] attempt until it has a final answer, or gives up.
pub async fn settle(rest: &RestPool, attempts: &mut [Attempt]) -> Settled {
    let mut open: Vec<usize> =
        attempts.iter().enumerate().filter(|(_, a)| matches!(a.answer, Answer::Unknown(_))).map(|(i, _)| i).collect();
    let undecided = open.len();
    for round in 0..ROUNDS {
        if open.is_empty() {
            break;
        }
        if round > 0 {
            tokio::time::sleep(PAUSE).await;
        }
        let replays = open.iter().map(|&i| {
            let attempt = &attempts[i];
            async move { (i, place(rest, &attempt.key, attempt.line).await.1) }
        });
        let answers: Vec<(usize, Answer)> =
            futures::stream::iter(replays).buffer_unordered(CONCURRENCY).collect().await;
        open.clear();
        for (i, answer) in answers {
            if matches!(answer, Answer::Unknown(_)) {
                open.push(i);
            } else {
                attempts[i].answer = answer;
            }
        }
    }
    Settled { undecided, unsettled: open.len() }
}
