//! Group commit for new instances. Every association hands its finished instance to
//! one writer task, which inserts whatever has queued up meanwhile in a single
//! transaction: under concurrent load the commit flush (the costly part) is paid once
//! per batch instead of once per instance. Each caller still hears back only after
//! the transaction holding its row committed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use super::instances::{Indexed, InstanceRecord};
use super::{DbError, Index};

/// Largest batch committed at once.
const MAX_BATCH: usize = 64;

struct Job {
    record: InstanceRecord,
    reply: oneshot::Sender<Result<Indexed, DbError>>,
}

/// Handle on the writer task.
#[derive(Debug, Clone)]
pub struct IndexWriter {
    jobs: mpsc::Sender<Job>,
    /// Instances handed in and not yet answered (queued or being committed).
    pending: Arc<AtomicUsize>,
}

/// Reads how many instances wait for the index writer; see
/// [`IndexWriter::pending_probe`].
#[derive(Debug, Clone)]
pub struct PendingProbe(Arc<AtomicUsize>);

impl PendingProbe {
    /// Instances queued or being committed.
    pub fn pending(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counts one instance as pending for as long as it lives.
struct Pending<'a>(&'a AtomicUsize);

impl<'a> Pending<'a> {
    fn new(count: &'a AtomicUsize) -> Pending<'a> {
        count.fetch_add(1, Ordering::Relaxed);
        Pending(count)
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl IndexWriter {
    /// Starts the writer task; it ends when every handle is dropped.
    pub fn spawn(index: Index) -> IndexWriter {
        let (jobs, rx) = mpsc::channel(MAX_BATCH * 4);
        tokio::spawn(run(index, rx));
        IndexWriter {
            jobs,
            pending: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Instances waiting to be indexed: queued for the writer, or in the batch it is
    /// committing.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// A probe of [`IndexWriter::pending`] that does not keep the writer running
    /// (for `/metrics`).
    pub fn pending_probe(&self) -> PendingProbe {
        PendingProbe(self.pending.clone())
    }

    /// Indexes a new instance and charges the facility's quota, like
    /// [`Index::insert_instance`], possibly in the same transaction as other instances
    /// (each is checked against the quota in turn, inside the transaction).
    pub async fn insert(&self, record: InstanceRecord) -> Result<Indexed, DbError> {
        let _pending = Pending::new(&self.pending);
        let (reply, answer) = oneshot::channel();
        let closed = || DbError::Query(sqlx::Error::PoolClosed);
        self.jobs
            .send(Job { record, reply })
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

async fn run(index: Index, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let records: Vec<&InstanceRecord> = batch.iter().map(|j| &j.record).collect();
        match index.insert_batch(&records).await {
            Ok(results) => {
                for (job, indexed) in batch.into_iter().zip(results) {
                    let _ = job.reply.send(Ok(indexed));
                }
            }
            Err(e) => {
                // One bad row must not fail its neighbours: retry them one by one.
                warn!(error = %e, size = batch.len(), "batched index write failed; retrying singly");
                for job in batch {
                    let result = index.insert_instance(&job.record).await;
                    let _ = job.reply.send(result);
                }
            }
        }
    }
}
