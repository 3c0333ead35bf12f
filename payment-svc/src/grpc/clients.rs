//! The saga's participants as tonic clients: one call per step and per compensation, each
//! carrying its saga coordinates, each with a deadline (the channel's), and every error
//! reduced to [`StepError`] (business rejection or transient).

use std::collections::HashSet;

use kit::grpc::{ClientSettings, MeshChannel, channel};
use kit::saga::SagaRef;
use kit::{ErrorCode, ServiceError};
use mesh_proto::coupon::v1::{self as coupon_pb, coupon_service_client::CouponServiceClient};
use mesh_proto::inventory::v1::{self as inventory_pb, inventory_service_client::InventoryServiceClient};
use mesh_proto::point::v1::{self as point_pb, point_service_client::PointServiceClient};
use mesh_proto::saga::v1::SagaEffectsRequest;
use tonic::Status;

use crate::domain::{Failure, OrderLine};
use crate::saga::StepError;

#[derive(Clone)]
pub struct Participants {
    inventory: InventoryServiceClient<MeshChannel>,
    coupon: CouponServiceClient<MeshChannel>,
    point: PointServiceClient<MeshChannel>,
}

fn step_error(status: &Status) -> StepError {
    let err = ServiceError::from_status(status);
    match err.code {
        ErrorCode::Unavailable
        | ErrorCode::Overloaded
        | ErrorCode::Timeout
        | ErrorCode::Internal
        | ErrorCode::RateLimited => StepError::Transient { code: err.code, detail: err.detail },
        code => StepError::Rejected(Failure {
            code: code.as_str().to_owned(),
            product_id: err.product_id,
            detail: err.detail,
        }),
    }
}

impl Participants {
    /// Lazy channels: payment-svc starts even when a participant is not up yet.
    pub fn connect(inventory: &str, coupon: &str, point: &str, settings: &ClientSettings) -> anyhow::Result<Self> {
        let named = |upstream: &str| ClientSettings { upstream: upstream.to_owned(), ..settings.clone() };
        Ok(Self {
            inventory: InventoryServiceClient::new(channel(inventory, &named("inventory"))?),
            coupon: CouponServiceClient::new(channel(coupon, &named("coupon"))?),
            point: PointServiceClient::new(channel(point, &named("point"))?),
        })
    }

    /// Reserves every line; answers each line's unit price.
    pub async fn reserve_stock(&self, saga: &SagaRef, lines: &[OrderLine]) -> Result<Vec<(i64, i64)>, StepError> {
        let request = inventory_pb::ReserveStockRequest {
            saga: Some(saga.to_proto()),
            lines: lines
                .iter()
                .map(|l| inventory_pb::StockLine { product_id: l.product_id, quantity: l.quantity })
                .collect(),
        };
        let reply = self.inventory.clone().reserve_stock(request).await.map_err(|s| step_error(&s))?;
        Ok(reply.into_inner().lines.into_iter().map(|l| (l.product_id, l.unit_price)).collect())
    }

    pub async fn release_stock(&self, saga: &SagaRef) -> Result<(), StepError> {
        let request = inventory_pb::ReleaseStockRequest { saga: Some(saga.to_proto()) };
        self.inventory.clone().release_stock(request).await.map_err(|s| step_error(&s))?;
        Ok(())
    }

    /// Marks the coupon used for the order; answers the discount on `order_amount`.
    pub async fn use_coupon(
        &self,
        saga: &SagaRef,
        user_coupon_id: i64,
        user_id: i64,
        order_id: &str,
        order_amount: i64,
    ) -> Result<i64, StepError> {
        let request = coupon_pb::UseCouponRequest {
            saga: Some(saga.to_proto()),
            user_coupon_id,
            user_id,
            order_id: order_id.to_owned(),
            order_amount,
        };
        let reply = self.coupon.clone().use_coupon(request).await.map_err(|s| step_error(&s))?;
        Ok(reply.into_inner().discount_amount)
    }

    pub async fn restore_coupon(&self, saga: &SagaRef, user_coupon_id: i64) -> Result<(), StepError> {
        let request = coupon_pb::RestoreCouponRequest { saga: Some(saga.to_proto()), user_coupon_id };
        self.coupon.clone().restore_coupon(request).await.map_err(|s| step_error(&s))?;
        Ok(())
    }

    pub async fn pay(&self, saga: &SagaRef, user_id: i64, order_id: &str, amount: i64) -> Result<(), StepError> {
        let request =
            point_pb::PayRequest { saga: Some(saga.to_proto()), user_id, order_id: order_id.to_owned(), amount };
        self.point.clone().pay(request).await.map_err(|s| step_error(&s))?;
        Ok(())
    }

    pub async fn refund(&self, saga: &SagaRef, user_id: i64, order_id: &str) -> Result<(), StepError> {
        let request = point_pb::RefundRequest { saga: Some(saga.to_proto()), user_id, order_id: order_id.to_owned() };
        self.point.clone().refund(request).await.map_err(|s| step_error(&s))?;
        Ok(())
    }

    /// Of `saga_ids` (at most `kit::saga::MAX_EFFECTS_ASKED`), which hold each participant's
    /// effect now, as the participants themselves see it (reconciliation).
    pub async fn effects(&self, saga_ids: &[String]) -> Result<HeldEffects, tonic::Status> {
        let request = || SagaEffectsRequest { saga_ids: saga_ids.to_vec() };
        let (mut inventory, mut coupon, mut point) = (self.inventory.clone(), self.coupon.clone(), self.point.clone());
        let (reserved, coupons, paid) = tokio::try_join!(
            inventory.saga_effects(request()),
            coupon.saga_effects(request()),
            point.saga_effects(request()),
        )?;
        let held = |response: tonic::Response<mesh_proto::saga::v1::SagaEffectsResponse>| {
            response.into_inner().effects.into_iter().filter(|e| e.held).map(|e| e.saga_id).collect()
        };
        Ok(HeldEffects { reserved: held(reserved), coupon_used: held(coupons), paid: held(paid) })
    }
}

/// The sagas whose effect stands at each participant.
#[derive(Debug, Default)]
pub struct HeldEffects {
    pub reserved: HashSet<String>,
    pub coupon_used: HashSet<String>,
    pub paid: HashSet<String>,
}
