//! Outbox writes that failed (a full disk, a locked or read-only database) after a
//! try had ended: the row is still claimed (`sending`), so nothing else would ever
//! pick it up again before a restart. The forwarder keeps each such write here and
//! makes it again at the start of every round until it succeeds: the row ends in the
//! state its try earned (delivered, refused, due again, held, dead), or, for rows
//! never tried, back in the queue. Nothing is sent again because of a failed write.

use std::sync::Mutex;

use tracing::{info, warn};

use crate::outbox::{Claimed, now_millis};

use super::{Attempt, Forwarder, backoff};

/// A write still owed to the outbox.
#[derive(Debug, Clone)]
pub(super) enum Owed {
    /// The result of a try of `row`.
    Result {
        /// The row as claimed.
        row: Claimed,
        /// How the try ended.
        attempt: Attempt,
    },
    /// Claimed rows that were never tried: back to the queue.
    Unclaim(Vec<i64>),
}

/// The writes owed, shared by the workers.
#[derive(Debug, Default)]
pub(super) struct Unrecorded(Mutex<Vec<Owed>>);

impl Unrecorded {
    /// Remembers a write to make again.
    pub(super) fn push(&self, owed: Owed) {
        self.lock().push(owed);
    }

    /// Takes every owed write (the caller pushes back those that fail again).
    pub(super) fn take(&self) -> Vec<Owed> {
        std::mem::take(&mut *self.lock())
    }

    /// How many writes are owed.
    pub(super) fn count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Owed>> {
        // A worker that panicked while holding the lock left a valid Vec behind.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Forwarder {
    /// The outbox update for how a try of `row` ended.
    pub(super) async fn write_result(
        &self,
        row: &Claimed,
        attempt: &Attempt,
    ) -> Result<(), sqlx::Error> {
        if let Some(e) = crate::failpoint::write_error("outbox.record") {
            return Err(sqlx::Error::Io(e));
        }
        let tries = row.attempts + 1;
        match attempt {
            Attempt::Delivered => self.outbox.delivered(row.id).await,
            Attempt::Refused(reason) => self.outbox.refused(row.id, reason).await,
            Attempt::Transient(reason) if tries < i64::from(self.settings.max_attempts) => {
                let delay = backoff(&self.settings, tries);
                let at = now_millis() + delay.as_millis() as i64;
                self.outbox.failed(row.id, reason, Some(at)).await
            }
            Attempt::Held(reason) => self.outbox.held(row.id, reason).await,
            Attempt::Transient(reason) | Attempt::Permanent(reason) => {
                self.outbox.failed(row.id, reason, None).await
            }
        }
    }

    /// Makes the outbox writes owed from earlier rounds; those that fail again stay
    /// owed (one warning per round).
    pub(super) async fn settle(&self) {
        let owed = self.unrecorded.take();
        if owed.is_empty() {
            return;
        }
        let mut written = 0usize;
        let mut last_error = None;
        for write in owed {
            let result = match &write {
                Owed::Result { row, attempt } => self.write_result(row, attempt).await,
                Owed::Unclaim(ids) => self.outbox.unclaim(ids).await,
            };
            match result {
                Ok(()) => written += 1,
                Err(e) => {
                    last_error = Some(e);
                    self.unrecorded.push(write);
                }
            }
        }
        match last_error {
            None => info!(
                written,
                "recorded send results a failed outbox write had left open"
            ),
            Some(e) => warn!(
                written,
                still_owed = self.unrecorded.count(),
                error = %e,
                "the outbox still cannot be written; claimed rows wait for it"
            ),
        }
    }
}
