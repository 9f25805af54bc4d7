//! The forwarder (DESIGN.md Ingest step 4): claims due outbox rows, de-identifies
//! and seals each instance with the facility key, and sends it with C-STORE over
//! DICOM TLS presenting the facility certificate. Success (including the gateway's
//! "identical duplicate" success) marks it delivered; transient failures retry with
//! exponential backoff; after the configured tries, or on a permanent refusal, the
//! row becomes a dead letter with the reason.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use dicom_object::InMemDicomObject;
use dimse::Status;
use dimse::scu::{Proposal, ScuAssociation, ScuOptions};
use phi::keys::KeyRing;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::{Config, ForwarderConfig};
use crate::outbox::{Claimed, Outbox};

mod prepare;
mod stream;
mod unrecorded;

pub use prepare::{Outgoing, Prepared, encode, prepare, with_meta};
pub use stream::{Body, prepare_streamed};
use unrecorded::{Owed, Unrecorded};

/// How one try ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The gateway has exactly this version.
    Delivered,
    /// The gateway's duplicate policy declined this version: it keeps another one.
    Refused(String),
    /// Worth another try later.
    Transient(String),
    /// Will never work as it is.
    Permanent(String),
    /// Kept back by the pixel screening (burned-in text), with the reason.
    Held(String),
}

/// How one C-STORE on an association went.
enum Sent {
    /// The gateway answered.
    Answered(Attempt),
    /// The instance could not be read: nothing went out.
    Unreadable(String),
    /// The association failed.
    Failed(String),
}

/// Everything the workers share.
pub struct Forwarder {
    outbox: Outbox,
    ring: KeyRing,
    facility: String,
    options: phi::profile::Options,
    scu: ScuOptions,
    address: String,
    settings: ForwarderConfig,
    pixels: crate::intake::pixels::Screener,
    /// Outbox writes that failed, made again each round.
    unrecorded: Unrecorded,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("address", &self.address)
            .field("facility", &self.facility)
            .finish_non_exhaustive()
    }
}

/// What one batch came to, for its log line.
#[derive(Debug, Default)]
struct Tally {
    delivered: usize,
    refused: usize,
    retrying: usize,
    dead: usize,
    held: usize,
    bytes: usize,
}

impl Forwarder {
    /// A forwarder for `config`, sealing with `ring`.
    pub fn new(config: &Config, outbox: Outbox, ring: KeyRing) -> anyhow::Result<Arc<Forwarder>> {
        let g = &config.gateway;
        let mut scu = ScuOptions::new(g.calling_ae.clone(), g.ae_title.clone());
        scu.tls = Some(crate::gateway::tls(config)?);
        Ok(Arc::new(Forwarder {
            outbox,
            ring,
            facility: config.facility()?.to_string(),
            options: config.deidentification.options(),
            scu,
            address: g.address.clone(),
            settings: config.forwarder.clone(),
            pixels: crate::intake::pixels::Screener::new(&config.pixels)
                .map_err(crate::config::ConfigError::Invalid)?,
            unrecorded: Unrecorded::default(),
        }))
    }

    /// Runs the workers until `stop`. Call only in the process that holds the data
    /// dir's lock: rows left `sending` by a stop are due again.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        match self.outbox.recover().await {
            Ok(0) => {}
            Ok(n) => info!(n, "instances interrupted by a stop are due again"),
            Err(e) => warn!(error = %e, "cannot recover interrupted sends"),
        }
        crate::failpoint::hit("forward.start").await;
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..self.settings.associations.max(1) {
            workers.spawn(self.clone().worker(stop.clone()));
        }
        while workers.join_next().await.is_some() {}
    }

    async fn worker(self: Arc<Self>, stop: CancellationToken) {
        let idle = Duration::from_millis(self.settings.poll_interval_ms.max(10));
        let batch = i64::try_from(self.settings.batch.clamp(1, 64)).unwrap_or(1);
        // The association stays open from batch to batch while there is work, and is
        // released as soon as the queue is empty (before the gateway would time it out).
        let mut kept: Option<ScuAssociation> = None;
        while !stop.is_cancelled() {
            self.settle().await;
            let claimed = match self.outbox.claim(batch).await {
                Ok(claimed) => claimed,
                Err(e) => {
                    warn!(error = %e, "cannot read the outbox");
                    Vec::new()
                }
            };
            if claimed.is_empty() {
                if let Some(connected) = kept.take() {
                    let _ = connected.release().await;
                }
                tokio::select! {
                    _ = tokio::time::sleep(idle) => {}
                    _ = stop.cancelled() => {}
                }
                continue;
            }
            kept = self.forward_batch(claimed, kept).await;
        }
        if let Some(connected) = kept {
            let _ = connected.release().await;
        }
    }

    /// Sends a batch over one association (`kept` from the previous batch when it
    /// has the contexts, else a new one), in order: each instance is de-identified and
    /// sealed just before its turn (one instance in memory at a time). Returns the
    /// association for the next batch. One INFO line per batch.
    async fn forward_batch(
        &self,
        rows: Vec<Claimed>,
        kept: Option<ScuAssociation>,
    ) -> Option<ScuAssociation> {
        let started = std::time::Instant::now();
        let mut tally = Tally::default();
        let mut proposals: Vec<Proposal> = Vec::new();
        for row in &rows {
            // The original syntax, and Explicit VR LE for data the client re-encodes.
            for ts in [row.transfer_syntax.as_str(), EXPLICIT_VR_LE] {
                if !proposals
                    .iter()
                    .any(|p| p.abstract_syntax == row.sop_class_uid && p.transfer_syntaxes[0] == ts)
                {
                    proposals.push(Proposal {
                        abstract_syntax: row.sop_class_uid.clone(),
                        transfer_syntaxes: vec![ts.to_string()],
                    });
                }
            }
        }
        if kept.is_some() {
            crate::failpoint::hit("forward.reuse").await;
        }
        let mut assoc = kept;
        // Whether the association has shown it works in this batch (opened here, or
        // carried a store): a kept one may have been closed by the gateway meanwhile.
        let mut proven = false;
        let mut delivered: Vec<&Claimed> = Vec::new();
        for (at, row) in rows.iter().enumerate() {
            let outgoing = match self.prepare_row(row).await {
                Ok(outgoing) => outgoing,
                Err(attempt) => {
                    self.record(row, attempt, &mut tally).await;
                    continue;
                }
            };
            let fits = assoc.as_ref().is_some_and(|a| {
                a.context_for(&outgoing.sop_class, &outgoing.transfer_syntax)
                    .is_some()
            });
            if !fits && let Some(stale) = assoc.take() {
                let _ = stale.release().await;
            }
            if assoc.is_none() {
                match ScuAssociation::connect(&self.address, &self.scu, &proposals).await {
                    Ok(connected) => {
                        assoc = Some(connected);
                        proven = true;
                    }
                    Err(e) => {
                        let reason = format!("cannot reach the gateway: {e}");
                        for rest in &rows[at..] {
                            self.record(rest, Attempt::Transient(reason.clone()), &mut tally)
                                .await;
                        }
                        break;
                    }
                }
            }
            crate::failpoint::hit("forward.before-send").await;
            let mut sent = match assoc.as_mut() {
                Some(connected) => self.send_one(connected, &outgoing).await,
                None => break,
            };
            if matches!(sent, Sent::Failed(_)) && !proven {
                // The kept association was gone: one more try on a new one, not
                // counted as a try of the row.
                info!(
                    id = row.id,
                    "the kept association was closed; opening a new one"
                );
                assoc = None;
                if let Ok(connected) =
                    ScuAssociation::connect(&self.address, &self.scu, &proposals).await
                {
                    let connected = assoc.insert(connected);
                    proven = true;
                    sent = self.send_one(connected, &outgoing).await;
                }
            }
            let attempt = match sent {
                Sent::Answered(attempt) => attempt,
                Sent::Unreadable(reason) => {
                    // Nothing was sent: the association stays usable.
                    self.record(row, Attempt::Transient(reason), &mut tally)
                        .await;
                    continue;
                }
                Sent::Failed(e) => {
                    // The association is gone: this try failed; the rest were not
                    // tried and are due again at once.
                    self.record(
                        row,
                        Attempt::Transient(format!("transfer failed: {e}")),
                        &mut tally,
                    )
                    .await;
                    let untried: Vec<i64> = rows[at + 1..].iter().map(|r| r.id).collect();
                    if let Err(e) = self.outbox.unclaim(&untried).await {
                        warn!(error = %e, "cannot return untried instances to the queue; will try again");
                        self.unrecorded.push(Owed::Unclaim(untried));
                    }
                    assoc = None;
                    break;
                }
            };
            proven = true;
            if attempt == Attempt::Delivered {
                tally.bytes += outgoing.body.len() as usize;
                crate::failpoint::hit("forward.after-gateway-success").await;
                // Marked in one transaction at the end of the batch: a crash before
                // that re-sends them, which the gateway answers as identical
                // duplicates (success, nothing stored twice).
                self.note(row, &attempt, &mut tally);
                delivered.push(row);
                continue;
            }
            self.record(row, attempt, &mut tally).await;
        }
        self.record_delivered(&delivered).await;
        info!(
            delivered = tally.delivered,
            refused = tally.refused,
            retrying = tally.retrying,
            dead = tally.dead,
            held = tally.held,
            bytes = tally.bytes,
            ms = started.elapsed().as_millis() as u64,
            "forwarded a batch to the gateway"
        );
        assoc
    }

    /// One C-STORE of a prepared instance on `assoc`.
    async fn send_one(&self, assoc: &mut ScuAssociation, outgoing: &Outgoing) -> Sent {
        let data = match outgoing.body.reader() {
            Ok(data) => data,
            Err(reason) => return Sent::Unreadable(reason),
        };
        match assoc
            .store(
                &outgoing.sop_class,
                &outgoing.sop_instance,
                &outgoing.transfer_syntax,
                data,
            )
            .await
        {
            Ok(rsp) => Sent::Answered(classify(rsp.status, rsp.error_comment.as_deref())),
            Err(e) => Sent::Failed(e.to_string()),
        }
    }

    /// Records the result of a try; a failed write is kept and made again on the
    /// next round ([`unrecorded`]), so the row never stays claimed.
    async fn record(&self, row: &Claimed, attempt: Attempt, tally: &mut Tally) {
        self.note(row, &attempt, tally);
        if let Err(e) = self.write_result(row, &attempt).await {
            warn!(error = %e, id = row.id, "cannot record the send result; will write it again on the next round");
            self.unrecorded.push(Owed::Result {
                row: row.clone(),
                attempt,
            });
        }
    }

    /// Marks delivered rows in one transaction; if that fails, each is kept as an
    /// owed write ([`unrecorded`]).
    async fn record_delivered(&self, rows: &[&Claimed]) {
        if rows.is_empty() {
            return;
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let written = match crate::failpoint::write_error("outbox.record") {
            Some(e) => Err(sqlx::Error::Io(e)),
            None => self.outbox.delivered_many(&ids).await,
        };
        if let Err(e) = written {
            warn!(error = %e, rows = ids.len(), "cannot record the send results of delivered instances; will write them again on the next round");
            for row in rows {
                self.unrecorded.push(Owed::Result {
                    row: (*row).clone(),
                    attempt: Attempt::Delivered,
                });
            }
        }
    }

    /// Counts and logs how a try ended.
    fn note(&self, row: &Claimed, attempt: &Attempt, tally: &mut Tally) {
        let tries = row.attempts + 1;
        match &attempt {
            Attempt::Delivered => {
                tally.delivered += 1;
                debug!(id = row.id, version = row.version, "delivered");
            }
            Attempt::Refused(reason) => {
                tally.refused += 1;
                info!(
                    id = row.id,
                    version = row.version,
                    reason,
                    "the gateway keeps another version of this instance"
                );
            }
            Attempt::Transient(reason) if tries < i64::from(self.settings.max_attempts) => {
                tally.retrying += 1;
                let delay = backoff(&self.settings, tries);
                info!(id = row.id, tries, retry_in = ?delay, reason, "send failed; will retry");
            }
            Attempt::Held(reason) => {
                tally.held += 1;
                warn!(id = row.id, reason, "instance held at the client");
            }
            Attempt::Transient(reason) | Attempt::Permanent(reason) => {
                tally.dead += 1;
                warn!(
                    id = row.id,
                    tries, reason, "instance moved to the dead letters"
                );
            }
        }
    }

    /// De-identifies and seals one spooled instance on a blocking thread, after the
    /// pixel screening (which may hold it back, or clean it): its pixel data streamed
    /// from the spool when the screening forwards it unchanged ([`stream`]), else the
    /// whole instance loaded.
    async fn prepare_row(&self, row: &Claimed) -> Result<Outgoing, Attempt> {
        let released = match self.outbox.released(row.id).await {
            Ok(released) => released,
            Err(e) => return Err(Attempt::Transient(format!("cannot read the outbox: {e}"))),
        };
        let (path, ring, facility, options, pixels) = (
            row.spool_path.clone(),
            self.ring.clone(),
            self.facility.clone(),
            self.options.clone(),
            self.pixels.clone(),
        );
        let prepared = tokio::task::spawn_blocking(move || {
            let path = Path::new(&path);
            let unchanged = |header: &InMemDicomObject, class: &str| {
                pixels.forwards_unchanged(header, class, released)
            };
            if let Some(outgoing) = prepare_streamed(path, &ring, &facility, &options, unchanged)? {
                return Ok(Prepared::Send(outgoing));
            }
            let screen = |file| pixels.screen(file, released);
            prepare(path, &ring, &facility, &options, screen)
        })
        .await;
        match prepared {
            Ok(Ok(Prepared::Send(outgoing))) => {
                debug!(
                    id = row.id,
                    bytes = outgoing.body.len(),
                    streamed = outgoing.body.is_streamed(),
                    "prepared"
                );
                Ok(outgoing)
            }
            Ok(Ok(Prepared::Held(reason))) => Err(Attempt::Held(reason)),
            Ok(Err(reason)) => Err(Attempt::Permanent(reason)),
            Err(e) => Err(Attempt::Transient(format!("preparation task failed: {e}"))),
        }
    }

    /// One try of one row on its own association (used by tests and tools).
    pub async fn send(&self, row: &Claimed) -> Attempt {
        let outgoing = match self.prepare_row(row).await {
            Ok(outgoing) => outgoing,
            Err(attempt) => return attempt,
        };
        let proposal = Proposal {
            abstract_syntax: outgoing.sop_class.clone(),
            transfer_syntaxes: vec![outgoing.transfer_syntax.clone()],
        };
        let mut assoc = match ScuAssociation::connect(&self.address, &self.scu, &[proposal]).await {
            Ok(assoc) => assoc,
            Err(e) => return Attempt::Transient(format!("cannot reach the gateway: {e}")),
        };
        let sent = self.send_one(&mut assoc, &outgoing).await;
        let _ = assoc.release().await;
        match sent {
            Sent::Answered(attempt) => attempt,
            Sent::Unreadable(reason) => Attempt::Transient(reason),
            Sent::Failed(e) => Attempt::Transient(format!("transfer failed: {e}")),
        }
    }
}

/// Explicit VR Little Endian.
const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";

/// Success and warnings are delivered, except the gateway's answers that it keeps
/// another version (duplicate policy); resource shortages and processing failures are
/// worth retrying; anything else is a refusal that retrying will not fix.
fn classify(status: Status, comment: Option<&str>) -> Attempt {
    let describe = || {
        format!(
            "gateway answered {status}{}",
            comment.map(|c| format!(": {c}")).unwrap_or_default()
        )
    };
    if matches!(
        status,
        Status::DuplicateSopInstance | Status::ElementsDiscarded
    ) {
        // 0x0111: duplicate policy "reject"; 0xB006: "keep-first" (the gateway kept
        // the version it had).
        return Attempt::Refused(format!(
            "the gateway keeps another version of this instance (its duplicate policy): {}",
            describe()
        ));
    }
    if status.is_success() || status.is_warning() {
        return Attempt::Delivered;
    }
    let transient = matches!(status.code(), 0xA700..=0xA7FF | 0x0110 | 0x0213);
    if transient {
        Attempt::Transient(describe())
    } else {
        Attempt::Permanent(describe())
    }
}

fn backoff(settings: &ForwarderConfig, tries: i64) -> Duration {
    let exponent = u32::try_from(tries.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(20);
    let secs = settings
        .backoff_initial_secs
        .saturating_mul(1u64 << exponent)
        .min(settings.backoff_max_secs);
    Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_for_retry() {
        assert_eq!(classify(Status::Success, None), Attempt::Delivered);
        assert_eq!(
            classify(Status::CoercionOfDataElements, None),
            Attempt::Delivered
        );
        assert!(matches!(
            classify(Status::OutOfResources, None),
            Attempt::Transient(_)
        ));
        assert!(matches!(
            classify(Status::ProcessingFailure, None),
            Attempt::Transient(_)
        ));
        assert!(
            matches!(classify(Status::DuplicateSopInstance, Some("different")), Attempt::Refused(r) if r.contains("different"))
        );
        assert!(matches!(
            classify(Status::ElementsDiscarded, Some("kept")),
            Attempt::Refused(_)
        ));
        assert_eq!(
            classify(Status::DataSetDoesNotMatchSopClassWarning, None),
            Attempt::Delivered
        );
        assert!(matches!(
            classify(Status::NotAuthorized, None),
            Attempt::Permanent(_)
        ));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let settings = ForwarderConfig {
            backoff_initial_secs: 2,
            backoff_max_secs: 60,
            ..ForwarderConfig::default()
        };
        let secs: Vec<u64> = (1..=7).map(|t| backoff(&settings, t).as_secs()).collect();
        assert_eq!(secs, vec![2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(backoff(&settings, 10_000).as_secs(), 60);
    }
}
