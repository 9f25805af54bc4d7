//! `/api/v1/facilities/{facility}/users...`: list, add, disable, enable and reset the
//! password of a facility's users. A facility administrator manages the users of
//! its own facility, but neither creates nor changes operators (403).

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tracing::info;

use super::error::{ApiError, ApiJson, ApiPath};
use super::session::{Caller, hash_off_thread};
use super::{ApiState, rfc3339};
use crate::auth::{Password, Role, Username};
use crate::db::Facility;
use crate::db::now_millis;
use crate::db::users::UserAccount;

/// A user as listed.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserItem {
    /// User name.
    pub username: String,
    /// Role.
    pub role: String,
    /// Whether every login is refused.
    pub disabled: bool,
    /// Locked until (RFC 3339), when locked now.
    pub locked_until: Option<String>,
    /// Creation time (RFC 3339).
    pub created_at: String,
}

impl UserItem {
    fn of(account: &UserAccount, now: i64) -> UserItem {
        UserItem {
            username: account.user.username.to_string(),
            role: account.user.role.as_str().to_string(),
            disabled: account.disabled,
            locked_until: account.locked_until.filter(|&t| t > now).map(rfc3339),
            created_at: rfc3339(account.created_at),
        }
    }
}

/// `GET .../users`.
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(facility): ApiPath<String>,
) -> Result<axum::Json<Vec<UserItem>>, ApiError> {
    let facility = caller.scope(&state, &facility).await?;
    let now = now_millis();
    let users = state.index.list_users(Some(facility.id)).await?;
    Ok(axum::Json(
        users.iter().map(|a| UserItem::of(a, now)).collect(),
    ))
}

/// `POST .../users` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    username: String,
    role: String,
    password: String,
}

/// `POST .../users`: 201 with the new user; 409 if the name is taken anywhere.
pub async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(facility): ApiPath<String>,
    ApiJson(body): ApiJson<NewUser>,
) -> Result<(StatusCode, axum::Json<UserItem>), ApiError> {
    let facility = caller.scope(&state, &facility).await?;
    let role = Role::parse(&body.role).map_err(ApiError::unprocessable)?;
    if role == Role::Operator {
        caller.require_operator()?;
    }
    let username = Username::parse(&body.username).map_err(ApiError::unprocessable)?;
    let password = Password::new(body.password);
    password.check_policy()?;
    if state.index.user_by_name(&username).await?.is_some() {
        return Err(ApiError::conflict(format!(
            "user {username} already exists"
        )));
    }
    let hash = hash_off_thread(&state, password).await?;
    state
        .index
        .create_user(facility.id, &username, role, &hash)
        .await?;
    let account = state
        .index
        .user_by_name(&username)
        .await?
        .ok_or_else(|| ApiError::internal(&"a new user vanished"))?;
    info!(by = %caller.user.username, user = %username, facility = %facility.name, %role, "user added through the admin API");
    Ok((
        StatusCode::CREATED,
        axum::Json(UserItem::of(&account, now_millis())),
    ))
}

/// The user `name` of `facility`, if the caller may change it.
async fn target(
    state: &ApiState,
    caller: &Caller,
    facility: &Facility,
    name: &str,
) -> Result<UserAccount, ApiError> {
    let not_found = || ApiError::not_found("no such user in this facility");
    let username = Username::parse(name).map_err(|_| not_found())?;
    let account = state
        .index
        .user_by_name(&username)
        .await?
        .filter(|a| a.user.facility == facility.id)
        .ok_or_else(not_found)?;
    if account.user.role == Role::Operator {
        caller.require_operator()?;
    }
    Ok(account)
}

/// `POST .../users/{username}/disable`.
pub async fn disable(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath((facility, username)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let facility = caller.scope(&state, &facility).await?;
    let account = target(&state, &caller, &facility, &username).await?;
    state.index.set_disabled(account.user.id, true).await?;
    info!(by = %caller.user.username, user = %account.user.username, "user disabled through the admin API");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST .../users/{username}/enable`: also lifts a lockout.
pub async fn enable(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath((facility, username)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let facility = caller.scope(&state, &facility).await?;
    let account = target(&state, &caller, &facility, &username).await?;
    state.index.set_disabled(account.user.id, false).await?;
    state.index.reset_user_failures(account.user.id).await?;
    info!(by = %caller.user.username, user = %account.user.username, "user enabled through the admin API");
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT .../users/{username}/password` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordReset {
    password: String,
}

/// `PUT .../users/{username}/password`: reset by an administrator (also lifts a
/// lockout).
pub async fn reset_password(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath((facility, username)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<PasswordReset>,
) -> Result<StatusCode, ApiError> {
    let facility = caller.scope(&state, &facility).await?;
    let account = target(&state, &caller, &facility, &username).await?;
    let hash = hash_off_thread(&state, Password::new(body.password)).await?;
    state
        .index
        .set_password(account.user.id, &hash, None)
        .await?;
    info!(by = %caller.user.username, user = %account.user.username, "password reset through the admin API");
    Ok(StatusCode::NO_CONTENT)
}
