//! Index rows for studies, series and instances: one transaction per stored instance,
//! keeping the study and series counters and the modalities-in-study list current.

use sqlx::{Any, Row, Transaction};

use super::changes::{Added, ChangeLog};
use super::quota::{Charged, charge};
use super::{DbError, Index};
use crate::domain::{FacilityId, Uid};

/// Study-level attributes of an instance, as received (pseudonymous).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StudyFields {
    /// Patient ID (the facility's pseudonym).
    pub patient_id: Option<String>,
    /// Patient Name (the facility's pseudonym).
    pub patient_name: Option<String>,
    /// Blind index of the original name (a few hex digits; collides on purpose).
    pub name_blind_index: Option<String>,
    /// Name search tokens of the original name (kept for the study patient).
    pub name_tokens: Vec<String>,
    /// Sealed identity of this instance (its identity summary, or for instances
    /// without one its full record); also stored on the instance row, and on the
    /// study's, the study patient's and the series' rows when it is their first.
    pub sealed_identity: Option<Vec<u8>>,
    /// The SOP Instance UID the sealed identity is bound to (this instance's own).
    pub sealed_sop_instance_uid: Option<String>,
    /// What `sealed_identity` is: `None` for the full record (Encrypted Content),
    /// `Some("summary")` for the identity summary envelope (0013,1011).
    pub sealed_kind: Option<&'static str>,
    /// Study Date, `YYYYMMDD`.
    pub study_date: Option<String>,
    /// Study Time.
    pub study_time: Option<String>,
    /// Accession Number.
    pub accession_number: Option<String>,
    /// Study Description.
    pub description: Option<String>,
}

/// Series-level attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeriesFields {
    /// Modality.
    pub modality: Option<String>,
    /// Series Description.
    pub description: Option<String>,
    /// Series Number.
    pub number: Option<i64>,
}

/// Everything indexed for one stored instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRecord {
    /// Owning facility.
    pub facility: FacilityId,
    /// SOP Instance UID.
    pub sop_instance_uid: Uid,
    /// SOP Class UID.
    pub sop_class_uid: Uid,
    /// Study Instance UID.
    pub study_uid: Uid,
    /// Series Instance UID.
    pub series_uid: Uid,
    /// Transfer syntax of the stored bytes.
    pub transfer_syntax: Uid,
    /// Instance Number.
    pub instance_number: Option<i64>,
    /// Number of Frames.
    pub number_of_frames: Option<i64>,
    /// Size of the data set as received, in bytes.
    pub size_bytes: i64,
    /// SHA-256 (hex) of the data set bytes as received.
    pub sha256: String,
    /// Blob key.
    pub blob_key: String,
    /// Calling AE title of the sender.
    pub calling_ae: String,
    /// Reception time, ms since the epoch.
    pub received_at: i64,
    /// Study attributes.
    pub study: StudyFields,
    /// Series attributes.
    pub series: SeriesFields,
}

/// The index's view of an already stored instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredInstance {
    /// SHA-256 of its data set.
    pub sha256: String,
    /// Where its blob is.
    pub blob_key: String,
    /// Its study.
    pub study_uid: String,
    /// Its series.
    pub series_uid: String,
}

impl Index {
    /// The stored instance with this UID in this facility, if any.
    pub async fn find_instance(
        &self,
        facility: FacilityId,
        sop: &Uid,
    ) -> Result<Option<StoredInstance>, DbError> {
        let row = sqlx::query(
            "SELECT sha256, blob_key, study_uid, series_uid FROM instances WHERE facility_id = $1 AND sop_instance_uid = $2",
        )
        .bind(facility.0)
        .bind(sop.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(StoredInstance {
                sha256: r.try_get(0)?,
                blob_key: r.try_get(1)?,
                study_uid: r.try_get(2)?,
                series_uid: r.try_get(3)?,
            })
        })
        .transpose()
    }

    /// Indexes a new instance and charges its size to the facility's quota, in one
    /// transaction. Nothing changes when the facility already has an instance with
    /// this UID (a concurrent store won the race) or when the quota would be exceeded.
    pub async fn insert_instance(&self, record: &InstanceRecord) -> Result<Indexed, DbError> {
        let mut tx = self.pool.begin().await?;
        let mut log = ChangeLog::default();
        let result = insert_charged(&mut tx, record, &mut log).await?;
        match result {
            Indexed::New(_) => {
                log.write(&mut tx).await?;
                tx.commit().await?
            }
            _ => tx.rollback().await?,
        }
        Ok(result)
    }

    /// Indexes several new instances in one transaction, each as
    /// [`Index::insert_instance`] would (each checked against the quota in turn).
    /// The changes feed gets one event per study and kind, not one per instance.
    pub async fn insert_batch(&self, records: &[&InstanceRecord]) -> Result<Vec<Indexed>, DbError> {
        let mut tx = self.pool.begin().await?;
        let mut results = Vec::with_capacity(records.len());
        let mut log = ChangeLog::default();
        for record in records {
            results.push(insert_charged(&mut tx, record, &mut log).await?);
        }
        log.write(&mut tx).await?;
        tx.commit().await?;
        Ok(results)
    }

    /// Replaces the stored instance with the same UID by `record`, in one transaction,
    /// adjusting the facility's usage by the size difference (refused, changing
    /// nothing, when a larger copy would exceed the quota).
    pub async fn replace_instance(&self, record: &InstanceRecord) -> Result<Indexed, DbError> {
        let mut tx = self.pool.begin().await?;
        let old_size: i64 = sqlx::query(
            "SELECT size_bytes FROM instances WHERE facility_id = $1 AND sop_instance_uid = $2",
        )
        .bind(record.facility.0)
        .bind(record.sop_instance_uid.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.try_get(0))
        .transpose()?
        .unwrap_or(0);
        let Some(charged) = charge(&mut tx, record.facility, record.size_bytes - old_size).await?
        else {
            tx.rollback().await?;
            return Ok(Indexed::OverQuota);
        };
        let removed = remove_instance(&mut tx, record.facility, &record.sop_instance_uid).await?;
        insert_instance_row(&mut tx, record).await?;
        let added = add_to_series_and_study(&mut tx, record).await?;
        // A replacement is an update of the study it lands in, even when removing the
        // old copy emptied (and so re-created) its series or study.
        let mut log = ChangeLog::default();
        let study = record.study_uid.as_str();
        log.updated(
            record.facility,
            study,
            added.series_uid,
            added.instances,
            added.series,
        );
        if let Some((old_study, old_series)) = removed.filter(|(s, _)| s != study) {
            let (instances, series) = study_counts(&mut tx, record.facility, &old_study).await?;
            log.updated(record.facility, &old_study, &old_series, instances, series);
        }
        log.write(&mut tx).await?;
        tx.commit().await?;
        Ok(Indexed::New(charged))
    }
}

/// What indexing a new instance did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indexed {
    /// Indexed; the facility's usage changed as shown.
    New(Charged),
    /// The facility already had this UID; nothing changed.
    Exists,
    /// The facility's quota would be exceeded; nothing changed.
    OverQuota,
}

/// Inserts the row, then charges the quota; a refused charge removes the row again
/// (it is ours: inserted in this transaction).
async fn insert_charged(
    tx: &mut Transaction<'_, Any>,
    record: &InstanceRecord,
    log: &mut ChangeLog,
) -> Result<Indexed, DbError> {
    if !insert_instance_row(tx, record).await? {
        return Ok(Indexed::Exists);
    }
    let Some(charged) = charge(tx, record.facility, record.size_bytes).await? else {
        sqlx::query("DELETE FROM instances WHERE facility_id = $1 AND sop_instance_uid = $2")
            .bind(record.facility.0)
            .bind(record.sop_instance_uid.as_str())
            .execute(&mut **tx)
            .await?;
        return Ok(Indexed::OverQuota);
    };
    let added = add_to_series_and_study(tx, record).await?;
    log.added(record.facility, record.study_uid.as_str(), added);
    Ok(Indexed::New(charged))
}

async fn insert_instance_row(
    tx: &mut Transaction<'_, Any>,
    r: &InstanceRecord,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "INSERT INTO instances (facility_id, sop_instance_uid, series_uid, study_uid, sop_class_uid, transfer_syntax, \
         instance_number, number_of_frames, size_bytes, sha256, blob_key, calling_ae, received_at, sealed_identity, \
         sealed_kind, patient_id, patient_name, name_blind_index) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
         ON CONFLICT (facility_id, sop_instance_uid) DO NOTHING",
    )
    .bind(r.facility.0)
    .bind(r.sop_instance_uid.as_str())
    .bind(r.series_uid.as_str())
    .bind(r.study_uid.as_str())
    .bind(r.sop_class_uid.as_str())
    .bind(r.transfer_syntax.as_str())
    .bind(r.instance_number)
    .bind(r.number_of_frames)
    .bind(r.size_bytes)
    .bind(&r.sha256)
    .bind(&r.blob_key)
    .bind(&r.calling_ae)
    .bind(r.received_at)
    .bind(&r.study.sealed_identity)
    .bind(r.study.sealed_kind)
    .bind(&r.study.patient_id)
    .bind(&r.study.patient_name)
    .bind(&r.study.name_blind_index)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Counts the instance in its series and study (creating them when new); says what
/// that did, for the changes feed.
async fn add_to_series_and_study<'r>(
    tx: &mut Transaction<'_, Any>,
    r: &'r InstanceRecord,
) -> Result<Added<'r>, DbError> {
    let s = &r.study;
    // The series first, counting the instance in the same statement: whether it is
    // new decides the study's series count. An existing series without an envelope
    // (its first instances had none, or were indexed before the column existed)
    // takes this instance's.
    let counted = sqlx::query(
        "INSERT INTO series (facility_id, series_uid, study_uid, modality, series_description, series_number, \
         sealed_identity, sealed_sop_instance_uid, sealed_kind, patient_id, patient_name, name_blind_index, \
         num_instances) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 1) \
         ON CONFLICT (facility_id, series_uid) DO UPDATE SET \
         num_instances = series.num_instances + 1, \
         sealed_sop_instance_uid = CASE WHEN series.sealed_identity IS NULL AND excluded.sealed_identity IS NOT NULL \
             THEN excluded.sealed_sop_instance_uid ELSE series.sealed_sop_instance_uid END, \
         sealed_kind = CASE WHEN series.sealed_identity IS NULL AND excluded.sealed_identity IS NOT NULL \
             THEN excluded.sealed_kind ELSE series.sealed_kind END, \
         sealed_identity = COALESCE(series.sealed_identity, excluded.sealed_identity) \
         RETURNING num_instances",
    )
    .bind(r.facility.0)
    .bind(r.series_uid.as_str())
    .bind(r.study_uid.as_str())
    .bind(&r.series.modality)
    .bind(&r.series.description)
    .bind(r.series.number)
    .bind(&s.sealed_identity)
    .bind(&s.sealed_sop_instance_uid)
    .bind(s.sealed_kind)
    .bind(&s.patient_id)
    .bind(&s.patient_name)
    .bind(&s.name_blind_index)
    .fetch_one(&mut **tx)
    .await?;
    // Emptied series are deleted, so a count of one means the series is new.
    let series_instances: i64 = counted.try_get(0)?;
    let new_series = i64::from(series_instances == 1);
    let study = sqlx::query(
        "INSERT INTO studies (facility_id, study_uid, patient_id, study_date, study_time, accession_number, \
         study_description, updated_at, patient_name, name_blind_index, sealed_identity, sealed_sop_instance_uid, \
         sealed_kind, num_instances, num_series, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 1, 1, $8) \
         ON CONFLICT (facility_id, study_uid) DO UPDATE SET updated_at = excluded.updated_at, \
         num_instances = studies.num_instances + 1, \
         num_series = studies.num_series + $14, \
         patient_id = COALESCE(studies.patient_id, excluded.patient_id), \
         patient_name = COALESCE(studies.patient_name, excluded.patient_name), \
         name_blind_index = COALESCE(studies.name_blind_index, excluded.name_blind_index), \
         sealed_sop_instance_uid = CASE WHEN studies.sealed_identity IS NULL \
             THEN excluded.sealed_sop_instance_uid ELSE studies.sealed_sop_instance_uid END, \
         sealed_kind = CASE WHEN studies.sealed_identity IS NULL \
             THEN excluded.sealed_kind ELSE studies.sealed_kind END, \
         sealed_identity = COALESCE(studies.sealed_identity, excluded.sealed_identity), \
         study_date = COALESCE(studies.study_date, excluded.study_date), \
         study_time = COALESCE(studies.study_time, excluded.study_time), \
         accession_number = COALESCE(studies.accession_number, excluded.accession_number), \
         study_description = COALESCE(studies.study_description, excluded.study_description) \
         RETURNING num_instances, num_series",
    )
    .bind(r.facility.0)
    .bind(r.study_uid.as_str())
    .bind(&s.patient_id)
    .bind(&s.study_date)
    .bind(&s.study_time)
    .bind(&s.accession_number)
    .bind(&s.description)
    .bind(r.received_at)
    .bind(&s.patient_name)
    .bind(&s.name_blind_index)
    .bind(&s.sealed_identity)
    .bind(&s.sealed_sop_instance_uid)
    .bind(s.sealed_kind)
    .bind(new_series)
    .fetch_one(&mut **tx)
    .await?;
    let (instances, series): (i64, i64) = (study.try_get(0)?, study.try_get(1)?);
    add_to_study_patient(tx, r).await?;
    if let Some(modality) = &r.series.modality {
        add_modality(tx, r, modality).await?;
    }
    Ok(Added {
        series_uid: r.series_uid.as_str(),
        // Emptied studies are deleted too: a count of one means a new study.
        new_study: instances == 1,
        new_series: new_series == 1,
        instances,
        series,
    })
}

/// A study's instance and series counts (0, 0 when it is gone).
async fn study_counts(
    tx: &mut Transaction<'_, Any>,
    facility: FacilityId,
    study: &str,
) -> Result<(i64, i64), DbError> {
    let row = sqlx::query(
        "SELECT num_instances, num_series FROM studies WHERE facility_id = $1 AND study_uid = $2",
    )
    .bind(facility.0)
    .bind(study)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(match row {
        Some(r) => (r.try_get(0)?, r.try_get(1)?),
        None => (0, 0),
    })
}

/// Counts the instance for its patient in the study (a study can hold several
/// patients); a patient new to the study brings its own identity.
async fn add_to_study_patient(
    tx: &mut Transaction<'_, Any>,
    r: &InstanceRecord,
) -> Result<(), DbError> {
    let s = &r.study;
    let counted = sqlx::query(
        "INSERT INTO study_patients (facility_id, study_uid, patient_key, patient_id, patient_name, \
         name_blind_index, sealed_identity, sealed_sop_instance_uid, sealed_kind, num_instances, first_seen) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10) \
         ON CONFLICT (facility_id, study_uid, patient_key) DO UPDATE SET \
         num_instances = study_patients.num_instances + 1, \
         patient_name = COALESCE(study_patients.patient_name, excluded.patient_name), \
         name_blind_index = COALESCE(study_patients.name_blind_index, excluded.name_blind_index), \
         sealed_sop_instance_uid = CASE WHEN study_patients.sealed_identity IS NULL \
             THEN excluded.sealed_sop_instance_uid ELSE study_patients.sealed_sop_instance_uid END, \
         sealed_kind = CASE WHEN study_patients.sealed_identity IS NULL \
             THEN excluded.sealed_kind ELSE study_patients.sealed_kind END, \
         sealed_identity = COALESCE(study_patients.sealed_identity, excluded.sealed_identity) \
         RETURNING num_instances",
    )
    .bind(r.facility.0)
    .bind(r.study_uid.as_str())
    .bind(s.patient_id.as_deref().unwrap_or_default())
    .bind(&s.patient_id)
    .bind(&s.patient_name)
    .bind(&s.name_blind_index)
    .bind(&s.sealed_identity)
    .bind(&s.sealed_sop_instance_uid)
    .bind(s.sealed_kind)
    .bind(r.received_at)
    .fetch_one(&mut **tx)
    .await?;
    let count: i64 = counted.try_get(0)?;
    if count == 1 && !s.name_tokens.is_empty() {
        // A patient new to the study: its name becomes searchable here.
        let mut sql = String::from(
            "INSERT INTO name_tokens (facility_id, study_uid, patient_key, token) VALUES ",
        );
        for i in 0..s.name_tokens.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("($1, $2, $3, ${})", i + 4));
        }
        sql.push_str(" ON CONFLICT DO NOTHING");
        let mut insert = sqlx::query(&sql)
            .bind(r.facility.0)
            .bind(r.study_uid.as_str())
            .bind(s.patient_id.as_deref().unwrap_or_default());
        for token in &s.name_tokens {
            insert = insert.bind(token.as_str());
        }
        insert.execute(&mut **tx).await?;
    }
    Ok(())
}

async fn add_modality(
    tx: &mut Transaction<'_, Any>,
    r: &InstanceRecord,
    modality: &str,
) -> Result<(), DbError> {
    let added = sqlx::query(
        "INSERT INTO study_modalities (facility_id, study_uid, modality, study_date) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (facility_id, study_uid, modality) DO NOTHING",
    )
    .bind(r.facility.0)
    .bind(r.study_uid.as_str())
    .bind(modality)
    .bind(&r.study.study_date)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if added == 1 {
        refresh_modalities(tx, r.facility, r.study_uid.as_str()).await?;
    }
    Ok(())
}

/// Rewrites `studies.modalities` (backslash-separated, sorted) from `study_modalities`.
async fn refresh_modalities(
    tx: &mut Transaction<'_, Any>,
    facility: FacilityId,
    study: &str,
) -> Result<(), DbError> {
    let rows = sqlx::query("SELECT modality FROM study_modalities WHERE facility_id = $1 AND study_uid = $2 ORDER BY modality")
        .bind(facility.0)
        .bind(study)
        .fetch_all(&mut **tx)
        .await?;
    let list: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<_, _>>()?;
    sqlx::query("UPDATE studies SET modalities = $1 WHERE facility_id = $2 AND study_uid = $3")
        .bind(list.join("\\"))
        .bind(facility.0)
        .bind(study)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Removes an instance row and its contribution to the counters; a series or study
/// left empty is removed with it. Says which study and series it was in.
async fn remove_instance(
    tx: &mut Transaction<'_, Any>,
    facility: FacilityId,
    sop: &Uid,
) -> Result<Option<(String, String)>, DbError> {
    let row = sqlx::query(
        "SELECT study_uid, series_uid, patient_id FROM instances WHERE facility_id = $1 AND sop_instance_uid = $2",
    )
    .bind(facility.0)
    .bind(sop.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let (study, series): (String, String) = (row.try_get(0)?, row.try_get(1)?);
    let patient_key = row.try_get::<Option<String>, _>(2)?.unwrap_or_default();
    let exec = |sql: &'static str| sqlx::query(sql).bind(facility.0);
    exec("DELETE FROM instances WHERE facility_id = $1 AND sop_instance_uid = $2")
        .bind(sop.as_str())
        .execute(&mut **tx)
        .await?;
    exec("UPDATE series SET num_instances = num_instances - 1 WHERE facility_id = $1 AND series_uid = $2")
        .bind(&series)
        .execute(&mut **tx)
        .await?;
    let emptied = exec(
        "DELETE FROM series WHERE facility_id = $1 AND series_uid = $2 AND num_instances <= 0",
    )
    .bind(&series)
    .execute(&mut **tx)
    .await?
    .rows_affected() as i64;
    exec("UPDATE study_patients SET num_instances = num_instances - 1 WHERE facility_id = $1 AND study_uid = $2 AND patient_key = $3")
        .bind(&study)
        .bind(&patient_key)
        .execute(&mut **tx)
        .await?;
    exec("DELETE FROM study_patients WHERE facility_id = $1 AND study_uid = $2 AND num_instances <= 0")
        .bind(&study)
        .execute(&mut **tx)
        .await?;
    exec(
        "DELETE FROM name_tokens WHERE facility_id = $1 AND study_uid = $2 AND NOT EXISTS \
         (SELECT 1 FROM study_patients p WHERE p.facility_id = name_tokens.facility_id \
         AND p.study_uid = name_tokens.study_uid AND p.patient_key = name_tokens.patient_key)",
    )
    .bind(&study)
    .execute(&mut **tx)
    .await?;
    exec("UPDATE studies SET num_instances = num_instances - 1, num_series = num_series - $2 WHERE facility_id = $1 AND study_uid = $3")
        .bind(emptied)
        .bind(&study)
        .execute(&mut **tx)
        .await?;
    let study_gone = exec(
        "DELETE FROM studies WHERE facility_id = $1 AND study_uid = $2 AND num_instances <= 0",
    )
    .bind(&study)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if study_gone == 1 {
        exec("DELETE FROM study_modalities WHERE facility_id = $1 AND study_uid = $2")
            .bind(&study)
            .execute(&mut **tx)
            .await?;
    }
    Ok(Some((study, series)))
}
