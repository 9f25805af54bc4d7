//! The changes feed: per facility, an append-only sequence of study-level events
//! (table `changes`, migration 0011), written in the same transaction as the change
//! itself, and read in pages by `seq` ([`Index::changes`]).
//!
//! # Ordering
//!
//! `seq` is per facility and comes from a counter on the facility's row
//! (`facilities.change_seq`), added to inside the writing transaction
//! ([`ChangeLog::write`]). On PostgreSQL the `UPDATE` locks that row until the
//! transaction ends, so writers of one facility take their numbers one after the other
//! and each commits before the next can number its events: seq order is commit order.
//! A reader that has seen seq N will never later see an event with seq <= N appear,
//! which a sequence (`BIGSERIAL`) cannot promise (numbers are taken before commit and
//! transactions commit in any order, so a reader paging by id can skip a slow
//! writer's row). The cost is small: the ingest transaction already locks the same
//! row to charge the quota ([`super::quota`]), so the counter adds no waiting, only
//! one `UPDATE` and one multi-row `INSERT` per facility per transaction, against
//! some 380 statements for a batch of 64 instances (`ingest_cost` in
//! gateway/tests/changes.rs measures it; no difference showed beyond run-to-run
//! noise on either database). SQLite has a single writer at a time, so the same
//! ordering holds there.
//!
//! # Coalescing
//!
//! The index writer commits many instances per transaction; one event is written per
//! study and kind per transaction, not per instance: a new study is one `stored`
//! whatever its series and instances, each new series of an existing study one
//! `series-added`, instances added to existing series (or replaced) one `updated`.
//! Counts are the study's after the transaction.

use std::collections::BTreeMap;

use sqlx::{Any, Row, Transaction};

use super::{DbError, Index, now_millis};
use crate::domain::FacilityId;

/// What happened to a study. Stored as text (`as_str`); later kinds (hidden,
/// restored, purged, archived, expiring, shared, statement-issued, suspended) are
/// new variants, not a migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// The first instances of a new study.
    Stored,
    /// A new series in an existing study.
    SeriesAdded,
    /// Instances added to existing series of a study, or an instance replaced.
    Updated,
    /// The study was deleted (soft) through the admin API.
    Deleted,
    /// Its storage period ends soon: the facility is asked keep / export / delete.
    Expiring,
    /// An answer "keep" (or a new policy) moved the end of its storage period.
    Kept,
    /// No answer within the notice period: hidden (restorable until purged).
    Hidden,
    /// A hidden study was restored by the facility.
    Restored,
    /// Blobs and rows removed; a tombstone stays.
    Purged,
}

impl ChangeKind {
    /// The word stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Stored => "stored",
            ChangeKind::SeriesAdded => "series-added",
            ChangeKind::Updated => "updated",
            ChangeKind::Deleted => "deleted",
            ChangeKind::Expiring => "expiring",
            ChangeKind::Kept => "kept",
            ChangeKind::Hidden => "hidden",
            ChangeKind::Restored => "restored",
            ChangeKind::Purged => "purged",
        }
    }
}

/// One event of the feed, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Position in the facility's feed (1, 2, ... without gaps).
    pub seq: i64,
    /// What happened (see [`ChangeKind::as_str`]; text, so that kinds written by a
    /// newer gateway are still read).
    pub kind: String,
    /// Study Instance UID as stored (pseudonymous).
    pub study_uid: String,
    /// The series concerned, when the event concerns exactly one.
    pub series_uid: Option<String>,
    /// Instances of the study after the change.
    pub instances: i64,
    /// Series of the study after the change.
    pub series: i64,
    /// When, ms since the epoch.
    pub at: i64,
    /// Kind-specific detail (JSON text), for later kinds.
    pub detail: Option<String>,
}

/// What one transaction did to one study so far.
#[derive(Debug, Default)]
struct StudyChange {
    new_study: bool,
    /// Series first seen in this transaction, in order.
    new_series: Vec<String>,
    /// Existing series that got (or replaced) instances, in order, distinct.
    updated_series: Vec<String>,
    instances: i64,
    series: i64,
}

/// The events of one transaction, gathered while it runs and written once at its end
/// with [`ChangeLog::write`].
#[derive(Debug, Default)]
pub(crate) struct ChangeLog {
    studies: BTreeMap<(FacilityId, String), StudyChange>,
    deleted: Vec<(FacilityId, String, i64, i64)>,
    /// Lifecycle events (kind, counts), in order.
    lifecycle: Vec<(FacilityId, ChangeKind, String, i64, i64)>,
}

/// An event ready to be numbered.
struct Pending<'a> {
    kind: ChangeKind,
    study_uid: &'a str,
    series_uid: Option<&'a str>,
    instances: i64,
    series: i64,
}

/// Rows per `INSERT` (9 values each, far below either database's limit).
const ROWS_PER_INSERT: usize = 100;

impl ChangeLog {
    fn entry(&mut self, facility: FacilityId, study: &str) -> &mut StudyChange {
        self.studies
            .entry((facility, study.to_string()))
            .or_default()
    }

    /// An instance was added. `new_study` / `new_series`: its study / series did not
    /// exist before it; `instances` and `series`: the study's counts now.
    pub(crate) fn added(&mut self, facility: FacilityId, study: &str, at: Added<'_>) {
        let entry = self.entry(facility, study);
        entry.new_study |= at.new_study;
        if at.new_series || entry.new_study {
            if !entry.new_series.iter().any(|s| s == at.series_uid) {
                entry.new_series.push(at.series_uid.to_string());
            }
        } else if !entry.new_series.iter().any(|s| s == at.series_uid)
            && !entry.updated_series.iter().any(|s| s == at.series_uid)
        {
            entry.updated_series.push(at.series_uid.to_string());
        }
        entry.instances = at.instances;
        entry.series = at.series;
    }

    /// An instance of an existing series was replaced (or, for `study`, removed while
    /// being replaced by one of another study); the study's counts are now as given.
    pub(crate) fn updated(
        &mut self,
        facility: FacilityId,
        study: &str,
        series_uid: &str,
        instances: i64,
        series: i64,
    ) {
        let entry = self.entry(facility, study);
        if !entry.updated_series.iter().any(|s| s == series_uid) {
            entry.updated_series.push(series_uid.to_string());
        }
        entry.instances = instances;
        entry.series = series;
    }

    /// A study was deleted; its counts as it was deleted.
    pub(crate) fn deleted(
        &mut self,
        facility: FacilityId,
        study: &str,
        instances: i64,
        series: i64,
    ) {
        self.deleted
            .push((facility, study.to_string(), instances, series));
    }

    /// A lifecycle event of a study (expiring, kept, hidden, restored, purged) with
    /// its counts.
    pub(crate) fn lifecycle(
        &mut self,
        facility: FacilityId,
        kind: ChangeKind,
        study: &str,
        instances: i64,
        series: i64,
    ) {
        self.lifecycle
            .push((facility, kind, study.to_string(), instances, series));
    }

    /// The events, by facility, in the order they are numbered.
    fn events(&self) -> BTreeMap<FacilityId, Vec<Pending<'_>>> {
        let mut out: BTreeMap<FacilityId, Vec<Pending<'_>>> = BTreeMap::new();
        for ((facility, study), c) in &self.studies {
            let events = out.entry(*facility).or_default();
            let event = |kind, series_uid| Pending {
                kind,
                study_uid: study.as_str(),
                series_uid,
                instances: c.instances,
                series: c.series,
            };
            if c.new_study {
                let only = match c.new_series.as_slice() {
                    [one] => Some(one.as_str()),
                    _ => None,
                };
                events.push(event(ChangeKind::Stored, only));
                continue;
            }
            for s in &c.new_series {
                events.push(event(ChangeKind::SeriesAdded, Some(s.as_str())));
            }
            match c.updated_series.as_slice() {
                [] => {}
                [one] => events.push(event(ChangeKind::Updated, Some(one.as_str()))),
                _ => events.push(event(ChangeKind::Updated, None)),
            }
        }
        for (facility, study, instances, series) in &self.deleted {
            out.entry(*facility).or_default().push(Pending {
                kind: ChangeKind::Deleted,
                study_uid: study,
                series_uid: None,
                instances: *instances,
                series: *series,
            });
        }
        for (facility, kind, study, instances, series) in &self.lifecycle {
            out.entry(*facility).or_default().push(Pending {
                kind: *kind,
                study_uid: study,
                series_uid: None,
                instances: *instances,
                series: *series,
            });
        }
        out
    }

    /// Numbers and inserts the events, in `tx`, just before it commits: per
    /// facility (in id order, so that two transactions never wait for each other's
    /// rows in opposite orders) one counter `UPDATE` and the rows.
    pub(crate) async fn write(&self, tx: &mut Transaction<'_, Any>) -> Result<(), DbError> {
        let at = now_millis();
        for (facility, events) in self.events() {
            let row = sqlx::query(
                "UPDATE facilities SET change_seq = change_seq + $1 WHERE id = $2 RETURNING change_seq",
            )
            .bind(events.len() as i64)
            .bind(facility.0)
            .fetch_one(&mut **tx)
            .await?;
            let last: i64 = row.try_get(0)?;
            let mut seq = last - events.len() as i64;
            for chunk in events.chunks(ROWS_PER_INSERT) {
                let mut sql = String::from(
                    "INSERT INTO changes (facility_id, seq, kind, study_uid, series_uid, \
                     num_instances, num_series, created_at) VALUES ",
                );
                for i in 0..chunk.len() {
                    let b = i * 6 + 3;
                    if i > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!(
                        "($1, ${b}, ${}, ${}, ${}, ${}, ${}, $2)",
                        b + 1,
                        b + 2,
                        b + 3,
                        b + 4,
                        b + 5
                    ));
                }
                let mut insert = sqlx::query(&sql).bind(facility.0).bind(at);
                for e in chunk {
                    seq += 1;
                    insert = insert
                        .bind(seq)
                        .bind(e.kind.as_str())
                        .bind(e.study_uid)
                        .bind(e.series_uid)
                        .bind(e.instances)
                        .bind(e.series);
                }
                insert.execute(&mut **tx).await?;
            }
        }
        Ok(())
    }
}

/// What adding one instance did, for [`ChangeLog::added`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Added<'a> {
    /// The instance's series.
    pub series_uid: &'a str,
    /// The study did not exist before.
    pub new_study: bool,
    /// The series did not exist before.
    pub new_series: bool,
    /// The study's instances now.
    pub instances: i64,
    /// The study's series now.
    pub series: i64,
}

/// A page of the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangePage {
    /// Events with seq > `after`, in seq order.
    pub changes: Vec<Change>,
    /// Whether more events follow the last one returned.
    pub more: bool,
    /// The facility's newest seq when read (0: no events yet).
    pub latest: i64,
}

impl Index {
    /// At most `limit` events of a facility with seq > `after`, in seq order.
    pub async fn changes(
        &self,
        facility: FacilityId,
        after: i64,
        limit: u32,
    ) -> Result<ChangePage, DbError> {
        // The counter first: events read below are then never older than it.
        let latest: i64 = sqlx::query("SELECT change_seq FROM facilities WHERE id = $1")
            .bind(facility.0)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?
            .unwrap_or(0);
        let rows = sqlx::query(
            "SELECT seq, kind, study_uid, series_uid, num_instances, num_series, created_at, detail \
             FROM changes WHERE facility_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(facility.0)
        .bind(after)
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await?;
        let mut changes = rows
            .iter()
            .map(|r| {
                Ok(Change {
                    seq: r.try_get(0)?,
                    kind: r.try_get(1)?,
                    study_uid: r.try_get(2)?,
                    series_uid: r.try_get(3)?,
                    instances: r.try_get(4)?,
                    series: r.try_get(5)?,
                    at: r.try_get(6)?,
                    detail: r.try_get(7)?,
                })
            })
            .collect::<Result<Vec<_>, DbError>>()?;
        let more = changes.len() > limit as usize;
        changes.truncate(limit as usize);
        let latest = latest.max(changes.last().map_or(0, |c| c.seq));
        Ok(ChangePage {
            changes,
            more,
            latest,
        })
    }
}
