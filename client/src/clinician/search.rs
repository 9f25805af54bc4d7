//! Searching on behalf of a clinician, shared by the DIMSE viewer proxy and the
//! DICOMweb proxy: a query in original values (a C-FIND identifier of either model)
//! is translated (`translate::find`), asked of the gateway as the clinician, each
//! answer re-identified, the studies kept local-only added from the spool, the
//! blind index's false positives dropped, and PATIENT rows grouped from studies.
//! The rows hold original values; each flow writes its own answer from them
//! (`find::response`).

use std::collections::BTreeMap;

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dimse::Status;
use dimse::assoc::EXPLICIT_VR_LE;
use dimse::qr::STUDY_ROOT_FIND;
use dimse::scu::{Proposal, ScuAssociation};
use phi::keys::KeyRing;
use tracing::warn;

use crate::clinician::translate::{Level, find, text};
use crate::config::Config;
use crate::credentials::Login;

/// Why a search was not answered: the DIMSE status and a comment for the asker
/// (never a name).
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    /// The status a C-FIND answers with.
    pub status: Status,
    /// What went wrong.
    pub comment: String,
}

fn refuse(status: Status, comment: &str) -> Refusal {
    Refusal {
        status,
        comment: comment.to_string(),
    }
}

/// The rows (original values) matching `request`, a C-FIND identifier in original
/// values of the Patient Root (`patient_root`) or Study Root model, asked of the
/// gateway as `login`, with the local-only studies; and the level asked for.
pub(crate) async fn rows(
    config: &Config,
    ring: &KeyRing,
    login: &Login,
    request: &InMemDicomObject,
    patient_root: bool,
) -> Result<(Level, Vec<InMemDicomObject>), Refusal> {
    let translated = find::translate(request, patient_root, ring)
        .map_err(|e| refuse(Status::IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, &e.to_string()))?;
    let level = translated.level;
    let row_level = level.max(Level::Study);
    let mut rows = gateway_rows(config, ring, login, &translated.gateway, row_level).await?;
    rows.extend(local_only_rows(config, row_level, translated.study_uids()).await?);
    rows.retain(|row| translated.keeps(row));
    if level == Level::Patient {
        rows = patients(rows);
    }
    Ok((level, rows))
}

fn put_count(obj: &mut InMemDicomObject, tag: dicom_core::Tag, n: usize) {
    obj.put(DataElement::new(
        tag,
        VR::IS,
        PrimitiveValue::from(n.to_string()),
    ));
}

/// Groups study rows (original values) by Patient ID into PATIENT-level rows.
fn patients(studies: Vec<InMemDicomObject>) -> Vec<InMemDicomObject> {
    let mut groups: BTreeMap<String, (InMemDicomObject, usize, usize, usize)> = BTreeMap::new();
    for study in studies {
        let count = |tag| text(&study, tag).parse::<usize>().unwrap_or(0);
        let (series, instances) = (
            count(tags::NUMBER_OF_STUDY_RELATED_SERIES),
            count(tags::NUMBER_OF_STUDY_RELATED_INSTANCES),
        );
        let entry = groups
            .entry(text(&study, tags::PATIENT_ID))
            .or_insert_with(|| (study.clone(), 0, 0, 0));
        entry.1 += 1;
        entry.2 += series;
        entry.3 += instances;
    }
    groups
        .into_values()
        .map(|(mut first, studies, series, instances)| {
            put_count(&mut first, tags::NUMBER_OF_PATIENT_RELATED_STUDIES, studies);
            put_count(&mut first, tags::NUMBER_OF_PATIENT_RELATED_SERIES, series);
            put_count(
                &mut first,
                tags::NUMBER_OF_PATIENT_RELATED_INSTANCES,
                instances,
            );
            first
        })
        .collect()
}

/// Rows of `level` (STUDY and below) from the spooled originals of one study.
fn local_rows(objects: Vec<InMemDicomObject>, level: Level) -> Vec<InMemDicomObject> {
    let distinct = |tag| {
        let mut values: Vec<String> = objects.iter().map(|o| text(o, tag)).collect();
        values.sort();
        values.dedup();
        values
    };
    match level {
        Level::Patient | Level::Study => {
            let (series, modalities) = (
                distinct(tags::SERIES_INSTANCE_UID),
                distinct(tags::MODALITY),
            );
            let Some(mut row) = objects.first().cloned() else {
                return Vec::new();
            };
            put_count(
                &mut row,
                tags::NUMBER_OF_STUDY_RELATED_INSTANCES,
                objects.len(),
            );
            put_count(&mut row, tags::NUMBER_OF_STUDY_RELATED_SERIES, series.len());
            let modalities: Vec<&str> = modalities
                .iter()
                .map(String::as_str)
                .filter(|m| !m.is_empty())
                .collect();
            row.put(DataElement::new(
                tags::MODALITIES_IN_STUDY,
                VR::CS,
                PrimitiveValue::from(modalities.join("\\")),
            ));
            vec![row]
        }
        Level::Series => distinct(tags::SERIES_INSTANCE_UID)
            .iter()
            .filter_map(|series| {
                let members: Vec<&InMemDicomObject> = objects
                    .iter()
                    .filter(|o| text(o, tags::SERIES_INSTANCE_UID) == *series)
                    .collect();
                let mut row = (*members.first()?).clone();
                put_count(
                    &mut row,
                    tags::NUMBER_OF_SERIES_RELATED_INSTANCES,
                    members.len(),
                );
                Some(row)
            })
            .collect(),
        Level::Image => objects,
    }
}

/// The header of a spooled Part-10 file (up to the pixel data).
pub(crate) fn read_header(path: &str) -> Option<InMemDicomObject> {
    crate::dicomfile::open_header(std::path::Path::new(path))
        .ok()
        .map(|f| f.into_inner())
}

/// The gateway's answers to `identifier`, re-identified; rows that cannot be
/// re-identified are dropped with a warning.
async fn gateway_rows(
    config: &Config,
    ring: &KeyRing,
    login: &Login,
    identifier: &InMemDicomObject,
    level: Level,
) -> Result<Vec<InMemDicomObject>, Refusal> {
    let mut assoc = connect(config, login).await?;
    let rows = find_on(&mut assoc, config, ring, identifier, level).await;
    let _ = assoc.release().await;
    rows
}

fn query_failed(e: anyhow::Error) -> Refusal {
    warn!(error = %format!("{e:#}"), "a clinician's query failed at the gateway");
    refuse(Status::UNABLE_TO_PROCESS, "the gateway query failed")
}

/// A Study Root C-FIND association to the gateway as `login`.
pub(crate) async fn connect(config: &Config, login: &Login) -> Result<ScuAssociation, Refusal> {
    let proposal = Proposal {
        abstract_syntax: STUDY_ROOT_FIND.into(),
        transfer_syntaxes: vec![EXPLICIT_VR_LE.into()],
    };
    crate::gateway::connect(config, login, &[proposal], Vec::new())
        .await
        .map_err(query_failed)
}

/// The answers to the gateway identifier `identifier` (pseudonymous values, the
/// sealed item asked for) on an open association, re-identified at `level`; rows
/// that cannot be re-identified are dropped with a warning.
pub(crate) async fn find_on(
    assoc: &mut ScuAssociation,
    config: &Config,
    ring: &KeyRing,
    identifier: &InMemDicomObject,
    level: Level,
) -> Result<Vec<InMemDicomObject>, Refusal> {
    let facility = config
        .facility()
        .map_err(|_| refuse(Status::UNABLE_TO_PROCESS, "facility not configured"))?;
    let bytes = crate::clinician::translate::encode(identifier).map_err(query_failed)?;
    let found = assoc
        .find(STUDY_ROOT_FIND, &bytes)
        .await
        .map_err(|e| query_failed(e.into()))?;
    if !found.response.status.is_success() {
        // The gateway's comment names the key, the value and the rule it broke
        // (dates, times, numbers, UIDs: never a name): the viewer sees it too.
        let comment = found
            .response
            .error_comment
            .clone()
            .filter(|c| !c.trim().is_empty())
            .unwrap_or_else(|| "the gateway refused the query".into());
        warn!(status = ?found.response.status, reason = %comment, "the gateway refused a clinician's query");
        return Err(Refusal {
            status: found.response.status,
            comment,
        });
    }
    let mut rows = Vec::with_capacity(found.matches.len());
    for bytes in &found.matches {
        let response = crate::clinician::translate::decode(bytes).map_err(query_failed)?;
        match find::reidentify_row(&response, level, ring, facility) {
            Some(row) => rows.push(row),
            None => warn!(
                level = level.as_str(),
                "a gateway match could not be re-identified; not shown"
            ),
        }
    }
    Ok(rows)
}

/// The gateway identifier asking for `keys` of `level` in the study stored as
/// `study` (pseudonymous UID), with what re-identification needs.
pub(crate) fn stored_study_identifier(
    ring: &KeyRing,
    level: Level,
    keys: &[(Tag, VR)],
    study: &str,
) -> anyhow::Result<InMemDicomObject> {
    let mut request = InMemDicomObject::new_empty();
    request.put(DataElement::new(
        tags::QUERY_RETRIEVE_LEVEL,
        VR::CS,
        PrimitiveValue::from(level.as_str()),
    ));
    for (tag, vr) in keys {
        request.put(DataElement::new(*tag, *vr, PrimitiveValue::Empty));
    }
    let mut gateway = find::translate(&request, false, ring)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .gateway;
    gateway.put(DataElement::new(
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        PrimitiveValue::from(study),
    ));
    Ok(gateway)
}

/// Rows of `level` for the studies kept local-only (only those in `studies`
/// when given), from their spooled originals.
async fn local_only_rows(
    config: &Config,
    level: Level,
    studies: Option<&[String]>,
) -> Result<Vec<InMemDicomObject>, Refusal> {
    let failed = |e: &dyn std::fmt::Display| {
        warn!(error = %e, "local store unavailable");
        refuse(Status::UNABLE_TO_PROCESS, "the local store is unavailable")
    };
    let outbox = crate::outbox::open(config).await.map_err(|e| failed(&e))?;
    let mut rows = Vec::new();
    let listed = outbox.local_only_studies().await;
    for (study, _, _) in listed.map_err(|e| failed(&e))? {
        if studies.is_some_and(|s| !s.contains(&study)) {
            continue;
        }
        let instances = outbox
            .local_instances(&study)
            .await
            .map_err(|e| failed(&e))?;
        let paths: Vec<String> = instances.into_iter().map(|(_, _, _, p)| p).collect();
        let objects = tokio::task::spawn_blocking(move || {
            paths
                .iter()
                .filter_map(|p| read_header(p))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| failed(&e))?;
        rows.extend(local_rows(objects, level));
    }
    outbox.close().await;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patients_group_studies_and_sum_counts() {
        let study = |pid: &str, series: usize, instances: usize| {
            let mut o = InMemDicomObject::new_empty();
            o.put(DataElement::new(
                tags::PATIENT_ID,
                VR::LO,
                PrimitiveValue::from(pid),
            ));
            put_count(&mut o, tags::NUMBER_OF_STUDY_RELATED_SERIES, series);
            put_count(&mut o, tags::NUMBER_OF_STUDY_RELATED_INSTANCES, instances);
            o
        };
        let rows = patients(vec![study("A", 1, 2), study("B", 1, 1), study("A", 2, 5)]);
        let summary: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    text(r, tags::PATIENT_ID),
                    text(r, tags::NUMBER_OF_PATIENT_RELATED_STUDIES),
                    text(r, tags::NUMBER_OF_PATIENT_RELATED_SERIES),
                    text(r, tags::NUMBER_OF_PATIENT_RELATED_INSTANCES),
                )
            })
            .collect();
        let s = |a: &str| a.to_string();
        assert_eq!(
            summary,
            [
                (s("A"), s("2"), s("3"), s("7")),
                (s("B"), s("1"), s("1"), s("1"))
            ]
        );
    }
}
