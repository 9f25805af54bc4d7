//! HTTP Basic for the DICOMweb proxy: the caller's gateway user name and password,
//! checked by the gateway (a DIMSE association with User Identity, as the viewer
//! proxy checks a viewer's own credentials) and remembered for [`REMEMBER`] as a
//! keyed hash, so a changed password or a locked account ends access soon after.
//! A refused login is 401 with `WWW-Authenticate: Basic`; a gateway that cannot be
//! reached is 502 (the credentials were not judged).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine as _;
use dimse::assoc::EXPLICIT_VR_LE;
use dimse::qr::STUDY_ROOT_FIND;
use dimse::scu::Proposal;
use sha2::{Digest, Sha256};
use tracing::info;

use super::{WebError, WebProxy};
use crate::credentials::Login;

/// How long a login the gateway accepted is taken without asking again.
pub const REMEMBER: Duration = Duration::from_secs(60);

/// Most logins remembered at once (the oldest are forgotten first).
const MOST: usize = 1024;

/// Logins the gateway accepted lately, by keyed hash.
pub(super) struct Remembered {
    key: [u8; 32],
    seen: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Remembered {
    pub(super) fn new() -> Remembered {
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        Remembered {
            key,
            seen: Mutex::new(HashMap::new()),
        }
    }

    fn hash(&self, username: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update((username.len() as u64).to_be_bytes());
        h.update(username.as_bytes());
        h.update(password.as_bytes());
        h.update(self.key);
        h.finalize().into()
    }

    fn knows(&self, hash: &[u8; 32]) -> bool {
        let Ok(seen) = self.seen.lock() else {
            return false;
        };
        seen.get(hash).is_some_and(|at| at.elapsed() < REMEMBER)
    }

    fn remember(&self, hash: [u8; 32]) {
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        seen.retain(|_, at| at.elapsed() < REMEMBER);
        if seen.len() >= MOST
            && let Some(oldest) = seen.iter().min_by_key(|(_, at)| **at).map(|(k, _)| *k)
        {
            seen.remove(&oldest);
        }
        seen.insert(hash, Instant::now());
    }
}

/// The name and password of an `Authorization: Basic` header.
fn basic(parts: &Parts) -> Option<(String, String)> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    (!user.is_empty()).then(|| (user.to_string(), password.to_string()))
}

/// The caller, as a gateway login the gateway accepted (lately).
pub(crate) struct Caller(pub Login);

impl FromRequestParts<std::sync::Arc<WebProxy>> for Caller {
    type Rejection = WebError;

    async fn from_request_parts(
        parts: &mut Parts,
        proxy: &std::sync::Arc<WebProxy>,
    ) -> Result<Caller, WebError> {
        let unauthorized = || {
            WebError::new(
                StatusCode::UNAUTHORIZED,
                "give your gateway user name and password (HTTP Basic)",
            )
        };
        let (username, password) = basic(parts).ok_or_else(unauthorized)?;
        let hash = proxy.logins.hash(&username, &password);
        let login = Login::new(username, password);
        if proxy.logins.knows(&hash) {
            return Ok(Caller(login));
        }
        let proposal = Proposal {
            abstract_syntax: STUDY_ROOT_FIND.into(),
            transfer_syntaxes: vec![EXPLICIT_VR_LE.into()],
        };
        match crate::gateway::connect(&proxy.config, &login, &[proposal], Vec::new()).await {
            Ok(assoc) => {
                let _ = assoc.release().await;
                proxy.logins.remember(hash);
                Ok(Caller(login))
            }
            // Not reached (network, TLS): the credentials were not judged.
            Err(e) if e.downcast_ref::<dimse::DimseError>().is_some() => Err(WebError::gateway(&e)),
            Err(e) => {
                // The gateway refused the login (wrong password, locked, disabled).
                info!(error = %format!("{e:#}"), "DICOMweb proxy: login not accepted by the gateway");
                Err(unauthorized())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_read_and_remembered_by_keyed_hash() {
        let request = axum::http::Request::builder()
            .header(AUTHORIZATION, "Basic ZHIuaG91c2U6cGFzczp3b3Jk")
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        assert_eq!(
            basic(&parts),
            Some(("dr.house".to_string(), "pass:word".to_string()))
        );
        let remembered = Remembered::new();
        let hash = remembered.hash("dr.house", "pass:word");
        assert!(!remembered.knows(&hash));
        remembered.remember(hash);
        assert!(remembered.knows(&hash));
        assert!(!remembered.knows(&remembered.hash("dr.house", "other")));
        assert_ne!(Remembered::new().hash("dr.house", "pass:word"), hash);
    }
}
