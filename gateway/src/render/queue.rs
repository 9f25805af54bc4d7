//! Background thumbnails after ingest, off the C-STORE path: the ingest path offers
//! each newly committed instance's series ([`ThumbnailQueue::offer`], which never
//! waits); a series already waiting is not queued again, so a burst of one series
//! makes one thumbnail; when the bounded queue is full the offer is dropped and
//! counted (`thumbnail_queue_dropped`). One worker task takes a series once it has
//! waited `delay` (more of the burst arrives meanwhile) and makes the thumbnail of
//! its representative instance through [`Thumbnails::series`], rendering on the
//! blocking pool: at most one core's worth of work, whatever the ingest rate. The
//! worker ends when the last queue handle is dropped.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::RenderError;
use super::thumbs::{ThumbnailError, ThumbnailSpec, Thumbnails};
use crate::db::Facility;
use crate::domain::{FacilityId, Uid};
use crate::metrics::thumbnails::ThumbnailMetrics;

/// A series waiting for its thumbnail.
#[derive(Debug)]
struct Job {
    facility: Facility,
    series: Uid,
    due: Instant,
}

type Pending = Arc<Mutex<HashSet<(FacilityId, Uid)>>>;

/// The handle the ingest path offers work through (cheap to clone).
#[derive(Debug, Clone)]
pub struct ThumbnailQueue {
    tx: mpsc::Sender<Job>,
    pending: Pending,
    delay: Duration,
    metrics: ThumbnailMetrics,
}

impl ThumbnailQueue {
    /// Starts the worker (call within a runtime): `capacity` series may wait, each
    /// at least `delay`, for a thumbnail of `spec` made by `service`.
    pub fn spawn(
        service: Thumbnails,
        spec: ThumbnailSpec,
        capacity: usize,
        delay: Duration,
        metrics: ThumbnailMetrics,
    ) -> ThumbnailQueue {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let pending = Pending::default();
        tokio::spawn(work(rx, pending.clone(), service, spec));
        ThumbnailQueue {
            tx,
            pending,
            delay,
            metrics,
        }
    }

    /// Asks for the thumbnail of `series` (it has a new instance). Never waits.
    pub fn offer(&self, facility: &Facility, series: &Uid) {
        let key = (facility.id, series.clone());
        {
            let Ok(mut pending) = self.pending.lock() else {
                return;
            };
            if !pending.insert(key.clone()) {
                return; // Already waiting: this burst gets one thumbnail.
            }
        }
        let job = Job {
            facility: facility.clone(),
            series: series.clone(),
            due: Instant::now() + self.delay,
        };
        if self.tx.try_send(job).is_err() {
            self.metrics.dropped.inc();
            if let Ok(mut pending) = self.pending.lock() {
                pending.remove(&key);
            }
        }
    }
}

async fn work(
    mut rx: mpsc::Receiver<Job>,
    pending: Pending,
    service: Thumbnails,
    spec: ThumbnailSpec,
) {
    while let Some(job) = rx.recv().await {
        tokio::time::sleep_until(job.due).await;
        // From here on, a new instance of the series queues it again: the
        // representative may change.
        if let Ok(mut pending) = pending.lock() {
            pending.remove(&(job.facility.id, job.series.clone()));
        }
        match service.series(&job.facility, &job.series, spec).await {
            Ok(_) => {}
            Err(ThumbnailError::Render(
                e @ (RenderError::Refused(_) | RenderError::NoPixelData),
            )) => {
                debug!(facility = %job.facility.name, reason = %e, "no background thumbnail");
            }
            Err(e) => {
                warn!(facility = %job.facility.name, error = %e, "background thumbnail failed");
            }
        }
    }
}
