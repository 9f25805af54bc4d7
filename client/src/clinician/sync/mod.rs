//! Thumbnail sync: keeps a folder on this PC holding, for every study of the facility
//! at the gateway that this PC does not hold itself, the gateway's thumbnail of each
//! series, in folders named by the real patient name, study date and description,
//! with a catalogue (`catalogue.json`) per study (see [`folder`]).
//!
//! Driven by the gateway's changes feed from a cursor kept in the folder
//! ([`state`]): a run reads only the events after it, folds them per study (a study
//! stored and deleted before the run is never fetched), and then per study either
//! removes its folder (deleted, hidden, purged) or (stored, series added, updated,
//! restored) asks the gateway for the study and its series by C-FIND on one
//! association as the sync user, unseals the real values, leaves the study out when
//! this PC holds it (the outbox says it was received here and retention has not
//! removed it; looked at again on every run) and otherwise fetches the series
//! thumbnails over HTTPS and writes the folder whole. Nothing is rescanned: a second
//! run with no new events downloads nothing. A study that failed is tried again on
//! the next run; the state is saved as the run goes, so an interrupted run resumes.
//!
//! `pacs-client sync --out DIR` runs once with a progress bar; `serve` runs it every
//! `[sync] interval_secs` while `[sync] out` is set.

mod folder;
mod state;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dimse::scu::ScuAssociation;
use indicatif::{ProgressBar, ProgressStyle};
use phi::keys::KeyRing;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use crate::clinician::gateway_api::FeedError;
use crate::clinician::gateway_api::{self as feed, GatewayApi, Thumbnail};
use folder::{Catalogue, PatientEntry, SeriesEntry, StudyInfo};
pub use state::StateError;
use state::{Kept, State, StudyEntry};

use crate::clinician::search;
use crate::clinician::translate::{Level, text};
use crate::config::Config;
use crate::credentials::Login;
use crate::outbox::Outbox;

/// How often the state is saved while a run goes (studies).
const SAVE_EVERY: usize = 20;

/// What a sync does.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// The sync folder.
    pub out: PathBuf,
    /// Keep thumbnails of the studies this PC holds itself too.
    pub include_local: bool,
    /// Show a progress bar (the command on a terminal).
    pub progress: bool,
}

/// What one run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Events read from the feed.
    pub changes: usize,
    /// Study folders written (new or refreshed).
    pub written: usize,
    /// Study folders removed.
    pub removed: usize,
    /// Studies left out because this PC holds them.
    pub held_here: usize,
    /// Thumbnails downloaded.
    pub thumbnails: usize,
    /// Studies that failed (tried again next run), with why.
    pub failed: Vec<String>,
    /// The feed position reached.
    pub cursor: i64,
}

impl Report {
    /// Whether the run changed anything or failed somewhere.
    pub fn eventful(&self) -> bool {
        self.written + self.removed + self.held_here > 0 || !self.failed.is_empty()
    }
}

/// What an event asks of the sync folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Fetch (again).
    Refresh,
    /// Take out.
    Remove,
}

/// The action of an event kind; `None` for kinds that change nothing shown here
/// (notices, shares, the archive tier, accounting).
fn action(kind: &str) -> Option<Action> {
    match kind {
        "stored" | "series-added" | "updated" | "restored" => Some(Action::Refresh),
        "deleted" | "hidden" | "purged" => Some(Action::Remove),
        _ => None,
    }
}

/// One study to look at in this run.
#[derive(Debug, Clone)]
struct Work {
    study: String,
    seq: i64,
    action: Action,
}

/// A sync session: the gateway API's token and the C-FIND association, kept across
/// runs of `serve` and renewed when the gateway ends them.
pub struct Syncer {
    config: Config,
    ring: KeyRing,
    login: Login,
    options: SyncOptions,
    outbox: Outbox,
    api: Option<GatewayApi>,
    assoc: Option<ScuAssociation>,
}

impl std::fmt::Debug for Syncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer")
            .field("options", &self.options)
            .field("login", &self.login)
            .field("logged_in", &self.api.is_some())
            .finish()
    }
}

impl Syncer {
    /// A syncer for `options` as `login`; reads the outbox to tell which studies this
    /// PC holds.
    pub fn new(
        config: &Config,
        ring: KeyRing,
        login: Login,
        options: SyncOptions,
        outbox: Outbox,
    ) -> Syncer {
        Syncer {
            config: config.clone(),
            ring,
            login,
            options,
            outbox,
            api: None,
            assoc: None,
        }
    }

    /// Ends the sessions at the gateway.
    pub async fn close(&mut self) {
        if let Some(api) = self.api.take() {
            api.logout().await;
        }
        if let Some(assoc) = self.assoc.take() {
            let _ = assoc.release().await;
        }
    }

    async fn api(&mut self) -> anyhow::Result<&GatewayApi> {
        if self.api.is_none() {
            self.api = Some(GatewayApi::login(&self.config, &self.login).await?);
        }
        self.api
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no gateway session"))
    }

    /// The feed page after `after`, logging in again once if the session ended.
    async fn changes(&mut self, after: i64) -> anyhow::Result<feed::ChangesPage> {
        match self.api().await?.changes(after).await {
            Err(FeedError::SessionEnded) => {
                self.api = None;
                Ok(self.api().await?.changes(after).await?)
            }
            other => Ok(other?),
        }
    }

    /// One run: reads the feed after the folder's cursor and applies it.
    pub async fn run_once(&mut self) -> anyhow::Result<Report> {
        let facility = self.config.facility()?.to_string();
        let gateway = self.config.gateway.admin_url();
        let out = self.options.out.clone();
        std::fs::create_dir_all(&out)
            .map_err(|e| anyhow::anyhow!("cannot create the sync folder {}: {e}", out.display()))?;
        let mut state = State::load(&out, &facility, &gateway)?;
        folder::clear_leftovers(&out);
        let mut report = Report {
            cursor: state.cursor,
            ..Report::default()
        };

        // The events after the cursor, folded per study (the last one decides).
        let mut last = state.cursor;
        let mut folded: BTreeMap<String, (i64, Action)> = BTreeMap::new();
        loop {
            let page = self.changes(last).await?;
            report.changes += page.changes.len();
            for change in page.changes {
                if let Some(action) = action(&change.kind) {
                    folded.insert(change.study_uid, (change.seq, action));
                }
            }
            if page.last <= last || !page.more {
                last = last.max(page.last);
                break;
            }
            last = page.last;
        }
        let mut work: Vec<Work> = folded
            .into_iter()
            .filter(|(study, (seq, _))| state.studies.get(study).is_none_or(|e| e.seq < *seq))
            .map(|(study, (seq, action))| Work { study, seq, action })
            .collect();
        // Studies left out or failed before: looked at again.
        for (study, entry) in &state.studies {
            if work.iter().any(|w| &w.study == study) {
                continue;
            }
            let again = match entry.kept {
                Kept::Failed => true,
                Kept::HeldHere => {
                    self.options.include_local
                        || !self.outbox.held_locally(&entry.original_uid).await?
                }
                Kept::Thumbnails => false,
            };
            if again {
                work.push(Work {
                    study: study.clone(),
                    seq: entry.seq,
                    action: Action::Refresh,
                });
            }
        }
        work.sort_by_key(|w| w.seq);

        let bar = if self.options.progress && !work.is_empty() {
            let bar = ProgressBar::new(work.len() as u64);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} studies {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        } else {
            ProgressBar::hidden()
        };
        let mut since_save = 0;
        for item in &work {
            let outcome = match item.action {
                Action::Remove => self.remove(&out, &mut state, &item.study).map(|removed| {
                    if removed {
                        report.removed += 1;
                    }
                }),
                Action::Refresh => self.refresh(&out, &mut state, item, &mut report).await,
            };
            if let Err(e) = outcome {
                let why = format!("{e:#}");
                warn!(study = %item.study, error = %why, "thumbnail sync: a study failed; tried again next run");
                let previous = state.studies.get(&item.study).cloned();
                state.studies.insert(
                    item.study.clone(),
                    StudyEntry {
                        seq: item.seq,
                        kept: Kept::Failed,
                        original_uid: previous
                            .as_ref()
                            .map(|p| p.original_uid.clone())
                            .unwrap_or_default(),
                        folder: previous.and_then(|p| p.folder),
                    },
                );
                report.failed.push(format!("study {}: {why}", item.study));
                if e.downcast_ref::<FeedError>().is_some_and(|f| {
                    matches!(f, FeedError::Unreachable { .. } | FeedError::Refused(_))
                }) {
                    // The gateway went away: the rest would fail the same way.
                    state.save(&out)?;
                    bar.finish_and_clear();
                    return Err(e);
                }
            }
            bar.inc(1);
            since_save += 1;
            if since_save >= SAVE_EVERY {
                state.save(&out)?;
                since_save = 0;
            }
        }
        bar.finish_and_clear();
        state.cursor = last;
        state.save(&out)?;
        report.cursor = last;
        Ok(report)
    }

    /// Takes a study out of the folder; whether it had a folder.
    fn remove(&self, out: &Path, state: &mut State, study: &str) -> anyhow::Result<bool> {
        let Some(entry) = state.studies.get(study) else {
            return Ok(false);
        };
        let had = match entry.folder.as_deref().and_then(|f| folder::inside(out, f)) {
            Some(path) => {
                folder::remove_study(out, &path)?;
                true
            }
            None => false,
        };
        state.studies.remove(study);
        Ok(had)
    }

    /// The C-FIND association, opened on first use.
    async fn find(
        &mut self,
        identifier: &InMemDicomObject,
        level: Level,
    ) -> anyhow::Result<Vec<InMemDicomObject>> {
        for attempt in 0..2 {
            if self.assoc.is_none() {
                let assoc = search::connect(&self.config, &self.login)
                    .await
                    .map_err(|r| anyhow::anyhow!("{}", r.comment))?;
                self.assoc = Some(assoc);
            }
            let Some(assoc) = self.assoc.as_mut() else {
                continue;
            };
            match search::find_on(assoc, &self.config, &self.ring, identifier, level).await {
                Ok(rows) => return Ok(rows),
                Err(refusal) => {
                    // A closed association (idle timeout at the gateway) is reopened once.
                    if let Some(assoc) = self.assoc.take() {
                        let _ = assoc.release().await;
                    }
                    if attempt == 1 || refusal.status != dimse::Status::UNABLE_TO_PROCESS {
                        anyhow::bail!("the gateway query failed: {}", refusal.comment);
                    }
                }
            }
        }
        anyhow::bail!("the gateway query failed")
    }

    /// Fetches one study (again) into its folder, or leaves it out.
    async fn refresh(
        &mut self,
        out: &Path,
        state: &mut State,
        item: &Work,
        report: &mut Report,
    ) -> anyhow::Result<()> {
        let study_keys = [
            (tags::PATIENT_NAME, VR::PN),
            (tags::PATIENT_ID, VR::LO),
            (tags::PATIENT_BIRTH_DATE, VR::DA),
            (tags::PATIENT_SEX, VR::CS),
            (tags::STUDY_DATE, VR::DA),
            (tags::STUDY_DESCRIPTION, VR::LO),
            (tags::ACCESSION_NUMBER, VR::SH),
            (tags::MODALITIES_IN_STUDY, VR::CS),
            (tags::NUMBER_OF_STUDY_RELATED_INSTANCES, VR::IS),
        ];
        let asked =
            search::stored_study_identifier(&self.ring, Level::Study, &study_keys, &item.study)?;
        let rows = self.find(&asked, Level::Study).await?;
        let Some(study) = rows.into_iter().next() else {
            // Gone since the event (or not visible to this user): nothing to show.
            if self.remove(out, state, &item.study)? {
                report.removed += 1;
            }
            return Ok(());
        };
        let original_uid = text(&study, tags::STUDY_INSTANCE_UID);
        let previous = state.studies.get(&item.study).cloned();
        let previous_folder = previous
            .as_ref()
            .and_then(|p| p.folder.as_deref())
            .and_then(|f| folder::inside(out, f));
        if !self.options.include_local && self.outbox.held_locally(&original_uid).await? {
            if let Some(path) = &previous_folder {
                folder::remove_study(out, path)?;
            }
            state.studies.insert(
                item.study.clone(),
                StudyEntry {
                    seq: item.seq,
                    kept: Kept::HeldHere,
                    original_uid,
                    folder: None,
                },
            );
            if previous.is_none_or(|p| p.kept != Kept::HeldHere) {
                report.held_here += 1;
            }
            return Ok(());
        }

        let series_keys = [
            (tags::SERIES_INSTANCE_UID, VR::UI),
            (tags::SERIES_NUMBER, VR::IS),
            (tags::MODALITY, VR::CS),
            (tags::SERIES_DESCRIPTION, VR::LO),
            (tags::NUMBER_OF_SERIES_RELATED_INSTANCES, VR::IS),
        ];
        let asked =
            search::stored_study_identifier(&self.ring, Level::Series, &series_keys, &item.study)?;
        let mut series = self.find(&asked, Level::Series).await?;
        series.sort_by_key(|s| {
            (
                text(s, tags::SERIES_NUMBER)
                    .parse::<i64>()
                    .unwrap_or(i64::MAX),
                text(s, tags::SERIES_INSTANCE_UID),
            )
        });
        let mut files = Vec::new();
        let mut entries = Vec::new();
        for (place, row) in series.iter().enumerate() {
            let uid = text(row, tags::SERIES_INSTANCE_UID);
            let gateway_uid = phi::pseudonym::uid(&self.ring, &uid);
            let thumbnail = match self.api().await?.thumbnail(&item.study, &gateway_uid).await {
                Err(FeedError::SessionEnded) => {
                    self.api = None;
                    self.api()
                        .await?
                        .thumbnail(&item.study, &gateway_uid)
                        .await?
                }
                other => other?,
            };
            let (number, description, modality) = (
                text(row, tags::SERIES_NUMBER),
                text(row, tags::SERIES_DESCRIPTION),
                text(row, tags::MODALITY),
            );
            let (file, note) = match thumbnail {
                Thumbnail::Image(bytes, ext) => {
                    let name =
                        folder::series_file(place + 1, &number, &description, &modality, ext);
                    // Two series with the same number and description: keep both.
                    let name = if files.iter().any(|(n, _)| *n == name) {
                        format!(
                            "{}-{}.{ext}",
                            name.trim_end_matches(&format!(".{ext}")),
                            place + 1
                        )
                    } else {
                        name
                    };
                    files.push((name.clone(), bytes));
                    report.thumbnails += 1;
                    (Some(name), None)
                }
                Thumbnail::None(403, why) => (
                    None,
                    Some(format!(
                        "not rendered by the gateway (burned-in text risk): {why}"
                    )),
                ),
                Thumbnail::None(status, why) => (
                    None,
                    Some(format!("no thumbnail (gateway answered {status}): {why}")),
                ),
            };
            entries.push(SeriesEntry {
                instance_uid: uid,
                number,
                modality,
                description,
                instances: count(row, tags::NUMBER_OF_SERIES_RELATED_INSTANCES),
                thumbnail: file,
                note,
            });
        }

        let relative = self.folder_for(state, &item.study, &study);
        let target = folder::inside(out, &relative)
            .ok_or_else(|| anyhow::anyhow!("unusable folder name {relative:?}"))?;
        let catalogue = Catalogue {
            patient: PatientEntry {
                name: text(&study, tags::PATIENT_NAME),
                id: text(&study, tags::PATIENT_ID),
                birth_date: text(&study, tags::PATIENT_BIRTH_DATE),
                sex: text(&study, tags::PATIENT_SEX),
            },
            study: StudyInfo {
                instance_uid: original_uid.clone(),
                date: folder::iso_date(&text(&study, tags::STUDY_DATE)),
                description: text(&study, tags::STUDY_DESCRIPTION),
                accession_number: text(&study, tags::ACCESSION_NUMBER),
                modalities: text(&study, tags::MODALITIES_IN_STUDY)
                    .split('\\')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect(),
                instances: count(&study, tags::NUMBER_OF_STUDY_RELATED_INSTANCES),
            },
            series: entries,
            synced_at: now_rfc3339(),
            change_seq: item.seq,
        };
        let (out_owned, target_owned) = (out.to_path_buf(), target.clone());
        tokio::task::spawn_blocking(move || {
            folder::write_study(
                &out_owned,
                &target_owned,
                previous_folder.as_deref(),
                &catalogue,
                &files,
            )
        })
        .await??;
        state.studies.insert(
            item.study.clone(),
            StudyEntry {
                seq: item.seq,
                kept: Kept::Thumbnails,
                original_uid,
                folder: Some(relative),
            },
        );
        report.written += 1;
        Ok(())
    }

    /// The study's folder, `patient/study`, made unique among the studies kept.
    fn folder_for(&self, state: &State, study_uid: &str, study: &InMemDicomObject) -> String {
        let patient = folder::patient_folder(
            &text(study, tags::PATIENT_NAME),
            &text(study, tags::PATIENT_ID),
        );
        let name = folder::study_folder(
            &text(study, tags::STUDY_DATE),
            &text(study, tags::STUDY_DESCRIPTION),
            &text(study, tags::MODALITIES_IN_STUDY),
        );
        let mut relative = format!("{patient}/{name}");
        let mut n = 2;
        while state.folder_taken(&relative, study_uid) {
            relative = format!("{patient}/{name} ({n})");
            n += 1;
        }
        relative
    }
}

/// A number attribute, 0 when absent.
fn count(obj: &InMemDicomObject, tag: Tag) -> u64 {
    text(obj, tag).trim().parse().unwrap_or(0)
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `serve`'s sync: a run at start and every `interval` until `stop`.
pub async fn run(mut syncer: Syncer, interval: Duration, stop: CancellationToken) {
    info!(folder = %syncer.options.out.display(), "thumbnail sync on");
    while !stop.is_cancelled() {
        let started = Instant::now();
        match syncer.run_once().await {
            Ok(report) if report.eventful() => info!(
                written = report.written,
                removed = report.removed,
                held_here = report.held_here,
                thumbnails = report.thumbnails,
                failed = report.failed.len(),
                cursor = report.cursor,
                ms = started.elapsed().as_millis() as u64,
                "thumbnail sync"
            ),
            Ok(_) => {}
            Err(e) => {
                warn!(error = %format!("{e:#}"), "thumbnail sync failed; trying again later");
                // A fresh session next time.
                syncer.close().await;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.cancelled() => {}
        }
    }
    syncer.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_kinds_map_to_actions() {
        for kind in ["stored", "series-added", "updated", "restored"] {
            assert_eq!(action(kind), Some(Action::Refresh), "{kind}");
        }
        for kind in ["deleted", "hidden", "purged"] {
            assert_eq!(action(kind), Some(Action::Remove), "{kind}");
        }
        for kind in ["expiring", "shared", "archived", "statement-issued", ""] {
            assert_eq!(action(kind), None, "{kind}");
        }
    }

    #[test]
    fn identifiers_carry_the_stored_study_and_the_sealed_item() {
        let ring = phi::keys::FacilityKey::from_bytes([3u8; 32]).ring();
        let id = search::stored_study_identifier(
            &ring,
            Level::Series,
            &[(tags::SERIES_DESCRIPTION, VR::LO)],
            "2.25.77",
        )
        .unwrap();
        assert_eq!(text(&id, tags::STUDY_INSTANCE_UID), "2.25.77");
        assert_eq!(text(&id, tags::QUERY_RETRIEVE_LEVEL), "SERIES");
        assert!(id.element(tags::SERIES_DESCRIPTION).is_ok());
        assert!(id.element(tags::SERIES_INSTANCE_UID).is_ok());
        assert!(id.element(tags::ENCRYPTED_ATTRIBUTES_SEQUENCE).is_ok());
    }
}
