//! What the blob sweep ([`crate::ingest::sweep`]) reads from the index: every
//! instance's blob key, a page at a time in primary-key order, and the key one
//! instance row holds now.

use sqlx::Row;

use super::{DbError, Index};
use crate::domain::FacilityId;

/// One instance row's place in the blob store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedBlob {
    /// Facility.
    pub facility: FacilityId,
    /// SOP Instance UID.
    pub sop_instance_uid: String,
    /// Blob key.
    pub blob_key: String,
}

impl Index {
    /// Up to `limit` instance rows after `after` (facility, SOP Instance UID), in
    /// primary-key order; `None` starts at the first.
    ///
    /// The row-value comparison is a range on the primary key in both SQLite and
    /// PostgreSQL. Written as `facility_id > $1 OR (facility_id = $1 AND ...)`,
    /// PostgreSQL walked the key from the first row and filtered, so each page cost
    /// all the rows before it (2.4 s per page half-way through 1,000,000 instances:
    /// a sweep of that index kept a core busy for many minutes).
    pub async fn blob_keys_after(
        &self,
        after: Option<(FacilityId, &str)>,
        limit: i64,
    ) -> Result<Vec<IndexedBlob>, DbError> {
        let (facility, sop) = after.map_or((i64::MIN, ""), |(f, s)| (f.0, s));
        let rows = sqlx::query(
            "SELECT facility_id, sop_instance_uid, blob_key FROM instances \
             WHERE (facility_id, sop_instance_uid) > ($1, $2) \
             ORDER BY facility_id, sop_instance_uid LIMIT $3",
        )
        .bind(facility)
        .bind(sop)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(IndexedBlob {
                    facility: FacilityId(r.try_get(0)?),
                    sop_instance_uid: r.try_get(1)?,
                    blob_key: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// The blob key the row of `sop` in `facility` holds now, if there is a row.
    pub async fn blob_key_of(
        &self,
        facility: FacilityId,
        sop: &str,
    ) -> Result<Option<String>, DbError> {
        let row = sqlx::query(
            "SELECT blob_key FROM instances WHERE facility_id = $1 AND sop_instance_uid = $2",
        )
        .bind(facility.0)
        .bind(sop)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }
}
