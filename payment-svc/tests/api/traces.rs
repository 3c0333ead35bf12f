//! A saga recovered by another replica after a crash stays in the trace of the checkout that
//! started it: recovery resumes the traceparent stored with the saga.

use std::collections::HashMap;
use std::time::Duration;

use mesh_proto::payment::v1 as pb;
use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::json;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::helpers::{
    PaymentTuning, call_on_a_replica_killed_after, keyed, line, spawn_mesh_with, start_payment, status_of,
};

/// Every span this process ends, kept in memory. The subscriber is global: nextest runs each
/// test in a process of its own, so these are this test's spans alone.
fn record_spans() -> InMemorySpanExporter {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("payment-tests"));
    tracing_subscriber::registry()
        .with(layer.with_filter(LevelFilter::INFO))
        .try_init()
        .expect("no other subscriber in this process (run the tests with nextest)");
    exporter
}

#[tokio::test]
async fn a_saga_recovered_after_a_crash_continues_the_checkouts_trace() {
    let exporter = record_spans();
    let mesh = spawn_mesh_with(PaymentTuning::fast_recovery()).await;
    mesh.stop_payment_replicas();
    let product = mesh.product(1_000, 10).await;
    let user = 43;
    mesh.charge(user, 5_000).await;
    mesh.platform_control(json!({"failMode": "none", "latencyMs": 5_000})).await;

    // The caller's trace; a replica reserves and pays under it, hangs on the platform, dies.
    let (trace_id, caller_span) = (TraceId::from(rand::random::<u128>()), SpanId::from(rand::random::<u64>()));
    let request = pb::PlaceOrderRequest { user_id: user, items: vec![line(product, 1)], user_coupon_id: None };
    let mut call = keyed(request, "traced-crash");
    call.metadata_mut().insert("traceparent", format!("00-{trace_id}-{caller_span}-01").parse().unwrap());
    let answer = call_on_a_replica_killed_after(&mesh.payment_config, call, Duration::from_millis(1_500)).await;
    assert!(answer.is_err(), "the client lost its connection");

    // A new replica's recovery takes the saga over (nobody asks with the key: no take-over
    // on a request path) and completes it.
    mesh.platform_control(json!({"failMode": "none", "latencyMs": 0})).await;
    let mut successor = start_payment(&mesh.payment_config, kit::shutdown::CancellationToken::new()).await;
    let list = pb::ListUserOrdersRequest { user_id: user, ..Default::default() };
    let orders = successor.list_user_orders(list).await.unwrap().into_inner().items;
    let order_id = orders.first().expect("the order was started").order_id.clone();
    let started = std::time::Instant::now();
    loop {
        let asked = pb::GetOrderRequest { order_id: order_id.clone() };
        let order = successor.get_order(asked).await.unwrap().into_inner();
        if status_of(&order) == pb::OrderStatus::Completed {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(40), "never completed: {order:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let spans = exporter.get_finished_spans().unwrap();
    let in_trace: Vec<&SpanData> = spans.iter().filter(|s| s.span_context.trace_id() == trace_id).collect();
    let names: Vec<&str> = in_trace.iter().map(|s| s.name.as_ref()).collect();
    let named = |name: &str| in_trace.iter().filter(|s| s.name == name).copied().collect::<Vec<_>>();

    // The recovery is a child of the dead replica's drive: the same parent as that drive's
    // start write, which the dead replica finished and exported.
    // (A sweep may claim the saga before the dead replica's user lock expired; it gives the
    // saga back and the next sweep drives it: every one of them is in the trace.)
    let recoveries = named("saga_recovery");
    assert!(!recoveries.is_empty(), "the recovery is in the caller's trace: {names:?}");
    let start = named("sql.checkout_start");
    assert_eq!(start.len(), 1, "{names:?}");
    for recovery in &recoveries {
        assert_eq!(recovery.parent_span_id, start[0].parent_span_id, "recovery hangs off the checkout's drive");
    }

    // What the recovery did hangs off it, down to the participants' SQL and the settle.
    let by_id: HashMap<SpanId, &SpanData> = in_trace.iter().map(|s| (s.span_context.span_id(), *s)).collect();
    let under_recovery = |span: &SpanData| {
        let mut parent = span.parent_span_id;
        while let Some(up) = by_id.get(&parent) {
            if up.name == "saga_recovery" {
                return true;
            }
            parent = up.parent_span_id;
        }
        false
    };
    for name in ["saga.step", "sql.reserve_stock", "sql.pay_points", "sql.checkout_settle"] {
        let found = named(name);
        assert!(found.iter().any(|s| under_recovery(s)), "{name} under the recovery: {names:?}");
    }
}
