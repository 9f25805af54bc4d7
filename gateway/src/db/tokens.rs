//! Index rows for the admin API's bearer tokens (`api_tokens`).
//!
//! Only the SHA-256 (hex) of a token is stored; the token itself exists only in the
//! login response. A token is valid while it is neither expired nor revoked and its
//! user is not disabled. Nothing here makes or checks tokens' randomness; that is
//! [`crate::http`]'s job.

use sqlx::Row;

use super::users::UserAccount;
use super::{DbError, Index, now_millis};
use crate::auth::{Role, User, Username};
use crate::domain::{FacilityId, FacilityName};

/// A valid token's owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenOwner {
    /// The user.
    pub user: User,
    /// The user's facility name.
    pub facility_name: FacilityName,
    /// When the token expires, ms since the epoch.
    pub expires_at: i64,
}

fn decode_error(message: String) -> DbError {
    DbError::Query(sqlx::Error::Decode(message.into()))
}

impl Index {
    /// Stores a new token (by its hash) for `account`, valid until `expires_at`.
    pub async fn insert_token(
        &self,
        token_hash: &str,
        account: &UserAccount,
        expires_at: i64,
        peer: &str,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO api_tokens (token_hash, user_id, created_at, expires_at, peer) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(account.user.id)
        .bind(now_millis())
        .bind(expires_at)
        .bind(peer)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The owner of the token with this hash, if the token is valid at `now`
    /// (not expired, not revoked, user not disabled).
    pub async fn token_owner(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<TokenOwner>, DbError> {
        let row = sqlx::query(
            "SELECT u.id, u.facility_id, f.name, u.username, u.role, t.expires_at \
             FROM api_tokens t JOIN users u ON u.id = t.user_id \
             JOIN facilities f ON f.id = u.facility_id \
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > $2 \
             AND u.disabled = 0",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let facility_name: String = row.try_get(2)?;
        let username: String = row.try_get(3)?;
        let role: String = row.try_get(4)?;
        Ok(Some(TokenOwner {
            user: User {
                id: row.try_get(0)?,
                facility: FacilityId(row.try_get(1)?),
                username: Username::parse(&username).map_err(decode_error)?,
                role: Role::parse(&role).map_err(decode_error)?,
            },
            facility_name: FacilityName::parse(&facility_name).map_err(decode_error)?,
            expires_at: row.try_get(5)?,
        }))
    }

    /// Revokes the token with this hash; `false` when it was unknown or already
    /// revoked.
    pub async fn revoke_token(&self, token_hash: &str) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL",
        )
        .bind(now_millis())
        .bind(token_hash)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Moves a token's expiry (tests and administrative expiry).
    pub async fn set_token_expiry(&self, token_hash: &str, expires_at: i64) -> Result<(), DbError> {
        sqlx::query("UPDATE api_tokens SET expires_at = $1 WHERE token_hash = $2")
            .bind(expires_at)
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
