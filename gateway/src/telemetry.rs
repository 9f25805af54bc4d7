//! Logging setup for the `pacs-gateway` binary: `RUST_LOG` wins, otherwise `info`
//! (`-v` debug, `-vv` trace). `--log-format text` (default) writes compact lines,
//! coloured only when standard error is a terminal and `NO_COLOR` is not set;
//! `--log-format json` writes one JSON object per line (for journald, Loki, ELK).
//! Patient data never goes into a span or event: what reaches the gateway is
//! pseudonymous, and even that is logged only as UIDs.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The version as `--version`, `/healthz` and the start banner show it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit the binary was built from (`unknown` outside a checkout).
pub const COMMIT: &str = match option_env!("PACS_GIT_COMMIT") {
    Some(commit) => commit,
    None => "unknown",
};

/// `VERSION (commit COMMIT)`, for `--version`.
pub fn long_version() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| format!("{VERSION} (commit {COMMIT})"))
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Compact human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Whether log lines get ANSI colours: only on a terminal, never with `NO_COLOR`.
pub fn use_colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Installs the global subscriber (standard error).
pub fn init(verbose: u8, format: LogFormat) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(use_colour(
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR").as_deref(),
            ))
            .compact()
            .try_init(),
        LogFormat::Json => builder
            .with_ansi(false)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// A database URL fit for a log line: the password (if any) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let mut redacted = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None => userinfo.to_string(),
            };
            format!("{scheme}://{user}@{host}{tail}")
        }
        None => url.to_string(),
    };
    // A password may also come as a query parameter (libpq style).
    if let Some((base, query)) = redacted.clone().split_once('?') {
        let params: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => p.to_string(),
            })
            .collect();
        redacted = format!("{base}?{}", params.join("&"));
    }
    redacted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(!use_colour(false, None));
        assert!(!use_colour(true, Some("1".as_ref())));
        assert!(
            use_colour(true, Some("".as_ref())),
            "NO_COLOR=\"\" is unset"
        );
    }

    #[test]
    fn passwords_never_reach_the_banner() {
        assert_eq!(
            redact_url("postgres://pacs:s3cret@db.example:5432/pacs"),
            "postgres://pacs:***@db.example:5432/pacs"
        );
        assert_eq!(
            redact_url("postgres://db/pacs?user=x&password=s3cret"),
            "postgres://db/pacs?user=x&password=***"
        );
        assert_eq!(
            redact_url("postgres://pacs@db/pacs"),
            "postgres://pacs@db/pacs"
        );
        assert_eq!(
            redact_url("sqlite://./pacs-data/index.db?mode=rwc"),
            "sqlite://./pacs-data/index.db?mode=rwc"
        );
        assert!(!redact_url("postgres://u:p%40ss@h/d").contains("p%40ss"));
    }
}
