//! The viewer proxy of `pacs-client serve`: viewers listed in `[[edge.viewers]]`
//! query (C-FIND, Patient Root and Study Root, PATIENT / STUDY / SERIES / IMAGE) and
//! retrieve (C-GET and C-MOVE at STUDY / SERIES / IMAGE) on the edge port; the client
//! asks the gateway with the viewer's own credentials or those of the user the config
//! maps to it, and re-identifies what comes back, so the viewer sees real names and
//! original UIDs and never a pseudonym nor a sealed item. Studies kept local-only are
//! found and served from the client's spool.
//!
//! `clinician::translate::find` translates identifiers and re-identifies responses;
//! this module talks to the gateway (`gateway::connect`,
//! [`fetch::get_into`](crate::clinician::fetch::get_into)) and the spool.
//! It decides nothing about who is a viewer (that is the edge policy's business).

mod retrieve;

use std::collections::BTreeMap;
use std::sync::Arc;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dimse::Status;
use dimse::assoc::{AcceptedContext, EXPLICIT_VR_LE};
use dimse::charset::CharacterSet;
use dimse::qr::{FindResult, PATIENT_ROOT_FIND, STUDY_ROOT_FIND};
use dimse::scp::StoreOutcome;
use dimse::scu::Proposal;
use phi::keys::KeyRing;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::clinician::translate::{Level, find, text};
use crate::config::Config;
use crate::credentials::Login;

/// A viewer admitted on the edge port, and the gateway login used on its behalf.
#[derive(Debug, Clone)]
pub struct ViewerAccess {
    /// Calling AE title.
    pub ae_title: String,
    /// Required peer IP address, if any.
    pub host: Option<String>,
    /// The mapped gateway user's login.
    pub login: Arc<Login>,
    /// The character set its answers and instances are written in (UTF-8 if none).
    pub character_set: Option<dimse::charset::CharacterSet>,
    /// The client's config (how to reach the gateway, to check a viewer's own
    /// credentials).
    pub config: Arc<Config>,
}

impl ViewerAccess {
    /// The login to use for one association: the viewer's own user name and
    /// passcode (User Identity Negotiation) when it sent them, once the gateway has
    /// accepted them, otherwise the mapped user's. `Err` when the gateway refuses the
    /// viewer's credentials (or cannot be asked): the association must be refused.
    pub async fn login_for(&self, own: Option<(String, String)>) -> anyhow::Result<Arc<Login>> {
        let Some((username, password)) = own else {
            return Ok(self.login.clone());
        };
        let login = Login::new(username, password);
        let proposal = Proposal {
            abstract_syntax: STUDY_ROOT_FIND.into(),
            transfer_syntaxes: vec![EXPLICIT_VR_LE.into()],
        };
        let assoc = crate::gateway::connect(&self.config, &login, &[proposal], Vec::new()).await?;
        let _ = assoc.release().await;
        Ok(Arc::new(login))
    }
}

/// Answers viewers' C-FIND, C-GET and C-MOVE by asking the gateway.
pub struct ViewerProxy {
    config: Arc<Config>,
    ring: Arc<KeyRing>,
}

impl std::fmt::Debug for ViewerProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewerProxy").finish_non_exhaustive()
    }
}

fn refuse(status: Status, comment: &str) -> StoreOutcome {
    StoreOutcome::with(status, comment)
}

fn decode(context: &AcceptedContext, bytes: &[u8]) -> Result<InMemDicomObject, StoreOutcome> {
    if TransferSyntaxRegistry
        .get(&context.transfer_syntax)
        .is_none()
    {
        return Err(refuse(
            Status::UNABLE_TO_PROCESS,
            "unsupported transfer syntax",
        ));
    }
    // Names in any character set (a Japanese viewer's ISO 2022 query) come back as
    // UTF-8, like the instances themselves.
    crate::dicomfile::read_dataset(bytes, &context.transfer_syntax).map_err(|_| {
        refuse(
            Status::IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
            "malformed identifier",
        )
    })
}

/// `object` written in the viewer's character set, if it has one and the set holds
/// every character; else as it is (UTF-8), with a log line naming the set (not the
/// character: it may be part of a patient's name).
pub(crate) fn in_charset(
    object: InMemDicomObject,
    charset: Option<&CharacterSet>,
) -> InMemDicomObject {
    let Some(charset) = charset else {
        return object;
    };
    match crate::dicomfile::write_in(&object, charset) {
        Ok(written) => written,
        Err(e) => {
            info!(
                character_set = e.set,
                "a value holds a character this set lacks; sent to the viewer in UTF-8 \
                 (ISO_IR 192) instead"
            );
            object
        }
    }
}

fn encode(obj: &InMemDicomObject, transfer_syntax: &str) -> anyhow::Result<Vec<u8>> {
    let ts = TransferSyntaxRegistry
        .get(transfer_syntax)
        .ok_or_else(|| anyhow::anyhow!("unknown transfer syntax {transfer_syntax}"))?;
    let mut out = Vec::new();
    obj.write_dataset_with_ts(&mut out, ts)?;
    Ok(out)
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
fn read_header(path: &str) -> Option<InMemDicomObject> {
    crate::dicomfile::open_header(std::path::Path::new(path))
        .ok()
        .map(|f| f.into_inner())
}

impl ViewerProxy {
    /// A proxy asking the gateway of `config`, re-identifying with `ring`.
    pub fn new(config: Config, ring: KeyRing) -> ViewerProxy {
        ViewerProxy {
            config: Arc::new(config),
            ring: Arc::new(ring),
        }
    }

    /// Answers a viewer's C-FIND (either model, any level) as `login`.
    pub async fn find(
        &self,
        login: &Login,
        charset: Option<&CharacterSet>,
        context: &AcceptedContext,
        identifier: Vec<u8>,
    ) -> Result<mpsc::Receiver<FindResult>, StoreOutcome> {
        let request = decode(context, &identifier)?;
        let patient_root = context.abstract_syntax == PATIENT_ROOT_FIND;
        let translated = find::translate(&request, patient_root, &self.ring)
            .map_err(|e| refuse(Status::IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, &e.to_string()))?;
        let level = translated.level;
        let row_level = level.max(Level::Study);
        let mut rows = self
            .gateway_rows(login, &translated.gateway, row_level)
            .await?;
        rows.extend(
            self.local_only_rows(row_level, translated.study_uids())
                .await?,
        );
        rows.retain(|row| translated.keeps(row));
        if level == Level::Patient {
            rows = patients(rows);
        }
        let mut matches = Vec::with_capacity(rows.len());
        for row in &rows {
            let response = in_charset(find::response(&request, row, level), charset);
            let bytes = encode(&response, &context.transfer_syntax)
                .map_err(|_| refuse(Status::UNABLE_TO_PROCESS, "cannot encode a response"))?;
            matches.push(FindResult::Match(bytes));
        }
        info!(
            level = level.as_str(),
            matches = matches.len(),
            "viewer C-FIND answered"
        );
        let (tx, rx) = mpsc::channel(matches.len().max(1));
        for m in matches {
            let _ = tx.try_send(m);
        }
        Ok(rx)
    }

    /// The gateway's answers to `identifier`, re-identified; rows that cannot be
    /// re-identified are dropped with a warning.
    async fn gateway_rows(
        &self,
        login: &Login,
        identifier: &InMemDicomObject,
        level: Level,
    ) -> Result<Vec<InMemDicomObject>, StoreOutcome> {
        let failed = |e: anyhow::Error| {
            warn!(error = %format!("{e:#}"), "viewer query failed at the gateway");
            refuse(Status::UNABLE_TO_PROCESS, "the gateway query failed")
        };
        let facility = self
            .config
            .facility()
            .map_err(|_| refuse(Status::UNABLE_TO_PROCESS, "facility not configured"))?;
        let bytes = crate::clinician::translate::encode(identifier).map_err(failed)?;
        let proposal = Proposal {
            abstract_syntax: STUDY_ROOT_FIND.into(),
            transfer_syntaxes: vec![EXPLICIT_VR_LE.into()],
        };
        let mut assoc = crate::gateway::connect(&self.config, login, &[proposal], Vec::new())
            .await
            .map_err(failed)?;
        let found = assoc.find(STUDY_ROOT_FIND, &bytes).await;
        let _ = assoc.release().await;
        let found = found.map_err(|e| failed(e.into()))?;
        if !found.response.status.is_success() {
            // The gateway's comment names the key, the value and the rule it broke
            // (dates, times, numbers, UIDs: never a name): the viewer sees it too.
            let comment = found
                .response
                .error_comment
                .clone()
                .filter(|c| !c.trim().is_empty())
                .unwrap_or_else(|| "the gateway refused the query".into());
            warn!(status = ?found.response.status, reason = %comment, "the gateway refused a viewer query");
            return Err(StoreOutcome {
                status: found.response.status,
                comment: Some(comment),
            });
        }
        let mut rows = Vec::with_capacity(found.matches.len());
        for bytes in &found.matches {
            let response = crate::clinician::translate::decode(bytes).map_err(failed)?;
            match find::reidentify_row(&response, level, &self.ring, facility) {
                Some(row) => rows.push(row),
                None => warn!(
                    level = level.as_str(),
                    "a gateway match could not be re-identified; not shown to the viewer"
                ),
            }
        }
        Ok(rows)
    }

    /// Rows of `level` for the studies kept local-only (only those in `studies`
    /// when given), from their spooled originals.
    async fn local_only_rows(
        &self,
        level: Level,
        studies: Option<&[String]>,
    ) -> Result<Vec<InMemDicomObject>, StoreOutcome> {
        let failed = |e: &dyn std::fmt::Display| {
            warn!(error = %e, "local store unavailable");
            refuse(Status::UNABLE_TO_PROCESS, "the local store is unavailable")
        };
        let outbox = crate::outbox::open(&self.config)
            .await
            .map_err(|e| failed(&e))?;
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
