//! The OpenAPI 3.1 document of the public contract, generated from the handlers' annotations.

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{Modify, OpenApi};

use crate::auth::actor::public_read;
use crate::problem::ProblemDocument;
use crate::routes::{coupons, orders, points, products};

#[derive(OpenApi)]
#[openapi(
    info(title = "commerce mesh", description = "The public REST contract of the commerce mesh (API.md).", version = "1"),
    paths(
        products::create_product, products::list_products, products::get_product, products::set_stock,
        points::get_balance, points::charge, points::use_points, points::history,
        coupons::create_coupon, coupons::list_coupons, coupons::get_coupon, coupons::issue_coupon,
        coupons::user_coupons,
        orders::place_order, orders::get_order, orders::user_orders, orders::change_order_status
    ),
    components(schemas(ProblemDocument, products::ProductBody, products::ProductPage, products::CreateProduct, products::SetStock,
        points::BalanceBody, points::PointsChange, points::PointsCharge, points::LedgerEntryBody, points::History,
        coupons::CreateCoupon, coupons::CouponBody, coupons::CouponPage, coupons::IssueCoupon, coupons::IssuedCoupon, coupons::UserCouponBody, coupons::UserCoupons,
        orders::PlaceOrder, orders::PlaceOrderLine, orders::ChangeOrderStatus, orders::OrderBody, orders::OrderLineBody,
        orders::OrderStepBody, orders::UserOrders)),
    modifiers(&BearerSecurity),
    tags(
        (name = "products", description = "Products and stock (inventory-svc)"),
        (name = "points", description = "Point balances and ledger (point-svc)"),
        (name = "coupons", description = "First-come coupons (coupon-svc)"),
        (name = "orders", description = "Orders and the checkout saga (payment-svc)")
    )
)]
pub struct ApiDoc;

/// The bearer scheme (so `/docs` offers "Authorize"), and on every operation but the public
/// reads its requirement and the 401/403 answers. Derived from the same rule the gateway
/// enforces ([`public_read`]), so the document cannot drift from it.
struct BearerSecurity;

impl Modify for BearerSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut jwt = Http::new(HttpAuthScheme::Bearer);
        jwt.bearer_format = Some("JWT".into());
        jwt.description = Some("A JWT (EdDSA, ES256 or RS256): `sub` is the user id, `roles` may hold `admin`.".into());
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(jwt));
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                (http::Method::GET, &mut item.get),
                (http::Method::POST, &mut item.post),
                (http::Method::PUT, &mut item.put),
                (http::Method::DELETE, &mut item.delete),
                (http::Method::PATCH, &mut item.patch),
            ];
            for (method, operation) in operations {
                if let Some(operation) = operation.as_mut().filter(|_| !public_read(&method, path)) {
                    require_bearer(operation);
                }
            }
        }
    }
}

fn require_bearer(operation: &mut Operation) {
    operation.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
    let problem = || ContentBuilder::new().schema(Some(RefOr::Ref(Ref::from_schema_name("ProblemDocument")))).build();
    let answers = [
        (
            "401",
            "UNAUTHENTICATED: no bearer token, or one that is malformed, badly signed, expired or not yet valid; `WWW-Authenticate: Bearer`",
        ),
        ("403", "FORBIDDEN: the token's user acts for another user, or a non-admin calls an admin route"),
    ];
    for (status, description) in answers {
        let response =
            ResponseBuilder::new().description(description).content("application/problem+json", problem()).build();
        operation.responses.responses.entry(status.to_owned()).or_insert(RefOr::T(response));
    }
}
