//! `pacs-gateway facility quota | certs | revoke-cert`: a facility's storage quota and
//! its client certificates. Changes are recorded in the audit trail (`admin-change`,
//! protocol `cli`).

use anyhow::{Context, bail};

use super::lookup;
use crate::audit::{AuditEvent, EventKind, Outcome, Protocol};
use crate::config::Config;
use crate::db::quota::Quota;
use crate::db::{Facility, Index};

const UNITS: [(&str, u64); 5] = [
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("B", 1),
];

/// Parses `500GiB`, `1.5 TiB`, `4096` (bytes) or `4096B`.
pub fn parse_size(text: &str) -> anyhow::Result<i64> {
    let bad = || {
        anyhow::anyhow!(
            "invalid size {text:?}: use a number of bytes or a number with KiB, MiB, GiB or TiB, e.g. 500GiB"
        )
    };
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit = unit.trim();
    let multiplier = if unit.is_empty() {
        1
    } else {
        UNITS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(unit))
            .map(|(_, m)| *m)
            .ok_or_else(bad)?
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || fraction.len() > 6 || fraction.contains('.') {
        return Err(bad());
    }
    let whole: u128 = whole.parse().map_err(|_| bad())?;
    let fraction_value: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().map_err(|_| bad())?
    };
    let scale = 10u128.pow(fraction.len() as u32);
    let bytes = whole
        .checked_mul(u128::from(multiplier))
        .and_then(|b| b.checked_add(fraction_value * u128::from(multiplier) / scale))
        .ok_or_else(bad)?;
    i64::try_from(bytes).map_err(|_| bad())
}

/// `1.50 GiB`, or `512 B`.
pub fn format_size(bytes: i64) -> String {
    let b = bytes.max(0) as u64;
    for (name, m) in UNITS {
        if b >= m && m > 1 {
            return format!("{:.2} {name}", b as f64 / m as f64);
        }
    }
    format!("{b} B")
}

/// The operator, as far as the machine knows (for the audit trail).
fn operator() -> Option<String> {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
}

/// Records an `admin-change` event and waits until it is stored.
async fn record_change(
    config: &Config,
    index: &Index,
    facility: &Facility,
    detail: String,
) -> anyhow::Result<()> {
    let trail = crate::app::start_audit(config, index)?;
    let mut event = AuditEvent::new(EventKind::AdminChange, Outcome::Success, Protocol::Cli)
        .facility(facility.id)
        .detail(detail)
        .count(1);
    if let Some(user) = operator() {
        event = event.user(user);
    }
    trail.record(event).await;
    trail.shutdown(std::time::Duration::from_secs(5)).await;
    Ok(())
}

fn print_quota(facility: &Facility, quota: &Quota) {
    let used = format!(
        "{} ({} bytes)",
        format_size(quota.stored_bytes),
        quota.stored_bytes
    );
    match quota.quota_bytes {
        None => println!("facility {}: quota unlimited; used {used}", facility.name),
        Some(limit) => println!(
            "facility {}: quota {} ({limit} bytes); used {used}, {}%; warning at {}%",
            facility.name,
            format_size(limit),
            quota.percent_used().unwrap_or(0),
            quota.warn_percent
        ),
    }
}

/// `facility quota NAME [--set SIZE | --unlimited] [--warn-percent N]`.
pub(super) async fn quota(
    config: &Config,
    index: &Index,
    name: &str,
    set: Option<String>,
    unlimited: bool,
    warn_percent: Option<u8>,
) -> anyhow::Result<()> {
    let facility = lookup(index, name).await?;
    let limit = set.as_deref().map(parse_size).transpose()?;
    let mut changes = Vec::new();
    if let Some(bytes) = limit {
        index.set_quota(facility.id, Some(bytes)).await?;
        changes.push(format!("quota set to {bytes} bytes"));
    } else if unlimited {
        index.set_quota(facility.id, None).await?;
        changes.push("quota removed (unlimited)".to_string());
    }
    if let Some(percent) = warn_percent {
        index
            .set_quota_warn_percent(facility.id, i64::from(percent))
            .await?;
        changes.push(format!("quota warning at {percent}%"));
    }
    if !changes.is_empty() {
        record_change(config, index, &facility, changes.join("; ")).await?;
    }
    let quota = index
        .quota(facility.id)
        .await?
        .context("the facility disappeared meanwhile")?;
    print_quota(&facility, &quota);
    Ok(())
}

fn time_text(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// `facility certs NAME`.
pub(super) async fn certs(index: &Index, name: &str) -> anyhow::Result<()> {
    let facility = lookup(index, name).await?;
    println!(
        "{:<71} {:<24} {:<24} revoked",
        "fingerprint", "subject", "created"
    );
    for c in index.certificates(facility.id).await? {
        println!(
            "sha256:{:<64} {:<24} {:<24} {}",
            c.fingerprint,
            c.subject,
            time_text(c.created_at),
            c.revoked_at.map_or_else(|| "-".to_string(), time_text)
        );
    }
    Ok(())
}

/// Lowercase hex SHA-256 from `sha256:AB:CD...`, `abcd...` and similar spellings.
pub fn normalize_fingerprint(text: &str) -> anyhow::Result<String> {
    let trimmed = text.trim();
    let hex_part = trimmed
        .strip_prefix("sha256:")
        .or_else(|| trimmed.strip_prefix("SHA256:"))
        .unwrap_or(trimmed);
    let hex: String = hex_part
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!(
            "invalid fingerprint {text:?}: expected 64 hex digits (as `pacs-gateway facility certs NAME` shows them)"
        );
    }
    Ok(hex)
}

/// `facility revoke-cert NAME FINGERPRINT`.
pub(super) async fn revoke_cert(
    config: &Config,
    index: &Index,
    name: &str,
    fingerprint: &str,
) -> anyhow::Result<()> {
    let facility = lookup(index, name).await?;
    let fingerprint = normalize_fingerprint(fingerprint)?;
    if !index
        .revoke_certificate_by_fingerprint(facility.id, &fingerprint)
        .await?
    {
        let known = index.certificates(facility.id).await?;
        let already = known
            .iter()
            .any(|c| c.fingerprint == fingerprint && c.revoked_at.is_some());
        if already {
            bail!(
                "certificate sha256:{fingerprint} of facility {} is already revoked",
                facility.name
            );
        }
        bail!(
            "facility {} has no certificate sha256:{fingerprint}; list them with `pacs-gateway facility certs {}`",
            facility.name,
            facility.name
        );
    }
    record_change(
        config,
        index,
        &facility,
        format!("client certificate sha256:{fingerprint} revoked"),
    )
    .await?;
    println!(
        "certificate sha256:{fingerprint} of facility {} revoked; new associations presenting it are refused",
        facility.name
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("500GiB").unwrap(), 500 << 30);
        assert_eq!(parse_size("1.5 TiB").unwrap(), 3 << 39);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("10kib").unwrap(), 10240);
        assert_eq!(parse_size("7B").unwrap(), 7);
        for bad in [
            "",
            "GiB",
            "5 GB",
            "1.2.3MiB",
            "-5",
            "9999999999TiB",
            "1.1234567KiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} must be refused");
        }
        assert_eq!(format_size(3 << 29), "1.50 GiB");
        assert_eq!(format_size(512), "512 B");
    }

    #[test]
    fn fingerprints_are_normalized() {
        let hex = "ab".repeat(32);
        assert_eq!(
            normalize_fingerprint(&format!("sha256:{}", hex.to_uppercase())).unwrap(),
            hex
        );
        let colons: Vec<&str> = std::iter::repeat_n("ab", 32).collect();
        assert_eq!(normalize_fingerprint(&colons.join(":")).unwrap(), hex);
        assert!(normalize_fingerprint("abc").is_err());
    }
}
