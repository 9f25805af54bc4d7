//! `pacs-client admin ...`: facility administration against the gateway's admin
//! HTTPS API (users, C-MOVE destinations, client certificates, usage, audit trail,
//! studies). Logs in once and keeps a short-lived token in `<data_dir>/admin-token`
//! ([`token`]); trusts only the gateway CA of `[gateway] ca` ([`api`]).
//!
//! Prints the API's own one-line error message; exit codes: 0 done, 1 failed,
//! 2 usage, 3 not logged in or token expired, 64 bad configuration. Never takes a
//! password from the command line.
//!
//! Local administration lives here too: [`local`] edits the modalities and sharing
//! rules of the client's own config file (`pacs-client modality|rule ...`). The admin
//! side builds on the shared layer only (config, credentials, UID checks).

pub mod api;
pub mod args;
mod commands;
pub mod format;
pub mod local;
mod manage;
mod records;
pub mod token;

use std::io::IsTerminal;
use std::path::PathBuf;

pub use args::AdminCommand;
use zeroize::Zeroizing;

use crate::config::Config;

/// Environment variable with the admin's password for `admin login`.
pub const PASSWORD_ENV: &str = crate::credentials::PASSWORD_ENV;
/// Environment variable with a new user's password (`users add`, `reset-password`).
pub const NEW_PASSWORD_ENV: &str = "PACS_NEW_PASSWORD";

/// Why an admin command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No usable token (exit 3).
    #[error("not logged in: {0}; run `pacs-client admin login`")]
    NotLoggedIn(String),
    /// The command line does not say enough (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The configuration does not allow talking to the API (exit 64).
    #[error("{0}")]
    Config(String),
    /// The API refused (its own message).
    #[error("{message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The API's error code.
        code: String,
        /// The API's message.
        message: String,
    },
    /// No answer.
    #[error("cannot reach the admin API at {url}: {message}")]
    Unreachable {
        /// Base URL.
        url: String,
        /// Why.
        message: String,
    },
    /// An answer that does not follow the contract.
    #[error("unexpected answer from the admin API: {0}")]
    Protocol(String),
    /// The token file is readable by others.
    #[error(
        "the token file {path} is readable by other users (mode {mode:o}); delete it and run `pacs-client admin login` again"
    )]
    TokenExposed {
        /// The file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// Local file trouble.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Refused locally (e.g. would overwrite a file).
    #[error("{0}")]
    Refused(String),
}

impl AdminError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            AdminError::NotLoggedIn(_) => 3,
            AdminError::Usage(_) => 2,
            AdminError::Config(_) => 64,
            _ => 1,
        }
    }
}

/// Runs an admin command; prints what went wrong and returns the exit code.
pub async fn run(config: &Config, command: AdminCommand) -> i32 {
    match commands::execute(config, command).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("pacs-client: {e}");
            e.exit_code()
        }
    }
}

/// One line of standard input, without the line end.
fn stdin_line() -> Result<Zeroizing<String>, AdminError> {
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| AdminError::Usage(format!("cannot read standard input: {e}")))?;
    let trimmed = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string());
    Ok(trimmed)
}

/// A password: standard input when asked, else `env`, else a prompt on a terminal
/// (twice when `confirm`).
fn password(
    from_stdin: bool,
    env: &str,
    prompt: &str,
    confirm: bool,
) -> Result<Zeroizing<String>, AdminError> {
    let given = if from_stdin {
        stdin_line()?
    } else if let Ok(p) = std::env::var(env) {
        Zeroizing::new(p)
    } else if std::io::stdin().is_terminal() {
        let prompt_err =
            |e: std::io::Error| AdminError::Usage(format!("cannot read the password: {e}"));
        let first = Zeroizing::new(rpassword::prompt_password(prompt).map_err(prompt_err)?);
        if confirm {
            let again = Zeroizing::new(rpassword::prompt_password("again: ").map_err(prompt_err)?);
            if *again != *first {
                return Err(AdminError::Usage("the two passwords differ".into()));
            }
        }
        first
    } else {
        return Err(AdminError::Usage(format!(
            "no password: use --password-stdin or set {env} (standard input is not a terminal)"
        )));
    };
    if given.is_empty() {
        return Err(AdminError::Usage("the password is empty".into()));
    }
    Ok(given)
}
