//! The life of a stored study in the index (migration 0012): facility labels,
//! retention policies, each study's lifecycle state (`active` -> `expiring` ->
//! `hidden` -> purged) and the tombstones purged studies leave. Every state change is
//! one transaction with its event in the changes feed; the decisions are taken by
//! [`crate::lifecycle`].
//!
//! A hidden study is left out of C-FIND, QIDO-RS, C-GET/C-MOVE and WADO-RS
//! (`crate::qr::sql`), but still counts as stored until it is purged. Purging removes
//! the index rows of the study in one transaction, credits its bytes to the
//! facility's usage and writes the tombstone; the caller then deletes the blobs (a
//! crash in between leaves blobs without rows, which the sweep deletes).

use sqlx::Row;

use super::changes::{ChangeKind, ChangeLog};
use super::{DbError, Index};
use crate::domain::FacilityId;

/// Where a study is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LifecycleState {
    /// Within its storage period.
    Active,
    /// Notice given: the facility may answer keep, export or delete.
    Expiring,
    /// Not queryable; restorable by the facility admin until purged.
    Hidden,
}

impl LifecycleState {
    /// The word stored.
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleState::Active => "active",
            LifecycleState::Expiring => "expiring",
            LifecycleState::Hidden => "hidden",
        }
    }

    /// From the stored word (unknown words read as active).
    pub fn parse(text: &str) -> LifecycleState {
        match text {
            "expiring" => LifecycleState::Expiring,
            "hidden" => LifecycleState::Hidden,
            _ => LifecycleState::Active,
        }
    }
}

/// What a storage period is counted from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CountedFrom {
    /// The study's first receipt at the gateway.
    Receipt,
    /// The Study Date (receipt when it has none).
    StudyDate,
}

/// What happens when a storage period ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetentionAction {
    /// The notice only: the study stays until someone answers.
    Notify,
    /// Hidden when the notice period passes without an answer, purged after grace.
    HidePurge,
}

/// Who set a policy.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum SetBy {
    /// The gateway operator's default for the facility.
    Operator,
    /// The facility's own override (wins over the operator's at the same scope).
    Facility,
}

impl SetBy {
    fn as_str(self) -> &'static str {
        match self {
            SetBy::Operator => "operator",
            SetBy::Facility => "facility",
        }
    }
}

fn word<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, DbError> {
    serde_json::from_value(serde_json::Value::String(text.to_string())).map_err(|_| {
        DbError::Query(sqlx::Error::Decode(
            format!("unexpected value {text:?} in retention_policies").into(),
        ))
    })
}

fn word_of<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A retention policy of a facility, for its studies of `modality` and/or `label`
/// (none: all).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RetentionPolicy {
    /// Operator default or facility override.
    pub set_by: SetBy,
    /// Only studies with this modality.
    pub modality: Option<String>,
    /// Only studies with this label.
    pub label: Option<String>,
    /// The storage period.
    pub period_days: i64,
    /// From receipt or from the study date.
    pub counted_from: CountedFrom,
    /// Notice before the period ends.
    pub notice_days: i64,
    /// Hidden this long before the purge.
    pub grace_days: i64,
    /// Notify only, or hide then purge.
    pub action: RetentionAction,
}

/// A study as the lifecycle job sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudyLife {
    /// Study Instance UID (as stored).
    pub study_uid: String,
    /// YYYYMMDD, if any.
    pub study_date: Option<String>,
    /// Modalities in the study.
    pub modalities: Vec<String>,
    /// Its labels.
    pub labels: Vec<String>,
    /// Its state.
    pub state: LifecycleState,
    /// First receipt, ms.
    pub received_at: i64,
    /// A later end of its storage period, answered.
    pub keep_until: Option<i64>,
    /// When notice was given.
    pub notice_at: Option<i64>,
    /// When it was hidden.
    pub hidden_at: Option<i64>,
    /// When an export to a medium was acknowledged.
    pub exported_at: Option<i64>,
    /// Instances.
    pub instances: i64,
    /// Series.
    pub series: i64,
}

/// What a purge removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purged {
    /// The blobs to delete now.
    pub blob_keys: Vec<String>,
    /// Bytes credited to the facility's usage.
    pub bytes: i64,
    /// Instances removed.
    pub instances: i64,
}

/// What a purged study left.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tombstone {
    /// Study Instance UID (as stored).
    pub study_uid: String,
    /// When, ms.
    pub purged_at: i64,
    /// Instances it had.
    pub instances: i64,
    /// Bytes it had.
    pub bytes: i64,
    /// `retention` or `deleted-now`.
    pub reason: String,
}

/// A change of state, written with [`Index::transition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// Only from this state (otherwise nothing happens).
    pub from: LifecycleState,
    /// To this one.
    pub to: LifecycleState,
    /// The feed event.
    pub kind: ChangeKind,
    /// When.
    pub at: i64,
    /// A new end of the storage period (keep, restore).
    pub keep_until: Option<i64>,
}

const LIFE_COLUMNS: &str = "s.study_uid, s.study_date, s.modalities, s.lifecycle, \
     COALESCE(s.received_at, s.updated_at), s.keep_until, s.notice_at, s.hidden_at, s.exported_at, \
     s.num_instances, s.num_series";

fn life_of(row: &sqlx::any::AnyRow) -> Result<StudyLife, DbError> {
    let modalities: String = row.try_get(2)?;
    let state: String = row.try_get(3)?;
    Ok(StudyLife {
        study_uid: row.try_get(0)?,
        study_date: row.try_get(1)?,
        modalities: modalities
            .split('\\')
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .collect(),
        labels: Vec::new(),
        state: LifecycleState::parse(&state),
        received_at: row.try_get(4)?,
        keep_until: row.try_get(5)?,
        notice_at: row.try_get(6)?,
        hidden_at: row.try_get(7)?,
        exported_at: row.try_get(8)?,
        instances: row.try_get(9)?,
        series: row.try_get(10)?,
    })
}

impl Index {
    /// Puts `label` on a study; `false` when the facility has no such study.
    pub async fn set_label(
        &self,
        facility: FacilityId,
        study: &str,
        label: &str,
        at: i64,
    ) -> Result<bool, DbError> {
        let exists = sqlx::query(
            "SELECT 1 FROM studies WHERE facility_id = $1 AND study_uid = $2 AND deleted_at IS NULL",
        )
        .bind(facility.0)
        .bind(study)
        .fetch_optional(&self.pool)
        .await?;
        if exists.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO study_labels (facility_id, study_uid, label, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (facility_id, study_uid, label) DO NOTHING",
        )
        .bind(facility.0)
        .bind(study)
        .bind(label)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(true)
    }

    /// Takes `label` off a study; whether it had it.
    pub async fn remove_label(
        &self,
        facility: FacilityId,
        study: &str,
        label: &str,
    ) -> Result<bool, DbError> {
        let done = sqlx::query(
            "DELETE FROM study_labels WHERE facility_id = $1 AND study_uid = $2 AND label = $3",
        )
        .bind(facility.0)
        .bind(study)
        .bind(label)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// A study's labels, sorted.
    pub async fn labels(&self, facility: FacilityId, study: &str) -> Result<Vec<String>, DbError> {
        let rows = sqlx::query(
            "SELECT label FROM study_labels WHERE facility_id = $1 AND study_uid = $2 ORDER BY label",
        )
        .bind(facility.0)
        .bind(study)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Sets (adds or replaces) a policy of the facility for its scope.
    pub async fn set_policy(
        &self,
        facility: FacilityId,
        policy: &RetentionPolicy,
        at: i64,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO retention_policies (facility_id, set_by, modality, label, period_days, counted_from, \
             notice_days, grace_days, action, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (facility_id, set_by, modality, label) DO UPDATE SET period_days = excluded.period_days, \
             counted_from = excluded.counted_from, notice_days = excluded.notice_days, \
             grace_days = excluded.grace_days, action = excluded.action, created_at = excluded.created_at",
        )
        .bind(facility.0)
        .bind(policy.set_by.as_str())
        .bind(policy.modality.clone().unwrap_or_default())
        .bind(policy.label.clone().unwrap_or_default())
        .bind(policy.period_days)
        .bind(word_of(&policy.counted_from))
        .bind(policy.notice_days)
        .bind(policy.grace_days)
        .bind(word_of(&policy.action))
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes the policy of that scope; whether there was one.
    pub async fn remove_policy(
        &self,
        facility: FacilityId,
        set_by: SetBy,
        modality: Option<&str>,
        label: Option<&str>,
    ) -> Result<bool, DbError> {
        let done = sqlx::query(
            "DELETE FROM retention_policies WHERE facility_id = $1 AND set_by = $2 AND modality = $3 AND label = $4",
        )
        .bind(facility.0)
        .bind(set_by.as_str())
        .bind(modality.unwrap_or_default())
        .bind(label.unwrap_or_default())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The facility's policies (operator's first, then by scope).
    pub async fn policies(&self, facility: FacilityId) -> Result<Vec<RetentionPolicy>, DbError> {
        let rows = sqlx::query(
            "SELECT set_by, modality, label, period_days, counted_from, notice_days, grace_days, action \
             FROM retention_policies WHERE facility_id = $1 ORDER BY set_by DESC, modality, label",
        )
        .bind(facility.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let text = |i: usize| -> Result<String, DbError> { Ok(r.try_get::<String, _>(i)?) };
                let scope = |i: usize| -> Result<Option<String>, DbError> {
                    Ok(Some(text(i)?).filter(|s| !s.is_empty()))
                };
                Ok(RetentionPolicy {
                    set_by: word(&text(0)?)?,
                    modality: scope(1)?,
                    label: scope(2)?,
                    period_days: r.try_get(3)?,
                    counted_from: word(&text(4)?)?,
                    notice_days: r.try_get(5)?,
                    grace_days: r.try_get(6)?,
                    action: word(&text(7)?)?,
                })
            })
            .collect()
    }

    /// Facilities with at least one policy, or with studies not active (the job
    /// looks at these).
    pub async fn lifecycle_facilities(&self) -> Result<Vec<FacilityId>, DbError> {
        let rows = sqlx::query(
            "SELECT DISTINCT facility_id FROM retention_policies UNION \
             SELECT DISTINCT facility_id FROM studies WHERE lifecycle <> 'active' AND deleted_at IS NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(FacilityId(r.try_get(0)?))).collect()
    }

    /// The facility's studies (not deleted) with their labels, in `states` (all when
    /// empty).
    pub async fn study_lives(
        &self,
        facility: FacilityId,
        states: &[LifecycleState],
    ) -> Result<Vec<StudyLife>, DbError> {
        let filter = if states.is_empty() {
            String::new()
        } else {
            let words: Vec<String> = states.iter().map(|s| format!("'{}'", s.as_str())).collect();
            format!(" AND s.lifecycle IN ({})", words.join(", "))
        };
        let rows = sqlx::query(&format!(
            "SELECT {LIFE_COLUMNS} FROM studies s WHERE s.facility_id = $1 AND s.deleted_at IS NULL{filter} \
             ORDER BY s.study_uid"
        ))
        .bind(facility.0)
        .fetch_all(&self.pool)
        .await?;
        let mut lives = rows.iter().map(life_of).collect::<Result<Vec<_>, _>>()?;
        let labels = sqlx::query(
            "SELECT study_uid, label FROM study_labels WHERE facility_id = $1 ORDER BY study_uid, label",
        )
        .bind(facility.0)
        .fetch_all(&self.pool)
        .await?;
        let mut by_study: std::collections::HashMap<String, Vec<String>> = Default::default();
        for row in &labels {
            by_study
                .entry(row.try_get(0)?)
                .or_default()
                .push(row.try_get(1)?);
        }
        for life in &mut lives {
            if let Some(labels) = by_study.remove(&life.study_uid) {
                life.labels = labels;
            }
        }
        Ok(lives)
    }

    /// One study's life (not deleted).
    pub async fn study_life(
        &self,
        facility: FacilityId,
        study: &str,
    ) -> Result<Option<StudyLife>, DbError> {
        let row = sqlx::query(&format!(
            "SELECT {LIFE_COLUMNS} FROM studies s WHERE s.facility_id = $1 AND s.study_uid = $2 \
             AND s.deleted_at IS NULL"
        ))
        .bind(facility.0)
        .bind(study)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut life = life_of(&row)?;
        life.labels = self.labels(facility, study).await?;
        Ok(Some(life))
    }

    /// Moves a study from `t.from` to `t.to` with its feed event, in one
    /// transaction; `false` when it was not in `t.from` (someone else moved it).
    pub async fn transition(
        &self,
        facility: FacilityId,
        study: &str,
        t: Transition,
    ) -> Result<bool, DbError> {
        let mut tx = self.pool.begin().await?;
        // The facility row first, as every writer of the feed takes it.
        sqlx::query("UPDATE facilities SET change_seq = change_seq WHERE id = $1")
            .bind(facility.0)
            .execute(&mut *tx)
            .await?;
        let (notice_at, hidden_at) = match t.to {
            LifecycleState::Active => (None, None),
            LifecycleState::Expiring => (Some(t.at), None),
            LifecycleState::Hidden => (None, Some(t.at)),
        };
        let row = sqlx::query(
            "UPDATE studies SET lifecycle = $1, notice_at = CASE WHEN $1 = 'hidden' THEN notice_at ELSE $2 END, \
             hidden_at = $3, keep_until = COALESCE($4, keep_until) \
             WHERE facility_id = $5 AND study_uid = $6 AND lifecycle = $7 AND deleted_at IS NULL \
             RETURNING num_instances, num_series",
        )
        .bind(t.to.as_str())
        .bind(notice_at)
        .bind(hidden_at)
        .bind(t.keep_until)
        .bind(facility.0)
        .bind(study)
        .bind(t.from.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(false);
        };
        let mut log = ChangeLog::default();
        log.lifecycle(facility, t.kind, study, row.try_get(0)?, row.try_get(1)?);
        log.write(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records that the facility exported a study to a returnable medium.
    pub async fn mark_exported(
        &self,
        facility: FacilityId,
        study: &str,
        at: i64,
    ) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE studies SET exported_at = $1 WHERE facility_id = $2 AND study_uid = $3 AND deleted_at IS NULL",
        )
        .bind(at)
        .bind(facility.0)
        .bind(study)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Removes a study's rows, credits its bytes, writes its tombstone and the
    /// `purged` event, in one transaction; the blobs to delete are returned. `None`
    /// when the facility has no such study.
    pub async fn purge_study(
        &self,
        facility: FacilityId,
        study: &str,
        at: i64,
        reason: &str,
    ) -> Result<Option<Purged>, DbError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE facilities SET change_seq = change_seq WHERE id = $1")
            .bind(facility.0)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(
            "SELECT num_instances, num_series FROM studies WHERE facility_id = $1 AND study_uid = $2",
        )
        .bind(facility.0)
        .bind(study)
        .fetch_optional(&mut *tx)
        .await?;
        if row.is_none() {
            tx.rollback().await?;
            return Ok(None);
        }
        let blobs = sqlx::query(
            "SELECT i.blob_key, i.size_bytes FROM series se JOIN instances i \
             ON i.facility_id = se.facility_id AND i.series_uid = se.series_uid \
             WHERE se.facility_id = $1 AND se.study_uid = $2",
        )
        .bind(facility.0)
        .bind(study)
        .fetch_all(&mut *tx)
        .await?;
        let mut purged = Purged {
            blob_keys: Vec::with_capacity(blobs.len()),
            bytes: 0,
            instances: blobs.len() as i64,
        };
        for b in &blobs {
            purged.blob_keys.push(b.try_get(0)?);
            purged.bytes += b.try_get::<i64, _>(1)?;
        }
        sqlx::query(
            "DELETE FROM instances WHERE facility_id = $1 AND series_uid IN \
             (SELECT series_uid FROM series WHERE facility_id = $1 AND study_uid = $2)",
        )
        .bind(facility.0)
        .bind(study)
        .execute(&mut *tx)
        .await?;
        for table in [
            "series",
            "study_modalities",
            "study_patients",
            "name_tokens",
            "study_labels",
            "studies",
        ] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE facility_id = $1 AND study_uid = $2"
            ))
            .bind(facility.0)
            .bind(study)
            .execute(&mut *tx)
            .await?;
        }
        super::quota::charge(&mut tx, facility, -purged.bytes).await?;
        sqlx::query(
            "INSERT INTO tombstones (facility_id, study_uid, purged_at, num_instances, bytes, reason) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (facility_id, study_uid) DO UPDATE SET \
             purged_at = excluded.purged_at, num_instances = excluded.num_instances, \
             bytes = excluded.bytes, reason = excluded.reason",
        )
        .bind(facility.0)
        .bind(study)
        .bind(at)
        .bind(purged.instances)
        .bind(purged.bytes)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        let mut log = ChangeLog::default();
        log.lifecycle(facility, ChangeKind::Purged, study, 0, 0);
        log.write(&mut tx).await?;
        tx.commit().await?;
        Ok(Some(purged))
    }

    /// The tombstone of a purged study, if it was purged.
    pub async fn tombstone(
        &self,
        facility: FacilityId,
        study: &str,
    ) -> Result<Option<Tombstone>, DbError> {
        let row = sqlx::query(
            "SELECT purged_at, num_instances, bytes, reason FROM tombstones WHERE facility_id = $1 AND study_uid = $2",
        )
        .bind(facility.0)
        .bind(study)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Tombstone {
                study_uid: study.to_string(),
                purged_at: r.try_get(0)?,
                instances: r.try_get(1)?,
                bytes: r.try_get(2)?,
                reason: r.try_get(3)?,
            })
        })
        .transpose()
    }

    /// Lifts a tombstone (the facility wants the study stored again); whether there
    /// was one.
    pub async fn lift_tombstone(&self, facility: FacilityId, study: &str) -> Result<bool, DbError> {
        let done = sqlx::query("DELETE FROM tombstones WHERE facility_id = $1 AND study_uid = $2")
            .bind(facility.0)
            .bind(study)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
