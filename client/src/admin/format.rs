//! How `pacs-client admin` prints: aligned tables, human sizes, short times, the
//! usage report. Pure functions over the API's types; nothing here does I/O.

use time::format_description::well_known::Rfc3339;

use super::api::Usage;

/// `bytes` in binary units with one decimal: `512 B`, `1.5 KiB`, `2.0 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    // 1023.96 KiB would print as "1024.0 KiB": move up instead.
    if format!("{value:.1}") == "1024.0" && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `n` with thousands separators: `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An RFC 3339 time from the API as `2026-11-21 10:00:00Z` (seconds, UTC); anything
/// that does not parse is shown as given.
pub fn short_time(value: &str) -> String {
    let Ok(at) = time::OffsetDateTime::parse(value, &Rfc3339) else {
        return value.to_string();
    };
    let at = at.to_offset(time::UtcOffset::UTC);
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    at.format(&format).unwrap_or_else(|_| value.to_string())
}

/// An optional time, `-` when absent.
pub fn maybe_time(value: Option<&str>) -> String {
    value.map_or_else(|| "-".to_string(), short_time)
}

/// Columns padded to their widest cell (in characters); the last column is not
/// padded. Numbers are the caller's business (pre-formatted strings).
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            out.push_str(cell);
            if i + 1 < widths.len() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut out = line(&mut headers.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// Share of the quota used, e.g. `42.5%`; `None` without a quota.
pub fn percent_used(stored: u64, quota: Option<u64>) -> Option<f64> {
    match quota {
        None => None,
        Some(0) => Some(if stored == 0 { 0.0 } else { 100.0 }),
        Some(q) => Some(stored as f64 * 100.0 / q as f64),
    }
}

/// The `admin usage` report.
pub fn usage_report(facility: &str, usage: &Usage) -> String {
    let mut out = format!("facility     {facility}\n");
    out.push_str(&format!(
        "stored       {} in {} studies, {} series, {} instances\n",
        human_bytes(usage.stored_bytes),
        thousands(usage.studies),
        thousands(usage.series),
        thousands(usage.instances)
    ));
    out.push_str(&format!(
        "last ingest  {}\n",
        maybe_time(usage.last_ingest_at.as_deref())
    ));
    match percent_used(usage.stored_bytes, usage.quota_bytes) {
        None => out.push_str("quota        none\n"),
        Some(pct) => {
            let quota = usage.quota_bytes.unwrap_or_default();
            let flag = if pct >= 100.0 {
                "  QUOTA EXCEEDED: new instances are refused"
            } else if pct >= f64::from(usage.quota_warn_percent) {
                "  WARNING: above the warning threshold"
            } else {
                ""
            };
            out.push_str(&format!(
                "quota        {} ({pct:.1}% used, warning at {}%){flag}\n",
                human_bytes(quota),
                usage.quota_warn_percent
            ));
        }
    }
    out.push_str("\nby modality\n");
    let rows: Vec<Vec<String>> = usage
        .by_modality
        .iter()
        .map(|m| {
            vec![
                m.modality.clone().unwrap_or_else(|| "-".into()),
                thousands(m.studies),
                thousands(m.instances),
                human_bytes(m.bytes),
            ]
        })
        .collect();
    out.push_str(&table(&["modality", "studies", "instances", "size"], &rows));
    out.push_str("\nby month\n");
    let rows: Vec<Vec<String>> = usage
        .by_month
        .iter()
        .map(|m| {
            vec![
                m.month.clone(),
                thousands(m.instances),
                human_bytes(m.bytes),
            ]
        })
        .collect();
    out.push_str(&table(&["month", "instances", "size"], &rows));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::api::{ModalityUsage, MonthUsage};

    #[test]
    fn sizes_read_like_a_person_writes_them() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.0 KiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(1024 * 1024 - 1), "1.0 MiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
        assert_eq!(human_bytes(u64::MAX), "16.0 EiB");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn tables_align_and_times_shorten() {
        let t = table(
            &["a", "long header", "c"],
            &[vec!["xyz".into(), "1".into(), "last".into()]],
        );
        assert_eq!(t, "a    long header  c\nxyz  1            last\n");
        assert_eq!(
            short_time("2026-11-21T10:00:00.123Z"),
            "2026-11-21 10:00:00Z"
        );
        assert_eq!(
            short_time("2026-11-21T11:00:00+01:00"),
            "2026-11-21 10:00:00Z"
        );
        assert_eq!(short_time("not a time"), "not a time");
        assert_eq!(maybe_time(None), "-");
    }

    #[test]
    fn usage_report_shows_quota_share_and_breakdowns() {
        let usage = Usage {
            stored_bytes: 900 * 1024 * 1024,
            studies: 3,
            series: 4,
            instances: 1500,
            last_ingest_at: Some("2026-11-20T08:30:00Z".into()),
            quota_bytes: Some(1024 * 1024 * 1024),
            quota_warn_percent: 80,
            by_modality: vec![ModalityUsage {
                modality: Some("CT".into()),
                studies: 3,
                instances: 1500,
                bytes: 900 * 1024 * 1024,
            }],
            by_month: vec![MonthUsage {
                month: "2026-11".into(),
                instances: 1500,
                bytes: 900 * 1024 * 1024,
            }],
        };
        let report = usage_report("st-mary", &usage);
        assert!(
            report.contains("stored       900.0 MiB in 3 studies, 4 series, 1,500 instances"),
            "{report}"
        );
        assert!(
            report.contains("quota        1.0 GiB (87.9% used, warning at 80%)  WARNING"),
            "{report}"
        );
        assert!(
            report.contains("CT        3        1,500      900.0 MiB"),
            "{report}"
        );
        assert!(report.contains("2026-11  1,500      900.0 MiB"), "{report}");
        assert!(
            report.contains("last ingest  2026-11-20 08:30:00Z"),
            "{report}"
        );
        let none = Usage {
            quota_bytes: None,
            ..usage
        };
        assert!(usage_report("x", &none).contains("quota        none"));
        assert_eq!(percent_used(5, Some(0)), Some(100.0));
    }
}
