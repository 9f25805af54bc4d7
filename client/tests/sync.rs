//! Thumbnail sync end to end: DCMTK storescu (modality) -> client PC A -> gateway;
//! then `pacs-client sync` (the binary) on PC B of the same facility (same key, its
//! own data dir, holding nothing itself) keeps a folder of the gateway's thumbnails
//! named by real patient name, study date and description, with a catalogue per
//! study. A second run downloads nothing; a study deleted at the gateway disappears;
//! a series added to a study refreshes it; PC A, which holds its studies itself,
//! leaves them out; and `serve` with `[sync] out` keeps a folder by itself.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use client::app::Client;
use common::{
    GatewaySide, UID_ROOT, client_config, free_port, patient, storescu, write_image_instance,
};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::OpenFileOptions;
use gateway::auth::{AuthSettings, Password, Role, Username, hash_password};
use tokio::sync::oneshot;

const BIN: &str = env!("CARGO_BIN_EXE_pacs-client");
const PASSWORD: &str = "correct horse battery";

/// `pacs-client --config CONFIG sync --out OUT --user dr.house --json`: the report.
fn sync(config: &Path, out: &Path) -> serde_json::Value {
    let output = std::process::Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(["sync", "--user", "dr.house", "--json", "--out"])
        .arg(out)
        .env("PACS_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "sync failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Every file under `dir` (relative paths) except the sync state.
fn listing(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let relative = path.strip_prefix(root).unwrap().display().to_string();
            if relative.starts_with(".pacs-sync") {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(relative);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn catalogue(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The TOML of a client config for the binary, with its `admin_url`.
fn toml_for(config: &client::config::Config) -> String {
    let url = config.gateway.admin_url.clone().unwrap();
    common::client_toml(config).replace("[gateway]\n", &format!("[gateway]\nadmin_url = {url:?}\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sync_keeps_real_named_thumbnails_of_studies_held_elsewhere() {
    let gw = GatewaySide::prepare().await;
    let running = gw.start().await;
    let dir = tempfile::tempdir().unwrap();
    let index = gw.index().await;
    let settings = AuthSettings::default();
    index
        .create_user(
            gw.facility_id,
            &Username::parse("dr.house").unwrap(),
            Role::Clinician,
            &hash_password(&settings, &Password::new(PASSWORD)).unwrap(),
        )
        .await
        .unwrap();
    index.close().await;

    // PC A: receives from the modality and forwards.
    let edge = free_port();
    let mut a = client_config(&dir.path().join("a"), &gw, edge);
    a.gateway.admin_url = Some(format!("https://{}", gw.config.https.listen));
    client::keyfile::create(&a.key_file()).unwrap();
    let app = Client::build(&a).await.unwrap();
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    let (p1, p2) = (patient(1), patient(2));
    let files = vec![
        write_image_instance(dir.path(), &p1, 1, 1, "CT chest"),
        write_image_instance(dir.path(), &p1, 1, 2, "CT chest"),
        write_image_instance(dir.path(), &p2, 2, 1, "CT head"),
    ];
    storescu(edge, files).await;
    assert_eq!(gw.wait_for(3, Duration::from_secs(30)).await, 3);

    // PC B: the same facility key, its own data dir, nothing received here.
    let mut b = client_config(&dir.path().join("b"), &gw, free_port());
    b.gateway.admin_url = a.gateway.admin_url.clone();
    std::fs::create_dir_all(&b.data_dir).unwrap();
    std::fs::copy(a.key_file(), b.key_file()).unwrap();
    let b_toml = dir.path().join("b.toml");
    std::fs::write(&b_toml, toml_for(&b)).unwrap();
    let out = dir.path().join("thumbnails");

    let first = sync(&b_toml, &out);
    assert_eq!(first["written"], 2, "{first}");
    assert_eq!(first["thumbnails"], 2, "{first}");
    assert_eq!(first["removed"], 0, "{first}");
    assert_eq!(first["failed"], serde_json::json!([]), "{first}");
    let patient_1 = "Müller1, Jürgen (MRN-314160)";
    let patient_2 = "Müller2, Jürgen (MRN-314161)";
    let study_1 = format!("{patient_1}/2024-03-15 CT chest");
    let study_2 = format!("{patient_2}/2024-03-15 CT head");
    let files = listing(&out);
    let thumbnail_1 = files
        .iter()
        .find(|f| f.starts_with(&format!("{study_1}/")) && f.ends_with(".jpg"))
        .unwrap_or_else(|| panic!("no thumbnail of study 1 in {files:?}"))
        .clone();
    assert_eq!(
        files,
        {
            let mut expected = vec![
                format!("{study_1}/catalogue.json"),
                thumbnail_1.clone(),
                format!("{study_2}/catalogue.json"),
            ];
            expected.extend(
                files
                    .iter()
                    .filter(|f| f.starts_with(&format!("{study_2}/")) && f.ends_with(".jpg"))
                    .cloned(),
            );
            expected.sort();
            expected
        },
        "one folder per patient and study, one image per series"
    );
    assert_eq!(files.len(), 4, "{files:?}");
    let jpeg = std::fs::read(out.join(&thumbnail_1)).unwrap();
    let decoded = image::load_from_memory(&jpeg).expect("the thumbnail decodes");
    assert_eq!(
        image::guess_format(&jpeg).unwrap(),
        image::ImageFormat::Jpeg
    );
    assert!(decoded.width() > 0 && decoded.height() > 0);
    let seen = catalogue(&out.join(&study_1).join("catalogue.json"));
    assert_eq!(seen["patient"]["name"], p1.name);
    assert_eq!(seen["patient"]["id"], p1.id);
    assert_eq!(seen["study"]["instance_uid"], format!("{UID_ROOT}.1.1"));
    assert_eq!(seen["study"]["date"], "2024-03-15");
    assert_eq!(seen["study"]["accession_number"], p1.accession);
    assert_eq!(seen["study"]["instances"], 2);
    assert_eq!(seen["series"][0]["instance_uid"], format!("{UID_ROOT}.2.1"));
    assert_eq!(seen["series"][0]["instances"], 2);
    assert_eq!(
        seen["series"][0]["thumbnail"],
        thumbnail_1.rsplit('/').next().unwrap()
    );
    let modified = |f: &str| std::fs::metadata(out.join(f)).unwrap().modified().unwrap();
    let before = modified(&thumbnail_1);

    // Run twice: nothing new in the feed, nothing downloaded or rewritten.
    let second = sync(&b_toml, &out);
    assert_eq!(second["changes"], 0, "{second}");
    assert_eq!(second["thumbnails"], 0, "{second}");
    assert_eq!(second["written"], 0, "{second}");
    assert_eq!(listing(&out), files);
    assert_eq!(modified(&thumbnail_1), before);

    // PC A holds both studies itself: its sync leaves them out.
    let a_toml = dir.path().join("a.toml");
    std::fs::write(&a_toml, toml_for(&a)).unwrap();
    let out_a = dir.path().join("thumbnails-a");
    let held = sync(&a_toml, &out_a);
    assert_eq!(held["held_here"], 2, "{held}");
    assert_eq!(held["written"], 0, "{held}");
    assert!(listing(&out_a).is_empty(), "{:?}", listing(&out_a));

    // A study deleted at the gateway disappears, its patient folder with it; a series
    // added to the other study refreshes that one.
    let index = gw.index().await;
    let ring = client::keyfile::load(&b.key_file()).unwrap().ring();
    let stored_1 = phi::pseudonym::uid(&ring, &format!("{UID_ROOT}.1.1"));
    assert!(
        index
            .soft_delete_study(
                gw.facility_id,
                &gateway::domain::Uid::parse(&stored_1).unwrap()
            )
            .await
            .unwrap()
    );
    index.close().await;
    let added = write_image_instance(dir.path(), &p2, 2, 5, "CT head");
    let mut obj = OpenFileOptions::new().open_file(&added).unwrap();
    obj.put(DataElement::new(
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        PrimitiveValue::from(format!("{UID_ROOT}.2.2.5")),
    ));
    obj.put(DataElement::new(
        tags::SERIES_NUMBER,
        VR::IS,
        PrimitiveValue::from("5"),
    ));
    obj.put(DataElement::new(
        tags::SERIES_DESCRIPTION,
        VR::LO,
        PrimitiveValue::from("Bone window"),
    ));
    obj.write_to_file(&added).unwrap();
    storescu(edge, vec![added]).await;
    assert_eq!(gw.wait_for(4, Duration::from_secs(30)).await, 4);

    let third = sync(&b_toml, &out);
    assert_eq!(third["removed"], 1, "{third}");
    assert_eq!(third["written"], 1, "{third}");
    assert_eq!(third["thumbnails"], 2, "{third}");
    let files = listing(&out);
    assert!(
        !files.iter().any(|f| f.starts_with(patient_1)),
        "the deleted study and its patient folder are gone: {files:?}"
    );
    assert!(
        files.contains(&format!("{study_2}/005 Bone window.jpg")),
        "{files:?}"
    );
    let seen = catalogue(&out.join(&study_2).join("catalogue.json"));
    assert_eq!(seen["series"].as_array().unwrap().len(), 2, "{seen}");
    assert_eq!(seen["study"]["instances"], 2);

    // Nothing in the folder names a pseudonym.
    let stored_2 = phi::pseudonym::uid(&ring, &format!("{UID_ROOT}.1.2"));
    let text = std::fs::read_to_string(out.join(&study_2).join("catalogue.json")).unwrap();
    assert!(!text.contains(&stored_2), "{text}");

    stop.send(()).unwrap();
    task.await.unwrap().unwrap();

    // `serve` with `[sync] out` keeps a folder by itself.
    let mut c = b.clone();
    c.data_dir = dir.path().join("c");
    std::fs::create_dir_all(&c.data_dir).unwrap();
    std::fs::copy(a.key_file(), c.key_file()).unwrap();
    c.edge.listen = format!("127.0.0.1:{}", free_port());
    let out_c = dir.path().join("thumbnails-c");
    let credentials = dir.path().join("credentials.toml");
    std::fs::write(
        &credentials,
        format!("username = \"dr.house\"\npassword = {PASSWORD:?}\n"),
    )
    .unwrap();
    std::fs::set_permissions(
        &credentials,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    c.credentials.file = Some(credentials);
    c.sync = Some(client::config::SyncConfig {
        out: Some(out_c.clone()),
        interval_secs: 1,
        ..Default::default()
    });
    let app = Client::build(&c).await.unwrap();
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    let wanted = format!("{study_2}/catalogue.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !listing(&out_c).contains(&wanted) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(
        listing(&out_c),
        listing(&out),
        "serve's folder equals the command's"
    );
    running.stop().await;
}
