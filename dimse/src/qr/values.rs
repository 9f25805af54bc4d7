//! The rules a query value must follow (PS3.5 6.2 value representations, PS3.4
//! C.2.2.2 matching), each failure said as the rule the value broke, short enough to
//! follow the value in a 64-character Error Comment: `month 13 does not exist`.
//! Shared by the gateway's C-FIND checks and the client's command-line checks; the
//! callers name the key and show the value.

/// A `YYYYMMDD` date (or the old `YYYY.MM.DD`), normalized to `YYYYMMDD`; the error
/// says which part is wrong.
pub fn date(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let digits: String = if s.len() == 10 && b[4] == b'.' && b[7] == b'.' {
        s.split('.').collect()
    } else {
        s.to_string()
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("a date is 8 digits YYYYMMDD".into());
    }
    if digits.len() != 8 {
        return Err(format!("{} digits, a date is 8 (YYYYMMDD)", digits.len()));
    }
    let number = |r: std::ops::Range<usize>| digits[r].parse::<u16>().unwrap_or(0);
    let (year, month, day) = (number(0..4), number(4..6), number(6..8));
    let Ok(m) = ::time::Month::try_from(u8::try_from(month).unwrap_or(0)) else {
        return Err(format!("month {month} does not exist"));
    };
    let last = ::time::util::days_in_month(m, i32::from(year));
    if day == 0 || day > u16::from(last) {
        return Err(format!("day {day} does not exist in {m} {year}"));
    }
    Ok(digits)
}

/// `HH[MM[SS[.F{1,6}]]]` (the colons of the old `HH:MM:SS` dropped), normalized; the
/// error says which part is wrong.
pub fn time(s: &str) -> Result<String, String> {
    let t: String = s.chars().filter(|c| *c != ':').collect();
    let (whole, frac) = match t.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (t.as_str(), None),
    };
    let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !matches!(whole.len(), 2 | 4 | 6) {
        return Err("a time is HH, HHMM or HHMMSS[.FFFFFF]".into());
    }
    if let Some(f) = frac {
        if whole.len() != 6 {
            return Err("a fraction needs all of HHMMSS before it".into());
        }
        if f.is_empty() || f.len() > 6 || !digits(f) {
            return Err("a fraction of a second is 1 to 6 digits".into());
        }
    }
    let part = |i: usize| whole.get(i..i + 2).map(|p| p.parse::<u8>().unwrap_or(99));
    if let Some(h) = part(0).filter(|h| *h > 23) {
        return Err(format!("hour {h} does not exist (00-23)"));
    }
    if let Some(m) = part(2).filter(|m| *m > 59) {
        return Err(format!("minute {m} does not exist (00-59)"));
    }
    if let Some(s) = part(4).filter(|s| *s > 60) {
        return Err(format!("second {s} does not exist (00-60)"));
    }
    Ok(t)
}

/// A UID (PS3.5 9.1): 1 to 64 digits and dots, no empty component, no leading zero.
pub fn uid(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("a UID cannot be empty".into());
    }
    if s.len() > 64 {
        return Err(format!("{} characters, a UID has at most 64", s.len()));
    }
    if let Some(c) = s.chars().find(|c| !c.is_ascii_digit() && *c != '.') {
        return Err(format!("{c:?} in a UID, which is digits and dots only"));
    }
    for component in s.split('.') {
        if component.is_empty() {
            return Err("an empty component (two dots, or a dot at an end)".into());
        }
        if component.len() > 1 && component.starts_with('0') {
            return Err(format!("component {component} has a leading zero"));
        }
    }
    Ok(())
}

/// A date range `FROM-TO`, `FROM-`, `-TO` or one date, each end checked by [`date`];
/// the ends normalized. The error says which end broke which rule.
pub fn date_range(s: &str) -> Result<(Option<String>, Option<String>), String> {
    let end = |part: &str, which: &str| -> Result<Option<String>, String> {
        let part = part.trim();
        if part.is_empty() {
            return Ok(None);
        }
        date(part).map(Some).map_err(|e| format!("{which}{e}"))
    };
    if s.trim().is_empty() {
        return Err("empty: give YYYYMMDD or a range FROM-TO".into());
    }
    let Some((a, b)) = s.split_once('-') else {
        return end(s, "").map(|d| (d.clone(), d));
    };
    if b.contains('-') {
        return Err("one range FROM-TO, with a single '-'".into());
    }
    let (from, to) = (end(a, "start: ")?, end(b, "end: ")?);
    match (&from, &to) {
        (None, None) => Err("a range needs at least one end".into()),
        (Some(f), Some(t)) if f > t => Err("the range ends before it starts".into()),
        _ => Ok((from, to)),
    }
}

/// A value of a Code String (CS) key such as Modality: at most 16 upper-case
/// letters, digits, spaces and underscores (`*` and `?` allowed as wildcards).
pub fn code_string(s: &str) -> Result<(), String> {
    if s.chars().count() > 16 {
        return Err(format!(
            "{} characters, a code has at most 16",
            s.chars().count()
        ));
    }
    match s
        .chars()
        .find(|c| !(c.is_ascii_uppercase() || c.is_ascii_digit() || " _*?".contains(*c)))
    {
        Some(c) if c.is_ascii_lowercase() => Err("codes are upper case (CT, MR, ...)".into()),
        Some(c) => Err(format!("{c:?} is not allowed in a code")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_say_which_part_is_wrong() {
        assert_eq!(date("20040229").unwrap(), "20040229");
        assert_eq!(date("2004.02.29").unwrap(), "20040229");
        assert_eq!(date("20041332").unwrap_err(), "month 13 does not exist");
        assert_eq!(date("20040001").unwrap_err(), "month 0 does not exist");
        assert_eq!(
            date("20230229").unwrap_err(),
            "day 29 does not exist in February 2023"
        );
        assert_eq!(
            date("20040431").unwrap_err(),
            "day 31 does not exist in April 2004"
        );
        assert_eq!(
            date("2004011").unwrap_err(),
            "7 digits, a date is 8 (YYYYMMDD)"
        );
        assert_eq!(
            date("2004-01-01").unwrap_err(),
            "a date is 8 digits YYYYMMDD"
        );
    }

    #[test]
    fn times_say_which_part_is_wrong() {
        assert_eq!(time("10:15:00").unwrap(), "101500");
        assert_eq!(time("2500").unwrap_err(), "hour 25 does not exist (00-23)");
        assert_eq!(
            time("1261").unwrap_err(),
            "minute 61 does not exist (00-59)"
        );
        assert_eq!(
            time("123").unwrap_err(),
            "a time is HH, HHMM or HHMMSS[.FFFFFF]"
        );
        assert_eq!(
            time("101500.1234567").unwrap_err(),
            "a fraction of a second is 1 to 6 digits"
        );
    }

    #[test]
    fn uids_and_ranges_and_codes() {
        assert!(uid("1.2.840.10008").is_ok());
        assert_eq!(
            uid("1.2.03").unwrap_err(),
            "component 03 has a leading zero"
        );
        assert_eq!(
            uid("1..2").unwrap_err(),
            "an empty component (two dots, or a dot at an end)"
        );
        assert_eq!(
            uid("1.2a").unwrap_err(),
            "'a' in a UID, which is digits and dots only"
        );
        assert_eq!(
            date_range("20040101-").unwrap(),
            (Some("20040101".into()), None)
        );
        assert_eq!(
            date_range("20041332-").unwrap_err(),
            "start: month 13 does not exist"
        );
        assert_eq!(
            date_range("20040201-20040101").unwrap_err(),
            "the range ends before it starts"
        );
        assert_eq!(
            date_range("-").unwrap_err(),
            "a range needs at least one end"
        );
        assert!(code_string("CT").is_ok());
        assert_eq!(
            code_string("ct").unwrap_err(),
            "codes are upper case (CT, MR, ...)"
        );
        assert_eq!(
            code_string("C-T").unwrap_err(),
            "'-' is not allowed in a code"
        );
    }

    /// Every message fits a 64-character Error Comment after a key name and value.
    #[test]
    fn messages_are_short() {
        for e in [
            date("20230229").unwrap_err(),
            date("20041233").unwrap_err(),
            date_range("20040101-20041233").unwrap_err(),
            time("101500.1234567").unwrap_err(),
        ] {
            let comment = format!("StudyDate 20041233: {e}");
            assert!(comment.len() <= 64, "{comment}");
        }
    }
}
