//! What a sync folder holds, remembered in `.pacs-sync/state.json` inside it: the
//! facility and gateway it mirrors, the changes-feed cursor, and per study (by its
//! pseudonymous UID, the feed's key) the last event applied, whether it is kept here
//! as thumbnails or left out because this PC holds the study itself, and its folder.
//! Written whole to a temporary file and renamed, so a crash leaves the old or the new
//! state, never half of one.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The folder (inside the sync folder) of the state and the work in progress.
pub(super) const STATE_DIR: &str = ".pacs-sync";
const STATE_FILE: &str = "state.json";
const VERSION: u32 = 1;

/// How one study stands in the sync folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum Kept {
    /// Its thumbnails and catalogue are in its folder.
    Thumbnails,
    /// Left out: this PC holds the study itself (looked at again on every run).
    HeldHere,
    /// The last try failed (tried again on the next run); the folder, if any, is
    /// what an earlier run wrote.
    Failed,
}

/// One study of the sync folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct StudyEntry {
    /// The last change applied (its seq in the feed).
    pub seq: i64,
    /// Thumbnails here, or left out.
    pub kept: Kept,
    /// Original Study Instance UID.
    pub original_uid: String,
    /// Its folder, relative to the sync folder (`Thumbnails` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
}

/// The whole state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct State {
    version: u32,
    /// The facility mirrored.
    pub facility: String,
    /// The gateway's API address.
    pub gateway: String,
    /// Every change up to this seq is applied.
    pub cursor: i64,
    /// By pseudonymous Study Instance UID.
    pub studies: BTreeMap<String, StudyEntry>,
}

/// A state that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Unreadable or not ours.
    #[error("{path}: {message}")]
    Unusable {
        /// The state file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The folder mirrors another facility or gateway.
    #[error(
        "{out} holds the thumbnails of facility {facility:?} at {gateway}; use another folder for {wanted_facility:?} at {wanted_gateway}"
    )]
    Elsewhere {
        /// The sync folder.
        out: PathBuf,
        /// What it mirrors.
        facility: String,
        /// ...at.
        gateway: String,
        /// What this run would mirror.
        wanted_facility: String,
        /// ...at.
        wanted_gateway: String,
    },
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl State {
    /// A state for a new folder.
    pub(super) fn new(facility: &str, gateway: &str) -> State {
        State {
            version: VERSION,
            facility: facility.into(),
            gateway: gateway.into(),
            cursor: 0,
            studies: BTreeMap::new(),
        }
    }

    /// The state of the sync folder `out` (a new one when it has none), refused when
    /// the folder mirrors another facility or gateway.
    pub(super) fn load(out: &Path, facility: &str, gateway: &str) -> Result<State, StateError> {
        let path = out.join(STATE_DIR).join(STATE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(State::new(facility, gateway));
            }
            Err(source) => return Err(StateError::Io { path, source }),
        };
        let state: State = serde_json::from_str(&text).map_err(|e| StateError::Unusable {
            path: path.clone(),
            message: format!("not a sync state ({e}); move the folder aside and sync again"),
        })?;
        if state.version != VERSION {
            return Err(StateError::Unusable {
                path,
                message: format!(
                    "written by another version (state version {}, this client reads {VERSION})",
                    state.version
                ),
            });
        }
        if state.facility != facility || state.gateway != gateway {
            return Err(StateError::Elsewhere {
                out: out.into(),
                facility: state.facility,
                gateway: state.gateway,
                wanted_facility: facility.into(),
                wanted_gateway: gateway.into(),
            });
        }
        Ok(state)
    }

    /// Writes the state into `out` (temporary file, flushed, renamed).
    pub(super) fn save(&self, out: &Path) -> Result<(), StateError> {
        let dir = out.join(STATE_DIR);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StateError::Io { path, source }
        };
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let path = dir.join(STATE_FILE);
        let temporary = dir.join(format!("{STATE_FILE}.{}", uuid::Uuid::new_v4().simple()));
        let text = serde_json::to_vec_pretty(self).map_err(|e| StateError::Unusable {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let mut file = std::fs::File::create(&temporary).map_err(io(&temporary))?;
        file.write_all(&text).map_err(io(&temporary))?;
        file.sync_all().map_err(io(&temporary))?;
        std::fs::rename(&temporary, &path).map_err(io(&path))
    }

    /// Whether another study than `study` already uses `folder`.
    pub(super) fn folder_taken(&self, folder: &str, study: &str) -> bool {
        self.studies
            .iter()
            .any(|(uid, e)| uid != study && e.folder.as_deref() == Some(folder))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_state_loads_back_and_guards_its_facility() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::new("st-mary", "https://gw:8443");
        state.cursor = 42;
        state.studies.insert(
            "2.25.1".into(),
            StudyEntry {
                seq: 40,
                kept: Kept::Thumbnails,
                original_uid: "1.2.3".into(),
                folder: Some("Doe, John (7)/2026-11-03 CT".into()),
            },
        );
        state.save(dir.path()).unwrap();
        assert_eq!(
            State::load(dir.path(), "st-mary", "https://gw:8443").unwrap(),
            state
        );
        assert!(matches!(
            State::load(dir.path(), "st-anne", "https://gw:8443"),
            Err(StateError::Elsewhere { .. })
        ));
        assert!(state.folder_taken("Doe, John (7)/2026-11-03 CT", "2.25.9"));
        assert!(!state.folder_taken("Doe, John (7)/2026-11-03 CT", "2.25.1"));
        let fresh = State::load(&dir.path().join("new"), "st-mary", "x").unwrap();
        assert_eq!(fresh.cursor, 0);
        std::fs::write(dir.path().join(STATE_DIR).join(STATE_FILE), "{").unwrap();
        assert!(matches!(
            State::load(dir.path(), "st-mary", "https://gw:8443"),
            Err(StateError::Unusable { .. })
        ));
    }
}
