//! `/v1/points`: point-svc behind REST. Charge and use accept an Idempotency-Key.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use mesh_proto::point::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AppState, timestamp};
use crate::auth::Actor;
use crate::context::{REPLAYED_HEADER, grpc_request, idempotent_grpc_request, is_replay};
use crate::extract::{JsonBody, QueryPairs, idempotency_key, positive_id};
use crate::problem::{Problem, ProblemDocument};

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BalanceBody {
    pub user_id: i64,
    pub balance: i64,
    /// Null for a user who never had points.
    #[schema(format = DateTime)]
    pub updated_at: Option<String>,
}

impl From<pb::Balance> for BalanceBody {
    fn from(b: pb::Balance) -> Self {
        Self { user_id: b.user_id, balance: b.balance, updated_at: b.updated_at.as_ref().map(|t| timestamp(Some(t))) }
    }
}

/// A use of points.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PointsChange {
    #[schema(minimum = 1)]
    pub user_id: i64,
    /// Won.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub amount: i64,
}

/// A charge: same fields as [`PointsChange`], a smaller bound.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PointsCharge {
    #[schema(minimum = 1)]
    pub user_id: i64,
    /// Won; the balance must stay at most 1,000,000,000.
    #[schema(minimum = 1, maximum = 10_000_000)]
    pub amount: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntryBody {
    pub id: i64,
    /// CHARGE, USE, PAYMENT or REFUND.
    #[serde(rename = "type")]
    pub kind: String,
    pub amount: i64,
    pub balance_after: i64,
    pub order_id: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct History {
    pub items: Vec<LedgerEntryBody>,
}

fn entry_body(e: pb::LedgerEntry) -> LedgerEntryBody {
    let kind = match pb::EntryType::try_from(e.r#type) {
        Ok(pb::EntryType::Charge) => "CHARGE",
        Ok(pb::EntryType::Use) => "USE",
        Ok(pb::EntryType::Payment) => "PAYMENT",
        Ok(pb::EntryType::Refund) => "REFUND",
        _ => "UNKNOWN",
    };
    LedgerEntryBody {
        id: e.id,
        kind: kind.to_owned(),
        amount: e.amount,
        balance_after: e.balance_after,
        order_id: e.order_id,
        created_at: timestamp(e.created_at.as_ref()),
    }
}

/// 200 with the balance, marked when it is a replay.
fn balance_response(response: tonic::Response<pb::Balance>) -> Response {
    let replayed = is_replay(response.metadata());
    let mut http = (StatusCode::OK, Json(BalanceBody::from(response.into_inner()))).into_response();
    if replayed {
        http.headers_mut().insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    http
}

#[utoipa::path(get, path = "/v1/points/{userId}", tag = "points",
    params(("userId" = i64, Path, description = "User id", minimum = 1)),
    responses((status = 200, body = BalanceBody), (status = 400, body = ProblemDocument, content_type = "application/problem+json")))]
pub async fn get_balance(
    State(state): State<AppState>,
    actor: Actor,
    Path(user_id): Path<String>,
) -> Result<Json<BalanceBody>, Problem> {
    let user_id = positive_id(&user_id, "userId")?;
    actor.act_for(user_id)?;
    let balance = state.upstreams.point()?.get_balance(grpc_request(pb::GetBalanceRequest { user_id })).await?;
    Ok(Json(BalanceBody::from(balance.into_inner())))
}

#[utoipa::path(post, path = "/v1/points/charge", request_body = PointsCharge, tag = "points",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: one effect per key",
            min_length = 1, max_length = 255, pattern = "^[\\x20-\\x7e]+$")),
    responses((status = 200, body = BalanceBody, description = "`Idempotent-Replayed: true` on a replay"),
              (status = 400, body = ProblemDocument, content_type = "application/problem+json"),
              (status = 409, body = ProblemDocument, content_type = "application/problem+json", description = "REQUEST_IN_PROGRESS"),
              (status = 422, body = ProblemDocument, content_type = "application/problem+json", description = "IDEMPOTENCY_KEY_REUSED")))]
pub async fn charge(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PointsCharge>,
) -> Result<Response, Problem> {
    actor.act_for(body.user_id)?;
    let key = idempotency_key(&headers, false)?;
    let req = pb::ChargeRequest { user_id: body.user_id, amount: body.amount };
    let response = state.upstreams.point()?.charge(idempotent_grpc_request(req, key.as_deref())).await?;
    Ok(balance_response(response))
}

#[utoipa::path(post, path = "/v1/points/use", request_body = PointsChange, tag = "points",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: one effect per key",
            min_length = 1, max_length = 255, pattern = "^[\\x20-\\x7e]+$")),
    responses((status = 200, body = BalanceBody),
              (status = 400, body = ProblemDocument, content_type = "application/problem+json"),
              (status = 409, body = ProblemDocument, content_type = "application/problem+json", description = "INSUFFICIENT_POINTS or REQUEST_IN_PROGRESS"),
              (status = 422, body = ProblemDocument, content_type = "application/problem+json", description = "IDEMPOTENCY_KEY_REUSED")))]
pub async fn use_points(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PointsChange>,
) -> Result<Response, Problem> {
    actor.act_for(body.user_id)?;
    let key = idempotency_key(&headers, false)?;
    let req = pb::UseRequest { user_id: body.user_id, amount: body.amount };
    let response = state.upstreams.point()?.r#use(idempotent_grpc_request(req, key.as_deref())).await?;
    Ok(balance_response(response))
}

#[utoipa::path(get, path = "/v1/points/{userId}/history", tag = "points",
    params(("userId" = i64, Path, description = "User id", minimum = 1), ("limit" = Option<i64>, Query, description = "Entries, default 50", minimum = 1, maximum = 200)),
    responses((status = 200, body = History, description = "Newest first"), (status = 400, body = ProblemDocument, content_type = "application/problem+json")))]
pub async fn history(
    State(state): State<AppState>,
    actor: Actor,
    Path(user_id): Path<String>,
    query: QueryPairs,
) -> Result<Json<History>, Problem> {
    let user_id = positive_id(&user_id, "userId")?;
    actor.act_for(user_id)?;
    let limit = query.int("limit", 50, 1..=200)? as i32;
    let entries =
        state.upstreams.point()?.list_history(grpc_request(pb::ListHistoryRequest { user_id, limit })).await?;
    Ok(Json(History { items: entries.into_inner().items.into_iter().map(entry_body).collect() }))
}
