//! The facility's side of the study lifecycle: `pacs-client expiring` lists the
//! studies whose storage period at the gateway ends soon (or that were hidden for
//! it) with their real names, unsealed here as `query` does, and `pacs-client keep |
//! expire | restore ORIGINAL_UID...` answers for them. The gateway knows the studies
//! by pseudonymous UIDs only; original UIDs are mapped with the facility key.

use dicom_core::VR;
use dicom_dictionary_std::tags;
use phi::keys::KeyRing;
use serde::Serialize;

use crate::clinician::gateway_api::{GatewayApi, Notice};
use crate::clinician::search;
use crate::clinician::translate::{Level, text};
use crate::config::Config;
use crate::credentials::Login;

/// One expiring or hidden study, with its real values.
#[derive(Debug, Clone, Serialize)]
pub struct Expiring {
    /// `expiring` or `hidden`.
    pub state: String,
    /// Patient's Name.
    pub patient_name: String,
    /// Patient ID.
    pub patient_id: String,
    /// Study Date (YYYYMMDD).
    pub study_date: String,
    /// Study Description.
    pub study_description: String,
    /// Original Study Instance UID (empty when it could not be unsealed).
    pub study_uid: String,
    /// The end of its storage period.
    pub ends_at: Option<String>,
    /// Hidden then without an answer.
    pub hide_at: Option<String>,
    /// Purged then.
    pub purge_at: Option<String>,
    /// Its labels.
    pub labels: Vec<String>,
    /// What may be answered.
    pub answers: Vec<String>,
}

/// The facility's expiring and hidden studies with real names, as `login`. A hidden
/// study is not found by C-FIND: it is shown by its stored UID and state only.
pub async fn expiring(
    config: &Config,
    ring: &KeyRing,
    login: &Login,
) -> anyhow::Result<Vec<Expiring>> {
    let api = GatewayApi::login(config, login).await?;
    let notices = api.notices().await;
    api.logout().await;
    let notices = notices?;
    let mut assoc = None;
    let mut out = Vec::with_capacity(notices.len());
    for notice in notices {
        let mut row = blank(&notice);
        if notice.state != "hidden" {
            if assoc.is_none() {
                assoc = Some(
                    search::connect(config, login)
                        .await
                        .map_err(|r| anyhow::anyhow!("{}", r.comment))?,
                );
            }
            if let Some(assoc) = assoc.as_mut() {
                let keys = [
                    (tags::PATIENT_NAME, VR::PN),
                    (tags::PATIENT_ID, VR::LO),
                    (tags::STUDY_DATE, VR::DA),
                    (tags::STUDY_DESCRIPTION, VR::LO),
                ];
                let asked =
                    search::stored_study_identifier(ring, Level::Study, &keys, &notice.study_uid)?;
                let found = search::find_on(assoc, config, ring, &asked, Level::Study)
                    .await
                    .map_err(|r| anyhow::anyhow!("{}", r.comment))?;
                if let Some(study) = found.first() {
                    row.patient_name = text(study, tags::PATIENT_NAME);
                    row.patient_id = text(study, tags::PATIENT_ID);
                    row.study_date = text(study, tags::STUDY_DATE);
                    row.study_description = text(study, tags::STUDY_DESCRIPTION);
                    row.study_uid = text(study, tags::STUDY_INSTANCE_UID);
                }
            }
        }
        out.push(row);
    }
    if let Some(assoc) = assoc {
        let _ = assoc.release().await;
    }
    Ok(out)
}

fn blank(notice: &Notice) -> Expiring {
    Expiring {
        state: notice.state.clone(),
        patient_name: String::new(),
        patient_id: String::new(),
        study_date: String::new(),
        study_description: String::new(),
        study_uid: String::new(),
        ends_at: notice.ends_at.clone(),
        hide_at: notice.hide_at.clone(),
        purge_at: notice.purge_at.clone(),
        labels: notice.labels.clone(),
        answers: notice.answers.clone(),
    }
}

/// An answer about studies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Keep (extend by `days`, default the policy's period).
    Keep(Option<i64>),
    /// Delete now (facility admin).
    Expire,
    /// Restore a hidden study (facility admin).
    Restore(Option<i64>),
}

/// Answers for each original Study Instance UID as `login`; per UID the state after
/// it, or why it was not taken.
pub async fn answer(
    config: &Config,
    ring: &KeyRing,
    login: &Login,
    uids: &[String],
    answer: Answer,
) -> anyhow::Result<Vec<(String, Result<String, String>)>> {
    let body = match answer {
        Answer::Keep(days) => serde_json::json!({"answer": "keep", "days": days}),
        Answer::Expire => serde_json::json!({"answer": "expire"}),
        Answer::Restore(days) => serde_json::json!({"answer": "restore", "days": days}),
    };
    let api = GatewayApi::login(config, login).await?;
    let mut out = Vec::with_capacity(uids.len());
    for uid in uids {
        let stored = phi::pseudonym::uid(ring, uid);
        let result = api.answer(&stored, &body).await.map_err(|e| e.to_string());
        out.push((uid.clone(), result));
    }
    api.logout().await;
    Ok(out)
}
