//! Wiring: upstream channels, the router with its layers, serving with graceful drain.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use kit::shutdown::CancellationToken;
use kit::{ErrorCode, ServiceError};
use tokio::net::TcpListener;
use tower::util::MapResponse;
use tower_http::catch_panic::{CatchPanic, CatchPanicLayer};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::admission::Admission;
use crate::config::GatewayConfig;
use crate::front::{Front, FrontLayer, Guards};
use crate::openapi::ApiDoc;
use crate::problem::Problem;
use crate::rate_limit::RateLimit;
use crate::routes::{self, AppState, coupons, ops, orders, points, products};
use crate::serve::{ConnectionLimits, serve};
use crate::upstream::Upstreams;

pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    app: App,
    accepting: Arc<AtomicBool>,
    grace: std::time::Duration,
    limits: ConnectionLimits,
}

impl Application {
    pub async fn build(config: &GatewayConfig) -> anyhow::Result<Self> {
        // Installed before the first request so no early metric is lost.
        let _ = kit::telemetry::prometheus();
        crate::admission::declare_metrics();
        metrics::counter!("gateway_requests_rate_limited_total").increment(0);
        let upstreams = Upstreams::connect(config)?;
        let accepting = Arc::new(AtomicBool::new(true));
        let state = AppState { upstreams: Arc::new(upstreams), accepting: accepting.clone() };
        let listener = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.http_addr))?;
        let addr = listener.local_addr()?;
        let verifier = config.verifier().map_err(|err| anyhow::anyhow!(err))?.map(Arc::new);
        if let Some(verifier) = &verifier {
            // Keys rotate by replacing the file; it is looked at every few seconds.
            verifier.keys().watch(std::time::Duration::from_secs(5));
        }
        let guards = Guards {
            auth: verifier,
            rate_limit: config.rate_limit().map(RateLimit::new),
            admission: Admission::new(config.admission()),
        };
        Ok(Self {
            listener,
            addr,
            app: app(router(state, config.max_body_bytes), guards),
            accepting,
            grace: std::time::Duration::from_secs(config.shutdown_grace_secs),
            limits: config.connection_limits(),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown`; then `/readyz` turns 503, the listener closes and in-flight
    /// requests get the grace period to finish.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(addr = %self.addr, "gateway serving");
        let accepting = self.accepting.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            accepting.store(false, Ordering::Relaxed);
        });
        serve(self.listener, self.app, self.limits, shutdown, self.grace).await;
        tracing::info!("gateway stopped");
        Ok(())
    }
}

/// What serves every request: the router inside the layers around it (see [`app`]).
pub type App = Front<MapResponse<CatchPanic<Router, PanicAnswer>, AsAxumBody>>;

type PanicAnswer = fn(Box<dyn std::any::Any + Send>) -> Response;
/// The panic guard boxes the body in its own type; the front speaks axum's.
type AsAxumBody = fn(http::Response<CaughtBody>) -> Response;
type CaughtBody = tower_http::body::UnsyncBoxBody<axum::body::Bytes, tower_http::BoxError>;

/// The layers in the order a request meets them, each a tower layer around the whole router
/// (not `Router::layer`, which boxes a future per layer per request): request id, span and
/// access log, then for `/v1` the rate limit and admission control ([`Front`]); a panic
/// guard; then inside the router, the body limit, route metrics and the handler.
pub fn app(router: Router, guards: Guards) -> App {
    let answer_panic: PanicAnswer = |_| {
        tracing::error!("handler panicked");
        Problem::from_error(ServiceError::new(ErrorCode::Internal, "internal error")).into_response()
    };
    let as_axum_body: AsAxumBody = |response| response.map(axum::body::Body::new);
    tower::ServiceBuilder::new()
        .layer(FrontLayer::new(guards))
        .map_response(as_axum_body)
        .layer(CatchPanicLayer::custom(answer_panic))
        .service(router)
}

/// The routes, each with its metrics; 404 and 405 are problem documents too.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let api = Router::new()
        .route("/v1/products", get(products::list_products).post(products::create_product))
        .route("/v1/products/{id}", get(products::get_product))
        .route("/v1/products/{id}/stock", put(products::set_stock))
        .route("/v1/points/charge", post(points::charge))
        .route("/v1/points/use", post(points::use_points))
        .route("/v1/points/{user_id}", get(points::get_balance))
        .route("/v1/points/{user_id}/history", get(points::history))
        .route("/v1/coupons", get(coupons::list_coupons).post(coupons::create_coupon))
        .route("/v1/coupons/{coupon_id}", get(coupons::get_coupon))
        .route("/v1/coupons/{coupon_id}/issue", post(coupons::issue_coupon))
        .route("/v1/users/{user_id}/coupons", get(coupons::user_coupons))
        .route("/v1/orders", post(orders::place_order))
        .route("/v1/orders/{order_id}", get(orders::get_order))
        .route("/v1/orders/{order_id}/status", put(orders::change_order_status))
        .route("/v1/users/{user_id}/orders", get(orders::user_orders))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route_layer(axum::middleware::from_fn(crate::context::route_metrics))
        .method_not_allowed_fallback(routes::method_not_allowed)
        .with_state(state);
    Router::new()
        .merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
        .merge(api)
        .fallback(routes::not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
}

/// The whole process: config (exit 64 if bad), telemetry, build, serve until SIGTERM.
pub async fn run_from_env() -> anyhow::Result<()> {
    let config = kit::config::or_exit(GatewayConfig::from_env());
    // A key that cannot be read stops the gateway here (exit 64), never a gateway that
    // accepts everyone.
    let _ = kit::config::or_exit(config.verifier());
    let _telemetry = kit::telemetry::init("gateway", &config.log_format);
    let app = Application::build(&config).await?;
    app.run_until_stopped(kit::shutdown::on_signal()).await
}
