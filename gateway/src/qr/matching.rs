//! Matching values (PS3.4 C.2.2.2): single values, wildcards, UID lists, DA/TM ranges
//! and integers, each checked and normalized before it can reach SQL. A bad value is
//! refused with the value and the rule it broke ([`dimse::qr::values`]).

use std::fmt;

use dicom_core::Tag;
use dimse::qr::values;

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

/// "StudyDate 20041332: month 13 does not exist": the key by its keyword, the value
/// (at most 24 characters, never a name) and the rule it broke, so that the whole
/// fits a 64-character Error Comment.
fn invalid_value(tag: Tag, value: &str, why: impl fmt::Display) -> QueryError {
    use dicom_core::dictionary::DataDictionary;
    let key = match dicom_dictionary_std::StandardDataDictionary.by_tag(tag) {
        Some(entry) if tag != BLIND_INDEX.tag => entry.alias.to_string(),
        _ => name(tag),
    };
    QueryError::Invalid(format!("{key} {}: {why}", shown(value)))
}

/// The matcher for a value, `None` for universal matching.
pub(crate) fn matcher(attr: &Attr, tag: Tag, text: &str) -> Result<Option<Matcher>, QueryError> {
    match attr.kind {
        Kind::Name | Kind::Text | Kind::Modalities | Kind::NameToken => text_values(tag, text),
        Kind::Uid => uid_list(tag, text),
        Kind::Date => range(tag, text, values::date, |d| d.to_string()),
        Kind::Time => range(tag, text, values::time, |t| time_upper(&t)),
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
        .map(|p| match Uid::parse(p) {
            Ok(u) => Ok(Pattern::Exact(u.as_str().to_string())),
            Err(e) => Err(match values::uid(p) {
                Err(why) => invalid_value(tag, p, why),
                Ok(()) => invalid(tag, e),
            }),
        })
        .collect::<Result<Vec<_>, _>>()?;
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
        .map_err(|_| invalid_value(tag, text, "not a whole number"))?;
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
    check: fn(&str) -> Result<String, String>,
    upper: fn(String) -> String,
) -> Result<Option<Matcher>, QueryError> {
    let text = trim(text);
    if text.is_empty() {
        return Ok(None);
    }
    if text.contains('\\') {
        return Err(invalid_value(
            tag,
            text,
            "one value or one range, not a list",
        ));
    }
    let end = |s: &str| -> Result<Option<String>, QueryError> {
        let s = trim(s);
        if s.is_empty() {
            return Ok(None);
        }
        check(s).map(Some).map_err(|why| invalid_value(tag, s, why))
    };
    let Some((a, b)) = text.split_once('-') else {
        let value = end(text)?.expect("not empty");
        return Ok(Some(Matcher::Values(vec![Pattern::Exact(value)])));
    };
    let (from, to) = (end(a)?, end(b)?.map(upper));
    match (&from, &to) {
        (None, None) => Err(invalid_value(tag, text, "a range needs at least one end")),
        (Some(f), Some(t)) if f > t => {
            Err(invalid_value(tag, text, "the range ends before it starts"))
        }
        _ => Ok(Some(Matcher::Range { from, to })),
    }
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
