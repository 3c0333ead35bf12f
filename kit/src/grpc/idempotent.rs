//! Idempotency-Key at the gRPC edge: the key arrives as request metadata, a replayed
//! answer (success or error) leaves with `idempotent-replayed: true` metadata.

use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use crate::ServiceError;
use crate::idempotency::{IdempotencyKey, KEY_METADATA, Once, REPLAYED_METADATA};

/// The request's key, scoped to `endpoint` and `user_id`, fingerprinted by the request's
/// protobuf encoding. `None` when the caller sent no key.
pub fn idempotency_key<T: prost::Message>(
    request: &Request<T>,
    endpoint: &str,
    user_id: i64,
) -> Result<Option<IdempotencyKey>, Status> {
    let Some(raw) = request.metadata().get(KEY_METADATA) else { return Ok(None) };
    let key = raw.to_str().map_err(|_| {
        Status::from(ServiceError::new(
            crate::ErrorCode::IdempotencyKeyMissing,
            "Idempotency-Key must be visible ASCII",
        ))
    })?;
    IdempotencyKey::new(endpoint, user_id, key, &request.get_ref().encode_to_vec()).map(Some).map_err(Status::from)
}

/// Turns a [`Once`] into the gRPC answer, marking replays.
pub fn respond<T, P>(once: Once<T>, to_proto: impl FnOnce(T) -> P) -> Result<Response<P>, Status> {
    let mark = |metadata: &mut tonic::metadata::MetadataMap| {
        if once.replayed {
            metadata.insert(REPLAYED_METADATA, MetadataValue::from_static("true"));
        }
    };
    match once.result {
        Ok(value) => {
            let mut response = Response::new(to_proto(value));
            mark(response.metadata_mut());
            Ok(response)
        }
        Err(err) => {
            let mut status = Status::from(err);
            mark(status.metadata_mut());
            Err(status)
        }
    }
}
