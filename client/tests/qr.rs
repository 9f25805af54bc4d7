//! `pacs-client query` and `retrieve`, end to end: DCMTK storescu -> client ->
//! gateway, then the `pacs-client` binary logs in with a clinician's password,
//! finds studies by real name (dropping a blind-index false positive) and retrieves
//! a study by its original UID into files equal to what the modality sent.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use client::app::Client;
use client::config::{Destination, Rule};
use common::{
    GatewaySide, Patient, UID_ROOT, client_config, client_toml, free_port, patient, storescu,
    write_instance,
};
use dicom_object::{InMemDicomObject, OpenFileOptions};
use gateway::auth::{AuthSettings, Password, Role, Username, hash_password};
use phi::keys::KeyRing;
use phi::pseudonym::{blind_index, normalize_name};
use tokio::sync::oneshot;

const PASSWORD: &str = "correct horse battery";

/// A name that differs from `name` but has the same 16-bit blind index.
fn colliding_name(ring: &KeyRing, name: &str) -> String {
    let target = blind_index(ring, name);
    (0..2_000_000)
        .map(|k| format!("Decoy{k}^Anna"))
        .find(|n| blind_index(ring, n) == target && normalize_name(n) != normalize_name(name))
        .expect("a 16-bit collision within two million names")
}

fn read_object(path: &Path) -> InMemDicomObject {
    OpenFileOptions::new().open_file(path).unwrap().into_inner()
}

fn pacs_client(config: &Path, args: &[&str], password: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pacs-client"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("PACS_PASSWORD", password)
        .env_remove("PACS_CLIENT_CONFIG")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn query_json(config: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["query", "--user", "dr.house", "--json"];
    all.extend_from_slice(args);
    let out = pacs_client(config, &all, PASSWORD);
    assert!(
        out.status.success(),
        "query {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn field<'a>(rows: &'a [serde_json::Value], name: &str) -> Vec<&'a str> {
    let mut v: Vec<&str> = rows.iter().map(|r| r[name].as_str().unwrap()).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn query_and_retrieve_with_a_password() {
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
    let key = client::keyfile::create(&config.key_file()).unwrap();
    let ring = key.ring();
    let app = Client::build(&config).await.unwrap();
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));

    let p1 = patient(1);
    let decoy = Patient {
        name: colliding_name(&ring, &p1.name),
        id: "MRN-DECOY".into(),
        ..patient(2)
    };
    let mut files = Vec::new();
    for i in 1..=2 {
        files.push(write_instance(dir.path(), &p1, 1, i, "CT chest"));
    }
    files.push(write_instance(dir.path(), &decoy, 2, 1, "CT head"));
    // Kept local-only by the sharing rule: found in the outbox, never on the gateway.
    files.push(write_instance(dir.path(), &p1, 3, 1, "Trial RESEARCH arm"));
    storescu(edge, files.clone()).await;
    assert_eq!(gw.wait_for(3, Duration::from_secs(30)).await, 3);
    let _ = stop.send(());
    task.await.unwrap().unwrap();

    let index = gw.index().await;
    let hash = hash_password(&AuthSettings::default(), &Password::new(PASSWORD)).unwrap();
    index
        .create_user(
            gw.facility_id,
            &Username::parse("dr.house").unwrap(),
            Role::Clinician,
            &hash,
        )
        .await
        .unwrap();
    index.close().await;
    let config_file = dir.path().join("client.toml");
    std::fs::write(&config_file, client_toml(&config)).unwrap();

    // Everything: both patients, real identifiers, and the local-only study.
    let all = query_json(&config_file, &[]);
    assert_eq!(field(&all, "patient_name"), {
        let mut v = vec![decoy.name.as_str(), p1.name.as_str(), p1.name.as_str()];
        v.sort();
        v
    });
    assert_eq!(
        field(&all, "location"),
        ["gateway", "gateway", "local-only"]
    );

    // By name: the gateway matches both (same blind index); the decoy is dropped.
    let by_name = query_json(&config_file, &["--name", "MULLER1^jurgen"]);
    assert_eq!(by_name.len(), 2, "{by_name:?}");
    let local = by_name
        .iter()
        .find(|r| r["location"] == "local-only")
        .unwrap();
    assert_eq!(
        local["study_instance_uid"],
        format!("{UID_ROOT}.1.3").as_str()
    );
    assert_eq!(local["patient_id"], p1.id.as_str());
    let row = by_name.iter().find(|r| r["location"] == "gateway").unwrap();
    assert_eq!(row["patient_name"], p1.name.as_str());
    assert_eq!(row["patient_id"], p1.id.as_str());
    assert_eq!(row["accession_number"], p1.accession.as_str());
    assert_eq!(
        row["study_instance_uid"],
        format!("{UID_ROOT}.1.1").as_str()
    );
    assert_eq!(row["study_date"], "20240315");
    assert_eq!(row["modalities"], "CT");
    assert_eq!(row["description"], "CT chest");
    assert_eq!(row["instances"], 2);
    assert!(
        row["gateway_study_uid"]
            .as_str()
            .unwrap()
            .starts_with("2.25."),
        "{row}"
    );

    // By patient ID (pseudonymized on the way), by accession (after unsealing), by date.
    let by_id = query_json(&config_file, &["--patient-id", "MRN-DECOY"]);
    assert_eq!(field(&by_id, "patient_name"), [decoy.name.as_str()]);
    let by_acc = query_json(&config_file, &["--accession", &p1.accession]);
    assert_eq!(
        field(&by_acc, "patient_id"),
        [p1.id.as_str(), p1.id.as_str()]
    );
    assert!(query_json(&config_file, &["--date", "20240401-", "--modality", "CT"]).is_empty());
    assert_eq!(
        query_json(&config_file, &["--date", "20240301-20240331"]).len(),
        3
    );

    // A wrong password is refused with a readable error.
    let refused = pacs_client(
        &config_file,
        &["query", "--user", "dr.house"],
        "wrong password!",
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("refused the login"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // Retrieve by original UID: files equal to what the modality sent.
    let out_dir = dir.path().join("retrieved");
    let study = format!("{UID_ROOT}.1.1");
    let out = pacs_client(
        &config_file,
        &[
            "retrieve",
            "--user",
            "dr.house",
            &study,
            "--out",
            out_dir.to_str().unwrap(),
        ],
        PASSWORD,
    );
    assert!(
        out.status.success(),
        "retrieve failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for (i, original) in files.iter().take(2).enumerate() {
        // files[0..2] are study 1's instances.
        let sop = format!("{UID_ROOT}.3.1.{}", i + 1);
        let written = out_dir.join(&study).join(format!("{sop}.dcm"));
        assert_eq!(
            read_object(&written),
            read_object(original),
            "{sop} is restored exactly"
        );
    }
    assert_eq!(std::fs::read_dir(out_dir.join(&study)).unwrap().count(), 2);

    // By the pseudonymous UID the gateway shows: the same study.
    let pseudonymous = row["gateway_study_uid"].as_str().unwrap();
    let out_dir2 = dir.path().join("retrieved2");
    let out = pacs_client(
        &config_file,
        &[
            "retrieve",
            "--user",
            "dr.house",
            pseudonymous,
            "--out",
            out_dir2.to_str().unwrap(),
        ],
        PASSWORD,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(std::fs::read_dir(out_dir2.join(&study)).unwrap().count(), 2);

    // An unknown study fails with a non-zero exit.
    let out = pacs_client(
        &config_file,
        &[
            "retrieve",
            "--user",
            "dr.house",
            "1.2.3.4.5",
            "--out",
            out_dir.to_str().unwrap(),
        ],
        PASSWORD,
    );
    assert_eq!(out.status.code(), Some(1));

    // Series and instances of a study, by original or pseudonymous UID, re-identified.
    for given in [study.as_str(), pseudonymous] {
        let series = query_json(&config_file, &["--level", "series", "--study", given]);
        assert_eq!(series.len(), 1, "{series:?}");
        assert_eq!(
            series[0]["series_instance_uid"],
            format!("{UID_ROOT}.2.1").as_str()
        );
        assert_eq!(series[0]["study_instance_uid"], study.as_str());
        assert_eq!(series[0]["patient_name"], p1.name.as_str());
        assert_eq!(series[0]["patient_id"], p1.id.as_str());
        assert_eq!(series[0]["modality"], "CT");
        assert_eq!(series[0]["instances"], 2);
    }
    let series_uid = format!("{UID_ROOT}.2.1");
    let images = query_json(
        &config_file,
        &[
            "--level",
            "image",
            "--study",
            &study,
            "--series",
            &series_uid,
        ],
    );
    let mut sops = field(&images, "sop_instance_uid");
    sops.sort();
    assert_eq!(
        sops,
        [format!("{UID_ROOT}.3.1.1"), format!("{UID_ROOT}.3.1.2")]
    );
    assert!(images.iter().all(|r| r["patient_name"] == p1.name.as_str()
        && r["series_instance_uid"] == series_uid.as_str()));
    let table = pacs_client(
        &config_file,
        &[
            "query", "--user", "dr.house", "--level", "series", "--study", &study,
        ],
        PASSWORD,
    );
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains(&p1.name) && table.contains(&series_uid),
        "{table}"
    );
    assert!(!table.contains("2.25."), "{table}");
    let missing = pacs_client(
        &config_file,
        &[
            "query", "--user", "dr.house", "--level", "image", "--study", &study,
        ],
        PASSWORD,
    );
    assert!(!missing.status.success(), "image level without --series");

    // A local-only study is served from the client's own store.
    let local_study = format!("{UID_ROOT}.1.3");
    let out = pacs_client(
        &config_file,
        &[
            "retrieve",
            "--user",
            "dr.house",
            &local_study,
            "--out",
            out_dir.to_str().unwrap(),
        ],
        PASSWORD,
    );
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let written = out_dir
        .join(&local_study)
        .join(format!("{UID_ROOT}.3.3.1.dcm"));
    assert_eq!(read_object(&written), read_object(&files[3]));
    running.stop().await;
}
