//! Background thumbnails after ingest, off the C-STORE path: the ingest path offers
//! each newly committed instance's series ([`ThumbnailQueue::offer`], which never
//! waits); a series already waiting is not queued again, so a burst of one series
//! makes one thumbnail; when the bounded queue is full the offer is dropped and
//! counted (`thumbnail_queue_dropped`). One worker task takes a series once it has
//! waited `delay` (more of the burst arrives meanwhile) and makes the thumbnail of
//! its representative instance through [`Thumbnails::series`], rendering on one
//! thread of its own at the lowest CPU priority ([`LowPriority`], nice 19 on Linux):
//! at most one core's worth of work whatever the ingest rate, and when the cores are
//! busy the ingest path (normal priority) goes first, so that thumbnailing does not
//! slow ingest down (`scripts/bench-ingest.sh COUNT ROUNDS --thumbnails`). The worker
//! and its thread end when the last queue handle is dropped.

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
        tokio::spawn(work(
            rx,
            pending.clone(),
            service,
            spec,
            LowPriority::spawn(),
        ));
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
    background: std::io::Result<LowPriority>,
) {
    let background = match background {
        Ok(thread) => Some(thread),
        Err(e) => {
            warn!(error = %e, "cannot start the background thumbnail thread; rendering on the blocking pool");
            None
        }
    };
    while let Some(job) = rx.recv().await {
        tokio::time::sleep_until(job.due).await;
        // From here on, a new instance of the series queues it again: the
        // representative may change.
        if let Ok(mut pending) = pending.lock() {
            pending.remove(&(job.facility.id, job.series.clone()));
        }
        let made = match &background {
            Some(thread) => {
                service
                    .series_in_background(&job.facility, &job.series, spec, thread)
                    .await
            }
            None => service.series(&job.facility, &job.series, spec).await,
        };
        match made {
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

/// A job for the [`LowPriority`] thread.
type Task = Box<dyn FnOnce() + Send>;

/// One thread at the lowest CPU priority that runs the background thumbnails'
/// CPU-bound work, one job at a time. On Linux a thread's nice value is its own, so
/// only this thread is lowered (to 19); elsewhere it runs at normal priority. Cheap
/// to clone; the thread ends when the last handle is dropped.
#[derive(Debug, Clone)]
pub struct LowPriority {
    tx: std::sync::mpsc::Sender<Task>,
}

impl LowPriority {
    /// Starts the thread.
    pub fn spawn() -> std::io::Result<LowPriority> {
        let (tx, rx) = std::sync::mpsc::channel::<Task>();
        std::thread::Builder::new()
            .name("thumbnails".into())
            .spawn(move || {
                lower_own_priority();
                while let Ok(task) = rx.recv() {
                    // A panicking job drops its answer channel (its caller sees an
                    // error); the thread lives on for the next one.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(task));
                }
            })?;
        Ok(LowPriority { tx })
    }

    /// Runs `job` on the thread and waits for its result; `None` if the job
    /// panicked or the thread is gone.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        let task: Task = Box::new(move || {
            let _ = done.send(job());
        });
        self.tx.send(task).ok()?;
        result.await.ok()
    }
}

/// Lowers the calling thread to nice 19 (Linux: `setpriority(PRIO_PROCESS, 0)`
/// applies to the calling thread only). Failing is not fatal: logged.
fn lower_own_priority() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(None, 19) {
        warn!(error = %e, "cannot lower the background thumbnail thread's priority");
    }
}
