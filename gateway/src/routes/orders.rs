//! `/v1/orders` and `/v1/users/{userId}/orders`: payment-svc (the checkout saga) behind REST.
//! Placing an order requires an Idempotency-Key; changing its status accepts one.
//!
//! PlaceOrder answers a business failure with the FAILED order, not an RPC error; this module
//! turns that order into the problem document of its `failureCode`, carrying `orderId`.

use std::collections::HashSet;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kit::{ErrorCode, ServiceError};
use mesh_proto::payment::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AppState, etag, timestamp};
use crate::auth::Actor;
use crate::context::{REPLAYED_HEADER, grpc_request, idempotent_grpc_request, is_replay};
use crate::extract::{JsonBody, QueryPairs, idempotency_key, if_match_version, positive_id};
use crate::problem::{Problem, ProblemDocument};

const MAX_LINES: usize = 50;
const MAX_QUANTITY: i64 = 1_000;

/// One line of an order to place.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlaceOrderLine {
    #[schema(minimum = 1)]
    pub product_id: i64,
    /// Units.
    #[schema(minimum = 1, maximum = 1_000)]
    pub quantity: i64,
}

/// An order to place: stock is reserved, the coupon used and the rest paid with points.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlaceOrder {
    #[schema(minimum = 1)]
    pub user_id: i64,
    /// 1..=50 lines, no productId twice.
    #[schema(min_items = 1, max_items = 50)]
    pub items: Vec<PlaceOrderLine>,
    /// A coupon this user holds; null or absent = no coupon.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub user_coupon_id: Option<i64>,
}

/// The status an order should have.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangeOrderStatus {
    /// Only COMPLETED -> CANCELLED changes anything; the current status is a no-op.
    #[schema(pattern = "^(PENDING|COMPLETED|FAILED|CANCELLING|CANCELLED)$")]
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderLineBody {
    pub product_id: i64,
    pub quantity: i64,
    /// Won, the product's price when the stock was reserved.
    pub unit_price: i64,
    /// unitPrice x quantity.
    pub amount: i64,
}

/// One step of the order's saga.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderStepBody {
    /// RESERVE_STOCK, USE_COUPON, PAY_POINTS, RECORD_PAYMENT or TRANSMIT_DATA.
    pub name: String,
    /// PENDING, DONE, COMPENSATED or FAILED.
    pub status: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// Calls made for the step, retries and compensations included.
    pub attempts: i32,
    /// The last failed call's error while the step is being retried (e.g. a compensation
    /// retried in the background), else null.
    pub last_error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderBody {
    /// A UUID.
    pub order_id: String,
    pub user_id: i64,
    /// PENDING, COMPLETED, FAILED, CANCELLING or CANCELLED.
    pub status: String,
    pub items: Vec<OrderLineBody>,
    /// Sum of the lines' amounts.
    pub total_amount: i64,
    pub discount_amount: i64,
    /// totalAmount - discountAmount, taken from points.
    pub paid_amount: i64,
    pub user_coupon_id: Option<i64>,
    /// The error code of the step that failed, for a FAILED order.
    pub failure_code: Option<String>,
    /// Grows by one with every change of the order; also the `ETag`.
    pub version: i64,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// The saga's steps, in order: only in `GET /v1/orders/{orderId}`, absent elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub steps: Option<Vec<OrderStepBody>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserOrders {
    /// Newest first, without `steps`.
    pub items: Vec<OrderBody>,
}

fn order_status_name(raw: i32) -> &'static str {
    match pb::OrderStatus::try_from(raw) {
        Ok(pb::OrderStatus::Pending) => "PENDING",
        Ok(pb::OrderStatus::Completed) => "COMPLETED",
        Ok(pb::OrderStatus::Failed) => "FAILED",
        Ok(pb::OrderStatus::Cancelling) => "CANCELLING",
        Ok(pb::OrderStatus::Cancelled) => "CANCELLED",
        _ => "UNKNOWN",
    }
}

fn step_status_name(raw: i32) -> &'static str {
    match pb::StepStatus::try_from(raw) {
        Ok(pb::StepStatus::Pending) => "PENDING",
        Ok(pb::StepStatus::Done) => "DONE",
        Ok(pb::StepStatus::Compensated) => "COMPENSATED",
        Ok(pb::StepStatus::Failed) => "FAILED",
        _ => "UNKNOWN",
    }
}

/// The order as JSON; `steps` only when `with_steps`.
fn order_body(o: pb::Order, with_steps: bool) -> OrderBody {
    let steps = with_steps.then(|| {
        o.steps
            .into_iter()
            .map(|s| OrderStepBody {
                name: s.name,
                status: step_status_name(s.status).to_owned(),
                updated_at: timestamp(s.updated_at.as_ref()),
                attempts: s.attempts,
                last_error: s.last_error,
            })
            .collect()
    });
    OrderBody {
        order_id: o.order_id,
        user_id: o.user_id,
        status: order_status_name(o.status).to_owned(),
        items: o
            .items
            .into_iter()
            .map(|l| OrderLineBody {
                product_id: l.product_id,
                quantity: l.quantity,
                unit_price: l.unit_price,
                amount: l.amount,
            })
            .collect(),
        total_amount: o.total_amount,
        discount_amount: o.discount_amount,
        paid_amount: o.paid_amount,
        user_coupon_id: o.user_coupon_id,
        failure_code: o.failure_code,
        version: o.version,
        created_at: timestamp(o.created_at.as_ref()),
        updated_at: timestamp(o.updated_at.as_ref()),
        steps,
    }
}

/// The order with its `ETag`, `Location` when created, `Idempotent-Replayed` when replayed.
fn order_response(status: StatusCode, order: pb::Order, with_steps: bool, created: bool, replayed: bool) -> Response {
    let tag = etag(order.version);
    let location = created.then(|| HeaderValue::from_str(&format!("/v1/orders/{}", order.order_id)).ok()).flatten();
    let mut response = (status, Json(order_body(order, with_steps))).into_response();
    let headers = response.headers_mut();
    headers.insert(header::ETAG, tag);
    if let Some(location) = location {
        headers.insert(header::LOCATION, location);
    }
    if replayed {
        headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    response
}

/// The problem document of an order PlaceOrder did not complete.
fn failed_order_problem(order: &pb::Order) -> Problem {
    let code = order.failure_code.as_deref().and_then(ErrorCode::parse).unwrap_or_else(|| {
        tracing::warn!(order_id = %order.order_id, failure_code = ?order.failure_code, "failed order without a known failure code");
        ErrorCode::Internal
    });
    let detail = match order.failure_detail.as_deref().filter(|d| !d.trim().is_empty()) {
        // An unknown code's text is not known to be fit for a client.
        Some(detail) if code != ErrorCode::Internal => detail.to_owned(),
        _ => code.title().to_owned(),
    };
    let mut err = ServiceError::new(code, detail).with_order(order.order_id.clone());
    if let Some(product_id) = order.failure_product_id {
        err = err.with_product(product_id);
    }
    Problem::from_error(err)
}

/// `orderId` in a path: a UUID in any of its spellings, sent on in the canonical
/// lowercase hyphenated form.
fn order_id(raw: &str) -> Result<String, Problem> {
    uuid::Uuid::try_parse(raw)
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| Problem::validation("orderId", "orderId must be a UUID"))
}

/// Everything about an order to place that the gateway can check without a service.
fn place_order_request(body: PlaceOrder) -> Result<pb::PlaceOrderRequest, Problem> {
    if body.user_id <= 0 {
        return Err(Problem::validation("userId", "userId must be a positive 64-bit integer"));
    }
    if !(1..=MAX_LINES).contains(&body.items.len()) {
        return Err(Problem::validation("items", format!("items must hold 1..={MAX_LINES} lines")));
    }
    let mut seen = HashSet::with_capacity(body.items.len());
    for (i, line) in body.items.iter().enumerate() {
        if line.product_id <= 0 {
            return Err(Problem::validation(
                format!("items[{i}].productId"),
                "productId must be a positive 64-bit integer",
            ));
        }
        if !(1..=MAX_QUANTITY).contains(&line.quantity) {
            return Err(Problem::validation(
                format!("items[{i}].quantity"),
                format!("quantity must be an integer in 1..={MAX_QUANTITY}"),
            ));
        }
        if !seen.insert(line.product_id) {
            return Err(Problem::validation(
                "items",
                format!("productId {} appears more than once in items", line.product_id),
            ));
        }
    }
    if body.user_coupon_id.is_some_and(|id| id <= 0) {
        return Err(Problem::validation("userCouponId", "userCouponId must be a positive 64-bit integer"));
    }
    Ok(pb::PlaceOrderRequest {
        user_id: body.user_id,
        items: body
            .items
            .into_iter()
            .map(|l| pb::PlaceOrderLine { product_id: l.product_id, quantity: l.quantity })
            .collect(),
        user_coupon_id: body.user_coupon_id,
    })
}

#[utoipa::path(post, path = "/v1/orders", request_body = PlaceOrder, tag = "orders",
    params(("Idempotency-Key" = String, Header, description = "Required: one order per key; a retry gets the first answer again",
            min_length = 1, max_length = 255, pattern = "^[\\x20-\\x7e]+$")),
    responses((status = 201, body = OrderBody, description = "COMPLETED; `Location`, `ETag` set, `Idempotent-Replayed: true` on a replay"),
              (status = 202, body = OrderBody, description = "PENDING: not settled within the answer budget (default 5 s); the saga goes on. `Location` and `Retry-After: 1` set; the same request with the same key answers 202 until it settles, then the final answer"),
              (status = 400, body = ProblemDocument, content_type = "application/problem+json", description = "VALIDATION_FAILED or IDEMPOTENCY_KEY_MISSING"),
              (status = 404, body = ProblemDocument, content_type = "application/problem+json", description = "A product or user coupon does not exist; carries `orderId`"),
              (status = 409, body = ProblemDocument, content_type = "application/problem+json",
               description = "OUT_OF_STOCK (with `productId`), COUPON_NOT_USABLE, INSUFFICIENT_POINTS (with `orderId`)"),
              (status = 422, body = ProblemDocument, content_type = "application/problem+json", description = "IDEMPOTENCY_KEY_REUSED"),
              (status = 502, body = ProblemDocument, content_type = "application/problem+json", description = "EXTERNAL_SERVICE_FAILED: rolled back; carries `orderId`"),
              (status = 503, body = ProblemDocument, content_type = "application/problem+json",
               description = "OVERLOADED or UNAVAILABLE without `orderId`: not started, nothing changed, retry after `Retry-After`; UNAVAILABLE with `orderId`: FAILED after a participant stayed down past the forward budget, rolled back (final)"),
              (status = 504, body = ProblemDocument, content_type = "application/problem+json",
               description = "TIMEOUT: with `orderId`, FAILED after calls kept missing their deadline past the forward budget, rolled back (final)")))]
pub async fn place_order(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PlaceOrder>,
) -> Result<Response, Problem> {
    actor.act_for(body.user_id)?;
    let key = idempotency_key(&headers, true)?;
    let req = place_order_request(body)?;
    let response = state.upstreams.payment()?.place_order(idempotent_grpc_request(req, key.as_deref())).await?;
    let replayed = is_replay(response.metadata());
    let order = response.into_inner();
    match pb::OrderStatus::try_from(order.status) {
        // An order cancelled since it was placed (a replay that reads the order as it is now)
        // was still created by this request.
        Ok(pb::OrderStatus::Completed | pb::OrderStatus::Cancelling | pb::OrderStatus::Cancelled) => {
            Ok(order_response(StatusCode::CREATED, order, false, true, replayed))
        }
        Ok(pb::OrderStatus::Failed) => Err(failed_order_problem(&order).replayed(replayed)),
        // Not settled within the answer budget: the saga goes on by itself; the same key
        // answers 202 until it settles, then the final answer.
        Ok(pb::OrderStatus::Pending) => {
            let mut response = order_response(StatusCode::ACCEPTED, order, false, true, false);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Ok(response)
        }
        _ => {
            tracing::error!(order_id = %order.order_id, status = order.status, "PlaceOrder answered an order without a status");
            Err(Problem::from_error(
                ServiceError::new(ErrorCode::Internal, "internal error").with_order(order.order_id),
            )
            .replayed(replayed))
        }
    }
}

#[utoipa::path(get, path = "/v1/orders/{orderId}", tag = "orders",
    params(("orderId" = String, Path, description = "Order id: a UUID (hyphenated; the simple, braced and urn forms are accepted too)",
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")),
    responses((status = 200, body = OrderBody, description = "With `steps`; `ETag` set"),
              (status = 400, body = ProblemDocument, content_type = "application/problem+json"),
              (status = 404, body = ProblemDocument, content_type = "application/problem+json")))]
pub async fn get_order(
    State(state): State<AppState>,
    actor: Actor,
    Path(raw_id): Path<String>,
) -> Result<Response, Problem> {
    let order = visible_order(&state, &actor, order_id(&raw_id)?).await?;
    Ok(order_response(StatusCode::OK, order, true, false, false))
}

/// The order, if this request may see it: another user's order is a 404, exactly as one
/// that does not exist, so its existence does not leak.
async fn visible_order(state: &AppState, actor: &Actor, order_id: String) -> Result<pb::Order, Problem> {
    let order =
        state.upstreams.payment()?.get_order(grpc_request(pb::GetOrderRequest { order_id })).await?.into_inner();
    if !actor.sees(order.user_id) {
        return Err(Problem::from_error(ServiceError::new(ErrorCode::NotFound, "order not found")));
    }
    Ok(order)
}

#[utoipa::path(get, path = "/v1/users/{userId}/orders", tag = "orders",
    params(("userId" = i64, Path, description = "User id", minimum = 1),
           ("limit" = Option<i64>, Query, description = "Orders, default 20", minimum = 1, maximum = 100)),
    responses((status = 200, body = UserOrders, description = "Newest first"),
              (status = 400, body = ProblemDocument, content_type = "application/problem+json")))]
pub async fn user_orders(
    State(state): State<AppState>,
    actor: Actor,
    Path(user_id): Path<String>,
    query: QueryPairs,
) -> Result<Json<UserOrders>, Problem> {
    let user_id = positive_id(&user_id, "userId")?;
    actor.act_for(user_id)?;
    let limit = query.int("limit", 20, 1..=100)? as i32;
    let list =
        state.upstreams.payment()?.list_user_orders(grpc_request(pb::ListUserOrdersRequest { user_id, limit })).await?;
    Ok(Json(UserOrders { items: list.into_inner().items.into_iter().map(|o| order_body(o, false)).collect() }))
}

#[utoipa::path(put, path = "/v1/orders/{orderId}/status", request_body = ChangeOrderStatus, tag = "orders",
    params(("orderId" = String, Path, description = "Order id: a UUID (hyphenated; the simple, braced and urn forms are accepted too)",
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"),
           ("If-Match" = Option<String>, Header, description = "Only if this ETag (\"<version>\") is current",
            pattern = r#"^("[0-9]{1,18}"|[0-9]{1,18}|\*)$"#),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: one effect per key",
            min_length = 1, max_length = 255, pattern = "^[\\x20-\\x7e]+$")),
    responses((status = 200, body = OrderBody, description = "`ETag` set; `Idempotent-Replayed: true` on a replay"),
              (status = 400, body = ProblemDocument, content_type = "application/problem+json"),
              (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
              (status = 409, body = ProblemDocument, content_type = "application/problem+json",
               description = "INVALID_STATE_TRANSITION or REQUEST_IN_PROGRESS"),
              (status = 412, body = ProblemDocument, content_type = "application/problem+json", description = "VERSION_MISMATCH"),
              (status = 422, body = ProblemDocument, content_type = "application/problem+json", description = "IDEMPOTENCY_KEY_REUSED")))]
pub async fn change_order_status(
    State(state): State<AppState>,
    actor: Actor,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ChangeOrderStatus>,
) -> Result<Response, Problem> {
    let order_id = order_id(&raw_id)?;
    let expected_version = if_match_version(&headers)?;
    let key = idempotency_key(&headers, false)?;
    let status = match body.status.as_str() {
        "PENDING" => pb::OrderStatus::Pending,
        "COMPLETED" => pb::OrderStatus::Completed,
        "FAILED" => pb::OrderStatus::Failed,
        "CANCELLING" => pb::OrderStatus::Cancelling,
        "CANCELLED" => pb::OrderStatus::Cancelled,
        _ => {
            return Err(Problem::validation(
                "status",
                "status must be one of PENDING, COMPLETED, FAILED, CANCELLING, CANCELLED",
            ));
        }
    };
    // Whose order it is, before anything changes (a refused request changes nothing).
    if actor != Actor::Anyone {
        visible_order(&state, &actor, order_id.clone()).await?;
    }
    let req = pb::ChangeOrderStatusRequest { order_id, status: status as i32, expected_version };
    let response = state.upstreams.payment()?.change_order_status(idempotent_grpc_request(req, key.as_deref())).await?;
    let replayed = is_replay(response.metadata());
    Ok(order_response(StatusCode::OK, response.into_inner(), false, false, replayed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(product_id: i64, quantity: i64) -> PlaceOrderLine {
        PlaceOrderLine { product_id, quantity }
    }

    fn field_of(body: PlaceOrder) -> Option<String> {
        place_order_request(body).err().and_then(|p| p.document().field.clone())
    }

    #[test]
    fn order_bodies_are_checked_line_by_line() {
        let ok = PlaceOrder { user_id: 7, items: vec![line(1, 2), line(2, 1000)], user_coupon_id: Some(981) };
        let req = place_order_request(ok).unwrap();
        assert_eq!((req.items.len(), req.user_coupon_id), (2, Some(981)));

        let cases = [
            (PlaceOrder { user_id: 0, items: vec![line(1, 1)], user_coupon_id: None }, "userId"),
            (PlaceOrder { user_id: 1, items: vec![], user_coupon_id: None }, "items"),
            (PlaceOrder { user_id: 1, items: (1..=51).map(|p| line(p, 1)).collect(), user_coupon_id: None }, "items"),
            (PlaceOrder { user_id: 1, items: vec![line(1, 1), line(2, 0)], user_coupon_id: None }, "items[1].quantity"),
            (PlaceOrder { user_id: 1, items: vec![line(1, 1001)], user_coupon_id: None }, "items[0].quantity"),
            (PlaceOrder { user_id: 1, items: vec![line(-3, 1)], user_coupon_id: None }, "items[0].productId"),
            (PlaceOrder { user_id: 1, items: vec![line(4, 1), line(4, 2)], user_coupon_id: None }, "items"),
            (PlaceOrder { user_id: 1, items: vec![line(4, 1)], user_coupon_id: Some(0) }, "userCouponId"),
        ];
        for (body, field) in cases {
            assert_eq!(field_of(body).as_deref(), Some(field));
        }
    }

    #[test]
    fn order_ids_are_uuids_sent_on_canonically() {
        let canonical = "67e55044-10b1-426f-9247-bb680e5fe0c8";
        assert_eq!(order_id(canonical).unwrap(), canonical);
        assert_eq!(order_id("67E5504410B1426F9247BB680E5FE0C8").unwrap(), canonical);
        for bad in ["", "1", "not-a-uuid", "67e55044-10b1-426f-9247-bb680e5fe0c"] {
            assert!(order_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_failed_order_is_the_problem_of_its_failure_code() {
        let mut order = pb::Order {
            order_id: "o-1".into(),
            status: pb::OrderStatus::Failed as i32,
            failure_code: Some("OUT_OF_STOCK".into()),
            failure_product_id: Some(3),
            failure_detail: Some("only 1 left of product 3".into()),
            ..pb::Order::default()
        };
        let doc = failed_order_problem(&order).document().clone();
        assert_eq!(
            (doc.status, doc.code.as_str(), doc.detail.as_str()),
            (409, "OUT_OF_STOCK", "only 1 left of product 3")
        );
        assert_eq!((doc.order_id.as_deref(), doc.product_id), (Some("o-1"), Some(3)));

        order.failure_code = Some("EXTERNAL_SERVICE_FAILED".into());
        order.failure_product_id = None;
        order.failure_detail = None;
        let doc = failed_order_problem(&order).document().clone();
        assert_eq!((doc.status, doc.detail.as_str(), doc.product_id), (502, "An external service failed", None));

        order.failure_code = Some("SOMETHING_NEW".into());
        order.failure_detail = Some("SELECT secret".into());
        let doc = failed_order_problem(&order).document().clone();
        assert_eq!((doc.status, doc.code.as_str(), doc.order_id.as_deref()), (500, "INTERNAL", Some("o-1")));
        assert!(!doc.detail.contains("SELECT"));
    }
}
