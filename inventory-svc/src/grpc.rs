//! The tonic face of inventory-svc: proto in, domain types out, and back. The one place
//! that knows tonic; every error leaves through `ServiceError` (kit's mapping table).

use kit::ServiceError;
use kit::saga::{Op, SagaRef};
use mesh_proto::inventory::v1 as pb;
use pb::inventory_service_server::InventoryService;
use tonic::{Request, Response, Status};

use crate::domain::{
    InventoryError, NewProduct, PageRequest, Price, Product, ProductId, ProductImport, ProductName, ProductQuery,
    ProductSort, Quantity, ReservationRequest, StockLevel, StockLine,
};
use crate::service::Inventory;

pub use pb::inventory_service_server::InventoryServiceServer;

pub struct InventoryGrpc {
    inventory: Inventory,
}

impl InventoryGrpc {
    pub fn new(inventory: Inventory) -> Self {
        Self { inventory }
    }

    pub fn into_server(self) -> InventoryServiceServer<Self> {
        InventoryServiceServer::new(self)
    }
}

fn status(err: InventoryError) -> Status {
    ServiceError::from(err).into()
}

fn to_proto(p: Product) -> pb::Product {
    pb::Product {
        id: p.id,
        name: p.name,
        price: p.price,
        stock: p.stock,
        version: p.version,
        created_at: Some(kit::time::to_proto(p.created_at)),
        updated_at: Some(kit::time::to_proto(p.updated_at)),
    }
}

fn new_product(req: pb::CreateProductRequest) -> Result<NewProduct, InventoryError> {
    Ok(NewProduct {
        name: ProductName::parse(req.name)?,
        price: Price::parse(req.price)?,
        stock: StockLevel::parse(req.stock)?,
    })
}

fn sort_from_proto(raw: i32) -> Result<ProductSort, InventoryError> {
    Ok(match pb::ProductSort::try_from(raw) {
        Ok(pb::ProductSort::Unspecified | pb::ProductSort::Id) => ProductSort::Id,
        Ok(pb::ProductSort::Name) => ProductSort::Name,
        Ok(pb::ProductSort::PriceAsc) => ProductSort::PriceAsc,
        Ok(pb::ProductSort::PriceDesc) => ProductSort::PriceDesc,
        Ok(pb::ProductSort::Newest) => ProductSort::Newest,
        Err(_) => return Err(InventoryError::validation("sort", "unknown sort")),
    })
}

fn saga_ref(step: Option<&mesh_proto::saga::v1::SagaStep>, op: Op) -> Result<SagaRef, Status> {
    SagaRef::from_proto(step, op).map_err(Status::from)
}

#[tonic::async_trait]
impl InventoryService for InventoryGrpc {
    async fn create_product(
        &self,
        request: Request<pb::CreateProductRequest>,
    ) -> Result<Response<pb::Product>, Status> {
        let new = new_product(request.into_inner()).map_err(status)?;
        let product = self.inventory.create(new).await.map_err(status)?;
        Ok(Response::new(to_proto(product)))
    }

    async fn import_products(
        &self,
        request: Request<pb::ImportProductsRequest>,
    ) -> Result<Response<pb::ImportProductsResponse>, Status> {
        let import = request
            .into_inner()
            .products
            .into_iter()
            .map(new_product)
            .collect::<Result<Vec<_>, _>>()
            .and_then(ProductImport::parse)
            .map_err(status)?;
        let ids = self.inventory.import(&import).await.map_err(status)?;
        Ok(Response::new(pb::ImportProductsResponse { ids }))
    }

    async fn get_product(&self, request: Request<pb::GetProductRequest>) -> Result<Response<pb::Product>, Status> {
        let id = ProductId::parse(request.into_inner().id, "id").map_err(status)?;
        let product = self.inventory.get(id).await.map_err(status)?;
        Ok(Response::new(to_proto(product)))
    }

    async fn list_products(
        &self,
        request: Request<pb::ListProductsRequest>,
    ) -> Result<Response<pb::ListProductsResponse>, Status> {
        let req = request.into_inner();
        let query = (|| {
            let page = PageRequest::parse(req.page, req.size)?;
            ProductQuery::parse(req.name_contains, sort_from_proto(req.sort)?, page)
        })()
        .map_err(status)?;
        let page = self.inventory.list(&query).await.map_err(status)?;
        Ok(Response::new(pb::ListProductsResponse {
            items: page.items.into_iter().map(to_proto).collect(),
            page: page.page as i64,
            size: page.size as i64,
            total_items: page.total_items as i64,
        }))
    }

    async fn set_stock(&self, request: Request<pb::SetStockRequest>) -> Result<Response<pb::Product>, Status> {
        let req = request.into_inner();
        let id = ProductId::parse(req.product_id, "id").map_err(status)?;
        let stock = StockLevel::parse(req.stock).map_err(status)?;
        let product = self.inventory.set_stock(id, stock, req.expected_version).await.map_err(status)?;
        Ok(Response::new(to_proto(product)))
    }

    async fn reserve_stock(
        &self,
        request: Request<pb::ReserveStockRequest>,
    ) -> Result<Response<pb::ReserveStockResponse>, Status> {
        let req = request.into_inner();
        let saga = saga_ref(req.saga.as_ref(), Op::Action)?;
        let lines = req
            .lines
            .iter()
            .map(|l| {
                Ok(StockLine {
                    product_id: ProductId::parse(l.product_id, "productId")?,
                    quantity: Quantity::parse(l.quantity)?,
                })
            })
            .collect::<Result<Vec<_>, InventoryError>>()
            .and_then(ReservationRequest::parse)
            .map_err(status)?;
        let reserved = self.inventory.reserve(&saga, &lines).await.map_err(status)?;
        Ok(Response::new(pb::ReserveStockResponse {
            lines: reserved
                .lines
                .into_iter()
                .map(|l| pb::ReservedLine { product_id: l.product_id, quantity: l.quantity, unit_price: l.unit_price })
                .collect(),
            replayed: reserved.replayed,
        }))
    }

    async fn release_stock(
        &self,
        request: Request<pb::ReleaseStockRequest>,
    ) -> Result<Response<pb::ReleaseStockResponse>, Status> {
        let saga = saga_ref(request.into_inner().saga.as_ref(), Op::Compensate)?;
        let released = self.inventory.release(&saga).await.map_err(status)?;
        Ok(Response::new(pb::ReleaseStockResponse {
            released_units: released.units,
            null_compensation: released.null_compensation,
        }))
    }
    async fn saga_effects(
        &self,
        request: Request<mesh_proto::saga::v1::SagaEffectsRequest>,
    ) -> Result<Response<mesh_proto::saga::v1::SagaEffectsResponse>, Status> {
        let asked = kit::saga::effects_asked(&request.into_inner())?;
        let held = self.inventory.reserved_by(&asked).await.map_err(status)?;
        Ok(Response::new(kit::saga::effects_held(held)))
    }
}
