//! SQL of the audit trail: batched inserts into the append-only `audit_events` table
//! and the filtered, paged search the admin API and `pacs-gateway audit list` use.

use sqlx::Row;

use super::{AuditEvent, EventKind, Outcome, Protocol};
use crate::db::{DbError, Index};
use crate::domain::FacilityId;

/// Most events one search returns.
pub const MAX_LIMIT: u32 = 1000;

/// An event as stored: its id and time, and what was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Row id (increasing; pages go by it).
    pub id: i64,
    /// When it happened, ms since the epoch.
    pub occurred_at: i64,
    /// The event.
    pub event: AuditEvent,
}

/// What [`search`] returns. Every field narrows the result; `None` does not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only this facility's events.
    pub facility_id: Option<FacilityId>,
    /// Only events at or after this time (ms since the epoch).
    pub from: Option<i64>,
    /// Only events before this time (ms since the epoch).
    pub to: Option<i64>,
    /// Only this user's events.
    pub username: Option<String>,
    /// Only this kind.
    pub kind: Option<EventKind>,
    /// Only this outcome.
    pub outcome: Option<Outcome>,
    /// Only failures: any outcome but success (`--outcome failure`).
    pub failures: bool,
    /// At most this many (1 to [`MAX_LIMIT`]; 0 or none means 100).
    pub limit: Option<u32>,
    /// Only events with a smaller id: the next page after the last id seen.
    pub before_id: Option<i64>,
}

/// Events matching `filter`, newest (highest id) first.
pub async fn search(index: &Index, filter: &AuditFilter) -> Result<Vec<StoredEvent>, DbError> {
    let mut sql = String::from(
        "SELECT id, occurred_at, kind, outcome, facility_id, username, peer, protocol, detail, object_count \
         FROM audit_events WHERE 1 = 1",
    );
    let mut n = 0;
    let mut next = |column: &str, op: &str| {
        n += 1;
        format!(" AND {column} {op} ${n}")
    };
    let mut ints: Vec<i64> = Vec::new();
    let mut texts: Vec<String> = Vec::new();
    // Integers are bound first, then texts: placeholders are numbered in that order.
    if let Some(f) = filter.facility_id {
        sql += &next("facility_id", "=");
        ints.push(f.0);
    }
    if let Some(from) = filter.from {
        sql += &next("occurred_at", ">=");
        ints.push(from);
    }
    if let Some(to) = filter.to {
        sql += &next("occurred_at", "<");
        ints.push(to);
    }
    if let Some(before) = filter.before_id {
        sql += &next("id", "<");
        ints.push(before);
    }
    if let Some(user) = &filter.username {
        sql += &next("username", "=");
        texts.push(user.clone());
    }
    if let Some(kind) = filter.kind {
        sql += &next("kind", "=");
        texts.push(kind.as_str().into());
    }
    if let Some(outcome) = filter.outcome {
        sql += &next("outcome", "=");
        texts.push(outcome.as_str().into());
    }
    if filter.failures {
        sql += &next("outcome", "<>");
        texts.push(Outcome::Success.as_str().into());
    }
    let limit = match filter.limit {
        None | Some(0) => 100,
        Some(l) => l.min(MAX_LIMIT),
    };
    sql += &format!(" ORDER BY id DESC LIMIT {limit}");
    let mut query = sqlx::query(&sql);
    for v in ints {
        query = query.bind(v);
    }
    for v in texts {
        query = query.bind(v);
    }
    let rows = query.fetch_all(&index.pool).await?;
    rows.iter().map(from_row).collect()
}

fn bad(what: &str, value: &str) -> DbError {
    DbError::Query(sqlx::Error::Decode(
        format!("audit_events.{what} has an unknown value {value:?}").into(),
    ))
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<StoredEvent, DbError> {
    let kind: String = row.try_get(2)?;
    let outcome: String = row.try_get(3)?;
    let protocol: String = row.try_get(7)?;
    Ok(StoredEvent {
        id: row.try_get(0)?,
        occurred_at: row.try_get(1)?,
        event: AuditEvent {
            kind: EventKind::parse(&kind).ok_or_else(|| bad("kind", &kind))?,
            outcome: Outcome::parse(&outcome).ok_or_else(|| bad("outcome", &outcome))?,
            facility_id: row.try_get::<Option<i64>, _>(4)?.map(FacilityId),
            username: row.try_get(5)?,
            peer: row.try_get(6)?,
            protocol: Protocol::parse(&protocol).ok_or_else(|| bad("protocol", &protocol))?,
            detail: row.try_get(8)?,
            object_count: row.try_get(9)?,
        },
    })
}

/// Inserts `events` (with their times) in one transaction; returns them with ids.
pub(super) async fn insert_batch(
    index: &Index,
    events: &[(i64, AuditEvent)],
) -> Result<Vec<StoredEvent>, DbError> {
    let mut tx = index.pool.begin().await?;
    let mut stored = Vec::with_capacity(events.len());
    for (occurred_at, e) in events {
        let row = sqlx::query(
            "INSERT INTO audit_events (occurred_at, kind, outcome, facility_id, username, peer, protocol, detail, object_count) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(*occurred_at)
        .bind(e.kind.as_str())
        .bind(e.outcome.as_str())
        .bind(e.facility_id.map(|f| f.0))
        .bind(&e.username)
        .bind(&e.peer)
        .bind(e.protocol.as_str())
        .bind(&e.detail)
        .bind(e.object_count)
        .fetch_one(&mut *tx)
        .await?;
        stored.push(StoredEvent {
            id: row.try_get(0)?,
            occurred_at: *occurred_at,
            event: e.clone(),
        });
    }
    tx.commit().await?;
    Ok(stored)
}

impl StoredEvent {
    /// The event as a JSON object (time as RFC 3339 and as ms since the epoch).
    pub fn to_json(&self) -> serde_json::Value {
        let e = &self.event;
        serde_json::json!({
            "id": self.id,
            "occurred_at": rfc3339(self.occurred_at),
            "occurred_at_ms": self.occurred_at,
            "kind": e.kind.as_str(),
            "outcome": e.outcome.as_str(),
            "outcome_code": e.outcome.code(),
            "facility_id": e.facility_id.map(|f| f.0),
            "username": e.username,
            "peer": e.peer,
            "protocol": e.protocol.as_str(),
            "detail": e.detail,
            "object_count": e.object_count,
        })
    }
}

/// RFC 3339 (UTC) of a time in ms since the epoch.
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}
