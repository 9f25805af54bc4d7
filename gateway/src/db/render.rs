//! What rendering and thumbnails ([`crate::render`]) read from the index: the
//! instances of a series with their Instance Numbers (to pick the representative
//! one), the series of a study in Series Number order, and the study's Key Object
//! Selection documents (which may name the representative instead).

use sqlx::Row;

use super::{DbError, Index};
use crate::domain::FacilityId;

/// An instance of a series, for choosing the representative one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesMember {
    /// SOP Instance UID.
    pub sop_instance_uid: String,
    /// Instance Number, when the data set had one.
    pub instance_number: Option<i64>,
}

impl Index {
    /// The instances of `series` in `facility`, by Instance Number (instances
    /// without one last), then SOP Instance UID.
    pub async fn series_members(
        &self,
        facility: FacilityId,
        series: &str,
    ) -> Result<Vec<SeriesMember>, DbError> {
        let rows = sqlx::query(
            "SELECT sop_instance_uid, instance_number FROM instances \
             WHERE facility_id = $1 AND series_uid = $2",
        )
        .bind(facility.0)
        .bind(series)
        .fetch_all(&self.pool)
        .await?;
        let mut members = rows
            .iter()
            .map(|r| {
                Ok(SeriesMember {
                    sop_instance_uid: r.try_get(0)?,
                    instance_number: r.try_get(1)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        // Sorted here: SQLite and PostgreSQL place NULLs differently.
        members.sort_by(|a, b| {
            (
                a.instance_number.is_none(),
                a.instance_number,
                &a.sop_instance_uid,
            )
                .cmp(&(
                    b.instance_number.is_none(),
                    b.instance_number,
                    &b.sop_instance_uid,
                ))
        });
        Ok(members)
    }

    /// The series of `study` in `facility`, by Series Number (series without one
    /// last), then Series Instance UID.
    pub async fn study_series(
        &self,
        facility: FacilityId,
        study: &str,
    ) -> Result<Vec<String>, DbError> {
        let rows = sqlx::query(
            "SELECT series_uid, series_number FROM series WHERE facility_id = $1 AND study_uid = $2",
        )
        .bind(facility.0)
        .bind(study)
        .fetch_all(&self.pool)
        .await?;
        let mut series = rows
            .iter()
            .map(|r| Ok((r.try_get::<Option<i64>, _>(1)?, r.try_get::<String, _>(0)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        series.sort_by(|a, b| (a.0.is_none(), a.0, &a.1).cmp(&(b.0.is_none(), b.0, &b.1)));
        Ok(series.into_iter().map(|(_, uid)| uid).collect())
    }
}

/// Key Object Selection Document Storage.
pub const KEY_OBJECT_SELECTION: &str = "1.2.840.10008.5.1.4.1.1.88.59";

impl Index {
    /// The study of `series` in `facility`, if the series is indexed.
    pub async fn study_of_series(
        &self,
        facility: FacilityId,
        series: &str,
    ) -> Result<Option<String>, DbError> {
        let row =
            sqlx::query("SELECT study_uid FROM series WHERE facility_id = $1 AND series_uid = $2")
                .bind(facility.0)
                .bind(series)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Blob keys of the Key Object Selection documents of `study`, newest first, at
    /// most `limit`.
    pub async fn key_objects(
        &self,
        facility: FacilityId,
        study: &str,
        limit: i64,
    ) -> Result<Vec<String>, DbError> {
        let rows = sqlx::query(
            // Through the study's KO series (both lookups indexed).
            "SELECT i.blob_key FROM series s JOIN instances i \
             ON i.facility_id = s.facility_id AND i.series_uid = s.series_uid \
             WHERE s.facility_id = $1 AND s.study_uid = $2 AND s.modality = 'KO' \
             AND i.sop_class_uid = $3 ORDER BY i.received_at DESC, i.sop_instance_uid LIMIT $4",
        )
        .bind(facility.0)
        .bind(study)
        .bind(KEY_OBJECT_SELECTION)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?)
    }
}
