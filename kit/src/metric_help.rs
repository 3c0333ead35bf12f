//! The `# HELP` of every metric the mesh exports, in one table (a metric a process never
//! records gets no line: descriptions only annotate what exists).

use metrics::{describe_counter, describe_gauge, describe_histogram};

enum Kind {
    Counter,
    Gauge,
    Histogram,
}
use Kind::{Counter, Gauge, Histogram};

const HELP: &[(&str, Kind, &str)] = &[
    // Requests (gateway HTTP; every gRPC server).
    ("http_requests_total", Counter, "HTTP requests answered by the gateway, by method, route and status"),
    ("http_request_duration_seconds", Histogram, "Time the gateway took to answer, by method and route"),
    ("grpc_server_requests_total", Counter, "gRPC calls answered, by method and status code"),
    ("grpc_server_duration_seconds", Histogram, "Time a gRPC call took on the server, by method"),
    // The gateway under a surge.
    ("gateway_requests_shed_total", Counter, "Requests refused with 503 OVERLOADED before any work, by reason"),
    ("gateway_requests_rate_limited_total", Counter, "Requests refused with 429 by the per-caller rate limit"),
    ("gateway_requests_in_flight", Gauge, "Requests the gateway is working on"),
    ("gateway_admission_limit", Gauge, "Requests the gateway admits at once"),
    ("gateway_rate_limit_callers", Gauge, "Callers the rate limiter currently tracks"),
    // Outbound calls.
    ("grpc_client_circuit_state", Gauge, "Circuit breaker per upstream: 0 closed, 1 open, 2 half-open"),
    ("grpc_client_circuit_transitions_total", Counter, "Circuit breaker state changes, by upstream and new state"),
    ("grpc_client_circuit_refused_total", Counter, "Calls refused at once because the upstream's circuit was open"),
    // Databases and Redis.
    ("db_pool_connections", Gauge, "MySQL pool connections by state (in_use, idle)"),
    ("db_pool_max_connections", Gauge, "Largest size of the MySQL pool"),
    ("db_pool_acquire_wait_seconds", Histogram, "Time a query or transaction waited for a pooled MySQL connection"),
    ("db_statements_total", Counter, "SQL statements run, by kind (read, write)"),
    ("db_transactions_total", Counter, "SQL transactions opened"),
    ("db_reads_total", Counter, "Catalog reads by source (primary, replica)"),
    ("db_replica_lag_seconds", Gauge, "Measured lag of a read replica behind the primary"),
    ("db_replica_usable", Gauge, "1 if a read replica gets reads (lag within bounds and answering)"),
    ("redis_errors_total", Counter, "Redis commands that failed, by operation"),
    ("redlock_wait_seconds", Histogram, "Time to take a Redlock"),
    ("redlock_timeouts_total", Counter, "Redlocks not taken within their wait"),
    ("redlock_lost_total", Counter, "Held Redlocks lost (an extension missed quorum)"),
    ("combiner_batch_size", Histogram, "Requests decided together in one group-commit batch"),
    // Invariants.
    (
        "mesh_invariant_violations",
        Gauge,
        "Violations of an invariant of this service's own data found by the last check (0 = healthy)",
    ),
    (
        "mesh_invariant_last_run_timestamp_seconds",
        Gauge,
        "Unix time at which the invariant watcher last completed a pass",
    ),
    (
        "mesh_reconciliation_mismatches",
        Gauge,
        "Orders whose effects at the participants disagree with their status, by kind",
    ),
    (
        "mesh_reconciliation_last_run_timestamp_seconds",
        Gauge,
        "Unix time at which payment-svc last completed a reconciliation pass",
    ),
    // Business: orders and sagas.
    ("saga_outcomes_total", Counter, "Checkout drives by outcome (COMPLETED, FAILED, CANCELLED, UNSETTLED)"),
    ("checkout_failures_total", Counter, "Checkouts settled FAILED, by error code"),
    ("checkout_refused_total", Counter, "Checkouts refused before anything was written, by reason"),
    ("saga_step_retries_total", Counter, "Participant calls retried, by step and op"),
    ("saga_compensations_total", Counter, "Saga steps compensated, by step"),
    (
        "saga_compensations_deferred_total",
        Counter,
        "Compensations that kept failing and were deferred to recovery, by step",
    ),
    ("saga_compensations_stuck", Gauge, "Sagas whose compensation is deferred"),
    ("saga_overdue", Gauge, "Sagas still unsettled past their forward budget and two leases"),
    ("saga_recoveries_total", Counter, "Sagas taken over and driven by recovery"),
    // Business: stock, coupons, points.
    ("inventory_reservations_total", Counter, "Stock reservations by outcome"),
    ("inventory_releases_total", Counter, "Stock releases (compensations)"),
    ("inventory_product_cache_total", Counter, "Product cache lookups by result (hit, miss)"),
    ("inventory_catalog_cache_total", Counter, "Catalog page cache lookups by result (hit, miss)"),
    ("inventory_search_rankings_total", Counter, "Name-search rankings computed"),
    ("inventory_products_imported_total", Counter, "Products created by ImportProducts"),
    ("coupon_issues_total", Counter, "Coupon issue requests by outcome"),
    ("coupon_remaining", Gauge, "Copies of a coupon not issued yet, by coupon (refreshed every invariant pass)"),
    ("coupon_gate_rebuilds_total", Counter, "Redis issue gates rebuilt from MySQL"),
    ("coupon_sold_out_for_good_total", Counter, "Coupons found sold out for good (answered from memory from then on)"),
    ("point_movements_total", Counter, "Point movements by operation and outcome"),
    ("points_moved_total", Counter, "Points moved, by ledger entry type (CHARGE, USE, PAYMENT, REFUND)"),
    ("point_payments_total", Counter, "Saga point payments by outcome"),
    ("point_refunds_total", Counter, "Saga point refunds"),
];

/// Describes every metric of [`HELP`] to the installed recorder.
pub fn describe_common() {
    for (name, kind, help) in HELP {
        match kind {
            Counter => describe_counter!(*name, *help),
            Gauge => describe_gauge!(*name, *help),
            Histogram => describe_histogram!(*name, *help),
        }
    }
}
