//! The clinician's gateway login for `query` and `retrieve`: `--user` with the
//! password from `PACS_PASSWORD` or a prompt, or the `[credentials] file` (TOML
//! `username` / `password`, mode 0600 or refused). Never from argv; `Debug` never
//! shows the password.

use std::io::IsTerminal;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use zeroize::Zeroizing;

/// Environment variable holding the password for `--user`.
pub const PASSWORD_ENV: &str = "PACS_PASSWORD";

/// A user name and password for User Identity Negotiation.
#[derive(Clone)]
pub struct Login {
    /// User name at the gateway.
    pub username: String,
    password: Zeroizing<String>,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Login({}, [redacted])", self.username)
    }
}

impl Login {
    /// A login from its parts.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Login {
        Login {
            username: username.into(),
            password: Zeroizing::new(password.into()),
        }
    }

    /// The DIMSE credentials.
    pub fn credentials(&self) -> dimse::scu::Credentials {
        dimse::scu::Credentials::UsernamePassword {
            username: self.username.clone(),
            password: self.password.to_string(),
        }
    }
}

/// Why no login could be found.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// Readable by others.
    #[error(
        "the credentials file {path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`"
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// Cannot read.
    #[error("cannot read the credentials file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not `username` + `password` TOML.
    #[error(
        "the credentials file {0} must be TOML with `username = \"...\"` and `password = \"...\"`"
    )]
    Format(PathBuf),
    /// `--user` differs from the file.
    #[error(
        "--user {given} differs from the user {file_user} in the credentials file; set {PASSWORD_ENV} for {given}"
    )]
    Mismatch {
        /// From the command line.
        given: String,
        /// From the file.
        file_user: String,
    },
    /// Nothing to go on.
    #[error(
        "no credentials: give --user NAME (password from {PASSWORD_ENV} or a prompt) or set `[credentials] file` in the config"
    )]
    Missing,
    /// `--user` was given, but no password: not in the environment and no terminal
    /// to prompt on.
    #[error(
        "no password for --user {0}: set {PASSWORD_ENV} (standard input is not a terminal, so there is no prompt)"
    )]
    NoPassword(String),
    /// A viewer's user has no password available.
    #[error(
        "no password for the gateway user {user} of viewer {viewer}: put it in the `[credentials] file` (username = \"{user}\") or set {PASSWORD_ENV}"
    )]
    NoViewerPassword {
        /// The viewer's AE title.
        viewer: String,
        /// The gateway user mapped to it.
        user: String,
    },
    /// A service of `serve` (thumbnail sync) has no password for its user.
    #[error(
        "no password for the gateway user {user} of {what}: put it in the `[credentials] file` (username = \"{user}\") or set {PASSWORD_ENV}"
    )]
    NoServicePassword {
        /// What needs it (`[sync]`).
        what: String,
        /// The gateway user.
        user: String,
    },
    /// Prompt failed.
    #[error("cannot read the password: {0}")]
    Prompt(#[source] std::io::Error),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLogin {
    username: String,
    password: String,
}

/// Reads a credentials file, refusing one other users can read.
pub fn read_file(path: &Path) -> Result<Login, CredentialsError> {
    let io = |source| CredentialsError::Io {
        path: path.into(),
        source,
    };
    let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(CredentialsError::Exposed {
            path: path.into(),
            mode,
        });
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
    let file: FileLogin =
        toml::from_str(&text).map_err(|_| CredentialsError::Format(path.into()))?;
    if file.username.trim().is_empty() {
        return Err(CredentialsError::Format(path.into()));
    }
    Ok(Login {
        username: file.username,
        password: Zeroizing::new(file.password),
    })
}

/// The login to use: `--user` with `PACS_PASSWORD`; else the credentials file (whose
/// user must equal `--user` if given); else a prompt on a terminal.
pub fn resolve(user: Option<&str>, file: Option<&Path>) -> Result<Login, CredentialsError> {
    let env = std::env::var(PASSWORD_ENV).ok();
    resolve_with(user, file, env, |user| {
        if !std::io::stdin().is_terminal() {
            return Err(CredentialsError::NoPassword(user.into()));
        }
        rpassword::prompt_password("gateway password: ").map_err(CredentialsError::Prompt)
    })
}

fn resolve_with(
    user: Option<&str>,
    file: Option<&Path>,
    env: Option<String>,
    prompt: impl FnOnce(&str) -> Result<String, CredentialsError>,
) -> Result<Login, CredentialsError> {
    if let (Some(user), Some(password)) = (user, env) {
        return Ok(Login::new(user, password));
    }
    if let Some(file) = file {
        let login = read_file(file)?;
        return match user {
            Some(given) if given != login.username => Err(CredentialsError::Mismatch {
                given: given.into(),
                file_user: login.username,
            }),
            _ => Ok(login),
        };
    }
    match user {
        Some(user) => Ok(Login::new(user, prompt(user)?)),
        None => Err(CredentialsError::Missing),
    }
}

/// The login `pacs-client serve` uses for a viewer mapped to `user`: the credentials
/// file when it holds that user, else `PACS_PASSWORD`. Never prompts.
pub fn for_viewer(
    viewer: &str,
    user: &str,
    file: Option<&Path>,
) -> Result<Login, CredentialsError> {
    viewer_login_with(viewer, user, file, std::env::var(PASSWORD_ENV).ok())
}

fn viewer_login_with(
    viewer: &str,
    user: &str,
    file: Option<&Path>,
    env: Option<String>,
) -> Result<Login, CredentialsError> {
    if let Some(file) = file {
        let login = read_file(file)?;
        if login.username == user {
            return Ok(login);
        }
    }
    match env {
        Some(password) => Ok(Login::new(user, password)),
        None => Err(CredentialsError::NoViewerPassword {
            viewer: viewer.into(),
            user: user.into(),
        }),
    }
}

/// The login of a service `serve` runs unattended (`what`, e.g. `[sync]`) as
/// `user`: the credentials file when it holds that user (or when no user is named),
/// else `PACS_PASSWORD`. Never prompts.
pub fn for_service(
    what: &str,
    user: Option<&str>,
    file: Option<&Path>,
) -> Result<Login, CredentialsError> {
    let Some(user) = user else {
        return match file {
            Some(file) => read_file(file),
            None => Err(CredentialsError::Missing),
        };
    };
    viewer_login_with(what, user, file, std::env::var(PASSWORD_ENV).ok()).map_err(|e| match e {
        CredentialsError::NoViewerPassword { user, .. } => CredentialsError::NoServicePassword {
            what: what.into(),
            user,
        },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_prompt(user: &str) -> Result<String, CredentialsError> {
        Err(CredentialsError::NoPassword(user.into()))
    }

    #[test]
    fn viewer_login_prefers_the_file_of_its_user() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cred.toml");
        std::fs::write(&file, "username = \"dr.house\"\npassword = \"from file\"\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let login = viewer_login_with("V", "dr.house", Some(&file), Some("env".into())).unwrap();
        assert_eq!(login.password.as_str(), "from file");
        let login = viewer_login_with("V", "dr.cuddy", Some(&file), Some("env".into())).unwrap();
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("dr.cuddy", "env")
        );
        assert!(matches!(
            viewer_login_with("V", "dr.cuddy", Some(&file), None),
            Err(CredentialsError::NoViewerPassword { .. })
        ));
    }

    #[test]
    fn env_then_file_then_prompt() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cred.toml");
        std::fs::write(
            &file,
            "username = \"dr.house\"\npassword = \"s3cret pass\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();

        let login = resolve_with(Some("a"), Some(&file), Some("pw".into()), no_prompt).unwrap();
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("a", "pw")
        );
        let login = resolve_with(None, Some(&file), None, no_prompt).unwrap();
        assert_eq!(login.username, "dr.house");
        assert_eq!(login.password.as_str(), "s3cret pass");
        assert!(!format!("{login:?}").contains("s3cret"));
        assert!(matches!(
            resolve_with(Some("other"), Some(&file), None, no_prompt),
            Err(CredentialsError::Mismatch { .. })
        ));
        let login = resolve_with(Some("b"), None, None, |_| Ok("typed".into())).unwrap();
        assert_eq!(login.password.as_str(), "typed");
        assert!(matches!(
            resolve_with(None, None, Some("pw".into()), no_prompt),
            Err(CredentialsError::Missing)
        ));

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            resolve_with(None, Some(&file), None, no_prompt),
            Err(CredentialsError::Exposed { mode: 0o640, .. })
        ));
    }
}
