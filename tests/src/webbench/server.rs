//! The gateway as the DICOMweb benchmark runs it: the real `pacs-gateway serve`
//! process (release build) on an index the benchmark has loaded, HTTPS on loopback,
//! a plain DICOM port admitting [`BENCH_AE`] as the measured facility (to store the
//! WADO-RS instances with `storescu`), and one clinician added with `pacs-gateway
//! user add` (password on stdin).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::bench::services::{BENCH_AE, serve};
use crate::bench::{free_port, storescu, wait_for_port};
use crate::findbench::peer::GATEWAY_AE;

/// The clinician the benchmark queries and retrieves as.
pub const USER: &str = "web.bench";
/// Its password.
pub const PASSWORD: &str = "dicomweb bench password 1";

/// A `pacs-gateway serve` process with HTTPS.
pub struct WebGateway {
    child: Child,
    /// HTTPS port on 127.0.0.1.
    pub https_port: u16,
    /// Plain DICOM port on 127.0.0.1.
    pub plain_port: u16,
    /// The dev CA that signed its server certificate.
    pub ca: PathBuf,
    _dir: tempfile::TempDir,
}

impl WebGateway {
    /// Writes a config in a fresh directory under `work` for the index at `url`
    /// (migrated, `facility` created), adds [`USER`] to `facility` and starts `bin
    /// serve`.
    pub fn start(bin: &Path, work: &Path, url: &str, facility: &str) -> Result<WebGateway> {
        let dir = tempfile::tempdir_in(work)?;
        let data = dir.path().join("data");
        let (https_port, plain_port) = (free_port()?, free_port()?);
        let config = dir.path().join("gateway.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = {data:?}\ndatabase_url = {url:?}\n[dicom]\nae_title = \"{GATEWAY_AE}\"\n\
                 tls_listen = \"\"\nplain_listen = \"127.0.0.1:{plain_port}\"\n\
                 [dicom.plain_ae]\n{BENCH_AE} = {facility:?}\n\
                 [https]\nlisten = \"127.0.0.1:{https_port}\"\n[metrics]\nlisten = \"\"\n"
            ),
        )?;
        add_user(bin, &config, facility)?;
        let child = serve(bin, &config, &dir.path().join("gateway.log"))?;
        let mut gateway = WebGateway {
            child,
            https_port,
            plain_port,
            ca: data.join("certs").join("ca.crt"),
            _dir: dir,
        };
        if let Err(e) = wait_for_port(https_port) {
            let _ = gateway.child.kill();
            return Err(e.context("the gateway did not start"));
        }
        Ok(gateway)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stores `files` over the plain DICOM port with `assocs` `storescu` processes.
    pub fn store(&self, files: &Path, assocs: usize) -> Result<()> {
        storescu(files, GATEWAY_AE, BENCH_AE, self.plain_port, assocs, None)?;
        Ok(())
    }
}

impl Drop for WebGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `pacs-gateway user add FACILITY USER --role clinician`, the password on stdin.
fn add_user(bin: &Path, config: &Path, facility: &str) -> Result<()> {
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(config)
        .args(["user", "add", facility, USER, "--role", "clinician"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("start {}", bin.display()))?;
    child
        .stdin
        .take()
        .context("stdin of pacs-gateway user add")?
        .write_all(format!("{PASSWORD}\n").as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "pacs-gateway user add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
