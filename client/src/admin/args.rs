//! The `pacs-client admin ...` command line: subcommands, and the value parsers
//! that turn dates, ranges and addresses into what the API takes (a bad value is a
//! usage error, exit code 2).

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};

/// `admin ...`
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Log in (password from a prompt, `--password-stdin` or PACS_PASSWORD); the
    /// token is kept in <data_dir>/admin-token (mode 0600) until it expires.
    Login {
        /// Gateway user name (asked for when not given).
        #[arg(long)]
        user: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Revoke the token at the gateway and delete it here.
    Logout,
    /// Who the stored token belongs to, and until when.
    Whoami,
    /// Change your own password: current and new from prompts, from two lines of
    /// standard input (`--password-stdin`), or from PACS_PASSWORD and PACS_NEW_PASSWORD.
    Password {
        /// Read the current, then the new password from standard input, one per line.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Users of the facility.
    Users(Scoped<UsersCommand>),
    /// DICOM destinations of the facility for C-MOVE.
    Devices(Scoped<DevicesCommand>),
    /// The facility's client certificates (DICOM TLS to the gateway).
    Certs(Scoped<CertsCommand>),
    /// Stored bytes, studies, series, instances by modality and month; the quota.
    Usage {
        /// Facility (operators only; default: your own).
        #[arg(long)]
        facility: Option<String>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The facility's audit trail, newest first.
    Audit(AuditArgs),
    /// Studies of the facility as the gateway stores them (pseudonymous values).
    Studies(Scoped<StudiesCommand>),
    /// Retention policies: the storage period per modality and per label (your
    /// facility's overrides; an operator's are the gateway's defaults).
    Retention(Scoped<RetentionCommand>),
}

/// What a storage period counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CountedFromArg {
    /// The study's first receipt at the gateway.
    Receipt,
    /// Its Study Date.
    StudyDate,
}

/// What happens when the storage period ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RetentionActionArg {
    /// Hidden when the notice period passes unanswered, purged after the grace period.
    HidePurge,
    /// The notice only.
    Notify,
}

/// `admin retention ...`
#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// The facility's policies.
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Set the policy of a scope (all studies, a modality, a label, or both).
    Set {
        /// Only studies with this modality.
        #[arg(long)]
        modality: Option<String>,
        /// Only studies with this label.
        #[arg(long)]
        label: Option<String>,
        /// Storage period in days.
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..=36_500))]
        days: i64,
        /// Counted from receipt or from the study date.
        #[arg(long, value_enum, default_value = "receipt")]
        from: CountedFromArg,
        /// Notice given this many days before the end.
        #[arg(long, default_value_t = 14)]
        notice_days: i64,
        /// Hidden this many days before the purge.
        #[arg(long, default_value_t = 30)]
        grace_days: i64,
        /// What happens at the end.
        #[arg(long, value_enum, default_value = "hide-purge")]
        action: RetentionActionArg,
    },
    /// Remove the policy of a scope.
    Remove {
        /// The policy's modality.
        #[arg(long)]
        modality: Option<String>,
        /// The policy's label.
        #[arg(long)]
        label: Option<String>,
    },
}

/// A command group with `--facility` (operators only; default: your own facility).
#[derive(Debug, Args)]
pub struct Scoped<T: Subcommand> {
    /// Facility (operators only; default: the one you logged in to).
    #[arg(long, global = true)]
    pub facility: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: T,
}

/// A role a facility admin can give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UserRole {
    /// Queries and retrieves.
    Clinician,
    /// Manages the facility.
    FacilityAdmin,
}

impl UserRole {
    /// As the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            UserRole::Clinician => "clinician",
            UserRole::FacilityAdmin => "facility-admin",
        }
    }
}

/// `admin users ...`
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// List the users.
    List,
    /// Add a user (password from a prompt, `--password-stdin` or PACS_NEW_PASSWORD).
    Add {
        /// User name.
        username: String,
        /// Role.
        #[arg(long, value_enum)]
        role: UserRole,
        /// Read the new user's password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable a user (no more logins or queries).
    Disable {
        /// User name.
        username: String,
    },
    /// Enable a user again (also lifts a lockout).
    Enable {
        /// User name.
        username: String,
    },
    /// Set a new password for a user (prompt, `--password-stdin` or PACS_NEW_PASSWORD).
    ResetPassword {
        /// User name.
        username: String,
        /// Read the new password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

/// `admin devices ...`
#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// List the C-MOVE destinations.
    List,
    /// Register a C-MOVE destination.
    Add {
        /// Its AE title.
        ae_title: String,
        /// HOST:PORT where it listens (`[v6addr]:PORT` for IPv6).
        #[arg(value_parser = parse_host_port)]
        address: (String, u16),
        /// It expects DICOM TLS.
        #[arg(long)]
        tls: bool,
    },
    /// Remove a C-MOVE destination.
    Remove {
        /// Its AE title.
        ae_title: String,
    },
}

/// `admin certs ...`
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// List the facility's client certificates.
    List,
    /// Issue a new client certificate: writes facility.crt, facility.key (0600) and
    /// ca.crt into DIR, refusing to overwrite any of them.
    Issue {
        /// Folder for the files.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Revoke a certificate (refused at its next TLS handshake).
    Revoke {
        /// Its id (from `admin certs list`).
        id: i64,
    },
}

/// `admin audit ...`
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Facility (operators only; default: your own).
    #[arg(long)]
    pub facility: Option<String>,
    /// From this day (YYYY-MM-DD, UTC) or time (RFC 3339).
    #[arg(long, value_parser = parse_time_bound)]
    pub since: Option<TimeBound>,
    /// Up to and including this day (YYYY-MM-DD, UTC), or before this time (RFC 3339).
    #[arg(long, value_parser = parse_time_bound)]
    pub until: Option<TimeBound>,
    /// Only this user's events.
    #[arg(long)]
    pub user: Option<String>,
    /// Only this kind (e.g. login, query, instances-deleted).
    #[arg(long)]
    pub kind: Option<String>,
    /// Only this outcome: success, failure (any failure), minor-failure,
    /// serious-failure, major-failure.
    #[arg(long, value_parser = ["success", "failure", "minor-failure", "serious-failure", "major-failure"])]
    pub outcome: Option<String>,
    /// At most this many events (fetched in pages).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub limit: u32,
    /// Events per request.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub page_size: u32,
    /// JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `admin studies ...`
#[derive(Debug, Subcommand)]
pub enum StudiesCommand {
    /// List studies (newest changes first as the gateway orders them).
    List {
        /// Patient ID pseudonym, as stored at the gateway.
        #[arg(long, value_name = "PSEUDONYM")]
        patient_id: Option<String>,
        /// A modality in the study (CT, MR, ...).
        #[arg(long)]
        modality: Option<String>,
        /// Study date YYYYMMDD or range FROM-TO (either end may be open).
        #[arg(long, value_parser = parse_date_range, allow_hyphen_values = true)]
        date: Option<DateRange>,
        /// At most this many studies (fetched in pages).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        limit: u32,
        /// Studies per request.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1000))]
        page_size: u32,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Put a label on a study (labels select retention policies), or take it off.
    /// A label is an opaque class name (`oncology`, `keep-10y`): never a person's name.
    Label {
        /// Original Study Instance UID (mapped to the gateway's with the facility key).
        study_uid: String,
        /// The label: letters, digits, '.', '_' or '-'.
        label: String,
        /// Take the label off instead.
        #[arg(long)]
        remove: bool,
    },
    /// Delete a study (soft delete at the gateway, audited); asks first on a terminal.
    Delete {
        /// Study Instance UID as stored at the gateway.
        study_uid: String,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
}

/// `HOST:PORT` or `[IPv6]:PORT`.
pub fn parse_host_port(value: &str) -> Result<(String, u16), String> {
    let bad = || format!("{value:?} is not HOST:PORT (e.g. 10.1.2.3:104 or [fd00::1]:104)");
    let (host, port) = value.rsplit_once(':').ok_or_else(bad)?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']').ok_or_else(bad)?,
        None if host.contains(':') => return Err(bad()),
        None => host,
    };
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// A `--since` / `--until` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeBound {
    /// A whole UTC day.
    Day(Date),
    /// An instant.
    At(OffsetDateTime),
}

impl TimeBound {
    /// As a lower bound: the day's first instant.
    pub fn start(self) -> String {
        match self {
            TimeBound::Day(day) => rfc3339(day.midnight().assume_utc()),
            TimeBound::At(at) => rfc3339(at),
        }
    }

    /// As an upper bound: the next day's first instant (the day is included).
    pub fn end(self) -> String {
        match self {
            TimeBound::Day(day) => match day.next_day() {
                Some(next) => rfc3339(next.midnight().assume_utc()),
                None => rfc3339(day.midnight().assume_utc()),
            },
            TimeBound::At(at) => rfc3339(at),
        }
    }
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// `YYYY-MM-DD` or an RFC 3339 time.
pub fn parse_time_bound(value: &str) -> Result<TimeBound, String> {
    let day = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(date) = Date::parse(value, &day) {
        return Ok(TimeBound::Day(date));
    }
    OffsetDateTime::parse(value, &Rfc3339)
        .map(TimeBound::At)
        .map_err(|_| format!("{value:?} is neither a day (2026-11-01) nor an RFC 3339 time"))
}

/// A study date range; either end may be open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateRange {
    /// First day, YYYYMMDD.
    pub from: Option<String>,
    /// Last day, YYYYMMDD.
    pub to: Option<String>,
}

/// `YYYYMMDD`, `FROM-TO`, `FROM-` or `-TO`.
pub fn parse_date_range(value: &str) -> Result<DateRange, String> {
    let format = time::macros::format_description!("[year][month][day]");
    let day = |s: &str| -> Result<Option<String>, String> {
        if s.is_empty() {
            return Ok(None);
        }
        if s.len() != 8 || Date::parse(s, &format).is_err() {
            return Err(format!("{s:?} is not a date YYYYMMDD"));
        }
        Ok(Some(s.to_string()))
    };
    let range = match value.split_once('-') {
        None => {
            let d = day(value)?;
            DateRange {
                from: d.clone(),
                to: d,
            }
        }
        Some((from, to)) => DateRange {
            from: day(from)?,
            to: day(to)?,
        },
    };
    if range.from.is_none() && range.to.is_none() {
        return Err("give a date YYYYMMDD or a range FROM-TO".into());
    }
    if let (Some(from), Some(to)) = (&range.from, &range.to)
        && from > to
    {
        return Err(format!("the range {value:?} ends before it starts"));
    }
    Ok(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_dates_and_ranges() {
        assert_eq!(
            parse_host_port("[fd00::1]:11112").unwrap(),
            ("fd00::1".into(), 11112)
        );
        assert_eq!(
            parse_host_port("viewer.local:104").unwrap(),
            ("viewer.local".into(), 104)
        );
        assert!(parse_host_port("fd00::1:104").is_err());
        assert!(parse_host_port("host:0").is_err());
        assert!(parse_host_port(":104").is_err());

        let day = parse_time_bound("2026-11-01").unwrap();
        assert_eq!(day.start(), "2026-11-01T00:00:00Z");
        assert_eq!(day.end(), "2026-11-02T00:00:00Z");
        let at = parse_time_bound("2026-11-01T12:30:00+02:00").unwrap();
        assert_eq!(at.start(), "2026-11-01T10:30:00Z");

        assert_eq!(
            parse_date_range("20240101-20240315").unwrap(),
            DateRange {
                from: Some("20240101".into()),
                to: Some("20240315".into())
            }
        );
        assert_eq!(parse_date_range("20240101-").unwrap().to, None);
        assert_eq!(parse_date_range("-20240101").unwrap().from, None);
        assert_eq!(
            parse_date_range("20240315").unwrap().to.as_deref(),
            Some("20240315")
        );
        assert!(parse_date_range("20240315-20240101").is_err());
        assert!(parse_date_range("-").is_err());
        assert!(parse_date_range("2024031").is_err());
    }
}
