//! Exactly-once delivery through the binaries (DCMTK storescu as the modality, the
//! `pacs-client` binary, a real gateway on SQLite and PostgreSQL):
//! - a crash after the gateway's commit and before the client's own update, then a
//!   restart: delivered once, no dead letter (deterministic sealing makes the re-send
//!   an identical duplicate); the same for `retry` of a delivered instance;
//! - a corrected re-send (same SOP Instance UID, other content) while the first
//!   version is in flight: both versions are sent in order, and the gateway's
//!   duplicate policy decides what it holds; `status` tells which;
//! - one `serve` per data dir; `send` next to a running `serve` hands its files over
//!   without touching the rows in flight;
//! - a client whose facility does not match its certificate refuses to start.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use client::outbox::Outbox;
use common::{
    Backend, GatewaySide, UID_ROOT, client_config, client_toml, client_toml_with_forwarder,
    free_port, patient, storescu, write_instance,
};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use gateway::config::DuplicatePolicy;
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_pacs-client");

/// A client data dir with its config file and key.
struct Site {
    dir: tempfile::TempDir,
    config: client::config::Config,
    file: PathBuf,
    edge_port: u16,
}

impl Site {
    async fn new(gw: &GatewaySide) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let edge_port = free_port();
        let config = client_config(dir.path(), gw, edge_port);
        let file = dir.path().join("client.toml");
        std::fs::write(&file, client_toml(&config)).unwrap();
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
        let out = self.command(args).output();
        tokio::time::timeout(Duration::from_secs(120), out)
            .await
            .expect("pacs-client finished within 2 minutes")
            .expect("run pacs-client")
    }

    /// `serve` in the background, with `failpoints` set (or none), its log in a file.
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

    async fn outbox(&self) -> Outbox {
        Outbox::open(&self.config.database_url()).await.unwrap()
    }

    /// Waits until the edge port accepts connections.
    async fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.edge_port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "serve did not start listening");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `status --json`, parsed.
    async fn status(&self) -> serde_json::Value {
        let out = self.run(&["status", "--studies", "--json"]).await;
        assert!(out.status.success(), "status: {}", show(&out));
        serde_json::from_slice(&out.stdout).expect("status --json prints JSON")
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

/// Polls `f` every 100 ms until it is true or `within` passes.
async fn eventually<F, Fut>(within: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Rows of an instance, oldest version first: (id, version, state).
async fn versions(outbox: &Outbox, sop: &str) -> Vec<(i64, i64, String)> {
    let mut rows: Vec<(i64, i64, String)> = Vec::new();
    for state in [
        "pending",
        "sending",
        "delivered",
        "dead",
        "refused",
        "superseded",
        "local",
    ] {
        for row in outbox.listed_state(state).await.unwrap() {
            if row.sop_instance_uid == sop {
                rows.push((row.id, row.version, state.to_string()));
            }
        }
    }
    rows.sort();
    rows
}

async fn stop(mut child: Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
}

async fn crash_after_gateway_commit_then_restart(backend: Backend) {
    let gw = GatewaySide::prepare_on(backend).await;
    let running = gw.start().await;
    let site = Site::new(&gw).await;
    let file = write_instance(site.dir.path(), &patient(1), 1, 1, "CT");
    let sop = format!("{UID_ROOT}.3.1.1");

    let mut serve = site.serve(Some("forward.after-gateway-success=abort"), "crash.log");
    site.wait_listening().await;
    storescu(site.edge_port, vec![file]).await;
    let ended = tokio::time::timeout(Duration::from_secs(30), serve.wait())
        .await
        .expect("the failpoint ends serve")
        .unwrap();
    assert!(!ended.success(), "serve aborted: {}", site.log("crash.log"));
    assert_eq!(gw.stored().await.len(), 1, "the gateway committed it");
    let outbox = site.outbox().await;
    assert_eq!(
        versions(&outbox, &sop).await,
        vec![(1, 1, "sending".to_string())],
        "the client never recorded the delivery"
    );

    let serve = site.serve(None, "restart.log");
    let outbox_ref = &outbox;
    let sop_ref = &sop;
    assert!(
        eventually(Duration::from_secs(30), || async move {
            versions(outbox_ref, sop_ref).await == vec![(1, 1, "delivered".to_string())]
        })
        .await,
        "the re-send after restart is delivered: {:?}\n{}",
        versions(&outbox, &sop).await,
        site.log("restart.log")
    );
    assert_eq!(gw.stored().await.len(), 1, "stored exactly once");
    let status = site.status().await;
    assert_eq!(status["dead_letters"], serde_json::json!([]), "{status:#}");
    assert_eq!(status["counts"]["delivered"], 1, "{status:#}");

    // `retry` of a delivered instance sends it again: still delivered, still once.
    let retried = site.run(&["retry", "1"]).await;
    assert!(retried.status.success(), "{}", show(&retried));
    assert!(
        eventually(Duration::from_secs(30), || async move {
            versions(outbox_ref, sop_ref).await == vec![(1, 1, "delivered".to_string())]
        })
        .await,
        "the retried instance is delivered again: {:?}",
        versions(&outbox, &sop).await
    );
    assert_eq!(gw.stored().await.len(), 1, "still stored exactly once");
    let status = site.status().await;
    assert_eq!(status["dead_letters"], serde_json::json!([]), "{status:#}");
    stop(serve).await;
    outbox.close().await;
    running.stop().await;
}
both_backends!(crash_after_gateway_commit_then_restart);

/// A second version of `original`: same UIDs, pixel data filled with `fill`.
fn corrected(original: &Path, fill: u8, out: &Path) -> PathBuf {
    let mut obj = dicom_object::open_file(original).unwrap();
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::from(vec![fill; 512]),
    ));
    obj.write_to_file(out).unwrap();
    out.to_path_buf()
}

/// The pixel bytes of the one blob the gateway holds end with `fill` x 512.
fn gateway_holds_fill(gw: &GatewaySide, fill: u8) -> bool {
    let blobs = gw.config.data_dir.join("blobs");
    let mut files = Vec::new();
    let mut stack = vec![blobs];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "dcm") {
                files.push(path);
            }
        }
    }
    assert_eq!(files.len(), 1, "one blob at the gateway: {files:?}");
    let bytes = std::fs::read(&files[0]).unwrap();
    bytes.ends_with(&[fill; 512])
}

async fn corrected_resend_while_in_flight(backend: Backend, policy: DuplicatePolicy) {
    let mut gw = GatewaySide::prepare_on(backend).await;
    gw.config.ingest.duplicate_policy = policy;
    let running = gw.start().await;
    let site = Site::new(&gw).await;
    let v1 = write_instance(site.dir.path(), &patient(2), 2, 1, "CT");
    let v1 = corrected(&v1, 0x11, &site.dir.path().join("v1.dcm"));
    let v2 = corrected(&v1, 0x22, &site.dir.path().join("v2.dcm"));
    let sop = format!("{UID_ROOT}.3.2.1");

    // Each send waits 2 s before its C-STORE: version 2 arrives while 1 is in flight.
    let serve = site.serve(Some("forward.before-send=sleep-ms:2000"), "serve.log");
    site.wait_listening().await;
    storescu(site.edge_port, vec![v1]).await;
    let outbox = site.outbox().await;
    let (outbox_ref, sop_ref) = (&outbox, &sop);
    assert!(
        eventually(Duration::from_secs(10), || async move {
            versions(outbox_ref, sop_ref).await == vec![(1, 1, "sending".to_string())]
        })
        .await,
        "version 1 is in flight: {:?}",
        versions(&outbox, &sop).await
    );
    storescu(site.edge_port, vec![v2]).await;
    let settled = |rows: &[(i64, i64, String)]| {
        rows.len() == 2
            && rows
                .iter()
                .all(|(_, _, s)| s != "pending" && s != "sending")
    };
    assert!(
        eventually(Duration::from_secs(30), || async move {
            settled(&versions(outbox_ref, sop_ref).await)
        })
        .await,
        "both versions settle: {:?}\n{}",
        versions(&outbox, &sop).await,
        site.log("serve.log")
    );
    let rows = versions(&outbox, &sop).await;
    let status = site.status().await;
    let study = &status["studies"][0];
    assert_eq!(study["location"], "gateway", "{status:#}");
    assert_eq!(study["waiting"], 0, "nothing shows as pending: {status:#}");
    match policy {
        DuplicatePolicy::Replace => {
            assert_eq!(
                rows,
                vec![
                    (1, 1, "superseded".to_string()),
                    (2, 2, "delivered".to_string())
                ]
            );
            assert!(gateway_holds_fill(&gw, 0x22), "the gateway holds version 2");
            assert_eq!(study["refused"], 0, "{status:#}");
        }
        DuplicatePolicy::Reject | DuplicatePolicy::KeepFirst => {
            assert_eq!(
                rows,
                vec![
                    (1, 1, "delivered".to_string()),
                    (2, 2, "refused".to_string())
                ]
            );
            assert!(gateway_holds_fill(&gw, 0x11), "the gateway keeps version 1");
            assert_eq!(study["refused"], 1, "{status:#}");
            let refused = &status["refused"][0];
            assert_eq!(refused["version"], 2, "{status:#}");
            assert!(
                refused["reason"]
                    .as_str()
                    .unwrap()
                    .contains("keeps another version"),
                "{status:#}"
            );
            assert_eq!(status["dead_letters"], serde_json::json!([]), "{status:#}");
        }
    }
    assert_eq!(gw.stored().await.len(), 1);
    stop(serve).await;
    outbox.close().await;
    running.stop().await;
}

async fn corrected_resend_replace(backend: Backend) {
    corrected_resend_while_in_flight(backend, DuplicatePolicy::Replace).await;
}
both_backends!(corrected_resend_replace);

async fn corrected_resend_reject(backend: Backend) {
    corrected_resend_while_in_flight(backend, DuplicatePolicy::Reject).await;
}
both_backends!(corrected_resend_reject);

async fn corrected_resend_keep_first(backend: Backend) {
    corrected_resend_while_in_flight(backend, DuplicatePolicy::KeepFirst).await;
}
both_backends!(corrected_resend_keep_first);

async fn one_serve_per_data_dir_and_send_hands_off(backend: Backend) {
    let gw = GatewaySide::prepare_on(backend).await;
    let running = gw.start().await;
    let site = Site::new(&gw).await;
    let first = write_instance(site.dir.path(), &patient(3), 3, 1, "CT");
    let second = write_instance(site.dir.path(), &patient(3), 3, 2, "CT");

    let mut serve = site.serve(Some("forward.before-send=sleep-ms:3000"), "serve.log");
    site.wait_listening().await;
    let pid = serve.id().unwrap();

    let again = site.run(&["serve"]).await;
    assert!(!again.status.success(), "a second serve is refused");
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(
        said.contains(&format!("pid {pid}")) && said.contains("another pacs-client serve"),
        "the refusal names the running process: {}",
        show(&again)
    );

    // A modality's instance in flight at serve while `send` imports another file.
    storescu(site.edge_port, vec![first]).await;
    let outbox = site.outbox().await;
    let sop1 = format!("{UID_ROOT}.3.3.1");
    let (outbox_ref, sop1_ref) = (&outbox, &sop1);
    assert!(
        eventually(Duration::from_secs(10), || async move {
            outbox_ref.state_of(sop1_ref).await.unwrap().as_deref() == Some("sending")
        })
        .await
    );
    let sent = site.run(&["send", second.to_str().unwrap()]).await;
    assert!(sent.status.success(), "{}", show(&sent));
    let said = String::from_utf8_lossy(&sent.stdout);
    assert!(
        said.contains("is running on this data dir"),
        "send says serve forwards: {}",
        show(&sent)
    );
    assert_eq!(
        outbox.state_of(&sop1).await.unwrap().as_deref(),
        Some("sending"),
        "send did not reset serve's row in flight"
    );
    assert_eq!(
        gw.wait_for(2, Duration::from_secs(30)).await,
        2,
        "serve delivers both: {}",
        site.log("serve.log")
    );
    assert!(serve.try_wait().unwrap().is_none(), "serve still runs");
    let status = site.status().await;
    assert_eq!(status["counts"]["delivered"], 2, "{status:#}");
    assert_eq!(status["dead_letters"], serde_json::json!([]), "{status:#}");
    stop(serve).await;
    outbox.close().await;
    running.stop().await;
}
both_backends!(one_serve_per_data_dir_and_send_hands_off);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facility_must_match_the_certificate() {
    let gw = GatewaySide::prepare().await;
    let site = Site::new(&gw).await;
    let text = std::fs::read_to_string(&site.file)
        .unwrap()
        .replace("facility = \"st-mary\"", "facility = \"st-marx\"");
    std::fs::write(&site.file, text).unwrap();
    let out = site.run(&["serve"]).await;
    assert!(!out.status.success(), "serve refuses to start");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("\"st-marx\"") && said.contains("\"st-mary\""),
        "the message names both facilities: {}",
        show(&out)
    );
}

/// `send` with the gateway down: the instances are queued safely and `send` returns
/// at once saying so; `send --wait` blocks until the gateway has them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_queues_when_the_gateway_is_down_and_wait_delivers() {
    let gw = GatewaySide::prepare().await; // not started
    let site = Site::new(&gw).await;
    let first = write_instance(site.dir.path(), &patient(4), 4, 1, "CT");
    let second = write_instance(site.dir.path(), &patient(4), 4, 2, "CT");
    let started = Instant::now();
    let out = site.run(&["send", first.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", show(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("cannot be reached") && said.contains("queued safely"),
        "{}",
        show(&out)
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "send returned instead of waiting for the gateway"
    );
    let status = site.status().await;
    assert_eq!(status["counts"]["pending"], 1, "{status:#}");

    let running = gw.start().await;
    let out = site
        .run(&["send", "--wait", second.to_str().unwrap()])
        .await;
    assert!(out.status.success(), "{}", show(&out));
    let outbox = site.outbox().await;
    let sop = |i: u32| format!("{UID_ROOT}.3.4.{i}");
    assert_eq!(
        outbox.state_of(&sop(2)).await.unwrap().as_deref(),
        Some("delivered"),
        "send --wait returned once its instance was delivered: {}",
        show(&out)
    );
    // The file queued while the gateway was down, sent again with --wait: the same
    // queued row (identical bytes), waited for until delivered.
    let out = site.run(&["send", "--wait", first.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        outbox.state_of(&sop(1)).await.unwrap().as_deref(),
        Some("delivered"),
        "{}",
        show(&out)
    );
    assert_eq!(gw.stored().await.len(), 2, "both at the gateway, once each");
    let status = site.status().await;
    assert_eq!(status["counts"]["delivered"], 2, "{status:#}");
    assert!(status["counts"].get("pending").is_none(), "{status:#}");
    outbox.close().await;
    running.stop().await;
}

/// The forwarder keeps its association from one batch to the next while instances
/// wait. When the gateway has closed it meanwhile (here: its read timeout, 1 s, passes
/// while the client waits 3 s before reusing it), the next send opens a new one and
/// goes through, without counting a failed try.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kept_association_closed_by_the_gateway_is_reopened() {
    let mut gw = GatewaySide::prepare().await;
    gw.config.dicom.read_timeout_secs = 1;
    let running = gw.start().await;
    let mut site = Site::new(&gw).await;
    // One worker taking one instance per batch: the second instance is the next
    // batch, on the association the first one used.
    site.config.forwarder.associations = 1;
    let toml = client_toml_with_forwarder(&site.config)
        .replace("[forwarder]\n", "[forwarder]\nbatch = 1\n");
    std::fs::write(&site.file, toml).unwrap();
    let first = write_instance(site.dir.path(), &patient(5), 5, 1, "CT");
    let second = write_instance(site.dir.path(), &patient(5), 5, 2, "CT");
    let sop = |i: u32| format!("{UID_ROOT}.3.5.{i}");

    // The forwarder starts 2 s late, so that both instances are queued by then.
    let serve = site.serve(
        Some("forward.start=sleep-ms:2000;forward.reuse=sleep-ms:3000"),
        "serve.log",
    );
    site.wait_listening().await;
    storescu(site.edge_port, vec![first, second]).await;
    let outbox = site.outbox().await;
    let (outbox_ref, sop_ref) = (&outbox, &sop);
    let delivered = eventually(Duration::from_secs(30), || async move {
        outbox_ref.state_of(&sop_ref(1)).await.unwrap().as_deref() == Some("delivered")
            && outbox_ref.state_of(&sop_ref(2)).await.unwrap().as_deref() == Some("delivered")
    })
    .await;
    let log = site.log("serve.log");
    assert!(
        delivered,
        "both delivered: {:?}\n{log}",
        outbox.state_of(&sop(2)).await
    );
    assert!(
        log.contains("the kept association was closed; opening a new one"),
        "{log}"
    );
    assert!(
        !log.contains("send failed; will retry"),
        "no try was counted as failed:\n{log}"
    );
    assert_eq!(gw.stored().await.len(), 2, "both at the gateway, once each");
    stop(serve).await;
    outbox.close().await;
    running.stop().await;
}
