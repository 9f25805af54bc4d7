//! Per-facility read models for the admin API: storage usage (by modality and by
//! month of receipt), the study list with filters, and soft deletion of a study.
//!
//! Only pseudonymous values as stored are read; every statement is scoped by the
//! facility id and binds every value (filters are added as bound parameters, never
//! spliced). Deleted studies (`studies.deleted_at`) are left out of every count and
//! list here.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::changes::ChangeLog;
use super::{Backend, DbError, Index, now_millis};
use crate::domain::{FacilityId, Uid};

/// Counts of one modality.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModalityUsage {
    /// Modality ("" when the series had none).
    pub modality: String,
    /// Studies with at least one series of it.
    pub studies: i64,
    /// Instances.
    pub instances: i64,
    /// Bytes of those instances.
    pub bytes: i64,
}

/// Counts of one calendar month (UTC) of receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthUsage {
    /// `YYYY-MM`.
    pub month: String,
    /// Instances received that month.
    pub instances: i64,
    /// Their bytes.
    pub bytes: i64,
}

/// A facility's usage, as the index counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// Studies (not deleted).
    pub studies: i64,
    /// Series of those studies.
    pub series: i64,
    /// Instances of those studies.
    pub instances: i64,
    /// Last time an instance was received (ms since the epoch).
    pub last_ingest_at: Option<i64>,
    /// By modality, sorted.
    pub by_modality: Vec<ModalityUsage>,
    /// By month of receipt, oldest first.
    pub by_month: Vec<MonthUsage>,
}

/// Filters of the study list; `None` matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StudyFilter {
    /// Patient ID (pseudonym), exact.
    pub patient_id: Option<String>,
    /// A modality in the study, exact.
    pub modality: Option<String>,
    /// Study Date from (`YYYYMMDD`, inclusive).
    pub date_from: Option<String>,
    /// Study Date to (`YYYYMMDD`, inclusive).
    pub date_to: Option<String>,
    /// Accession Number, exact.
    pub accession_number: Option<String>,
}

/// One listed study.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudySummary {
    /// Study Instance UID (pseudonymous).
    pub study_uid: String,
    /// Patient ID (pseudonym).
    pub patient_id: Option<String>,
    /// Study Date.
    pub study_date: Option<String>,
    /// Accession Number.
    pub accession_number: Option<String>,
    /// Study Description.
    pub study_description: Option<String>,
    /// Modalities in the study.
    pub modalities: Vec<String>,
    /// Series count.
    pub series: i64,
    /// Instance count.
    pub instances: i64,
    /// Last change, ms since the epoch.
    pub updated_at: i64,
}

const LIVE_INSTANCES: &str = "FROM instances i JOIN studies st \
     ON st.facility_id = i.facility_id AND st.study_uid = i.study_uid \
     WHERE i.facility_id = $1 AND st.deleted_at IS NULL";

fn summary_from_row(row: &AnyRow) -> Result<StudySummary, DbError> {
    let modalities: String = row.try_get(5)?;
    Ok(StudySummary {
        study_uid: row.try_get(0)?,
        patient_id: row.try_get(1)?,
        study_date: row.try_get(2)?,
        accession_number: row.try_get(3)?,
        study_description: row.try_get(4)?,
        modalities: modalities
            .split('\\')
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .collect(),
        series: row.try_get(6)?,
        instances: row.try_get(7)?,
        updated_at: row.try_get(8)?,
    })
}

impl Index {
    /// Bytes stored per facility (the quota counter kept by the index writer), by
    /// facility name, for the `stored_bytes` metric.
    pub async fn stored_bytes_by_facility(&self) -> Result<Vec<(String, i64)>, DbError> {
        let rows = sqlx::query("SELECT name, stored_bytes FROM facilities ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get::<String, _>(0)?, row.try_get::<i64, _>(1)?)))
            .collect()
    }

    /// Usage of one facility.
    pub async fn usage(&self, facility: FacilityId) -> Result<Usage, DbError> {
        let id = facility.0;
        let count = |sql: &'static str| async move {
            let row = sqlx::query(sql).bind(id).fetch_one(&self.pool).await?;
            Ok::<i64, DbError>(row.try_get(0)?)
        };
        let studies =
            count("SELECT COUNT(*) FROM studies WHERE facility_id = $1 AND deleted_at IS NULL")
                .await?;
        let series = count(
            "SELECT COUNT(*) FROM series se JOIN studies st \
             ON st.facility_id = se.facility_id AND st.study_uid = se.study_uid \
             WHERE se.facility_id = $1 AND st.deleted_at IS NULL",
        )
        .await?;
        let instances = sqlx::query(&format!("SELECT COUNT(*) {LIVE_INSTANCES}"))
            .bind(id)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        let last_ingest_at =
            sqlx::query("SELECT MAX(received_at) FROM instances WHERE facility_id = $1")
                .bind(id)
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?;
        Ok(Usage {
            studies,
            series,
            instances,
            last_ingest_at,
            by_modality: self.usage_by_modality(facility).await?,
            by_month: self.usage_by_month(facility).await?,
        })
    }

    async fn usage_by_modality(&self, facility: FacilityId) -> Result<Vec<ModalityUsage>, DbError> {
        let sql = "SELECT COALESCE(se.modality, ''), COUNT(DISTINCT i.study_uid), COUNT(*), \
             CAST(COALESCE(SUM(i.size_bytes), 0) AS BIGINT) \
             FROM instances i JOIN series se \
             ON se.facility_id = i.facility_id AND se.series_uid = i.series_uid \
             JOIN studies st ON st.facility_id = i.facility_id AND st.study_uid = i.study_uid \
             WHERE i.facility_id = $1 AND st.deleted_at IS NULL \
             GROUP BY COALESCE(se.modality, '') ORDER BY 1";
        let rows = sqlx::query(sql)
            .bind(facility.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ModalityUsage {
                    modality: r.try_get(0)?,
                    studies: r.try_get(1)?,
                    instances: r.try_get(2)?,
                    bytes: r.try_get(3)?,
                })
            })
            .collect()
    }

    async fn usage_by_month(&self, facility: FacilityId) -> Result<Vec<MonthUsage>, DbError> {
        let month = match self.backend() {
            Backend::Sqlite => "strftime('%Y-%m', i.received_at / 1000, 'unixepoch')",
            Backend::Postgres => {
                "to_char(to_timestamp(i.received_at / 1000) AT TIME ZONE 'UTC', 'YYYY-MM')"
            }
        };
        let sql = format!(
            "SELECT {month} AS month, COUNT(*), CAST(COALESCE(SUM(i.size_bytes), 0) AS BIGINT) \
             {LIVE_INSTANCES} GROUP BY {month} ORDER BY 1"
        );
        let rows = sqlx::query(&sql)
            .bind(facility.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(MonthUsage {
                    month: r.try_get(0)?,
                    instances: r.try_get(1)?,
                    bytes: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// Studies of a facility matching `filter` (not deleted), newest study date
    /// first; at most `limit` from `offset`.
    pub async fn list_studies(
        &self,
        facility: FacilityId,
        filter: &StudyFilter,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<StudySummary>, DbError> {
        let mut sql = String::from(
            "SELECT s.study_uid, s.patient_id, s.study_date, s.accession_number, \
             s.study_description, s.modalities, s.num_series, s.num_instances, s.updated_at \
             FROM studies s WHERE s.facility_id = $1 AND s.deleted_at IS NULL",
        );
        let clauses: [(&str, &Option<String>); 5] = [
            (
                " AND EXISTS (SELECT 1 FROM study_patients p WHERE p.facility_id = s.facility_id \
                 AND p.study_uid = s.study_uid AND p.patient_id = $?)",
                &filter.patient_id,
            ),
            (
                " AND EXISTS (SELECT 1 FROM study_modalities m WHERE m.facility_id = s.facility_id \
                 AND m.study_uid = s.study_uid AND m.modality = $?)",
                &filter.modality,
            ),
            (" AND s.study_date >= $?", &filter.date_from),
            (" AND s.study_date <= $?", &filter.date_to),
            (" AND s.accession_number = $?", &filter.accession_number),
        ];
        let mut values: Vec<&str> = Vec::new();
        for (clause, value) in clauses {
            if let Some(v) = value {
                values.push(v);
                sql.push_str(&clause.replace("$?", &format!("${}", values.len() + 1)));
            }
        }
        let n = values.len();
        sql.push_str(&format!(
            " ORDER BY s.study_date DESC, s.study_uid LIMIT ${} OFFSET ${}",
            n + 2,
            n + 3
        ));
        let mut query = sqlx::query(&sql).bind(facility.0);
        for v in values {
            query = query.bind(v);
        }
        let rows = query.bind(limit).bind(offset).fetch_all(&self.pool).await?;
        rows.iter().map(summary_from_row).collect()
    }

    /// Marks a study of a facility deleted, with a `deleted` event in the changes
    /// feed (same transaction); `false` when there is no such study or it was
    /// deleted before.
    pub async fn soft_delete_study(
        &self,
        facility: FacilityId,
        study: &Uid,
    ) -> Result<bool, DbError> {
        let mut tx = self.pool.begin().await?;
        // The facility row first, as the ingest transaction takes it (to charge the
        // quota) before the study's: the other order could deadlock with a store
        // into this study on PostgreSQL.
        sqlx::query("UPDATE facilities SET change_seq = change_seq WHERE id = $1")
            .bind(facility.0)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(
            "UPDATE studies SET deleted_at = $1 WHERE facility_id = $2 AND study_uid = $3 \
             AND deleted_at IS NULL RETURNING num_instances, num_series",
        )
        .bind(now_millis())
        .bind(facility.0)
        .bind(study.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(false);
        };
        let mut log = ChangeLog::default();
        log.deleted(facility, study.as_str(), row.try_get(0)?, row.try_get(1)?);
        log.write(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }
}
