//! Modality (DCMTK storescu) -> facility client -> gateway over DICOM TLS, for real:
//! what arrives, what must never arrive, and what survives outages and crashes.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use client::app::Client;
use client::config::{Config, Destination, Rule};
use common::{GatewaySide, UID_ROOT, client_config, free_port, patient, storescu, write_instance};
use dicom_object::{InMemDicomObject, OpenFileOptions};
use phi::keys::FacilityKey;
use tokio::sync::oneshot;

/// Starts a client in this process; returns its key and a stopper.
async fn start_client(
    config: &Config,
) -> (
    FacilityKey,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let key = match client::keyfile::load(&config.key_file()) {
        Ok(key) => key,
        Err(_) => client::keyfile::create(&config.key_file()).unwrap(),
    };
    let client = Client::build(config).await.unwrap();
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(client.run_until_stopped(async move {
        let _ = rx.await;
    }));
    (key, tx, task)
}

fn read_object(path: &std::path::Path) -> InMemDicomObject {
    OpenFileOptions::new().open_file(path).unwrap().into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn modality_to_gateway_is_deidentified_and_reversible() {
    let gw = GatewaySide::prepare().await;
    let running = gw.start().await;
    let dir = tempfile::tempdir().unwrap();
    let edge = free_port();
    let config = client_config(dir.path(), &gw, edge);
    let (key, stop, task) = start_client(&config).await;

    let (p1, p2) = (patient(1), patient(2));
    let mut files = Vec::new();
    for i in 1..=3 {
        files.push(write_instance(dir.path(), &p1, 1, i, "CT chest"));
        files.push(write_instance(dir.path(), &p2, 2, i, "CT head"));
    }
    storescu(edge, files.clone()).await;
    assert_eq!(
        gw.wait_for(6, Duration::from_secs(30)).await,
        6,
        "every instance arrives"
    );
    let rows = gw.stored().await;
    assert!(
        rows.iter().all(|r| r.sop_instance_uid.starts_with("2.25.")),
        "UIDs are pseudonymous"
    );
    let studies: std::collections::BTreeSet<_> = rows.iter().map(|r| r.study_uid.clone()).collect();
    assert_eq!(
        studies.len(),
        2,
        "instances of one study keep one (pseudonymous) study UID"
    );

    // Not one original identifier anywhere in what the gateway stored.
    let mut secrets: Vec<String> = vec![
        UID_ROOT.into(),
        "House^Gregory".into(),
        "St Mary Hospital".into(),
    ];
    for p in [&p1, &p2] {
        let family = p.name.split('^').next().unwrap().to_string();
        secrets.extend([
            family,
            "Jürgen".into(),
            p.id.clone(),
            p.birth_date.clone(),
            p.accession.clone(),
        ]);
    }
    for file in gw.all_files() {
        let bytes = std::fs::read(&file).unwrap();
        for secret in &secrets {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "{secret:?} found in {}", file.display());
        }
    }

    // The facility key gives every original back, exactly.
    let ring = key.ring();
    let originals: Vec<InMemDicomObject> = files.iter().map(|f| read_object(f)).collect();
    for row in &rows {
        let stored = read_object(&gw.config.data_dir.join("blobs").join(&row.blob_key));
        let restored = phi::deid::reidentify(&stored, &ring, common::FACILITY).unwrap();
        let sop = restored
            .element(dicom_dictionary_std::tags::SOP_INSTANCE_UID)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let original = originals
            .iter()
            .find(|o| {
                o.element(dicom_dictionary_std::tags::SOP_INSTANCE_UID)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    == sop
            })
            .expect("re-identified UID is one of the originals");
        assert_eq!(
            &restored, original,
            "re-identification restores {sop} exactly"
        );
    }
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gateway_outage_spools_then_delivers_everything() {
    let gw = GatewaySide::prepare().await;
    let dir = tempfile::tempdir().unwrap();
    let edge = free_port();
    let config = client_config(dir.path(), &gw, edge);
    let (_key, stop, task) = start_client(&config).await;

    let files: Vec<PathBuf> = (1..=4)
        .map(|i| write_instance(dir.path(), &patient(3), 3, i, "CT"))
        .collect();
    storescu(edge, files).await; // accepted although the gateway is down
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let running = gw.start().await;
    assert_eq!(
        gw.wait_for(4, Duration::from_secs(30)).await,
        4,
        "delivered once the gateway is back"
    );
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_only_instances_never_reach_the_gateway() {
    let gw = GatewaySide::prepare().await;
    let running = gw.start().await;
    let dir = tempfile::tempdir().unwrap();
    let edge = free_port();
    let mut config = client_config(dir.path(), &gw, edge);
    config.sharing.rules.push(Rule {
        calling_ae: None,
        modality: None,
        study_description: Some("*research*".into()),
        action: Destination::Local,
    });
    let (_key, stop, task) = start_client(&config).await;
    let mut files: Vec<PathBuf> = (1..=2)
        .map(|i| write_instance(dir.path(), &patient(4), 4, i, "Trial RESEARCH arm"))
        .collect();
    files.extend((1..=2).map(|i| write_instance(dir.path(), &patient(5), 5, i, "CT")));
    storescu(edge, files).await;
    assert_eq!(gw.wait_for(2, Duration::from_secs(30)).await, 2);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        gw.stored().await.len(),
        2,
        "local-only instances stayed local"
    );
    let outbox = client::outbox::open(&config).await.unwrap();
    assert_eq!(
        outbox
            .state_of(&format!("{UID_ROOT}.3.4.1"))
            .await
            .unwrap()
            .as_deref(),
        Some("local")
    );
    assert_eq!(
        outbox
            .state_of(&format!("{UID_ROOT}.3.5.1"))
            .await
            .unwrap()
            .as_deref(),
        Some("delivered")
    );
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    running.stop().await;
}

fn spawn_client_process(config_file: &std::path::Path, log: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_pacs-client"))
        .arg("--config")
        .arg(config_file)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_batch_loses_nothing_and_stores_nothing_twice() {
    let gw = GatewaySide::prepare().await;
    let dir = tempfile::tempdir().unwrap();
    let edge = free_port();
    let config = client_config(dir.path(), &gw, edge);
    client::keyfile::create(&config.key_file()).unwrap();
    let config_file = dir.path().join("client.toml");
    std::fs::write(&config_file, common::client_toml(&config)).unwrap();

    let mut child = spawn_client_process(&config_file, &dir.path().join("client1.log"));
    wait_for_port(edge).await;
    let files: Vec<PathBuf> = (1..=30)
        .map(|i| write_instance(dir.path(), &patient(6), 6, i, "CT"))
        .collect();
    storescu(edge, files).await; // all spooled, gateway still down
    let running = gw.start().await;
    let partial = gw.wait_for(5, Duration::from_secs(30)).await;
    child.kill().unwrap(); // SIGKILL in the middle of the batch
    child.wait().unwrap();
    assert!(
        partial >= 5,
        "some instances were delivered before the kill"
    );

    let mut child = spawn_client_process(&config_file, &dir.path().join("client2.log"));
    let total = gw.wait_for(30, Duration::from_secs(60)).await;
    let rows = gw.stored().await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(total, 30, "nothing lost across the crash");
    let unique: std::collections::BTreeSet<_> =
        rows.iter().map(|r| r.sop_instance_uid.clone()).collect();
    assert_eq!(unique.len(), rows.len(), "nothing stored twice");
    running.stop().await;
}

async fn wait_for_port(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the client did not listen on {port}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retention_removes_delivered_copies_and_keeps_local_ones() {
    let gw = GatewaySide::prepare().await;
    let running = gw.start().await;
    let dir = tempfile::tempdir().unwrap();
    let edge = free_port();
    let mut config = client_config(dir.path(), &gw, edge);
    config.retention.local_days = 0;
    config.retention.sweep_interval_secs = 1;
    config.sharing.rules.push(Rule {
        calling_ae: None,
        modality: None,
        study_description: Some("*research*".into()),
        action: Destination::Local,
    });
    let (_key, stop, task) = start_client(&config).await;
    let shared = write_instance(dir.path(), &patient(7), 7, 1, "CT");
    let local = write_instance(dir.path(), &patient(8), 8, 1, "research");
    storescu(edge, vec![shared, local]).await;
    assert_eq!(gw.wait_for(1, Duration::from_secs(30)).await, 1);
    let spool = config.data_dir.join("spool");
    // Spool files are <study>/<sop>.<reception>.dcm: one per received version.
    let copies = |study: u32, sop: &str| -> usize {
        std::fs::read_dir(spool.join(format!("{UID_ROOT}.1.{study}")))
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        name.starts_with(&format!("{sop}.")) && name.ends_with(".dcm")
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    let (delivered_sop, local_sop) = (format!("{UID_ROOT}.3.7.1"), format!("{UID_ROOT}.3.8.1"));
    assert_eq!(
        copies(8, &local_sop),
        1,
        "the local-only instance is spooled"
    );
    let mut gone = false;
    for _ in 0..100 {
        if copies(7, &delivered_sop) == 0 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        gone,
        "the delivered instance's local copy is removed after retention"
    );
    assert_eq!(
        copies(8, &local_sop),
        1,
        "a local-only instance is never removed"
    );
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn modalities_can_store_over_tls_with_a_certificate() {
    let gw = GatewaySide::prepare().await;
    let running = gw.start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = gateway::pki::Ca::create("Facility modality CA").unwrap();
    let certs = dir.path().join("edge-certs");
    std::fs::create_dir_all(&certs).unwrap();
    let (edge_crt, edge_key) = ca
        .issue_server(&["localhost".to_string()])
        .unwrap()
        .write(&certs, "edge")
        .unwrap();
    let (mod_crt, mod_key) = ca
        .issue_client("CT_ROOM_1", None)
        .unwrap()
        .write(&certs, "modality")
        .unwrap();
    let ca_file = certs.join("ca.crt");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();

    let edge = free_port();
    let mut config = client_config(dir.path(), &gw, edge);
    config.edge.tls_cert = Some(edge_crt);
    config.edge.tls_key = Some(edge_key);
    config.edge.tls_ca = Some(ca_file.clone());
    let (_key, stop, task) = start_client(&config).await;
    let file = write_instance(dir.path(), &patient(9), 9, 1, "CT");
    let storescu = |tls: Vec<String>, file: PathBuf| {
        tokio::task::spawn_blocking(move || {
            Command::new(common::dcmtk_path("storescu"))
                .env("TCP_NODELAY", "1")
                .args(tls)
                .args([
                    "-aet",
                    common::MODALITY_AE,
                    "-aec",
                    "PACS_CLIENT",
                    "localhost",
                    &edge.to_string(),
                ])
                .arg(file)
                .output()
                .unwrap()
        })
    };
    let show = |p: &std::path::Path| p.display().to_string();
    let anonymous = vec!["+tla".into(), "+cf".into(), show(&ca_file)];
    let refused = storescu(anonymous, file.clone()).await.unwrap();
    assert!(
        !refused.status.success(),
        "a modality without a certificate was accepted over TLS"
    );
    let with_cert = vec![
        "+tls".into(),
        show(&mod_key),
        show(&mod_crt),
        "+cf".into(),
        show(&ca_file),
    ];
    let out = storescu(with_cert, file).await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(gw.wait_for(1, Duration::from_secs(30)).await, 1);
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    running.stop().await;
}
