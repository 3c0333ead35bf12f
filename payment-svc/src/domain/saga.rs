use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The checkout saga's steps, in order. A checkout without a coupon has no USE_COUPON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StepName {
    ReserveStock,
    UseCoupon,
    PayPoints,
    RecordPayment,
    TransmitData,
}

impl StepName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReserveStock => "RESERVE_STOCK",
            Self::UseCoupon => "USE_COUPON",
            Self::PayPoints => "PAY_POINTS",
            Self::RecordPayment => "RECORD_PAYMENT",
            Self::TransmitData => "TRANSMIT_DATA",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    pub const ALL: [Self; 5] =
        [Self::ReserveStock, Self::UseCoupon, Self::PayPoints, Self::RecordPayment, Self::TransmitData];

    /// The steps of one checkout, in the order they run.
    pub fn plan(with_coupon: bool) -> Vec<Self> {
        Self::ALL.into_iter().filter(|s| with_coupon || *s != Self::UseCoupon).collect()
    }

    /// Whether undoing the step means anything. The data platform has no "unsend": a
    /// transmitted order stays transmitted (it is the last step, so a checkout never has to
    /// undo it, and a cancel leaves it DONE).
    pub fn compensable(self) -> bool {
        self != Self::TransmitData
    }

    /// The names of the steps that have a compensation (metric labels).
    pub fn compensable_names() -> Vec<&'static str> {
        Self::ALL.into_iter().filter(|s| s.compensable()).map(Self::as_str).collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepStatus {
    /// Not done yet, or in flight (its outcome unknown until the participant answers).
    Pending,
    Done,
    /// The action was refused or gave up; nothing of it remains.
    Failed,
    Compensated,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Done => "DONE",
            Self::Failed => "FAILED",
            Self::Compensated => "COMPENSATED",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Pending, Self::Done, Self::Failed, Self::Compensated].into_iter().find(|s| s.as_str() == raw)
    }
}

/// One step as the order shows it. `attempts` and `last_error` make a compensation that
/// keeps failing visible instead of silent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepState {
    pub name: StepName,
    pub status: StepStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// Which way a saga is being driven; SETTLED once nothing is left to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Forward,
    Compensating,
    Cancelling,
    Settled,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Forward => "FORWARD",
            Self::Compensating => "COMPENSATING",
            Self::Cancelling => "CANCELLING",
            Self::Settled => "SETTLED",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Forward, Self::Compensating, Self::Cancelling, Self::Settled].into_iter().find(|s| s.as_str() == raw)
    }
}

/// Why a checkout failed: the stable error code of the step that failed (API.md), and the
/// product for a stock failure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub code: String,
    pub product_id: Option<i64>,
    pub detail: String,
}

/// Codes of failures that say nothing about whether the call took effect: the call may
/// have been carried out before its answer was lost.
const UNCERTAIN: [&str; 6] =
    ["UNAVAILABLE", "TIMEOUT", "INTERNAL", "RATE_LIMITED", "OVERLOADED", "EXTERNAL_SERVICE_FAILED"];

impl Failure {
    /// A business refusal ("out of stock", "not enough points"): the participant decided it
    /// in a transaction that rolled back, so the failed step left nothing to undo.
    pub fn left_no_effect(&self) -> bool {
        !UNCERTAIN.contains(&self.code.as_str())
    }
}
