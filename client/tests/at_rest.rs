//! Data at rest and outbox robustness through the `pacs-client` binary (DCMTK
//! storescu as the modality, a real gateway):
//! - the data dir is 0700 and every file the client writes 0600 (spool, outbox
//!   database, facility key), whatever the umask of whoever starts it;
//! - a world-readable TLS client key is refused (exit 64, naming the file), or only
//!   warned about with `[gateway] key_permissions = "warn"`;
//! - an outbox write that fails after the gateway's answer (failpoint
//!   `outbox.record=fail-once`, as on a full disk) does not leave the row claimed:
//!   the running forwarder records it on its next round, without a restart, and the
//!   instance is stored once.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use client::outbox::Outbox;
use common::{
    GatewaySide, client_config, client_toml, free_port, patient, storescu, write_instance,
};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_pacs-client");

struct Site {
    dir: tempfile::TempDir,
    config: client::config::Config,
    file: PathBuf,
    edge_port: u16,
}

impl Site {
    async fn new(gw: &GatewaySide, extra_gateway_toml: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let edge_port = free_port();
        let config = client_config(dir.path(), gw, edge_port);
        let file = dir.path().join("client.toml");
        let toml = client_toml(&config).replace(
            "[forwarder]\n",
            &format!("{extra_gateway_toml}[forwarder]\n"),
        );
        std::fs::write(&file, toml).unwrap();
        let site = Site {
            dir,
            config,
            file,
            edge_port,
        };
        let init = site.run(&["init"]).await;
        assert!(init.status.success(), "init: {}", show(&init));
        site
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(self.dir.path())
            .env_remove("PACS_CLIENT_CONFIG")
            .env_remove(client::failpoint::ENV)
            .env_remove("RUST_LOG")
            .arg("--config")
            .arg(&self.file)
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    async fn run(&self, args: &[&str]) -> std::process::Output {
        tokio::time::timeout(Duration::from_secs(120), self.command(args).output())
            .await
            .expect("pacs-client finished within 2 minutes")
            .expect("run pacs-client")
    }

    fn serve(&self, failpoints: Option<&str>, log: &str) -> Child {
        let mut cmd = self.command(&["serve"]);
        if let Some(points) = failpoints {
            cmd.env(client::failpoint::ENV, points);
        }
        cmd.stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join(log)).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn pacs-client serve")
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    async fn wait_listening(&self, log: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.edge_port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "serve did not start listening:\n{}",
                self.log(log)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn outbox(&self) -> Outbox {
        Outbox::open(&self.config.database_url()).await.unwrap()
    }
}

fn show(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn stop(mut child: Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every file and directory under `dir` (itself included), with its mode.
fn modes(dir: &Path) -> Vec<(PathBuf, bool, u32)> {
    let mut out = vec![(dir.to_path_buf(), true, mode(dir))];
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(modes(&path));
        } else {
            out.push((path.clone(), false, mode(&path)));
        }
    }
    out
}

/// Polls the outbox until `sop`'s only row is in `state`.
async fn wait_state(outbox: &Outbox, sop: &str, state: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if outbox.state_of(sop).await.unwrap().as_deref() == Some(state) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn data_dir_private_and_failed_outbox_write_recovered_without_restart() {
    let gw = GatewaySide::prepare().await;
    let running = gw.start().await;
    let site = Site::new(&gw, "").await;
    // An existing, too open data dir is tightened at start.
    std::fs::set_permissions(
        &site.config.data_dir,
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let file = write_instance(site.dir.path(), &patient(1), 1, 1, "CT");
    let sop = format!("{}.3.1.1", common::UID_ROOT);

    let serve = site.serve(Some("outbox.record=fail-once"), "serve.log");
    site.wait_listening("serve.log").await;
    storescu(site.edge_port, vec![file]).await;
    let outbox = site.outbox().await;
    assert!(
        wait_state(&outbox, &sop, "delivered").await,
        "delivered without a restart: {:?}\n{}",
        outbox.state_of(&sop).await,
        site.log("serve.log")
    );
    let log = site.log("serve.log");
    assert!(
        log.contains("failpoint outbox.record: failing a local write")
            && log.contains("cannot record the send result"),
        "the write did fail once:\n{log}"
    );
    assert!(
        log.contains("recorded send results a failed outbox write had left open"),
        "{log}"
    );
    assert_eq!(gw.stored().await.len(), 1, "stored exactly once");
    assert_eq!(
        outbox.listed_state("sending").await.unwrap().len(),
        0,
        "no row left claimed"
    );
    outbox.close().await;

    // Modes, with serve still running (its WAL files open).
    let all = modes(&site.config.data_dir);
    assert!(
        all.iter().filter(|(_, dir, _)| !dir).count() >= 3,
        "{all:?}"
    );
    for (path, dir, m) in &all {
        let want = if *dir { 0o700 } else { 0o600 };
        assert_eq!(*m, want, "{} is {m:o}", path.display());
    }
    for name in ["client.db", "facility.key"] {
        assert!(site.config.data_dir.join(name).is_file(), "{name}");
    }
    assert!(
        all.iter()
            .any(|(p, dir, _)| !dir && p.starts_with(site.config.data_dir.join("spool"))),
        "a spooled instance was checked: {all:?}"
    );
    stop(serve).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readable_tls_key_is_refused_or_only_warned_about() {
    let gw = GatewaySide::prepare().await;
    let site = Site::new(&gw, "").await;
    let key = gw.cert_dir.join("facility.key");
    assert_eq!(mode(&key), 0o600, "issued keys are private");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = site.run(&["serve"]).await;
    assert_eq!(out.status.code(), Some(64), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains(&key.display().to_string()) && text.contains("chmod 600"),
        "{text}"
    );

    let warn = Site::new(&gw, "key_permissions = \"warn\"\n").await;
    let serve = warn.serve(None, "warn.log");
    warn.wait_listening("warn.log").await;
    let log = warn.log("warn.log");
    assert!(
        log.contains("private key readable or writable by other users"),
        "{log}"
    );
    stop(serve).await;
}
