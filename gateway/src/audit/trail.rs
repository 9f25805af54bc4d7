//! [`AuditTrail`]: the handle every part of the gateway records events through, and
//! the background writer behind it.
//!
//! `record` only queues: a bounded channel feeds one writer task that inserts whatever
//! has queued up in one transaction. When the queue is full the caller waits (events
//! are never dropped for lack of room). [`AuditTrail::flush`] returns once everything
//! recorded before it is in the database, which is how shutdown loses nothing.
//! Stored events are then offered to the syslog export, which may drop them (the
//! database stays the record).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::task::TaskTracker;
use tracing::{error, warn};

use super::AuditEvent;
use super::store::insert_batch;
use super::syslog::SyslogExport;
use crate::db::{Index, now_millis};

/// Largest batch written in one transaction.
const MAX_BATCH: usize = 256;
/// Tries of a failing batch before its events are given up (and logged).
const WRITE_TRIES: u32 = 5;

enum Message {
    Event(i64, AuditEvent),
    Flush(oneshot::Sender<()>),
}

/// Records audit events without waiting for the database. Cheap to clone; every
/// clone feeds the same writer.
#[derive(Clone)]
pub struct AuditTrail {
    queue: mpsc::Sender<Message>,
    /// Sends started from synchronous code ([`AuditTrail::record_detached`]).
    detached: TaskTracker,
    syslog: Option<Arc<SyslogExport>>,
}

impl std::fmt::Debug for AuditTrail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditTrail")
            .field("queued", &self.queued())
            .field("syslog", &self.syslog.is_some())
            .finish()
    }
}

impl AuditTrail {
    /// Starts the writer (call within a runtime). `capacity` bounds the queue;
    /// `syslog`, when given, receives every stored event.
    pub fn start(index: Index, capacity: usize, syslog: Option<SyslogExport>) -> AuditTrail {
        let (queue, rx) = mpsc::channel(capacity.max(1));
        let syslog = syslog.map(Arc::new);
        tokio::spawn(run(index, rx, syslog.clone()));
        AuditTrail {
            queue,
            detached: TaskTracker::new(),
            syslog,
        }
    }

    /// Queues `event`, stamped with the current time; waits only while the queue is
    /// full.
    pub async fn record(&self, event: AuditEvent) {
        let message = Message::Event(now_millis(), event);
        if let Err(mpsc::error::SendError(Message::Event(_, event))) =
            self.queue.send(message).await
        {
            error!(kind = %event.kind, "audit writer has stopped; event not recorded");
        }
    }

    /// Queues `event` from code that cannot wait (a `Drop`): at once when there is
    /// room, otherwise from a task that [`AuditTrail::flush`] waits for.
    pub fn record_detached(&self, event: AuditEvent) {
        let message = Message::Event(now_millis(), event);
        let message = match self.queue.try_send(message) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                error!("audit writer has stopped; event not recorded");
                return;
            }
            Err(mpsc::error::TrySendError::Full(message)) => message,
        };
        let queue = self.queue.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                // The JoinHandle is not needed: `flush` waits through the tracker.
                drop(self.detached.spawn_on(
                    async move {
                        let _ = queue.send(message).await;
                    },
                    &runtime,
                ));
            }
            Err(_) => error!("no runtime to queue an audit event on; event not recorded"),
        }
    }

    /// Returns once every event recorded before this call is in the database (or was
    /// given up after repeated write failures, which is logged).
    pub async fn flush(&self) {
        self.detached.close();
        self.detached.wait().await;
        self.detached.reopen();
        let (done, wait) = oneshot::channel();
        if self.queue.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Flushes, then gives the syslog export up to `grace` to deliver what it holds.
    pub async fn shutdown(&self, grace: Duration) {
        self.flush().await;
        if let Some(syslog) = &self.syslog {
            syslog.drain(grace).await;
        }
    }

    /// Events (and flush requests) queued for the database writer.
    pub fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Syslog messages dropped so far (full buffer or unreachable collector).
    pub fn syslog_dropped(&self) -> u64 {
        self.syslog.as_ref().map_or(0, |s| s.dropped())
    }

    /// A probe of the queue depths that does not keep the writer running (for
    /// `/metrics`).
    pub fn probe(&self) -> AuditProbe {
        AuditProbe {
            queue: self.queue.downgrade(),
            syslog: self.syslog.clone(),
        }
    }
}

/// Reads the audit trail's queue depths and syslog drops; see [`AuditTrail::probe`].
#[derive(Clone)]
pub struct AuditProbe {
    queue: mpsc::WeakSender<Message>,
    syslog: Option<Arc<SyslogExport>>,
}

impl std::fmt::Debug for AuditProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditProbe").finish_non_exhaustive()
    }
}

impl AuditProbe {
    /// Events queued for the database writer (0 once the trail is gone).
    pub fn queued(&self) -> usize {
        self.queue
            .upgrade()
            .map_or(0, |q| q.max_capacity() - q.capacity())
    }

    /// Messages waiting in the syslog export's buffer.
    pub fn syslog_queued(&self) -> usize {
        self.syslog.as_ref().map_or(0, |s| s.queued())
    }

    /// Syslog messages dropped so far.
    pub fn syslog_dropped(&self) -> u64 {
        self.syslog.as_ref().map_or(0, |s| s.dropped())
    }
}

async fn run(index: Index, mut rx: mpsc::Receiver<Message>, syslog: Option<Arc<SyslogExport>>) {
    let mut batch = Vec::new();
    let mut flushes = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Event(at, event) => batch.push((at, event)),
                Message::Flush(done) => flushes.push(done),
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            write(&index, &batch, syslog.as_deref()).await;
            batch.clear();
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

async fn write(index: &Index, batch: &[(i64, AuditEvent)], syslog: Option<&SyslogExport>) {
    let mut delay = Duration::from_millis(100);
    for attempt in 1..=WRITE_TRIES {
        match insert_batch(index, batch).await {
            Ok(stored) => {
                if let Some(syslog) = syslog {
                    for event in &stored {
                        syslog.offer(event);
                    }
                }
                return;
            }
            Err(e) if attempt < WRITE_TRIES => {
                warn!(error = %e, events = batch.len(), attempt, "cannot write audit events; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => {
                for (at, event) in batch {
                    error!(target: "audit", error = %e, occurred_at = at, kind = %event.kind, outcome = %event.outcome,
                        facility_id = event.facility_id.map(|f| f.0), user = event.username.as_deref(),
                        detail = %event.detail, count = event.object_count, "audit event could not be stored");
                }
            }
        }
    }
}
