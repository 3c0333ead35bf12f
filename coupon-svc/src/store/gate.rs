//! The Redis issue gate: one Lua step per issue request rejects a holder, rejects when the
//! count reached the total, else admits the user (DESIGN.md, "First-come coupons").
//!
//! The gate is a sorted set per coupon: members are admitted users, scored by admission
//! time (Redis's own clock), plus a sentinel `_` that says "this gate is complete". A gate
//! without its sentinel (Redis restarted or flushed) is rebuilt from MySQL before anyone is
//! admitted. Counting is `ZCARD`, so giving an admission back (`undo`) is exact. An admission
//! whose holder died before writing MySQL would block a copy for ever; `reconcile` drops
//! such admissions once they are old enough that no write can still be in flight.

use std::sync::Arc;

use kit::cache::Redis;
use redis::Script;

use crate::domain::CouponError;

const SENTINEL: &str = "_";

const ADMIT: &str = r"
if redis.call('ZSCORE', KEYS[1], '_') == false then return -3 end
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return -1 end
local issued = redis.call('ZCARD', KEYS[1]) - 1
if issued >= tonumber(ARGV[2]) then return -2 end
local t = redis.call('TIME')
redis.call('ZADD', KEYS[1], t[1] * 1000 + math.floor(t[2] / 1000), ARGV[1])
return issued + 1
";

/// Adds MySQL's holders (score 1: long admitted) and then the sentinel. A union, so an
/// admission made meanwhile by another replica is kept.
const REBUILD: &str = r"
for i = 1, #ARGV do redis.call('ZADD', KEYS[1], 'NX', 1, ARGV[i]) end
redis.call('ZADD', KEYS[1], 0, '_')
return redis.call('ZCARD', KEYS[1]) - 1
";

/// Removes `ARGV` members only if still scored at or below the cutoff `ARGV[1]` (an admission
/// renewed meanwhile is left alone).
const DROP_STALE: &str = r"
local n = 0
for i = 2, #ARGV do
  local s = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if s and tonumber(s) <= tonumber(ARGV[1]) and ARGV[i] ~= '_' then
    n = n + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return n
";

/// Redis's clock, read on the node that holds `KEYS[1]`.
const CLOCK: &str = "return redis.call('TIME')";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Admitted as the n-th holder the gate knows of.
    Admitted(i64),
    AlreadyIssued,
    SoldOut,
    /// The gate has no sentinel: rebuild it from MySQL first.
    Missing,
}

#[derive(Clone)]
pub struct IssueGate {
    conn: Redis,
    key_prefix: String,
    admit: Arc<Script>,
    rebuild: Arc<Script>,
    drop_stale: Arc<Script>,
    clock: Arc<Script>,
}

fn gate_err(err: redis::RedisError) -> CouponError {
    kit::cache::count_error("coupon_gate");
    CouponError::Gate(anyhow::Error::new(err))
}

impl IssueGate {
    pub fn new(conn: Redis, key_prefix: &str) -> Self {
        Self {
            conn,
            key_prefix: format!("{key_prefix}coupon:gate:"),
            admit: Arc::new(Script::new(ADMIT)),
            rebuild: Arc::new(Script::new(REBUILD)),
            drop_stale: Arc::new(Script::new(DROP_STALE)),
            clock: Arc::new(Script::new(CLOCK)),
        }
    }

    /// `...coupon:gate:{42}`: the coupon id is the key's hash tag, so on a Redis Cluster every
    /// key of one coupon lands in one slot and a script may touch them together.
    fn key(&self, coupon_id: i64) -> String {
        format!("{}{{{coupon_id}}}", self.key_prefix)
    }

    pub async fn admit(&self, coupon_id: i64, user_id: i64, total: i64) -> Result<Admission, CouponError> {
        let mut conn = self.conn.clone();
        let answer: i64 = self
            .admit
            .key(self.key(coupon_id))
            .arg(user_id)
            .arg(total)
            .invoke_async(&mut conn)
            .await
            .map_err(gate_err)?;
        Ok(match answer {
            -1 => Admission::AlreadyIssued,
            -2 => Admission::SoldOut,
            -3 => Admission::Missing,
            n => Admission::Admitted(n),
        })
    }

    /// Users the gate of `coupon_id` has admitted, and whether the gate is complete (its
    /// sentinel present); `None` for a gate Redis does not hold at all.
    pub async fn admitted(&self, coupon_id: i64) -> Result<Option<(i64, bool)>, CouponError> {
        let mut conn = self.conn.clone();
        let (members, sentinel): (i64, Option<f64>) = redis::pipe()
            .cmd("ZCARD")
            .arg(self.key(coupon_id))
            .cmd("ZSCORE")
            .arg(self.key(coupon_id))
            .arg(SENTINEL)
            .query_async(&mut conn)
            .await
            .map_err(gate_err)?;
        Ok((members > 0).then(|| (members - i64::from(sentinel.is_some()), sentinel.is_some())))
    }

    /// Gives an admission back (its MySQL write did not happen).
    pub async fn undo(&self, coupon_id: i64, user_id: i64) {
        let mut conn = self.conn.clone();
        let result: redis::RedisResult<i64> =
            redis::cmd("ZREM").arg(self.key(coupon_id)).arg(user_id).query_async(&mut conn).await;
        if let Err(err) = result {
            kit::cache::count_error("coupon_gate");
            tracing::warn!(error = %err, coupon_id, user_id, "could not undo a gate admission; reconcile will drop it");
        }
    }

    /// Makes the gate complete again with MySQL's holders.
    pub async fn rebuild(&self, coupon_id: i64, holders: &[i64]) -> Result<(), CouponError> {
        let mut conn = self.conn.clone();
        // Chunks keep each Lua step short; the sentinel only lands with the last one.
        let chunks: Vec<&[i64]> = if holders.is_empty() { vec![&[]] } else { holders.chunks(5_000).collect() };
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.into_iter().enumerate() {
            if i < last {
                let mut cmd = redis::cmd("ZADD");
                cmd.arg(self.key(coupon_id)).arg("NX");
                for user in chunk {
                    cmd.arg(1).arg(*user);
                }
                cmd.query_async::<i64>(&mut conn).await.map_err(gate_err)?;
            } else {
                let mut invocation = self.rebuild.key(self.key(coupon_id));
                for user in chunk {
                    invocation.arg(*user);
                }
                invocation.invoke_async::<i64>(&mut conn).await.map_err(gate_err)?;
            }
        }
        tracing::info!(coupon_id, holders = holders.len(), "issue gate rebuilt from MySQL");
        Ok(())
    }

    /// Marks admissions as written to MySQL (score 1), so the reconciler no longer looks at them.
    pub async fn confirm(&self, coupon_id: i64, users: &[i64]) {
        if users.is_empty() {
            return;
        }
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(self.key(coupon_id)).arg("XX");
        for user in users {
            cmd.arg(1).arg(*user);
        }
        if let Err(err) = cmd.query_async::<i64>(&mut conn).await {
            tracing::debug!(error = %err, coupon_id, "could not confirm admissions; the reconciler will");
        }
    }

    /// Admissions at least `min_age_ms` old, as (user, score), for reconciling with MySQL.
    pub async fn old_admissions(&self, coupon_id: i64, min_age_ms: i64) -> Result<(i64, Vec<i64>), CouponError> {
        let mut conn = self.conn.clone();
        // The clock of the node that holds the gate (the one ADMIT scored with): on a cluster
        // a bare TIME would go to any node.
        let (secs, micros): (i64, i64) =
            self.clock.key(self.key(coupon_id)).invoke_async(&mut conn).await.map_err(gate_err)?;
        let cutoff = secs * 1000 + micros / 1000 - min_age_ms;
        let members: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.key(coupon_id))
            .arg(2)
            .arg(cutoff)
            .query_async(&mut conn)
            .await
            .map_err(gate_err)?;
        Ok((cutoff, members.iter().filter(|m| m.as_str() != SENTINEL).filter_map(|m| m.parse().ok()).collect()))
    }

    pub async fn drop_stale(&self, coupon_id: i64, cutoff: i64, users: &[i64]) -> Result<i64, CouponError> {
        if users.is_empty() {
            return Ok(0);
        }
        let mut conn = self.conn.clone();
        let mut invocation = self.drop_stale.key(self.key(coupon_id));
        invocation.arg(cutoff);
        for user in users {
            invocation.arg(*user);
        }
        invocation.invoke_async(&mut conn).await.map_err(gate_err)
    }
}
