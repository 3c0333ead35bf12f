//! coupon-svc's issue gate straight against Redis: the same Lua script through the same
//! client (`kit::cache::connect`: one multiplexed connection, EVALSHA), with no gRPC, no
//! gateway and no MySQL in between. The ceiling coupon issuance can reach on this machine.

use std::sync::Arc;

use anyhow::Context;
use redis::Script;
use serde_json::{Map, json};

use crate::driver::{Limits, Outcome, run_phased};
use crate::report::Report;
use crate::scenarios::coupon::{ALREADY_ISSUED, Answers, Issued, Race, SOLD_OUT, race_reports};

/// coupon-svc's ADMIT script, verbatim from `coupon-svc/src/store/gate.rs` (private there;
/// a test fails when the two differ). The gate is a sorted set per coupon whose sentinel
/// member `_` (score 0) says it is complete; ARGV is the user id and the total. Answers the
/// admission's position, -1 already admitted, -2 sold out, -3 no sentinel.
pub const ADMIT: &str = r"
if redis.call('ZSCORE', KEYS[1], '_') == false then return -3 end
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return -1 end
local issued = redis.call('ZCARD', KEYS[1]) - 1
if issued >= tonumber(ARGV[2]) then return -2 end
local t = redis.call('TIME')
redis.call('ZADD', KEYS[1], t[1] * 1000 + math.floor(t[2] / 1000), ARGV[1])
return issued + 1
";

const ANSWERS: Answers = ["admitted", "-2 sold out", "-1 already admitted"];

/// The race straight against the gate, over `connections` multiplexed connections
/// (coupon-svc holds one) shared round-robin by the client tasks.
#[derive(Clone, Copy, Debug)]
pub struct GateRace {
    pub race: Race,
    pub connections: usize,
}

fn label(err: &redis::RedisError) -> String {
    if err.is_timeout() {
        "Timeout".to_owned()
    } else if err.is_connection_dropped() {
        "ConnectionDropped".to_owned()
    } else {
        format!("{:?}", err.kind())
    }
}

/// A throwaway gate (its own key prefix, sentinel first, `total` copies), then
/// `users` distinct users race for it and sold-out traffic continues, as through the
/// service. The key is deleted whatever happened.
pub async fn redis_gate(redis_url: &str, cfg: &GateRace, limits: Limits) -> anyhow::Result<Vec<Report>> {
    crate::net::ensure_loopback("redis url", redis_url)?;
    cfg.race.validate()?;
    let prefix = kit::testing::unique_prefix();
    let key = format!("{prefix}loadgen:coupon:gate:1");
    let outcome = run_on_key(redis_url, &key, cfg, limits).await;
    let deleted = kit::cache::delete_prefix(redis_url, &prefix).await;
    let mut reports = outcome?;
    deleted.context("cannot delete the raw gate key")?;
    for report in &mut reports {
        report.param("key", format!("{key} (deleted)"));
    }
    Ok(reports)
}

async fn run_on_key(redis_url: &str, key: &str, cfg: &GateRace, limits: Limits) -> anyhow::Result<Vec<Report>> {
    let opens = (0..cfg.connections.max(1)).map(|_| kit::cache::connect(redis_url));
    let connections = futures::future::try_join_all(opens)
        .await
        .with_context(|| format!("cannot reach Redis at {}", kit::db::redact(redis_url)))?;
    let mut admin = connections[0].clone();
    redis::cmd("ZADD").arg(key).arg(0).arg("_").query_async::<i64>(&mut admin).await?;
    let script = Arc::new(Script::new(ADMIT));
    // Loaded before the clock starts, so every measured call is one EVALSHA.
    script.load_async(&mut admin).await.context("SCRIPT LOAD failed")?;

    let (total, issued) = (cfg.race.total, Issued::default());
    let (shared, log, gate): (Arc<[_]>, _, Arc<str>) = (connections.into(), issued.clone(), key.into());
    let phases = run_phased(cfg.race.clients, cfg.race.pace, limits, cfg.race.users, move |client, seq| {
        let mut conn = shared[client % shared.len()].clone();
        let (script, gate, log) = (script.clone(), gate.clone(), log.clone());
        let user = 1 + seq as i64;
        async move {
            match script.key(&*gate).arg(user).arg(total).invoke_async::<i64>(&mut conn).await {
                Ok(-1) => Outcome::Rejected(ALREADY_ISSUED),
                Ok(-2) => Outcome::Rejected(SOLD_OUT),
                Ok(position) if position >= 1 => {
                    log.record(user, position);
                    Outcome::Ok
                }
                Ok(other) => Outcome::Error(format!("Answer{other}")),
                Err(err) => Outcome::Error(label(&err)),
            }
        }
    })
    .await;

    let (members, sentinel): (i64, Option<f64>) =
        redis::pipe().zcard(key).zscore(key, "_").query_async(&mut admin).await.context("cannot read the gate")?;
    let mut params = Map::new();
    params.insert("redis".into(), json!(kit::db::redact(redis_url)));
    params.insert("connections".into(), json!(cfg.connections.max(1)));
    params.insert("users".into(), json!(cfg.race.users));
    params.insert("total".into(), json!(total));
    let issued = issued.take();
    let mut reports = race_reports("raw-redis-gate", phases, &params, &ANSWERS, total, &issued);
    let detail = format!("ZCARD {members} = {} admitted + sentinel (score {sentinel:?})", issued.len());
    let errors = reports[2].run.tally.errors_total() as i64;
    let admitted = members - 1;
    let counted = admitted == issued.len() as i64 || (errors > 0 && admitted <= issued.len() as i64 + errors);
    reports[2].check("redis gate", sentinel == Some(0.0) && counted, detail);
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::ADMIT;

    #[test]
    fn the_script_is_coupon_svcs_own() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../coupon-svc/src/store/gate.rs");
        let gate = std::fs::read_to_string(path).expect("coupon-svc's gate.rs is in the workspace");
        assert!(gate.contains(&format!("const ADMIT: &str = r\"{ADMIT}\";")), "ADMIT differs from {path}");
    }
}
