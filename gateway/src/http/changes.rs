//! `GET /api/v1/changes`: a facility's changes feed ([`crate::db::changes`]), paged
//! by seq. Every user reads their own facility's feed (pseudonymous study UIDs and
//! counts only, nothing a C-FIND would not show them); an operator names the
//! facility with `?facility=NAME`.
//!
//! A reader keeps `last` from each answer and asks again with `after=last`; `more`
//! says whether to ask at once. Events are never renumbered nor inserted behind a
//! seq already handed out, so a reader that follows `last` misses nothing.

use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::audit::number;
use super::error::{ApiError, ApiQuery};
use super::session::Caller;
use super::{ApiState, rfc3339};
use crate::db::changes::Change;

/// Events per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: u32 = 100;
/// The most events per page.
pub const MAX_LIMIT: u32 = 1000;

/// Query parameters (all optional).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    /// Only events with a greater seq (default 0: from the start).
    pub after: Option<String>,
    /// Events per page, 1 to [`MAX_LIMIT`] (default [`DEFAULT_LIMIT`]).
    pub limit: Option<String>,
    /// The facility (operators must name one; others may name only their own).
    pub facility: Option<String>,
}

/// One event.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChangeItem {
    /// Position in the facility's feed.
    pub seq: i64,
    /// `stored`, `series-added`, `updated`, `deleted` (later: more words).
    pub kind: String,
    /// Study Instance UID (pseudonymous, as stored).
    pub study_uid: String,
    /// The series concerned, when the event concerns exactly one.
    pub series_uid: Option<String>,
    /// Instances of the study after the change.
    pub instances: i64,
    /// Series of the study after the change.
    pub series: i64,
    /// When (RFC 3339 UTC, ms).
    pub at: String,
}

impl ChangeItem {
    /// An event as the API (and `pacs-gateway changes --json`) shows it.
    pub fn of(c: Change) -> ChangeItem {
        ChangeItem {
            seq: c.seq,
            kind: c.kind,
            study_uid: c.study_uid,
            series_uid: c.series_uid,
            instances: c.instances,
            series: c.series,
            at: rfc3339(c.at),
        }
    }
}

/// A page of the feed.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChangesPage {
    /// The facility read.
    pub facility: String,
    /// Events with seq > `after`, oldest first.
    pub changes: Vec<ChangeItem>,
    /// The cursor for the next request (`after=last`): the seq of the last event
    /// here, or `after` itself when there is none.
    pub last: i64,
    /// Whether more events follow now (ask again at once).
    pub more: bool,
    /// The facility's newest seq when read (for progress; 0: no events yet).
    pub latest: i64,
}

/// `GET /api/v1/changes?after=SEQ&limit=N[&facility=NAME]`.
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ChangesQuery>,
) -> Result<axum::Json<ChangesPage>, ApiError> {
    let after = number(query.after, "after", (0, i64::MAX))?.unwrap_or(0);
    let limit = number(query.limit, "limit", (1, i64::from(MAX_LIMIT)))?
        .map_or(DEFAULT_LIMIT, |n| n as u32);
    let facility = caller
        .own_or_named(&state, query.facility.as_deref().filter(|f| !f.is_empty()))
        .await?;
    let page = state.index.changes(facility.id, after, limit).await?;
    let last = page.changes.last().map_or(after, |c| c.seq);
    Ok(axum::Json(ChangesPage {
        facility: facility.name.to_string(),
        changes: page.changes.into_iter().map(ChangeItem::of).collect(),
        last,
        more: page.more,
        latest: page.latest,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_numbers_are_refused() {
        assert_eq!(number(None, "after", (0, 9)).unwrap(), None);
        assert_eq!(number(Some(String::new()), "after", (0, 9)).unwrap(), None);
        assert_eq!(number(Some("7".into()), "after", (0, 9)).unwrap(), Some(7));
        for bad in ["-1", "10", "1.5", "x", "1 OR 1=1"] {
            assert!(number(Some(bad.into()), "after", (0, 9)).is_err(), "{bad}");
        }
    }
}
