//! Metrics of thumbnails ([`crate::render::thumbs`], [`crate::render::queue`]):
//! thumbnails made, served from the cache, refused (burned-in risk), failed, and
//! background work dropped because the queue was full.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

/// The thumbnails' metrics (cheap to clone: the counters are shared).
#[derive(Debug, Clone, Default)]
pub struct ThumbnailMetrics {
    /// Thumbnails rendered and stored.
    pub made: Counter,
    /// Thumbnails served from the cache.
    pub cache_hits: Counter,
    /// Instances not rendered for burned-in risk.
    pub refused: Counter,
    /// Thumbnails that could not be made (corrupt or unsupported pixel data, I/O).
    pub failed: Counter,
    /// Background requests dropped because the queue was full.
    pub dropped: Counter,
}

impl ThumbnailMetrics {
    /// Registers the thumbnails' metrics in `registry`.
    pub(super) fn register(registry: &mut Registry) -> ThumbnailMetrics {
        let metrics = ThumbnailMetrics::default();
        let all = [
            (
                "thumbnails_made",
                "Thumbnails rendered and cached",
                &metrics.made,
            ),
            (
                "thumbnail_cache_hits",
                "Thumbnails served from the blob cache",
                &metrics.cache_hits,
            ),
            (
                "thumbnails_refused",
                "Thumbnails not made: burned-in risk class without Burned In Annotation = NO, or YES",
                &metrics.refused,
            ),
            (
                "thumbnails_failed",
                "Thumbnails that could not be made (no, corrupt or unsupported pixel data; storage errors)",
                &metrics.failed,
            ),
            (
                "thumbnail_queue_dropped",
                "Background thumbnail requests dropped because the queue ([thumbnails] queue) was full",
                &metrics.dropped,
            ),
        ];
        for (name, help, counter) in all {
            registry.register(name, help, counter.clone());
        }
        metrics
    }
}
