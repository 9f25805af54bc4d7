//! The facility key on disk: created once by `pacs-client init` (mode 0600, never
//! overwritten), loaded by every command that seals or unseals, and exported /
//! imported wrapped under a passphrase for backup and for more client machines.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use phi::keys::FacilityKey;
use zeroize::Zeroizing;

const HEADER: &str = "pacs-facility-key v1";

/// Problems with the key file.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// No key yet.
    #[error("no facility key at {0}: run `pacs-client init` (or `pacs-client key import FILE`)")]
    Missing(PathBuf),
    /// Refusing to overwrite.
    #[error(
        "a facility key already exists at {0}; refusing to overwrite it (it is the only way to read the identities sealed with it)"
    )]
    Exists(PathBuf),
    /// Readable by others.
    #[error(
        "the facility key {path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`"
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// Not a key file.
    #[error("{0} is not a facility key file")]
    Format(PathBuf),
    /// I/O.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Wrapping or unwrapping failed.
    #[error(transparent)]
    Phi(#[from] phi::PhiError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to a new file with mode 0600, refusing to overwrite.
fn write_new_private(path: &Path, bytes: &[u8]) -> Result<(), KeyFileError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => KeyFileError::Exists(path.to_path_buf()),
            _ => KeyFileError::Io {
                path: path.to_path_buf(),
                source: e,
            },
        })?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(io(path))
}

/// Creates a new facility key at `path`.
pub fn create(path: &Path) -> Result<FacilityKey, KeyFileError> {
    let key = FacilityKey::generate();
    store(path, &key)?;
    Ok(key)
}

/// Writes `key` to a new file at `path`.
pub fn store(path: &Path, key: &FacilityKey) -> Result<(), KeyFileError> {
    let text = Zeroizing::new(format!("{HEADER}\n{}\n", hex::encode(key.expose_bytes())));
    write_new_private(path, text.as_bytes())
}

/// Loads the key at `path`, refusing a file others can read.
pub fn load(path: &Path) -> Result<FacilityKey, KeyFileError> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(KeyFileError::Missing(path.into()));
        }
        Err(e) => {
            return Err(KeyFileError::Io {
                path: path.into(),
                source: e,
            });
        }
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Exposed {
            path: path.into(),
            mode,
        });
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io(path))?);
    let mut lines = text.lines();
    let (Some(HEADER), Some(hex_key)) = (lines.next(), lines.next()) else {
        return Err(KeyFileError::Format(path.into()));
    };
    let mut bytes = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(hex_key.trim(), &mut bytes[..])
        .map_err(|_| KeyFileError::Format(path.into()))?;
    Ok(FacilityKey::from_bytes(*bytes))
}

/// Writes `key` wrapped under `passphrase` to a new file at `out`.
pub fn export(key: &FacilityKey, passphrase: &str, out: &Path) -> Result<(), KeyFileError> {
    let wrapped = key.wrap(passphrase)?;
    write_new_private(out, &wrapped)
}

/// Reads a wrapped key from `file`.
pub fn import(file: &Path, passphrase: &str) -> Result<FacilityKey, KeyFileError> {
    let wrapped = std::fs::read(file).map_err(io(file))?;
    Ok(FacilityKey::unwrap(&wrapped, passphrase)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_load_and_refuse_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("facility.key");
        let key = create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load(&path).unwrap().id(), key.id());
        assert!(matches!(create(&path), Err(KeyFileError::Exists(_))));
        assert_eq!(
            load(&path).unwrap().id(),
            key.id(),
            "the original key is intact"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(load(&path), Err(KeyFileError::Exposed { .. })));
        assert!(matches!(
            load(&dir.path().join("none")),
            Err(KeyFileError::Missing(_))
        ));
    }

    #[test]
    fn export_then_import_gives_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = FacilityKey::generate();
        let out = dir.path().join("backup.key");
        export(&key, "correct horse battery staple", &out).unwrap();
        assert!(
            !std::fs::read(&out)
                .unwrap()
                .windows(32)
                .any(|w| w == key.expose_bytes())
        );
        assert_eq!(
            import(&out, "correct horse battery staple").unwrap().id(),
            key.id()
        );
        assert!(import(&out, "wrong").is_err());
    }
}
