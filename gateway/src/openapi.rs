//! The OpenAPI 3.1 document of the public contract, generated from the handlers' annotations.

use utoipa::OpenApi;

use crate::problem::ProblemDocument;
use crate::routes::products;

#[derive(OpenApi)]
#[openapi(
    info(title = "commerce mesh", description = "The public REST contract of the commerce mesh (API.md).", version = "1"),
    paths(products::create_product, products::list_products, products::get_product, products::set_stock),
    components(schemas(ProblemDocument, products::ProductBody, products::ProductPage, products::CreateProduct, products::SetStock)),
    tags((name = "products", description = "Products and stock (inventory-svc)"))
)]
pub struct ApiDoc;
