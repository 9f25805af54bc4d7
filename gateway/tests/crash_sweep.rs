//! The blob sweep through the `pacs-gateway` binary:
//! - kill -9 at 20 random points of an ingest (our own SCU sending, nothing ever sent
//!   twice), a restart after each; after the last restart and its sweep: no blob
//!   without an index row, no row without its blob, and every acknowledged instance
//!   stored with the SHA-256 of what was sent;
//! - a restart removes this node's abandoned temp files and leaves another node's
//!   alone; an old orphan is deleted and a young one kept; a row whose blob is gone is
//!   reported (log + metric) and kept.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::peers::{ct_proposal, dataset_bytes, deidentified_ct, plain_options};
use common::{Backend, Options, Setup, data};
use dimse::Status;
use dimse::scu::ScuAssociation;
use sha2::Digest;

const BIN: &str = env!("CARGO_BIN_EXE_pacs-gateway");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A gateway data dir served by the binary on a fixed plain port.
struct Node {
    setup: Setup,
    config: PathBuf,
    port: u16,
    metrics_port: u16,
}

impl Node {
    async fn new(backend: Backend) -> Node {
        let setup = Setup::new(backend, &Options::default()).await;
        let port = free_port();
        let metrics_port = free_port();
        let mut text = format!(
            "data_dir = {:?}\n",
            setup.config.data_dir.display().to_string()
        );
        if let Some(url) = &setup.config.database_url {
            text.push_str(&format!("database_url = {url:?}\n"));
        }
        text.push_str(&format!(
            "[dicom]\ntls_listen = \"\"\nplain_listen = \"127.0.0.1:{port}\"\n\
             [dicom.plain_ae]\n{} = {:?}\n[https]\nenabled = false\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\
             [ingest]\norphan_min_age_secs = 5\nsweep_interval_secs = 3600\n",
            common::PLAIN_AE,
            common::FACILITY
        ));
        let config = setup.dir.path().join("gateway.toml");
        std::fs::write(&config, text).unwrap();
        Node {
            setup,
            config,
            port,
            metrics_port,
        }
    }

    fn log(&self, name: &str) -> PathBuf {
        self.setup.dir.path().join(name)
    }

    /// `serve`, its log in `log`; returns once the DICOM port accepts connections.
    fn start(&self, log: &str) -> Child {
        let child = Command::new(BIN)
            .args(["--config", self.config.to_str().unwrap(), "serve"])
            .env_remove("RUST_LOG")
            .env_remove("PACS_LOG_FORMAT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.log(log)).unwrap())
            .spawn()
            .expect("spawn pacs-gateway serve");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "serve did not listen:\n{}",
                self.text(log)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    fn text(&self, log: &str) -> String {
        std::fs::read_to_string(self.log(log)).unwrap_or_default()
    }

    /// The fields of the "blob sweep finished" line, once it is in `log`.
    fn sweep_line(&self, log: &str) -> BTreeMap<String, String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = self.text(log);
            if let Some(line) = text.lines().find(|l| l.contains("blob sweep finished")) {
                return line
                    .split_whitespace()
                    .filter_map(|w| w.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
            }
            assert!(
                Instant::now() < deadline,
                "no sweep line in the log:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn metrics(&self) -> String {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port)).unwrap();
        conn.write_all(
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        let mut text = String::new();
        conn.read_to_string(&mut text).unwrap();
        text
    }
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Instances acknowledged with success: SOP Instance UID -> SHA-256 of the data set.
type Acked = Arc<Mutex<BTreeMap<String, String>>>;

/// Sends fresh instances `first..` over one association until the gateway goes away;
/// each is sent once, never again. Returns the next unused number.
async fn send_until_killed(port: u16, first: u32, acked: Acked) -> u32 {
    let addr = format!("127.0.0.1:{port}");
    let Ok(mut scu) = ScuAssociation::connect(&addr, &plain_options(), &[ct_proposal()]).await
    else {
        return first;
    };
    let mut n = first;
    loop {
        let spec = deidentified_ct(n);
        let bytes = dataset_bytes(&spec);
        n += 1;
        match scu
            .store(data::CT, &spec.sop_uid, data::EXPLICIT_LE, &bytes[..])
            .await
        {
            Ok(rsp) if rsp.status == Status::Success => {
                let sha = hex::encode(sha2::Sha256::digest(&bytes));
                acked.lock().unwrap().insert(spec.sop_uid.clone(), sha);
            }
            Ok(rsp) => panic!("instance {n} refused: {rsp:?}"),
            Err(_) => return n,
        }
    }
}

/// xorshift64*: deterministic delays from a printed seed.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

fn blob_files(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                // Temp files, and the thumbnail cache (not instances).
                if path != root.join("incoming") && path != root.join("thumbnails") {
                    stack.push(path);
                }
            } else {
                out.insert(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    out
}

async fn kill_at_random_points_then_sweep(backend: Backend) {
    common::require_dcmtk();
    let node = Node::new(backend).await;
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill points seed: {seed}");
    let acked: Acked = Arc::default();
    let mut n = 0u32;
    for round in 0..20 {
        let child = node.start(&format!("round{round}.log"));
        let sender = tokio::spawn(send_until_killed(node.port, n, acked.clone()));
        let delay = Duration::from_millis(30 + next(&mut seed) % 700);
        tokio::time::sleep(delay).await;
        // kill -9: no shutdown, no cleanup.
        let mut child = child;
        child.kill().unwrap();
        child.wait().unwrap();
        n = tokio::time::timeout(Duration::from_secs(30), sender)
            .await
            .expect("the sender notices the killed gateway")
            .unwrap();
    }
    let acknowledged = acked.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 20,
        "the ingest ran between kills: {} acknowledged",
        acknowledged.len()
    );
    // Past orphan_min_age_secs (5 s): every orphan is old enough for the sweep.
    std::thread::sleep(Duration::from_millis(5500));
    let child = node.start("final.log");
    let sweep = node.sweep_line("final.log");
    eprintln!(
        "sent {n}, acknowledged {}, final sweep: {sweep:?}",
        acknowledged.len()
    );
    let metrics = node.metrics();
    stop(child);

    let index = node.setup.index().await;
    let rows = index.instances(node.setup.facility.id).await.unwrap();
    index.close().await;
    let root = node.setup.blob_root();
    let files = blob_files(&root);
    let keys: BTreeSet<String> = rows.iter().map(|r| r.blob_key.clone()).collect();
    let orphans: Vec<&String> = files.difference(&keys).collect();
    let without_blob: Vec<&String> = keys.difference(&files).collect();
    assert!(
        orphans.is_empty(),
        "orphan blobs after the sweep: {orphans:?}"
    );
    assert!(
        without_blob.is_empty(),
        "rows without blobs: {without_blob:?}"
    );
    assert_eq!(
        sweep.get("rows_without_blob").map(String::as_str),
        Some("0")
    );
    assert!(
        metrics.contains("pacs_gateway_index_rows_without_blob 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pacs_gateway_blob_sweeps_total 1"),
        "{metrics}"
    );
    for row in &rows {
        let stored = common::dataset_sha256(&root.join(&row.blob_key));
        assert_eq!(stored, row.sha256, "blob content of {}", row.blob_key);
    }
    let by_uid: BTreeMap<&str, &str> = rows
        .iter()
        .map(|r| (r.sop_instance_uid.as_str(), r.sha256.as_str()))
        .collect();
    for (uid, sha) in &acknowledged {
        assert_eq!(
            by_uid.get(uid.as_str()).copied(),
            Some(sha.as_str()),
            "acknowledged instance {uid} is stored with the SHA-256 sent"
        );
    }
    let removed: u64 = (0..20)
        .map(|r| node.text(&format!("round{r}.log")))
        .chain([node.text("final.log")])
        .filter_map(|text| {
            text.lines()
                .find(|l| l.contains("blob sweep finished"))
                .and_then(|l| {
                    l.split_whitespace()
                        .find_map(|w| w.strip_prefix("orphans_removed="))
                        .and_then(|v| v.parse::<u64>().ok())
                })
        })
        .sum();
    eprintln!(
        "{} rows, {} blobs, {} orphans removed by the sweeps over 20 kills",
        rows.len(),
        files.len(),
        removed
    );
    assert!(node.setup.temp_files().is_empty(), "no temp file left");
}
both_backends!(kill_at_random_points_then_sweep);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_keeps_other_nodes_temp_files_and_reports_rows_without_blobs() {
    let node = Node::new(Backend::Sqlite).await;
    // Two stored instances, then one blob lost (as from a failed disk).
    let child = node.start("first.log");
    n_stored(&node, 2).await;
    stop(child);
    let index = node.setup.index().await;
    let rows = index.instances(node.setup.facility.id).await.unwrap();
    index.close().await;
    assert_eq!(rows.len(), 2);
    let root = node.setup.blob_root();
    std::fs::remove_file(root.join(&rows[0].blob_key)).unwrap();

    // Orphans: one old (a crash long ago), one fresh (maybe a store in progress).
    let dir = root.join("f1").join("1.2.3");
    std::fs::create_dir_all(&dir).unwrap();
    let old = dir.join("1.2.3.4.0123456789abcdef.dcm");
    let young = dir.join("1.2.3.5.0123456789abcdef.dcm");
    for path in [&old, &young] {
        std::fs::write(path, b"orphan").unwrap();
    }
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
    // Temp files: another node's fresh one, and one of this node's ended processes.
    let us = gateway::blobs::node::NodeName::of_this_host();
    let random = || uuid::Uuid::new_v4().simple().to_string();
    let incoming = root.join("incoming");
    let theirs = incoming.join(format!(
        "gw-other-node.{}.{}.part",
        std::process::id(),
        random()
    ));
    let ours_dead = incoming.join(format!("{}.99999999.{}.part", us.as_str(), random()));
    for path in [&theirs, &ours_dead] {
        std::fs::write(path, b"partial").unwrap();
    }
    // The young orphan must stay young for the sweep below (orphan_min_age_secs = 5
    // in this config): give it a future time, as a clock a little ahead would.
    std::fs::File::options()
        .write(true)
        .open(&young)
        .unwrap()
        .set_modified(SystemTime::now() + Duration::from_secs(600))
        .unwrap();

    let child = node.start("second.log");
    let sweep = node.sweep_line("second.log");
    let metrics = node.metrics();
    stop(child);
    let log = node.text("second.log");
    assert!(theirs.exists(), "another node's temp file is left alone");
    assert!(
        !ours_dead.exists(),
        "this node's abandoned temp file is removed"
    );
    assert!(!old.exists(), "the old orphan is deleted");
    assert!(young.exists(), "the young orphan is kept for a later sweep");
    assert_eq!(sweep["orphans_removed"], "1", "{sweep:?}");
    assert_eq!(sweep["orphans_too_young"], "1", "{sweep:?}");
    assert_eq!(sweep["rows_without_blob"], "1", "{sweep:?}");
    assert!(
        log.contains("index row without its blob") && log.contains(&rows[0].blob_key),
        "{log}"
    );
    assert!(
        metrics.contains("pacs_gateway_index_rows_without_blob 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pacs_gateway_orphan_blobs_removed_total 1"),
        "{metrics}"
    );
    let index = node.setup.index().await;
    assert_eq!(
        index.instances(node.setup.facility.id).await.unwrap().len(),
        2,
        "a row without its blob is never deleted"
    );
    index.close().await;
}

async fn n_stored(node: &Node, count: u32) {
    let addr = format!("127.0.0.1:{}", node.port);
    let mut scu = ScuAssociation::connect(&addr, &plain_options(), &[ct_proposal()])
        .await
        .expect("associate");
    for n in 0..count {
        let spec = deidentified_ct(1000 + n);
        let rsp = scu
            .store(
                data::CT,
                &spec.sop_uid,
                data::EXPLICIT_LE,
                &dataset_bytes(&spec)[..],
            )
            .await
            .expect("store");
        assert_eq!(rsp.status, Status::Success);
    }
    scu.release().await.expect("release");
}
