//! Data at rest: the spool holds identified DICOM, so what the client writes is for
//! its own user only. The process umask is 0o077 from the first line of `main`
//! (every file it creates is 0600, every directory 0700, whatever the caller's
//! umask); the data dir is made 0700 (also an existing one) and the outbox database
//! files 0600; the TLS client key is refused when group or others may read or write
//! it, unless `[gateway] key_permissions = "warn"` (the facility key is always
//! refused then, [`crate::keyfile`]). What a host operator must still protect
//! (backups) is in the README ("Data at rest").

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::config::KeyPermissions;

/// The umask both binaries set at start.
pub const UMASK: u32 = 0o077;

/// Sets the process umask to [`UMASK`].
pub fn restrict_umask() {
    let _previous = rustix::process::umask(rustix::fs::Mode::from_raw_mode(UMASK));
}

/// A private key file that others may read.
#[derive(Debug, thiserror::Error)]
#[error(
    "the private key {path} is readable or writable by other users (mode {mode:o}); run `chmod 600 {path}` (or set [gateway] key_permissions = \"warn\" to start anyway)"
)]
pub struct KeyExposed {
    /// The file.
    pub path: PathBuf,
    /// Its permission bits.
    pub mode: u32,
}

/// Checks that `path` (a private key, if it exists) is for its owner only: refuses
/// or warns per `policy`. A missing file is the loader's business, not this check's.
pub fn check_private_key(path: &Path, policy: KeyPermissions) -> Result<(), KeyExposed> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    let exposed = KeyExposed {
        path: path.to_path_buf(),
        mode,
    };
    match policy {
        KeyPermissions::Refuse => Err(exposed),
        KeyPermissions::Warn => {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{mode:o}"),
                "private key readable or writable by other users; using it anyway ([gateway] key_permissions = \"warn\")"
            );
            Ok(())
        }
    }
}

/// Creates `dir` (and its parents) and makes it 0700, also when it already existed
/// with wider permissions (logged).
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).create(dir)?;
    tighten(dir, 0o700)
}

/// Makes an existing file 0600 (nothing if it does not exist).
pub fn private_file(path: &Path) -> std::io::Result<()> {
    match std::fs::metadata(path) {
        Ok(_) => tighten(path, 0o600),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn tighten(path: &Path, mode: u32) -> std::io::Result<()> {
    let current = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if current & !mode == 0 {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    tracing::info!(
        path = %path.display(),
        was = format!("{current:o}"),
        now = format!("{mode:o}"),
        "restricted permissions to the client's own user"
    );
    Ok(())
}

/// The files of an SQLite index at `url` (`sqlite://PATH?...`): the database, its
/// WAL and its shared-memory file.
pub fn sqlite_files(url: &str) -> Vec<PathBuf> {
    let Some(rest) = url.strip_prefix("sqlite://") else {
        return Vec::new();
    };
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Vec::new();
    }
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| PathBuf::from(format!("{path}{suffix}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposed_keys_are_refused_or_warned_about_and_dirs_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("server.key");
        std::fs::write(&key, "k").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = check_private_key(&key, KeyPermissions::Refuse).unwrap_err();
        assert_eq!(err.mode, 0o640);
        assert!(err.to_string().contains("chmod 600"), "{err}");
        check_private_key(&key, KeyPermissions::Warn).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        check_private_key(&key, KeyPermissions::Refuse).unwrap();
        check_private_key(&dir.path().join("missing"), KeyPermissions::Refuse).unwrap();

        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&data).unwrap();
        let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert_eq!(
            sqlite_files("sqlite:///d/index.db?mode=rwc"),
            ["/d/index.db", "/d/index.db-wal", "/d/index.db-shm"].map(PathBuf::from)
        );
        assert!(sqlite_files("postgres://x/y").is_empty());
    }
}
