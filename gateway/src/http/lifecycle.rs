//! The life of stored studies through the API: retention policies (operator defaults
//! and facility overrides), labels on studies, the list of expiring and hidden
//! studies with their deadlines, and the facility's answers (keep, export
//! acknowledged, delete now, restore). The decisions are [`crate::lifecycle`]'s;
//! every changing request is audited by the router.
//!
//! Labels are opaque names the facility chooses (`oncology`, `keep-10y`): letters,
//! digits, `.`, `_` and `-` only, so a patient's name cannot be written into one by
//! mistake as easily, and they are never shown as anything but labels.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tracing::info;

use super::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use super::session::Caller;
use super::{ApiState, rfc3339};
use crate::auth::Role;
use crate::db::lifecycle::{
    CountedFrom, LifecycleState, RetentionAction, RetentionPolicy, SetBy, StudyLife,
};
use crate::lifecycle::{Answer, AnswerError, Lifecycle, policy_for, schedule};

/// Longest label.
const LABEL_MAX: usize = 64;

fn check_label(label: &str) -> Result<(), ApiError> {
    let ok = !label.is_empty()
        && label.len() <= LABEL_MAX
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::unprocessable(format!(
            "a label is 1 to {LABEL_MAX} letters, digits, '.', '_' or '-' (an opaque class name, never a person's name)"
        )))
    }
}

fn job(state: &ApiState) -> Result<&Lifecycle, ApiError> {
    state
        .lifecycle
        .as_ref()
        .ok_or_else(|| ApiError::unavailable("the lifecycle is not run by this gateway process"))
}

/// `GET .../retention`
#[derive(Debug, Serialize, Deserialize)]
pub struct PoliciesPage {
    /// The facility.
    pub facility: String,
    /// Its policies (operator defaults and facility overrides).
    pub policies: Vec<RetentionPolicy>,
}

/// `GET /api/v1/facilities/{facility}/retention` (facility admin, operator).
pub async fn policies(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(facility): ApiPath<String>,
) -> Result<axum::Json<PoliciesPage>, ApiError> {
    let facility = caller.scope(&state, &facility).await?;
    Ok(axum::Json(PoliciesPage {
        facility: facility.name.to_string(),
        policies: state.index.policies(facility.id).await?,
    }))
}

/// `PUT .../retention` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRequest {
    /// Only studies with this modality.
    #[serde(default)]
    pub modality: Option<String>,
    /// Only studies with this label.
    #[serde(default)]
    pub label: Option<String>,
    /// Storage period, days (1 to 36,500).
    pub period_days: i64,
    /// `receipt` (default) or `study-date`.
    #[serde(default)]
    pub counted_from: Option<CountedFrom>,
    /// Notice before the end, days (default 14).
    #[serde(default)]
    pub notice_days: Option<i64>,
    /// Hidden this long before purge, days (default 30).
    #[serde(default)]
    pub grace_days: Option<i64>,
    /// `hide-purge` (default) or `notify`.
    #[serde(default)]
    pub action: Option<RetentionAction>,
}

fn set_by(caller: &Caller) -> SetBy {
    if caller.user.role == Role::Operator {
        SetBy::Operator
    } else {
        SetBy::Facility
    }
}

fn scope_value(value: Option<String>, what: &str) -> Result<Option<String>, ApiError> {
    let Some(value) = value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
    else {
        return Ok(None);
    };
    if what == "label" {
        check_label(&value)?;
    } else if value.len() > 16 || !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ApiError::unprocessable(
            "modality is a DICOM modality code (CT, MR, US, ...)",
        ));
    }
    Ok(Some(if what == "label" {
        value
    } else {
        value.to_ascii_uppercase()
    }))
}

/// `PUT /api/v1/facilities/{facility}/retention`: sets the policy of a scope (an
/// operator's default, or the facility admin's override).
pub async fn set_policy(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(facility): ApiPath<String>,
    ApiJson(body): ApiJson<PolicyRequest>,
) -> Result<axum::Json<RetentionPolicy>, ApiError> {
    let facility = caller.scope(&state, &facility).await?;
    let days = |v: Option<i64>, default: i64, what: &str| -> Result<i64, ApiError> {
        let v = v.unwrap_or(default);
        if (0..=36_500).contains(&v) {
            Ok(v)
        } else {
            Err(ApiError::unprocessable(format!(
                "{what} must be from 0 to 36500 days"
            )))
        }
    };
    let policy = RetentionPolicy {
        set_by: set_by(&caller),
        modality: scope_value(body.modality, "modality")?,
        label: scope_value(body.label, "label")?,
        period_days: days(Some(body.period_days), 0, "period_days")?.max(1),
        counted_from: body.counted_from.unwrap_or(CountedFrom::Receipt),
        notice_days: days(body.notice_days, 14, "notice_days")?,
        grace_days: days(body.grace_days, 30, "grace_days")?,
        action: body.action.unwrap_or(RetentionAction::HidePurge),
    };
    if policy.notice_days >= policy.period_days {
        return Err(ApiError::unprocessable(
            "notice_days must be shorter than period_days",
        ));
    }
    let now = job(&state).map_or_else(|_| crate::db::now_millis(), Lifecycle::now);
    state.index.set_policy(facility.id, &policy, now).await?;
    info!(by = %caller.user.username, facility = %facility.name, ?policy, "retention policy set");
    Ok(axum::Json(policy))
}

/// `DELETE .../retention` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyScope {
    /// The policy's modality, if any.
    pub modality: Option<String>,
    /// The policy's label, if any.
    pub label: Option<String>,
}

/// `DELETE /api/v1/facilities/{facility}/retention?modality=&label=`: removes the
/// caller's policy of that scope (an operator's default, or the facility's override).
pub async fn remove_policy(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(facility): ApiPath<String>,
    ApiQuery(scope): ApiQuery<PolicyScope>,
) -> Result<StatusCode, ApiError> {
    let facility = caller.scope(&state, &facility).await?;
    let modality = scope_value(scope.modality, "modality")?;
    let label = scope_value(scope.label, "label")?;
    let removed = state
        .index
        .remove_policy(
            facility.id,
            set_by(&caller),
            modality.as_deref(),
            label.as_deref(),
        )
        .await?;
    if !removed {
        return Err(ApiError::not_found("no such policy"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A study's labels.
#[derive(Debug, Serialize, Deserialize)]
pub struct Labels {
    /// Study Instance UID (as stored).
    pub study_uid: String,
    /// Its labels.
    pub labels: Vec<String>,
}

/// `GET /api/v1/facilities/{facility}/studies/{study_uid}/labels`
pub async fn labels(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath((facility, study)): ApiPath<(String, String)>,
) -> Result<axum::Json<Labels>, ApiError> {
    let facility = caller.scope(&state, &facility).await?;
    if state.index.study_life(facility.id, &study).await?.is_none() {
        return Err(ApiError::not_found("no such study in this facility"));
    }
    Ok(axum::Json(Labels {
        labels: state.index.labels(facility.id, &study).await?,
        study_uid: study,
    }))
}

/// `PUT /api/v1/facilities/{facility}/studies/{study_uid}/labels/{label}`
pub async fn set_label(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath((facility, study, label)): ApiPath<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let facility = caller.scope(&state, &facility).await?;
    check_label(&label)?;
    let now = job(&state).map_or_else(|_| crate::db::now_millis(), Lifecycle::now);
    if !state
        .index
        .set_label(facility.id, &study, &label, now)
        .await?
    {
        return Err(ApiError::not_found("no such study in this facility"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/v1/facilities/{facility}/studies/{study_uid}/labels/{label}`
pub async fn remove_label(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath((facility, study, label)): ApiPath<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let facility = caller.scope(&state, &facility).await?;
    if !state
        .index
        .remove_label(facility.id, &study, &label)
        .await?
    {
        return Err(ApiError::not_found("the study has no such label"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/lifecycle` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleQuery {
    /// An operator names the facility.
    pub facility: Option<String>,
}

/// One study with a notice or hidden.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Notice {
    /// Study Instance UID (as stored).
    pub study_uid: String,
    /// `expiring` or `hidden`.
    pub state: String,
    /// Its labels.
    pub labels: Vec<String>,
    /// Modalities.
    pub modalities: Vec<String>,
    /// YYYYMMDD.
    pub study_date: Option<String>,
    /// Instances.
    pub instances: i64,
    /// When its storage period ends (RFC 3339).
    pub ends_at: Option<String>,
    /// When it will be hidden without an answer.
    pub hide_at: Option<String>,
    /// When it will be purged.
    pub purge_at: Option<String>,
    /// When an export to a medium was acknowledged.
    pub exported_at: Option<String>,
    /// What the facility may answer now.
    pub answers: Vec<String>,
}

/// `GET /api/v1/lifecycle` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct NoticePage {
    /// The facility.
    pub facility: String,
    /// Its expiring and hidden studies.
    pub studies: Vec<Notice>,
}

fn notice(life: StudyLife, policy: Option<&RetentionPolicy>) -> Notice {
    let s = policy.map(|p| schedule(p, &life));
    let answers: &[&str] = match life.state {
        LifecycleState::Hidden => &["restore", "expire"],
        _ => &["keep", "exported", "expire"],
    };
    Notice {
        state: life.state.as_str().into(),
        labels: life.labels,
        modalities: life.modalities,
        study_date: life.study_date,
        instances: life.instances,
        ends_at: s.map(|s| rfc3339(s.ends_at)),
        hide_at: s.and_then(|s| s.hide_at).map(rfc3339),
        purge_at: s.and_then(|s| s.purge_at).map(rfc3339),
        exported_at: life.exported_at.map(rfc3339),
        answers: answers.iter().map(|a| a.to_string()).collect(),
        study_uid: life.study_uid,
    }
}

/// `GET /api/v1/lifecycle[?facility=NAME]`: the caller's facility's expiring and
/// hidden studies, with deadlines and the answers available (any user of the
/// facility; an operator names it).
pub async fn notices(
    State(state): State<ApiState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<LifecycleQuery>,
) -> Result<axum::Json<NoticePage>, ApiError> {
    let facility = caller
        .own_or_named(&state, query.facility.as_deref().filter(|f| !f.is_empty()))
        .await?;
    let policies = state.index.policies(facility.id).await?;
    let lives = state
        .index
        .study_lives(
            facility.id,
            &[LifecycleState::Expiring, LifecycleState::Hidden],
        )
        .await?;
    Ok(axum::Json(NoticePage {
        facility: facility.name.to_string(),
        studies: lives
            .into_iter()
            .map(|l| {
                let p = policy_for(&policies, &l).cloned();
                notice(l, p.as_ref())
            })
            .collect(),
    }))
}

/// `POST .../lifecycle` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerRequest {
    /// `keep`, `exported`, `expire` or `restore`.
    pub answer: String,
    /// keep / restore: for how many days (default: the policy's period).
    #[serde(default)]
    pub days: Option<i64>,
    /// exported: the medium (cd, dvd, usb, folder).
    #[serde(default)]
    pub medium: Option<String>,
}

/// `POST .../lifecycle` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct AnswerResponse {
    /// Study Instance UID (as stored).
    pub study_uid: String,
    /// `active`, `expiring`, `hidden` or `purged`.
    pub state: String,
}

/// `POST /api/v1/studies/{study_uid}/lifecycle[?facility=NAME]`: the facility's answer.
/// Any user answers keep and exported; restore and expire (delete now) need the
/// facility admin (or an operator).
pub async fn answer(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(study): ApiPath<String>,
    ApiQuery(query): ApiQuery<LifecycleQuery>,
    ApiJson(body): ApiJson<AnswerRequest>,
) -> Result<axum::Json<AnswerResponse>, ApiError> {
    let facility = caller
        .own_or_named(&state, query.facility.as_deref().filter(|f| !f.is_empty()))
        .await?;
    if body.days.is_some_and(|d| !(1..=36_500).contains(&d)) {
        return Err(ApiError::unprocessable("days must be from 1 to 36500"));
    }
    let admin = matches!(caller.user.role, Role::FacilityAdmin | Role::Operator);
    let answer = match body.answer.as_str() {
        "keep" => Answer::Keep(body.days),
        "exported" => {
            let medium = body.medium.unwrap_or_else(|| "medium".into());
            if medium.len() > 16 || !medium.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(ApiError::unprocessable("medium is cd, dvd, usb or folder"));
            }
            Answer::Exported(medium)
        }
        "restore" | "expire" if !admin => {
            return Err(ApiError::forbidden(
                "restore and expire (delete now) need the facility administrator",
            ));
        }
        "restore" => Answer::Restore(body.days),
        "expire" => Answer::Expire,
        other => {
            return Err(ApiError::unprocessable(format!(
                "unknown answer {other:?}: keep, exported, expire or restore"
            )));
        }
    };
    let after = job(&state)?
        .answer(facility.id, &study, answer, caller.user.username.as_str())
        .await
        .map_err(|e| match e {
            AnswerError::NotFound => ApiError::not_found("no such study in this facility"),
            AnswerError::Conflict(m) => ApiError::conflict(m),
            AnswerError::Db(e) => e.into(),
        })?;
    Ok(axum::Json(AnswerResponse {
        study_uid: study,
        state: after.map_or("purged", LifecycleState::as_str).into(),
    }))
}
