//! Group commit for new instances. Every association hands its finished instance to
//! one writer task, which inserts whatever has queued up meanwhile in a single
//! transaction: under concurrent load the commit flush (the costly part) is paid once
//! per batch instead of once per instance. Each caller still hears back only after
//! the transaction holding its row committed.

use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use super::instances::InstanceRecord;
use super::{DbError, Index};

/// Largest batch committed at once.
const MAX_BATCH: usize = 64;

struct Job {
    record: InstanceRecord,
    reply: oneshot::Sender<Result<bool, DbError>>,
}

/// Handle on the writer task.
#[derive(Debug, Clone)]
pub struct IndexWriter {
    jobs: mpsc::Sender<Job>,
}

impl IndexWriter {
    /// Starts the writer task; it ends when every handle is dropped.
    pub fn spawn(index: Index) -> IndexWriter {
        let (jobs, rx) = mpsc::channel(MAX_BATCH * 4);
        tokio::spawn(run(index, rx));
        IndexWriter { jobs }
    }

    /// Indexes a new instance, like [`Index::insert_instance`], possibly in the same
    /// transaction as other instances.
    pub async fn insert(&self, record: InstanceRecord) -> Result<bool, DbError> {
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
                for (job, inserted) in batch.into_iter().zip(results) {
                    let _ = job.reply.send(Ok(inserted));
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
