use kit::{ErrorCode, ServiceError};

/// Everything a coupon operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CouponError {
    #[error("{message}")]
    Validation { field: &'static str, message: String },
    #[error("coupon {0} does not exist")]
    CouponNotFound(i64),
    #[error("user coupon {0} does not exist")]
    UserCouponNotFound(i64),
    #[error("every copy of this coupon has been issued")]
    SoldOut,
    #[error("this user already holds this coupon")]
    AlreadyIssued,
    #[error("the coupon cannot be issued outside its issue window")]
    NotIssuable,
    #[error("the user coupon is used, expired, or not this user's")]
    NotUsable,
    #[error("this saga step was already compensated; the late action is refused")]
    StepCompensated,
    /// MySQL failed; the cause is logged, never shown.
    #[error("the coupon database is unavailable")]
    Store(#[source] anyhow::Error),
    /// The Redis issue gate failed; issuing waits for it rather than guessing.
    #[error("the coupon issue gate is unavailable")]
    Gate(#[source] anyhow::Error),
}

impl CouponError {
    pub fn validation(field: &'static str, message: impl Into<String>) -> Self {
        Self::Validation { field, message: message.into() }
    }
}

impl From<CouponError> for ServiceError {
    fn from(err: CouponError) -> Self {
        let detail = err.to_string();
        match err {
            CouponError::Validation { field, .. } => ServiceError::validation(field, detail),
            CouponError::CouponNotFound(_) | CouponError::UserCouponNotFound(_) => {
                ServiceError::new(ErrorCode::NotFound, detail)
            }
            CouponError::SoldOut => ServiceError::new(ErrorCode::CouponSoldOut, detail),
            CouponError::AlreadyIssued => ServiceError::new(ErrorCode::CouponAlreadyIssued, detail),
            CouponError::NotIssuable => ServiceError::new(ErrorCode::CouponNotIssuable, detail),
            CouponError::NotUsable => ServiceError::new(ErrorCode::CouponNotUsable, detail),
            CouponError::StepCompensated => ServiceError::new(ErrorCode::InvalidStateTransition, detail),
            CouponError::Store(cause) => ServiceError::unavailable("coupon database", &format!("{cause:#}")),
            CouponError::Gate(cause) => ServiceError::unavailable("coupon issue gate", &format!("{cause:#}")),
        }
    }
}
