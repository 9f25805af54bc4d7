//! SQL for a [`Query`]: one statement per find or retrieve, scoped to the facility as
//! `$1`, every value from the identifier bound as a parameter.
//!
//! Wildcards: `*` and `?` become `%` and `_` in a `LIKE ... ESCAPE '!'` pattern, with
//! `%`, `_` and `!` of the value escaped by `!` (`!` rather than a backslash, which
//! PostgreSQL would read as an escape in string literals when
//! `standard_conforming_strings` is off). Case-sensitive keys on SQLite use `GLOB`
//! (whose `*` and `?` are DICOM's, `[` escaped as `[[]`), because SQLite's `LIKE`
//! ignores ASCII case.

use dicom_dictionary_std::tags;
use sqlx::any::AnyRow;

use super::keys::{Attr, Kind};
use super::matching::{Matcher, Pattern};
use super::query::{Condition, Query};
use super::{Level, keys};
use crate::db::{Backend, Index};
use crate::domain::FacilityId;

/// The escape character of every LIKE pattern.
const LIKE_ESCAPE: char = '!';

/// A bound value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Bind {
    /// An integer.
    Int(i64),
    /// A string.
    Text(String),
}

/// SQL text with its parameters (`$1` .. `$n`, in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Statement {
    /// The text: column names, operators and placeholders only.
    pub text: String,
    /// The values.
    pub binds: Vec<Bind>,
}

impl Statement {
    fn new(facility: FacilityId) -> Statement {
        Statement {
            text: String::new(),
            binds: vec![Bind::Int(facility.0)],
        }
    }

    /// Adds a parameter and returns its placeholder.
    fn bind(&mut self, value: Bind) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }

    /// Runs the statement.
    pub(crate) async fn fetch_all(&self, index: &Index) -> Result<Vec<AnyRow>, sqlx::Error> {
        let mut query = sqlx::query(&self.text);
        for value in &self.binds {
            query = match value {
                Bind::Int(v) => query.bind(*v),
                Bind::Text(v) => query.bind(v.as_str()),
            };
        }
        query.fetch_all(&index.pool).await
    }
}

/// `s`, `r`, `i` joined down to `level`, every table on the same facility, and `p`:
/// at STUDY level each patient of the study (one row per study and patient; [`find`]'s
/// caller keeps the first row of each study), below it the patient of the series or
/// instance. Left joins: a row never disappears for want of its patient row.
fn from_clause(level: Level) -> &'static str {
    match level {
        Level::Patient | Level::Study => {
            "studies s LEFT JOIN study_patients p ON p.facility_id = s.facility_id AND p.study_uid = s.study_uid"
        }
        Level::Series => {
            "studies s JOIN series r ON r.facility_id = s.facility_id AND r.study_uid = s.study_uid \
             LEFT JOIN study_patients p ON p.facility_id = r.facility_id AND p.study_uid = r.study_uid \
             AND p.patient_key = COALESCE(r.patient_id, '')"
        }
        Level::Image => {
            "studies s JOIN series r ON r.facility_id = s.facility_id AND r.study_uid = s.study_uid \
             JOIN instances i ON i.facility_id = r.facility_id AND i.series_uid = r.series_uid \
             LEFT JOIN study_patients p ON p.facility_id = i.facility_id AND p.study_uid = i.study_uid \
             AND p.patient_key = COALESCE(i.patient_id, '')"
        }
    }
}

fn order_clause(level: Level) -> &'static str {
    match level {
        Level::Patient => "t.patient_id",
        Level::Study => "s.study_uid, p.first_seen, p.patient_key",
        Level::Series => "s.study_uid, COALESCE(r.series_number, 0), r.series_uid",
        Level::Image => {
            "s.study_uid, COALESCE(r.series_number, 0), r.series_uid, \
             COALESCE(i.instance_number, 0), i.sop_instance_uid"
        }
    }
}

/// The select list: the level's unique key and every requested key available there.
fn select_list(query: &Query) -> String {
    let level = query.level();
    let unique = keys::unique_key(level);
    let mut attrs: Vec<&Attr> = vec![unique];
    for key in query.keys() {
        if let super::query::Source::Attr(attr) = key.source
            && attr.available(level)
            && !attrs.iter().any(|a| a.alias == attr.alias)
        {
            attrs.push(attr);
        }
    }
    let mut columns: Vec<String> = attrs
        .iter()
        .filter(|a| a.kind != keys::Kind::Sealed)
        .filter_map(|a| a.select(level).map(|e| format!("{e} AS {}", a.alias)))
        .collect();
    let sealed = attrs.iter().find(|a| a.kind == keys::Kind::Sealed);
    if let (Some(attr), Some(sealed)) = (sealed, keys::sealed_columns(level)) {
        // The envelope is bound to one instance's UID; the client needs it to unseal.
        columns.push(format!("{} AS {}", sealed.envelope, attr.alias));
        columns.push(format!("{} AS {}", sealed.bound_to, keys::SEALED_FOR_ALIAS));
        columns.push(format!("{} AS {}", sealed.kind, keys::SEALED_KIND_ALIAS));
    }
    columns.join(", ")
}

/// The C-FIND statement for `query`.
pub(crate) fn find(
    query: &Query,
    facility: FacilityId,
    limit: usize,
    backend: Backend,
) -> Statement {
    let mut st = Statement::new(facility);
    let filter = filter(&mut st, query.conditions().iter(), backend);
    let limit = st.bind(Bind::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
    let level = query.level();
    let (select, order) = (select_list(query), order_clause(level));
    st.text = match level {
        Level::Patient => format!(
            "SELECT {select} FROM study_patients t JOIN studies ts ON ts.facility_id = t.facility_id \
             AND ts.study_uid = t.study_uid WHERE t.facility_id = $1 AND ts.deleted_at IS NULL AND ts.lifecycle <> 'hidden' AND t.patient_id IN \
             (SELECT p.patient_id FROM {} WHERE s.facility_id = $1 AND s.deleted_at IS NULL AND s.lifecycle <> 'hidden' \
             AND p.patient_id IS NOT NULL{filter}) \
             GROUP BY t.patient_id ORDER BY {order} LIMIT {limit}",
            from_clause(Level::Study)
        ),
        _ => format!(
            "SELECT {select} FROM {} WHERE s.facility_id = $1 AND s.deleted_at IS NULL AND s.lifecycle <> 'hidden'{filter} \
             ORDER BY {order} LIMIT {limit}",
            from_clause(level)
        ),
    };
    st
}

/// The C-GET / C-MOVE statement: instances under the unique keys of `query`.
pub(crate) fn retrieve(query: &Query, facility: FacilityId, backend: Backend) -> Statement {
    let mut st = Statement::new(facility);
    let filter = filter(&mut st, query.unique_key_conditions(), backend);
    st.text = format!(
        "SELECT i.study_uid, i.series_uid, i.sop_class_uid, i.sop_instance_uid, i.transfer_syntax, \
         i.blob_key, i.size_bytes FROM {} WHERE s.facility_id = $1 AND s.deleted_at IS NULL AND s.lifecycle <> 'hidden'{filter} ORDER BY {}",
        from_clause(Level::Image),
        order_clause(Level::Image)
    );
    st
}

/// ` AND (...)` for each condition.
fn filter<'a>(
    st: &mut Statement,
    conditions: impl Iterator<Item = &'a Condition>,
    backend: Backend,
) -> String {
    let conditions: Vec<&Condition> = conditions.collect();
    // study_modalities keeps each study's date: repeating the date condition inside
    // the Modalities in Study subquery turns a scan of the facility's rows for that
    // modality into a range scan of its (facility, modality, study_date) index.
    let study_date = conditions
        .iter()
        .find(|c| c.attr.tag == tags::STUDY_DATE && c.attr.kind == Kind::Date);
    let mut out = String::new();
    for c in &conditions {
        let Some(column) = c.attr.column else {
            continue;
        };
        let sql = match c.attr.kind {
            Kind::Modalities => {
                let mut inner = matches(st, "m.modality", Kind::Text, &c.matcher, backend);
                if let Some(date) = study_date {
                    inner.push_str(" AND ");
                    inner.push_str(&matches(
                        st,
                        "m.study_date",
                        Kind::Date,
                        &date.matcher,
                        backend,
                    ));
                }
                format!(
                    "s.study_uid IN (SELECT m.study_uid FROM study_modalities m \
                     WHERE m.facility_id = $1 AND {inner})"
                )
            }
            Kind::NameToken => {
                // The study first (an index lookup from the token), then its patient.
                let in_study = matches(st, "n.token", Kind::Text, &c.matcher, backend);
                let in_patient = matches(st, "n.token", Kind::Text, &c.matcher, backend);
                format!(
                    "s.study_uid IN (SELECT n.study_uid FROM name_tokens n WHERE n.facility_id = $1 AND {in_study}) \
                     AND EXISTS (SELECT 1 FROM name_tokens n WHERE n.facility_id = p.facility_id \
                     AND n.study_uid = p.study_uid AND n.patient_key = p.patient_key AND {in_patient})"
                )
            }
            kind => matches(st, column, kind, &c.matcher, backend),
        };
        out.push_str(" AND ");
        out.push_str(&sql);
    }
    out
}

/// The predicate for one matcher on `column`.
fn matches(
    st: &mut Statement,
    column: &str,
    kind: Kind,
    matcher: &Matcher,
    backend: Backend,
) -> String {
    match matcher {
        Matcher::Int(n) => format!("{column} = {}", st.bind(Bind::Int(*n))),
        Matcher::Range { from, to } => {
            let mut parts = Vec::new();
            if let Some(from) = from {
                parts.push(format!("{column} >= {}", st.bind(Bind::Text(from.clone()))));
            }
            if let Some(to) = to {
                parts.push(format!("{column} <= {}", st.bind(Bind::Text(to.clone()))));
            }
            format!("({})", parts.join(" AND "))
        }
        Matcher::Values(values) => {
            let exact: Vec<&String> = values
                .iter()
                .filter_map(|p| match p {
                    Pattern::Exact(v) => Some(v),
                    Pattern::Wildcard(_) => None,
                })
                .collect();
            if kind != Kind::Name && exact.len() == values.len() && values.len() > 1 {
                let list: Vec<String> = exact
                    .iter()
                    .map(|v| st.bind(Bind::Text((*v).clone())))
                    .collect();
                return format!("{column} IN ({})", list.join(", "));
            }
            let any: Vec<String> = values
                .iter()
                .map(|p| pattern(st, column, kind == Kind::Name, p, backend))
                .collect();
            format!("({})", any.join(" OR "))
        }
    }
}

fn pattern(
    st: &mut Statement,
    column: &str,
    fold_case: bool,
    pattern: &Pattern,
    backend: Backend,
) -> String {
    match (pattern, fold_case) {
        (Pattern::Exact(v), false) => format!("{column} = {}", st.bind(Bind::Text(v.clone()))),
        (Pattern::Exact(v), true) => {
            format!(
                "lower({column}) = lower({})",
                st.bind(Bind::Text(v.clone()))
            )
        }
        (Pattern::Wildcard(p), true) => format!(
            "lower({column}) LIKE lower({}) ESCAPE '{LIKE_ESCAPE}'",
            st.bind(Bind::Text(like_pattern(p)))
        ),
        (Pattern::Wildcard(p), false) => match backend {
            Backend::Postgres => format!(
                "{column} LIKE {} ESCAPE '{LIKE_ESCAPE}'",
                st.bind(Bind::Text(like_pattern(p)))
            ),
            Backend::Sqlite => format!("{column} GLOB {}", st.bind(Bind::Text(glob_pattern(p)))),
        },
    }
}

/// A DICOM wildcard value as a LIKE pattern for `ESCAPE '!'`: `*` -> `%`, `?` -> `_`,
/// and the value's own `%`, `_`, `!` escaped.
pub(crate) fn like_pattern(dicom: &str) -> String {
    let mut out = String::with_capacity(dicom.len() + 4);
    for c in dicom.chars() {
        match c {
            '*' => out.push('%'),
            '?' => out.push('_'),
            '%' | '_' | LIKE_ESCAPE => {
                out.push(LIKE_ESCAPE);
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// A DICOM wildcard value as an SQLite GLOB pattern: `*` and `?` kept, `[` escaped as
/// `[[]` (a lone `]` is literal in GLOB).
pub(crate) fn glob_pattern(dicom: &str) -> String {
    let mut out = String::with_capacity(dicom.len() + 4);
    for c in dicom.chars() {
        match c {
            '[' => out.push_str("[[]"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
