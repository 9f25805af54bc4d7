//! The index: facilities, devices, studies, series and instances, in SQLite (WAL, the
//! embedded default) or PostgreSQL, through `sqlx::Any`. Migrations live in
//! `schemas/gateway/{sqlite,postgres}` and are embedded at build time.
//!
//! Every statement binds its values; nothing from the wire is spliced into SQL.

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor, Row};

pub mod admin;
pub mod certs;
pub mod changes;
pub mod destinations;
pub mod instances;
pub mod lifecycle;
pub mod quota;
pub mod read;
pub mod render;
pub mod sweep;
pub mod tokens;
pub mod usage;
pub mod users;
pub mod writer;

use crate::domain::{FacilityId, FacilityName};

/// Failures of the index.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database cannot be reached or opened.
    #[error("cannot open the index database {url}: {source}")]
    Open {
        /// The URL, without password.
        url: String,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// Migrations failed.
    #[error("cannot migrate the index database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("index query failed: {0}")]
    Query(#[from] sqlx::Error),
    /// A row already exists.
    #[error("{0} already exists")]
    Exists(String),
}

/// Which SQL dialect the pool speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// A facility as the gateway knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facility {
    /// Row id.
    pub id: FacilityId,
    /// Unique name.
    pub name: FacilityName,
    /// Whether instances without de-identification marks are accepted.
    pub accept_identified: bool,
}

/// Handle on the index database.
#[derive(Debug, Clone)]
pub struct Index {
    pub(crate) pool: AnyPool,
    backend: Backend,
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://[redacted]{}", &url[..scheme], &url[at..])
        }
        _ => url.to_string(),
    }
}

impl Index {
    /// Opens (creating if needed) and migrates the database at `url`.
    pub async fn open(url: &str) -> Result<Index, DbError> {
        install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        let options =
            AnyPoolOptions::new().max_connections(if backend == Backend::Sqlite { 8 } else { 16 });
        let options = options.after_connect(move |conn, _meta| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = FULL").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA busy_timeout = 30000").await?;
                }
                Ok(())
            })
        });
        let pool = options.connect(url).await.map_err(|source| DbError::Open {
            url: redact(url),
            source,
        })?;
        match backend {
            Backend::Sqlite => {
                sqlx::migrate!("../schemas/gateway/sqlite")
                    .run(&pool)
                    .await?
            }
            Backend::Postgres => {
                sqlx::migrate!("../schemas/gateway/postgres")
                    .run(&pool)
                    .await?
            }
        }
        Ok(Index { pool, backend })
    }

    /// The dialect in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pool (waits for connections to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Creates a facility.
    pub async fn create_facility(
        &self,
        name: &FacilityName,
        accept_identified: bool,
    ) -> Result<Facility, DbError> {
        if self.facility_by_name(name).await?.is_some() {
            return Err(DbError::Exists(format!("facility {name}")));
        }
        let row = sqlx::query("INSERT INTO facilities (name, accept_identified, created_at) VALUES ($1, $2, $3) RETURNING id")
            .bind(name.as_str())
            .bind(i64::from(accept_identified))
            .bind(now_millis())
            .fetch_one(&self.pool)
            .await?;
        Ok(Facility {
            id: FacilityId(row.try_get(0)?),
            name: name.clone(),
            accept_identified,
        })
    }

    /// Changes whether a facility may send identified instances.
    pub async fn set_accept_identified(&self, id: FacilityId, accept: bool) -> Result<(), DbError> {
        sqlx::query("UPDATE facilities SET accept_identified = $1 WHERE id = $2")
            .bind(i64::from(accept))
            .bind(id.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Looks a facility up by name.
    pub async fn facility_by_name(&self, name: &FacilityName) -> Result<Option<Facility>, DbError> {
        let row = sqlx::query("SELECT id, name, accept_identified FROM facilities WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| facility_from_row(&r)).transpose()
    }

    /// All facilities, by name.
    pub async fn facilities(&self) -> Result<Vec<Facility>, DbError> {
        let rows = sqlx::query("SELECT id, name, accept_identified FROM facilities ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(facility_from_row).collect()
    }

    /// Records a client certificate issued to a facility.
    pub async fn add_certificate(
        &self,
        facility: FacilityId,
        fingerprint: &str,
        subject: &str,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO devices (facility_id, kind, cert_fingerprint, cert_subject, created_at) \
             VALUES ($1, 'certificate', $2, $3, $4)",
        )
        .bind(facility.0)
        .bind(fingerprint)
        .bind(subject)
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The facility owning a (non-revoked) client certificate.
    pub async fn facility_by_certificate(
        &self,
        fingerprint: &str,
    ) -> Result<Option<Facility>, DbError> {
        let row = sqlx::query(
            "SELECT f.id, f.name, f.accept_identified FROM devices d JOIN facilities f ON f.id = d.facility_id \
             WHERE d.cert_fingerprint = $1 AND d.kind = 'certificate' AND d.revoked_at IS NULL",
        )
        .bind(fingerprint)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| facility_from_row(&r)).transpose()
    }
}

fn facility_from_row(row: &sqlx::any::AnyRow) -> Result<Facility, DbError> {
    let name: String = row.try_get(1)?;
    let name =
        FacilityName::parse(&name).map_err(|e| DbError::Query(sqlx::Error::Decode(e.into())))?;
    Ok(Facility {
        id: FacilityId(row.try_get(0)?),
        name,
        accept_identified: row.try_get::<i64, _>(2)? != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_appear_in_errors() {
        assert_eq!(
            redact("postgres://user:secret@db:5432/x"),
            "postgres://[redacted]@db:5432/x"
        );
        assert_eq!(redact("sqlite://./a.db"), "sqlite://./a.db");
    }
}
