//! Stable error codes and the single table that maps each to a gRPC status code and an
//! HTTP status. Services turn their domain errors into a [`ServiceError`]; it travels as a
//! `tonic::Status` whose metadata carries the code and context fields, so the gateway can
//! rebuild the exact problem document without parsing messages.

use std::fmt;

use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

/// Metadata keys a [`ServiceError`] is carried in across a gRPC hop.
const CODE_KEY: &str = "mesh-error-code";
const FIELD_KEY: &str = "mesh-error-field";
const PRODUCT_KEY: &str = "mesh-error-product-id";
const ORDER_KEY: &str = "mesh-error-order-id";

macro_rules! error_codes {
    ($($variant:ident => $name:literal, $grpc:ident, $http:literal, $title:literal;)+) => {
        /// A machine-readable error code of the public contract (API.md, "Error codes").
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $($variant),+ }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];

            /// The code as it appears in problem documents, e.g. `OUT_OF_STOCK`.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $name),+ }
            }

            pub fn grpc_code(self) -> Code {
                match self { $(ErrorCode::$variant => Code::$grpc),+ }
            }

            pub fn http_status(self) -> u16 {
                match self { $(ErrorCode::$variant => $http),+ }
            }

            /// Short human title for the problem document.
            pub fn title(self) -> &'static str {
                match self { $(ErrorCode::$variant => $title),+ }
            }

            pub fn parse(name: &str) -> Option<ErrorCode> {
                match name { $($name => Some(ErrorCode::$variant),)+ _ => None }
            }
        }
    };
}

// The one mapping table: code => stable name, gRPC code, HTTP status, title.
error_codes! {
    ValidationFailed       => "VALIDATION_FAILED",        InvalidArgument,    400, "The request is not valid";
    IdempotencyKeyMissing  => "IDEMPOTENCY_KEY_MISSING",  InvalidArgument,    400, "An Idempotency-Key header is required";
    Unauthenticated        => "UNAUTHENTICATED",          Unauthenticated,    401, "Authentication is required";
    Forbidden              => "FORBIDDEN",                PermissionDenied,   403, "Not allowed";
    NotFound               => "NOT_FOUND",                NotFound,           404, "Not found";
    MethodNotAllowed       => "METHOD_NOT_ALLOWED",       Unimplemented,      405, "Method not allowed";
    OutOfStock             => "OUT_OF_STOCK",             FailedPrecondition, 409, "Out of stock";
    CouponSoldOut          => "COUPON_SOLD_OUT",          FailedPrecondition, 409, "The coupon is sold out";
    CouponAlreadyIssued    => "COUPON_ALREADY_ISSUED",    AlreadyExists,      409, "The coupon was already issued to this user";
    CouponNotIssuable      => "COUPON_NOT_ISSUABLE",      FailedPrecondition, 409, "The coupon cannot be issued now";
    CouponNotUsable        => "COUPON_NOT_USABLE",        FailedPrecondition, 409, "The coupon cannot be used";
    InsufficientPoints     => "INSUFFICIENT_POINTS",      FailedPrecondition, 409, "Not enough points";
    RequestInProgress      => "REQUEST_IN_PROGRESS",      Aborted,            409, "A request with this Idempotency-Key is in progress";
    InvalidStateTransition => "INVALID_STATE_TRANSITION", FailedPrecondition, 409, "The state transition is not allowed";
    VersionMismatch        => "VERSION_MISMATCH",         Aborted,            412, "The version is no longer current";
    IdempotencyKeyReused   => "IDEMPOTENCY_KEY_REUSED",   FailedPrecondition, 422, "The Idempotency-Key was used with another request";
    RateLimited            => "RATE_LIMITED",             ResourceExhausted,  429, "Too many requests";
    ExternalServiceFailed  => "EXTERNAL_SERVICE_FAILED",  Aborted,            502, "An external service failed";
    Unavailable            => "UNAVAILABLE",              Unavailable,        503, "A service is unavailable";
    Overloaded             => "OVERLOADED",               Unavailable,        503, "Too busy to start this now";
    Timeout                => "TIMEOUT",                  DeadlineExceeded,   504, "A service did not answer in time";
    Internal               => "INTERNAL",                 Internal,           500, "Internal error";
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as the outside world may see it: a stable code, a human detail that holds no
/// internals, and optional context fields of the problem document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceError {
    pub code: ErrorCode,
    pub detail: String,
    pub field: Option<String>,
    pub product_id: Option<i64>,
    pub order_id: Option<String>,
}

impl ServiceError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self { code, detail: detail.into(), field: None, product_id: None, order_id: None }
    }

    pub fn validation(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationFailed, detail).with_field(field)
    }

    /// An unexpected failure: the cause is logged here, the client sees an opaque detail.
    pub fn internal(cause: &dyn fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorCode::Internal, "internal error; see the service logs for the request id")
    }

    /// A dependency (database, Redis) failed: logged with its cause, opaque to the client.
    pub fn unavailable(what: &str, cause: &dyn fmt::Display) -> Self {
        tracing::error!(error = %cause, dependency = what, "dependency failed");
        Self::new(ErrorCode::Unavailable, format!("{what} is unavailable"))
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn with_product(mut self, product_id: i64) -> Self {
        self.product_id = Some(product_id);
        self
    }

    pub fn with_order(mut self, order_id: impl Into<String>) -> Self {
        self.order_id = Some(order_id.into());
        self
    }

    /// Rebuilds the error a remote service sent. A status without our metadata (a
    /// transport failure, a deadline, a peer that is not ours) maps by its gRPC code.
    pub fn from_status(status: &Status) -> Self {
        let meta = status.metadata();
        let text = |key: &str| meta.get(key).and_then(|v| v.to_str().ok()).map(str::to_owned);
        if let Some(code) = text(CODE_KEY).as_deref().and_then(ErrorCode::parse) {
            return ServiceError {
                code,
                detail: status.message().to_owned(),
                field: text(FIELD_KEY),
                product_id: text(PRODUCT_KEY).and_then(|v| v.parse().ok()),
                order_id: text(ORDER_KEY),
            };
        }
        let code = match status.code() {
            Code::DeadlineExceeded => ErrorCode::Timeout,
            Code::Unavailable | Code::Cancelled | Code::Unknown => ErrorCode::Unavailable,
            Code::InvalidArgument | Code::OutOfRange => ErrorCode::ValidationFailed,
            Code::NotFound => ErrorCode::NotFound,
            Code::ResourceExhausted => ErrorCode::RateLimited,
            Code::Unauthenticated => ErrorCode::Unauthenticated,
            Code::PermissionDenied => ErrorCode::Forbidden,
            _ => ErrorCode::Internal,
        };
        let detail = match code {
            ErrorCode::Timeout => "an internal call ran past its deadline".to_owned(),
            ErrorCode::Unavailable => "an internal service is unavailable".to_owned(),
            ErrorCode::Internal => "internal error".to_owned(),
            _ => status.message().to_owned(),
        };
        ServiceError::new(code, detail)
    }
}

/// Whether `status` is a deliberate refusal by a healthy service (`OVERLOADED`: it could not
/// start the work in time and changed nothing), as opposed to a service failing. Circuit
/// breakers must not count these: a surge of refusals would otherwise open the circuit and
/// turn away the calls the service could serve.
pub fn refused_on_purpose(status: &Status) -> bool {
    status.metadata().get(CODE_KEY).is_some_and(|code| code.as_bytes() == ErrorCode::Overloaded.as_str().as_bytes())
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl std::error::Error for ServiceError {}

impl From<ServiceError> for Status {
    fn from(err: ServiceError) -> Status {
        let mut status = Status::new(err.code.grpc_code(), err.detail);
        let meta = status.metadata_mut();
        meta.insert(CODE_KEY, MetadataValue::from_static(err.code.as_str()));
        let mut put = |key: &'static str, value: String| {
            if let Ok(value) = MetadataValue::try_from(value.as_str()) {
                meta.insert(key, value);
            }
        };
        if let Some(field) = err.field {
            put(FIELD_KEY, field);
        }
        if let Some(product_id) = err.product_id {
            put(PRODUCT_KEY, product_id.to_string());
        }
        if let Some(order_id) = err.order_id {
            put(ORDER_KEY, order_id);
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_a_status() {
        for &code in ErrorCode::ALL {
            let sent = ServiceError::new(code, "detail").with_field("f").with_product(7).with_order("o-1");
            let got = ServiceError::from_status(&Status::from(sent.clone()));
            assert_eq!(got, sent);
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
    }

    #[test]
    fn foreign_statuses_map_by_grpc_code_and_hide_their_message() {
        let got = ServiceError::from_status(&Status::internal("SELECT * FROM secret"));
        assert_eq!(got.code, ErrorCode::Internal);
        assert!(!got.detail.contains("SELECT"));
        let got = ServiceError::from_status(&Status::deadline_exceeded("late"));
        assert_eq!(got.code, ErrorCode::Timeout);
        assert_eq!(got.code.http_status(), 504);
        let got = ServiceError::from_status(&Status::unavailable("tcp connect error"));
        assert_eq!(got.code.http_status(), 503);
    }
}
