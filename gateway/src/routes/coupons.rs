//! `/v1/coupons` and `/v1/users/{userId}/coupons`: coupon-svc behind REST.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mesh_proto::coupon::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AppState, timestamp};
use crate::auth::Actor;
use crate::context::grpc_request;
use crate::extract::{JsonBody, QueryPairs, positive_id};
use crate::problem::{Problem, ProblemDocument};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateCoupon {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    #[schema(pattern = "^(FIXED|PERCENT)$")]
    pub discount_type: String,
    /// FIXED: 1..=1,000,000,000 won. PERCENT: 1..=100.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub discount_value: i64,
    /// PERCENT only: caps the discount, in won.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub max_discount: Option<i64>,
    #[schema(minimum = 1, maximum = 10_000_000)]
    pub total_quantity: i64,
    /// null = no start.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub issue_starts_at: Option<String>,
    /// null = no end; after issueStartsAt.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub issue_ends_at: Option<String>,
    /// Default 30.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3650)]
    pub valid_days: Option<i32>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CouponBody {
    pub id: i64,
    pub name: String,
    pub discount_type: String,
    pub discount_value: i64,
    pub max_discount: Option<i64>,
    pub total_quantity: i64,
    /// Copies MySQL holds: never more than totalQuantity.
    pub issued_quantity: i64,
    pub remaining_quantity: i64,
    #[schema(format = DateTime)]
    pub issue_starts_at: Option<String>,
    #[schema(format = DateTime)]
    pub issue_ends_at: Option<String>,
    pub valid_days: i32,
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// A page of coupons, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CouponPage {
    pub items: Vec<CouponBody>,
    pub page: i64,
    pub size: i64,
    pub total_items: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssueCoupon {
    #[schema(minimum = 1)]
    pub user_id: i64,
}

/// The answer to an issue request.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuedCoupon {
    pub user_coupon_id: i64,
    pub coupon_id: i64,
    pub user_id: i64,
    /// 1-based first-come position: the n-th accepted request gets n.
    pub sequence: i64,
    pub status: String,
    #[schema(format = DateTime)]
    pub issued_at: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// A coupon in a user's list.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserCouponBody {
    pub user_coupon_id: i64,
    pub coupon_id: i64,
    pub user_id: i64,
    pub sequence: i64,
    /// AVAILABLE, USED or EXPIRED.
    pub status: String,
    #[schema(format = DateTime)]
    pub issued_at: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    pub name: String,
    pub discount_type: String,
    pub discount_value: i64,
    pub max_discount: Option<i64>,
    #[schema(format = DateTime)]
    pub used_at: Option<String>,
    pub order_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserCoupons {
    pub items: Vec<UserCouponBody>,
}

fn discount_type_name(raw: i32) -> String {
    match pb::DiscountType::try_from(raw) {
        Ok(pb::DiscountType::Fixed) => "FIXED",
        Ok(pb::DiscountType::Percent) => "PERCENT",
        _ => "UNKNOWN",
    }
    .to_owned()
}

fn status_name(raw: i32) -> String {
    match pb::UserCouponStatus::try_from(raw) {
        Ok(pb::UserCouponStatus::Available) => "AVAILABLE",
        Ok(pb::UserCouponStatus::Used) => "USED",
        Ok(pb::UserCouponStatus::Expired) => "EXPIRED",
        _ => "UNKNOWN",
    }
    .to_owned()
}

fn optional_time(ts: Option<&mesh_proto::Timestamp>) -> Option<String> {
    ts.map(|t| timestamp(Some(t)))
}

impl From<pb::Coupon> for CouponBody {
    fn from(c: pb::Coupon) -> Self {
        Self {
            id: c.id,
            name: c.name,
            discount_type: discount_type_name(c.discount_type),
            discount_value: c.discount_value,
            max_discount: c.max_discount,
            total_quantity: c.total_quantity,
            issued_quantity: c.issued_quantity,
            remaining_quantity: c.remaining_quantity,
            issue_starts_at: optional_time(c.issue_starts_at.as_ref()),
            issue_ends_at: optional_time(c.issue_ends_at.as_ref()),
            valid_days: c.valid_days,
            created_at: timestamp(c.created_at.as_ref()),
        }
    }
}

impl From<pb::UserCoupon> for UserCouponBody {
    fn from(u: pb::UserCoupon) -> Self {
        Self {
            user_coupon_id: u.user_coupon_id,
            coupon_id: u.coupon_id,
            user_id: u.user_id,
            sequence: u.sequence,
            status: status_name(u.status),
            issued_at: timestamp(u.issued_at.as_ref()),
            expires_at: timestamp(u.expires_at.as_ref()),
            name: u.name,
            discount_type: discount_type_name(u.discount_type),
            discount_value: u.discount_value,
            max_discount: u.max_discount,
            used_at: optional_time(u.used_at.as_ref()),
            order_id: u.order_id,
        }
    }
}

fn parse_time(raw: Option<&str>, field: &str) -> Result<Option<mesh_proto::Timestamp>, Problem> {
    raw.map(|text| {
        chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| kit::time::to_proto(t.with_timezone(&chrono::Utc)))
            .map_err(|_| Problem::validation(field, format!("{field} must be an RFC 3339 timestamp")))
    })
    .transpose()
}

#[utoipa::path(post, path = "/v1/coupons", request_body = CreateCoupon, tag = "coupons",
    responses((status = 201, body = CouponBody), (status = 400, body = ProblemDocument, content_type = "application/problem+json")))]
pub async fn create_coupon(
    State(state): State<AppState>,
    actor: Actor,
    JsonBody(body): JsonBody<CreateCoupon>,
) -> Result<Response, Problem> {
    actor.require_admin()?;
    let discount_type = match body.discount_type.as_str() {
        "FIXED" => pb::DiscountType::Fixed,
        "PERCENT" => pb::DiscountType::Percent,
        _ => return Err(Problem::validation("discountType", "discountType must be FIXED or PERCENT")),
    };
    // 0 would mean "the default" on the wire; an explicit 0 is out of range.
    if body.valid_days == Some(0) {
        return Err(Problem::validation("validDays", "validDays must be 1..=3650"));
    }
    let req = pb::CreateCouponRequest {
        name: body.name,
        discount_type: discount_type as i32,
        discount_value: body.discount_value,
        max_discount: body.max_discount,
        total_quantity: body.total_quantity,
        issue_starts_at: parse_time(body.issue_starts_at.as_deref(), "issueStartsAt")?,
        issue_ends_at: parse_time(body.issue_ends_at.as_deref(), "issueEndsAt")?,
        valid_days: body.valid_days.unwrap_or(0),
    };
    let coupon = state.upstreams.coupon()?.create_coupon(grpc_request(req)).await?.into_inner();
    Ok((StatusCode::CREATED, Json(CouponBody::from(coupon))).into_response())
}

#[utoipa::path(get, path = "/v1/coupons", tag = "coupons",
    params(("sort" = Option<String>, Query, description = "newest (the default and only order)", pattern = "^newest$"),
           ("page" = Option<i64>, Query, description = "Zero-based page", minimum = 0, maximum = 100_000),
           ("size" = Option<i64>, Query, description = "Page size, default 20", minimum = 1, maximum = 100)),
    responses((status = 200, body = CouponPage), (status = 400, body = ProblemDocument, content_type = "application/problem+json")))]
pub async fn list_coupons(State(state): State<AppState>, query: QueryPairs) -> Result<Json<CouponPage>, Problem> {
    if query.get("sort").is_some_and(|sort| sort != "newest") {
        return Err(Problem::validation("sort", "sort must be newest"));
    }
    // The page bound is coupon-svc's too; checked here so a bad one never leaves the gateway.
    let page = query.int("page", 0, 0..=100_000)?;
    let size = query.int("size", 20, 1..=100)?;
    let req = pb::ListCouponsRequest { page, size };
    let list = state.upstreams.coupon()?.list_coupons(grpc_request(req)).await?.into_inner();
    Ok(Json(CouponPage {
        items: list.items.into_iter().map(CouponBody::from).collect(),
        page,
        size,
        total_items: list.total_items,
    }))
}

#[utoipa::path(get, path = "/v1/coupons/{couponId}", tag = "coupons",
    params(("couponId" = i64, Path, description = "Coupon id", minimum = 1)),
    responses((status = 200, body = CouponBody),
              (status = 400, body = ProblemDocument, content_type = "application/problem+json"),
              (status = 404, body = ProblemDocument, content_type = "application/problem+json")))]
pub async fn get_coupon(
    State(state): State<AppState>,
    Path(coupon_id): Path<String>,
) -> Result<Json<CouponBody>, Problem> {
    let id = positive_id(&coupon_id, "couponId")?;
    let coupon = state.upstreams.coupon()?.get_coupon(grpc_request(pb::GetCouponRequest { id })).await?.into_inner();
    Ok(Json(CouponBody::from(coupon)))
}

#[utoipa::path(post, path = "/v1/coupons/{couponId}/issue", request_body = IssueCoupon, tag = "coupons",
    params(("couponId" = i64, Path, description = "Coupon id", minimum = 1)),
    responses((status = 201, body = IssuedCoupon),
              (status = 400, body = ProblemDocument, content_type = "application/problem+json"),
              (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
              (status = 409, body = ProblemDocument, content_type = "application/problem+json",
               description = "COUPON_SOLD_OUT, COUPON_ALREADY_ISSUED or COUPON_NOT_ISSUABLE")))]
pub async fn issue_coupon(
    State(state): State<AppState>,
    actor: Actor,
    Path(coupon_id): Path<String>,
    JsonBody(body): JsonBody<IssueCoupon>,
) -> Result<Response, Problem> {
    let coupon_id = positive_id(&coupon_id, "couponId")?;
    actor.act_for(body.user_id)?;
    let req = pb::IssueCouponRequest { coupon_id, user_id: body.user_id };
    let u = state.upstreams.coupon()?.issue_coupon(grpc_request(req)).await?.into_inner();
    let issued = IssuedCoupon {
        user_coupon_id: u.user_coupon_id,
        coupon_id: u.coupon_id,
        user_id: u.user_id,
        sequence: u.sequence,
        status: status_name(u.status),
        issued_at: timestamp(u.issued_at.as_ref()),
        expires_at: timestamp(u.expires_at.as_ref()),
    };
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}

#[utoipa::path(get, path = "/v1/users/{userId}/coupons", tag = "coupons",
    params(("userId" = i64, Path, description = "User id", minimum = 1)),
    responses((status = 200, body = UserCoupons), (status = 400, body = ProblemDocument, content_type = "application/problem+json")))]
pub async fn user_coupons(
    State(state): State<AppState>,
    actor: Actor,
    Path(user_id): Path<String>,
) -> Result<Json<UserCoupons>, Problem> {
    let user_id = positive_id(&user_id, "userId")?;
    actor.act_for(user_id)?;
    let list =
        state.upstreams.coupon()?.list_user_coupons(grpc_request(pb::ListUserCouponsRequest { user_id })).await?;
    Ok(Json(UserCoupons { items: list.into_inner().items.into_iter().map(UserCouponBody::from).collect() }))
}
