//! Metrics of the blob sweep ([`crate::ingest::sweep`]): orphan blobs removed, and
//! index rows found without their blob (a gauge: what the last sweep saw).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::ingest::sweep::SweepReport;

/// The sweep's metrics.
#[derive(Debug, Clone, Default)]
pub struct SweepMetrics {
    sweeps: Counter,
    orphans_removed: Counter,
    rows_without_blob: Gauge,
    temp_removed: Counter,
}

impl SweepMetrics {
    /// Registers the sweep's metrics in `registry`.
    pub(super) fn register(registry: &mut Registry) -> SweepMetrics {
        let metrics = SweepMetrics::default();
        registry.register(
            "blob_sweeps",
            "Blob sweeps finished (at start and every [ingest] sweep_interval_secs)",
            metrics.sweeps.clone(),
        );
        registry.register(
            "orphan_blobs_removed",
            "Blobs without an index row (a crash between blob commit and index write) deleted by the sweep",
            metrics.orphans_removed.clone(),
        );
        registry.register(
            "index_rows_without_blob",
            "Index rows whose blob is missing, as the last sweep found them (never deleted; restore from backup)",
            metrics.rows_without_blob.clone(),
        );
        registry.register(
            "abandoned_temp_files_removed",
            "Temp files of this node's ended processes removed by the sweep",
            metrics.temp_removed.clone(),
        );
        metrics
    }

    /// Records a finished sweep.
    pub fn record(&self, report: &SweepReport) {
        self.sweeps.inc();
        self.orphans_removed.inc_by(report.orphans_removed);
        self.temp_removed.inc_by(report.temp_removed);
        if !report.incomplete || report.rows_without_blob > 0 {
            self.rows_without_blob
                .set(i64::try_from(report.rows_without_blob).unwrap_or(i64::MAX));
        }
    }
}
