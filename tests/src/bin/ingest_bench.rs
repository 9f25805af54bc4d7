//! Ingest benchmark: the same synthetic CT instances (512x512, 16-bit) sent with DCMTK
//! `storescu` to DCMTK `storescp`, to the gateway (fresh data dir each run: durable
//! writes, hashing, validation, indexing), and to Orthanc when installed, with 1 and 4
//! associations, plain and TLS. Prints instances/s, MB/s and the gateway/peer ratio
//! measured in the same run.
//!
//! Run with `scripts/bench-ingest.sh [COUNT]` (release build). Never part of the tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tests::bench::{ClientCert, Peer, ServerCerts, free_port, generate, storescu, wait_for_port};

fn main() -> Result<()> {
    let count: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1000);
    let bin = PathBuf::from(
        std::env::var("PACS_GATEWAY_BIN").unwrap_or_else(|_| "target/release/pacs-gateway".into()),
    );
    for tool in ["storescu", "storescp"] {
        if Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            bail!("{tool} not found: apt-get install -y dcmtk");
        }
    }
    let work = tempfile::tempdir()?;
    let files = work.path().join("files");
    println!("generating {count} CT instances (512x512x16) ...");
    let mb = generate(&files, count)? as f64 / 1e6;
    println!("{count} files, {mb:.0} MB; gateway: {}", bin.display());

    let mut rows = Vec::new();
    for assocs in [1usize, 4] {
        for tls in [false, true] {
            let gateway = Gateway::start(&bin, work.path())?;
            let storescp = Peer::storescp(work.path(), tls, &gateway.server)?;
            let base = storescp.send(&files, assocs, tls.then_some(&gateway.client))?;
            drop(storescp);
            let ours = gateway.send(&files, assocs, tls)?;
            let peer = if tls {
                "storescp +tls / gateway TLS"
            } else {
                "storescp / gateway plain"
            };
            rows.push((peer, assocs, base, ours));
        }
        match Peer::orthanc(work.path())? {
            Some(orthanc) => {
                let base = orthanc.send(&files, assocs, None)?;
                drop(orthanc);
                let ours = Gateway::start(&bin, work.path())?.send(&files, assocs, true)?;
                rows.push(("Orthanc plain / gateway TLS", assocs, base, ours));
            }
            None if assocs == 1 => {
                println!("Orthanc not installed (apt-get install orthanc): skipped")
            }
            None => {}
        }
    }
    println!();
    println!(
        "{:<30} {:>6} {:>11} {:>9} {:>10} {:>8} {:>7}",
        "peer / gateway", "assocs", "peer inst/s", "peer MB/s", "gw inst/s", "gw MB/s", "ratio"
    );
    for (name, assocs, base, ours) in rows {
        let rate = |d: Duration| count as f64 / d.as_secs_f64();
        println!(
            "{name:<30} {assocs:>6} {:>11.0} {:>9.1} {:>10.0} {:>8.1} {:>6.2}x",
            rate(base),
            mb / base.as_secs_f64(),
            rate(ours),
            mb / ours.as_secs_f64(),
            base.as_secs_f64() / ours.as_secs_f64()
        );
    }
    Ok(())
}

/// A gateway process on a fresh data dir, with an enrolled facility.
struct Gateway {
    child: Child,
    tls_port: u16,
    plain_port: u16,
    server: ServerCerts,
    client: ClientCert,
    _dir: tempfile::TempDir,
}

impl Gateway {
    fn start(bin: &Path, work: &Path) -> Result<Gateway> {
        let dir = tempfile::tempdir_in(work)?;
        let data = dir.path().join("data");
        let (tls_port, plain_port) = (free_port()?, free_port()?);
        let config = dir.path().join("gateway.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = {data:?}\n[dicom]\ntls_listen = \"127.0.0.1:{tls_port}\"\n\
                 plain_listen = \"127.0.0.1:{plain_port}\"\n[dicom.plain_ae]\nBENCH = \"bench\"\n\
                 [https]\nenabled = false\n[metrics]\nlisten = \"\"\n"
            ),
        )?;
        let run = |args: &[&str]| -> Result<()> {
            let out = Command::new(bin)
                .arg("--config")
                .arg(&config)
                .args(args)
                .output()?;
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
        let log = std::fs::File::create(dir.path().join("gateway.log"))?;
        let child = Command::new(bin)
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .env("RUST_LOG", "warn")
            .stderr(log)
            .spawn()?;
        wait_for_port(tls_port)?;
        let server = ServerCerts::in_dir(&data.join("certs"));
        let client = ClientCert::in_dir(&client_dir);
        Ok(Gateway {
            child,
            tls_port,
            plain_port,
            server,
            client,
            _dir: dir,
        })
    }

    fn send(&self, files: &Path, assocs: usize, tls: bool) -> Result<Duration> {
        let port = if tls { self.tls_port } else { self.plain_port };
        storescu(
            files,
            "PACS_GATEWAY",
            "BENCH",
            port,
            assocs,
            tls.then_some(&self.client),
        )
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
