//! `/api/v1/facilities` and the facility-wide read models: usage, the quota
//! (operators set it; enforcement at C-STORE is the ingest path's), the study list
//! (pseudonymous values only, as stored) and soft deletion of a study.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tracing::info;

use super::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use super::session::Caller;
use super::{ApiState, rfc3339};
use crate::auth::Role;
use crate::db::admin::FacilitySettings;
use crate::db::usage::{StudyFilter, StudySummary};
use crate::domain::Uid;

/// A facility as listed.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FacilityItem {
    /// Name.
    pub name: String,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Whether identified instances are accepted.
    pub accept_identified: bool,
    /// Quota in bytes (`null`: unlimited).
    pub quota_bytes: Option<i64>,
    /// Warning threshold, percent.
    pub quota_warn_percent: i64,
}

impl FacilityItem {
    fn of(f: &FacilitySettings) -> FacilityItem {
        FacilityItem {
            name: f.name.to_string(),
            created_at: rfc3339(f.created_at),
            accept_identified: f.accept_identified,
            quota_bytes: f.quota_bytes,
            quota_warn_percent: f.quota_warn_percent,
        }
    }
}

/// `GET /api/v1/facilities`: operators see all, facility administrators their own,
/// clinicians nothing (403).
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<axum::Json<Vec<FacilityItem>>, ApiError> {
    let only = match caller.user.role {
        Role::Operator => None,
        Role::FacilityAdmin => Some(caller.user.facility),
        Role::Clinician => {
            return Err(ApiError::forbidden(
                "clinicians cannot use the facility administration routes",
            ));
        }
    };
    let list = state.index.facility_settings(only).await?;
    Ok(axum::Json(list.iter().map(FacilityItem::of).collect()))
}

/// Per-modality usage.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ModalityItem {
    /// Modality.
    pub modality: String,
    /// Studies.
    pub studies: i64,
    /// Instances.
    pub instances: i64,
    /// Bytes.
    pub bytes: i64,
}

/// Per-month usage.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MonthItem {
    /// `YYYY-MM`.
    pub month: String,
    /// Instances.
    pub instances: i64,
    /// Bytes.
    pub bytes: i64,
}

/// `GET .../usage` answer.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct UsageItem {
    /// Bytes stored (counts against the quota).
    pub stored_bytes: i64,
    /// Studies.
    pub studies: i64,
    /// Series.
    pub series: i64,
    /// Instances.
    pub instances: i64,
    /// Last instance received (RFC 3339).
    pub last_ingest_at: Option<String>,
    /// Quota in bytes.
    pub quota_bytes: Option<i64>,
    /// Warning threshold, percent.
    pub quota_warn_percent: i64,
    /// By modality.
    pub by_modality: Vec<ModalityItem>,
    /// By month of receipt.
    pub by_month: Vec<MonthItem>,
}

/// `GET .../usage`.
pub async fn usage(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(facility): ApiPath<String>,
) -> Result<axum::Json<UsageItem>, ApiError> {
    let facility = caller.scope(&state, &facility).await?;
    let settings = state
        .index
        .facility_settings(Some(facility.id))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found("no such facility"))?;
    let usage = state.index.usage(facility.id).await?;
    Ok(axum::Json(UsageItem {
        stored_bytes: settings.stored_bytes,
        studies: usage.studies,
        series: usage.series,
        instances: usage.instances,
        last_ingest_at: usage.last_ingest_at.map(rfc3339),
        quota_bytes: settings.quota_bytes,
        quota_warn_percent: settings.quota_warn_percent,
        by_modality: usage
            .by_modality
            .into_iter()
            .map(|m| ModalityItem {
                modality: m.modality,
                studies: m.studies,
                instances: m.instances,
                bytes: m.bytes,
            })
            .collect(),
        by_month: usage
            .by_month
            .into_iter()
            .map(|m| MonthItem {
                month: m.month,
                instances: m.instances,
                bytes: m.bytes,
            })
            .collect(),
    }))
}

/// `PUT .../quota` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaRequest {
    quota_bytes: Option<i64>,
    quota_warn_percent: i64,
}

/// `PUT .../quota`: operators only (403 for facility administrators).
pub async fn set_quota(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(facility): ApiPath<String>,
    ApiJson(body): ApiJson<QuotaRequest>,
) -> Result<StatusCode, ApiError> {
    let facility = caller.scope(&state, &facility).await?;
    caller.require_operator()?;
    if body.quota_bytes.is_some_and(|q| q < 0) {
        return Err(ApiError::unprocessable(
            "quota_bytes must be 0 or more, or null for no quota",
        ));
    }
    if !(1..=100).contains(&body.quota_warn_percent) {
        return Err(ApiError::unprocessable(
            "quota_warn_percent must be from 1 to 100",
        ));
    }
    state
        .index
        .set_quota_settings(facility.id, body.quota_bytes, body.quota_warn_percent)
        .await?;
    info!(by = %caller.user.username, facility = %facility.name, quota_bytes = ?body.quota_bytes, warn_percent = body.quota_warn_percent, "quota set through the admin API");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET .../studies` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudiesQuery {
    patient_id: Option<String>,
    modality: Option<String>,
    date_from: Option<String>,
    date_to: Option<String>,
    accession_number: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

/// A listed study.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StudyItem {
    /// Study Instance UID (pseudonymous).
    pub study_uid: String,
    /// Patient ID (pseudonym).
    pub patient_id: Option<String>,
    /// Study Date (`YYYYMMDD`).
    pub study_date: Option<String>,
    /// Accession Number.
    pub accession_number: Option<String>,
    /// Study Description.
    pub study_description: Option<String>,
    /// Modalities in the study.
    pub modalities: Vec<String>,
    /// Series.
    pub series: i64,
    /// Instances.
    pub instances: i64,
    /// Last change (RFC 3339).
    pub updated_at: String,
}

impl StudyItem {
    fn of(s: StudySummary) -> StudyItem {
        StudyItem {
            study_uid: s.study_uid,
            patient_id: s.patient_id,
            study_date: s.study_date,
            accession_number: s.accession_number,
            study_description: s.study_description,
            modalities: s.modalities,
            series: s.series,
            instances: s.instances,
            updated_at: rfc3339(s.updated_at),
        }
    }
}

/// `GET .../studies` answer.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StudiesPage {
    /// This page.
    pub studies: Vec<StudyItem>,
    /// Offset of the next page, if there is one.
    pub next_offset: Option<i64>,
}

/// An empty parameter is no filter.
fn given(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// A Patient ID or Accession Number filter: 1 to 64 of `A-Z a-z 0-9 . _ - ^` (the
/// pseudonyms and accession numbers the facility client sends have no spaces).
fn text_filter(value: Option<String>, name: &str) -> Result<Option<String>, ApiError> {
    let value = given(value);
    if let Some(v) = &value {
        let ok = v.len() <= 64
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '^'));
        if !ok {
            return Err(ApiError::bad_request(format!(
                "{name} must be 1 to 64 letters, digits or . _ - ^"
            )));
        }
    }
    Ok(value)
}

fn date_filter(value: Option<String>, name: &str) -> Result<Option<String>, ApiError> {
    let value = given(value);
    if let Some(v) = &value {
        let digits = v.len() == 8 && v.bytes().all(|b| b.is_ascii_digit());
        let valid = digits
            && time::Date::parse(v, time::macros::format_description!("[year][month][day]"))
                .is_ok();
        if !valid {
            return Err(ApiError::bad_request(format!(
                "{name} must be a date YYYYMMDD"
            )));
        }
    }
    Ok(value)
}

fn number(
    value: Option<String>,
    name: &str,
    default: i64,
    range: (i64, i64),
) -> Result<i64, ApiError> {
    match given(value) {
        None => Ok(default),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (range.0..=range.1).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{name} must be a whole number from {} to {}",
                    range.0, range.1
                ))
            }),
    }
}

fn parse_filter(q: StudiesQuery) -> Result<(StudyFilter, i64, i64), ApiError> {
    let modality = given(q.modality);
    if let Some(m) = &modality
        && (m.len() > 16
            || !m
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'))
    {
        return Err(ApiError::bad_request(
            "modality must be 1 to 16 of A-Z, 0-9 and _ (e.g. CT)",
        ));
    }
    let filter = StudyFilter {
        patient_id: text_filter(q.patient_id, "patient_id")?,
        modality,
        date_from: date_filter(q.date_from, "date_from")?,
        date_to: date_filter(q.date_to, "date_to")?,
        accession_number: text_filter(q.accession_number, "accession_number")?,
    };
    let limit = number(q.limit, "limit", 100, (1, 1000))?;
    let offset = number(q.offset, "offset", 0, (0, i64::from(i32::MAX)))?;
    Ok((filter, limit, offset))
}

/// `GET .../studies`: not deleted, newest study date first, paged by offset.
pub async fn studies(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(facility): ApiPath<String>,
    ApiQuery(query): ApiQuery<StudiesQuery>,
) -> Result<axum::Json<StudiesPage>, ApiError> {
    let facility = caller.scope(&state, &facility).await?;
    let (filter, limit, offset) = parse_filter(query)?;
    let mut rows = state
        .index
        .list_studies(facility.id, &filter, limit + 1, offset)
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Ok(axum::Json(StudiesPage {
        studies: rows.into_iter().map(StudyItem::of).collect(),
        next_offset: more.then_some(offset + limit),
    }))
}

/// `DELETE .../studies/{study_uid}`: soft delete; 404 if unknown or deleted before.
pub async fn delete_study(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath((facility, study_uid)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let facility = caller.scope(&state, &facility).await?;
    let not_found = || ApiError::not_found("no such study in this facility");
    let uid = Uid::parse(&study_uid).map_err(|_| not_found())?;
    if !state.index.soft_delete_study(facility.id, &uid).await? {
        return Err(not_found());
    }
    info!(by = %caller.user.username, facility = %facility.name, study_uid = %uid, "study deleted (soft) through the admin API");
    Ok(StatusCode::NO_CONTENT)
}
