//! Read replicas of a service's schema: reads that no decision depends on (catalog listing and
//! search) go to a replica that is up and current, else to the primary.
//!
//! Currency is measured, not assumed. While replicas are configured, the service writes a
//! heartbeat row on the primary every `beat_every` and reads it back from each replica; a
//! replica whose copy is older than `max_lag`, or that did not answer its last probe, gets no
//! reads until a probe finds it current again. A read that fails or times out on a replica is
//! run again on the primary at once, so a stopped replica costs one slow read, not an error.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, Statement};
use tokio_util::sync::CancellationToken;

use crate::db::{DbSetupError, redact};

/// The heartbeat row a service with replicas keeps on its primary (created by its migrations).
pub const CREATE_HEARTBEAT_TABLE: &str = "CREATE TABLE replica_heartbeat (
    id TINYINT NOT NULL,
    beat DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT replica_heartbeat_one_row CHECK (id = 1)
) ENGINE=InnoDB";

const BEAT: &str = "INSERT INTO replica_heartbeat (id, beat) VALUES (1, NOW(6)) ON DUPLICATE KEY UPDATE beat = NOW(6)";
/// Microseconds between the newest beat this server has and its own clock.
const LAG: &str = "SELECT TIMESTAMPDIFF(MICROSECOND, beat, NOW(6)) FROM replica_heartbeat WHERE id = 1";

#[derive(Clone, Debug)]
pub struct ReplicaSettings {
    /// MySQL servers (no database path) that replicate the primary's schema.
    pub urls: Vec<String>,
    /// The schema, named as on the primary.
    pub schema: String,
    pub max_connections: u32,
    /// A replica further behind than this gets no reads.
    pub max_lag: Duration,
    pub beat_every: Duration,
    /// Longest a read may take on a replica before it is run on the primary instead.
    pub read_timeout: Duration,
}

struct Replica {
    /// The URL without its password: a label for logs and metrics.
    label: String,
    db: DatabaseConnection,
    usable: AtomicBool,
}

/// Where a read ran; what [`ReadRouter::read`] tells the metrics and its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadSource {
    Replica,
    Primary,
}

/// Routes reads to usable replicas in turn, or to the primary. Cheap to clone.
#[derive(Clone)]
pub struct ReadRouter {
    primary: DatabaseConnection,
    replicas: Arc<[Replica]>,
    next: Arc<AtomicUsize>,
    read_timeout: Duration,
}

impl ReadRouter {
    /// Every read on the primary: no replicas configured.
    pub fn primary_only(primary: DatabaseConnection) -> Self {
        Self { primary, replicas: Arc::from([]), next: Arc::default(), read_timeout: Duration::from_secs(1) }
    }

    /// Pools on the replicas (connected lazily: a replica that is down at start is just not
    /// used yet) and the heartbeat task, which runs until `shutdown`.
    pub async fn start(
        primary: DatabaseConnection,
        settings: &ReplicaSettings,
        shutdown: CancellationToken,
    ) -> Result<Self, DbSetupError> {
        let mut replicas = Vec::with_capacity(settings.urls.len());
        for url in &settings.urls {
            let label = redact(url);
            let mut options =
                crate::db::options(crate::db::schema_url(url, &settings.schema), settings.max_connections);
            options
                .min_connections(0)
                .connect_lazy(true)
                .connect_timeout(settings.read_timeout)
                .acquire_timeout(settings.read_timeout);
            let db = Database::connect(options)
                .await
                .map_err(|source| DbSetupError::Connect { url: label.clone(), source })?;
            replicas.push(Replica { label, db, usable: AtomicBool::new(false) });
        }
        let router =
            Self { primary, replicas: Arc::from(replicas), next: Arc::default(), read_timeout: settings.read_timeout };
        if !router.replicas.is_empty() {
            tokio::spawn(router.clone().heartbeat(settings.max_lag, settings.beat_every, shutdown));
        }
        Ok(router)
    }

    /// The primary, for reads a decision depends on.
    pub fn primary(&self) -> &DatabaseConnection {
        &self.primary
    }

    /// Runs `query` on a usable replica, or on the primary when none is usable or the replica
    /// failed it. Returns where the answer came from.
    pub async fn read<T, E, F, Fut>(&self, query: F) -> Result<(T, ReadSource), E>
    where
        F: Fn(DatabaseConnection) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        if let Some(replica) = self.pick() {
            match tokio::time::timeout(self.read_timeout, query(replica.db.clone())).await {
                Ok(Ok(answer)) => {
                    metrics::counter!("db_reads_total", "source" => "replica").increment(1);
                    return Ok((answer, ReadSource::Replica));
                }
                Ok(Err(err)) => {
                    tracing::warn!(replica = %replica.label, error = %err, "read failed on a replica; using the primary");
                }
                Err(_) => {
                    tracing::warn!(replica = %replica.label, "read timed out on a replica; using the primary");
                }
            }
            // Until a probe finds it healthy again.
            replica.usable.store(false, Ordering::Relaxed);
        }
        metrics::counter!("db_reads_total", "source" => "primary").increment(1);
        query(self.primary.clone()).await.map(|answer| (answer, ReadSource::Primary))
    }

    fn pick(&self) -> Option<&Replica> {
        let n = self.replicas.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n).map(|i| &self.replicas[(start + i) % n]).find(|r| r.usable.load(Ordering::Relaxed))
    }

    async fn heartbeat(self, max_lag: Duration, every: Duration, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let probe_timeout = every.max(Duration::from_millis(100)) * 2;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let beat = Statement::from_string(DbBackend::MySql, BEAT);
            if let Err(err) = self.primary.execute_raw(beat).await {
                tracing::warn!(error = %err, "replica heartbeat write failed on the primary");
            }
            for replica in self.replicas.iter() {
                let lag = tokio::time::timeout(probe_timeout, lag_of(&replica.db)).await;
                let usable = match lag {
                    Ok(Ok(Some(lag))) => {
                        metrics::gauge!("db_replica_lag_seconds", "replica" => replica.label.clone())
                            .set(lag.as_secs_f64());
                        lag <= max_lag
                    }
                    Ok(Ok(None)) => false,
                    Ok(Err(err)) => {
                        tracing::debug!(replica = %replica.label, error = %err, "replica probe failed");
                        false
                    }
                    Err(_) => false,
                };
                let was = replica.usable.swap(usable, Ordering::Relaxed);
                if was != usable {
                    tracing::info!(replica = %replica.label, usable, "replica {}", if usable { "in use" } else { "left out" });
                }
                metrics::gauge!("db_replica_usable", "replica" => replica.label.clone())
                    .set(f64::from(u8::from(usable)));
            }
        }
    }
}

/// `None` while the replica has no beat yet.
async fn lag_of(db: &DatabaseConnection) -> Result<Option<Duration>, DbErr> {
    let row = db.query_one_raw(Statement::from_string(DbBackend::MySql, LAG)).await?;
    let Some(row) = row else { return Ok(None) };
    let micros: Option<i64> = row.try_get_by_index(0)?;
    Ok(micros.map(|m| Duration::from_micros(m.max(0) as u64)))
}
