//! The export ledger: which studies were written to a returnable medium, when, where
//! and with how many instances (`pacs-client export`). A study already in it is
//! refused by the export unless asked again.

use sqlx::Row;

use super::Outbox;

/// One study written to a medium.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExportRow {
    /// Original Study Instance UID.
    pub study_uid: String,
    /// `cd`, `dvd`, `usb` or `folder`.
    pub medium: String,
    /// Milliseconds since the epoch.
    pub exported_at: i64,
    /// The output folder.
    pub out_dir: String,
    /// Instances written.
    pub instances: i64,
    /// The OS user who exported it.
    pub os_user: String,
}

impl Outbox {
    /// The earlier exports of `study_uid`, oldest first.
    pub async fn exports_of(&self, study_uid: &str) -> Result<Vec<ExportRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT study_uid, medium, exported_at, out_dir, instances, os_user \
             FROM export_ledger WHERE study_uid = ? ORDER BY id",
        )
        .bind(study_uid)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ExportRow {
                    study_uid: r.try_get(0)?,
                    medium: r.try_get(1)?,
                    exported_at: r.try_get(2)?,
                    out_dir: r.try_get(3)?,
                    instances: r.try_get(4)?,
                    os_user: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// Records the studies of one medium (one transaction: all or none).
    pub async fn record_exports(&self, rows: &[ExportRow]) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        for row in rows {
            sqlx::query(
                "INSERT INTO export_ledger (study_uid, medium, exported_at, out_dir, instances, os_user) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(&row.study_uid)
            .bind(&row.medium)
            .bind(row.exported_at)
            .bind(&row.out_dir)
            .bind(row.instances)
            .bind(&row.os_user)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }
}
