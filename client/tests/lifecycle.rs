//! The facility's side of the study lifecycle through the `pacs-client` binary:
//! studies stored through the client get their expiry notice at the gateway (the
//! gateway's job run with a clock moved 23 days on); `expiring` lists them with the
//! real names; a clinician answers `keep`, may not `expire`; the facility admin
//! deletes one now (tombstone at the gateway); `admin studies label` maps the original
//! UID and `admin retention` sets and lists the facility's override.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use client::app::Client;
use common::{GatewaySide, UID_ROOT, client_config, free_port, patient, storescu, write_instance};
use gateway::auth::{AuthSettings, Password, Role, Username, hash_password};
use gateway::db::lifecycle::{CountedFrom, RetentionAction, RetentionPolicy, SetBy};
use gateway::lifecycle::{Lifecycle, ManualClock};
use tokio::sync::oneshot;

const BIN: &str = env!("CARGO_BIN_EXE_pacs-client");
const PASSWORD: &str = "correct horse battery";

/// Runs the binary with `args`; (success, stdout, stderr).
fn run(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env("PACS_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notices_answers_labels_and_policies_from_the_facility() {
    let gw = GatewaySide::prepare().await;
    let running = gw.start().await;
    let dir = tempfile::tempdir().unwrap();
    let index = gw.index().await;
    let settings = AuthSettings::default();
    let hash = hash_password(&settings, &Password::new(PASSWORD)).unwrap();
    for (name, role) in [
        ("dr.house", Role::Clinician),
        ("alice", Role::FacilityAdmin),
    ] {
        index
            .create_user(gw.facility_id, &Username::parse(name).unwrap(), role, &hash)
            .await
            .unwrap();
    }

    let edge = free_port();
    let mut config = client_config(dir.path(), &gw, edge);
    config.gateway.admin_url = Some(format!("https://{}", gw.config.https.listen));
    client::keyfile::create(&config.key_file()).unwrap();
    let app = Client::build(&config).await.unwrap();
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    let (p1, p2) = (patient(1), patient(2));
    storescu(
        edge,
        vec![
            write_instance(dir.path(), &p1, 1, 1, "CT chest"),
            write_instance(dir.path(), &p2, 2, 1, "CT head"),
        ],
    )
    .await;
    assert_eq!(gw.wait_for(2, Duration::from_secs(30)).await, 2);
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();

    // A 30-day policy; the gateway's job, 23 days on, gives both notices.
    index
        .set_policy(
            gw.facility_id,
            &RetentionPolicy {
                set_by: SetBy::Operator,
                modality: None,
                label: None,
                period_days: 30,
                counted_from: CountedFrom::Receipt,
                notice_days: 7,
                grace_days: 14,
                action: RetentionAction::HidePurge,
            },
            gateway::db::now_millis(),
        )
        .await
        .unwrap();
    let clock = Arc::new(ManualClock::at(gateway::db::now_millis()));
    clock.advance_days(23);
    let audit = gateway::app::start_audit(&gw.config, &index).unwrap();
    let blobs = gateway::blobs::BlobStore::open(&gw.config.data_dir.join("blobs")).unwrap();
    let job = Lifecycle::new(index.clone(), blobs, audit, clock);
    assert_eq!(job.run_once().await.unwrap().noticed, 2);

    let toml = dir.path().join("client.toml");
    let url = config.gateway.admin_url.clone().unwrap();
    std::fs::write(
        &toml,
        common::client_toml(&config)
            .replace("[gateway]\n", &format!("[gateway]\nadmin_url = {url:?}\n")),
    )
    .unwrap();
    let (ok, out, err) = run(&toml, &["expiring", "--user", "dr.house", "--json"]);
    assert!(ok, "{out}{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{out}");
    let study = |n: u32| format!("{UID_ROOT}.1.{n}");
    let row1 = rows
        .iter()
        .find(|r| r["study_uid"] == study(1))
        .expect(&out);
    assert_eq!(row1["patient_name"], p1.name, "real names: {out}");
    assert_eq!(row1["patient_id"], p1.id);
    assert_eq!(row1["state"], "expiring");
    assert!(row1["hide_at"].is_string(), "{out}");
    let (ok, text, err) = run(&toml, &["expiring", "--user", "dr.house"]);
    assert!(ok && text.contains(&p2.name), "{text}{err}");

    // A clinician keeps study 1, may not delete study 2; the facility admin may.
    let (ok, out, err) = run(
        &toml,
        &["keep", "--user", "dr.house", "--days", "60", &study(1)],
    );
    assert!(ok, "{out}{err}");
    assert_eq!(out.trim(), format!("{}: active", study(1)));
    let (ok, out, _) = run(&toml, &["expire", "--user", "dr.house", "--yes", &study(2)]);
    assert!(!ok && out.contains("not done"), "{out}");
    let (ok, out, err) = run(&toml, &["expire", "--user", "alice", "--yes", &study(2)]);
    assert!(ok, "{out}{err}");
    assert_eq!(out.trim(), format!("{}: purged", study(2)));
    let ring = client::keyfile::load(&config.key_file()).unwrap().ring();
    let (stored1, stored2) = (
        phi::pseudonym::uid(&ring, &study(1)),
        phi::pseudonym::uid(&ring, &study(2)),
    );
    let tomb = index.tombstone(gw.facility_id, &stored2).await.unwrap();
    assert_eq!(tomb.map(|t| t.reason), Some("deleted-now".to_string()));
    let (ok, out, _) = run(&toml, &["expiring", "--user", "dr.house", "--json"]);
    assert!(ok);
    assert_eq!(out.trim(), "[]", "nothing expiring any more");

    // The facility admin labels study 1 by its original UID and sets an override.
    let (ok, out, err) = run(&toml, &["admin", "login", "--user", "alice"]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = run(&toml, &["admin", "studies", "label", &study(1), "oncology"]);
    assert!(ok, "{out}{err}");
    assert_eq!(
        index.labels(gw.facility_id, &stored1).await.unwrap(),
        ["oncology"]
    );
    let (ok, _, err) = run(
        &toml,
        &["admin", "studies", "label", &study(1), "Müller^Jürgen"],
    );
    assert!(!ok && err.contains("label"), "a name is no label: {err}");
    let (ok, out, err) = run(
        &toml,
        &[
            "admin",
            "retention",
            "set",
            "--label",
            "oncology",
            "--days",
            "3650",
            "--notice-days",
            "30",
        ],
    );
    assert!(ok, "{out}{err}");
    let (ok, out, err) = run(&toml, &["admin", "retention", "list", "--json"]);
    assert!(ok, "{out}{err}");
    let policies: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        policies
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["set_by"] == "facility"
                && p["label"] == "oncology"
                && p["period_days"] == 3650),
        "{out}"
    );
    let (ok, out, err) = run(
        &toml,
        &["admin", "retention", "remove", "--label", "oncology"],
    );
    assert!(ok, "{out}{err}");
    assert_eq!(index.policies(gw.facility_id).await.unwrap().len(), 1);
    index.close().await;
    running.stop().await;
}
