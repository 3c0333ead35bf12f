//! devstack's terminal output is for people (or pure JSON on request), and every child's raw
//! lines are kept in a file per child under the state dir.

use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::stack::{Stack, StackOptions, start_stack_with};

/// The services' own start-up lines ("<svc> serving") are INFO; the rest stays quiet.
const SERVICES_AT_INFO: &str = "warn,inventory_svc=info,coupon_svc=info,point_svc=info,payment_svc=info,gateway=info";

/// The first stderr line that `matches`, waiting for it: lines reach the terminal a little
/// after the READY line may have.
async fn line_where(stack: &Stack, matches: impl Fn(&str) -> bool) -> String {
    for _ in 0..300 {
        if let Some(line) = stack.lines().into_iter().find(|l| matches(l)) {
            return line;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no such line in {:#?}", stack.lines());
}

fn log_file(state_dir: &Path, name: &str) -> Vec<String> {
    let path = state_dir.join("logs").join(format!("{name}.log"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    text.lines().map(str::to_owned).collect()
}

fn object(line: &str) -> Option<Map<String, Value>> {
    serde_json::from_str(line).ok()
}

#[tokio::test]
async fn by_default_each_line_is_readable_and_names_its_service_and_each_child_has_a_log_file() {
    kit::testing::install_crypto_provider();
    // POINT_LOG_FORMAT reaches point-svc only through devstack's environment: its lines
    // turn into tracing's text, which devstack shows as they are.
    let env = [("RUST_LOG", SERVICES_AT_INFO), ("POINT_LOG_FORMAT", "pretty")];
    let stack =
        start_stack_with(StackOptions { extra: &["--replicas", "coupon=2"], env: &env, ..StackOptions::default() })
            .await;

    let payment = line_where(&stack, |l| l.starts_with("payment-svc ") && l.contains("payment-svc serving")).await;
    let fields = payment.split_once("payment-svc serving").unwrap();
    assert!(fields.0.contains(" INFO "), "the level before the message: {payment}");
    assert!(fields.1.contains(" addr=127.0.0.1:") && fields.1.contains(" redlock_nodes=1"), "{payment}");
    line_where(&stack, |l| l.starts_with("coupon-svc ") && l.contains("coupon-svc serving")).await;
    line_where(&stack, |l| l.starts_with("coupon-svc-2 ") && l.contains("coupon-svc serving")).await;
    line_where(&stack, |l| l.starts_with("gateway ") && l.contains("gateway serving")).await;
    let point = line_where(&stack, |l| l.starts_with("point-svc ") && l.contains("point-svc serving")).await;
    assert!(point.contains("point_svc::startup"), "point-svc's own text format, with its target: {point}");

    let names = ["inventory-svc", "coupon-svc", "coupon-svc-2", "point-svc", "payment-svc", "gateway"];
    let lines = stack.lines();
    for line in &lines {
        if line.starts_with("devstack: ") {
            continue;
        }
        let (name, rest) = line.split_once(' ').unwrap_or_else(|| panic!("no prefix: {line:?}"));
        assert!(names.contains(&name), "prefixed with a service: {line:?}");
        assert!(!rest.trim_start().starts_with('{') && !line.contains("\"timestamp\""), "raw JSON: {line:?}");
    }
    let logs_dir = stack.state_dir().join("logs");
    assert!(stack.logged(&format!("devstack: each service's raw output is also appended to {}", logs_dir.display())));

    for name in names.into_iter().filter(|n| *n != "point-svc") {
        let file = log_file(stack.state_dir(), name);
        let service = name.trim_end_matches("-2");
        assert!(file.iter().all(|l| object(l).is_some()), "{name}.log holds the child's JSON lines: {file:#?}");
        assert!(
            file.iter().any(|l| object(l).is_some_and(|o| o["message"] == format!("{service} serving"))),
            "{name}.log: {file:#?}"
        );
    }
    let point_file = log_file(stack.state_dir(), "point-svc");
    assert!(point_file.iter().any(|l| l.contains("point-svc serving")), "{point_file:#?}");
    assert!(point_file.iter().all(|l| object(l).is_none()), "point-svc logged text: {point_file:#?}");
    assert!(stack.stop().await.success());
}

#[tokio::test]
async fn with_log_format_json_every_line_is_json_that_names_its_service() {
    kit::testing::install_crypto_provider();
    let extra = ["--log-format", "json", "--replicas", "inventory=2"];
    let env = [("RUST_LOG", SERVICES_AT_INFO)];
    let stack = start_stack_with(StackOptions { extra: &extra, env: &env, ..StackOptions::default() }).await;
    let of = |service: &'static str, message: &'static str, replica: Option<u64>| {
        move |line: &str| {
            object(line).is_some_and(|o| {
                o["service"] == service
                    && o["message"] == message
                    && o.get("replica").and_then(Value::as_u64) == replica
            })
        }
    };
    let payment = line_where(&stack, of("payment-svc", "payment-svc serving", None)).await;
    line_where(&stack, of("inventory-svc", "inventory-svc serving", Some(1))).await;
    line_where(&stack, of("inventory-svc", "inventory-svc serving", Some(2))).await;
    line_where(&stack, |l| object(l).is_some_and(|o| o["service"] == "devstack" && o["level"] == "INFO")).await;

    for line in stack.lines() {
        let parsed = object(&line).unwrap_or_else(|| panic!("not a JSON object: {line:?}"));
        assert!(parsed.get("service").is_some_and(Value::is_string), "{line}");
    }
    // The child's line is unchanged but for the added service.
    let mut shown = object(&payment).unwrap();
    shown.remove("service");
    let file = log_file(stack.state_dir(), "payment-svc");
    let raw = file.iter().find(|l| l.contains("\"payment-svc serving\"")).expect("the line in the file");
    assert_eq!(shown, object(raw).unwrap());
    assert!(log_file(stack.state_dir(), "inventory-svc-2").iter().any(|l| l.contains("\"inventory-svc serving\"")));
    assert!(stack.stop().await.success());
}
