//! `db_pool_acquire_wait_seconds`: how long each MySQL query or transaction waited for a
//! pooled connection.
//!
//! sqlx's pool keeps no count of waits, but it emits one `tracing` event per acquire with the
//! time it took (target `sqlx::pool::acquire`, field `acquired_after_secs`; `kit::db` asks for
//! it at TRACE). This layer, filtered to that target alone, records the field in a histogram,
//! so a saturated pool shows up as waits, not only as "all connections in use".

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::Context;

const ACQUIRE_TARGET: &str = "sqlx::pool::acquire";
const ACQUIRED_AFTER: &str = "acquired_after_secs";

/// The layer with its own filter: it sees sqlx's acquire events and nothing else.
pub(crate) fn layer<S>() -> impl Layer<S>
where
    S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    PoolWaits.with_filter(Targets::new().with_target(ACQUIRE_TARGET, Level::TRACE))
}

struct PoolWaits;

impl<S: Subscriber> Layer<S> for PoolWaits {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut waited = AcquiredAfter(None);
        event.record(&mut waited);
        if let Some(seconds) = waited.0 {
            metrics::histogram!("db_pool_acquire_wait_seconds").record(seconds);
        }
    }
}

struct AcquiredAfter(Option<f64>);

impl Visit for AcquiredAfter {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == ACQUIRED_AFTER {
            self.0 = Some(value);
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    /// The event sqlx emits, as it emits it, lands in the histogram; other events do not.
    #[test]
    fn an_acquire_event_is_recorded_and_other_events_are_not() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let subscriber = tracing_subscriber::registry().with(super::layer());
        metrics::with_local_recorder(&recorder, || {
            tracing::subscriber::with_default(subscriber, || {
                tracing::trace!(target: "sqlx::pool::acquire", acquired_after_secs = 0.25_f64, "acquired connection");
                tracing::warn!(target: "sqlx::pool::acquire", acquired_after_secs = 3.0_f64, slow_acquire_threshold_secs = 2.0_f64, "slow");
                tracing::info!(acquired_after_secs = 9.0_f64, "someone else's event");
            });
        });
        let text = handle.render();
        assert!(text.contains("db_pool_acquire_wait_seconds_count 2"), "{text}");
        assert!(text.contains("db_pool_acquire_wait_seconds_sum 3.25"), "{text}");
    }
}
