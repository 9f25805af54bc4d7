//! Pixel privacy in the outbox (migration 0004): instances held back by the pixel
//! screening, and the local audit of decisions about them.

use sqlx::Row;

use super::{Outbox, now_millis};

/// A held instance, as `status` and `held list` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldRow {
    /// Outbox id.
    pub id: i64,
    /// Original SOP Instance UID.
    pub sop_instance_uid: String,
    /// Original Study Instance UID.
    pub study_uid: String,
    /// Modality.
    pub modality: Option<String>,
    /// Spool file.
    pub spool_path: String,
    /// When it was received, ms since the epoch.
    pub received_at: i64,
    /// Why it is held.
    pub reason: String,
}

/// A decision about a held instance, from the local audit table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PixelAuditRow {
    /// When, ms since the epoch.
    pub at: i64,
    /// Operating-system user who decided.
    pub os_user: String,
    /// `release` or `keep-local`.
    pub action: String,
    /// Outbox id.
    pub outbox_id: i64,
    /// Original SOP Instance UID.
    pub sop_instance_uid: String,
    /// The hold reason at that moment.
    pub reason: String,
}

/// Pixel privacy: held instances and the decisions about them (migration 0004).
impl Outbox {
    /// The pixel screening kept this claimed row back, for `reason`.
    pub async fn held(&self, id: i64, reason: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE outbox SET state = 'held', last_error = ?2, attempts = attempts + 1 WHERE id = ?1",
        )
        .bind(id)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Held instances, oldest first.
    pub async fn held_instances(&self) -> Result<Vec<HeldRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, sop_instance_uid, study_uid, modality, spool_path, received_at, COALESCE(last_error, '') \
             FROM outbox WHERE state = 'held' ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HeldRow {
                    id: r.try_get(0)?,
                    sop_instance_uid: r.try_get(1)?,
                    study_uid: r.try_get(2)?,
                    modality: r.try_get(3)?,
                    spool_path: r.try_get(4)?,
                    received_at: r.try_get(5)?,
                    reason: r.try_get(6)?,
                })
            })
            .collect()
    }

    /// Whether a person released this row, for the bytes it holds now.
    pub async fn released(&self, id: i64) -> Result<bool, sqlx::Error> {
        let row = sqlx::query(
            "SELECT 1 FROM pixel_releases r JOIN outbox o ON o.id = r.outbox_id AND o.sha256 = r.sha256 \
             WHERE r.outbox_id = ?1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// A person releases a held row to be sent as it is: due now, marked released
    /// for its current bytes, audited. `None` when `id` is not held.
    pub async fn release_held(
        &self,
        id: i64,
        os_user: &str,
    ) -> Result<Option<HeldRow>, sqlx::Error> {
        self.decide_held(id, os_user, "release", "pending").await
    }

    /// A person keeps a held row local-only, audited. `None` when `id` is not held.
    pub async fn keep_held_local(
        &self,
        id: i64,
        os_user: &str,
    ) -> Result<Option<HeldRow>, sqlx::Error> {
        self.decide_held(id, os_user, "keep-local", "local").await
    }

    async fn decide_held(
        &self,
        id: i64,
        os_user: &str,
        action: &str,
        state: &str,
    ) -> Result<Option<HeldRow>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        // The write comes first, so the transaction never upgrades from read to write.
        let Some(row) = sqlx::query(
            "UPDATE outbox SET state = ?2, attempts = 0, next_attempt_at = 0 WHERE id = ?1 AND state = 'held' \
             RETURNING id, sop_instance_uid, study_uid, modality, spool_path, received_at, COALESCE(last_error, ''), sha256",
        )
        .bind(id)
        .bind(state)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(None);
        };
        let held = HeldRow {
            id: row.try_get(0)?,
            sop_instance_uid: row.try_get(1)?,
            study_uid: row.try_get(2)?,
            modality: row.try_get(3)?,
            spool_path: row.try_get(4)?,
            received_at: row.try_get(5)?,
            reason: row.try_get(6)?,
        };
        let sha256: String = row.try_get(7)?;
        let now = now_millis();
        if action == "release" {
            sqlx::query(
                "INSERT INTO pixel_releases (outbox_id, sha256, released_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (outbox_id) DO UPDATE SET sha256 = excluded.sha256, released_at = excluded.released_at",
            )
            .bind(id)
            .bind(&sha256)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO pixel_audit (at, os_user, action, outbox_id, sop_instance_uid, reason) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(now)
        .bind(os_user)
        .bind(action)
        .bind(id)
        .bind(&held.sop_instance_uid)
        .bind(&held.reason)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(held))
    }

    /// The local audit of held-instance decisions, newest first.
    pub async fn pixel_audit(&self) -> Result<Vec<PixelAuditRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT at, os_user, action, outbox_id, sop_instance_uid, reason FROM pixel_audit ORDER BY id DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PixelAuditRow {
                    at: r.try_get(0)?,
                    os_user: r.try_get(1)?,
                    action: r.try_get(2)?,
                    outbox_id: r.try_get(3)?,
                    sop_instance_uid: r.try_get(4)?,
                    reason: r.try_get(5)?,
                })
            })
            .collect()
    }
}
