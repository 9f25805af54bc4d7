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
    config: &crate::config::Config,
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
        StudiesCommand::Label {
            study_uid,
            label,
            remove,
        } => {
            if !crate::uid::valid_uid(&study_uid) {
                return Err(AdminError::Usage(format!(
                    "{study_uid:?} is not a Study Instance UID"
                )));
            }
            let key = crate::keyfile::load(&config.key_file())
                .map_err(|e| AdminError::Config(format!("{e:#}")))?;
            let stored = phi::pseudonym::uid(&key.ring(), &study_uid);
            let method = if remove { Method::DELETE } else { Method::PUT };
            session
                .call(
                    method,
                    &["facilities", f, "studies", &stored, "labels", &label],
                    None,
                )
                .await?;
            let done = if remove { "taken off" } else { "put on" };
            println!("label {label} {done} study {study_uid} (stored as {stored})");
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

/// One policy as the gateway answers.
#[derive(Debug, serde::Deserialize, serde::Serialize)]
struct Policy {
    set_by: String,
    modality: Option<String>,
    label: Option<String>,
    period_days: i64,
    counted_from: String,
    notice_days: i64,
    grace_days: i64,
    action: String,
}

#[derive(Debug, serde::Deserialize)]
struct Policies {
    policies: Vec<Policy>,
}

pub(super) async fn retention(
    session: &Session,
    scoped: Scoped<super::args::RetentionCommand>,
) -> Result<(), AdminError> {
    use super::args::{CountedFromArg, RetentionActionArg, RetentionCommand};
    let facility = session.facility(scoped.facility);
    let f = facility.as_str();
    match scoped.command {
        RetentionCommand::List { json } => {
            let page: Policies = session.get(&["facilities", f, "retention"]).await?;
            if json {
                return print_json(&page.policies);
            }
            let any = |v: &Option<String>| v.clone().unwrap_or_else(|| "(any)".into());
            let rows: Vec<Vec<String>> = page
                .policies
                .iter()
                .map(|p| {
                    vec![
                        p.set_by.clone(),
                        any(&p.modality),
                        any(&p.label),
                        p.period_days.to_string(),
                        p.counted_from.clone(),
                        p.notice_days.to_string(),
                        p.grace_days.to_string(),
                        p.action.clone(),
                    ]
                })
                .collect();
            let headers = [
                "set by", "modality", "label", "days", "from", "notice", "grace", "action",
            ];
            print!("{}", table(&headers, &rows));
        }
        RetentionCommand::Set {
            modality,
            label,
            days,
            from,
            notice_days,
            grace_days,
            action,
        } => {
            let body = serde_json::json!({
                "modality": modality,
                "label": label,
                "period_days": days,
                "counted_from": match from {
                    CountedFromArg::Receipt => "receipt",
                    CountedFromArg::StudyDate => "study-date",
                },
                "notice_days": notice_days,
                "grace_days": grace_days,
                "action": match action {
                    RetentionActionArg::HidePurge => "hide-purge",
                    RetentionActionArg::Notify => "notify",
                },
            });
            session
                .call(Method::PUT, &["facilities", f, "retention"], Some(body))
                .await?;
            println!("retention policy set for facility {f}");
        }
        RetentionCommand::Remove { modality, label } => {
            let mut request = session.request(Method::DELETE, &["facilities", f, "retention"]);
            let mut query: Vec<(&str, String)> = Vec::new();
            query.extend(modality.map(|m| ("modality", m)));
            query.extend(label.map(|l| ("label", l)));
            request = request.query(&query);
            session.api.send(request, true).await?;
            println!("retention policy removed for facility {f}");
        }
    }
    Ok(())
}
