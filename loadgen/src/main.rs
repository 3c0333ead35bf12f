//! `loadgen`: all logic lives in the library (`cli::run`); see `loadgen --help`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    loadgen::cli::run().await
}
