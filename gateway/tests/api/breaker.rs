//! The circuit breaker per upstream: an upstream that stops answering is failed fast after a
//! few failures, found again by a probe when it is back, and never tripped by business answers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::helpers::{expect_problem, spawn_mesh, start_gateway, test_defaults};

/// A TCP proxy in front of an upstream that can swallow everything (connections accepted and
/// held, no byte answered: an upstream that hangs) and be healthy again.
struct Proxy {
    addr: SocketAddr,
    hanging: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (hanging, links) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())));
        let (flag, tasks) = (hanging.clone(), links.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { return };
                let flag = flag.clone();
                let link = tokio::spawn(async move {
                    if flag.load(Ordering::SeqCst) {
                        // Hold the socket open and silent until this task is aborted.
                        std::future::pending::<()>().await;
                    }
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else { return };
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
                tasks.lock().unwrap().push(link);
            }
        });
        Self { addr, hanging, links }
    }

    /// Cuts every open link and holds new ones silent.
    fn hang(&self) {
        self.hanging.store(true, Ordering::SeqCst);
        self.links.lock().unwrap().drain(..).for_each(|link| link.abort());
    }

    fn recover(&self) {
        self.hanging.store(false, Ordering::SeqCst);
        self.links.lock().unwrap().drain(..).for_each(|link| link.abort());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_upstream_is_failed_fast_then_found_again_and_business_answers_never_trip_it() {
    let mesh = spawn_mesh().await;
    let product = mesh.create_product("breaker", 1_000, 10).await["id"].as_i64().unwrap();
    let upstream: SocketAddr = mesh.inventory_url.trim_start_matches("http://").parse().unwrap();
    let proxy = Proxy::start(upstream).await;
    let config = gateway::config::GatewayConfig {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        inventory_url: Some(format!("http://{}", proxy.addr)),
        upstream_timeout_ms: 1_000,
        breaker_failures: 3,
        breaker_open_ms: 500,
        ..test_defaults()
    };
    let gateway = start_gateway(config, mesh.shutdown_token()).await;
    let http = reqwest::Client::new();
    let get = |id: i64| http.get(format!("{gateway}/v1/products/{id}")).send();

    // A flood of 404s is the upstream working: the circuit stays closed.
    for _ in 0..30 {
        expect_problem(get(999_999_999).await.unwrap(), 404, "NOT_FOUND").await;
    }
    assert_eq!(get(product).await.unwrap().status(), 200);

    proxy.hang();
    let mut slowest = Duration::ZERO;
    for _ in 0..3 {
        let started = Instant::now();
        let resp = get(product).await.unwrap();
        slowest = slowest.max(started.elapsed());
        assert_eq!(resp.status(), 503, "a hanging upstream is a 503, never a 500");
        assert!(resp.headers().contains_key("retry-after"));
    }
    assert!(slowest >= Duration::from_millis(900), "a hanging upstream costs the deadline: {slowest:?}");
    let started = Instant::now();
    let resp = get(product).await.unwrap();
    let fast = started.elapsed();
    expect_problem(resp, 503, "UNAVAILABLE").await;
    assert!(fast < Duration::from_millis(100), "after 3 failures the open circuit answers in milliseconds: {fast:?}");
    let metrics = http.get(format!("{gateway}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("grpc_client_circuit_state{upstream=\"inventory\"} 1"), "the open state is exported");

    proxy.recover();
    let started = Instant::now();
    loop {
        let resp = get(product).await.unwrap();
        if resp.status() == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the circuit closes by itself once the upstream is back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..10 {
        assert_eq!(get(product).await.unwrap().status(), 200, "closed again: calls pass");
    }
}
