//! The checkout saga orchestrator (DESIGN.md, "The saga orchestrator").
//!
//! - [`driver`]: drives one saga forward step by step, or backwards (a failed checkout, a
//!   cancel); on the happy path it writes only the saga's start and its completion.
//! - [`journal`]: group commit of those two writes across concurrent checkouts.
//! - [`recovery`]: on start and periodically, claims sagas whose lease ran out (a crashed or
//!   stalled driver, a compensation waiting for its retry) and drives them on.
//! - [`retry`]: capped exponential backoff with jitter.
//! - [`locks`]: the per-user Redlock and the fencing epoch minted with it.
//! - [`reconciliation`]: a periodic pass asking the participants whether each settled order's
//!   effects stand as the order says (`mesh_reconciliation_mismatches{kind}`).
//!
//! Participants are reached through [`Participants`] (gRPC, `crate::grpc::clients`) and the
//! data platform through [`crate::platform`]; both answer in terms of [`StepError`].

pub mod driver;
pub mod journal;
pub mod locks;
pub mod reconciliation;
pub mod recovery;
pub mod retry;

use kit::ErrorCode;

use crate::domain::Failure;

pub use crate::grpc::clients::Participants;

/// How a participant call failed.
#[derive(Clone, Debug)]
pub enum StepError {
    /// A business answer ("out of stock", "not enough points"): final, nothing happened.
    Rejected(Failure),
    /// The call failed in a way that may pass (down, deadline, overloaded); the action may
    /// or may not have happened, which the barrier makes harmless to retry or compensate.
    Transient { code: ErrorCode, detail: String },
}

impl StepError {
    pub fn describe(&self) -> String {
        match self {
            Self::Rejected(f) => format!("{}: {}", f.code, f.detail),
            Self::Transient { code, detail } => format!("{code}: {detail}"),
        }
    }

    /// The failure an order records when this error ends its checkout.
    pub fn into_failure(self) -> Failure {
        match self {
            Self::Rejected(failure) => failure,
            Self::Transient { code, detail } => Failure { code: code.as_str().to_owned(), product_id: None, detail },
        }
    }
}
