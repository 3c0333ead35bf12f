//! The saga coordinates a participant call carries, parsed once at the gRPC edge.

use mesh_proto::saga::v1::{SagaOp, SagaStep};

use crate::error::ServiceError;

/// Whether a call performs a step or undoes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Action,
    Compensate,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Action => "action",
            Op::Compensate => "compensate",
        }
    }
}

/// `(saga_id, step, op)`: the identity of one participant call, unique per barrier table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SagaRef {
    saga_id: String,
    step: String,
    op: Op,
}

const MAX_ID_LEN: usize = 64;

impl SagaRef {
    pub fn new(saga_id: impl Into<String>, step: impl Into<String>, op: Op) -> Result<Self, ServiceError> {
        let (saga_id, step) = (saga_id.into(), step.into());
        let ok = |s: &str| !s.is_empty() && s.len() <= MAX_ID_LEN && s.bytes().all(|b| b.is_ascii_graphic());
        if !ok(&saga_id) {
            return Err(ServiceError::validation("saga.sagaId", "saga id must be 1..=64 printable ASCII characters"));
        }
        if !ok(&step) {
            return Err(ServiceError::validation("saga.step", "saga step must be 1..=64 printable ASCII characters"));
        }
        Ok(Self { saga_id, step, op })
    }

    /// Parses the wire form, insisting on the op the RPC implies (an action RPC called
    /// with `COMPENSATE` is a caller bug, not something to guess about).
    pub fn from_proto(step: Option<&SagaStep>, expected: Op) -> Result<Self, ServiceError> {
        let step = step.ok_or_else(|| ServiceError::validation("saga", "saga coordinates are required"))?;
        let op = match SagaOp::try_from(step.op) {
            Ok(SagaOp::Action) => Op::Action,
            Ok(SagaOp::Compensate) => Op::Compensate,
            _ => return Err(ServiceError::validation("saga.op", "saga op must be ACTION or COMPENSATE")),
        };
        if op != expected {
            return Err(ServiceError::validation("saga.op", format!("this call is a saga {}", expected.as_str())));
        }
        Self::new(step.saga_id.clone(), step.step.clone(), op)
    }

    pub fn to_proto(&self) -> SagaStep {
        let op = match self.op {
            Op::Action => SagaOp::Action,
            Op::Compensate => SagaOp::Compensate,
        };
        SagaStep { saga_id: self.saga_id.clone(), step: self.step.clone(), op: op as i32 }
    }

    pub fn saga_id(&self) -> &str {
        &self.saga_id
    }

    pub fn step(&self) -> &str {
        &self.step
    }

    pub fn op(&self) -> Op {
        self.op
    }

    /// The same step with the other op.
    pub fn with_op(&self, op: Op) -> Self {
        Self { op, ..self.clone() }
    }
}

/// Most saga ids one reconciliation question may carry.
pub const MAX_EFFECTS_ASKED: usize = 500;

/// The saga ids of a `SagaEffects` call, checked like every saga id.
pub fn effects_asked(request: &mesh_proto::saga::v1::SagaEffectsRequest) -> Result<Vec<String>, ServiceError> {
    if request.saga_ids.len() > MAX_EFFECTS_ASKED {
        return Err(ServiceError::validation("sagaIds", "at most 500 saga ids per call"));
    }
    for id in &request.saga_ids {
        SagaRef::new(id.as_str(), "EFFECTS", Op::Action)?;
    }
    Ok(request.saga_ids.clone())
}

/// The answer to a `SagaEffects` call: the sagas whose effect is held.
pub fn effects_held(held: Vec<String>) -> mesh_proto::saga::v1::SagaEffectsResponse {
    mesh_proto::saga::v1::SagaEffectsResponse {
        effects: held.into_iter().map(|saga_id| mesh_proto::saga::v1::SagaEffect { saga_id, held: true }).collect(),
    }
}
