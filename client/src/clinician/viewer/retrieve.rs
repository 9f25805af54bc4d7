//! C-GET and C-MOVE for viewers: the identifier's UIDs (original) name a study, a
//! series or some instances; the proxy fetches them from the gateway with C-GET (its
//! pseudonymous UIDs), re-identifies every instance exactly and hands it to the
//! DIMSE layer, which sends it back on the viewer's association (C-GET) or stores it
//! to the move destination, a viewer of the config with host and port (C-MOVE),
//! with the sub-operation counts. Instances stream through one at a time (the
//! gateway's C-GET and the viewer's retrieve run together, a slow viewer slowing
//! the gateway down; a viewer that cancels cancels the gateway's C-GET). What the gateway does not hold is served from the
//! instances kept local-only in the spool.

use std::io::Cursor;
use std::sync::Arc;

use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dimse::Status;
use dimse::assoc::AcceptedContext;
use dimse::qr::{MoveDestination, Retrieval, RetrieveItem, RetrieveRequest};
use dimse::scp::{AssociationInfo, StoreOutcome};
use dimse::scu::ReceivedInstance;
use indicatif::ProgressBar;
use phi::keys::KeyRing;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{ViewerProxy, decode, encode, refuse};
use crate::clinician::fetch::{self, InstanceConsumer};
use crate::clinician::search::read_header;
use crate::clinician::translate::{Level, reidentify_instance, text};
use crate::credentials::Login;

/// The UIDs of a retrieve identifier's key (single value or list).
fn uid_list(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Vec<String> {
    text(obj, tag)
        .split('\\')
        .map(|u| u.trim_matches([' ', '\0']).to_string())
        .filter(|u| !u.is_empty())
        .collect()
}

/// What a viewer's C-GET / C-MOVE names, in original UIDs.
#[derive(Debug)]
struct Wanted {
    study: String,
    series: Option<String>,
    instances: Vec<String>,
}

impl Wanted {
    fn from_identifier(obj: &InMemDicomObject) -> Result<Wanted, StoreOutcome> {
        let bad = |what: &str| refuse(Status::IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, what);
        let level = Level::parse(&text(obj, tags::QUERY_RETRIEVE_LEVEL))
            .filter(|l| *l != Level::Patient)
            .ok_or_else(|| bad("retrieve at STUDY, SERIES or IMAGE level"))?;
        let single = |tag| match uid_list(obj, tag).as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        };
        let study =
            single(tags::STUDY_INSTANCE_UID).ok_or_else(|| bad("give one StudyInstanceUID"))?;
        let series = match level {
            Level::Study => None,
            _ => Some(
                single(tags::SERIES_INSTANCE_UID)
                    .ok_or_else(|| bad("give one SeriesInstanceUID"))?,
            ),
        };
        let instances = match level {
            Level::Image => uid_list(obj, tags::SOP_INSTANCE_UID),
            _ => Vec::new(),
        };
        if level == Level::Image && instances.is_empty() {
            return Err(bad("give the SOPInstanceUID(s)"));
        }
        Ok(Wanted {
            study,
            series,
            instances,
        })
    }

    /// The same, in the gateway's pseudonymous UIDs.
    fn target(&self, ring: &KeyRing) -> fetch::Target {
        let map = |u: &str| phi::pseudonym::uid(ring, u);
        fetch::Target {
            study: map(&self.study),
            series: self.series.as_deref().map(map),
            instances: self.instances.iter().map(|u| map(u)).collect(),
        }
    }
}

impl ViewerProxy {
    /// Where a C-MOVE to `ae_title` goes: a viewer of the config with host and port.
    pub fn move_destination(&self, ae_title: &str) -> Option<MoveDestination> {
        let viewer = self
            .config
            .edge
            .viewers
            .iter()
            .find(|v| v.ae_title.trim() == ae_title.trim())?;
        Some(MoveDestination {
            address: viewer.move_address()?,
            ae_title: viewer.ae_title.trim().to_string(),
            tls: None,
        })
    }

    /// Answers a viewer's C-GET or C-MOVE (STUDY, SERIES or IMAGE level) as `login`:
    /// fetches from the gateway with C-GET, re-identifies each instance and hands it
    /// back in its own transfer syntax (over the viewer's association for a C-GET,
    /// to the move destination for a C-MOVE).
    pub async fn retrieve(
        &self,
        login: &Login,
        charset: Option<&dimse::charset::CharacterSet>,
        association: &AssociationInfo,
        request: &RetrieveRequest,
        context: &AcceptedContext,
        identifier: Vec<u8>,
    ) -> Result<Retrieval, StoreOutcome> {
        let obj = decode(context, &identifier)?;
        let wanted = Wanted::from_identifier(&obj)?;
        let contexts = match request {
            RetrieveRequest::Get(_) => Some(association),
            RetrieveRequest::Move(_) => None,
        };
        let facility = self
            .config
            .facility()
            .map_err(|_| refuse(Status::UNABLE_TO_PROCESS, "facility not configured"))?;
        let target = wanted.target(&self.ring);
        let located = fetch::locate_target(&self.config, login, &target)
            .await
            .map_err(|e| {
                warn!(error = %format!("{e:#}"), "viewer retrieve failed at the gateway");
                refuse(Status::UNABLE_TO_PROCESS, "the gateway retrieve failed")
            })?;
        let Some(located) = located else {
            return self.local_study(&wanted, contexts).await;
        };
        // The viewer's C-GET takes the pairs it accepted, or can be converted to (the
        // DIMSE layer converts); a C-MOVE destination is offered them all.
        let syntaxes: Vec<(String, String)> = located
            .pairs
            .iter()
            .filter(|(class, ts)| accepts(contexts, class, ts))
            .cloned()
            .collect();
        // Each instance goes on to the viewer as soon as it is re-identified; the
        // small channel makes a slow viewer slow the gateway's C-GET down.
        let (tx, items) = mpsc::channel(2);
        let forward = Arc::new(Forward {
            ring: self.ring.clone(),
            facility: facility.to_string(),
            accepted: syntaxes.clone(),
            charset: charset.cloned(),
            tx,
        });
        let config = self.config.clone();
        let login = login.clone();
        let total = located.count;
        tokio::spawn(async move {
            let got = fetch::get_into(
                &config,
                &login,
                &target,
                &located,
                forward,
                &ProgressBar::hidden(),
            )
            .await;
            match got {
                Ok(failures) => {
                    for failure in failures {
                        warn!(failure = %failure, "viewer retrieve incomplete");
                    }
                    info!(total, "viewer retrieve answered");
                }
                Err(e) => warn!(error = %format!("{e:#}"), "viewer retrieve failed at the gateway"),
            }
        });
        Ok(Retrieval {
            total,
            syntaxes,
            items,
        })
    }

    /// What the gateway does not hold, served from the instances kept local-only in
    /// this client's spool (originals, sent as stored).
    async fn local_study(
        &self,
        wanted: &Wanted,
        contexts: Option<&AssociationInfo>,
    ) -> Result<Retrieval, StoreOutcome> {
        let failed = |e: &dyn std::fmt::Display| {
            warn!(error = %e, "local store unavailable");
            refuse(Status::UNABLE_TO_PROCESS, "the local store is unavailable")
        };
        let outbox = crate::outbox::open(&self.config)
            .await
            .map_err(|e| failed(&e))?;
        let listed = outbox.local_instances(&wanted.study).await;
        outbox.close().await;
        let mut listed = listed.map_err(|e| failed(&e))?;
        if !wanted.instances.is_empty() {
            listed.retain(|(_, sop, _, _)| wanted.instances.contains(sop));
        }
        if let Some(series) = &wanted.series {
            let series = series.clone();
            listed = tokio::task::spawn_blocking(move || {
                listed
                    .into_iter()
                    .filter(|(_, _, _, path)| {
                        read_header(path)
                            .is_some_and(|h| text(&h, tags::SERIES_INSTANCE_UID) == series)
                    })
                    .collect()
            })
            .await
            .map_err(|e| failed(&e))?;
        }
        let total = listed.len();
        let mut items = Vec::new();
        let mut syntaxes = Vec::new();
        for (class, sop, ts, path) in listed {
            if !accepts(contexts, &class, &ts) {
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
            "viewer retrieve answered from the local store"
        );
        Ok(retrieval(total, syntaxes, items))
    }
}

/// Re-identifies the instances of a viewer retrieve as they come from the gateway
/// and hands them to the DIMSE layer, which sends them to the viewer.
struct Forward {
    ring: Arc<KeyRing>,
    facility: String,
    /// (SOP class, transfer syntax) pairs the viewer takes.
    accepted: Vec<(String, String)>,
    /// The viewer's character set, if not UTF-8.
    charset: Option<dimse::charset::CharacterSet>,
    tx: mpsc::Sender<RetrieveItem>,
}

/// Re-identifies one instance and encodes it in its own transfer syntax, if the
/// viewer takes that pair or one it converts to (the DIMSE layer converts it when
/// sending).
fn restore(
    ring: &KeyRing,
    facility: &str,
    accepted: &[(String, String)],
    charset: Option<&dimse::charset::CharacterSet>,
    instance: &ReceivedInstance,
) -> anyhow::Result<RetrieveItem> {
    let pair = (
        instance.sop_class_uid.clone(),
        instance.transfer_syntax.clone(),
    );
    if !accepted.contains(&pair) {
        anyhow::bail!("the viewer did not accept {} in {}", pair.0, pair.1);
    }
    let original = reidentify_instance(instance, ring, facility)?;
    let original = super::in_charset(original, charset);
    let data = encode(&original, &instance.transfer_syntax)?;
    Ok(RetrieveItem {
        sop_class_uid: text(&original, tags::SOP_CLASS_UID),
        sop_instance_uid: text(&original, tags::SOP_INSTANCE_UID),
        transfer_syntax: pair.1,
        data: Box::new(Cursor::new(data)),
    })
}

impl InstanceConsumer for Forward {
    async fn take(&self, instance: ReceivedInstance) -> StoreOutcome {
        // Decoding and re-encoding a large instance is CPU work: off the workers.
        let (ring, facility, accepted, charset) = (
            self.ring.clone(),
            self.facility.clone(),
            self.accepted.clone(),
            self.charset.clone(),
        );
        let restored = tokio::task::spawn_blocking(move || {
            restore(&ring, &facility, &accepted, charset.as_ref(), &instance)
        })
        .await;
        let item = match restored {
            Ok(Ok(item)) => item,
            Ok(Err(e)) => {
                warn!(error = %format!("{e:#}"), "instance not sent to the viewer");
                return StoreOutcome::success();
            }
            Err(e) => {
                warn!(error = %e, "instance not sent to the viewer");
                return StoreOutcome::success();
            }
        };
        match self.tx.send(item).await {
            Ok(()) => StoreOutcome::success(),
            Err(_) => StoreOutcome::with(Status::Cancel, "the viewer's retrieve has ended"),
        }
    }

    fn stopped(&self) -> bool {
        self.tx.is_closed()
    }
}

/// Whether the viewer's association (for a C-GET) takes `class` stored in `ts` as
/// SCP: in `ts` itself or in a syntax `ts` converts to.
fn accepts(contexts: Option<&AssociationInfo>, class: &str, ts: &str) -> bool {
    contexts.is_none_or(|a| {
        let syntaxes: Vec<&str> = a
            .contexts
            .iter()
            .filter(|c| c.scp_role && c.abstract_syntax == class)
            .map(|c| c.transfer_syntax.as_str())
            .collect();
        dimse::transcode::pick(ts, &syntaxes).is_some()
    })
}

fn retrieval(total: usize, syntaxes: Vec<(String, String)>, items: Vec<RetrieveItem>) -> Retrieval {
    let (tx, rx) = mpsc::channel(items.len().max(1));
    for item in items {
        let _ = tx.try_send(item);
    }
    Retrieval {
        total,
        syntaxes,
        items: rx,
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
