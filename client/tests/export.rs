//! Export to returnable media end to end: DCMTK storescu (modality) -> client ->
//! gateway; then `pacs-client export` (the binary) writes the studies, re-identified,
//! as a DICOM File-set with DICOMDIR (checked by DCMTK's dcmdump and dcmmkdir and, when
//! installed, dicom3tools' dciodvfy and dcdirdmp), an ISO 9660 image for a CD (listed
//! with isoinfo), and index and label PDFs (pdftotext finds the names, a Japanese one
//! included; pdfimages one image per series). A study of another patient is refused
//! on a patient medium with nothing written; a second export of a study is refused
//! without `--again` and done with it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use client::app::Client;
use client::config::{Destination, Rule};
use common::{
    GatewaySide, Patient, UID_ROOT, client_config, free_port, patient, storescu,
    write_image_instance,
};
use dicom_dictionary_std::tags;
use dicom_object::{InMemDicomObject, OpenFileOptions};
use gateway::auth::{AuthSettings, Password, Role, Username, hash_password};
use tokio::sync::oneshot;

const BIN: &str = env!("CARGO_BIN_EXE_pacs-client");
const PASSWORD: &str = "correct horse battery";

/// `pacs-client --config CONFIG export ARGS... --user dr.house --json`.
fn export(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(["export", "--user", "dr.house", "--json"])
        .args(args)
        .env("PACS_PASSWORD", PASSWORD)
        .output()
        .unwrap()
}

fn ok(output: &std::process::Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "export failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn refused(output: &std::process::Output, why: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "export should be refused");
    assert!(
        stderr.contains("export refused") && stderr.contains(why),
        "refusal should say {why:?}: {stderr}"
    );
}

/// Runs `tool args`, panicking with its output when it fails; its stdout.
fn run(tool: &str, args: &[&str]) -> String {
    let output = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool} is not installed ({e}): run scripts/install-deps.sh"));
    assert!(
        output.status.success(),
        "{tool} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn available(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

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

/// Every file under `dir`, relative, sorted.
fn listing(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The File IDs the DICOMDIR references, as paths (`DICOM/P0000001/...`).
fn referenced_files(dicomdir: &Path) -> Vec<String> {
    let obj = read_object(dicomdir);
    let mut out: Vec<String> = obj
        .element(tags::DIRECTORY_RECORD_SEQUENCE)
        .unwrap()
        .items()
        .unwrap()
        .iter()
        .filter(|r| text(r, tags::DIRECTORY_RECORD_TYPE) == "IMAGE")
        .map(|r| text(r, tags::REFERENCED_FILE_ID).replace('\\', "/"))
        .collect();
    out.sort();
    out
}

/// Checks the file-set in `out`: DCMTK parses the DICOMDIR, dcmmkdir accepts every
/// file of it for the general-purpose profile and builds a DICOMDIR referencing the
/// same files, dicom3tools (when installed) verifies it; every instance equals its
/// original and file IDs follow PS3.10.
fn check_fileset(out: &Path, originals: &[PathBuf], dir: &Path) {
    let dicomdir = out.join("DICOMDIR");
    let dump = run("dcmdump", &[dicomdir.to_str().unwrap()]);
    assert!(dump.contains("MediaStorageDirectoryStorage"), "{dump}");
    assert!(dump.contains("DirectoryRecordSequence"), "{dump}");
    let files = referenced_files(&dicomdir);
    assert_eq!(files.len(), originals.len(), "{files:?}");
    for file in &files {
        let components: Vec<&str> = file.split('/').collect();
        assert!(components.len() <= 8, "{file}");
        for c in components {
            assert!(
                !c.is_empty()
                    && c.len() <= 8
                    && c.bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
                "file ID component {c:?} of {file}"
            );
        }
        assert!(out.join(file).is_file(), "{file} is referenced but absent");
    }
    // DCMTK builds its own DICOMDIR (General Purpose CD-R profile) over the same
    // files, which checks each of them for the profile.
    let copy = dir.join(format!(
        "dcmtk-{}",
        out.file_name().unwrap().to_string_lossy()
    ));
    std::fs::create_dir_all(&copy).unwrap();
    run(
        "cp",
        &[
            "-r",
            out.join("DICOM").to_str().unwrap(),
            copy.to_str().unwrap(),
        ],
    );
    let made = copy.join("DICOMDIR");
    let output = Command::new("dcmmkdir")
        .current_dir(&copy)
        .args([
            "-Pgp",
            "+I",
            "+r",
            "+id",
            ".",
            "+D",
            made.to_str().unwrap(),
            "DICOM",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "dcmmkdir refused the file-set: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        referenced_files(&made),
        files,
        "DCMTK references the same files"
    );
    if available("dciodvfy") {
        let output = Command::new("dciodvfy").arg(&dicomdir).output().unwrap();
        let said = String::from_utf8_lossy(&output.stderr).into_owned()
            + &String::from_utf8_lossy(&output.stdout);
        assert!(
            !said.lines().any(|l| l.starts_with("Error")),
            "dciodvfy found errors in the DICOMDIR:\n{said}"
        );
    } else {
        println!("SKIPPED dciodvfy: dicom3tools is not installed");
    }
    if available("dcdirdmp") {
        // dicom3tools walks the records by their offsets (it prints to stderr).
        let output = Command::new("dcdirdmp").arg(&dicomdir).output().unwrap();
        let said = String::from_utf8_lossy(&output.stderr).into_owned()
            + &String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{said}");
        let images = said
            .lines()
            .filter(|l| l.trim_start().starts_with("IMAGE"))
            .count();
        assert_eq!(
            images,
            files.len(),
            "dcdirdmp follows the offsets to every image:\n{said}"
        );
        for file in &files {
            assert!(said.contains(&file.replace('/', "\\")), "{file}: {said}");
        }
    } else {
        println!("SKIPPED dcdirdmp: dicom3tools is not installed");
    }
    // Every instance equals what the modality sent (re-identified by the client).
    for file in &files {
        let got = read_object(&out.join(file));
        let sop = text(&got, tags::SOP_INSTANCE_UID);
        let original = originals
            .iter()
            .map(|p| read_object(p))
            .find(|o| text(o, tags::SOP_INSTANCE_UID) == sop)
            .unwrap_or_else(|| panic!("{sop} is not an original SOP Instance UID"));
        assert_eq!(got, original, "{sop} is restored exactly");
    }
}

fn pdftotext(path: &Path) -> String {
    run("pdftotext", &["-enc", "UTF-8", path.to_str().unwrap(), "-"])
}

/// The images `pdfimages -list` lists.
fn pdf_images(path: &Path) -> usize {
    run("pdfimages", &["-list", path.to_str().unwrap()])
        .lines()
        .skip(2)
        .filter(|l| l.split_whitespace().nth(2) == Some("image"))
        .count()
}

/// The TOML of a client config for the binary, with its `admin_url`.
fn toml_for(config: &client::config::Config) -> String {
    let url = config.gateway.admin_url.clone().unwrap();
    common::client_toml(config).replace("[gateway]\n", &format!("[gateway]\nadmin_url = {url:?}\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn export_writes_a_checked_fileset_iso_and_pdfs() {
    for tool in [
        "dcmdump",
        "dcmmkdir",
        "isoinfo",
        "xorriso",
        "pdftotext",
        "pdfimages",
    ] {
        assert!(
            available(tool),
            "{tool} is missing: run scripts/install-deps.sh"
        );
    }
    let gw = GatewaySide::prepare().await;
    let running = gw.start().await;
    let dir = tempfile::tempdir().unwrap();
    let index = gw.index().await;
    index
        .create_user(
            gw.facility_id,
            &Username::parse("dr.house").unwrap(),
            Role::Clinician,
            &hash_password(&AuthSettings::default(), &Password::new(PASSWORD)).unwrap(),
        )
        .await
        .unwrap();
    index.close().await;

    let edge = free_port();
    let mut config = client_config(&dir.path().join("pc"), &gw, edge);
    config.gateway.admin_url = Some(format!("https://{}", gw.config.https.listen));
    // Research studies stay on this PC (local-only): exported from the spool.
    config.sharing.rules.push(Rule {
        calling_ae: None,
        modality: None,
        study_description: Some("*research*".into()),
        action: Destination::Local,
    });
    client::keyfile::create(&config.key_file()).unwrap();
    let app = Client::build(&config).await.unwrap();
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    let p1 = patient(1);
    let yamada = Patient {
        name: "山田^太郎".into(),
        id: "JP-000042".into(),
        birth_date: "19700101".into(),
        accession: "ACCJP0001".into(),
    };
    let modality = dir.path().join("modality");
    std::fs::create_dir_all(&modality).unwrap();
    let study1 = vec![
        write_image_instance(&modality, &p1, 1, 1, "CT chest"),
        write_image_instance(&modality, &p1, 1, 2, "CT chest"),
    ];
    let study2 = vec![write_image_instance(&modality, &p1, 2, 1, "CT head")];
    let study3 = vec![
        write_image_instance(&modality, &yamada, 3, 1, "胸部CT"),
        write_image_instance(&modality, &yamada, 3, 2, "胸部CT"),
    ];
    let study4 = vec![write_image_instance(&modality, &p1, 4, 1, "MR research")];
    let all: Vec<PathBuf> = [&study1[..], &study2, &study3, &study4].concat();
    storescu(edge, all.clone()).await;
    assert_eq!(gw.wait_for(5, Duration::from_secs(30)).await, 5);
    let _ = stop.send(());
    task.await.unwrap().unwrap();

    let toml = dir.path().join("pc.toml");
    std::fs::write(&toml, toml_for(&config)).unwrap();
    let uid = |n: u32| format!("{UID_ROOT}.1.{n}");
    let (uid1, uid2, uid3) = (uid(1), uid(2), uid(3));

    // A patient medium refuses another patient's study; nothing is written.
    let mismatch = dir.path().join("mismatch");
    let output = export(
        &toml,
        &[
            &uid1,
            &uid3,
            "--medium",
            "cd",
            "--patient",
            &p1.id,
            "--out",
            mismatch.to_str().unwrap(),
        ],
    );
    refused(&output, "is not the patient");
    assert!(!mismatch.exists(), "nothing written for a refused export");
    // A study the facility does not have is refused.
    let unknown = dir.path().join("unknown");
    let output = export(
        &toml,
        &[
            &format!("{UID_ROOT}.1.99"),
            "--medium",
            "usb",
            "--out",
            unknown.to_str().unwrap(),
        ],
    );
    refused(&output, "not this facility's");
    assert!(!unknown.exists());

    // Patient 1's two studies to a CD, the patient given by name.
    let cd = dir.path().join("cd");
    let report = ok(&export(
        &toml,
        &[
            &uid1,
            &uid2,
            "--medium",
            "cd",
            "--patient",
            "müller1^jürgen",
            "--out",
            cd.to_str().unwrap(),
        ],
    ));
    assert_eq!(
        report["studies"],
        serde_json::json!([[uid1, 2], [uid2, 1]]),
        "{report}"
    );
    let p1_files: Vec<PathBuf> = [&study1[..], &study2].concat();
    check_fileset(&cd, &p1_files, dir.path());
    assert_eq!(
        listing(&cd),
        vec![
            "DICOM/P0000001/S0000001/SE000001/I0000001",
            "DICOM/P0000001/S0000001/SE000001/I0000002",
            "DICOM/P0000001/S0000002/SE000001/I0000001",
            "DICOMDIR",
            "index.pdf",
            "label.pdf",
            "medium.iso",
        ]
    );
    let iso = run(
        "isoinfo",
        &["-J", "-l", "-i", cd.join("medium.iso").to_str().unwrap()],
    );
    for name in [
        "DICOMDIR",
        "INDEX.PDF",
        "I0000001",
        "I0000002",
        "SE000001",
        "S0000002",
    ] {
        assert!(iso.contains(name), "the ISO lists {name}: {iso}");
    }
    // Rock Ridge: readable by everyone who mounts it (not the data dir's 0600).
    let rock = run(
        "isoinfo",
        &["-R", "-l", "-i", cd.join("medium.iso").to_str().unwrap()],
    );
    let dicomdir_line = rock
        .lines()
        .find(|l| l.trim_end().ends_with("DICOMDIR"))
        .unwrap();
    assert!(dicomdir_line.starts_with("-r--r--r--"), "{rock}");
    let index_text = pdftotext(&cd.join("index.pdf"));
    for expected in [
        "Müller1 Jürgen",
        p1.id.as_str(),
        "1965-03-11",
        "2024-03-15",
        "CT chest",
        "CT head",
        "CT",
        "2 images",
    ] {
        assert!(
            index_text.contains(expected),
            "index has {expected:?}: {index_text}"
        );
    }
    let label_text = pdftotext(&cd.join("label.pdf"));
    assert!(label_text.contains("Müller1 Jürgen"), "{label_text}");
    assert!(label_text.contains(&p1.id), "{label_text}");
    for pdf in ["index.pdf", "label.pdf"] {
        let size = std::fs::metadata(cd.join(pdf)).unwrap().len();
        assert!(
            size < 1_000_000,
            "{pdf} embeds a font subset, not the whole font: {size} bytes"
        );
    }
    assert_eq!(pdf_images(&cd.join("index.pdf")), 2, "one image per series");
    assert_eq!(pdf_images(&cd.join("label.pdf")), 2, "one image per series");

    // The Japanese patient to a USB stick: no ISO; the name in the PDFs.
    let usb = dir.path().join("usb");
    let report = ok(&export(
        &toml,
        &[
            &uid3,
            "--medium",
            "usb",
            "--patient",
            "山田^太郎",
            "--out",
            usb.to_str().unwrap(),
        ],
    ));
    assert_eq!(report["iso"], serde_json::Value::Null, "{report}");
    check_fileset(&usb, &study3, dir.path());
    assert!(!usb.join("medium.iso").exists());
    let dicomdir_dump = run("dcmdump", &["+U8", usb.join("DICOMDIR").to_str().unwrap()]);
    assert!(dicomdir_dump.contains("ISO_IR 192"), "{dicomdir_dump}");
    for pdf in ["index.pdf", "label.pdf"] {
        let said = pdftotext(&usb.join(pdf));
        assert!(
            said.contains("山田 太郎"),
            "{pdf} has the Japanese name: {said}"
        );
        assert!(said.contains("JP-000042"), "{pdf}: {said}");
        assert_eq!(pdf_images(&usb.join(pdf)), 1, "{pdf}: one image per series");
    }
    let index_text = pdftotext(&usb.join("index.pdf"));
    assert!(index_text.contains("胸部CT"), "{index_text}");

    // A second export of study 1 is refused without --again, done with it.
    let again = dir.path().join("again");
    let output = export(
        &toml,
        &[&uid1, "--medium", "dvd", "--out", again.to_str().unwrap()],
    );
    refused(&output, "already exported");
    assert!(!again.exists(), "nothing written");
    let report = ok(&export(
        &toml,
        &[
            &uid1,
            "--medium",
            "dvd",
            "--again",
            "--out",
            again.to_str().unwrap(),
        ],
    ));
    assert_eq!(
        report["studies"],
        serde_json::json!([[uid1, 2]]),
        "{report}"
    );
    check_fileset(&again, &study1, dir.path());
    // The ledger holds both exports of study 1.
    let outbox = client::outbox::open(&config).await.unwrap();
    let ledger = outbox.exports_of(&uid1).await.unwrap();
    outbox.close().await;
    let seen: Vec<(&str, i64)> = ledger
        .iter()
        .map(|r| (r.medium.as_str(), r.instances))
        .collect();
    assert_eq!(seen, vec![("cd", 2), ("dvd", 2)]);
    assert_eq!(ledger[1].out_dir, again.display().to_string());
    assert!(again.join("medium.iso").is_file());
    // The gateway has the acknowledgement (its lifecycle records the export).
    let ring = client::keyfile::load(&config.key_file()).unwrap().ring();
    let index = gw.index().await;
    let life = index
        .study_life(gw.facility_id, &phi::pseudonym::uid(&ring, &uid1))
        .await
        .unwrap()
        .expect("study 1 at the gateway");
    index.close().await;
    assert!(life.exported_at.is_some(), "the export was acknowledged");
    // A local-only study comes from the spool; it has no gateway thumbnail.
    let folder = dir.path().join("folder");
    let report = ok(&export(
        &toml,
        &[
            &uid(4),
            "--medium",
            "folder",
            "--patient",
            &p1.id,
            "--out",
            folder.to_str().unwrap(),
        ],
    ));
    assert_eq!(
        report["studies"],
        serde_json::json!([[uid(4), 1]]),
        "{report}"
    );
    check_fileset(&folder, &study4, dir.path());
    let said = pdftotext(&folder.join("index.pdf"));
    assert!(
        said.contains("MR research") && said.contains("local-only study"),
        "{said}"
    );
    assert_eq!(pdf_images(&folder.join("index.pdf")), 0);
    // A non-empty folder is refused.
    let output = export(
        &toml,
        &[
            &uid2,
            "--medium",
            "folder",
            "--again",
            "--out",
            again.to_str().unwrap(),
        ],
    );
    refused(&output, "is not empty");

    running.stop().await;
}
