//! Index rows for C-MOVE destinations: AE titles registered per facility, with the
//! address the gateway calls and whether it speaks DICOM TLS.
//!
//! Lookups always take the facility: a destination registered for another facility
//! does not exist for this one. Nothing here opens connections or decides who may
//! move what; that is the Q/R service's job ([`crate::scp`]).

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{DbError, Index, now_millis};
use crate::domain::{AeTitle, FacilityId, FacilityName};

/// A registered C-MOVE destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Row id.
    pub id: i64,
    /// The facility whose users may move to it.
    pub facility: FacilityId,
    /// That facility's name.
    pub facility_name: FacilityName,
    /// The destination's AE title (the Move Destination of a C-MOVE).
    pub ae_title: AeTitle,
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Whether the gateway calls it over DICOM TLS.
    pub tls: bool,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
}

impl Destination {
    /// `host:port` (IPv6 addresses in brackets).
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

const COLUMNS: &str =
    "d.id, d.facility_id, f.name, d.ae_title, d.host, d.port, d.tls, d.created_at";

impl Index {
    /// Registers a C-MOVE destination for a facility. Fails with
    /// [`DbError::Exists`] when the facility already has one with this AE title.
    pub async fn add_destination(
        &self,
        facility: FacilityId,
        ae_title: &AeTitle,
        host: &str,
        port: u16,
        tls: bool,
    ) -> Result<Destination, DbError> {
        let exists = || DbError::Exists(format!("move destination {ae_title} of this facility"));
        if self.find_destination(facility, ae_title).await?.is_some() {
            return Err(exists());
        }
        sqlx::query(
            "INSERT INTO move_destinations (facility_id, ae_title, host, port, tls, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(facility.0)
        .bind(ae_title.as_str())
        .bind(host)
        .bind(i64::from(port))
        .bind(i64::from(tls))
        .bind(now_millis())
        .execute(&self.pool)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(db) if db.is_unique_violation() => exists(),
            e => DbError::Query(e),
        })?;
        self.find_destination(facility, ae_title)
            .await?
            .ok_or_else(|| DbError::Query(sqlx::Error::RowNotFound))
    }

    /// Removes a facility's destination; `false` when there was none.
    pub async fn remove_destination(
        &self,
        facility: FacilityId,
        ae_title: &AeTitle,
    ) -> Result<bool, DbError> {
        let done =
            sqlx::query("DELETE FROM move_destinations WHERE facility_id = $1 AND ae_title = $2")
                .bind(facility.0)
                .bind(ae_title.as_str())
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Destinations of one facility, or of all, by facility name and AE title.
    pub async fn list_destinations(
        &self,
        facility: Option<FacilityId>,
    ) -> Result<Vec<Destination>, DbError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM move_destinations d JOIN facilities f ON f.id = d.facility_id \
             WHERE ($1 = 0 OR d.facility_id = $1) ORDER BY f.name, d.ae_title"
        );
        let rows = sqlx::query(&sql)
            .bind(facility.map_or(0, |f| f.0))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(destination_from_row).collect()
    }

    /// The destination `ae_title` of `facility`, if registered.
    pub async fn find_destination(
        &self,
        facility: FacilityId,
        ae_title: &AeTitle,
    ) -> Result<Option<Destination>, DbError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM move_destinations d JOIN facilities f ON f.id = d.facility_id \
             WHERE d.facility_id = $1 AND d.ae_title = $2"
        );
        let row = sqlx::query(&sql)
            .bind(facility.0)
            .bind(ae_title.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(destination_from_row).transpose()
    }
}

fn decode_error(message: String) -> DbError {
    DbError::Query(sqlx::Error::Decode(message.into()))
}

fn destination_from_row(row: &AnyRow) -> Result<Destination, DbError> {
    let facility_name: String = row.try_get(2)?;
    let ae_title: String = row.try_get(3)?;
    let port: i64 = row.try_get(5)?;
    Ok(Destination {
        id: row.try_get(0)?,
        facility: FacilityId(row.try_get(1)?),
        facility_name: FacilityName::parse(&facility_name).map_err(decode_error)?,
        ae_title: AeTitle::parse(&ae_title).map_err(decode_error)?,
        host: row.try_get(4)?,
        port: u16::try_from(port).map_err(|_| decode_error(format!("bad port {port}")))?,
        tls: row.try_get::<i64, _>(6)? != 0,
        created_at: row.try_get(7)?,
    })
}
