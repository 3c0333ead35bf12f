//! `k8s/monitoring`: promtool accepts the rule file and passes its unit tests, every alert is
//! documented and tested both ways, the PrometheusRule is exactly the rule file wrapped, and
//! [`metric_names_used`] lists the metrics the rules and the dashboard read, so a test against a
//! running mesh can check that each one is exported.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn workspace_root() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    path.canonicalize().unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// A file of `k8s/monitoring`, relative to the workspace root.
fn relative(name: &str) -> String {
    format!("k8s/monitoring/{name}")
}

fn read(name: &str) -> String {
    let path = workspace_root().join(relative(name));
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn yaml(name: &str) -> Value {
    serde_norway::from_str(&read(name)).unwrap_or_else(|err| panic!("{name}: {err}"))
}

fn promtool(args: &[&str]) -> Output {
    match Command::new("promtool").args(args).current_dir(workspace_root()).output() {
        Ok(out) => out,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            panic!("promtool not found: apt-get install prometheus (Debian's package ships it)")
        }
        Err(err) => panic!("promtool did not start: {err}"),
    }
}

fn output(out: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every rule of the rule file, across its groups.
fn rules(file: &Value) -> Vec<&Value> {
    let groups = file["groups"].as_array().expect("a rule file has `groups`");
    groups.iter().flat_map(|g| g["rules"].as_array().expect("a group has `rules`")).collect()
}

#[test]
fn promtool_checks_the_rule_file() {
    let out = promtool(&["check", "rules", &relative("prometheus-rules.yml")]);
    assert!(out.status.success(), "promtool check rules: {}", output(&out));
}

#[test]
fn promtool_runs_the_rule_unit_tests() {
    let out = promtool(&["test", "rules", &relative("prometheus-rules.test.yml")]);
    assert!(out.status.success(), "promtool test rules: {}", output(&out));
}

/// promtool runs whatever tests there are; this holds the test file to "every alert fires in
/// some test and is expected quiet in another", and every alert to what a responder needs.
#[test]
fn every_alert_is_documented_and_tested_firing_and_quiet() {
    let file = yaml("prometheus-rules.yml");
    let alerts: Vec<&Value> = rules(&file).into_iter().filter(|r| r["alert"].is_string()).collect();
    assert!(!alerts.is_empty(), "the rule file has no alert");
    for alert in &alerts {
        let name = alert["alert"].as_str().unwrap();
        assert!(alert["for"].is_string(), "{name}: no `for`");
        let severity = alert["labels"]["severity"].as_str();
        assert!(matches!(severity, Some("critical" | "warning")), "{name}: severity {severity:?}");
        for annotation in ["summary", "description", "runbook"] {
            let text = alert["annotations"][annotation].as_str().unwrap_or_default();
            assert!(!text.trim().is_empty(), "{name}: no {annotation} annotation");
        }
    }

    // alertname -> (expected firing somewhere, expected quiet somewhere)
    let tests = yaml("prometheus-rules.test.yml");
    let mut seen: BTreeMap<&str, (bool, bool)> = BTreeMap::new();
    for group in tests["tests"].as_array().expect("`tests`") {
        for case in group["alert_rule_test"].as_array().into_iter().flatten() {
            let name = case["alertname"].as_str().expect("alertname");
            let fires = case["exp_alerts"].as_array().is_some_and(|a| !a.is_empty());
            let entry = seen.entry(name).or_default();
            if fires {
                entry.0 = true;
            } else {
                entry.1 = true;
            }
        }
    }
    let defined: BTreeSet<&str> = alerts.iter().map(|a| a["alert"].as_str().unwrap()).collect();
    for name in &defined {
        assert_eq!(seen.get(name), Some(&(true, true)), "{name}: (fires in a test, quiet in a test)");
    }
    let unknown: Vec<&&str> = seen.keys().filter(|n| !defined.contains(*n)).collect();
    assert!(unknown.is_empty(), "tests of alerts the rule file does not define: {unknown:?}");
}

/// The header's command: the header, then the rule file indented under `spec:` (empty lines
/// stay empty).
fn wrap(header: &str, rule_file: &str) -> String {
    let body: String =
        rule_file.split_inclusive('\n').map(|l| if l == "\n" { l.to_owned() } else { format!("  {l}") }).collect();
    format!("{header}\nspec:\n{body}")
}

#[test]
fn the_prometheus_rule_wraps_exactly_the_rule_file() {
    let file = yaml("prometheus-rules.yml");
    let rule = yaml("prometheus-rule.yaml");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["kind"], "PrometheusRule");
    assert!(file["groups"].as_array().is_some_and(|g| !g.is_empty()), "the rule file has no group");
    assert!(
        rule["spec"]["groups"] == file["groups"],
        "prometheus-rule.yaml's spec.groups differ from prometheus-rules.yml's groups: regenerate it \
         with the command in its header"
    );
    // Comments too: the file is what the header's command makes, not an edited copy.
    let text = read("prometheus-rule.yaml");
    let (header, _) = text.split_once("\nspec:\n").expect("prometheus-rule.yaml has a `spec:` line");
    assert!(
        text == wrap(header, &read("prometheus-rules.yml")),
        "prometheus-rule.yaml is not its header's command's output: run the command in its header"
    );
}

/// Every metric name the rules (`expr`) and the dashboard (each target's `expr`) read, as the
/// processes export it: histograms by their base name (`_bucket`, `_sum`, `_count` stripped).
/// Recording rules the rule file defines and `up` (Prometheus's own) are left out.
pub fn metric_names_used() -> BTreeSet<String> {
    let file = yaml("prometheus-rules.yml");
    let mut recorded = BTreeSet::new();
    let mut exprs = Vec::new();
    for rule in rules(&file) {
        if let Some(name) = rule["record"].as_str() {
            recorded.insert(name.to_owned());
        }
        exprs.push(rule["expr"].as_str().expect("every rule has an expr").to_owned());
    }
    let dashboard: Value =
        serde_json::from_str(&read("grafana-dashboard.json")).unwrap_or_else(|err| panic!("dashboard: {err}"));
    collect_target_exprs(&dashboard["panels"], &mut exprs);
    exprs
        .iter()
        .flat_map(|e| metric_names(e))
        .filter(|name| name != "up" && !recorded.contains(name))
        .map(|name| {
            let base = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s));
            base.map_or(name.clone(), str::to_owned)
        })
        .collect()
}

/// Panels' targets, including those of panels nested in collapsed rows.
fn collect_target_exprs(panels: &Value, exprs: &mut Vec<String>) {
    for panel in panels.as_array().into_iter().flatten() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                exprs.push(expr.to_owned());
            }
        }
        collect_target_exprs(&panel["panels"], exprs);
    }
}

/// PromQL words that are never a metric name: aggregation operators (they may be followed by
/// `by (...)` rather than `(`), set and comparison keywords, modifiers, special numbers.
const KEYWORDS: &str = "sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk \
    limit_ratio and or unless atan2 bool offset by without on ignoring group_left group_right inf nan";

/// Keywords followed by a parenthesised list of label names.
const LABEL_LISTS: &str = "by without on ignoring group_left group_right";

fn is_one_of(word: &str, list: &str) -> bool {
    list.split_whitespace().any(|w| w == word)
}

/// The metric names one PromQL expression selects, in order, with repeats. Skipped: strings,
/// label matchers (`{...}`), ranges and subqueries (`[...]`), numbers and durations, Grafana
/// variables (`$x`, `${x}`), functions (a name before `(`), keywords and the label lists after
/// `by`, `without`, `on`, `ignoring` and `group_left/right`.
fn metric_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let next_non_space = |from: usize| chars[from..].iter().copied().find(|c| !c.is_whitespace());
    // The index just past the string literal that starts at `start`.
    let skip_string = |start: usize| {
        let quote = chars[start];
        let mut i = start + 1;
        while i < chars.len() && chars[i] != quote {
            // Backticks are raw strings; the other quotes take escapes.
            i += if chars[i] == '\\' && quote != '`' { 2 } else { 1 };
        }
        i + 1
    };
    // The index just past the `close` that ends the group opened at `start`; strings inside
    // are skipped, so a `}` in `route="/v1/products/{id}"` does not end a matcher.
    let skip_group = |start: usize, close: char| {
        let mut i = start + 1;
        while i < chars.len() && chars[i] != close {
            i = if matches!(chars[i], '"' | '\'' | '`') { skip_string(i) } else { i + 1 };
        }
        i + 1
    };
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';

    let mut names = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '"' | '\'' | '`') {
            i = skip_string(i);
        } else if c == '{' {
            i = skip_group(i, '}');
        } else if c == '[' {
            i = skip_group(i, ']');
        } else if c == '$' {
            i += 1;
            if chars.get(i) == Some(&'{') {
                i = skip_group(i, '}');
            }
            while i < chars.len() && is_word(chars[i]) {
                i += 1;
            }
        } else if c.is_ascii_digit() || c == '.' {
            // Numbers, durations (5m, 1h30m), exponents and hex: all one run of word characters.
            while i < chars.len() && (is_word(chars[i]) || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && is_word(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let lower = word.to_ascii_lowercase();
            let before_paren = next_non_space(i) == Some('(');
            if is_one_of(&lower, LABEL_LISTS) && before_paren {
                let open = i + chars[i..].iter().position(|c| *c == '(').unwrap();
                i = skip_group(open, ')');
            } else if !before_paren && !is_one_of(&lower, KEYWORDS) {
                names.push(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn metric_names_skips_functions_keywords_labels_strings_and_ranges() {
    let expr = r#"
        sum by (job, le) (rate(a_bucket{route=~"/v1/products/{id}", job='x'}[$__rate_interval]))
          / ignoring (state) group_left (pod) b_total offset 5m
        > 0.5 * 1e3 and on (job) max without (instance) (c{code=~"2|4"}) or time() - d:rec:rate5m
        unless histogram_quantile(0.95, e[5m:1m]) > bool 256 * 1024 or absent(up{job="gateway"})
        + label_replace(f, "dst", "$1", "src", "(.*)") + ${var} + $var
    "#;
    assert_eq!(metric_names(expr), ["a_bucket", "b_total", "c", "d:rec:rate5m", "e", "up", "f"]);
}

#[test]
fn metric_names_used_lists_the_metrics_of_the_rules_and_the_dashboard() {
    let names = metric_names_used();
    // From the rules (a histogram by its base name), the dashboard only, or both.
    for wanted in [
        "http_request_duration_seconds",
        "http_requests_total",
        "grpc_server_duration_seconds",
        "mesh_invariant_violations",
        "mesh_reconciliation_last_run_timestamp_seconds",
        "saga_outcomes_total",
        "db_pool_max_connections",
        "db_pool_acquire_wait_seconds",
        "coupon_remaining",
        "checkout_refused_total",
        "process_open_fds",
    ] {
        assert!(names.contains(wanted), "{wanted} missing from {names:?}");
    }
    for unwanted in ["up", "http_request_duration_seconds_bucket", "sum", "rate", "by", "job", "le", "state"] {
        assert!(!names.contains(unwanted), "{unwanted} in {names:?}");
    }
    // A name with a colon would be a recording rule the rule file does not define.
    let odd: Vec<&String> =
        names.iter().filter(|n| !n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')).collect();
    assert!(odd.is_empty(), "not metric names the mesh exports: {odd:?}");
}

/// The metric names of a Prometheus text page (histograms by their base name).
fn exported(page: &str) -> BTreeSet<String> {
    page.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(|name| {
            ["_bucket", "_sum", "_count"].iter().find_map(|suffix| name.strip_suffix(suffix)).unwrap_or(name).to_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_running_mesh_exports_every_metric_the_rules_and_the_dashboard_use_with_help() {
    use serde_json::json;
    kit::testing::install_crypto_provider();
    let stack = crate::stack::start_stack_with_env(
        &[],
        &[
            ("PAYMENT_INVARIANT_CHECK_EVERY_SECS", "1"),
            ("COUPON_INVARIANT_CHECK_EVERY_SECS", "1"),
            ("PAYMENT_RECONCILE_EVERY_MS", "500"),
        ],
    )
    .await;
    let (http, gw) = (stack.client(), stack.gateway.clone());
    let post = |path: &str, body: serde_json::Value| http.post(format!("{gw}{path}")).json(&body).send();
    let product: serde_json::Value =
        post("/v1/products", json!({"name": "watched", "price": 100, "stock": 1})).await.unwrap().json().await.unwrap();
    post("/v1/points/charge", json!({"userId": 7, "amount": 1000})).await.unwrap();
    let coupon: serde_json::Value =
        post("/v1/coupons", json!({"name": "c", "discountType": "FIXED", "discountValue": 10, "totalQuantity": 5}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    post(&format!("/v1/coupons/{}/issue", coupon["id"]), json!({"userId": 7})).await.unwrap();
    // One order that completes and one that fails (sold out): both outcomes get counted.
    for key in ["metrics-1", "metrics-2"] {
        let order = json!({"userId": 7, "items": [{"productId": product["id"], "quantity": 1}]});
        let answer = http.post(format!("{gw}/v1/orders")).header("idempotency-key", key).json(&order).send().await;
        assert!(answer.unwrap().status().as_u16() < 500);
    }
    // Two watcher passes at 1 s, so every invariant gauge and the pool gauges exist.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;

    let mut pages = vec![http.get(format!("{gw}/metrics")).send().await.unwrap().text().await.unwrap()];
    let metrics_ports: Vec<String> = stack
        .lines()
        .iter()
        .filter_map(|line| line.split("metrics 127.0.0.1:").nth(1))
        .map(|rest| rest.trim_end_matches(')').to_owned())
        .collect();
    assert_eq!(metrics_ports.len(), 4, "one metrics port per service: {metrics_ports:?}");
    for port in &metrics_ports {
        pages.push(reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.unwrap().text().await.unwrap());
    }
    let all: BTreeSet<String> = pages.iter().flat_map(|page| exported(page)).collect();
    let missing: Vec<String> = metric_names_used().into_iter().filter(|name| !all.contains(name)).collect();
    assert!(missing.is_empty(), "used by k8s/monitoring but exported by no process: {missing:?}");
    for page in &pages {
        for name in exported(page) {
            assert!(page.contains(&format!("# HELP {name} ")), "{name} has no # HELP");
        }
    }
    stack.stop().await;
}
