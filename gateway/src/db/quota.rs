//! Storage quotas per facility: `facilities.quota_bytes` (NULL: unlimited),
//! `quota_warn_percent`, and `stored_bytes`, which the index writer keeps exact in the
//! same transaction as the instance rows ([`charge`]).

use sqlx::{Any, Row, Transaction};

use super::{DbError, Index};
use crate::domain::FacilityId;

/// A facility's quota and usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Limit in bytes; `None` is unlimited.
    pub quota_bytes: Option<i64>,
    /// Warning threshold, percent of the quota.
    pub warn_percent: i64,
    /// Bytes stored now.
    pub stored_bytes: i64,
}

impl Quota {
    /// Whether `more` bytes still fit.
    pub fn allows(&self, more: i64) -> bool {
        self.quota_bytes
            .is_none_or(|q| more <= 0 || self.stored_bytes.saturating_add(more) <= q)
    }

    /// Percent of the quota in use (rounded down), if there is a quota.
    pub fn percent_used(&self) -> Option<i64> {
        self.quota_bytes
            .map(|q| self.stored_bytes.saturating_mul(100) / q.max(1))
    }
}

/// What a [`charge`] changed: usage before and after, within one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charged {
    /// Usage before.
    pub before: i64,
    /// Quota and usage after.
    pub after: Quota,
}

impl Charged {
    /// The percentage used, when this change crossed the warning threshold upwards.
    pub fn crossed_warning(&self) -> Option<i64> {
        let q = self.after.quota_bytes?;
        let threshold = i128::from(q) * i128::from(self.after.warn_percent);
        let crossed = i128::from(self.before) * 100 < threshold
            && i128::from(self.after.stored_bytes) * 100 >= threshold;
        crossed.then(|| self.after.percent_used().unwrap_or(0))
    }
}

/// Adds `delta` bytes to the facility's usage if the quota allows it (a negative or
/// zero delta always does); `None` when it would exceed the quota (nothing changed).
/// The check and the update are one statement, so concurrent transactions cannot
/// both pass it.
pub(crate) async fn charge(
    tx: &mut Transaction<'_, Any>,
    facility: FacilityId,
    delta: i64,
) -> Result<Option<Charged>, DbError> {
    let row = sqlx::query(
        "UPDATE facilities SET stored_bytes = stored_bytes + $1 WHERE id = $2 \
         AND ($1 <= 0 OR quota_bytes IS NULL OR stored_bytes + $1 <= quota_bytes) \
         RETURNING quota_bytes, quota_warn_percent, stored_bytes",
    )
    .bind(delta)
    .bind(facility.0)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let after = Quota {
        quota_bytes: row.try_get(0)?,
        warn_percent: row.try_get(1)?,
        stored_bytes: row.try_get(2)?,
    };
    Ok(Some(Charged {
        before: after.stored_bytes - delta,
        after,
    }))
}

impl Index {
    /// A facility's quota and usage (`None`: no such facility).
    pub async fn quota(&self, facility: FacilityId) -> Result<Option<Quota>, DbError> {
        let row = sqlx::query(
            "SELECT quota_bytes, quota_warn_percent, stored_bytes FROM facilities WHERE id = $1",
        )
        .bind(facility.0)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Quota {
                quota_bytes: r.try_get(0)?,
                warn_percent: r.try_get(1)?,
                stored_bytes: r.try_get(2)?,
            })
        })
        .transpose()
    }

    /// Sets the quota (`None`: unlimited).
    pub async fn set_quota(&self, facility: FacilityId, bytes: Option<i64>) -> Result<(), DbError> {
        sqlx::query("UPDATE facilities SET quota_bytes = $1 WHERE id = $2")
            .bind(bytes)
            .bind(facility.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Sets the warning threshold (1 to 100 percent).
    pub async fn set_quota_warn_percent(
        &self,
        facility: FacilityId,
        percent: i64,
    ) -> Result<(), DbError> {
        sqlx::query("UPDATE facilities SET quota_warn_percent = $1 WHERE id = $2")
            .bind(percent)
            .bind(facility.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charged(before: i64, after: i64, quota: Option<i64>, warn: i64) -> Charged {
        Charged {
            before,
            after: Quota {
                quota_bytes: quota,
                warn_percent: warn,
                stored_bytes: after,
            },
        }
    }

    #[test]
    fn the_warning_fires_once_when_crossing() {
        assert_eq!(charged(80, 90, Some(100), 90).crossed_warning(), Some(90));
        assert_eq!(charged(89, 95, Some(100), 90).crossed_warning(), Some(95));
        assert_eq!(
            charged(90, 95, Some(100), 90).crossed_warning(),
            None,
            "already above"
        );
        assert_eq!(charged(10, 20, Some(100), 90).crossed_warning(), None);
        assert_eq!(charged(10, 99, None, 90).crossed_warning(), None);
        assert_eq!(
            charged(95, 80, Some(100), 90).crossed_warning(),
            None,
            "downwards"
        );
    }

    #[test]
    fn quota_allows_up_to_the_limit() {
        let q = Quota {
            quota_bytes: Some(100),
            warn_percent: 90,
            stored_bytes: 60,
        };
        assert!(q.allows(40));
        assert!(!q.allows(41));
        assert!(q.allows(-5));
        assert!(
            Quota {
                quota_bytes: None,
                ..q
            }
            .allows(i64::MAX)
        );
    }
}
