use kit::{ErrorCode, ServiceError};

/// Everything a point operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum PointError {
    #[error("{message}")]
    Validation { field: &'static str, message: String },
    #[error("the balance is lower than the amount")]
    InsufficientPoints,
    #[error("this saga step was already compensated; the late action is refused")]
    StepCompensated,
    #[error("the point database is unavailable")]
    Store(#[source] anyhow::Error),
}

impl PointError {
    pub fn validation(field: &'static str, message: impl Into<String>) -> Self {
        Self::Validation { field, message: message.into() }
    }
}

impl From<PointError> for ServiceError {
    fn from(err: PointError) -> Self {
        let detail = err.to_string();
        match err {
            PointError::Validation { field, .. } => ServiceError::validation(field, detail),
            PointError::InsufficientPoints => ServiceError::new(ErrorCode::InsufficientPoints, detail),
            PointError::StepCompensated => ServiceError::new(ErrorCode::InvalidStateTransition, detail),
            PointError::Store(cause) => ServiceError::unavailable("point database", &format!("{cause:#}")),
        }
    }
}
