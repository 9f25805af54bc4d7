//! The blob store: stored instances as Part-10 files, under keys built only from
//! validated values, written through `object_store` (local filesystem).
//!
//! Incoming data sets stream into `incoming/` inside the store root; once complete,
//! fsynced and accepted, they are renamed into place (atomic on one filesystem) and
//! the parent directory is fsynced, so a key either holds a whole instance or nothing.
//! Temp files carry the name of the node and process writing them ([`node`]), so that a
//! restart removes only its own abandoned ones, never another node's.

pub mod node;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;

use crate::domain::{FacilityId, Uid};
use node::NodeName;

/// The temp area inside the store root.
pub const INCOMING: &str = "incoming";
/// The thumbnail cache inside the store root (`crate::render::thumbs`): not
/// instances, never taken for orphans by the blob sweep.
pub const THUMBNAILS: &str = "thumbnails";

/// Blob store errors.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// Local I/O failed.
    #[error("blob store I/O failed on {path}: {source}")]
    Io {
        /// File or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The object store refused an operation.
    #[error("object store operation failed: {0}")]
    Store(#[from] object_store::Error),
}

/// Where a stored instance lives: `f<facility>/<study uid>/<sop uid>.<sha256 prefix>.dcm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobKey(String);

impl BlobKey {
    /// The key for an instance with this content hash.
    pub fn new(facility: FacilityId, study: &Uid, sop_instance: &Uid, sha256_hex: &str) -> Self {
        let prefix: String = sha256_hex
            .chars()
            .filter(char::is_ascii_hexdigit)
            .take(16)
            .collect();
        BlobKey(format!(
            "f{}/{}/{}.{}.dcm",
            facility.0, study, sop_instance, prefix
        ))
    }

    /// The key of a cached thumbnail of an instance stored with this content hash:
    /// `thumbnails/f<facility>/<study uid>/<sop uid>.<sha256 prefix>.<variant>`, the
    /// variant naming how it was made (`[0-9a-z.]` only; anything else is dropped).
    pub fn thumbnail(
        facility: FacilityId,
        study: &Uid,
        sop_instance: &Uid,
        sha256_hex: &str,
        variant: &str,
    ) -> Self {
        let prefix: String = sha256_hex
            .chars()
            .filter(char::is_ascii_hexdigit)
            .take(16)
            .collect();
        let variant: String = variant
            .chars()
            .filter(|c| c.is_ascii_digit() || c.is_ascii_lowercase() || *c == '.')
            .collect();
        BlobKey(format!(
            "{THUMBNAILS}/f{}/{}/{}.{}.{}",
            facility.0, study, sop_instance, prefix, variant
        ))
    }

    /// Rebuilds a key read back from the index (it was made by [`BlobKey::new`]).
    pub fn from_index(key: String) -> Self {
        BlobKey(key)
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A file being received, inside the store's `incoming/` area.
#[derive(Debug)]
pub struct TempBlob {
    object: ObjectPath,
    /// Filesystem path of the temp file.
    pub path: PathBuf,
}

/// Handle on the blob store.
#[derive(Debug, Clone)]
pub struct BlobStore {
    store: Arc<LocalFileSystem>,
    root: PathBuf,
    node: NodeName,
}

impl BlobStore {
    /// Opens the store rooted at `root`, creating it, as this host's node, and
    /// removes this node's temp files left by an earlier run (their transfers never
    /// got a success response).
    pub fn open(root: &Path) -> Result<BlobStore, BlobError> {
        BlobStore::open_as(root, NodeName::of_this_host())
    }

    /// [`BlobStore::open`] as node `node` (tests run several nodes on one host).
    pub fn open_as(root: &Path, node: NodeName) -> Result<BlobStore, BlobError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| BlobError::Io { path, source }
        };
        let incoming = root.join(INCOMING);
        std::fs::create_dir_all(&incoming).map_err(io(&incoming))?;
        let root = root.canonicalize().map_err(io(root))?;
        let store = LocalFileSystem::new_with_prefix(&root)?;
        let blobs = BlobStore {
            store: Arc::new(store),
            root,
            node,
        };
        blobs.remove_abandoned_temps(true);
        Ok(blobs)
    }

    /// Removes this node's temp files whose writing process has ended (a crash or a
    /// kill); other nodes' files and those of running processes stay, and so do this
    /// process's own unless `at_start` (before it has begun any transfer). Returns
    /// how many were removed.
    pub fn remove_abandoned_temps(&self, at_start: bool) -> u64 {
        let incoming = self.root.join(INCOMING);
        let Ok(entries) = std::fs::read_dir(&incoming) else {
            return 0;
        };
        let (mut removed, mut kept) = (0u64, 0u64);
        for entry in entries.flatten() {
            let name = entry.file_name();
            if !node::abandoned_by_us(&name.to_string_lossy(), &self.node, at_start) {
                kept += 1;
            } else if std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(
                node = self.node.as_str(),
                removed,
                kept_of_other_nodes_or_running_transfers = kept,
                "removed this node's incomplete transfers left by an ended process"
            );
        }
        removed
    }

    /// A fresh temp location for an incoming data set, named for this node and process.
    pub fn temp(&self) -> TempBlob {
        let name = self.node.temp_name(std::process::id());
        TempBlob {
            object: ObjectPath::from(format!("{INCOMING}/{name}")),
            path: self.root.join(INCOMING).join(name),
        }
    }

    /// Moves a complete temp file to `key` and makes it durable: the rename first,
    /// then the file and the directories whose entries changed are fsynced in
    /// parallel (on ext4 they share one journal commit). Until this returns, a crash
    /// may leave the key absent or incomplete, but no index row points to it yet.
    pub async fn commit(&self, temp: &TempBlob, key: &BlobKey) -> Result<(), BlobError> {
        let target = self.path_of(key);
        let parent = target
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.root.clone());
        let new_dirs = first_missing_ancestor(&parent, &self.root);
        self.store
            .rename(&temp.object, &ObjectPath::from(key.as_str()))
            .await?;
        let root = self.root.clone();
        let file = tokio::task::spawn_blocking(move || sync_path(&target));
        let dirs =
            tokio::task::spawn_blocking(move || sync_dirs(&parent, new_dirs.as_deref(), &root));
        let joined = |r: Result<Result<(), BlobError>, tokio::task::JoinError>| {
            r.map_err(|e| BlobError::Io {
                path: PathBuf::new(),
                source: std::io::Error::other(e),
            })?
        };
        let (file, dirs) = tokio::join!(file, dirs);
        joined(file)?;
        joined(dirs)
    }

    /// Writes a whole instance held in memory (`parts`, in order) under `key` and
    /// makes it durable, all in one blocking job: a temp file (mode 0600) is written
    /// and fsynced, linked under the key, and the directories whose entries changed
    /// are fsynced; the temp name is then unlinked. Never replaces what a key already
    /// holds: returns [`Put::Existed`] (the key's blob left as it was, nothing of ours
    /// kept) when the key exists, which for keys made by [`BlobKey::new`] means the same
    /// instance with the same content hash prefix.
    pub async fn put(&self, key: &BlobKey, parts: Vec<Vec<u8>>) -> Result<Put, BlobError> {
        let temp = self.temp();
        let target = self.path_of(key);
        let root = self.root.clone();
        let job =
            tokio::task::spawn_blocking(move || put_blocking(&temp.path, &target, &root, &parts));
        job.await.map_err(|e| BlobError::Io {
            path: PathBuf::new(),
            source: std::io::Error::other(e),
        })?
    }

    /// Writes a cache entry (a thumbnail) under `key`, replacing what it holds: a temp
    /// file renamed into place, not fsynced (a cache entry lost in a crash is made
    /// again). Blocking: call from a blocking task.
    pub fn put_cache_blocking(&self, key: &BlobKey, bytes: &[u8]) -> Result<(), BlobError> {
        let temp = self.temp();
        let target = self.path_of(key);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| BlobError::Io { path, source }
        };
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let written =
            std::fs::write(&temp.path, bytes).and_then(|()| std::fs::rename(&temp.path, &target));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp.path);
            return Err(io(&target)(e));
        }
        Ok(())
    }

    /// Removes a temp file (ignores one already gone).
    pub async fn discard(&self, temp: &TempBlob) {
        if let Err(e) = tokio::fs::remove_file(&temp.path).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %temp.path.display(), error = %e, "cannot remove temp file");
        }
    }

    /// Deletes a stored blob.
    pub async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        match self.store.delete(&ObjectPath::from(key.as_str())).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Filesystem path of a key (for local readers and tests).
    pub fn path_of(&self, key: &BlobKey) -> PathBuf {
        self.root.join(key.as_str())
    }

    /// The store root.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// What [`BlobStore::put`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// The blob is now durable under its key.
    Written,
    /// The key already held a blob; it was left untouched.
    Existed,
}

fn put_blocking(
    temp: &Path,
    target: &Path,
    root: &Path,
    parts: &[Vec<u8>],
) -> Result<Put, BlobError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BlobError::Io { path, source }
    };
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(temp)?;
        for part in parts {
            file.write_all(part)?;
        }
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(temp);
        return Err(io(temp)(e));
    }
    let parent = target.parent().unwrap_or(root);
    let created = first_missing_ancestor(parent, root);
    if created.is_some() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let linked = std::fs::hard_link(temp, target);
    let _ = std::fs::remove_file(temp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(Put::Existed),
        Err(e) => return Err(io(target)(e)),
    }
    sync_dirs(parent, created.as_deref(), root)?;
    Ok(Put::Written)
}

/// The highest directory between `root` and `dir` that does not exist yet.
fn first_missing_ancestor(dir: &Path, root: &Path) -> Option<PathBuf> {
    let mut missing = None;
    let mut current = dir;
    while current != root && !current.exists() {
        missing = Some(current.to_path_buf());
        current = current.parent()?;
    }
    missing
}

/// fsyncs `dir` and, if directories were created down from `created`, each of them and
/// the one above it, so that the new entries survive a crash.
fn sync_path(path: &Path) -> Result<(), BlobError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|source| BlobError::Io {
            path: path.to_path_buf(),
            source,
        })
}

fn sync_dirs(dir: &Path, created: Option<&Path>, root: &Path) -> Result<(), BlobError> {
    let sync = sync_path;
    sync(dir)?;
    if let Some(created) = created {
        let stop = created.parent().unwrap_or(root);
        let mut current = dir;
        while current != stop && current.starts_with(root) {
            let Some(parent) = current.parent() else {
                break;
            };
            sync(parent)?;
            current = parent;
        }
    }
    Ok(())
}
