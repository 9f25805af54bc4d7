//! Bearer tokens and who is calling: `POST /api/v1/login`, `POST /api/v1/logout`,
//! `GET /api/v1/me`, `PUT /api/v1/me/password`, the [`Caller`] extractor every
//! authenticated handler takes, and the facility scoping rule ([`Caller::scope`]).
//!
//! A token is 32 random bytes, base64url without padding (43 characters), shown once
//! in the login response; the index keeps only its SHA-256 (hex). Passwords go
//! through the same [`crate::auth::Authenticator`] as DIMSE (argon2id off the async
//! threads, per-user and per-peer lockout, one generic refusal).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tracing::info;

use super::error::{ApiError, ApiJson};
use super::{ApiState, rfc3339};
use crate::auth::{Password, Role, User, hash_password};
use crate::db::{Facility, now_millis};
use crate::domain::FacilityName;

/// The peer address of the connection a request came on (set by [`super::server`];
/// `0.0.0.0` for requests that did not come over a socket, e.g. in-process tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

impl ClientAddr {
    fn of(parts: &Parts) -> IpAddr {
        parts
            .extensions
            .get::<ClientAddr>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.0.ip())
    }
}

/// The peer's IP address as an extractor (never fails).
#[derive(Debug, Clone, Copy)]
pub struct PeerIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for PeerIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Ok(PeerIp(ClientAddr::of(parts)))
    }
}

/// SHA-256 (hex) of a token: what the index stores and looks up.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The authenticated caller of a request (valid bearer token).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user.
    pub user: User,
    /// The user's facility name.
    pub facility_name: FacilityName,
    /// SHA-256 of the token presented.
    pub token_hash: String,
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let refused = || ApiError::unauthorized("a valid bearer token is required: log in first");
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(refused)?;
        let token = header
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|t| {
                t.len() == 43
                    && t.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
            .ok_or_else(refused)?;
        let hash = token_hash(token);
        let owner = state
            .index
            .token_owner(&hash, now_millis())
            .await?
            .ok_or_else(refused)?;
        if let Some(slot) = parts.extensions.get::<super::audit::AuditSlot>() {
            slot.set(owner.user.username.as_str(), Some(owner.user.facility));
        }
        Ok(Caller {
            user: owner.user,
            facility_name: owner.facility_name,
            token_hash: hash,
        })
    }
}

impl Caller {
    /// The facility `name` as this caller may see it: an operator any facility, a
    /// facility administrator only its own (any other name, existing or not: 404),
    /// a clinician none (403).
    pub async fn scope(&self, state: &ApiState, name: &str) -> Result<Facility, ApiError> {
        let not_found = || ApiError::not_found("no such facility");
        match self.user.role {
            Role::Clinician => Err(ApiError::forbidden(
                "clinicians cannot use the facility administration routes",
            )),
            Role::FacilityAdmin if name != self.facility_name.as_str() => Err(not_found()),
            Role::FacilityAdmin | Role::Operator => {
                let name = FacilityName::parse(name).map_err(|_| not_found())?;
                let facility = state.index.facility_by_name(&name).await?;
                match facility {
                    Some(f) if self.user.role == Role::Operator || f.id == self.user.facility => {
                        Ok(f)
                    }
                    _ => Err(not_found()),
                }
            }
        }
    }

    /// The facility of a route open to every user of it (not only administrators):
    /// `name` absent means the caller's own, which an operator must name instead
    /// (400); any user but an operator may name only their own (any other name,
    /// existing or not: 404, as in [`Caller::scope`]).
    pub async fn own_or_named(
        &self,
        state: &ApiState,
        name: Option<&str>,
    ) -> Result<Facility, ApiError> {
        let not_found = || ApiError::not_found("no such facility");
        let name = match (name, self.user.role) {
            (None, Role::Operator) => {
                return Err(ApiError::bad_request(
                    "an operator names the facility: ?facility=NAME",
                ));
            }
            (None, _) => self.facility_name.clone(),
            (Some(n), Role::Operator) => FacilityName::parse(n).map_err(|_| not_found())?,
            (Some(n), _) if n == self.facility_name.as_str() => self.facility_name.clone(),
            (Some(_), _) => return Err(not_found()),
        };
        match state.index.facility_by_name(&name).await? {
            Some(f) if self.user.role == Role::Operator || f.id == self.user.facility => Ok(f),
            _ => Err(not_found()),
        }
    }

    /// Refuses everyone but operators (403).
    pub fn require_operator(&self) -> Result<(), ApiError> {
        if self.user.role == Role::Operator {
            Ok(())
        } else {
            Err(ApiError::forbidden("only an operator may do this"))
        }
    }
}

/// `POST /api/v1/login` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    username: String,
    password: String,
}

/// `{"username","facility","role"}`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Me {
    /// User name.
    pub username: String,
    /// Facility name.
    pub facility: String,
    /// Role.
    pub role: String,
}

impl Me {
    fn of(user: &User, facility: &FacilityName) -> Me {
        Me {
            username: user.username.to_string(),
            facility: facility.to_string(),
            role: user.role.as_str().to_string(),
        }
    }
}

/// `POST /api/v1/login` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct LoginResponse {
    /// The bearer token (shown only here).
    pub token: String,
    /// Its expiry, RFC 3339.
    pub expires_at: String,
    /// Who logged in.
    pub user: Me,
}

/// `POST /api/v1/login`.
pub async fn login(
    State(state): State<ApiState>,
    PeerIp(peer): PeerIp,
    slot: Option<axum::Extension<super::audit::AuditSlot>>,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<axum::Json<LoginResponse>, ApiError> {
    if let Some(axum::Extension(slot)) = &slot {
        slot.set(&body.username, None);
    }
    let password = Password::new(body.password);
    let user = state
        .auth
        .verify(&body.username, password.expose(), peer)
        .await?;
    let account = state
        .index
        .user_by_name(&user.username)
        .await?
        .ok_or_else(|| ApiError::unauthorized("wrong user name or password"))?;
    let token = new_token();
    let ttl_ms = i64::try_from(state.token_ttl.as_millis()).unwrap_or(i64::MAX / 2);
    let expires_at = now_millis().saturating_add(ttl_ms);
    state
        .index
        .insert_token(&token_hash(&token), &account, expires_at, &peer.to_string())
        .await?;
    if let Some(axum::Extension(slot)) = &slot {
        slot.set(user.username.as_str(), Some(user.facility));
    }
    info!(user = %user.username, role = %user.role, %peer, "admin API login");
    Ok(axum::Json(LoginResponse {
        token,
        expires_at: rfc3339(expires_at),
        user: Me::of(&user, &account.facility_name),
    }))
}

/// `POST /api/v1/logout`: revokes the token presented.
pub async fn logout(State(state): State<ApiState>, caller: Caller) -> Result<StatusCode, ApiError> {
    state.index.revoke_token(&caller.token_hash).await?;
    info!(user = %caller.user.username, "admin API logout");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/me`.
pub async fn me(caller: Caller) -> axum::Json<Me> {
    axum::Json(Me::of(&caller.user, &caller.facility_name))
}

/// `PUT /api/v1/me/password` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// `PUT /api/v1/me/password`: the current password must be right (401, counted
/// like a failed login); the new one must meet the policy (422).
pub async fn change_password(
    State(state): State<ApiState>,
    PeerIp(peer): PeerIp,
    caller: Caller,
    ApiJson(body): ApiJson<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    let current = Password::new(body.current_password);
    let new = Password::new(body.new_password);
    new.check_policy()?;
    state
        .auth
        .verify(caller.user.username.as_str(), current.expose(), peer)
        .await?;
    let hash = hash_off_thread(&state, new).await?;
    state
        .index
        .set_password(caller.user.id, &hash, Some(&caller.token_hash))
        .await?;
    info!(user = %caller.user.username, "password changed through the admin API");
    Ok(StatusCode::NO_CONTENT)
}

/// Hashes a new password (policy checked) on a blocking thread.
pub async fn hash_off_thread(state: &ApiState, password: Password) -> Result<String, ApiError> {
    let settings = state.auth.settings().clone();
    tokio::task::spawn_blocking(move || hash_password(&settings, &password))
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(ApiError::from)
}
