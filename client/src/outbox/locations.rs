//! Where studies are, read from the outbox: per study at the gateway, local-only,
//! waiting, refused, held or dead (`status --studies`, the query's location column),
//! and the studies and instances kept local-only, which the clinician side serves
//! from the spool.

use sqlx::Row;

use super::Outbox;

/// Where one study is (`status --studies`), counted in instances (SOP Instance UIDs).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StudyLocation {
    /// Original Study Instance UID.
    pub study_uid: String,
    /// Instances the gateway holds (some version delivered).
    pub at_gateway: i64,
    /// Instances kept local-only.
    pub local: i64,
    /// Versions waiting to be sent (pending or being sent).
    pub waiting: i64,
    /// Versions the gateway's duplicate policy refused.
    pub refused: i64,
    /// Versions held at this client (burned-in text).
    pub held: i64,
    /// Dead letters.
    pub dead: i64,
}

impl StudyLocation {
    /// `gateway`, `local-only`, `both`, `pending`, `held` (nothing sent, something
    /// held for burned-in text), or `failed` (nothing stored anywhere, nothing waiting).
    pub fn location(&self) -> &'static str {
        match (self.at_gateway > 0, self.local > 0) {
            (true, true) => "both",
            (true, false) => "gateway",
            (false, true) => "local-only",
            (false, false) if self.waiting > 0 => "pending",
            (false, false) if self.held > 0 => "held",
            (false, false) => "failed",
        }
    }
}

impl Outbox {
    /// Per study: instances the gateway holds, instances kept local-only, and the
    /// versions waiting, refused by the gateway's duplicate policy, or dead.
    pub async fn study_locations(&self) -> Result<Vec<StudyLocation>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT study_uid, \
             COUNT(DISTINCT CASE WHEN state = 'delivered' THEN sop_instance_uid END), \
             COUNT(DISTINCT CASE WHEN state = 'local' THEN sop_instance_uid END), \
             SUM(CASE WHEN state IN ('pending', 'sending') THEN 1 ELSE 0 END), \
             SUM(CASE WHEN state = 'refused' THEN 1 ELSE 0 END), \
             SUM(CASE WHEN state = 'held' THEN 1 ELSE 0 END), \
             SUM(CASE WHEN state = 'dead' THEN 1 ELSE 0 END) \
             FROM outbox GROUP BY study_uid ORDER BY study_uid",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StudyLocation {
                    study_uid: r.try_get(0)?,
                    at_gateway: r.try_get(1)?,
                    local: r.try_get(2)?,
                    waiting: r.try_get(3)?,
                    refused: r.try_get(4)?,
                    held: r.try_get(5)?,
                    dead: r.try_get(6)?,
                })
            })
            .collect()
    }

    /// Studies with no instance delivered to the gateway and some kept local-only:
    /// study UID, the spool path of one of its instances still on disk, and how many.
    pub async fn local_only_studies(&self) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT study_uid, MIN(spool_path), COUNT(*) FROM outbox WHERE state = 'local' AND purged_at IS NULL \
             AND study_uid NOT IN (SELECT study_uid FROM outbox WHERE state = 'delivered') \
             GROUP BY study_uid ORDER BY study_uid",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    /// The instances of `study_uid` kept local-only and still on disk: SOP class, SOP
    /// instance, transfer syntax and spool path.
    pub async fn local_instances(
        &self,
        study_uid: &str,
    ) -> Result<Vec<(String, String, String, String)>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT sop_class_uid, sop_instance_uid, transfer_syntax, spool_path FROM outbox \
             WHERE study_uid = ? AND state = 'local' AND purged_at IS NULL ORDER BY sop_instance_uid",
        )
        .bind(study_uid)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
            .collect()
    }

    /// Whether this machine holds `study_uid` (original) itself: some instance of it
    /// was received here and no instance delivered or kept local-only has had its
    /// spool copy removed by retention since. Thumbnail sync leaves such studies out.
    pub async fn held_locally(&self, study_uid: &str) -> Result<bool, sqlx::Error> {
        let row = sqlx::query(
            "SELECT COUNT(DISTINCT sop_instance_uid), \
             COUNT(DISTINCT CASE WHEN purged_at IS NULL THEN sop_instance_uid END) \
             FROM outbox WHERE study_uid = ? AND state IN ('delivered', 'local')",
        )
        .bind(study_uid)
        .fetch_one(&self.pool)
        .await?;
        let (all, kept): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        Ok(all > 0 && kept == all)
    }
}
