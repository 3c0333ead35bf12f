//! The mock external data platform (the `data-platform` crate, as devstack runs it), served
//! inside loadgen for a run that spawns payment-svc: a real HTTP server on a free loopback
//! port that lives exactly as long as the run. In-process, so its CPU is counted in
//! loadgen's own (it does one small JSON append per completed order).

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub struct MockPlatform {
    /// `http://127.0.0.1:<port>`: payment-svc POSTs `<url>/orders`.
    pub url: String,
    task: JoinHandle<()>,
}

impl MockPlatform {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.context("cannot bind the mock data platform")?;
        let url = format!("http://{}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            if let Err(err) = data_platform::serve(listener).await {
                eprintln!("loadgen: the mock data platform stopped: {err}");
            }
        });
        Ok(Self { url, task })
    }
}

impl Drop for MockPlatform {
    fn drop(&mut self) {
        self.task.abort();
    }
}
