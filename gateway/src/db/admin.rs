//! Index rows the admin API manages besides users and destinations: facility
//! settings (quota), the facility's client certificates (`devices` of kind
//! `certificate`) and their revocation.
//!
//! Every statement that touches a facility's rows takes the facility id: a row of
//! another facility does not exist for the caller. Who may call what is decided in
//! [`crate::http`].

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{DbError, Index, now_millis};
use crate::domain::{FacilityId, FacilityName};

/// A facility with its settings, as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacilitySettings {
    /// Row id.
    pub id: FacilityId,
    /// Name.
    pub name: FacilityName,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
    /// Whether identified instances are accepted.
    pub accept_identified: bool,
    /// Storage quota in bytes; `None` is unlimited.
    pub quota_bytes: Option<i64>,
    /// Warning threshold, percent of the quota.
    pub quota_warn_percent: i64,
    /// Bytes stored (kept by the ingest path).
    pub stored_bytes: i64,
}

/// A client certificate enrolled for a facility.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRow {
    /// Device row id.
    pub id: i64,
    /// SHA-256 (hex) of the certificate DER.
    pub fingerprint: String,
    /// Subject as recorded at issue time.
    pub subject: String,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
    /// Revocation time, ms since the epoch.
    pub revoked_at: Option<i64>,
}

/// What revoking a certificate did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// Revoked now.
    Now,
    /// It was revoked before.
    Already,
    /// The facility has no certificate with this id.
    NotFound,
}

const FACILITY_COLUMNS: &str =
    "id, name, created_at, accept_identified, quota_bytes, quota_warn_percent, stored_bytes";

fn decode_error(message: String) -> DbError {
    DbError::Query(sqlx::Error::Decode(message.into()))
}

fn settings_from_row(row: &AnyRow) -> Result<FacilitySettings, DbError> {
    let name: String = row.try_get(1)?;
    Ok(FacilitySettings {
        id: FacilityId(row.try_get(0)?),
        name: FacilityName::parse(&name).map_err(decode_error)?,
        created_at: row.try_get(2)?,
        accept_identified: row.try_get::<i64, _>(3)? != 0,
        quota_bytes: row.try_get(4)?,
        quota_warn_percent: row.try_get(5)?,
        stored_bytes: row.try_get(6)?,
    })
}

fn certificate_from_row(row: &AnyRow) -> Result<CertificateRow, DbError> {
    Ok(CertificateRow {
        id: row.try_get(0)?,
        fingerprint: row.try_get(1)?,
        subject: row.try_get::<Option<String>, _>(2)?.unwrap_or_default(),
        created_at: row.try_get(3)?,
        revoked_at: row.try_get(4)?,
    })
}

impl Index {
    /// Settings of every facility (`None`) or of one, by name.
    pub async fn facility_settings(
        &self,
        facility: Option<FacilityId>,
    ) -> Result<Vec<FacilitySettings>, DbError> {
        let sql = format!(
            "SELECT {FACILITY_COLUMNS} FROM facilities WHERE ($1 = 0 OR id = $1) ORDER BY name"
        );
        let rows = sqlx::query(&sql)
            .bind(facility.map_or(0, |f| f.0))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(settings_from_row).collect()
    }

    /// Sets a facility's quota (`None`: unlimited) and warning threshold.
    pub async fn set_quota_settings(
        &self,
        facility: FacilityId,
        quota_bytes: Option<i64>,
        warn_percent: i64,
    ) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE facilities SET quota_bytes = $1, quota_warn_percent = $2 WHERE id = $3",
        )
        .bind(quota_bytes)
        .bind(warn_percent)
        .bind(facility.0)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a client certificate issued to a facility; returns its device id.
    pub async fn insert_certificate(
        &self,
        facility: FacilityId,
        fingerprint: &str,
        subject: &str,
    ) -> Result<i64, DbError> {
        let row = sqlx::query(
            "INSERT INTO devices (facility_id, kind, cert_fingerprint, cert_subject, created_at) \
             VALUES ($1, 'certificate', $2, $3, $4) RETURNING id",
        )
        .bind(facility.0)
        .bind(fingerprint)
        .bind(subject)
        .bind(now_millis())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get(0)?)
    }

    /// A facility's client certificates, oldest first.
    pub async fn certificates(&self, facility: FacilityId) -> Result<Vec<CertificateRow>, DbError> {
        let rows = sqlx::query(
            "SELECT id, cert_fingerprint, cert_subject, created_at, revoked_at FROM devices \
             WHERE facility_id = $1 AND kind = 'certificate' ORDER BY id",
        )
        .bind(facility.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(certificate_from_row).collect()
    }

    /// Revokes a facility's client certificate: every later association presenting
    /// it is refused.
    pub async fn revoke_certificate(
        &self,
        facility: FacilityId,
        id: i64,
    ) -> Result<Revoked, DbError> {
        let done = sqlx::query(
            "UPDATE devices SET revoked_at = $1 WHERE id = $2 AND facility_id = $3 \
             AND kind = 'certificate' AND revoked_at IS NULL",
        )
        .bind(now_millis())
        .bind(id)
        .bind(facility.0)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() > 0 {
            return Ok(Revoked::Now);
        }
        let exists = sqlx::query(
            "SELECT 1 FROM devices WHERE id = $1 AND facility_id = $2 AND kind = 'certificate'",
        )
        .bind(id)
        .bind(facility.0)
        .fetch_optional(&self.pool)
        .await?;
        Ok(if exists.is_some() {
            Revoked::Already
        } else {
            Revoked::NotFound
        })
    }
}
