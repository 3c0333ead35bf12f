//! payment-svc binary: all wiring lives in `startup`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    payment_svc::startup::run_from_env().await
}
