//! Query/retrieve against the gateway from an independent DICOM stack: pynetdicom's
//! API with User Identity Negotiation (`tests/pynetdicom/qr.py`), on the plain port.
//! C-FIND with both information models at all levels, a wildcard and a date range;
//! C-GET of a study byte-identical to what was stored; wrong password and missing
//! credentials refused at association time.
//!
//! Needs `python3` with pynetdicom, site-wide or in `target/python`
//! (`scripts/test.sh` installs it there); says SKIPPED without it.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::data::{self, Spec};
use common::{Backend, GATEWAY_AE, PLAIN_AE, TestGateway, args, dataset_sha256, python};

const USER: &str = "dr.house";
const PASSWORD: &str = "correct horse battery";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pynetdicom/qr.py");

fn study_uid(n: u32) -> String {
    format!("1.2.826.0.1.3680043.10.1.{}", n % 3 + 1)
}

fn series_uid(n: u32) -> String {
    format!("1.2.826.0.1.3680043.10.2.{}", n + 1)
}

/// Six instances in three studies of three patients, two series (CT and MR) each.
/// Study 1: PSEUDO0000, 20240101; study 2: OTHER0001, 20240104; study 3: PSEUDO0002,
/// 20240110. So `PatientID=PSEUDO*` finds studies 1 and 3, and
/// `StudyDate=20240101-20240105` studies 1 and 2.
fn spec(n: u32) -> Spec {
    let mut spec = if n < 3 {
        Spec::new(data::CT, "CT", n)
    } else {
        Spec::new(data::MR, "MR", n)
    };
    spec.study_date = ["20240101", "20240104", "20240110"][(n % 3) as usize].into();
    if n % 3 == 1 {
        spec.patient_id = "OTHER0001".into();
    }
    spec
}

fn pynetdicom_available() -> bool {
    python()
        .args(["-c", "import pynetdicom"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

async fn gateway_with_data(backend: Backend) -> (TestGateway, Vec<PathBuf>, tempfile::TempDir) {
    let gw = TestGateway::spawn(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<_> = (0..6)
        .map(|n| data::write(&dir.path().join(format!("{n}.dcm")), &spec(n)))
        .collect();
    common::store_plain(&gw, &files).await;
    common::add_clinician(&gw, gw.setup.facility.id, USER, PASSWORD).await;
    (gw, files, dir)
}

/// Output of one `qr.py` run: the JSON match lines, and the last line.
struct Run {
    matches: Vec<String>,
    last: String,
}

impl Run {
    /// How many matches carry `"KEY": "VALUE"`.
    fn with(&self, key: &str, value: &str) -> usize {
        let needle = format!("\"{key}\": \"{}\"", value.replace('\\', "\\\\"));
        self.matches.iter().filter(|m| m.contains(&needle)).count()
    }
}

async fn qr(gw: &TestGateway, password: &str, command: &[&str]) -> Run {
    let mut argv = args(&[
        SCRIPT,
        "127.0.0.1",
        &gw.plain_port.to_string(),
        GATEWAY_AE,
        PLAIN_AE,
        USER,
        password,
    ]);
    argv.extend(args(command));
    let out = tokio::task::spawn_blocking(move || python().args(&argv).output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<String> = stdout.lines().map(str::to_string).collect();
    let Some(last) = lines.last().cloned() else {
        panic!(
            "qr.py {command:?} printed nothing; stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    Run {
        matches: lines.into_iter().filter(|l| l.starts_with('{')).collect(),
        last,
    }
}

/// A C-FIND that must succeed with `expected` matches.
async fn find(gw: &TestGateway, model: &str, level: &str, keys: &[&str], expected: usize) -> Run {
    let mut command = vec!["find", model, level];
    command.extend_from_slice(keys);
    let run = qr(gw, PASSWORD, &command).await;
    assert_eq!(run.last, "STATUS 0x0000", "{model} {level} {keys:?}");
    assert_eq!(
        run.matches.len(),
        expected,
        "{model} {level} {keys:?}: {:#?}",
        run.matches
    );
    run
}

async fn pynetdicom_find_and_get(backend: Backend) {
    if !pynetdicom_available() {
        eprintln!(
            "SKIPPED pynetdicom_find_and_get: python3 cannot import pynetdicom (scripts/test.sh installs it)"
        );
        return;
    }
    let (gw, files, dir) = gateway_with_data(backend).await;
    let (s1, series0, series3) = (study_uid(0), series_uid(0), series_uid(3));
    let study_key = format!("StudyInstanceUID={s1}");
    let series_key = format!("SeriesInstanceUID={series0}");

    // Study Root.
    let studies = find(
        &gw,
        "study",
        "STUDY",
        &[
            "StudyInstanceUID=",
            "PatientID=",
            "StudyDate=",
            "ModalitiesInStudy=",
            "NumberOfStudyRelatedInstances=",
        ],
        3,
    )
    .await;
    assert_eq!(studies.with("StudyInstanceUID", &s1), 1);
    assert_eq!(studies.with("ModalitiesInStudy", "CT\\MR"), 3);
    assert_eq!(studies.with("NumberOfStudyRelatedInstances", "2"), 3);
    let series = find(
        &gw,
        "study",
        "SERIES",
        &[&study_key, "SeriesInstanceUID=", "Modality="],
        2,
    )
    .await;
    assert_eq!(series.with("SeriesInstanceUID", &series0), 1);
    assert_eq!(series.with("SeriesInstanceUID", &series3), 1);
    assert_eq!(series.with("Modality", "MR"), 1);
    let images = find(
        &gw,
        "study",
        "IMAGE",
        &[&study_key, &series_key, "SOPInstanceUID=", "SOPClassUID="],
        1,
    )
    .await;
    assert_eq!(images.with("SOPInstanceUID", &spec(0).sop_uid), 1);
    assert_eq!(images.with("SOPClassUID", data::CT), 1);

    // Patient Root.
    let patients = find(
        &gw,
        "patient",
        "PATIENT",
        &["PatientID=", "PatientName="],
        3,
    )
    .await;
    assert_eq!(patients.with("PatientID", "OTHER0001"), 1);
    let patient_key = "PatientID=PSEUDO0000";
    let studies = find(
        &gw,
        "patient",
        "STUDY",
        &[patient_key, "StudyInstanceUID="],
        1,
    )
    .await;
    assert_eq!(studies.with("StudyInstanceUID", &s1), 1);
    find(
        &gw,
        "patient",
        "SERIES",
        &[patient_key, &study_key, "SeriesInstanceUID="],
        2,
    )
    .await;
    find(
        &gw,
        "patient",
        "IMAGE",
        &[patient_key, &study_key, &series_key, "SOPInstanceUID="],
        1,
    )
    .await;

    // Wildcard and date range.
    let wild = find(
        &gw,
        "study",
        "STUDY",
        &["PatientID=PSEUDO*", "StudyInstanceUID="],
        2,
    )
    .await;
    assert_eq!(wild.with("StudyInstanceUID", &s1), 1);
    assert_eq!(wild.with("StudyInstanceUID", &study_uid(2)), 1);
    let range = find(
        &gw,
        "study",
        "STUDY",
        &["StudyDate=20240101-20240105", "StudyInstanceUID="],
        2,
    )
    .await;
    assert_eq!(range.with("StudyInstanceUID", &s1), 1);
    assert_eq!(range.with("StudyInstanceUID", &study_uid(1)), 1);

    // C-GET of study 1: instances 0 (CT) and 3 (MR), byte-identical data sets.
    let out = dir.path().join("got");
    let got = qr(&gw, PASSWORD, &["get", &s1, &out.display().to_string()]).await;
    assert_eq!(
        got.last,
        "STATUS 0x0000 completed=2 failed=0 warning=0 received=2"
    );
    let received: HashMap<String, String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            (file_stem(&path), dataset_sha256(&path))
        })
        .collect();
    let sent: HashMap<String, String> = [0u32, 3]
        .iter()
        .map(|&n| (spec(n).sop_uid, dataset_sha256(&files[n as usize])))
        .collect();
    assert_eq!(received, sent);

    // Refusals.
    let wrong = qr(
        &gw,
        "wrong password",
        &["find", "study", "STUDY", "PatientID="],
    )
    .await;
    assert_eq!(wrong.last, "REJECTED");
    let none = qr(
        &gw,
        PASSWORD,
        &["find-nocreds", "study", "STUDY", "PatientID="],
    )
    .await;
    assert_eq!(none.last, "REJECTED");
}

fn file_stem(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

both_backends!(pynetdicom_find_and_get);
