//! Auth on, devstack's default: the dev key is made once in the state dir, `devstack token`
//! mints tokens the gateway accepts, `--seed-demo` still seeds (as an admin), and a restart
//! reuses the key, so a token minted before it still works after.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::stack::{StackOptions, StateDir, start_stack_with};

async fn devstack_token(state_dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_devstack"))
        .arg("token")
        .args(args)
        .arg("--state-dir")
        .arg(state_dir)
        .output()
        .await
        .unwrap()
}

async fn token(state_dir: &Path, args: &[&str]) -> String {
    let out = devstack_token(state_dir, args).await;
    assert!(out.status.success(), "devstack token {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one token: {stdout}");
    stdout.trim().to_owned()
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn status(request: reqwest::RequestBuilder, token: Option<&str>) -> u16 {
    let request = match token {
        Some(token) => request.header("authorization", format!("Bearer {token}")),
        None => request,
    };
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn devstack_token_checks_its_flags_and_needs_a_key() {
    let state = StateDir::new();
    let out = devstack_token(state.path(), &["--user", "7"]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("start devstack once"), "{stderr}");
    let bad_flags: [&[&str]; 6] = [
        &["--user", "0"],
        &[],
        &["--user", "7", "--ttl-secs", "0"],
        &["--admin", "--ttl-secs", "31536001"],
        &["--admin", "--count", "5"],
        &["--user", "7", "--count", "0"],
    ];
    for bad in bad_flags {
        assert!(!devstack_token(state.path(), bad).await.status.success(), "{bad:?}");
    }
}

#[tokio::test]
async fn auth_on_with_a_dev_key_that_survives_a_restart() {
    kit::testing::install_crypto_provider();
    let state = StateDir::new();
    let options = |extra| StackOptions { extra, state_dir: Some(state.path()), ..StackOptions::default() };
    let stack = start_stack_with(options(&["--seed-demo"])).await;
    assert!(stack.logged("devstack: auth on; a token: devstack token --user 7 [--admin] --state-dir"));
    let key_mode = std::fs::metadata(state.path().join("jwt-signing.pk8")).unwrap().permissions().mode();
    assert_eq!(key_mode & 0o777, 0o600, "the private key is private");

    let (alice, admin) =
        (token(state.path(), &["--user", "7", "--ttl-secs", "600"]).await, token(state.path(), &["--admin"]).await);
    let (a, b) = (claims(&alice), claims(&admin));
    assert_eq!((&a["sub"], &a["roles"]), (&json!("7"), &json!([])));
    assert_eq!(a["exp"].as_i64().unwrap() - a["iat"].as_i64().unwrap(), 600);
    assert_eq!((&b["sub"], &b["roles"]), (&json!("1"), &json!(["admin"])));
    assert_eq!(b["exp"].as_i64().unwrap() - b["iat"].as_i64().unwrap(), 3600);
    let crowd = devstack_token(state.path(), &["--user", "7", "--count", "3"]).await;
    assert!(crowd.status.success());
    let subs: Vec<Value> = String::from_utf8(crowd.stdout).unwrap().lines().map(|t| claims(t)["sub"].clone()).collect();
    assert_eq!(subs, [json!("7"), json!("8"), json!("9")], "--count: consecutive users, a token a line");

    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", stack.gateway);
    let listed: Value = http.get(url("/v1/products")).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["totalItems"], 5, "public read without a token; --seed-demo seeded as an admin");
    assert_eq!(status(http.get(url("/v1/points/7")), None).await, 401);
    assert_eq!(status(http.get(url("/v1/points/7")), Some(&alice)).await, 200);
    assert_eq!(status(http.get(url("/v1/points/8")), Some(&alice)).await, 403);
    let seeded: Value = http
        .get(url("/v1/points/1"))
        .header("authorization", format!("Bearer {admin}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seeded["balance"], 1_000_000, "demo points charged as an admin");
    let product = json!({"name": "Keyboard", "price": 100, "stock": 5});
    assert_eq!(status(http.post(url("/v1/products")).json(&product), None).await, 401);
    assert_eq!(status(http.post(url("/v1/products")).json(&product), Some(&alice)).await, 403);
    assert_eq!(status(http.post(url("/v1/products")).json(&product), Some(&admin)).await, 201);
    assert!(stack.stop().await.success());

    // Same state dir: same key, so the tokens minted before the restart still verify.
    let key_before = std::fs::read(state.path().join("jwt-signing.pk8")).unwrap();
    let stack = start_stack_with(options(&[])).await;
    assert_eq!(std::fs::read(state.path().join("jwt-signing.pk8")).unwrap(), key_before);
    let url = |path: &str| format!("{}{path}", stack.gateway);
    assert_eq!(status(http.get(url("/v1/points/7")), Some(&alice)).await, 200);
    assert_eq!(status(http.get(url("/v1/points/8")), Some(&alice)).await, 403);
    assert_eq!(status(http.post(url("/v1/products")).json(&product), Some(&admin)).await, 201);
    assert!(stack.stop().await.success());
}
