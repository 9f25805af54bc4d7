//! The command-line values of `query`, checked before anything is sent: each refusal
//! names the option, shows the value (never a patient's name or ID) and says the
//! rule it broke (`--date 20041332: month 13 does not exist`). The rules are the
//! gateway's own ([`dimse::qr::values`]), so what passes here is not refused there.

use anyhow::bail;
use dimse::qr::values;

use super::StudyFilter;

/// Most characters of a Patient ID (LO).
const MAX_PATIENT_ID: usize = 64;
/// Most characters of an Accession Number (SH).
const MAX_ACCESSION: usize = 16;

/// Checks every value of `filter`.
pub(super) fn check(filter: &StudyFilter) -> anyhow::Result<()> {
    if let Some(date) = &filter.date {
        check_date(date)?;
    }
    if let Some(modality) = &filter.modality
        && let Err(why) = values::code_string(&modality.to_ascii_uppercase())
    {
        bail!("--modality {}: {why}", shown(modality));
    }
    if let Some(uid) = &filter.study_uid {
        check_study(uid)?;
    }
    if let Some(id) = &filter.patient_id {
        check_text("--patient-id", id, MAX_PATIENT_ID, "a Patient ID")?;
    }
    if let Some(accession) = &filter.accession {
        check_text(
            "--accession",
            accession,
            MAX_ACCESSION,
            "an accession number",
        )?;
    }
    Ok(())
}

/// `YYYYMMDD`, `FROM-TO`, `FROM-` or `-TO`, naming real days.
pub(super) fn check_date(value: &str) -> anyhow::Result<()> {
    if value.contains('.') {
        bail!("--date {}: use YYYYMMDD, without dots", shown(value));
    }
    if let Err(why) = values::date_range(value) {
        bail!("--date {}: {why}", shown(value));
    }
    Ok(())
}

/// A Study Instance UID as given (the original or the gateway's). Originals may break
/// the rule against leading zeros, which the client tolerates everywhere, so only
/// the characters and the length are checked.
fn check_study(uid: &str) -> anyhow::Result<()> {
    let tolerated =
        !uid.is_empty() && uid.len() <= 64 && uid.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    match values::uid(uid) {
        Err(why) if !tolerated => bail!("--study {}: {why}", shown(uid)),
        _ => Ok(()),
    }
}

/// A text value: at most `max` characters, no backslash (which would make it a list)
/// and no control characters. The value itself is not shown.
fn check_text(option: &str, value: &str, max: usize, what: &str) -> anyhow::Result<()> {
    let count = value.chars().count();
    if count > max {
        bail!("{option}: {count} characters, {what} has at most {max}");
    }
    if value.contains('\\') {
        bail!("{option}: a backslash separates values; search for one value at a time");
    }
    if value.chars().any(char::is_control) {
        bail!("{option}: control characters (tab, newline ...) are not allowed");
    }
    Ok(())
}

/// At most 24 printable characters of a value, for messages.
fn shown(value: &str) -> String {
    value.chars().filter(|c| !c.is_control()).take(24).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter() -> StudyFilter {
        StudyFilter::default()
    }

    fn said(f: StudyFilter) -> String {
        check(&f).unwrap_err().to_string()
    }

    #[test]
    fn bad_values_name_the_option_the_value_and_the_rule() {
        let date = |d: &str| StudyFilter {
            date: Some(d.into()),
            ..filter()
        };
        assert_eq!(
            said(date("20041332")),
            "--date 20041332: month 13 does not exist"
        );
        assert_eq!(
            said(date("20230229-")),
            "--date 20230229-: start: day 29 does not exist in February 2023"
        );
        assert_eq!(
            said(date("20240301-20240101")),
            "--date 20240301-20240101: the range ends before it starts"
        );
        assert_eq!(
            said(date("2024.01.01")),
            "--date 2024.01.01: use YYYYMMDD, without dots"
        );
        let modality = StudyFilter {
            modality: Some("C-T".into()),
            ..filter()
        };
        assert_eq!(
            said(modality),
            "--modality C-T: '-' is not allowed in a code"
        );
        let study = StudyFilter {
            study_uid: Some("1.2.x".into()),
            ..filter()
        };
        assert_eq!(
            said(study),
            "--study 1.2.x: 'x' in a UID, which is digits and dots only"
        );
        let accession = StudyFilter {
            accession: Some("A".repeat(17)),
            ..filter()
        };
        assert_eq!(
            said(accession),
            "--accession: 17 characters, an accession number has at most 16"
        );
    }

    #[test]
    fn good_and_tolerated_values_pass() {
        let ok = StudyFilter {
            date: Some("20240101-".into()),
            modality: Some("ct".into()),
            study_uid: Some("1.2.040.5".into()),
            patient_id: Some("PAT-1".into()),
            accession: Some("ACC1".into()),
            ..filter()
        };
        check(&ok).unwrap();
    }
}
