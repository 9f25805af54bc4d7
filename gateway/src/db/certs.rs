//! Facility client certificates (`devices` rows of kind `certificate`): listing,
//! revocation, and telling a revoked certificate from an unknown one.

use sqlx::Row;

use super::{DbError, Index, now_millis};
use crate::domain::FacilityId;

/// What the index says about a presented certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateStatus {
    /// Never enrolled.
    Unknown,
    /// Enrolled for this facility, then revoked.
    Revoked(FacilityId),
    /// Enrolled and valid for this facility.
    Valid(FacilityId),
}

impl Index {
    /// Revokes a facility's certificate. `Ok(false)`: the facility has no such
    /// certificate, or it was already revoked.
    pub async fn revoke_certificate_by_fingerprint(
        &self,
        facility: FacilityId,
        fingerprint: &str,
    ) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE devices SET revoked_at = $1 WHERE facility_id = $2 AND kind = 'certificate' \
             AND cert_fingerprint = $3 AND revoked_at IS NULL",
        )
        .bind(now_millis())
        .bind(facility.0)
        .bind(fingerprint)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Whether a certificate fingerprint is enrolled, revoked or unknown.
    pub async fn certificate_status(
        &self,
        fingerprint: &str,
    ) -> Result<CertificateStatus, DbError> {
        let rows = sqlx::query(
            "SELECT facility_id, revoked_at FROM devices WHERE cert_fingerprint = $1 AND kind = 'certificate'",
        )
        .bind(fingerprint)
        .fetch_all(&self.pool)
        .await?;
        let mut status = CertificateStatus::Unknown;
        for row in rows {
            let facility = FacilityId(row.try_get(0)?);
            match row.try_get::<Option<i64>, _>(1)? {
                None => return Ok(CertificateStatus::Valid(facility)),
                Some(_) => status = CertificateStatus::Revoked(facility),
            }
        }
        Ok(status)
    }
}
