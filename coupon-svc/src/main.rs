//! coupon-svc binary: all wiring lives in `startup`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    coupon_svc::startup::run_from_env().await
}
