//! The outbox: one row per received VERSION of an instance, in the client's SQLite
//! database (WAL, synchronous FULL). A row is committed before the modality hears
//! success; the forwarder claims due rows, and records delivery, retry, refusal or
//! dead letter.
//!
//! A modality may send the same SOP Instance UID again with other content (a
//! correction): that is a new version with its own spool file, sent after the earlier
//! ones, in order of receipt. A row is marked delivered only for the bytes it holds;
//! the gateway's duplicate policy decides which version it keeps, and the rows say so
//! (`delivered`, `refused`, `superseded`).

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

mod exports;
mod held;
mod locations;

pub use exports::ExportRow;

pub use held::{HeldRow, PixelAuditRow};
pub use locations::StudyLocation;

/// Milliseconds since the epoch.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Where an instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting to be sent (possibly after a backoff).
    Pending,
    /// Claimed by a forwarder worker.
    Sending,
    /// The gateway has it.
    Delivered,
    /// Kept local by the sharing rules.
    Local,
    /// Gave up after the configured tries, or refused for good.
    Dead,
    /// The gateway's duplicate policy declined this version: it keeps another version
    /// of the same instance.
    Refused,
    /// An older version that a newer one replaced (at the gateway, or in the local
    /// store for local-only instances).
    Superseded,
    /// Kept back by the pixel screening (burned-in text); the reason is in
    /// `last_error` until a person releases it or keeps it local.
    Held,
}

impl State {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Sending => "sending",
            State::Delivered => "delivered",
            State::Local => "local",
            State::Dead => "dead",
            State::Refused => "refused",
            State::Superseded => "superseded",
            State::Held => "held",
        }
    }
}

/// A new instance for the outbox.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// SOP Instance UID (original).
    pub sop_instance_uid: String,
    /// SOP Class UID.
    pub sop_class_uid: String,
    /// Study Instance UID (original).
    pub study_uid: String,
    /// Transfer syntax of the spooled data set.
    pub transfer_syntax: String,
    /// Modality.
    pub modality: Option<String>,
    /// Study Description.
    pub study_description: Option<String>,
    /// Who sent it.
    pub calling_ae: String,
    /// Spool file (Part-10).
    pub spool_path: String,
    /// SHA-256 of the data set.
    pub sha256: String,
    /// Data set size.
    pub size_bytes: i64,
    /// Pending or Local.
    pub state: State,
}

/// A claimed row, ready to send.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Row id.
    pub id: i64,
    /// Spool file.
    pub spool_path: String,
    /// Original SOP Instance UID.
    pub sop_instance_uid: String,
    /// Tries so far (before this one).
    pub attempts: i64,
    /// Version of the instance (1 for the first received).
    pub version: i64,
    /// SOP Class UID.
    pub sop_class_uid: String,
    /// Transfer syntax of the spooled data set.
    pub transfer_syntax: String,
}

/// What `insert` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The first version of an instance.
    New,
    /// The latest version of this instance has the same bytes: nothing changed.
    Identical,
    /// The same SOP Instance UID with different bytes: a new version (its number),
    /// sent after the earlier ones.
    NewVersion(i64),
}

/// A row in a listing (`status`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Listed {
    /// Row id (for `retry ID`).
    pub id: i64,
    /// Original SOP Instance UID.
    pub sop_instance_uid: String,
    /// Version of the instance.
    pub version: i64,
    /// Tries so far.
    pub attempts: i64,
    /// Why (last error, refusal reason).
    pub reason: String,
}

/// Opens the outbox database of `config`, creating the data dir; the data dir is
/// made 0700 and the database files 0600 (also existing ones).
pub async fn open(config: &crate::config::Config) -> anyhow::Result<Outbox> {
    crate::at_rest::private_dir(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let url = config.database_url();
    let outbox = Outbox::open(&url)
        .await
        .context("cannot open the outbox database")?;
    for file in crate::at_rest::sqlite_files(&url) {
        crate::at_rest::private_file(&file)
            .with_context(|| format!("cannot restrict the permissions of {}", file.display()))?;
    }
    Ok(outbox)
}

/// Handle on the client database.
#[derive(Debug, Clone)]
pub struct Outbox {
    pool: SqlitePool,
}

impl Outbox {
    /// Opens (creating) and migrates the database at `url`.
    pub async fn open(url: &str) -> Result<Outbox, sqlx::Error> {
        let options: SqliteConnectOptions = url.parse()?;
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(std::time::Duration::from_secs(30))
            .create_if_missing(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("../schemas/client/sqlite")
            .run(&pool)
            .await
            .map_err(|e| sqlx::Error::Migrate(Box::new(e)))?;
        Ok(Outbox { pool })
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Records a received version of an instance (committed when this returns). The
    /// version number and the "same bytes as the latest version" check are computed in
    /// the one INSERT statement, so concurrent receptions of one SOP Instance UID cannot
    /// race. A new local-only version supersedes an earlier local-only one (the local
    /// store keeps the latest); its spool path is returned for removal.
    pub async fn insert(&self, e: &NewEntry) -> Result<(Inserted, Vec<String>), sqlx::Error> {
        let row = sqlx::query(
            "INSERT INTO outbox (sop_instance_uid, version, sop_class_uid, study_uid, transfer_syntax, modality, \
             study_description, calling_ae, spool_path, sha256, size_bytes, received_at, state) \
             SELECT ?1, next.version, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12 \
             FROM (SELECT COALESCE(MAX(version), 0) + 1 AS version FROM outbox WHERE sop_instance_uid = ?1) AS next \
             WHERE NOT EXISTS (SELECT 1 FROM outbox l WHERE l.sop_instance_uid = ?1 AND l.sha256 = ?9 \
               AND l.version = next.version - 1) \
             RETURNING id, version",
        )
        .bind(&e.sop_instance_uid)
        .bind(&e.sop_class_uid)
        .bind(&e.study_uid)
        .bind(&e.transfer_syntax)
        .bind(&e.modality)
        .bind(&e.study_description)
        .bind(&e.calling_ae)
        .bind(&e.spool_path)
        .bind(&e.sha256)
        .bind(e.size_bytes)
        .bind(now_millis())
        .bind(e.state.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok((Inserted::Identical, Vec::new()));
        };
        let (id, version): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        if version == 1 {
            return Ok((Inserted::New, Vec::new()));
        }
        let mut superseded = Vec::new();
        if e.state == State::Local {
            let rows = sqlx::query(
                "UPDATE outbox SET state = 'superseded', purged_at = ?3 \
                 WHERE sop_instance_uid = ?1 AND id < ?2 AND state = 'local' RETURNING spool_path",
            )
            .bind(&e.sop_instance_uid)
            .bind(id)
            .bind(now_millis())
            .fetch_all(&self.pool)
            .await?;
            for r in rows {
                superseded.push(r.try_get(0)?);
            }
        }
        Ok((Inserted::NewVersion(version), superseded))
    }

    /// After a crash, rows left "sending" are due again (the gateway answers a
    /// re-sent identical instance with success, so nothing is stored twice).
    pub async fn recover(&self) -> Result<u64, sqlx::Error> {
        let done = sqlx::query("UPDATE outbox SET state = 'pending' WHERE state = 'sending'")
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Claims up to `limit` due rows (pending and past their backoff), oldest first. A
    /// version is not due while an earlier version of the same instance is waiting or
    /// being sent, so versions reach the gateway in order of receipt.
    pub async fn claim(&self, limit: i64) -> Result<Vec<Claimed>, sqlx::Error> {
        let rows = sqlx::query(
            "UPDATE outbox SET state = 'sending' WHERE id IN (SELECT o.id FROM outbox o WHERE o.state = 'pending' \
             AND o.next_attempt_at <= ?1 AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.sop_instance_uid = o.sop_instance_uid \
             AND e.id < o.id AND e.state IN ('pending', 'sending')) ORDER BY o.id LIMIT ?2) \
             RETURNING id, spool_path, sop_instance_uid, attempts, version, sop_class_uid, transfer_syntax",
        )
        .bind(now_millis())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Claimed {
                    id: r.try_get(0)?,
                    spool_path: r.try_get(1)?,
                    sop_instance_uid: r.try_get(2)?,
                    attempts: r.try_get(3)?,
                    version: r.try_get(4)?,
                    sop_class_uid: r.try_get(5)?,
                    transfer_syntax: r.try_get(6)?,
                })
            })
            .collect()
    }

    /// The gateway stored (or already held) exactly this version: it is delivered,
    /// and an earlier delivered version of the same instance with other bytes is now
    /// superseded (the gateway replaced it). One transaction.
    pub async fn delivered(&self, id: i64) -> Result<(), sqlx::Error> {
        self.delivered_many(&[id]).await
    }

    /// [`Outbox::delivered`] for several rows, in one transaction (one commit flush).
    pub async fn delivered_many(&self, ids: &[i64]) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        for &id in ids {
            mark_delivered(&mut tx, id).await?;
        }
        tx.commit().await
    }
}

/// Marks one row delivered and supersedes its earlier delivered versions with other
/// bytes (see [`Outbox::delivered`]).
async fn mark_delivered(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE outbox SET state = 'delivered', delivered_at = ?2, last_error = NULL, attempts = attempts + 1 WHERE id = ?1")
        .bind(id)
        .bind(now_millis())
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "UPDATE outbox SET state = 'superseded', last_error = 'replaced at the gateway by version ' || \
         (SELECT version FROM outbox WHERE id = ?1) WHERE state = 'delivered' AND id <> ?1 \
         AND sop_instance_uid = (SELECT sop_instance_uid FROM outbox WHERE id = ?1) \
         AND sha256 <> (SELECT sha256 FROM outbox WHERE id = ?1)",
    )
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Outbox {
    /// The gateway's duplicate policy declined this version (it keeps another one).
    pub async fn refused(&self, id: i64, reason: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE outbox SET state = 'refused', last_error = ?2, attempts = attempts + 1 WHERE id = ?1")
            .bind(id)
            .bind(reason)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Gives claimed rows back untried (the association went away before their turn):
    /// due again now, no try counted.
    pub async fn unclaim(&self, ids: &[i64]) -> Result<(), sqlx::Error> {
        for id in ids {
            sqlx::query("UPDATE outbox SET state = 'pending' WHERE id = ?1 AND state = 'sending'")
                .bind(id)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// A failed try: due again at `retry_at`, or dead with `reason`.
    pub async fn failed(
        &self,
        id: i64,
        reason: &str,
        retry_at: Option<i64>,
    ) -> Result<(), sqlx::Error> {
        let (state, at) = match retry_at {
            Some(at) => (State::Pending, at),
            None => (State::Dead, 0),
        };
        sqlx::query("UPDATE outbox SET state = ?2, next_attempt_at = ?3, last_error = ?4, attempts = attempts + 1 WHERE id = ?1")
            .bind(id)
            .bind(state.as_str())
            .bind(at)
            .bind(reason)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Makes dead letters due again now: all of them (`None`), or the row `id`,
    /// which may also be a delivered or refused row if it is the latest version of its
    /// instance (sending it again is harmless: the gateway answers an identical
    /// instance with success). Returns how many rows are due again.
    pub async fn retry(&self, id: Option<i64>) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = 0 WHERE \
             (?1 IS NULL AND state = 'dead') OR (id = ?1 AND (state = 'dead' OR (state IN ('delivered', 'refused') \
             AND version = (SELECT MAX(version) FROM outbox m WHERE m.sop_instance_uid = outbox.sop_instance_uid))))",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// State and version of row `id`, if it exists.
    pub async fn row_state(&self, id: i64) -> Result<Option<(String, i64)>, sqlx::Error> {
        let row = sqlx::query("SELECT state, version FROM outbox WHERE id = ?1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    /// Sets or clears the per-study sharing flag, and re-routes the study's rows that
    /// have not been delivered. Returns the rows re-routed.
    pub async fn set_study_flag(&self, study_uid: &str, share: bool) -> Result<u64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO study_flags (study_uid, share, updated_at) VALUES (?1, ?2, ?3) ON CONFLICT (study_uid) DO UPDATE SET share = excluded.share, updated_at = excluded.updated_at")
            .bind(study_uid)
            .bind(i64::from(share))
            .bind(now_millis())
            .execute(&mut *tx)
            .await?;
        let (from, to) = if share {
            ("local", "pending")
        } else {
            ("pending", "local")
        };
        let moved = sqlx::query(
            "UPDATE outbox SET state = ?3, next_attempt_at = 0 WHERE study_uid = ?1 AND state = ?2",
        )
        .bind(study_uid)
        .bind(from)
        .bind(to)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(moved)
    }

    /// The administrator's flag for a study, if any.
    pub async fn study_flag(&self, study_uid: &str) -> Result<Option<bool>, sqlx::Error> {
        let row = sqlx::query("SELECT share FROM study_flags WHERE study_uid = ?1")
            .bind(study_uid)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .map(|r| r.try_get::<i64, _>(0))
            .transpose()?
            .map(|v| v != 0))
    }

    /// Rows per state.
    pub async fn counts(&self) -> Result<Vec<(String, i64)>, sqlx::Error> {
        let rows = sqlx::query("SELECT state, COUNT(*) FROM outbox GROUP BY state ORDER BY state")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Reception time of the oldest row still waiting to be delivered.
    pub async fn oldest_pending(&self) -> Result<Option<i64>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT MIN(received_at) FROM outbox WHERE state IN ('pending', 'sending')",
        )
        .fetch_one(&self.pool)
        .await?;
        row.try_get(0)
    }

    /// Dead letters, oldest first.
    pub async fn dead_letters(&self) -> Result<Vec<Listed>, sqlx::Error> {
        self.listed(State::Dead).await
    }

    /// Rows in `state` with their reasons, oldest first.
    pub async fn listed(&self, state: State) -> Result<Vec<Listed>, sqlx::Error> {
        self.listed_state(state.as_str()).await
    }

    /// Rows whose stored state is `state`, with their reasons, oldest first.
    pub async fn listed_state(&self, state: &str) -> Result<Vec<Listed>, sqlx::Error> {
        let rows = sqlx::query("SELECT id, sop_instance_uid, version, attempts, COALESCE(last_error, '') FROM outbox WHERE state = ?1 ORDER BY id")
            .bind(state)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Listed {
                    id: r.try_get(0)?,
                    sop_instance_uid: r.try_get(1)?,
                    version: r.try_get(2)?,
                    attempts: r.try_get(3)?,
                    reason: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// State of the latest version of an instance.
    pub async fn state_of(&self, sop_instance_uid: &str) -> Result<Option<String>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT state FROM outbox WHERE sop_instance_uid = ?1 ORDER BY version DESC LIMIT 1",
        )
        .bind(sop_instance_uid)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.try_get(0)).transpose()
    }

    /// State and reason of each row id in `ids` (missing ids are left out).
    pub async fn states_of(&self, ids: &[i64]) -> Result<Vec<(i64, String, String)>, sqlx::Error> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let sql = format!(
                "SELECT id, state, COALESCE(last_error, '') FROM outbox WHERE id IN ({marks})"
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(id);
            }
            for r in query.fetch_all(&self.pool).await? {
                out.push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?));
            }
        }
        Ok(out)
    }

    /// The row holding the latest version of an instance: id and state.
    pub async fn latest(
        &self,
        sop_instance_uid: &str,
    ) -> Result<Option<(i64, String)>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT id, state FROM outbox WHERE sop_instance_uid = ?1 ORDER BY version DESC LIMIT 1",
        )
        .bind(sop_instance_uid)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    /// Delivered (or delivered, then superseded at the gateway) rows whose local copy
    /// is older than `before` and still on disk: id and spool path. Refused versions
    /// are never purged: the local copy is their only copy.
    pub async fn purgeable(&self, before: i64) -> Result<Vec<(i64, String)>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, spool_path FROM outbox WHERE state IN ('delivered', 'superseded') AND purged_at IS NULL \
             AND delivered_at < ?1 LIMIT 1000",
        )
        .bind(before)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Records that a row's local copy was removed.
    pub async fn purged(&self, id: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE outbox SET purged_at = ?2 WHERE id = ?1")
            .bind(id)
            .bind(now_millis())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
