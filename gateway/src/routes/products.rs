//! `/v1/products`: inventory-svc behind REST.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mesh_proto::inventory::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AppState, etag, timestamp};
use crate::auth::Actor;
use crate::context::grpc_request;
use crate::extract::{JsonBody, QueryPairs, if_match_version, positive_id};
use crate::problem::{Problem, ProblemDocument};

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductBody {
    pub id: i64,
    pub name: String,
    pub price: i64,
    pub stock: i64,
    /// Grows by one with every change of the product, orders included.
    pub version: i64,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl From<pb::Product> for ProductBody {
    fn from(p: pb::Product) -> Self {
        Self {
            id: p.id,
            name: p.name,
            price: p.price,
            stock: p.stock,
            version: p.version,
            created_at: timestamp(p.created_at.as_ref()),
            updated_at: timestamp(p.updated_at.as_ref()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductPage {
    pub items: Vec<ProductBody>,
    pub page: i64,
    pub size: i64,
    pub total_items: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateProduct {
    /// 1..=200 characters, not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// Won.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub price: i64,
    /// Units.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub stock: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SetStock {
    /// The new sellable stock.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub stock: i64,
}

fn with_etag(status: StatusCode, product: pb::Product, location: bool) -> Response {
    let tag = etag(product.version);
    let id = product.id;
    let mut response = (status, Json(ProductBody::from(product))).into_response();
    response.headers_mut().insert(header::ETAG, tag);
    if location && let Ok(value) = HeaderValue::from_str(&format!("/v1/products/{id}")) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

#[utoipa::path(post, path = "/v1/products", request_body = CreateProduct, tag = "products",
    responses((status = 201, body = ProductBody, description = "Created; `Location` and `ETag` set"),
              (status = 400, body = ProblemDocument, content_type = "application/problem+json")))]
pub async fn create_product(
    State(state): State<AppState>,
    actor: Actor,
    JsonBody(body): JsonBody<CreateProduct>,
) -> Result<Response, Problem> {
    actor.require_admin()?;
    let req = pb::CreateProductRequest { name: body.name, price: body.price, stock: body.stock };
    let product = state.upstreams.inventory()?.create_product(grpc_request(req)).await?.into_inner();
    Ok(with_etag(StatusCode::CREATED, product, true))
}

#[utoipa::path(get, path = "/v1/products", tag = "products",
    params(("name" = Option<String>, Query, description = "Case-insensitive substring of the name", max_length = 200),
           ("sort" = Option<String>, Query, description = "id (default), name, price, -price, newest",
            pattern = "^(id|name|price|-price|newest)$"),
           ("page" = Option<i64>, Query, description = "Zero-based page", minimum = 0, maximum = 10_000_000),
           ("size" = Option<i64>, Query, description = "Page size, default 20", minimum = 1, maximum = 100)),
    responses((status = 200, body = ProductPage), (status = 400, body = ProblemDocument, content_type = "application/problem+json")))]
pub async fn list_products(State(state): State<AppState>, query: QueryPairs) -> Result<Json<ProductPage>, Problem> {
    let sort = match query.get("sort").unwrap_or("id") {
        "id" => pb::ProductSort::Id,
        "name" => pb::ProductSort::Name,
        "price" => pb::ProductSort::PriceAsc,
        "-price" => pb::ProductSort::PriceDesc,
        "newest" => pb::ProductSort::Newest,
        _ => return Err(Problem::validation("sort", "sort must be one of id, name, price, -price, newest")),
    };
    let req = pb::ListProductsRequest {
        name_contains: query.get("name").unwrap_or("").to_owned(),
        sort: sort as i32,
        page: query.int("page", 0, 0..=10_000_000)?,
        size: query.int("size", 20, 1..=100)?,
    };
    let page = state.upstreams.inventory()?.list_products(grpc_request(req)).await?.into_inner();
    Ok(Json(ProductPage {
        items: page.items.into_iter().map(ProductBody::from).collect(),
        page: page.page,
        size: page.size,
        total_items: page.total_items,
    }))
}

#[utoipa::path(get, path = "/v1/products/{id}", tag = "products",
    params(("id" = i64, Path, description = "Product id", minimum = 1)),
    responses((status = 200, body = ProductBody, description = "`ETag` set"),
              (status = 400, body = ProblemDocument, content_type = "application/problem+json"),
              (status = 404, body = ProblemDocument, content_type = "application/problem+json")))]
pub async fn get_product(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, Problem> {
    let id = positive_id(&id, "id")?;
    let product =
        state.upstreams.inventory()?.get_product(grpc_request(pb::GetProductRequest { id })).await?.into_inner();
    Ok(with_etag(StatusCode::OK, product, false))
}

#[utoipa::path(put, path = "/v1/products/{id}/stock", request_body = SetStock, tag = "products",
    params(("id" = i64, Path, description = "Product id", minimum = 1),
           ("If-Match" = Option<String>, Header, description = "Only if this ETag (\"<version>\") is current",
            pattern = r#"^("[0-9]{1,18}"|[0-9]{1,18}|\*)$"#)),
    responses((status = 200, body = ProductBody),
              (status = 400, body = ProblemDocument, content_type = "application/problem+json"),
              (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
              (status = 412, body = ProblemDocument, content_type = "application/problem+json", description = "VERSION_MISMATCH")))]
pub async fn set_stock(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<SetStock>,
) -> Result<Response, Problem> {
    actor.require_admin()?;
    let product_id = positive_id(&id, "id")?;
    let expected_version = if_match_version(&headers)?;
    let req = pb::SetStockRequest { product_id, stock: body.stock, expected_version };
    let product = state.upstreams.inventory()?.set_stock(grpc_request(req)).await?.into_inner();
    Ok(with_etag(StatusCode::OK, product, false))
}
