//! The audit trail on the HTTPS side: every admin API request that changes
//! something (any method but GET/HEAD), answered or refused, becomes an audit event
//! ([`record_changes`], a middleware), and facility administrators read their
//! facility's events with `GET /api/v1/facilities/{facility}/audit` ([`list`]).
//!
//! Events name the request and the status, never a request body (no password): a
//! request that succeeded by its path, which names the object changed
//! (`POST /api/v1/facilities/a/users/nurse.joy/disable -> 204`: only existing,
//! validated names get that far); a refused one by the route template only
//! (`.../users/{username}/disable -> 404`), so that whatever was typed into a URL
//! is not kept. The facility of an event is the one acted on when the request
//! succeeded, else the caller's own (a refused probe of another facility is shown
//! to the prober's facility, never to the other one).

use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::error::{ApiPath, ApiQuery};
use super::session::{Caller, ClientAddr};
use super::{ApiError, ApiState, RouteLabel};
use crate::audit::{AuditEvent, AuditFilter, EventKind, Outcome, Protocol, search};
use crate::domain::{FacilityId, FacilityName};

/// Who made a request, as far as the extractors learned it: filled by
/// [`Caller`] (a valid token) and by the login handler (the user name tried).
#[derive(Debug, Clone, Default)]
pub struct AuditSlot(Arc<Mutex<Option<Actor>>>);

/// The user behind a request.
#[derive(Debug, Clone)]
struct Actor {
    username: String,
    facility: Option<FacilityId>,
}

impl AuditSlot {
    /// Records who is acting.
    pub fn set(&self, username: &str, facility: Option<FacilityId>) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(Actor {
                username: username.to_string(),
                facility,
            });
        }
    }

    fn get(&self) -> Option<Actor> {
        self.0.lock().ok().and_then(|slot| slot.clone())
    }
}

/// The facility name in a `/api/v1/facilities/{facility}/...` path.
fn facility_in_path(path: &str) -> Option<&str> {
    let mut parts = path.trim_start_matches('/').split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("api"), Some("v1"), Some("facilities"), Some(name)) if !name.is_empty() => Some(name),
        _ => None,
    }
}

/// Middleware: one audit event per changing request, after it is answered.
pub async fn record_changes(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    if method == Method::GET || method == Method::HEAD {
        return next.run(request).await;
    }
    let slot = AuditSlot::default();
    request.extensions_mut().insert(slot.clone());
    let peer = request.extensions().get::<ClientAddr>().map(|a| a.0.ip());
    let path = request.uri().path().to_string();
    let target = facility_in_path(&path).map(str::to_string);
    let response = next.run(request).await;
    let Some(RouteLabel(route)) = response.extensions().get::<RouteLabel>().copied() else {
        return response; // no such route: nothing was done
    };
    if route.starts_with(crate::web::PREFIX) {
        return response; // DICOMweb handlers record their own DICOM events
    }
    let status = response.status();
    let kind = match route {
        "/api/v1/login" if status.is_success() => EventKind::Login,
        "/api/v1/login" => EventKind::AuthenticationFailure,
        "/api/v1/logout" => EventKind::Logout,
        "/api/v1/facilities/{facility}/studies/{study_uid}" if method == Method::DELETE => {
            EventKind::InstancesDeleted
        }
        _ => EventKind::AdminChange,
    };
    let outcome = if status.is_success() {
        Outcome::Success
    } else if status.is_client_error() {
        Outcome::MinorFailure
    } else {
        Outcome::SeriousFailure
    };
    let shown = if status.is_success() { &path } else { route };
    let mut event = AuditEvent::new(kind, outcome, Protocol::Https)
        .detail(format!("{method} {shown} -> {}", status.as_u16()));
    if let Some(peer) = peer {
        event = event.peer(peer);
    }
    let mut actor = slot.get();
    if kind == EventKind::AuthenticationFailure {
        // A failed login for an existing user belongs to that user's facility, so
        // that its administrators see attacks on their accounts; any other name
        // typed (perhaps a password in the wrong field) is not recorded.
        let tried = actor.take().map(|a| a.username).unwrap_or_default();
        match state.auth.known_user(&tried).await {
            Some(user) => {
                actor = Some(Actor {
                    username: user.username.to_string(),
                    facility: Some(user.facility),
                })
            }
            None => {
                event = event.detail(format!(
                    "{method} {route} -> {} (unknown user name)",
                    status.as_u16()
                ))
            }
        }
    }
    let mut facility = actor.as_ref().and_then(|a| a.facility);
    if status.is_success()
        && let Some(name) = target.as_deref().and_then(|n| FacilityName::parse(n).ok())
        && let Ok(Some(f)) = state.index.facility_by_name(&name).await
    {
        facility = Some(f.id);
    }
    if let Some(actor) = actor {
        event = event.user(actor.username);
    }
    if let Some(f) = facility {
        event = event.facility(f);
    }
    state.audit.record(event).await;
    response
}

/// `GET .../audit` query parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    from: Option<String>,
    to: Option<String>,
    user: Option<String>,
    kind: Option<String>,
    outcome: Option<String>,
    limit: Option<String>,
    before_id: Option<String>,
}

/// One event as the API shows it.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EventItem {
    /// Row id (pages go by it).
    pub id: i64,
    /// RFC 3339.
    pub occurred_at: String,
    /// PS3.15 A.5 kind.
    pub kind: String,
    /// success, minor-failure, serious-failure, major-failure.
    pub outcome: String,
    /// Gateway user name, when known.
    pub username: Option<String>,
    /// Peer IP address, when known.
    pub peer: Option<String>,
    /// dicom, https or cli.
    pub protocol: String,
    /// Short text without identifiers.
    pub detail: String,
    /// Objects concerned.
    pub object_count: i64,
}

/// `GET .../audit` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct AuditPage {
    /// Newest first.
    pub events: Vec<EventItem>,
    /// Pass as `before_id` for the next page; `None` on the last page.
    pub next_before_id: Option<i64>,
}

fn given(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

fn time_param(value: Option<String>, name: &str) -> Result<Option<i64>, ApiError> {
    given(value)
        .map(|v| {
            OffsetDateTime::parse(&v, &Rfc3339)
                .ok()
                .and_then(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok())
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "{name} must be an RFC 3339 time, e.g. 2026-11-21T00:00:00Z"
                    ))
                })
        })
        .transpose()
}

/// A whole-number query parameter within `range` (absent or empty: `None`).
pub(super) fn number(
    value: Option<String>,
    name: &str,
    range: (i64, i64),
) -> Result<Option<i64>, ApiError> {
    given(value)
        .map(|v| {
            v.parse::<i64>()
                .ok()
                .filter(|n| (range.0..=range.1).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "{name} must be a whole number from {} to {}",
                        range.0, range.1
                    ))
                })
        })
        .transpose()
}

fn filter(q: AuditQuery, facility: FacilityId) -> Result<AuditFilter, ApiError> {
    let kind = given(q.kind)
        .map(|k| {
            EventKind::parse(&k).ok_or_else(|| {
                ApiError::bad_request(
                    "kind must be one of instances-transferred, query, begin-transferring, \
                     login, logout, authentication-failure, instances-deleted, security-alert, \
                     admin-change",
                )
            })
        })
        .transpose()?;
    let given_outcome = given(q.outcome);
    let failures = given_outcome.as_deref() == Some("failure");
    let outcome = given_outcome
        .filter(|_| !failures)
        .map(|o| {
            Outcome::parse(&o).ok_or_else(|| {
                ApiError::bad_request(
                    "outcome must be one of success, failure (any failure), minor-failure, serious-failure, major-failure",
                )
            })
        })
        .transpose()?;
    let username = given(q.user);
    if username.as_ref().is_some_and(|u| {
        u.len() > 64
            || !u
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b))
    }) {
        return Err(ApiError::bad_request(
            "user must be 1 to 64 of A-Z, a-z, 0-9, '.', '_', '@', '-'",
        ));
    }
    let limit = number(q.limit, "limit", (1, 1000))?.unwrap_or(100);
    Ok(AuditFilter {
        facility_id: Some(facility),
        from: time_param(q.from, "from")?,
        to: time_param(q.to, "to")?,
        username,
        kind,
        outcome,
        failures,
        limit: u32::try_from(limit).ok(),
        before_id: number(q.before_id, "before_id", (1, i64::MAX))?,
    })
}

/// `GET /api/v1/facilities/{facility}/audit`: the facility's events, newest first,
/// paged by `before_id`.
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(facility): ApiPath<String>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<axum::Json<AuditPage>, ApiError> {
    let facility = caller.scope(&state, &facility).await?;
    let mut filter = filter(query, facility.id)?;
    let limit = filter.limit.unwrap_or(100);
    // One more than asked tells whether there is a next page.
    filter.limit = Some(limit + 1);
    let mut rows = search(&state.index, &filter).await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_before_id = if more {
        rows.last().map(|e| e.id)
    } else {
        None
    };
    Ok(axum::Json(AuditPage {
        events: rows
            .into_iter()
            .map(|s| EventItem {
                id: s.id,
                occurred_at: super::rfc3339(s.occurred_at),
                kind: s.event.kind.as_str().to_string(),
                outcome: s.event.outcome.as_str().to_string(),
                username: s.event.username,
                peer: s.event.peer,
                protocol: s.event.protocol.as_str().to_string(),
                detail: s.event.detail,
                object_count: s.event.object_count,
            })
            .collect(),
        next_before_id,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facility_is_read_from_scoped_paths_only() {
        assert_eq!(
            facility_in_path("/api/v1/facilities/st-mary/users"),
            Some("st-mary")
        );
        assert_eq!(facility_in_path("/api/v1/facilities"), None);
        assert_eq!(facility_in_path("/api/v1/login"), None);
    }

    #[test]
    fn bad_filters_are_refused() {
        let q = |kind: &str, user: &str, from: &str| AuditQuery {
            from: Some(from.into()),
            to: None,
            user: Some(user.into()),
            kind: Some(kind.into()),
            outcome: None,
            limit: None,
            before_id: None,
        };
        let f = FacilityId(1);
        assert!(filter(q("login", "alice", "2026-11-01T00:00:00Z"), f).is_ok());
        assert!(filter(q("login' OR 1=1 --", "alice", ""), f).is_err());
        assert!(filter(q("", "x' OR '1'='1", ""), f).is_err());
        assert!(filter(q("", "", "yesterday"), f).is_err());
    }
}
