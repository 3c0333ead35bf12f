//! One checkout is one trace (issue 13, item 5): the mesh runs as separate processes under
//! devstack, each exporting OTLP/gRPC to a receiver in this test; one checkout with a coupon,
//! sent with a W3C `traceparent`, must yield spans from the gateway, payment-svc and all three
//! participants, every one in the caller's trace and chained to it by parent ids.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use serde_json::json;

/// A received span: (service, span id, parent span id, name), by trace id.
type Received = Arc<Mutex<HashMap<Vec<u8>, Vec<(String, Vec<u8>, Vec<u8>, String)>>>>;

#[derive(Clone, Default)]
struct Receiver(Received);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = self.0.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(AnyValue::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                received.entry(span.trace_id.clone()).or_default().push((
                    service.clone(),
                    span.span_id,
                    span.parent_span_id,
                    span.name,
                ));
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

async fn start_receiver() -> (SocketAddr, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let receiver = Receiver::default();
    let received = receiver.0.clone();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver))
            .serve_with_incoming(incoming),
    );
    (addr, received)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn one_checkout_with_a_coupon_is_one_trace_across_every_service() {
    kit::testing::install_crypto_provider();
    let (addr, received) = start_receiver().await;
    let endpoint = format!("http://{addr}");
    {
        use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
        let mut probe = TraceServiceClient::connect(endpoint.clone()).await.expect("the receiver answers");
        probe.export(ExportTraceServiceRequest { resource_spans: vec![] }).await.expect("an export is accepted");
    }
    let stack = crate::stack::start_stack_with_env(
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
            // The helper's default (warn) would disable the info spans this test is about.
            ("RUST_LOG", "info"),
        ],
    )
    .await;
    let (http, gw) = (stack.client(), stack.gateway.clone());
    let post = |path: &str, body: serde_json::Value| http.post(format!("{gw}{path}")).json(&body).send();
    let product: serde_json::Value =
        post("/v1/products", json!({"name": "traced", "price": 1000, "stock": 5})).await.unwrap().json().await.unwrap();
    post("/v1/points/charge", json!({"userId": 7, "amount": 10000})).await.unwrap();
    let coupon: serde_json::Value =
        post("/v1/coupons", json!({"name": "t", "discountType": "FIXED", "discountValue": 100, "totalQuantity": 5}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let issued: serde_json::Value =
        post(&format!("/v1/coupons/{}/issue", coupon["id"]), json!({"userId": 7})).await.unwrap().json().await.unwrap();

    let trace_id: [u8; 16] = rand::random();
    let caller_span: [u8; 8] = rand::random();
    let order = json!({"userId": 7, "items": [{"productId": product["id"], "quantity": 1}], "userCouponId": issued["userCouponId"]});
    let answer = http
        .post(format!("{gw}/v1/orders"))
        .header("idempotency-key", "traced-1")
        .header("traceparent", format!("00-{}-{}-01", hex(&trace_id), hex(&caller_span)))
        .json(&order)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 201, "{:?}", answer.text().await);

    let services = ["gateway", "payment-svc", "inventory-svc", "coupon-svc", "point-svc"];
    // Every service's spans, and every span's parent: each process exports in batches, and a
    // parent ends (so is queued) after its children, so it may come in a later batch.
    let all_seen = || {
        let received = received.lock().unwrap();
        let spans = received.get(&trace_id[..]).cloned().unwrap_or_default();
        let seen: BTreeSet<&str> = spans.iter().map(|(service, ..)| service.as_str()).collect();
        let ids: BTreeSet<&Vec<u8>> = spans.iter().map(|(_, id, ..)| id).collect();
        let parents_in = spans.iter().all(|(_, _, parent, _)| parent.as_slice() == caller_span || ids.contains(parent));
        services.iter().all(|s| seen.contains(s)) && parents_in
    };
    let arrived = kit::testing::eventually(Duration::from_secs(20), all_seen).await;
    let spans = received.lock().unwrap().get(&trace_id[..]).cloned().unwrap_or_default();
    let names: Vec<String> = spans.iter().map(|(service, _, _, name)| format!("{service}:{name}")).collect();
    if !arrived {
        let lines = stack.lines();
        let tracer = lines.iter().filter(|l| l.contains("Global tracer provider")).count();
        let total: usize = received.lock().unwrap().values().map(Vec::len).sum();
        let last: Vec<&String> = lines.iter().rev().take(8).collect();
        panic!(
            "no full trace: {names:?}; {total} spans in all; {} lines, {tracer} tracer lines; {last:?}",
            lines.len()
        );
    }
    let ids: BTreeSet<Vec<u8>> = spans.iter().map(|(_, id, ..)| id.clone()).collect();
    for (service, _, parent, name) in &spans {
        assert!(
            parent.as_slice() == caller_span || ids.contains(parent),
            "{service}:{name} hangs off a span outside the trace ({}); spans {names:?}",
            hex(parent)
        );
    }
    let participant_sql = ["sql.reserve_stock", "sql.use_coupon", "sql.pay_points"];
    for name in participant_sql {
        assert!(spans.iter().any(|(_, _, _, n)| n == name), "{name} is traced: {names:?}");
    }
    stack.stop().await;
}
