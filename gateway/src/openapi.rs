//! The OpenAPI 3.1 document of the public contract, generated from the handlers' annotations.

use utoipa::OpenApi;

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
    tags(
        (name = "products", description = "Products and stock (inventory-svc)"),
        (name = "points", description = "Point balances and ledger (point-svc)"),
        (name = "coupons", description = "First-come coupons (coupon-svc)"),
        (name = "orders", description = "Orders and the checkout saga (payment-svc)")
    )
)]
pub struct ApiDoc;
