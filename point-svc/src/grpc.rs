//! The tonic face of point-svc: proto in, domain types out, and back.

use kit::ServiceError;
use kit::grpc::{idempotency_key, respond};
use kit::saga::{Op, SagaRef};
use mesh_proto::point::v1 as pb;
use pb::point_service_server::PointService;
use tonic::{Request, Response, Status};

use crate::domain::{
    Balance, ChargeAmount, DebitAmount, EntryType, HistoryLimit, LedgerEntry, OrderRef, PayAmount, PointError, UserId,
};
use crate::service::Points;

pub use pb::point_service_server::PointServiceServer;

pub struct PointGrpc {
    points: Points,
}

impl PointGrpc {
    pub fn new(points: Points) -> Self {
        Self { points }
    }

    pub fn into_server(self) -> PointServiceServer<Self> {
        PointServiceServer::new(self)
    }
}

fn status(err: PointError) -> Status {
    ServiceError::from(err).into()
}

fn balance_to_proto(b: Balance) -> pb::Balance {
    pb::Balance { user_id: b.user_id, balance: b.balance, updated_at: b.updated_at.map(kit::time::to_proto) }
}

fn entry_to_proto(e: LedgerEntry) -> pb::LedgerEntry {
    let entry_type = match e.entry_type {
        EntryType::Charge => pb::EntryType::Charge,
        EntryType::Use => pb::EntryType::Use,
        EntryType::Payment => pb::EntryType::Payment,
        EntryType::Refund => pb::EntryType::Refund,
    };
    pb::LedgerEntry {
        id: e.id,
        r#type: entry_type as i32,
        amount: e.amount,
        balance_after: e.balance_after,
        order_id: e.order_id,
        created_at: Some(kit::time::to_proto(e.created_at)),
    }
}

#[tonic::async_trait]
impl PointService for PointGrpc {
    async fn get_balance(&self, request: Request<pb::GetBalanceRequest>) -> Result<Response<pb::Balance>, Status> {
        let user = UserId::parse(request.into_inner().user_id).map_err(status)?;
        let balance = self.points.balance(user).await.map_err(status)?;
        Ok(Response::new(balance_to_proto(balance)))
    }

    async fn charge(&self, request: Request<pb::ChargeRequest>) -> Result<Response<pb::Balance>, Status> {
        let user = UserId::parse(request.get_ref().user_id).map_err(status)?;
        let amount = ChargeAmount::parse(request.get_ref().amount).map_err(status)?;
        let key = idempotency_key(&request, "point.charge", user.get())?;
        respond(self.points.charge(user, amount, key).await, balance_to_proto)
    }

    async fn r#use(&self, request: Request<pb::UseRequest>) -> Result<Response<pb::Balance>, Status> {
        let user = UserId::parse(request.get_ref().user_id).map_err(status)?;
        let amount = DebitAmount::parse(request.get_ref().amount).map_err(status)?;
        let key = idempotency_key(&request, "point.use", user.get())?;
        respond(self.points.use_points(user, amount, key).await, balance_to_proto)
    }

    async fn list_history(
        &self,
        request: Request<pb::ListHistoryRequest>,
    ) -> Result<Response<pb::ListHistoryResponse>, Status> {
        let req = request.into_inner();
        let user = UserId::parse(req.user_id).map_err(status)?;
        let limit = HistoryLimit::parse(i64::from(req.limit)).map_err(status)?;
        let entries = self.points.history(user, limit).await.map_err(status)?;
        Ok(Response::new(pb::ListHistoryResponse { items: entries.into_iter().map(entry_to_proto).collect() }))
    }

    async fn pay(&self, request: Request<pb::PayRequest>) -> Result<Response<pb::PayResponse>, Status> {
        let req = request.into_inner();
        let saga = SagaRef::from_proto(req.saga.as_ref(), Op::Action)?;
        let user = UserId::parse(req.user_id).map_err(status)?;
        let order = OrderRef::parse(req.order_id).map_err(status)?;
        let amount = PayAmount::parse(req.amount).map_err(status)?;
        let record = self.points.pay(&saga, user, &order, amount).await.map_err(status)?;
        Ok(Response::new(pb::PayResponse { balance_after: record.balance_after, replayed: record.replayed }))
    }

    async fn refund(&self, request: Request<pb::RefundRequest>) -> Result<Response<pb::RefundResponse>, Status> {
        let req = request.into_inner();
        let saga = SagaRef::from_proto(req.saga.as_ref(), Op::Compensate)?;
        let refunded = self.points.refund(&saga).await.map_err(status)?;
        Ok(Response::new(pb::RefundResponse {
            refunded_amount: refunded.amount,
            null_compensation: refunded.null_compensation,
        }))
    }
    async fn saga_effects(
        &self,
        request: Request<mesh_proto::saga::v1::SagaEffectsRequest>,
    ) -> Result<Response<mesh_proto::saga::v1::SagaEffectsResponse>, Status> {
        let asked = kit::saga::effects_asked(&request.into_inner())?;
        let held = self.points.paid_for(&asked).await.map_err(status)?;
        Ok(Response::new(kit::saga::effects_held(held)))
    }
}
