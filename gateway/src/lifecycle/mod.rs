//! The lifecycle of stored studies: each facility's retention policies decide when a
//! study's storage period ends; a notice is given `notice_days` before (`expiring`),
//! with no answer the study is hidden when the period ends (policy action
//! `hide-purge`; `notify` only gives the notice), and purged `grace_days` later (rows
//! and blobs removed, usage credited, a tombstone kept). The facility answers: keep
//! (extend), export to a returnable medium (acknowledged by the client, after which a
//! `hide-purge` policy hides at once), delete now, or, while hidden, restore.
//!
//! Which policy applies to a study: the most specific that matches (label and
//! modality, then label, then modality, then the facility-wide one); at the same
//! specificity the facility's own override beats the operator's default, then the
//! longest period. No policy, no expiry.
//!
//! Time comes from one [`Clock`]: the system clock in the binaries (so libfaketime
//! moves it), a [`ManualClock`] in tests that travel in time. The job ([`Lifecycle`])
//! runs every `[lifecycle] interval_secs`; each step is one transaction with its event
//! in the changes feed, and an entry in the audit trail.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::audit::{AuditEvent, AuditTrail, EventKind, Outcome, Protocol};
use crate::blobs::{BlobKey, BlobStore};
use crate::db::changes::ChangeKind;
use crate::db::lifecycle::{
    CountedFrom, LifecycleState, RetentionAction, RetentionPolicy, SetBy, StudyLife, Transition,
};
use crate::db::{DbError, Index};
use crate::domain::FacilityId;

/// One day in milliseconds.
pub const DAY: i64 = 86_400_000;

/// Where "now" comes from.
pub trait Clock: Send + Sync + Debug {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> i64;
}

/// The system clock (moved by libfaketime in end-to-end tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> i64 {
        crate::db::now_millis()
    }
}

/// A clock tests set and advance.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock at `millis`.
    pub fn at(millis: i64) -> ManualClock {
        ManualClock(AtomicI64::new(millis))
    }

    /// Moves it forward by `days`.
    pub fn advance_days(&self, days: i64) {
        self.0.fetch_add(days * DAY, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The policy that applies to `life`, if any.
pub fn policy_for<'a>(
    policies: &'a [RetentionPolicy],
    life: &StudyLife,
) -> Option<&'a RetentionPolicy> {
    policies
        .iter()
        .filter(|p| {
            p.modality
                .as_ref()
                .is_none_or(|m| life.modalities.iter().any(|x| x.eq_ignore_ascii_case(m)))
                && p.label
                    .as_ref()
                    .is_none_or(|l| life.labels.iter().any(|x| x == l))
        })
        .max_by_key(|p| {
            let specificity = 2 * u8::from(p.label.is_some()) + u8::from(p.modality.is_some());
            (specificity, p.set_by == SetBy::Facility, p.period_days)
        })
}

/// The dates of one study under one policy, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// The storage period ends (a "keep" may have moved it).
    pub ends_at: i64,
    /// The notice is due.
    pub notice_at: i64,
    /// Hidden without an answer (`hide-purge` only): at the end, and never less than
    /// the notice period after the notice was given.
    pub hide_at: Option<i64>,
    /// Purged (once hidden).
    pub purge_at: Option<i64>,
}

/// Midnight UTC of a DICOM date, in ms.
fn date_millis(da: &str) -> Option<i64> {
    let d = da.trim();
    if d.len() != 8 || !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i32 = d[..4].parse().ok()?;
    let month: u8 = d[4..6].parse().ok()?;
    let day: u8 = d[6..].parse().ok()?;
    let date =
        time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp() * 1000)
}

/// `life`'s schedule under `policy`.
pub fn schedule(policy: &RetentionPolicy, life: &StudyLife) -> Schedule {
    let start = match policy.counted_from {
        CountedFrom::Receipt => life.received_at,
        CountedFrom::StudyDate => life
            .study_date
            .as_deref()
            .and_then(date_millis)
            .unwrap_or(life.received_at),
    };
    let ends_at = (start + policy.period_days * DAY).max(life.keep_until.unwrap_or(i64::MIN));
    let notice_at = ends_at - policy.notice_days * DAY;
    let hide_at = (policy.action == RetentionAction::HidePurge).then(|| {
        life.notice_at.map_or(ends_at, |given| {
            ends_at.max(given + policy.notice_days * DAY)
        })
    });
    let purge_at = life.hidden_at.map(|h| h + policy.grace_days * DAY);
    Schedule {
        ends_at,
        notice_at,
        hide_at,
        purge_at,
    }
}

/// What the job does to a study now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Give the notice (active -> expiring).
    Notice,
    /// Back to active (the policy changed, or was removed, since the notice).
    Reactivate,
    /// Hide it (expiring -> hidden).
    Hide,
    /// Purge it.
    Purge,
}

/// The step due for `life` at `now` under `policy` (none: nothing to do).
pub fn step(policy: Option<&RetentionPolicy>, life: &StudyLife, now: i64) -> Option<Step> {
    let Some(policy) = policy else {
        // No policy (any more): an expiring study goes back; a hidden one waits for
        // the facility admin (restore) rather than being purged without a policy.
        return (life.state == LifecycleState::Expiring).then_some(Step::Reactivate);
    };
    let s = schedule(policy, life);
    match life.state {
        LifecycleState::Active => (now >= s.notice_at).then_some(Step::Notice),
        LifecycleState::Expiring if now < s.notice_at => Some(Step::Reactivate),
        LifecycleState::Expiring => s.hide_at.filter(|h| now >= *h).map(|_| Step::Hide),
        LifecycleState::Hidden => s.purge_at.filter(|p| now >= *p).map(|_| Step::Purge),
    }
}

/// What one run of the job did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunReport {
    /// Notices given.
    pub noticed: u64,
    /// Back to active.
    pub reactivated: u64,
    /// Hidden.
    pub hidden: u64,
    /// Purged.
    pub purged: u64,
    /// Bytes freed by purges.
    pub bytes_freed: i64,
}

/// A facility's answer about one of its studies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Keep it `days` longer than now or the end of its period, whichever is later
    /// (default: the policy's period).
    Keep(Option<i64>),
    /// Restore a hidden study, kept `days` from now (default: the policy's period).
    Restore(Option<i64>),
    /// Delete it now (purge, tombstone).
    Expire,
    /// The facility exported it to a returnable medium (`medium`).
    Exported(String),
}

/// Why an answer was not taken.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// No such study (or deleted).
    #[error("no such study in this facility")]
    NotFound,
    /// Not in a state that takes the answer.
    #[error("{0}")]
    Conflict(String),
    /// The index failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The lifecycle job and the answers, over one index, blob store, audit trail and
/// clock.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    index: Index,
    blobs: BlobStore,
    audit: AuditTrail,
    clock: Arc<dyn Clock>,
}

impl Lifecycle {
    /// The job over these.
    pub fn new(
        index: Index,
        blobs: BlobStore,
        audit: AuditTrail,
        clock: Arc<dyn Clock>,
    ) -> Lifecycle {
        Lifecycle {
            index,
            blobs,
            audit,
            clock,
        }
    }

    /// Now, by the clock.
    pub fn now(&self) -> i64 {
        self.clock.now_millis()
    }

    async fn audit(&self, facility: FacilityId, kind: EventKind, detail: String, count: i64) {
        let event = AuditEvent::new(kind, Outcome::Success, Protocol::Cli)
            .facility(facility)
            .detail(detail)
            .count(count);
        self.audit.record(event).await;
    }

    /// One pass over every facility with policies or studies not active.
    pub async fn run_once(&self) -> Result<RunReport, DbError> {
        let now = self.now();
        let mut report = RunReport::default();
        for facility in self.index.lifecycle_facilities().await? {
            let policies = self.index.policies(facility).await?;
            for life in self.index.study_lives(facility, &[]).await? {
                let policy = policy_for(&policies, &life);
                let Some(step) = step(policy, &life, now) else {
                    continue;
                };
                match self.apply(facility, &life, step, now).await {
                    Ok(Some(freed)) => {
                        match step {
                            Step::Notice => report.noticed += 1,
                            Step::Reactivate => report.reactivated += 1,
                            Step::Hide => report.hidden += 1,
                            Step::Purge => report.purged += 1,
                        }
                        report.bytes_freed += freed;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        warn!(%facility, study = %life.study_uid, error = %e, "lifecycle step failed; tried again next run")
                    }
                }
            }
        }
        Ok(report)
    }

    /// Applies `step`; the bytes freed, or `None` when the study moved meanwhile.
    async fn apply(
        &self,
        facility: FacilityId,
        life: &StudyLife,
        step: Step,
        now: i64,
    ) -> Result<Option<i64>, DbError> {
        let study = life.study_uid.as_str();
        let (from, to, kind, what) = match step {
            Step::Purge => {
                return Ok(self
                    .purge(facility, study, now, "retention")
                    .await?
                    .map(|(_, bytes)| bytes));
            }
            Step::Notice => (
                LifecycleState::Active,
                LifecycleState::Expiring,
                ChangeKind::Expiring,
                "storage period ends soon: notice given",
            ),
            Step::Reactivate => (
                LifecycleState::Expiring,
                LifecycleState::Active,
                ChangeKind::Kept,
                "storage period extended by a policy change: active again",
            ),
            Step::Hide => (
                LifecycleState::Expiring,
                LifecycleState::Hidden,
                ChangeKind::Hidden,
                "no answer within the notice period: hidden",
            ),
        };
        let moved = self
            .index
            .transition(
                facility,
                study,
                Transition {
                    from,
                    to,
                    kind,
                    at: now,
                    keep_until: None,
                },
            )
            .await?;
        if !moved {
            return Ok(None);
        }
        info!(%facility, study, step = ?step, "lifecycle: {what}");
        self.audit(
            facility,
            EventKind::AdminChange,
            format!("lifecycle: study {study}: {what}"),
            life.instances,
        )
        .await;
        Ok(Some(0))
    }

    /// Purges a study (rows, tombstone, event, then blobs); its instances and bytes.
    async fn purge(
        &self,
        facility: FacilityId,
        study: &str,
        now: i64,
        reason: &str,
    ) -> Result<Option<(i64, i64)>, DbError> {
        let Some(purged) = self.index.purge_study(facility, study, now, reason).await? else {
            return Ok(None);
        };
        for key in &purged.blob_keys {
            // A blob left behind (crash, error) has no row any more: the sweep deletes it.
            if let Err(e) = self.blobs.delete(&BlobKey::from_index(key.clone())).await {
                warn!(%facility, study, error = %e, "purge: a blob could not be deleted now; the sweep will");
            }
        }
        info!(%facility, study, instances = purged.instances, bytes = purged.bytes, reason, "lifecycle: purged");
        self.audit(
            facility,
            EventKind::InstancesDeleted,
            format!("lifecycle: study {study} purged ({reason}); tombstone kept"),
            purged.instances,
        )
        .await;
        Ok(Some((purged.instances, purged.bytes)))
    }

    /// Takes a facility's answer about `study`; the study's state after it (`None`:
    /// purged).
    pub async fn answer(
        &self,
        facility: FacilityId,
        study: &str,
        answer: Answer,
        by: &str,
    ) -> Result<Option<LifecycleState>, AnswerError> {
        let now = self.now();
        let life = self
            .index
            .study_life(facility, study)
            .await?
            .ok_or(AnswerError::NotFound)?;
        let policies = self.index.policies(facility).await?;
        let policy = policy_for(&policies, &life);
        let period = policy.map_or(365, |p| p.period_days);
        let days_of = |days: Option<i64>| days.unwrap_or(period).max(1);
        let (transition, after, what) = match answer {
            Answer::Keep(days) => {
                if life.state == LifecycleState::Hidden {
                    return Err(AnswerError::Conflict(
                        "the study is hidden: a facility admin restores it".into(),
                    ));
                }
                let end = policy.map_or(now, |p| schedule(p, &life).ends_at).max(now);
                let keep_until = end + days_of(days) * DAY;
                (
                    Transition {
                        from: life.state,
                        to: LifecycleState::Active,
                        kind: ChangeKind::Kept,
                        at: now,
                        keep_until: Some(keep_until),
                    },
                    LifecycleState::Active,
                    format!("kept {} more day(s) by {by}", days_of(days)),
                )
            }
            Answer::Restore(days) => {
                if life.state != LifecycleState::Hidden {
                    return Err(AnswerError::Conflict("the study is not hidden".into()));
                }
                (
                    Transition {
                        from: LifecycleState::Hidden,
                        to: LifecycleState::Active,
                        kind: ChangeKind::Restored,
                        at: now,
                        keep_until: Some(now + days_of(days) * DAY),
                    },
                    LifecycleState::Active,
                    format!("restored by {by}, kept {} day(s)", days_of(days)),
                )
            }
            Answer::Expire => {
                self.purge(facility, study, now, "deleted-now")
                    .await?
                    .ok_or(AnswerError::NotFound)?;
                return Ok(None);
            }
            Answer::Exported(medium) => {
                self.index.mark_exported(facility, study, now).await?;
                let hide = life.state == LifecycleState::Expiring
                    && policy.is_some_and(|p| p.action == RetentionAction::HidePurge);
                self.audit(
                    facility,
                    EventKind::AdminChange,
                    format!("lifecycle: study {study} exported to {medium} (acknowledged by {by})"),
                    life.instances,
                )
                .await;
                if !hide {
                    return Ok(Some(life.state));
                }
                (
                    Transition {
                        from: LifecycleState::Expiring,
                        to: LifecycleState::Hidden,
                        kind: ChangeKind::Hidden,
                        at: now,
                        keep_until: None,
                    },
                    LifecycleState::Hidden,
                    "exported to a medium: hidden until purge".to_string(),
                )
            }
        };
        if !self.index.transition(facility, study, transition).await? {
            return Err(AnswerError::Conflict(
                "the study changed meanwhile; look again".into(),
            ));
        }
        self.audit(
            facility,
            EventKind::AdminChange,
            format!("lifecycle: study {study}: {what}"),
            life.instances,
        )
        .await;
        Ok(Some(after))
    }
}

/// Runs the job at start and every `interval` until `stop`.
pub async fn run(job: Lifecycle, interval: Duration, stop: CancellationToken) {
    loop {
        match job.run_once().await {
            Ok(r) if r != RunReport::default() => info!(
                noticed = r.noticed,
                reactivated = r.reactivated,
                hidden = r.hidden,
                purged = r.purged,
                bytes_freed = r.bytes_freed,
                "lifecycle run"
            ),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "lifecycle run failed; trying again later"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests;
