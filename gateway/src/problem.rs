//! RFC 9457 problem documents. Every error the gateway sends is one of these, built from
//! kit's error table, so an HTTP status and a `code` always agree.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kit::{ErrorCode, ServiceError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::context;

/// An error response: a boxed [`ProblemDocument`], so `Result<_, Problem>` stays small on
/// the happy path.
#[derive(Clone, Debug)]
pub struct Problem(Box<ProblemDocument>);

/// An RFC 9457 problem document with the mesh's stable `code`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProblemDocument {
    /// A URI reference naming the problem type.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable, machine-readable code (API.md, "Error codes").
    pub code: String,
    pub request_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(skip)]
    retry_after_secs: Option<u64>,
    /// `WWW-Authenticate` of a 401.
    #[serde(skip)]
    challenge: Option<&'static str>,
    /// The stored answer of an earlier request with the same Idempotency-Key.
    #[serde(skip)]
    replayed: bool,
}

impl Problem {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::from_error(ServiceError::new(code, detail))
    }

    pub fn validation(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::from_error(ServiceError::validation(field, detail))
    }

    pub fn from_error(err: ServiceError) -> Self {
        Self::with_status(err.code.http_status(), err)
    }

    /// For the few HTTP-only situations (405, 413) whose status is not the code's own.
    pub fn with_status(status: u16, err: ServiceError) -> Self {
        Self(Box::new(ProblemDocument {
            kind: format!("/problems/{}", err.code.as_str().to_lowercase().replace('_', "-")),
            title: err.code.title().to_owned(),
            status,
            detail: err.detail,
            code: err.code.as_str().to_owned(),
            request_id: context::current_request_id(),
            field: err.field,
            product_id: err.product_id,
            order_id: err.order_id,
            // Every 503 says when to come back (API.md): the cause is expected to pass.
            retry_after_secs: (status == 503).then_some(1),
            challenge: None,
            replayed: false,
        }))
    }

    /// Marks the problem as the stored answer of an earlier request with the same
    /// Idempotency-Key (`Idempotent-Replayed: true`).
    pub fn replayed(mut self, replayed: bool) -> Self {
        self.0.replayed = replayed;
        self
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.0.retry_after_secs = Some(secs);
        self
    }

    /// A 401's `WWW-Authenticate` value (RFC 6750).
    pub fn challenge(mut self, challenge: &'static str) -> Self {
        self.0.challenge = Some(challenge);
        self
    }

    pub fn document(&self) -> &ProblemDocument {
        &self.0
    }
}

impl From<ServiceError> for Problem {
    fn from(err: ServiceError) -> Self {
        Problem::from_error(err)
    }
}

impl From<tonic::Status> for Problem {
    fn from(status: tonic::Status) -> Self {
        let err = ServiceError::from_status(&status);
        if err.code == ErrorCode::Internal || err.code == ErrorCode::Unavailable {
            tracing::warn!(grpc_code = ?status.code(), message = status.message(), "upstream call failed");
        }
        let mut problem = Problem::from_error(err);
        problem.0.replayed = crate::context::is_replay(status.metadata());
        problem
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = self.0.retry_after_secs;
        let challenge = self.0.challenge;
        let replayed = self.0.replayed;
        let mut response = (status, Json(*self.0)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if replayed {
            headers.insert(crate::context::REPLAYED_HEADER, HeaderValue::from_static("true"));
        }
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(challenge) = challenge {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        response
    }
}
