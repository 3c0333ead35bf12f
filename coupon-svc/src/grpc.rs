//! The tonic face of coupon-svc: proto in, domain types out, and back.

use kit::ServiceError;
use kit::saga::{Op, SagaRef};
use mesh_proto::coupon::v1 as pb;
use pb::coupon_service_server::CouponService;
use tonic::{Request, Response, Status};

use crate::domain::{
    Coupon, CouponError, CouponId, Discount, IssueWindow, NewCoupon, PageRequest, UserCoupon, UserCouponStatus, UserId,
};
use crate::service::Coupons;

pub use pb::coupon_service_server::CouponServiceServer;

pub struct CouponGrpc {
    coupons: Coupons,
}

impl CouponGrpc {
    pub fn new(coupons: Coupons) -> Self {
        Self { coupons }
    }

    pub fn into_server(self) -> CouponServiceServer<Self> {
        CouponServiceServer::new(self)
    }
}

fn status(err: CouponError) -> Status {
    ServiceError::from(err).into()
}

fn discount_type(discount: Discount) -> pb::DiscountType {
    match discount {
        Discount::Fixed(_) => pb::DiscountType::Fixed,
        Discount::Percent { .. } => pb::DiscountType::Percent,
    }
}

fn coupon_to_proto(c: Coupon) -> pb::Coupon {
    pb::Coupon {
        id: c.id,
        name: c.name,
        discount_type: discount_type(c.discount) as i32,
        discount_value: c.discount.value(),
        max_discount: c.discount.cap(),
        total_quantity: c.total_quantity,
        issued_quantity: c.issued_quantity,
        remaining_quantity: c.total_quantity - c.issued_quantity,
        issue_starts_at: c.window.starts_at.map(kit::time::to_proto),
        issue_ends_at: c.window.ends_at.map(kit::time::to_proto),
        valid_days: c.valid_days,
        created_at: Some(kit::time::to_proto(c.created_at)),
    }
}

fn user_coupon_to_proto(u: UserCoupon) -> pb::UserCoupon {
    let status = match u.status {
        UserCouponStatus::Available => pb::UserCouponStatus::Available,
        UserCouponStatus::Used => pb::UserCouponStatus::Used,
        UserCouponStatus::Expired => pb::UserCouponStatus::Expired,
    };
    pb::UserCoupon {
        user_coupon_id: u.id,
        coupon_id: u.coupon_id,
        user_id: u.user_id,
        sequence: u.sequence,
        status: status as i32,
        issued_at: Some(kit::time::to_proto(u.issued_at)),
        expires_at: Some(kit::time::to_proto(u.expires_at)),
        name: u.name,
        discount_type: discount_type(u.discount) as i32,
        discount_value: u.discount.value(),
        max_discount: u.discount.cap(),
        used_at: u.used_at.map(kit::time::to_proto),
        order_id: u.order_id,
    }
}

fn new_coupon(req: pb::CreateCouponRequest) -> Result<NewCoupon, CouponError> {
    let kind = match pb::DiscountType::try_from(req.discount_type) {
        Ok(pb::DiscountType::Fixed) => "FIXED",
        Ok(pb::DiscountType::Percent) => "PERCENT",
        _ => "",
    };
    let discount = Discount::parse(kind, req.discount_value, req.max_discount)?;
    let time = |ts: Option<&mesh_proto::Timestamp>, field: &'static str| {
        ts.map(|t| kit::time::from_proto(t).ok_or_else(|| CouponError::validation(field, "not a valid timestamp")))
            .transpose()
    };
    let window = IssueWindow::parse(
        time(req.issue_starts_at.as_ref(), "issueStartsAt")?,
        time(req.issue_ends_at.as_ref(), "issueEndsAt")?,
    )?;
    NewCoupon::parse(req.name, discount, req.total_quantity, window, req.valid_days)
}

#[tonic::async_trait]
impl CouponService for CouponGrpc {
    async fn create_coupon(&self, request: Request<pb::CreateCouponRequest>) -> Result<Response<pb::Coupon>, Status> {
        let new = new_coupon(request.into_inner()).map_err(status)?;
        let coupon = self.coupons.create(new).await.map_err(status)?;
        Ok(Response::new(coupon_to_proto(coupon)))
    }

    async fn get_coupon(&self, request: Request<pb::GetCouponRequest>) -> Result<Response<pb::Coupon>, Status> {
        let id = CouponId::parse(request.into_inner().id, "couponId").map_err(status)?;
        Ok(Response::new(coupon_to_proto(self.coupons.get(id).await.map_err(status)?)))
    }

    async fn list_coupons(
        &self,
        request: Request<pb::ListCouponsRequest>,
    ) -> Result<Response<pb::ListCouponsResponse>, Status> {
        let req = request.into_inner();
        let page = PageRequest::parse(req.page, req.size).map_err(status)?;
        let (items, total_items) = self.coupons.list(page).await.map_err(status)?;
        Ok(Response::new(pb::ListCouponsResponse {
            items: items.into_iter().map(coupon_to_proto).collect(),
            total_items,
        }))
    }

    async fn issue_coupon(&self, request: Request<pb::IssueCouponRequest>) -> Result<Response<pb::UserCoupon>, Status> {
        let req = request.into_inner();
        let id = CouponId::parse(req.coupon_id, "couponId").map_err(status)?;
        let user = UserId::parse(req.user_id).map_err(status)?;
        let issued = self.coupons.issue(id, user).await.map_err(status)?;
        Ok(Response::new(user_coupon_to_proto(issued)))
    }

    async fn list_user_coupons(
        &self,
        request: Request<pb::ListUserCouponsRequest>,
    ) -> Result<Response<pb::ListUserCouponsResponse>, Status> {
        let user = UserId::parse(request.into_inner().user_id).map_err(status)?;
        let items = self.coupons.user_coupons(user).await.map_err(status)?;
        Ok(Response::new(pb::ListUserCouponsResponse { items: items.into_iter().map(user_coupon_to_proto).collect() }))
    }

    async fn use_coupon(
        &self,
        request: Request<pb::UseCouponRequest>,
    ) -> Result<Response<pb::UseCouponResponse>, Status> {
        let req = request.into_inner();
        let saga = SagaRef::from_proto(req.saga.as_ref(), Op::Action)?;
        let user = UserId::parse(req.user_id).map_err(status)?;
        let user_coupon_id = CouponId::parse(req.user_coupon_id, "userCouponId").map_err(status)?.get();
        if !(0..=1_000_000_000_000).contains(&req.order_amount) {
            return Err(status(CouponError::validation("orderAmount", "orderAmount must be 0..=1000000000000")));
        }
        if req.order_id.is_empty() || req.order_id.len() > 64 {
            return Err(status(CouponError::validation("orderId", "orderId must be 1..=64 characters")));
        }
        let used = self
            .coupons
            .use_coupon(&saga, user_coupon_id, user, &req.order_id, req.order_amount)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::UseCouponResponse { discount_amount: used.discount, replayed: used.replayed }))
    }

    async fn restore_coupon(
        &self,
        request: Request<pb::RestoreCouponRequest>,
    ) -> Result<Response<pb::RestoreCouponResponse>, Status> {
        let saga = SagaRef::from_proto(request.into_inner().saga.as_ref(), Op::Compensate)?;
        let restored = self.coupons.restore(&saga).await.map_err(status)?;
        Ok(Response::new(pb::RestoreCouponResponse {
            restored: restored.restored,
            null_compensation: restored.null_compensation,
        }))
    }
    async fn saga_effects(
        &self,
        request: Request<mesh_proto::saga::v1::SagaEffectsRequest>,
    ) -> Result<Response<mesh_proto::saga::v1::SagaEffectsResponse>, Status> {
        let asked = kit::saga::effects_asked(&request.into_inner())?;
        let held = self.coupons.used_by(&asked).await.map_err(status)?;
        Ok(Response::new(kit::saga::effects_held(held)))
    }
}
