//! The viewer proxy end to end: DCMTK storescu (modality) -> client -> gateway, then
//! DCMTK findscu / getscu as a viewer AE on the client's edge port. The client asks
//! the gateway as the user mapped to the viewer and answers with the original names
//! and UIDs; retrieved files equal what the modality sent.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use client::app::Client;
use client::config::{Destination, Rule, Viewer};
use common::{
    GatewaySide, MODALITY_AE, UID_ROOT, client_config, dcmtk_path, free_port, patient, storescu,
    write_instance,
};
use dicom_dictionary_std::tags;
use dicom_object::{InMemDicomObject, OpenFileOptions};
use gateway::auth::{AuthSettings, Password, Role, Username, hash_password};
use tokio::sync::oneshot;

const PASSWORD: &str = "correct horse battery";
const VIEWER_AE: &str = "VIEWER1";

fn read_object(path: &Path) -> InMemDicomObject {
    OpenFileOptions::new().open_file(path).unwrap().into_inner()
}

fn text(obj: &InMemDicomObject, tag: dicom_core::Tag) -> String {
    obj.element(tag)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|v| v.trim_end_matches(['\0', ' ']).to_string())
        .unwrap_or_default()
}

async fn dcmtk(tool: &'static str, args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(dcmtk_path(tool))
            .env("TCP_NODELAY", "1")
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{tool} (apt-get install dcmtk): {e}"))
    })
    .await
    .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn log(out: &Output) -> String {
    format!(
        "{:?}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a study-level findscu as `aet` and returns the response data sets.
async fn findscu(
    aet: &str,
    port: u16,
    dir: &Path,
    keys: &[&str],
) -> (Output, Vec<InMemDicomObject>) {
    std::fs::create_dir_all(dir).unwrap();
    let mut a = args(&["-v", "-S", "-aet", aet, "-aec", "PACS_CLIENT", "-X", "-od"]);
    a.push(dir.display().to_string());
    for key in keys {
        a.push("-k".into());
        a.push(key.to_string());
    }
    a.push("127.0.0.1".into());
    a.push(port.to_string());
    let out = dcmtk("findscu", a).await;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    (out, files.iter().map(|p| read_object(p)).collect())
}

/// Runs a study-level getscu as the viewer and returns the files written.
async fn getscu(port: u16, dir: &Path, study: &str) -> (Output, Vec<PathBuf>) {
    std::fs::create_dir_all(dir).unwrap();
    let mut a = args(&["-v", "-S", "-aet", VIEWER_AE, "-aec", "PACS_CLIENT", "-od"]);
    a.push(dir.display().to_string());
    a.extend(args(&["-k", "QueryRetrieveLevel=STUDY", "-k"]));
    a.push(format!("StudyInstanceUID={study}"));
    a.extend(args(&["127.0.0.1", &port.to_string()]));
    let out = dcmtk("getscu", a).await;
    assert!(out.status.success(), "{}", log(&out));
    let mut got: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    got.sort();
    (out, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn viewer_queries_and_retrieves_through_the_client() {
    let gw = GatewaySide::prepare().await;
    let running = gw.start().await;
    let dir = tempfile::tempdir().unwrap();
    let edge = free_port();
    let mut config = client_config(dir.path(), &gw, edge);
    config.edge.viewers = vec![Viewer {
        ae_title: VIEWER_AE.into(),
        host: None,
        user: "dr.house".into(),
        port: None,
        character_set: None,
    }];
    let credentials = dir.path().join("credentials.toml");
    std::fs::write(
        &credentials,
        format!("username = \"dr.house\"\npassword = \"{PASSWORD}\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o600)).unwrap();
    config.credentials.file = Some(credentials);
    config.sharing.rules.push(Rule {
        calling_ae: None,
        modality: None,
        study_description: Some("*research*".into()),
        action: Destination::Local,
    });
    client::keyfile::create(&config.key_file()).unwrap();

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

    let app = Client::build(&config).await.unwrap();
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));

    let (p1, p2) = (patient(1), patient(2));
    let mut files = Vec::new();
    for i in 1..=2 {
        files.push(write_instance(dir.path(), &p1, 1, i, "CT chest"));
    }
    files.push(write_instance(dir.path(), &p2, 2, 1, "CT head"));
    // Kept local-only by the sharing rule: found and retrieved from the client's store.
    files.push(write_instance(dir.path(), &p2, 3, 1, "Trial RESEARCH arm"));
    storescu(edge, files.clone()).await;
    assert_eq!(gw.wait_for(3, Duration::from_secs(30)).await, 3);

    // C-FIND, universal: both studies, with the original names, IDs and UIDs.
    let keys = [
        "QueryRetrieveLevel=STUDY",
        "PatientName",
        "PatientID",
        "StudyInstanceUID",
        "NumberOfStudyRelatedInstances",
    ];
    let (out, found) = findscu(VIEWER_AE, edge, &dir.path().join("find-all"), &keys).await;
    assert!(out.status.success(), "{}", log(&out));
    let mut rows: Vec<(String, String, String, String)> = found
        .iter()
        .map(|o| {
            (
                text(o, tags::PATIENT_NAME),
                text(o, tags::PATIENT_ID),
                text(o, tags::STUDY_INSTANCE_UID),
                text(o, tags::NUMBER_OF_STUDY_RELATED_INSTANCES),
            )
        })
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            (
                p1.name.clone(),
                p1.id.clone(),
                format!("{UID_ROOT}.1.1"),
                "2".to_string()
            ),
            (
                p2.name.clone(),
                p2.id.clone(),
                format!("{UID_ROOT}.1.2"),
                "1".to_string()
            ),
            (
                p2.name.clone(),
                p2.id.clone(),
                format!("{UID_ROOT}.1.3"),
                "1".to_string()
            ),
        ],
        "{}",
        log(&out)
    );

    // By original Patient ID, by name (exact and wildcard), by original study UID.
    for (n, key) in [
        format!("PatientID={}", p1.id),
        format!("PatientName={}", p1.name),
        "PatientName=Müller1*".to_string(),
        format!("StudyInstanceUID={UID_ROOT}.1.1"),
    ]
    .iter()
    .enumerate()
    {
        // The names are UTF-8: say so, as a viewer would.
        let mut keys = vec![
            "SpecificCharacterSet=ISO_IR 192",
            "QueryRetrieveLevel=STUDY",
            "PatientName",
            "StudyInstanceUID",
        ];
        keys.retain(|k| !key.starts_with(k));
        keys.push(key);
        let (out, found) = findscu(
            VIEWER_AE,
            edge,
            &dir.path().join(format!("find-{n}")),
            &keys,
        )
        .await;
        assert!(out.status.success(), "{}", log(&out));
        assert_eq!(found.len(), 1, "{key}: {}", log(&out));
        assert_eq!(text(&found[0], tags::PATIENT_NAME), p1.name, "{key}");
        assert_eq!(
            text(&found[0], tags::STUDY_INSTANCE_UID),
            format!("{UID_ROOT}.1.1")
        );
    }

    // C-GET by the original study UID: files equal to what the modality sent.
    let (out, got) = getscu(edge, &dir.path().join("get"), &format!("{UID_ROOT}.1.1")).await;
    assert_eq!(got.len(), 2, "{}", log(&out));
    // The local-only study comes from the client's own store.
    let (local_out, local) = getscu(
        edge,
        &dir.path().join("get-local"),
        &format!("{UID_ROOT}.1.3"),
    )
    .await;
    assert_eq!(local.len(), 1, "{}", log(&local_out));
    assert_eq!(read_object(&local[0]), read_object(&files[3]));
    for original in &files[..2] {
        let original = read_object(original);
        let sop = text(&original, tags::SOP_INSTANCE_UID);
        let received = got
            .iter()
            .map(|p| read_object(p))
            .find(|o| text(o, tags::SOP_INSTANCE_UID) == sop)
            .unwrap_or_else(|| panic!("{sop} not retrieved: {}", log(&out)));
        assert_eq!(received, original, "{sop} is restored exactly");
    }

    // An AE not in the config is rejected; a modality may not query.
    let (out, found) = findscu("STRANGER", edge, &dir.path().join("find-stranger"), &keys).await;
    assert!(found.is_empty());
    assert!(log(&out).contains("Association Rejected"), "{}", log(&out));
    let (out, found) = findscu(MODALITY_AE, edge, &dir.path().join("find-modality"), &keys).await;
    assert!(found.is_empty(), "{}", log(&out));
    // 0x0124 Refused: not authorized (DCMTK 3.6.7 prints it as an unknown status).
    assert!(log(&out).contains("0x124"), "{}", log(&out));

    // A viewer may not store.
    let mut a = args(&["-v", "-aet", VIEWER_AE, "-aec", "PACS_CLIENT", "127.0.0.1"]);
    a.push(edge.to_string());
    a.push(
        write_instance(dir.path(), &p2, 9, 1, "CT head")
            .display()
            .to_string(),
    );
    let out = dcmtk("storescu", a).await;
    assert!(
        log(&out).contains("0x0124") || log(&out).contains("0x124"),
        "{}",
        log(&out)
    );

    let _ = stop.send(());
    task.await.unwrap().unwrap();
    running.stop().await;
}
