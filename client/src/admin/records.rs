//! `admin audit` and `admin studies`: the facility's records, fetched in pages.

use std::io::{IsTerminal, Write};

use reqwest::Method;

use super::AdminError;
use super::api::{AuditEvent, AuditPage, Study, StudyPage};
use super::args::{AuditArgs, Scoped, StudiesCommand};
use super::commands::{Session, print_json};
use super::format::{short_time, table, thousands};

pub(super) async fn audit(session: &Session, args: AuditArgs) -> Result<(), AdminError> {
    let facility = session.facility(args.facility);
    let limit = args.limit as usize;
    let mut filters: Vec<(&str, String)> = Vec::new();
    filters.extend(args.since.map(|s| ("from", s.start())));
    filters.extend(args.until.map(|u| ("to", u.end())));
    filters.extend(args.user.map(|u| ("user", u)));
    filters.extend(args.kind.map(|k| ("kind", k)));
    filters.extend(args.outcome.map(|o| ("outcome", o)));
    let mut events: Vec<AuditEvent> = Vec::new();
    let mut before: Option<i64> = None;
    let more = loop {
        let page_size = (limit - events.len()).min(args.page_size as usize);
        let mut query = filters.clone();
        query.push(("limit", page_size.to_string()));
        query.extend(before.map(|id| ("before_id", id.to_string())));
        let request = session
            .request(Method::GET, &["facilities", &facility, "audit"])
            .query(&query);
        let page: AuditPage = session.api.json(request, true).await?;
        let empty = page.events.is_empty();
        events.extend(page.events);
        match page.next_before_id {
            Some(id) if !empty && events.len() < limit => before = Some(id),
            next => break next,
        }
    };
    events.truncate(limit);
    if args.json {
        return print_json(&events);
    }
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            vec![
                e.id.to_string(),
                short_time(&e.occurred_at),
                e.kind.clone(),
                e.outcome.clone(),
                opt(&e.username),
                opt(&e.peer),
                opt(&e.protocol),
                e.object_count.map_or("-".into(), |n| n.to_string()),
                opt(&e.detail),
            ]
        })
        .collect();
    let headers = [
        "id", "time", "kind", "outcome", "user", "peer", "protocol", "objects", "detail",
    ];
    print!("{}", table(&headers, &rows));
    if let Some(id) = more {
        println!("(more events before id {id}: raise --limit or narrow with --until)");
    }
    Ok(())
}

pub(super) async fn studies(
    session: &Session,
    scoped: Scoped<StudiesCommand>,
) -> Result<(), AdminError> {
    let facility = session.facility(scoped.facility);
    let f = facility.as_str();
    match scoped.command {
        StudiesCommand::List {
            patient_id,
            modality,
            date,
            limit,
            page_size,
            json,
        } => {
            let limit = limit as usize;
            let mut filters: Vec<(&str, String)> = Vec::new();
            filters.extend(patient_id.map(|p| ("patient_id", p)));
            filters.extend(modality.map(|m| ("modality", m)));
            if let Some(range) = date {
                filters.extend(range.from.map(|d| ("date_from", d)));
                filters.extend(range.to.map(|d| ("date_to", d)));
            }
            let mut studies: Vec<Study> = Vec::new();
            let mut offset = 0u64;
            let more = loop {
                let mut query = filters.clone();
                query.push((
                    "limit",
                    (limit - studies.len()).min(page_size as usize).to_string(),
                ));
                query.push(("offset", offset.to_string()));
                let request = session
                    .request(Method::GET, &["facilities", f, "studies"])
                    .query(&query);
                let page: StudyPage = session.api.json(request, true).await?;
                let empty = page.studies.is_empty();
                studies.extend(page.studies);
                match page.next_offset {
                    Some(next) if !empty && next > offset && studies.len() < limit => offset = next,
                    next => break next,
                }
            };
            studies.truncate(limit);
            if json {
                return print_json(&studies);
            }
            print!("{}", studies_table(&studies));
            if more.is_some() {
                println!("(more studies: raise --limit or narrow the filters)");
            }
        }
        StudiesCommand::Delete { study_uid, yes } => {
            if !crate::uid::valid_uid(&study_uid) {
                return Err(AdminError::Usage(format!(
                    "{study_uid:?} is not a Study Instance UID"
                )));
            }
            if !yes && !confirm(&format!("delete study {study_uid} of facility {f}?"))? {
                return Err(AdminError::Refused("not deleted".into()));
            }
            session
                .call(
                    Method::DELETE,
                    &["facilities", f, "studies", &study_uid],
                    None,
                )
                .await?;
            println!("deleted study {study_uid} of facility {f} (soft delete, audited)");
        }
    }
    Ok(())
}

/// The studies table.
fn studies_table(studies: &[Study]) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let rows: Vec<Vec<String>> = studies
        .iter()
        .map(|s| {
            vec![
                s.study_uid.clone(),
                opt(&s.patient_id),
                opt(&s.study_date),
                s.modalities.join("/"),
                thousands(s.series),
                thousands(s.instances),
                opt(&s.study_description),
            ]
        })
        .collect();
    table(
        &[
            "study",
            "patient (pseudonym)",
            "date",
            "modalities",
            "series",
            "instances",
            "description",
        ],
        &rows,
    )
}

/// Asks on a terminal; without one, refuses (use `--yes`).
fn confirm(question: &str) -> Result<bool, AdminError> {
    if !std::io::stdin().is_terminal() {
        return Err(AdminError::Usage(
            "not deleting without confirmation: standard input is not a terminal; add --yes".into(),
        ));
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let answer = super::stdin_line()?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES"))
}
