//! Certificate revocation through the operator CLI: `pacs-gateway facility certs`
//! lists the enrolled certificate, `facility revoke-cert` revokes it (an
//! `admin-change` event, protocol `cli`), and from then on DCMTK's `storescu +tls`
//! with that certificate is refused; the refusal is a `security-alert` in the trail.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::data::{self, Spec};
use common::{Backend, GATEWAY_AE, TestGateway, dcmtk_async};
use gateway::audit::{AuditFilter, EventKind, Outcome, Protocol, search};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A config file for the binary naming the test gateway's data dir and database.
fn config_file(gw: &TestGateway) -> PathBuf {
    let path = gw.setup.dir.path().join("cli.toml");
    let mut text = format!("data_dir = {:?}\n", gw.setup.config.data_dir);
    if let Some(url) = &gw.setup.config.database_url {
        text += &format!("database_url = {url:?}\n");
    }
    std::fs::write(&path, text).unwrap();
    path
}

async fn cli(config: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pacs-gateway"));
    command
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .env("USER", "op.jane");
    tokio::task::spawn_blocking(move || command.output().expect("run pacs-gateway"))
        .await
        .unwrap()
}

async fn store_tls(gw: &TestGateway, file: &Path) -> Output {
    let mut list = gw.dcmtk_tls_args();
    list.extend(["-aet", "ST_MARY_FWD", "-aec", GATEWAY_AE, "127.0.0.1"].map(String::from));
    list.push(gw.tls_port.to_string());
    list.push(file.display().to_string());
    dcmtk_async("storescu", list).await
}

async fn a_revoked_certificate_can_no_longer_store(backend: Backend) {
    let gw = TestGateway::spawn(backend).await;
    let config = config_file(&gw);
    let dir = tempfile::tempdir().unwrap();
    let first = data::write(&dir.path().join("1.dcm"), &Spec::new(data::CT, "CT", 1));
    let second = data::write(&dir.path().join("2.dcm"), &Spec::new(data::CT, "CT", 2));
    let out = store_tls(&gw, &first).await;
    assert!(out.status.success(), "before revocation: {}", text(&out));

    let pem = std::fs::read(&gw.setup.cert.cert).unwrap();
    let der = dimse::tls::load_certs(&pem).unwrap().remove(0);
    let fingerprint = gateway::pki::fingerprint(der.as_ref());
    let out = cli(&config, &["facility", "certs", common::FACILITY]).await;
    assert!(out.status.success(), "{}", text(&out));
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    let line = listing
        .lines()
        .find(|l| l.contains(&fingerprint))
        .unwrap_or_else(|| panic!("certificate not listed:\n{listing}"));
    assert!(line.trim_end().ends_with('-'), "not revoked yet: {line}");

    let out = cli(
        &config,
        &[
            "facility",
            "revoke-cert",
            common::FACILITY,
            &format!("sha256:{}", fingerprint.to_uppercase()),
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("revoked"), "{}", text(&out));
    let out = cli(&config, &["facility", "certs", common::FACILITY]).await;
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    let line = listing.lines().find(|l| l.contains(&fingerprint)).unwrap();
    assert!(
        !line.trim_end().ends_with('-'),
        "revocation time shown: {line}"
    );

    let out = store_tls(&gw, &second).await;
    assert!(
        !out.status.success(),
        "a revoked certificate must be refused: {}",
        text(&out)
    );

    let again = cli(
        &config,
        &["facility", "revoke-cert", common::FACILITY, &fingerprint],
    )
    .await;
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again).contains("already revoked"), "{}", text(&again));
    let unknown = cli(
        &config,
        &["facility", "revoke-cert", common::FACILITY, &"0".repeat(64)],
    )
    .await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        text(&unknown).contains("has no certificate"),
        "{}",
        text(&unknown)
    );

    let index = gw.index().await;
    let facility = gw.setup.facility.id;
    assert_eq!(
        index.instances(facility).await.unwrap().len(),
        1,
        "only the first"
    );
    let setup = gw.stop().await;
    let events = search(&index, &AuditFilter::default()).await.unwrap();
    let alert = events
        .iter()
        .find(|e| e.event.kind == EventKind::SecurityAlert)
        .unwrap_or_else(|| panic!("no security alert: {events:#?}"));
    assert_eq!(alert.event.facility_id, Some(facility));
    assert_eq!(alert.event.outcome, Outcome::SeriousFailure);
    assert!(
        alert.event.detail.contains("revoked certificate")
            && alert.event.detail.contains(&fingerprint),
        "{}",
        alert.event.detail
    );
    let changes: Vec<_> = events
        .iter()
        .filter(|e| e.event.kind == EventKind::AdminChange)
        .collect();
    assert_eq!(
        changes.len(),
        1,
        "failed revocations change nothing: {changes:#?}"
    );
    let change = &changes[0].event;
    assert_eq!(change.protocol, Protocol::Cli);
    assert_eq!(change.facility_id, Some(facility));
    assert_eq!(change.username.as_deref(), Some("op.jane"));
    assert!(change.detail.contains(&fingerprint), "{}", change.detail);
    index.close().await;
    drop(setup);
}

both_backends!(a_revoked_certificate_can_no_longer_store);
