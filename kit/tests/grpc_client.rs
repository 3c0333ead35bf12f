//! The kit gRPC client: balancing over replicas named by host, and trace propagation.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use kit::grpc::{ClientSettings, channel};
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// A health server on a random port that counts the calls it serves.
async fn counting_server() -> (u16, Arc<AtomicUsize>) {
    counting_server_on(0).await
}

async fn counting_server_on(port: u16) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let layer = tower::ServiceBuilder::new().map_request(move |req: http::Request<tonic::body::Body>| {
        counter.fetch_add(1, Ordering::Relaxed);
        req
    });
    tokio::spawn(Server::builder().layer(layer).add_service(health).serve_with_incoming(TcpIncoming::from(listener)));
    (port, calls)
}

#[tokio::test]
async fn replicas_named_by_host_all_get_traffic() {
    let (a, calls_a) = counting_server().await;
    let (b, calls_b) = counting_server().await;
    let urls = format!("http://localhost:{a}, http://localhost:{b}");
    let mut client = HealthClient::new(channel(&urls, &ClientSettings::default()).unwrap());
    for _ in 0..200 {
        client.check(HealthCheckRequest { service: String::new() }).await.expect("served");
    }
    let (a, b) = (calls_a.load(Ordering::Relaxed), calls_b.load(Ordering::Relaxed));
    assert_eq!(a + b, 200);
    assert!(a > 20 && b > 20, "both replicas serve: {a} / {b}");
}

#[tokio::test]
async fn a_single_ip_address_works_and_bad_urls_are_refused() {
    let (port, calls) = counting_server().await;
    let mut client = HealthClient::new(kit::grpc::channel_to(&format!("http://127.0.0.1:{port}")).unwrap());
    client.check(HealthCheckRequest { service: String::new() }).await.expect("served");
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    assert!(kit::grpc::channel_to("").is_err());
    assert!(kit::grpc::channel_to("127.0.0.1:50051").is_err(), "a scheme is required");
    assert!(kit::grpc::channel_to("http://host-without-port").is_err());
}

#[test]
fn trace_context_is_continued_into_the_next_hop() {
    use tracing_subscriber::layer::SubscriberExt;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "test");
    let subscriber = tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
    tracing::subscriber::with_default(subscriber, || {
        let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
        let mut incoming = http::HeaderMap::new();
        incoming.insert("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01").parse().unwrap());
        let span = tracing::info_span!("request");
        kit::telemetry::continue_trace(&span, &incoming);
        let mut outgoing = http::HeaderMap::new();
        kit::telemetry::inject_trace(&span, &mut outgoing);
        let sent = outgoing.get("traceparent").expect("traceparent sent on").to_str().unwrap().to_owned();
        assert!(sent.starts_with(&format!("00-{trace_id}-")), "same trace: {sent}");
        assert!(!sent.contains("00f067aa0ba902b7"), "a new span id: {sent}");
    });
}

#[tokio::test]
async fn an_upstream_that_comes_up_late_serves_the_very_next_call() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let settings = ClientSettings {
        breaker: kit::grpc::BreakerSettings { failures_to_open: 0, ..Default::default() },
        ..ClientSettings::default()
    };
    let mut client = HealthClient::new(channel(&format!("http://127.0.0.1:{port}"), &settings).unwrap());
    assert!(client.check(HealthCheckRequest { service: String::new() }).await.is_err(), "nothing listens yet");
    // Time for a balancer to poll its idle connections (and fail to connect) ahead of any call.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (_, calls) = counting_server_on(port).await;
    for n in 0..8 {
        // Every connection of the pool must connect now, not hand back an old connect error.
        client.check(HealthCheckRequest { service: String::new() }).await.unwrap_or_else(|e| panic!("call {n}: {e}"));
    }
    assert_eq!(calls.load(Ordering::Relaxed), 8);
}
