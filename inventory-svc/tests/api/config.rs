use std::process::Command;

#[test]
fn a_bad_env_value_exits_64_naming_the_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_inventory-svc"))
        .env("INVENTORY_GRPC_ADDR", "not-an-address")
        .output()
        .expect("binary runs");
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("INVENTORY_GRPC_ADDR"), "stderr: {stderr}");
}

#[test]
fn a_mistyped_number_exits_64_naming_the_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_inventory-svc"))
        .env("INVENTORY_DB_MAX_CONNECTIONS", "many")
        .output()
        .expect("binary runs");
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("INVENTORY_DB_MAX_CONNECTIONS"));
}
