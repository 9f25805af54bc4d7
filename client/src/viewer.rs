//! The viewer proxy of `pacs-client serve`: viewers listed in `[[edge.viewers]]`
//! query (Study Root C-FIND, STUDY level) and retrieve (Study Root C-GET, STUDY
//! level) on the edge port; the client asks the gateway with the credentials of the
//! user the config maps to the viewer, and re-identifies what comes back, so the
//! viewer sees real names and original UIDs and never a pseudonym. Studies kept
//! local-only (listed by the query too) are served from the client's spool.
//! SERIES/IMAGE levels, Patient Root and C-MOVE are refused for now.
//!
//! Built on [`crate::query::find_studies`] (pseudonyms, blind index, unsealing) and
//! [`crate::retrieve::fetch_study`] (C-GET from the gateway); it decides nothing
//! about who is a viewer (that is the edge policy's business).

use std::io::Cursor;
use std::sync::Arc;

use dicom_core::header::Header;
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dimse::Status;
use dimse::assoc::AcceptedContext;
use dimse::qr::{FindResult, Retrieval, RetrieveItem, RetrieveRequest};
use dimse::scp::{AssociationInfo, StoreOutcome};
use indicatif::ProgressBar;
use phi::keys::KeyRing;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::config::Config;
use crate::credentials::Login;
use crate::query::{StudyFilter, StudyRow, text};

/// A viewer admitted on the edge port, and the gateway login used on its behalf.
#[derive(Debug, Clone)]
pub struct ViewerAccess {
    /// Calling AE title.
    pub ae_title: String,
    /// Required peer IP address, if any.
    pub host: Option<String>,
    /// The mapped gateway user's login.
    pub login: Arc<Login>,
}

/// Answers viewers' C-FIND and C-GET by asking the gateway.
pub struct ViewerProxy {
    config: Config,
    ring: KeyRing,
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
    let ts = TransferSyntaxRegistry
        .get(&context.transfer_syntax)
        .ok_or_else(|| refuse(Status::UNABLE_TO_PROCESS, "unsupported transfer syntax"))?;
    InMemDicomObject::read_dataset_with_ts(bytes, ts).map_err(|_| {
        refuse(
            Status::IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
            "malformed identifier",
        )
    })
}

fn encode(obj: &InMemDicomObject, transfer_syntax: &str) -> anyhow::Result<Vec<u8>> {
    let ts = TransferSyntaxRegistry
        .get(transfer_syntax)
        .ok_or_else(|| anyhow::anyhow!("unknown transfer syntax {transfer_syntax}"))?;
    let mut out = Vec::new();
    obj.write_dataset_with_ts(&mut out, ts)?;
    Ok(out)
}

fn has_wildcard(value: &str) -> bool {
    value.contains(['*', '?'])
}

/// DICOM wildcard matching (`*` any run, `?` one character), case-insensitive.
pub fn wildcard_match(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let v: Vec<char> = value.to_lowercase().chars().collect();
    let (mut pi, mut vi, mut star, mut mark) = (0, 0, None, 0);
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = vi;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The study-level keys of a viewer's identifier, split into what the gateway can
/// narrow down (the [`StudyFilter`]) and wildcard / list conditions checked on the
/// re-identified rows.
#[derive(Debug, Default)]
struct StudyQuery {
    filter: StudyFilter,
    name_pattern: Option<String>,
    id_pattern: Option<String>,
    study_uids: Vec<String>,
}

impl StudyQuery {
    fn from_identifier(obj: &InMemDicomObject) -> Result<StudyQuery, StoreOutcome> {
        let mut q = StudyQuery::default();
        let name = text(obj, tags::PATIENT_NAME);
        if has_wildcard(&name) {
            q.name_pattern = Some(name).filter(|n| n.chars().any(|c| c != '*'));
        } else if !name.is_empty() {
            q.filter.name = Some(name);
        }
        let id = text(obj, tags::PATIENT_ID);
        if has_wildcard(&id) {
            q.id_pattern = Some(id).filter(|n| n.chars().any(|c| c != '*'));
        } else if !id.is_empty() {
            q.filter.patient_id = Some(id);
        }
        let uids = text(obj, tags::STUDY_INSTANCE_UID);
        q.study_uids = uids
            .split('\\')
            .map(|u| u.trim_end_matches(['\0', ' ']).trim().to_string())
            .filter(|u| !u.is_empty())
            .collect();
        if let [single] = q.study_uids.as_slice() {
            q.filter.study_uid = Some(single.clone());
        }
        let date = text(obj, tags::STUDY_DATE);
        if !date.is_empty() {
            if !crate::query::valid_date_range(&date) {
                return Err(refuse(
                    Status::IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
                    "bad StudyDate",
                ));
            }
            q.filter.date = Some(date);
        }
        let modality = text(obj, tags::MODALITIES_IN_STUDY);
        if !modality.is_empty() && !has_wildcard(&modality) && !modality.contains('\\') {
            q.filter.modality = Some(modality);
        }
        let accession = text(obj, tags::ACCESSION_NUMBER);
        if !accession.is_empty() && !has_wildcard(&accession) {
            q.filter.accession = Some(accession);
        }
        Ok(q)
    }

    fn keeps(&self, row: &StudyRow) -> bool {
        let pattern =
            |p: &Option<String>, v: &str| p.as_deref().is_none_or(|p| wildcard_match(p, v));
        pattern(&self.name_pattern, &row.patient_name)
            && pattern(&self.id_pattern, &row.patient_id)
            && (self.study_uids.is_empty() || self.study_uids.contains(&row.study_instance_uid))
    }
}

/// The response identifier: every key the viewer asked for, filled from `row` when
/// known (empty otherwise), plus the character set and the level.
fn study_response(request: &InMemDicomObject, row: &StudyRow) -> InMemDicomObject {
    let s = |tag, vr, v: &str| DataElement::new(tag, vr, PrimitiveValue::from(v));
    let mut out = InMemDicomObject::from_element_iter([
        s(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192"),
        s(tags::QUERY_RETRIEVE_LEVEL, VR::CS, "STUDY"),
        s(tags::STUDY_INSTANCE_UID, VR::UI, &row.study_instance_uid),
    ]);
    let instances = row.instances.map(|n| n.to_string()).unwrap_or_default();
    for element in request.iter() {
        let tag = element.tag();
        if out.get(tag).is_some() || tag == tags::ENCRYPTED_ATTRIBUTES_SEQUENCE {
            continue;
        }
        let value = match tag {
            tags::PATIENT_NAME => Some(row.patient_name.as_str()),
            tags::PATIENT_ID => Some(row.patient_id.as_str()),
            tags::ACCESSION_NUMBER => Some(row.accession_number.as_str()),
            tags::STUDY_DATE => Some(row.study_date.as_str()),
            tags::MODALITIES_IN_STUDY => Some(row.modalities.as_str()),
            tags::STUDY_DESCRIPTION => Some(row.description.as_str()),
            tags::NUMBER_OF_STUDY_RELATED_INSTANCES => Some(instances.as_str()),
            _ => None,
        };
        match (value, element.vr()) {
            (Some(v), vr) => out.put(s(tag, vr, v)),
            (None, VR::SQ) => out.put(DataElement::new(
                tag,
                VR::SQ,
                DataSetSequence::<InMemDicomObject>::empty(),
            )),
            // Private and unknown keys are not returned: never a pseudonym.
            (None, _) if tag.group() % 2 == 1 => None,
            (None, vr) => out.put(DataElement::new(tag, vr, PrimitiveValue::Empty)),
        };
    }
    out
}

impl ViewerProxy {
    /// A proxy asking the gateway of `config`, re-identifying with `ring`.
    pub fn new(config: Config, ring: KeyRing) -> ViewerProxy {
        ViewerProxy { config, ring }
    }

    /// Answers a viewer's C-FIND (Study Root, STUDY level) as `login`.
    pub async fn find(
        &self,
        login: &Login,
        context: &AcceptedContext,
        identifier: Vec<u8>,
    ) -> Result<mpsc::Receiver<FindResult>, StoreOutcome> {
        let request = decode(context, &identifier)?;
        let level = text(&request, tags::QUERY_RETRIEVE_LEVEL);
        if level != "STUDY" {
            return Err(refuse(
                Status::IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
                "only STUDY level queries are proxied",
            ));
        }
        let query = StudyQuery::from_identifier(&request)?;
        let rows = crate::query::find_studies(&self.config, &self.ring, login, &query.filter)
            .await
            .map_err(|e| {
                warn!(error = %format!("{e:#}"), "viewer query failed at the gateway");
                refuse(Status::UNABLE_TO_PROCESS, "the gateway query failed")
            })?;
        let mut matches = Vec::new();
        for row in rows.iter().filter(|r| query.keeps(r)) {
            let response = study_response(&request, row);
            let bytes = encode(&response, &context.transfer_syntax)
                .map_err(|_| refuse(Status::UNABLE_TO_PROCESS, "cannot encode a response"))?;
            matches.push(FindResult::Match(bytes));
        }
        info!(matches = matches.len(), "viewer C-FIND answered");
        let (tx, rx) = mpsc::channel(matches.len().max(1));
        for m in matches {
            let _ = tx.try_send(m);
        }
        Ok(rx)
    }

    /// Answers a viewer's C-GET (Study Root, STUDY level) as `login`: fetches the study
    /// from the gateway, re-identifies each instance and sends it back in its own
    /// transfer syntax over the contexts the viewer accepted.
    pub async fn retrieve(
        &self,
        login: &Login,
        association: &AssociationInfo,
        request: &RetrieveRequest,
        context: &AcceptedContext,
        identifier: Vec<u8>,
    ) -> Result<Retrieval, StoreOutcome> {
        if !matches!(request, RetrieveRequest::Get(_)) {
            return Err(refuse(
                Status::UnrecognizedOperation,
                "only C-GET is proxied for viewers",
            ));
        }
        let obj = decode(context, &identifier)?;
        let study = text(&obj, tags::STUDY_INSTANCE_UID);
        if text(&obj, tags::QUERY_RETRIEVE_LEVEL) != "STUDY"
            || study.is_empty()
            || study.contains('\\')
        {
            return Err(refuse(
                Status::IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
                "give one StudyInstanceUID at STUDY level",
            ));
        }
        let facility = self
            .config
            .facility()
            .map_err(|_| refuse(Status::UNABLE_TO_PROCESS, "facility not configured"))?;
        let fetched = crate::retrieve::fetch_study(
            &self.config,
            &self.ring,
            login,
            &study,
            &ProgressBar::hidden(),
        )
        .await
        .map_err(|e| {
            warn!(error = %format!("{e:#}"), "viewer retrieve failed at the gateway");
            refuse(Status::UNABLE_TO_PROCESS, "the gateway retrieve failed")
        })?;
        let Some(fetched) = fetched else {
            return self.local_study(&study, association).await;
        };
        for failure in &fetched.failures {
            warn!(failure = %failure, "viewer retrieve incomplete");
        }
        let total = fetched.instances.len();
        let mut items = Vec::new();
        let mut syntaxes = Vec::new();
        for instance in &fetched.instances {
            match self.restore(instance, facility, association) {
                Ok(item) => {
                    let pair = (item.sop_class_uid.clone(), item.transfer_syntax.clone());
                    if !syntaxes.contains(&pair) {
                        syntaxes.push(pair);
                    }
                    items.push(item);
                }
                Err(e) => warn!(error = %format!("{e:#}"), "instance not sent to the viewer"),
            }
        }
        info!(total, sent = items.len(), "viewer C-GET answered");
        let (tx, rx) = mpsc::channel(items.len().max(1));
        for item in items {
            let _ = tx.try_send(item);
        }
        Ok(Retrieval {
            total,
            syntaxes,
            items: rx,
        })
    }

    /// A study the gateway does not hold, served from the instances kept local-only in
    /// this client's spool (originals, sent as stored).
    async fn local_study(
        &self,
        study: &str,
        association: &AssociationInfo,
    ) -> Result<Retrieval, StoreOutcome> {
        let failed = |e: &dyn std::fmt::Display| {
            warn!(error = %e, "local store unavailable");
            refuse(Status::UNABLE_TO_PROCESS, "the local store is unavailable")
        };
        let outbox = crate::app::open_outbox(&self.config)
            .await
            .map_err(|e| failed(&e))?;
        let listed = outbox.local_instances(study).await;
        outbox.close().await;
        let listed = listed.map_err(|e| failed(&e))?;
        let total = listed.len();
        let mut items = Vec::new();
        let mut syntaxes = Vec::new();
        for (class, sop, ts, path) in listed {
            let accepted = association
                .contexts
                .iter()
                .any(|c| c.scp_role && c.abstract_syntax == class && c.transfer_syntax == ts);
            if !accepted {
                continue;
            }
            let Ok(item) = open_spooled(&path, class.clone(), sop, ts.clone()).await else {
                continue;
            };
            if !syntaxes.contains(&(class.clone(), ts.clone())) {
                syntaxes.push((class, ts));
            }
            items.push(item);
        }
        info!(
            total,
            sent = items.len(),
            "viewer C-GET answered from the local store"
        );
        let (tx, rx) = mpsc::channel(items.len().max(1));
        for item in items {
            let _ = tx.try_send(item);
        }
        Ok(Retrieval {
            total,
            syntaxes,
            items: rx,
        })
    }

    /// Re-identifies one instance and encodes it for the viewer, if the viewer
    /// accepted its SOP class and transfer syntax.
    fn restore(
        &self,
        instance: &dimse::scu::ReceivedInstance,
        facility: &str,
        association: &AssociationInfo,
    ) -> anyhow::Result<RetrieveItem> {
        let original = crate::retrieve::reidentify_instance(instance, &self.ring, facility)?;
        let sop_class_uid = text(&original, tags::SOP_CLASS_UID);
        let sop_instance_uid = text(&original, tags::SOP_INSTANCE_UID);
        let ts = instance.transfer_syntax.clone();
        let accepted = association
            .contexts
            .iter()
            .any(|c| c.scp_role && c.abstract_syntax == sop_class_uid && c.transfer_syntax == ts);
        if !accepted {
            anyhow::bail!("the viewer did not accept {sop_class_uid} in {ts}");
        }
        let data = encode(&original, &ts)?;
        Ok(RetrieveItem {
            sop_class_uid,
            sop_instance_uid,
            transfer_syntax: ts,
            data: Box::new(Cursor::new(data)),
        })
    }
}

/// A spooled Part-10 file as a retrieve item: its data set, streamed from disk.
async fn open_spooled(
    path: &str,
    sop_class_uid: String,
    sop_instance_uid: String,
    transfer_syntax: String,
) -> anyhow::Result<RetrieveItem> {
    use tokio::io::AsyncSeekExt;
    let path = std::path::Path::new(path);
    let meta = dimse::scu::read_file_meta(path).await?;
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(std::io::SeekFrom::Start(meta.dataset_offset as u64))
        .await?;
    Ok(RetrieveItem {
        sop_class_uid,
        sop_instance_uid,
        transfer_syntax,
        data: Box::new(tokio::io::BufReader::new(file)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::Tag;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("müller*", "Müller1^Jürgen"));
        assert!(wildcard_match("M?ller1*", "Müller1^Jürgen"));
        assert!(!wildcard_match("Meier*", "Müller1^Jürgen"));
        assert!(wildcard_match("*", ""));
        assert!(!wildcard_match("a", "ab"));
    }

    #[test]
    fn private_keys_are_never_returned() {
        let request = InMemDicomObject::from_element_iter([
            DataElement::new(tags::PATIENT_NAME, VR::PN, PrimitiveValue::Empty),
            DataElement::new(Tag(0x0011, 0x0010), VR::LO, PrimitiveValue::Empty),
        ]);
        let row = StudyRow {
            patient_name: "Doe^Jane".into(),
            patient_id: "P1".into(),
            study_instance_uid: "1.2.3".into(),
            gateway_study_uid: "2.25.1".into(),
            accession_number: String::new(),
            study_date: String::new(),
            modalities: String::new(),
            description: String::new(),
            instances: Some(1),
            location: crate::query::Location::Gateway,
        };
        let out = study_response(&request, &row);
        assert_eq!(text(&out, tags::PATIENT_NAME), "Doe^Jane");
        assert_eq!(text(&out, tags::STUDY_INSTANCE_UID), "1.2.3");
        assert!(out.get(Tag(0x0011, 0x0010)).is_none());
    }
}
