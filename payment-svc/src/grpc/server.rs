//! `mesh.payment.v1.PaymentService`: proto in, domain out, and back.

use std::time::Duration;

use kit::ServiceError;
use kit::grpc::{idempotency_key, respond};
use mesh_proto::payment::v1 as pb;
use pb::payment_service_server::PaymentService;
use tonic::{Request, Response, Status};

use crate::domain::{ListLimit, Order, OrderId, OrderStatus, PaymentError, PlaceOrder, StepStatus, UserId};
use crate::service::Payments;

pub use pb::payment_service_server::PaymentServiceServer;

/// Kept between a checkout's answer and its caller's deadline.
const ANSWER_MARGIN: Duration = Duration::from_millis(300);

pub struct PaymentGrpc {
    payments: Payments,
}

impl PaymentGrpc {
    pub fn new(payments: Payments) -> Self {
        Self { payments }
    }

    pub fn into_server(self) -> PaymentServiceServer<Self> {
        PaymentServiceServer::new(self)
    }
}

fn status(err: PaymentError) -> Status {
    ServiceError::from(err).into()
}

fn order_status(s: OrderStatus) -> pb::OrderStatus {
    match s {
        OrderStatus::Pending => pb::OrderStatus::Pending,
        OrderStatus::Completed => pb::OrderStatus::Completed,
        OrderStatus::Failed => pb::OrderStatus::Failed,
        OrderStatus::Cancelling => pb::OrderStatus::Cancelling,
        OrderStatus::Cancelled => pb::OrderStatus::Cancelled,
    }
}

fn step_status(s: StepStatus) -> pb::StepStatus {
    match s {
        StepStatus::Pending => pb::StepStatus::Pending,
        StepStatus::Done => pb::StepStatus::Done,
        StepStatus::Failed => pb::StepStatus::Failed,
        StepStatus::Compensated => pb::StepStatus::Compensated,
    }
}

pub fn order_to_proto(o: Order) -> pb::Order {
    let (failure_code, failure_product_id, failure_detail) = match o.failure {
        Some(f) => (Some(f.code), f.product_id, Some(f.detail)),
        None => (None, None, None),
    };
    pb::Order {
        items: o
            .lines
            .iter()
            .map(|l| pb::OrderLine {
                product_id: l.product_id,
                quantity: l.quantity,
                unit_price: l.unit_price,
                amount: l.amount(),
            })
            .collect(),
        order_id: o.id,
        user_id: o.user_id,
        status: order_status(o.status) as i32,
        total_amount: o.total_amount,
        discount_amount: o.discount_amount,
        paid_amount: o.paid_amount,
        user_coupon_id: o.user_coupon_id,
        failure_code,
        version: o.version,
        created_at: Some(kit::time::to_proto(o.created_at)),
        updated_at: Some(kit::time::to_proto(o.updated_at)),
        steps: o
            .steps
            .into_iter()
            .map(|s| pb::SagaStepState {
                name: s.name.as_str().to_owned(),
                status: step_status(s.status) as i32,
                updated_at: Some(kit::time::to_proto(s.updated_at)),
                attempts: s.attempts,
                last_error: s.last_error,
            })
            .collect(),
        failure_product_id,
        failure_detail,
    }
}

fn parse_status(raw: i32) -> Result<OrderStatus, PaymentError> {
    let status = match pb::OrderStatus::try_from(raw) {
        Ok(pb::OrderStatus::Pending) => OrderStatus::Pending,
        Ok(pb::OrderStatus::Completed) => OrderStatus::Completed,
        Ok(pb::OrderStatus::Failed) => OrderStatus::Failed,
        Ok(pb::OrderStatus::Cancelling) => OrderStatus::Cancelling,
        Ok(pb::OrderStatus::Cancelled) => OrderStatus::Cancelled,
        _ => return Err(PaymentError::validation("status", "status must be an order status")),
    };
    Ok(status)
}

#[tonic::async_trait]
impl PaymentService for PaymentGrpc {
    async fn place_order(&self, request: Request<pb::PlaceOrderRequest>) -> Result<Response<pb::Order>, Status> {
        let req = request.get_ref();
        let lines: Vec<(i64, i64)> = req.items.iter().map(|l| (l.product_id, l.quantity)).collect();
        let order = PlaceOrder::parse(req.user_id, &lines, req.user_coupon_id).map_err(status)?;
        let key = idempotency_key(&request, "payment.place_order", order.user().get())?.ok_or_else(|| {
            Status::from(ServiceError::new(kit::ErrorCode::IdempotencyKeyMissing, "an Idempotency-Key is required"))
        })?;
        // Answer before the caller's deadline, so a slow saga is a PENDING order, not a
        // deadline error: the margin covers the answer's way back.
        let patience = kit::grpc::caller_timeout(request.metadata())
            .map_or(Duration::MAX, |timeout| timeout.saturating_sub(ANSWER_MARGIN));
        respond(self.payments.place_order(order, key, patience).await, order_to_proto)
    }

    async fn get_order(&self, request: Request<pb::GetOrderRequest>) -> Result<Response<pb::Order>, Status> {
        let id = OrderId::parse(&request.get_ref().order_id).map_err(status)?;
        let order = self.payments.order(&id).await.map_err(status)?;
        Ok(Response::new(order_to_proto(order)))
    }

    async fn list_user_orders(
        &self,
        request: Request<pb::ListUserOrdersRequest>,
    ) -> Result<Response<pb::ListUserOrdersResponse>, Status> {
        let req = request.into_inner();
        let user = UserId::parse(req.user_id).map_err(status)?;
        let limit = ListLimit::parse(i64::from(req.limit)).map_err(status)?;
        let orders = self.payments.user_orders(user, limit).await.map_err(status)?;
        Ok(Response::new(pb::ListUserOrdersResponse { items: orders.into_iter().map(order_to_proto).collect() }))
    }

    async fn change_order_status(
        &self,
        request: Request<pb::ChangeOrderStatusRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        let req = request.get_ref();
        let id = OrderId::parse(&req.order_id).map_err(status)?;
        let target = parse_status(req.status).map_err(status)?;
        let expected = req.expected_version;
        // The key is scoped to the order's user, who is known once the order is.
        let user = self.payments.order(&id).await.map_err(status)?.user_id;
        let key = idempotency_key(&request, "payment.change_status", user)?;
        respond(self.payments.change_status(id, target, expected, key).await, order_to_proto)
    }
}
