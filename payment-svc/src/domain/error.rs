use kit::{ErrorCode, ServiceError};

/// Everything a payment-svc operation can fail with, before or around a saga. A saga
/// step's own business failure is not an error here: it ends the order FAILED
/// (see [`super::Failure`]).
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error("{message}")]
    Validation { field: &'static str, message: String },
    #[error("order {0} does not exist")]
    OrderNotFound(String),
    #[error("an order in status {from} cannot become {to}")]
    InvalidTransition { from: &'static str, to: &'static str },
    #[error("the order is at version {current}, not {expected}")]
    VersionMismatch { expected: i64, current: i64 },
    #[error("another checkout or cancel of this user is running; retry")]
    UserBusy,
    #[error("this Idempotency-Key was used with a different request")]
    KeyReused,
    #[error("the order is still being processed; retry with the same Idempotency-Key")]
    StillRunning(String),
    #[error("too many checkouts are being started; retry shortly")]
    Overloaded,
    #[error("the payment database is unavailable")]
    Store(#[source] anyhow::Error),
}

impl PaymentError {
    pub fn validation(field: &'static str, message: impl Into<String>) -> Self {
        Self::Validation { field, message: message.into() }
    }

    pub fn store(err: impl Into<anyhow::Error>) -> Self {
        Self::Store(err.into())
    }
}

impl From<PaymentError> for ServiceError {
    fn from(err: PaymentError) -> Self {
        let detail = err.to_string();
        match err {
            PaymentError::Validation { field, .. } => ServiceError::validation(field, detail),
            PaymentError::OrderNotFound(_) => ServiceError::new(ErrorCode::NotFound, detail),
            PaymentError::InvalidTransition { .. } => ServiceError::new(ErrorCode::InvalidStateTransition, detail),
            PaymentError::VersionMismatch { .. } => ServiceError::new(ErrorCode::VersionMismatch, detail),
            // Not a failure of the service: it refuses to start, having changed nothing.
            PaymentError::UserBusy => ServiceError::new(ErrorCode::Overloaded, detail),
            PaymentError::KeyReused => ServiceError::new(ErrorCode::IdempotencyKeyReused, detail),
            PaymentError::StillRunning(order_id) => {
                ServiceError::new(ErrorCode::Unavailable, detail).with_order(order_id)
            }
            PaymentError::Overloaded => ServiceError::new(ErrorCode::Overloaded, detail),
            PaymentError::Store(cause) => ServiceError::unavailable("payment database", &format!("{cause:#}")),
        }
    }
}
