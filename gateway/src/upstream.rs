//! gRPC clients of the services, built once and cloned per request (cheap: a clone shares
//! the HTTP/2 connections).

use kit::grpc::{ClientSettings, MeshChannel, channel};
use kit::{ErrorCode, ServiceError};
use mesh_proto::coupon::v1::coupon_service_client::CouponServiceClient;
use mesh_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use mesh_proto::payment::v1::payment_service_client::PaymentServiceClient;
use mesh_proto::point::v1::point_service_client::PointServiceClient;
use tonic_health::pb::health_client::HealthClient;

use crate::config::GatewayConfig;
use crate::problem::Problem;

#[derive(Clone)]
pub struct Upstreams {
    inventory: Option<InventoryServiceClient<MeshChannel>>,
    point: Option<PointServiceClient<MeshChannel>>,
    coupon: Option<CouponServiceClient<MeshChannel>>,
    payment: Option<PaymentServiceClient<MeshChannel>>,
    /// (service name, health client) for `/readyz`.
    health: Vec<(&'static str, HealthClient<MeshChannel>)>,
}

impl Upstreams {
    pub fn connect(config: &GatewayConfig) -> anyhow::Result<Self> {
        let settings = ClientSettings {
            request_timeout: config.upstream_timeout(),
            connections_per_address: config.upstream_connections,
            breaker: config.breaker(),
            ..ClientSettings::default()
        };
        let mut health = Vec::new();
        let mut open = |name: &'static str, url: &Option<String>| -> anyhow::Result<Option<MeshChannel>> {
            let Some(url) = url.as_deref().filter(|u| !u.trim().is_empty()) else { return Ok(None) };
            let ch = channel(url, &ClientSettings { upstream: name.to_owned(), ..settings.clone() })?;
            health.push((name, HealthClient::new(ch.clone())));
            Ok(Some(ch))
        };
        let inventory = open("inventory", &config.inventory_url)?.map(InventoryServiceClient::new);
        let coupon = open("coupon", &config.coupon_url)?.map(CouponServiceClient::new);
        let point = open("point", &config.point_url)?.map(PointServiceClient::new);
        let payment = open("payment", &config.payment_url)?.map(PaymentServiceClient::new);
        Ok(Self { inventory, point, coupon, payment, health })
    }

    pub fn inventory(&self) -> Result<InventoryServiceClient<MeshChannel>, Problem> {
        self.inventory.clone().ok_or_else(|| not_routed("inventory"))
    }

    pub fn point(&self) -> Result<PointServiceClient<MeshChannel>, Problem> {
        self.point.clone().ok_or_else(|| not_routed("point"))
    }

    pub fn coupon(&self) -> Result<CouponServiceClient<MeshChannel>, Problem> {
        self.coupon.clone().ok_or_else(|| not_routed("coupon"))
    }

    pub fn payment(&self) -> Result<PaymentServiceClient<MeshChannel>, Problem> {
        self.payment.clone().ok_or_else(|| not_routed("payment"))
    }

    pub fn health_checks(&self) -> &[(&'static str, HealthClient<MeshChannel>)] {
        &self.health
    }
}

fn not_routed(service: &str) -> Problem {
    Problem::from_error(ServiceError::new(
        ErrorCode::Unavailable,
        format!("{service} is not configured on this gateway"),
    ))
}
