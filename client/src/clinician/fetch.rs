//! Finding and fetching at the gateway for the clinician side: where a study, a
//! series or some instances are (SERIES and IMAGE level C-FINDs: which SOP class and
//! transfer syntax pairs to propose, how many instances; [`locate_target`]), and one
//! C-GET handing every instance to an [`InstanceConsumer`] as it arrives
//! ([`get_into`]). Used by the `retrieve` command, the `query --level` listing and the
//! viewer proxy; everything here is in the gateway's pseudonymous UIDs.

use std::future::Future;
use std::ops::ControlFlow;
use std::sync::Arc;

use anyhow::{Context, bail};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dimse::assoc::{AcceptedContext, EXPLICIT_VR_LE, IMPLICIT_VR_LE, RoleSelection};
use dimse::command::{CStoreRq, SubOperations};
use dimse::qr::{STUDY_ROOT_FIND, STUDY_ROOT_GET};
use dimse::scp::{DataSink, StoreOutcome};
use dimse::scu::{Proposal, ReceivedInstance, ScuAssociation, StoreHandler};
use indicatif::ProgressBar;

use super::translate::{decode, encode, text};
use crate::config::Config;
use crate::credentials::Login;
use crate::gateway::connect;

/// "the gateway refused the query: StudyDate 20041332: month 13 does not exist
/// (status 0xC000)": the gateway's Error Comment when it gave one.
pub(crate) fn refusal(response: &dimse::command::CFindRsp) -> String {
    match response.error_comment.as_deref().map(str::trim) {
        Some(comment) if !comment.is_empty() => format!(
            "the gateway refused the query: {comment} ({:?})",
            response.status
        ),
        _ => format!("the gateway refused the query: {:?}", response.status),
    }
}

fn identifier(level: &str, keys: &[(dicom_core::Tag, &str)]) -> anyhow::Result<Vec<u8>> {
    let mut obj = InMemDicomObject::from_element_iter([DataElement::new(
        tags::QUERY_RETRIEVE_LEVEL,
        VR::CS,
        PrimitiveValue::from(level),
    )]);
    for (tag, value) in keys {
        // Every key used here is a UID.
        obj.put(DataElement::new(*tag, VR::UI, PrimitiveValue::from(*value)));
    }
    encode(&obj)
}

async fn find(assoc: &mut ScuAssociation, id: Vec<u8>) -> anyhow::Result<Vec<InMemDicomObject>> {
    let found = assoc.find(STUDY_ROOT_FIND, &id).await?;
    if !found.response.status.is_success() {
        bail!("the gateway refused a C-FIND: {:?}", found.response.status);
    }
    found.matches.iter().map(|m| decode(m)).collect()
}

/// What to fetch from the gateway, in its (pseudonymous) UIDs: a study, one series
/// of it, or some instances of that series.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// Study Instance UID.
    pub study: String,
    /// Series Instance UID (SERIES and IMAGE level).
    pub series: Option<String>,
    /// SOP Instance UIDs (IMAGE level).
    pub instances: Vec<String>,
}

impl Target {
    /// The C-GET identifier (Study Root) at the target's level.
    fn identifier(&self) -> anyhow::Result<Vec<u8>> {
        let sops = self.instances.join("\\");
        let mut keys = vec![(tags::STUDY_INSTANCE_UID, self.study.as_str())];
        let level = match &self.series {
            Some(series) => {
                keys.push((tags::SERIES_INSTANCE_UID, series.as_str()));
                if self.instances.is_empty() {
                    "SERIES"
                } else {
                    keys.push((tags::SOP_INSTANCE_UID, sops.as_str()));
                    "IMAGE"
                }
            }
            None => "STUDY",
        };
        identifier(level, &keys)
    }
}

/// What `target` names on the gateway: the (SOP class, transfer syntax) pairs to
/// propose for its C-GET, and how many instances it has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Located {
    /// (SOP class, transfer syntax) pairs.
    pub pairs: Vec<(String, String)>,
    /// Instances.
    pub count: usize,
}

/// Where `target` is, or `None` when the gateway holds none of it.
async fn locate(assoc: &mut ScuAssociation, target: &Target) -> anyhow::Result<Option<Located>> {
    let study = target.study.as_str();
    let series_list = match &target.series {
        Some(series) => vec![series.clone()],
        None => {
            let keys = [
                (tags::STUDY_INSTANCE_UID, study),
                (tags::SERIES_INSTANCE_UID, ""),
            ];
            find(assoc, identifier("SERIES", &keys)?)
                .await?
                .iter()
                .map(|s| text(s, tags::SERIES_INSTANCE_UID))
                .collect()
        }
    };
    let sops = target.instances.join("\\");
    let mut pairs = Vec::new();
    let mut count = 0usize;
    for series_uid in &series_list {
        let keys = [
            (tags::STUDY_INSTANCE_UID, study),
            (tags::SERIES_INSTANCE_UID, series_uid.as_str()),
            (tags::SOP_INSTANCE_UID, sops.as_str()),
            (tags::SOP_CLASS_UID, ""),
            (tags::AVAILABLE_TRANSFER_SYNTAX_UID, ""),
        ];
        for image in find(assoc, identifier("IMAGE", &keys)?).await? {
            count += 1;
            let class = text(&image, tags::SOP_CLASS_UID);
            let ts = text(&image, tags::AVAILABLE_TRANSFER_SYNTAX_UID);
            let syntaxes = if ts.is_empty() {
                vec![EXPLICIT_VR_LE.to_string(), IMPLICIT_VR_LE.to_string()]
            } else {
                vec![ts]
            };
            for ts in syntaxes {
                let pair = (class.clone(), ts);
                if !class.is_empty() && !pairs.contains(&pair) {
                    pairs.push(pair);
                }
            }
        }
    }
    Ok((count > 0).then_some(Located { pairs, count }))
}

/// Takes each instance of a C-GET once it has arrived whole, while the retrieval
/// goes on: nothing holds more than the instance at hand.
pub trait InstanceConsumer: Send + Sync + 'static {
    /// One received instance (de-identified, as the gateway sent it); the outcome
    /// is the C-STORE response sent to the gateway.
    fn take(&self, instance: ReceivedInstance) -> impl Future<Output = StoreOutcome> + Send;

    /// Whether the receiving side has gone (the C-GET is then cancelled).
    fn stopped(&self) -> bool {
        false
    }
}

/// The C-GET [`StoreHandler`] feeding an [`InstanceConsumer`], moving a progress
/// bar.
struct Streaming<C> {
    consumer: Arc<C>,
    bar: ProgressBar,
}

/// One instance on its way to an [`InstanceConsumer`].
struct StreamingSink<C> {
    instance: ReceivedInstance,
    consumer: Arc<C>,
}

impl<C: InstanceConsumer> DataSink for StreamingSink<C> {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreOutcome> {
        self.instance.data.extend_from_slice(chunk);
        Ok(())
    }

    async fn finish(self) -> StoreOutcome {
        self.consumer.take(self.instance).await
    }

    async fn discard(self) {}
}

impl<C: InstanceConsumer> StoreHandler for Streaming<C> {
    type Sink = StreamingSink<C>;

    async fn begin(
        &mut self,
        request: &CStoreRq,
        context: &AcceptedContext,
    ) -> Result<StreamingSink<C>, StoreOutcome> {
        self.bar.inc(1);
        Ok(StreamingSink {
            instance: ReceivedInstance {
                sop_class_uid: request.affected_sop_class_uid.clone(),
                sop_instance_uid: request.affected_sop_instance_uid.clone(),
                transfer_syntax: context.transfer_syntax.clone(),
                data: Vec::new(),
            },
            consumer: self.consumer.clone(),
        })
    }

    fn progress(&mut self, counts: &SubOperations) -> ControlFlow<()> {
        if let (Some(done), Some(left)) = (counts.completed, counts.remaining) {
            let failed = counts.failed.unwrap_or(0) + counts.warning.unwrap_or(0);
            self.bar
                .set_length(u64::from(done) + u64::from(left) + u64::from(failed));
        }
        match self.consumer.stopped() {
            true => ControlFlow::Break(()),
            false => ControlFlow::Continue(()),
        }
    }
}

/// Where `target` is on the gateway (one Q/R association, released), or `None`
/// when the gateway holds none of it.
pub async fn locate_target(
    config: &Config,
    login: &Login,
    target: &Target,
) -> anyhow::Result<Option<Located>> {
    let find_proposal = Proposal {
        abstract_syntax: STUDY_ROOT_FIND.into(),
        transfer_syntaxes: vec![EXPLICIT_VR_LE.into()],
    };
    let mut assoc = connect(config, login, &[find_proposal], Vec::new()).await?;
    let located = locate(&mut assoc, target).await;
    let _ = assoc.release().await;
    located
}

/// Fetches what `target` names (found by [`locate_target`]) with one C-GET,
/// handing every instance to `consumer` as it arrives and moving `bar` per
/// instance. Returns what went wrong, for people (empty when all went well).
pub async fn get_into<C: InstanceConsumer>(
    config: &Config,
    login: &Login,
    target: &Target,
    located: &Located,
    consumer: Arc<C>,
    bar: &ProgressBar,
) -> anyhow::Result<Vec<String>> {
    let given = &target.study;
    if located.pairs.len() > 120 {
        bail!("study {given} mixes too many SOP classes and transfer syntaxes for one C-GET");
    }
    let mut proposals = vec![Proposal::query(STUDY_ROOT_GET)];
    let mut roles: Vec<RoleSelection> = Vec::new();
    for (class, ts) in &located.pairs {
        proposals.push(Proposal {
            abstract_syntax: class.clone(),
            transfer_syntaxes: vec![ts.clone()],
        });
        if !roles.iter().any(|r| r.sop_class_uid == *class) {
            roles.push(RoleSelection::scp(class.clone()));
        }
    }
    let mut assoc = connect(config, login, &proposals, roles).await?;
    let id = target.identifier()?;
    let mut handler = Streaming {
        consumer,
        bar: bar.clone(),
    };
    let outcome = assoc.get(STUDY_ROOT_GET, &id, &mut handler).await;
    let _ = assoc.release().await;
    let outcome = outcome.with_context(|| format!("C-GET of study {given} failed"))?;
    let mut failures = Vec::new();
    if !outcome.status.is_success() {
        failures.push(format!(
            "study {given}: C-GET ended with {:?} ({} failed){}",
            outcome.status,
            outcome.sub_operations.failed.unwrap_or(0),
            outcome
                .error_comment
                .map(|c| format!(": {c}"))
                .unwrap_or_default()
        ));
    }
    Ok(failures)
}
