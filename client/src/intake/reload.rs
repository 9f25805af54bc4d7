//! The parts of the configuration a running `pacs-client serve` follows without a
//! restart: the modalities allowed to store (`[[edge.modalities]]`) and the sharing
//! rules (`[sharing]`). The edge checks the config file's modification stamp at each
//! new association and re-reads it through [`Config::parse`] when it changed; a file
//! that no longer parses is logged and the last good values stay in force.
//!
//! Everything else (listen address, TLS, viewers, gateway) still needs a restart.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::SystemTime;

use tracing::{info, warn};

use crate::config::{Config, Modality, SharingConfig};

/// What identifies one version of the file: modification time, size, inode (an
/// atomic replace makes a new inode even within one clock tick).
type Stamp = (Option<SystemTime>, u64, u64);

#[derive(Debug)]
struct Snapshot {
    stamp: Option<Stamp>,
    modalities: Arc<Vec<Modality>>,
    sharing: Arc<SharingConfig>,
}

/// Modalities and sharing rules in force, re-read from the config file when it
/// changes (once [`LiveRules::watch`] named the file).
#[derive(Debug)]
pub struct LiveRules {
    path: OnceLock<PathBuf>,
    current: RwLock<Snapshot>,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok(), meta.len(), meta.ino()))
}

impl LiveRules {
    /// The values of `config`, not following any file yet.
    pub fn new(config: &Config) -> Arc<LiveRules> {
        Arc::new(LiveRules {
            path: OnceLock::new(),
            current: RwLock::new(Snapshot {
                stamp: None,
                modalities: Arc::new(config.edge.modalities.clone()),
                sharing: Arc::new(config.sharing.clone()),
            }),
        })
    }

    /// Follows `path` from now on (the values in force were read from it).
    pub fn watch(&self, path: &Path) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        current.stamp = stamp(path);
        let _ = self.path.set(path.to_path_buf());
    }

    /// Re-reads the file if its stamp changed since the last look. Cheap when it
    /// did not (one `stat`).
    pub fn refresh(&self) {
        let Some(path) = self.path.get() else {
            return;
        };
        let now = stamp(path);
        {
            let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
            if current.stamp == now {
                return;
            }
        }
        let loaded = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| Config::parse(&text, path).map_err(|e| e.to_string()));
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        current.stamp = now;
        match loaded {
            Ok(config) => {
                current.modalities = Arc::new(config.edge.modalities);
                current.sharing = Arc::new(config.sharing);
                info!(
                    modalities = current.modalities.len(),
                    rules = current.sharing.rules.len(),
                    "config file changed; modalities and sharing rules reloaded"
                );
            }
            Err(error) => {
                warn!(%error, "config file changed but cannot be used; keeping the previous modalities and rules");
            }
        }
    }

    /// The modalities allowed to store, as of the last refresh.
    pub fn modalities(&self) -> Arc<Vec<Modality>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .modalities
            .clone()
    }

    /// The sharing rules, as of the last refresh.
    pub fn sharing(&self) -> Arc<SharingConfig> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .sharing
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Destination;

    #[test]
    fn follows_the_file_and_keeps_the_last_good_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.toml");
        std::fs::write(&path, "[[edge.modalities]]\nae_title = \"CT_1\"\n").unwrap();
        let config = Config::load(Some(&path)).unwrap();
        let live = LiveRules::new(&config);
        live.watch(&path);
        live.refresh();
        assert_eq!(live.modalities().len(), 1);

        let edited = "[[edge.modalities]]\nae_title = \"CT_1\"\n[[edge.modalities]]\nae_title = \"MR_2\"\n\
                      [sharing]\ndefault = \"local\"\n";
        let temp = dir.path().join("client.toml.new");
        std::fs::write(&temp, edited).unwrap();
        std::fs::rename(&temp, &path).unwrap();
        live.refresh();
        let names: Vec<_> = live
            .modalities()
            .iter()
            .map(|m| m.ae_title.clone())
            .collect();
        assert_eq!(names, ["CT_1", "MR_2"]);
        assert_eq!(live.sharing().default, Destination::Local);

        std::fs::write(&path, "[[edge.modalities]]\nae_titel = \"typo\"\n").unwrap();
        live.refresh();
        assert_eq!(live.modalities().len(), 2, "a broken file changes nothing");
    }
}
