//! Index rows for users and the lockout counters (per user and per peer address).
//!
//! Counters are updated with single statements that read and write the row at once,
//! so that several gateway processes on one database count every failure. Nothing here
//! decides whether a login succeeds; that is [`crate::auth::Authenticator`]'s job.

use std::fmt;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{DbError, Index, now_millis};
use crate::auth::{Role, User, Username};
use crate::domain::{FacilityId, FacilityName};

/// A user as the administrator sees it (never the password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAccount {
    /// Id, facility, name and role.
    pub user: User,
    /// The facility's name.
    pub facility_name: FacilityName,
    /// Whether every login is refused.
    pub disabled: bool,
    /// Consecutive failed logins since the last successful one.
    pub failed_count: i64,
    /// Locked until this time (ms since the epoch), if it was ever locked since the
    /// last success; compare with the current time.
    pub locked_until: Option<i64>,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
    /// Last change of password, role or state, ms since the epoch.
    pub updated_at: i64,
}

/// A stored argon2id PHC string. Not a secret, but nothing to print: its `Debug`
/// prints `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredHash(String);

impl StoredHash {
    /// The PHC string.
    pub fn as_phc(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for StoredHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoredHash([redacted])")
    }
}

/// A user with its password hash, for the login check.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The user.
    pub account: UserAccount,
    /// Its password hash.
    pub hash: StoredHash,
}

/// A failure counter after an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureCount {
    /// Failures counted.
    pub failed_count: i64,
    /// Locked until this time (ms since the epoch); may lie in the past.
    pub locked_until: Option<i64>,
}

impl FailureCount {
    /// Whether the lock holds at `now`.
    pub fn locked_at(&self, now: i64) -> bool {
        self.locked_until.is_some_and(|until| until > now)
    }
}

const ACCOUNT_COLUMNS: &str = "u.id, u.facility_id, f.name, u.username, u.role, u.disabled, \
     u.failed_count, u.locked_until, u.created_at, u.updated_at, u.password_hash";

impl Index {
    /// Creates a user. Fails with [`DbError::Exists`] when the name is taken (in any
    /// facility).
    pub async fn create_user(
        &self,
        facility: FacilityId,
        username: &Username,
        role: Role,
        password_hash: &str,
    ) -> Result<User, DbError> {
        if self.user_by_name(username).await?.is_some() {
            return Err(DbError::Exists(format!("user {username}")));
        }
        let now = now_millis();
        let row = sqlx::query(
            "INSERT INTO users (facility_id, username, role, password_hash, disabled, failed_count, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 0, 0, $5, $5) RETURNING id",
        )
        .bind(facility.0)
        .bind(username.as_str())
        .bind(role.as_str())
        .bind(password_hash)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                DbError::Exists(format!("user {username}"))
            }
            e => DbError::Query(e),
        })?;
        Ok(User {
            id: row.try_get(0)?,
            facility,
            username: username.clone(),
            role,
        })
    }

    /// Looks a user up by name.
    pub async fn user_by_name(&self, username: &Username) -> Result<Option<UserAccount>, DbError> {
        Ok(self.credentials(username).await?.map(|c| c.account))
    }

    /// A user and its password hash.
    pub async fn credentials(&self, username: &Username) -> Result<Option<Credentials>, DbError> {
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM users u JOIN facilities f ON f.id = u.facility_id \
             WHERE u.username = $1"
        );
        let row = sqlx::query(&sql)
            .bind(username.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(Credentials {
                account: account_from_row(&r)?,
                hash: StoredHash(r.try_get(10)?),
            })
        })
        .transpose()
    }

    /// Users of one facility, or of all, by facility name and user name.
    pub async fn list_users(
        &self,
        facility: Option<FacilityId>,
    ) -> Result<Vec<UserAccount>, DbError> {
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM users u JOIN facilities f ON f.id = u.facility_id \
             WHERE ($1 = 0 OR u.facility_id = $1) ORDER BY f.name, u.username"
        );
        let rows = sqlx::query(&sql)
            .bind(facility.map_or(0, |f| f.0))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(account_from_row).collect()
    }

    /// Replaces a user's password hash; also clears its failure counter and lock,
    /// and revokes every API token of the user but `keep_token` (the token of a
    /// user changing their own password).
    pub async fn set_password(
        &self,
        user_id: i64,
        password_hash: &str,
        keep_token: Option<&str>,
    ) -> Result<(), DbError> {
        let now = now_millis();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE users SET password_hash = $1, failed_count = 0, locked_until = NULL, updated_at = $2 \
             WHERE id = $3",
        )
        .bind(password_hash)
        .bind(now)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        revoke_tokens_of(&mut tx, user_id, keep_token, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Disables (every login refused, every API token revoked) or re-enables a
    /// user.
    pub async fn set_disabled(&self, user_id: i64, disabled: bool) -> Result<(), DbError> {
        let now = now_millis();
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE users SET disabled = $1, updated_at = $2 WHERE id = $3")
            .bind(i64::from(disabled))
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if disabled {
            revoke_tokens_of(&mut tx, user_id, None, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Clears a user's failure counter and lock (after a successful login, or by an
    /// administrator).
    pub async fn reset_user_failures(&self, user_id: i64) -> Result<(), DbError> {
        sqlx::query("UPDATE users SET failed_count = 0, locked_until = NULL WHERE id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Counts a failed login of a user that is not locked at `now`; every
    /// `max_failures`-th consecutive failure locks it until `locked_until`. Returns
    /// `None`, counting nothing, when the user is locked or gone.
    pub async fn record_user_failure(
        &self,
        user_id: i64,
        max_failures: u32,
        locked_until: i64,
        now: i64,
    ) -> Result<Option<FailureCount>, DbError> {
        let row = sqlx::query(
            "UPDATE users SET failed_count = failed_count + 1, \
             locked_until = CASE WHEN (failed_count + 1) % $1 = 0 THEN $2 ELSE locked_until END \
             WHERE id = $3 AND (locked_until IS NULL OR locked_until <= $4) \
             RETURNING failed_count, locked_until",
        )
        .bind(i64::from(max_failures.max(1)))
        .bind(locked_until)
        .bind(user_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| count_from_row(&r)).transpose()
    }

    /// The failure counter of a peer, if it has one.
    pub async fn peer_failures(&self, peer: &str) -> Result<Option<FailureCount>, DbError> {
        let row = sqlx::query(
            "SELECT failed_count, locked_until FROM auth_failures_by_peer WHERE peer = $1",
        )
        .bind(peer)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| count_from_row(&r)).transpose()
    }

    /// Counts a failed login from a peer. A counter whose last failure is older than
    /// `window_ms` starts over; reaching `max_failures` locks the peer for
    /// `window_ms`. Counters idle for longer than the window are deleted.
    pub async fn record_peer_failure(
        &self,
        peer: &str,
        max_failures: u32,
        window_ms: i64,
        now: i64,
    ) -> Result<FailureCount, DbError> {
        let stale = now - window_ms;
        sqlx::query(
            "DELETE FROM auth_failures_by_peer WHERE updated_at <= $1 \
             AND (locked_until IS NULL OR locked_until <= $2) AND peer <> $3",
        )
        .bind(stale)
        .bind(now)
        .bind(peer)
        .execute(&self.pool)
        .await?;
        let fresh_count = "CASE WHEN auth_failures_by_peer.updated_at <= $4 THEN 1 \
             ELSE auth_failures_by_peer.failed_count + 1 END";
        let sql = format!(
            "INSERT INTO auth_failures_by_peer (peer, failed_count, locked_until, updated_at) \
             VALUES ($1, 1, CASE WHEN 1 >= $2 THEN $3 ELSE NULL END, $5) \
             ON CONFLICT (peer) DO UPDATE SET \
             failed_count = {fresh_count}, \
             locked_until = CASE WHEN {fresh_count} >= $2 THEN $3 \
                 ELSE auth_failures_by_peer.locked_until END, \
             updated_at = $5 \
             RETURNING failed_count, locked_until"
        );
        let row = sqlx::query(&sql)
            .bind(peer)
            .bind(i64::from(max_failures.max(1)))
            .bind(now + window_ms)
            .bind(stale)
            .bind(now)
            .fetch_one(&self.pool)
            .await?;
        count_from_row(&row)
    }
}

fn decode_error(message: String) -> DbError {
    DbError::Query(sqlx::Error::Decode(message.into()))
}

fn account_from_row(row: &AnyRow) -> Result<UserAccount, DbError> {
    let facility_name: String = row.try_get(2)?;
    let username: String = row.try_get(3)?;
    let role: String = row.try_get(4)?;
    Ok(UserAccount {
        user: User {
            id: row.try_get(0)?,
            facility: FacilityId(row.try_get(1)?),
            username: Username::parse(&username).map_err(decode_error)?,
            role: Role::parse(&role).map_err(decode_error)?,
        },
        facility_name: FacilityName::parse(&facility_name).map_err(decode_error)?,
        disabled: row.try_get::<i64, _>(5)? != 0,
        failed_count: row.try_get(6)?,
        locked_until: row.try_get(7)?,
        created_at: row.try_get(8)?,
        updated_at: row.try_get(9)?,
    })
}

fn count_from_row(row: &AnyRow) -> Result<FailureCount, DbError> {
    Ok(FailureCount {
        failed_count: row.try_get(0)?,
        locked_until: row.try_get(1)?,
    })
}

/// Revokes every live API token of `user_id` but `keep` (a token hash).
async fn revoke_tokens_of(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    user_id: i64,
    keep: Option<&str>,
    now: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE api_tokens SET revoked_at = $1 \
         WHERE user_id = $2 AND revoked_at IS NULL AND token_hash <> $3",
    )
    .bind(now)
    .bind(user_id)
    .bind(keep.unwrap_or(""))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
