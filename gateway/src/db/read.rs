//! Read access to the index rows (for the CLI, tests and, later, query/retrieve).

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{DbError, Index};
use crate::domain::FacilityId;

/// One indexed instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRow {
    /// SOP Instance UID.
    pub sop_instance_uid: String,
    /// Study Instance UID.
    pub study_uid: String,
    /// Series Instance UID.
    pub series_uid: String,
    /// SOP Class UID.
    pub sop_class_uid: String,
    /// Transfer syntax of the stored bytes.
    pub transfer_syntax: String,
    /// Size of the data set in bytes.
    pub size_bytes: i64,
    /// SHA-256 (hex) of the data set.
    pub sha256: String,
    /// Blob key.
    pub blob_key: String,
    /// Sender's AE title.
    pub calling_ae: String,
    /// Number of Frames.
    pub number_of_frames: Option<i64>,
}

/// One indexed study.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudyRow {
    /// Study Instance UID.
    pub study_uid: String,
    /// Patient ID (pseudonym).
    pub patient_id: Option<String>,
    /// Name blind index.
    pub name_blind_index: Option<String>,
    /// Study Date.
    pub study_date: Option<String>,
    /// Accession Number.
    pub accession_number: Option<String>,
    /// Modalities in Study, backslash-separated.
    pub modalities: String,
    /// Number of series.
    pub num_series: i64,
    /// Number of instances.
    pub num_instances: i64,
}

fn instance(r: &AnyRow) -> Result<InstanceRow, sqlx::Error> {
    Ok(InstanceRow {
        sop_instance_uid: r.try_get(0)?,
        study_uid: r.try_get(1)?,
        series_uid: r.try_get(2)?,
        sop_class_uid: r.try_get(3)?,
        transfer_syntax: r.try_get(4)?,
        size_bytes: r.try_get(5)?,
        sha256: r.try_get(6)?,
        blob_key: r.try_get(7)?,
        calling_ae: r.try_get(8)?,
        number_of_frames: r.try_get(9)?,
    })
}

impl Index {
    /// Every instance of a facility, by SOP Instance UID.
    pub async fn instances(&self, facility: FacilityId) -> Result<Vec<InstanceRow>, DbError> {
        let rows = sqlx::query(
            "SELECT sop_instance_uid, study_uid, series_uid, sop_class_uid, transfer_syntax, size_bytes, sha256, \
             blob_key, calling_ae, number_of_frames FROM instances WHERE facility_id = $1 ORDER BY sop_instance_uid",
        )
        .bind(facility.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(instance).collect::<Result<_, _>>()?)
    }

    /// Every study of a facility, by Study Instance UID.
    pub async fn studies(&self, facility: FacilityId) -> Result<Vec<StudyRow>, DbError> {
        let rows = sqlx::query(
            "SELECT study_uid, patient_id, study_date, accession_number, modalities, num_series, num_instances, \
             name_blind_index FROM studies WHERE facility_id = $1 ORDER BY study_uid",
        )
        .bind(facility.0)
        .fetch_all(&self.pool)
        .await?;
        let study = |r: &AnyRow| -> Result<StudyRow, sqlx::Error> {
            Ok(StudyRow {
                study_uid: r.try_get(0)?,
                patient_id: r.try_get(1)?,
                study_date: r.try_get(2)?,
                accession_number: r.try_get(3)?,
                modalities: r.try_get(4)?,
                num_series: r.try_get(5)?,
                num_instances: r.try_get(6)?,
                name_blind_index: r.try_get(7)?,
            })
        };
        Ok(rows.iter().map(study).collect::<Result<_, _>>()?)
    }

    /// Number of instances across all facilities.
    pub async fn count_instances(&self) -> Result<i64, DbError> {
        let row = sqlx::query("SELECT COUNT(*) FROM instances")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }
}
