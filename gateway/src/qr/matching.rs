//! Matching values (PS3.4 C.2.2.2): single values, wildcards, UID lists, DA/TM ranges
//! and integers, each checked and normalized before it can reach SQL.

use std::fmt;

use dicom_core::Tag;

use super::QueryError;
use super::keys::{Attr, BLIND_INDEX, Kind};
use crate::domain::Uid;

/// Most values in one multi-valued text key (`CT\MR\...`).
const MAX_VALUES: usize = 64;
/// Most UIDs in one UID list.
pub(crate) const MAX_UIDS: usize = 1000;
/// Longest single text value or pattern, in characters (LO allows 64, PN 5 x 64).
const MAX_CHARS: usize = 324;

/// A non-universal match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Matcher {
    /// Any of these single values or wildcard patterns.
    Values(Vec<Pattern>),
    /// Inclusive range; at least one end is set. For TM, `to` is already padded to
    /// the end of its precision (`1015` -> `101559.999999`).
    Range {
        /// Lower end.
        from: Option<String>,
        /// Upper end.
        to: Option<String>,
    },
    /// One integer.
    Int(i64),
}

/// One value of a [`Matcher::Values`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pattern {
    /// Single value matching.
    Exact(String),
    /// DICOM wildcard pattern (`*`, `?`), consecutive `*` collapsed.
    Wildcard(String),
}

impl Matcher {
    /// Single values only (no wildcard, no range).
    pub(crate) fn is_plain(&self) -> bool {
        match self {
            Matcher::Values(values) => values.iter().all(|p| matches!(p, Pattern::Exact(_))),
            Matcher::Int(_) => true,
            Matcher::Range { .. } => false,
        }
    }
}

/// A value without its padding (spaces, NULs).
pub(crate) fn trim(s: &str) -> &str {
    s.trim_matches([' ', '\0'])
}

/// "StudyDate (0008,0020)": how errors name a key.
pub(crate) fn name(tag: Tag) -> String {
    use dicom_core::dictionary::DataDictionary;
    if tag == BLIND_INDEX.tag {
        return format!("the name blind index {tag}");
    }
    if tag == super::keys::NAME_TOKEN.tag {
        return format!("the name search tokens {tag}");
    }
    match dicom_dictionary_std::StandardDataDictionary.by_tag(tag) {
        Some(entry) => format!("{} {tag}", entry.alias),
        None => tag.to_string(),
    }
}

fn invalid(tag: Tag, why: impl fmt::Display) -> QueryError {
    QueryError::Invalid(format!("{}: {why}", name(tag)))
}

/// The matcher for a value, `None` for universal matching.
pub(crate) fn matcher(attr: &Attr, tag: Tag, text: &str) -> Result<Option<Matcher>, QueryError> {
    match attr.kind {
        Kind::Name | Kind::Text | Kind::Modalities | Kind::NameToken => text_values(tag, text),
        Kind::Uid => uid_list(tag, text),
        Kind::Date => range(tag, text, date, |d| d.to_string()),
        Kind::Time => range(tag, text, time, |t| time_upper(&t)),
        Kind::Int => integer(tag, text),
        Kind::Count | Kind::Sealed => Ok(None),
    }
}

fn values(tag: Tag, text: &str, max: usize) -> Result<Vec<&str>, QueryError> {
    let parts: Vec<&str> = text
        .split('\\')
        .map(trim)
        .filter(|s| !s.is_empty())
        .collect();
    if parts.len() > max {
        return Err(invalid(tag, format!("more than {max} values")));
    }
    if parts.iter().any(|p| p.chars().count() > MAX_CHARS) {
        return Err(invalid(
            tag,
            format!("a value longer than {MAX_CHARS} characters"),
        ));
    }
    Ok(parts)
}

/// Single values and wildcards, any of which may match; a value of only `*` (or no
/// value) is universal.
fn text_values(tag: Tag, text: &str) -> Result<Option<Matcher>, QueryError> {
    let parts = values(tag, text, MAX_VALUES)?;
    if parts.is_empty() || parts.iter().any(|p| p.chars().all(|c| c == '*')) {
        return Ok(None);
    }
    let pattern = |p: &str| {
        if p.contains(['*', '?']) {
            Pattern::Wildcard(collapse_stars(p))
        } else {
            Pattern::Exact(p.to_string())
        }
    };
    Ok(Some(Matcher::Values(
        parts.into_iter().map(pattern).collect(),
    )))
}

fn collapse_stars(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for c in p.chars() {
        if !(c == '*' && out.ends_with('*')) {
            out.push(c);
        }
    }
    out
}

/// A UID or UID list; `*` alone is taken as universal.
fn uid_list(tag: Tag, text: &str) -> Result<Option<Matcher>, QueryError> {
    let parts = values(tag, text, MAX_UIDS)?;
    if parts.is_empty() || parts == ["*"] {
        return Ok(None);
    }
    let uids = parts
        .into_iter()
        .map(|p| Uid::parse(p).map(|u| Pattern::Exact(u.as_str().to_string())))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(tag, e))?;
    Ok(Some(Matcher::Values(uids)))
}

fn integer(tag: Tag, text: &str) -> Result<Option<Matcher>, QueryError> {
    let text = trim(text);
    if text.is_empty() || text == "*" {
        return Ok(None);
    }
    let n = text
        .trim_start_matches('+')
        .parse::<i64>()
        .map_err(|_| invalid(tag, format!("{:?} is not one integer", shown(text))))?;
    Ok(Some(Matcher::Int(n)))
}

/// At most 24 printable characters of a value, for messages (dates, times, numbers:
/// never a name).
fn shown(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(24).collect()
}

/// A single DA/TM value or a range `A-B`, `A-`, `-B`; `check` validates and normalizes
/// one end, `upper` turns a normalized upper end into the largest value it covers.
fn range(
    tag: Tag,
    text: &str,
    check: fn(&str) -> Option<String>,
    upper: fn(String) -> String,
) -> Result<Option<Matcher>, QueryError> {
    let text = trim(text);
    if text.is_empty() {
        return Ok(None);
    }
    if text.contains('\\') {
        return Err(invalid(tag, "a single value or one range, not a list"));
    }
    let end = |s: &str| -> Result<Option<String>, QueryError> {
        let s = trim(s);
        if s.is_empty() {
            return Ok(None);
        }
        check(s)
            .map(Some)
            .ok_or_else(|| invalid(tag, format!("{:?} is not a valid value", shown(s))))
    };
    let Some((a, b)) = text.split_once('-') else {
        let value = end(text)?.expect("not empty");
        return Ok(Some(Matcher::Values(vec![Pattern::Exact(value)])));
    };
    let (from, to) = (end(a)?, end(b)?.map(upper));
    match (&from, &to) {
        (None, None) => Err(invalid(tag, "a range needs at least one end")),
        (Some(f), Some(t)) if f > t => Err(invalid(
            tag,
            format!("the range {:?} ends before it starts", shown(text)),
        )),
        _ => Ok(Some(Matcher::Range { from, to })),
    }
}

/// `YYYYMMDD` (or the old `YYYY.MM.DD`) naming a real calendar day.
pub(crate) fn date(s: &str) -> Option<String> {
    let digits: String = if s.len() == 10 && s.as_bytes()[4] == b'.' && s.as_bytes()[7] == b'.' {
        s.split('.').collect()
    } else {
        s.to_string()
    };
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (y, m, d) = (&digits[..4], &digits[4..6], &digits[6..]);
    let month = time::Month::try_from(m.parse::<u8>().ok()?).ok()?;
    time::Date::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()?;
    Some(digits)
}

/// `HH[MM[SS[.F{1,6}]]]` (colons of the old `HH:MM:SS` dropped), each part in range.
pub(crate) fn time(s: &str) -> Option<String> {
    let t: String = s.chars().filter(|c| *c != ':').collect();
    let (whole, frac) = match t.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (t.as_str(), None),
    };
    let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    if !matches!(whole.len(), 2 | 4 | 6) || !digits(whole) {
        return None;
    }
    if let Some(f) = frac
        && (whole.len() != 6 || f.is_empty() || f.len() > 6 || !digits(f))
    {
        return None;
    }
    let part = |i: usize| whole.get(i..i + 2).map(|p| p.parse::<u8>().unwrap_or(99));
    let ok = part(0).is_some_and(|h| h < 24)
        && part(2).is_none_or(|m| m < 60)
        && part(4).is_none_or(|s| s <= 60);
    ok.then_some(t)
}

/// The last instant a (valid, normalized) time covers: `10` -> `105959.999999`.
pub(crate) fn time_upper(t: &str) -> String {
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    let mut out = whole.to_string();
    out.push_str(&"595959"[whole.len()..]);
    out.push('.');
    out.push_str(frac);
    out.push_str(&"999999"[frac.len()..]);
    out
}
