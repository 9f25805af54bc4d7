//! DICOMweb against an independent client stack: the Python `dicomweb-client`
//! package (`tests/dicomweb/client.py`) searches, retrieves (study, instance,
//! metadata, frames) and stores through the real HTTPS server, and a wrong password
//! is refused. Its answers are compared with what was stored.
//!
//! Needs `python3` with dicomweb-client, site-wide or in `target/python`
//! (`scripts/install-deps.sh` installs it there); says SKIPPED without it.

mod common;

use std::process::Command;

use common::data::{self, CT, Spec};
use common::{Backend, GATEWAY_AE, Options, PLAIN_AE, Setup, args, dcmtk_async};
use gateway::app::Application;
use serde_json::Value;
use sha2::Digest as _;
use tokio::sync::oneshot;

const USER: &str = "dr.web";
const PASSWORD: &str = "correct horse battery";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dicomweb/client.py");
const PYTHON_DEPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/python");

fn python() -> Command {
    let mut command = Command::new("python3");
    let mut path = std::ffi::OsString::from(PYTHON_DEPS);
    if let Some(old) = std::env::var_os("PYTHONPATH").filter(|p| !p.is_empty()) {
        path.push(":");
        path.push(old);
    }
    command.env("PYTHONPATH", path);
    command
}

fn available() -> bool {
    python()
        .args(["-c", "import dicomweb_client, pydicom"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

async fn dicomweb_client_sees_what_was_stored(backend: Backend) {
    if !available() {
        eprintln!(
            "SKIPPED dicomweb_client: python3 cannot import dicomweb_client (scripts/install-deps.sh installs it)"
        );
        return;
    }
    let mut setup = Setup::new(backend, &Options::default()).await;
    setup.config.auth.failure_delay_ms = 1;
    setup.config.auth.failure_delay_max_ms = 1;
    let index = setup.index().await;
    let hash =
        gateway::auth::hash_password(&setup.config.auth, &gateway::auth::Password::new(PASSWORD))
            .unwrap();
    index
        .create_user(
            setup.facility.id,
            &gateway::auth::Username::parse(USER).unwrap(),
            gateway::auth::Role::Clinician,
            &hash,
        )
        .await
        .unwrap();
    index.close().await;
    let app = Application::build(setup.config.clone())
        .await
        .expect("build");
    let https_port = app.https_port().unwrap();
    let plain_port = app.plain_port().unwrap();
    let (stop, rx) = oneshot::channel();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));

    let dir = tempfile::tempdir().unwrap();
    let specs: Vec<Spec> = [0u32, 3, 1]
        .into_iter()
        .map(|n| Spec::new(CT, "CT", n))
        .collect();
    let files: Vec<_> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| data::write(&dir.path().join(format!("{i}.dcm")), s))
        .collect();
    let mut list = args(&[
        "-aet",
        PLAIN_AE,
        "-aec",
        GATEWAY_AE,
        "127.0.0.1",
        &plain_port.to_string(),
    ]);
    list.extend(files.iter().map(|f| f.display().to_string()));
    let out = dcmtk_async("storescu", list).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stow = data::write(&dir.path().join("stow.dcm"), &Spec::new(CT, "CT", 20));

    let base = format!("https://localhost:{https_port}/dicom-web");
    let ca = setup.cert.ca.display().to_string();
    let stow_path = stow.display().to_string();
    let output = tokio::task::spawn_blocking(move || {
        python()
            .args([SCRIPT, &base, &ca, USER, PASSWORD, &stow_path])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "client.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_slice(&output.stdout).expect("JSON from client.py");

    let mut studies: Vec<String> = specs.iter().map(|s| s.study_uid.clone()).collect();
    studies.sort();
    studies.dedup();
    assert_eq!(seen["studies"], serde_json::json!(studies));
    let first = &studies[0];
    let in_first: Vec<&Spec> = specs.iter().filter(|s| &s.study_uid == first).collect();
    assert_eq!(seen["study_instances"][first], Value::from(in_first.len()));
    let mut sops: Vec<String> = in_first.iter().map(|s| s.sop_uid.clone()).collect();
    sops.sort();
    assert_eq!(seen["instances_of_first"], serde_json::json!(sops));
    for spec in &in_first {
        let sha = hex::encode(sha2::Sha256::digest(data::pixels(spec)));
        assert_eq!(
            seen["retrieved"][&spec.sop_uid],
            Value::from(sha.clone()),
            "pixels of {}",
            spec.sop_uid
        );
    }
    assert_eq!(seen["metadata_pixel_uri"], Value::Bool(true));
    assert_eq!(seen["instance_uid"], seen["metadata_uid"]);
    let frame_owner = in_first
        .iter()
        .find(|s| seen["instance_uid"].as_str() == Some(s.sop_uid.as_str()))
        .unwrap();
    assert_eq!(
        seen["frame_sha256"],
        Value::from(hex::encode(sha2::Sha256::digest(data::pixels(frame_owner))))
    );
    assert_eq!(seen["stow_referenced"], Value::from(1), "{seen}");
    assert_eq!(seen["stow_failed"], Value::from(0));
    assert_eq!(seen["wrong_password"], Value::from(401));
    assert_eq!(seen["filtered"].as_array().unwrap().len(), 1);

    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

both_backends!(dicomweb_client_sees_what_was_stored);
