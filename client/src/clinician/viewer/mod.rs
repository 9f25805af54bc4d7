//! The viewer proxy of `pacs-client serve`: viewers listed in `[[edge.viewers]]`
//! query (C-FIND, Patient Root and Study Root, PATIENT / STUDY / SERIES / IMAGE) and
//! retrieve (C-GET and C-MOVE at STUDY / SERIES / IMAGE) on the edge port; the client
//! asks the gateway with the viewer's own credentials or those of the user the config
//! maps to it, and re-identifies what comes back, so the viewer sees real names and
//! original UIDs and never a pseudonym nor a sealed item. Studies kept local-only are
//! found and served from the client's spool.
//!
//! `clinician::search` finds the rows (translation, the gateway, the spool);
//! `clinician::translate::find` writes the responses; retrieval goes through
//! [`fetch::get_into`](crate::clinician::fetch::get_into) and the spool.
//! It decides nothing about who is a viewer (that is the edge policy's business).

mod retrieve;

use std::sync::Arc;

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
use tracing::info;

use crate::clinician::search;
use crate::clinician::translate::find;
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
        let (level, rows) = search::rows(&self.config, &self.ring, login, &request, patient_root)
            .await
            .map_err(|r| StoreOutcome {
                status: r.status,
                comment: Some(r.comment),
            })?;
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
}
