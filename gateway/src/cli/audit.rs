//! `pacs-gateway audit list`: the audit trail, newest first, as a table or JSON lines.

use anyhow::bail;
use clap::Subcommand;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::lookup;
use crate::audit::{AuditFilter, EventKind, Outcome, rfc3339, search};
use crate::config::Config;

/// `audit ...`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit events, newest first.
    List {
        /// Only this facility's events.
        #[arg(long)]
        facility: Option<String>,
        /// Only events since: an RFC 3339 time (2026-01-31T08:00:00Z), a date
        /// (2026-01-31, UTC) or a duration back from now (30m, 24h, 7d).
        #[arg(long)]
        since: Option<String>,
        /// Only this kind: instances-transferred, query, begin-transferring, login,
        /// logout, authentication-failure, instances-deleted, security-alert,
        /// admin-change.
        #[arg(long)]
        kind: Option<String>,
        /// Only this outcome: success, failure (any failure), minor-failure,
        /// serious-failure, major-failure.
        #[arg(long, value_parser = ["success", "failure", "minor-failure", "serious-failure", "major-failure"])]
        outcome: Option<String>,
        /// Only this user's events.
        #[arg(long)]
        user: Option<String>,
        /// At most this many events (1 to 1000).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Only events older than this event id (the next page).
        #[arg(long)]
        before_id: Option<i64>,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Parses `--since`: RFC 3339, a date, or a duration back from `now_ms`.
pub fn parse_since(text: &str, now_ms: i64) -> anyhow::Result<i64> {
    let text = text.trim();
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(date) = time::Date::parse(text, &date_format) {
        let t = date.midnight().assume_utc();
        return Ok((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let unit = text.chars().last().unwrap_or(' ');
    let factor: i64 = match unit {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        _ => 0,
    };
    if let Ok(n) = text[..text.len().saturating_sub(1)].parse::<i64>()
        && factor > 0
        && n >= 0
    {
        return Ok(now_ms.saturating_sub(n.saturating_mul(factor)));
    }
    bail!(
        "invalid --since {text:?}: use an RFC 3339 time (2026-01-31T08:00:00Z), a date (2026-01-31) or a duration (30m, 24h, 7d)"
    )
}

/// Runs an `audit` command.
pub(super) async fn run(config: Config, cmd: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::List {
        facility,
        since,
        kind,
        outcome,
        user,
        limit,
        before_id,
        json,
    } = cmd;
    let kind = match kind {
        Some(k) => Some(EventKind::parse(&k).ok_or_else(|| {
            let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
            crate::exit::UsageError(format!(
                "unknown --kind {k:?}; one of: {}",
                names.join(", ")
            ))
        })?),
        None => None,
    };
    let failures = outcome.as_deref() == Some("failure");
    let outcome = match outcome.filter(|_| !failures) {
        Some(o) => Some(Outcome::parse(&o).ok_or_else(|| {
            crate::exit::UsageError(format!(
                "unknown --outcome {o:?}; one of: success, failure, minor-failure, serious-failure, major-failure"
            ))
        })?),
        None => None,
    };
    let from = since
        .map(|s| {
            parse_since(&s, crate::db::now_millis())
                .map_err(|e| crate::exit::UsageError(format!("--since: {e}")))
        })
        .transpose()?;
    let index = crate::app::open_index(&config).await?;
    let facility = match facility {
        Some(name) => Some(lookup(&index, &name).await?),
        None => None,
    };
    let filter = AuditFilter {
        facility_id: facility.as_ref().map(|f| f.id),
        from,
        username: user,
        kind,
        outcome,
        failures,
        limit: Some(limit),
        before_id,
        ..AuditFilter::default()
    };
    let events = search(&index, &filter).await?;
    let names: std::collections::HashMap<i64, String> = index
        .facilities()
        .await?
        .into_iter()
        .map(|f| (f.id.0, f.name.to_string()))
        .collect();
    index.close().await;
    for e in &events {
        let facility_name = e.event.facility_id.and_then(|f| names.get(&f.0));
        if json {
            let mut value = e.to_json();
            value["facility"] = serde_json::json!(facility_name);
            println!("{value}");
        }
    }
    if json {
        return Ok(());
    }
    println!(
        "{:<8} {:<24} {:<22} {:<15} {:<16} {:<16} {:<15} {:>6} detail",
        "id", "time", "kind", "outcome", "facility", "user", "peer", "count"
    );
    for e in &events {
        let ev = &e.event;
        println!(
            "{:<8} {:<24} {:<22} {:<15} {:<16} {:<16} {:<15} {:>6} {}",
            e.id,
            rfc3339(e.occurred_at),
            ev.kind.as_str(),
            ev.outcome.as_str(),
            ev.facility_id
                .and_then(|f| names.get(&f.0).cloned())
                .unwrap_or_else(|| "-".into()),
            ev.username.as_deref().unwrap_or("-"),
            ev.peer.as_deref().unwrap_or("-"),
            ev.object_count,
            ev.detail
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_times_dates_and_durations() {
        let now = 1_700_000_000_000;
        assert_eq!(parse_since("24h", now).unwrap(), now - 86_400_000);
        assert_eq!(parse_since("30m", now).unwrap(), now - 1_800_000);
        assert_eq!(parse_since("2023-11-14", now).unwrap(), 1_699_920_000_000);
        assert_eq!(
            parse_since("2023-11-14T22:13:20Z", now).unwrap(),
            1_700_000_000_000
        );
        for bad in ["", "yesterday", "5x", "-3h", "2023-13-01"] {
            assert!(parse_since(bad, now).is_err(), "{bad:?} must be refused");
        }
    }
}
