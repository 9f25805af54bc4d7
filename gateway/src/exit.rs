//! How `pacs-gateway` ends: the exit-code table (README "Exit codes"), the one-line
//! error report, and a quiet exit when standard output is closed (`... | head`).
//!
//! | code | meaning |
//! |------|---------|
//! | 0    | done |
//! | 1    | the command failed while running (storage, network, a refusal) |
//! | 2    | usage: the command line is wrong (clap's own errors too) |
//! | 64   | configuration: the config file or a setting cannot be used |
//! | 141  | standard output was closed by the reader; stopped quietly |

use std::fmt::Write as _;

use crate::config::ConfigError;

/// Done.
pub const OK: i32 = 0;
/// The command failed while running.
pub const RUNTIME: i32 = 1;
/// The command line is wrong.
pub const USAGE: i32 = 2;
/// The configuration cannot be used (sysexits `EX_CONFIG`).
pub const CONFIG: i32 = 64;
/// Standard output closed (128 + SIGPIPE, what a shell reports for `yes | head`).
pub const BROKEN_PIPE: i32 = 141;

/// The command line asks for something that cannot be done as written (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Returns early with a [`UsageError`].
#[macro_export]
macro_rules! usage {
    ($($arg:tt)*) => {
        return Err($crate::exit::UsageError(format!($($arg)*)).into())
    };
}

/// Whether the error is a write to a closed pipe (the reader went away).
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The exit code for an error that ended a command.
pub fn code_for(error: &anyhow::Error) -> i32 {
    if is_broken_pipe(error) {
        BROKEN_PIPE
    } else if error.chain().any(|e| e.is::<ConfigError>()) {
        CONFIG
    } else if error.chain().any(|e| e.is::<UsageError>()) {
        USAGE
    } else {
        RUNTIME
    }
}

/// The error and its causes on one line, each cause once: a cause whose text its
/// parent already shows (`"...: {source}"`) is not repeated.
pub fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        let _ = write!(line, "{text}");
    }
    line
}

/// Makes a write to a closed standard output (a reader like `head` that stopped)
/// end the process quietly with [`BROKEN_PIPE`] instead of a panic and a backtrace.
/// Rust ignores SIGPIPE, so `println!` panics with "failed printing to stdout"; this
/// hook recognises that panic on the main thread (where commands print) and exits;
/// every other panic, and any panic of a server task, is reported as usual.
pub fn exit_quietly_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        let main = std::thread::current().name() == Some("main");
        if main && (message.contains("Broken pipe") || message.contains("BrokenPipe")) {
            std::process::exit(BROKEN_PIPE);
        }
        default(info);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let e = anyhow::Error::new(ConfigError::Read {
            path: "/nope.toml".into(),
            source: io,
        });
        assert_eq!(
            one_line(&e),
            "cannot read config file /nope.toml: No such file"
        );
        assert_eq!(code_for(&e), CONFIG);
        let e = anyhow::anyhow!("disk full").context("cannot write blob");
        assert_eq!(one_line(&e), "cannot write blob: disk full");
        assert_eq!(code_for(&e), RUNTIME);
        let e: anyhow::Error = UsageError("say which".into()).into();
        assert_eq!(code_for(&e.context("while parsing")), USAGE);
    }
}
