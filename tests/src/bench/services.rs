//! The product's processes as the ingest benchmark runs them: a gateway on a fresh
//! data dir with an enrolled facility, and a facility client (`pacs-client serve`)
//! forwarding to it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::{ClientCert, ServerCerts, free_port, storescu, wait_for_port};

/// Calling AE title of the benchmark's `storescu` (a plain AE of the gateway's
/// facility, and the client's one modality).
pub const BENCH_AE: &str = "BENCH";

/// A gateway process on a fresh data dir, with the facility `bench` enrolled.
pub struct Gateway {
    child: Child,
    tls_port: u16,
    plain_port: u16,
    metrics_port: u16,
    /// Its server certificate and CA (for `storescp +tls` with the same PKI).
    pub server: ServerCerts,
    /// The facility's client certificate.
    pub client: ClientCert,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// Creates a data dir in `work`, enrolls the facility and starts `bin serve`.
    pub fn start(bin: &Path, work: &Path) -> Result<Gateway> {
        Gateway::start_with(bin, work, "")
    }

    /// [`Gateway::start`] with `extra` (whole TOML tables, e.g. `[thumbnails]
    /// enabled = false`) appended to the configuration.
    pub fn start_with(bin: &Path, work: &Path, extra: &str) -> Result<Gateway> {
        let dir = tempfile::tempdir_in(work)?;
        let data = dir.path().join("data");
        let (tls_port, plain_port, metrics_port) = (free_port()?, free_port()?, free_port()?);
        let config = dir.path().join("gateway.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = {data:?}\n[dicom]\ntls_listen = \"127.0.0.1:{tls_port}\"\n\
                 plain_listen = \"127.0.0.1:{plain_port}\"\n[dicom.plain_ae]\n{BENCH_AE} = \"bench\"\n\
                 [https]\nenabled = false\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n{extra}"
            ),
        )?;
        let run = |args: &[&str]| -> Result<()> {
            let out = Command::new(bin)
                .arg("--config")
                .arg(&config)
                .args(args)
                .output()
                .with_context(|| format!("start {}", bin.display()))?;
            if !out.status.success() {
                bail!(
                    "pacs-gateway {args:?} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            Ok(())
        };
        let client_dir = dir.path().join("client");
        run(&["facility", "add", "bench"])?;
        run(&[
            "facility",
            "issue-cert",
            "bench",
            "--out",
            client_dir.to_str().context("utf-8 path")?,
        ])?;
        let child = serve(bin, &config, &dir.path().join("gateway.log"))?;
        wait_for_port(tls_port)?;
        wait_for_port(metrics_port)?;
        Ok(Gateway {
            child,
            tls_port,
            plain_port,
            metrics_port,
            server: ServerCerts::in_dir(&data.join("certs")),
            client: ClientCert::in_dir(&client_dir),
            _dir: dir,
        })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its DICOM TLS port.
    pub fn tls_port(&self) -> u16 {
        self.tls_port
    }

    /// Sends `files` straight to the gateway with `storescu`.
    pub fn send(&self, files: &Path, assocs: usize, tls: bool) -> Result<Duration> {
        let port = if tls { self.tls_port } else { self.plain_port };
        storescu(
            files,
            "PACS_GATEWAY",
            BENCH_AE,
            port,
            assocs,
            tls.then_some(&self.client),
        )
    }

    /// Instances stored so far (`pacs_gateway_instances_received_total`: counted when
    /// the C-STORE succeeds, i.e. once blob and index row are durable).
    pub fn stored(&self) -> Result<u64> {
        self.counter("pacs_gateway_instances_received_total")
    }

    /// The value of the counter `name` (full name, with `_total`) in `/metrics`.
    pub fn counter(&self, name: &str) -> Result<u64> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.metrics_port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .with_context(|| format!("no {name} in /metrics"))?
            .trim()
            .parse::<f64>()
            .map(|n| n as u64)
            .with_context(|| format!("{name} value"))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `pacs-client serve` on a fresh data dir, forwarding to a [`Gateway`] with its
/// facility certificate over `associations` associations.
pub struct Client {
    child: Child,
    edge_port: u16,
    _dir: tempfile::TempDir,
}

impl Client {
    /// Writes the config, creates the facility key (`init`) and starts `serve`.
    pub fn start(bin: &Path, work: &Path, gateway: &Gateway, associations: usize) -> Result<Self> {
        let dir = tempfile::tempdir_in(work)?;
        let edge_port = free_port()?;
        let config = dir.path().join("client.toml");
        let path = |p: &PathBuf| p.display().to_string();
        // The idle poll is shortened from the default 500 ms so that a run of a few
        // seconds measures forwarding, not the first wake-up.
        std::fs::write(
            &config,
            format!(
                "data_dir = {:?}\nfacility = \"bench\"\n[edge]\nlisten = \"127.0.0.1:{edge_port}\"\n\
                 [[edge.modalities]]\nae_title = \"{BENCH_AE}\"\n\
                 [gateway]\naddress = \"127.0.0.1:{}\"\ncert = {:?}\nkey = {:?}\nca = {:?}\n\
                 [forwarder]\nassociations = {associations}\npoll_interval_ms = 50\n",
                path(&dir.path().join("data")),
                gateway.tls_port(),
                path(&gateway.client.cert),
                path(&gateway.client.key),
                path(&gateway.client.ca),
            ),
        )?;
        let out = Command::new(bin)
            .arg("--config")
            .arg(&config)
            .arg("init")
            .output()
            .with_context(|| format!("start {}", bin.display()))?;
        if !out.status.success() {
            bail!(
                "pacs-client init failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let child = serve(bin, &config, &dir.path().join("client.log"))?;
        wait_for_port(edge_port)?;
        Ok(Client {
            child,
            edge_port,
            _dir: dir,
        })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `files` to the client's edge (plain DICOM, as a modality does).
    pub fn send(&self, files: &Path, assocs: usize) -> Result<Duration> {
        storescu(files, "PACS_CLIENT", BENCH_AE, self.edge_port, assocs, None)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `BIN --config CONFIG serve` with warnings and errors logged to `log`.
pub(crate) fn serve(bin: &Path, config: &Path, log: &Path) -> Result<Child> {
    let log = std::fs::File::create(log)?;
    let child = Command::new(bin)
        .arg("--config")
        .arg(config)
        .arg("serve")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("start {}", bin.display()))?;
    Ok(child)
}
