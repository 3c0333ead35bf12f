//! point-svc binary: all wiring lives in `startup`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    point_svc::startup::run_from_env().await
}
