//! gateway binary: all wiring lives in `startup`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    gateway::startup::run_from_env().await
}
