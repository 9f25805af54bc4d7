//! Who is calling a DICOMweb route: HTTP Basic with a gateway user's name and password
//! (checked by the same [`crate::auth::Authenticator`] as DIMSE and the admin login:
//! argon2id, per-user and per-peer lockout), or a bearer token from
//! `POST /api/v1/login`. Any role may search and retrieve, only in its own facility.
//!
//! Viewers send Basic credentials with every request; running argon2id each time
//! would cost tens of milliseconds per image. A successful check is therefore
//! remembered for [`BASIC_TTL`] as a keyed SHA-256 of name and password (the key is
//! random per process, so the cache holds nothing a password could be recovered
//! from), bound to the stored hash it matched: a changed password, a disabled or
//! locked account ends the memory at the next request, which re-reads the account.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand_core::RngCore as _;
use sha2::{Digest as _, Sha256};

use crate::auth::{Password, User, Username};
use crate::db::{Facility, now_millis};
use crate::http::session::{Caller, ClientAddr};
use crate::http::{ApiError, ApiState};

/// How long a verified Basic credential is remembered.
pub const BASIC_TTL: Duration = Duration::from_secs(60);

/// Most credentials remembered at once (the memory is emptied when full).
const BASIC_CAPACITY: usize = 4096;

/// A DICOMweb refusal: an [`ApiError`], with `WWW-Authenticate: Basic` on a 401 so
/// that browsers and viewers ask for credentials.
#[derive(Debug)]
pub struct WebRejection(pub ApiError);

impl From<ApiError> for WebRejection {
    fn from(e: ApiError) -> Self {
        WebRejection(e)
    }
}

impl IntoResponse for WebRejection {
    fn into_response(self) -> Response {
        let unauthorized = self.0.status == StatusCode::UNAUTHORIZED;
        let mut response = self.0.into_response();
        if unauthorized {
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Basic realm=\"pacs-gateway DICOMweb\", charset=\"UTF-8\"",
                ),
            );
        }
        response
    }
}

/// The authenticated caller of a DICOMweb request.
#[derive(Debug, Clone)]
pub struct WebUser {
    /// The user.
    pub user: User,
    /// The user's facility: the only one whose data it sees.
    pub facility: Facility,
    /// The peer address, when the request came over a socket.
    pub peer: Option<IpAddr>,
}

/// Recently verified Basic credentials (see the module documentation).
pub struct BasicCache {
    key: [u8; 32],
    entries: Mutex<HashMap<[u8; 32], Remembered>>,
}

#[derive(Clone)]
struct Remembered {
    user_id: i64,
    stored_hash: String,
    until: Instant,
}

impl Default for BasicCache {
    fn default() -> Self {
        let mut key = [0u8; 32];
        rand_core::OsRng.fill_bytes(&mut key);
        BasicCache {
            key,
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl std::fmt::Debug for BasicCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCache").finish_non_exhaustive()
    }
}

impl BasicCache {
    fn fingerprint(&self, username: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update((username.len() as u64).to_le_bytes());
        h.update(username.as_bytes());
        h.update(password.as_bytes());
        h.finalize().into()
    }

    fn get(&self, fingerprint: &[u8; 32]) -> Option<Remembered> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(fingerprint) {
            Some(r) if r.until > Instant::now() => Some(r.clone()),
            Some(_) => {
                entries.remove(fingerprint);
                None
            }
            None => None,
        }
    }

    fn put(&self, fingerprint: [u8; 32], remembered: Remembered) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= BASIC_CAPACITY {
            entries.clear();
        }
        entries.insert(fingerprint, remembered);
    }

    fn forget(&self, fingerprint: &[u8; 32]) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.remove(fingerprint);
    }
}

fn refused() -> ApiError {
    ApiError::unauthorized(
        "DICOMweb needs a gateway user name and password (HTTP Basic) or a bearer token",
    )
}

impl FromRequestParts<ApiState> for WebUser {
    type Rejection = WebRejection;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, WebRejection> {
        let peer = parts.extensions.get::<ClientAddr>().map(|a| a.0.ip());
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(refused)?;
        let (scheme, rest) = header.split_once(' ').ok_or_else(refused)?;
        let user = if scheme.eq_ignore_ascii_case("bearer") {
            Caller::from_request_parts(parts, state).await?.user
        } else if scheme.eq_ignore_ascii_case("basic") {
            basic(state, rest.trim(), peer).await?
        } else {
            return Err(refused().into());
        };
        let account = state
            .index
            .user_by_name(&user.username)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(refused)?;
        let facility = state
            .index
            .facility_by_name(&account.facility_name)
            .await
            .map_err(ApiError::from)?
            .filter(|f| f.id == user.facility)
            .ok_or_else(refused)?;
        Ok(WebUser {
            user,
            facility,
            peer,
        })
    }
}

/// Checks `Basic <base64(name:password)>`, from memory when this exact pair was
/// verified less than [`BASIC_TTL`] ago and the account is unchanged.
async fn basic(state: &ApiState, encoded: &str, peer: Option<IpAddr>) -> Result<User, ApiError> {
    let web = super::web_state(state)?;
    let decoded = STANDARD.decode(encoded).map_err(|_| refused())?;
    let decoded = zeroize::Zeroizing::new(String::from_utf8(decoded).map_err(|_| refused())?);
    let (username, password) = decoded.split_once(':').ok_or_else(refused)?;
    let password = Password::new(password.to_string());
    let fingerprint = web.basic.fingerprint(username, password.expose());
    if let Some(remembered) = web.basic.get(&fingerprint) {
        let name = Username::parse(username).map_err(|_| refused())?;
        let current = state.index.credentials(&name).await?;
        let now = now_millis();
        match current {
            Some(c)
                if c.account.user.id == remembered.user_id
                    && c.hash.as_phc() == remembered.stored_hash
                    && !c.account.disabled
                    && c.account.locked_until.is_none_or(|t| t <= now) =>
            {
                return Ok(c.account.user);
            }
            _ => web.basic.forget(&fingerprint),
        }
    }
    let peer_ip = peer.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let user = state
        .auth
        .verify(username, password.expose(), peer_ip)
        .await?;
    if let Some(c) = state.index.credentials(&user.username).await? {
        web.basic.put(
            fingerprint,
            Remembered {
                user_id: c.account.user.id,
                stored_hash: c.hash.as_phc().to_string(),
                until: Instant::now() + BASIC_TTL,
            },
        );
    }
    Ok(user)
}
