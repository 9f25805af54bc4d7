//! The admin API token on disk: `<data_dir>/admin-token`, JSON with the token, its
//! expiry, the base URL it was issued by and who logged in. Written atomically with
//! mode 0600; refused when group or others could read it. `Debug` never shows the
//! token.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use zeroize::Zeroizing;

use super::AdminError;
use super::api::Me;

/// File name under the data dir.
pub const TOKEN_FILE: &str = "admin-token";

/// A bearer token with what it belongs to.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    /// Base URL of the admin API that issued it.
    pub url: String,
    #[serde(
        serialize_with = "super::api::ser_secret",
        deserialize_with = "super::api::de_secret"
    )]
    token: Zeroizing<String>,
    /// RFC 3339 expiry.
    pub expires_at: String,
    /// Who logged in.
    pub user: Me,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("url", &self.url)
            .field("token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .field("user", &self.user)
            .finish()
    }
}

impl Token {
    /// A token from the login answer.
    pub fn new(url: &str, token: String, expires_at: String, user: Me) -> Token {
        Token {
            url: url.to_string(),
            token: Zeroizing::new(token),
            expires_at,
            user,
        }
    }

    /// The bearer secret (for the `Authorization` header only).
    pub fn secret(&self) -> &str {
        &self.token
    }

    /// Whether it can be used against `url` at `now`; the reason it cannot
    /// otherwise (exit code 3).
    pub fn check(&self, url: &str, now: OffsetDateTime) -> Result<(), AdminError> {
        if self.url != url {
            return Err(AdminError::NotLoggedIn(format!(
                "the stored token is for {}, not {url}",
                self.url
            )));
        }
        let expires = OffsetDateTime::parse(&self.expires_at, &Rfc3339).map_err(|_| {
            AdminError::NotLoggedIn("the stored token has no readable expiry".into())
        })?;
        if expires <= now {
            return Err(AdminError::NotLoggedIn(format!(
                "the token expired at {}",
                super::format::short_time(&self.expires_at)
            )));
        }
        Ok(())
    }
}

/// Where the token lives for a data dir.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(TOKEN_FILE)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AdminError + '_ {
    move |source| AdminError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads the token file, refusing one that group or others can read.
pub fn read(path: &Path) -> Result<Token, AdminError> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(AdminError::NotLoggedIn("no stored token".into()));
        }
        Err(e) => return Err(io(path)(e)),
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(AdminError::TokenExposed {
            path: path.into(),
            mode,
        });
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io(path))?);
    serde_json::from_str(&text)
        .map_err(|_| AdminError::NotLoggedIn(format!("{} is not a token file", path.display())))
}

/// Replaces the token file atomically (temp file with mode 0600, fsync, rename).
pub fn save(path: &Path, token: &Token) -> Result<(), AdminError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let json = Zeroizing::new(
        serde_json::to_string_pretty(token).map_err(|e| AdminError::Protocol(e.to_string()))?,
    );
    let temp = dir.join(format!(
        ".{TOKEN_FILE}.{}.tmp",
        uuid::Uuid::new_v4().simple()
    ));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(json.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written.map_err(io(path))
}

/// Deletes the token file; whether there was one.
pub fn remove(path: &Path) -> Result<bool, AdminError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io(path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(expires_at: &str) -> Token {
        Token::new(
            "https://gw:8443",
            "c2VjcmV0LXRva2VuLXZhbHVlLW9mLTQzLWNoYXJzLWxvbmc".into(),
            expires_at.into(),
            Me {
                username: "alice".into(),
                facility: "st-mary".into(),
                role: "facility-admin".into(),
            },
        )
    }

    #[test]
    fn saved_with_mode_0600_and_refused_when_others_can_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = path(&dir.path().join("data"));
        save(&file, &token("2026-11-21T11:00:00Z")).unwrap();
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = read(&file).unwrap();
        assert_eq!(back.secret(), token("x").secret());
        assert_eq!(back.user.facility, "st-mary");
        assert!(!format!("{back:?}").contains(back.secret()));

        for exposed in [0o640, 0o604, 0o660] {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(exposed)).unwrap();
            assert!(
                matches!(read(&file), Err(AdminError::TokenExposed { mode, .. }) if mode == exposed),
                "mode {exposed:o} must be refused"
            );
        }
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        save(&file, &token("2026-11-21T12:00:00Z")).unwrap();
        assert_eq!(read(&file).unwrap().expires_at, "2026-11-21T12:00:00Z");
        assert!(remove(&file).unwrap());
        assert!(matches!(read(&file), Err(AdminError::NotLoggedIn(_))));
        assert!(!remove(&file).unwrap());
    }

    #[test]
    fn expired_or_foreign_tokens_are_not_used() {
        let now = OffsetDateTime::parse("2026-11-21T10:30:00Z", &Rfc3339).unwrap();
        assert!(
            token("2026-11-21T11:00:00Z")
                .check("https://gw:8443", now)
                .is_ok()
        );
        let expired = token("2026-11-21T10:29:59.999Z").check("https://gw:8443", now);
        assert!(matches!(expired, Err(AdminError::NotLoggedIn(ref m)) if m.contains("expired")));
        assert_eq!(expired.unwrap_err().exit_code(), 3);
        assert!(matches!(
            token("2026-11-21T11:00:00Z").check("https://other:8443", now),
            Err(AdminError::NotLoggedIn(_))
        ));
    }
}
