//! Identity at the gateway for instances real modalities send: a 500-frame enhanced
//! MR whose full sealed record is over 1 MiB, and one study holding two patients.
//! DCMTK storescu is the modality, a real gateway (SQLite and PostgreSQL) the server;
//! `pacs-client query` / `retrieve` and DCMTK findscu through the viewer proxy find
//! and re-identify them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use client::app::Client;
use common::{
    Backend, GatewaySide, Patient, UID_ROOT, client_with_viewer, dcmtk_path, patient, storescu,
    write_instance,
};
use dicom_core::header::Header;
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR, dicom_value};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject, OpenFileOptions};
use tokio::sync::oneshot;

const PASSWORD: &str = "correct horse battery";
const VIEWER_AE: &str = "VIEWER1";
const ENHANCED_MR: &str = "1.2.840.10008.5.1.4.1.1.4.1";

fn read_object(path: &Path) -> InMemDicomObject {
    OpenFileOptions::new().open_file(path).unwrap().into_inner()
}

/// One element in Explicit VR Little Endian.
fn encoded(element: &DataElement<InMemDicomObject>) -> Vec<u8> {
    let ts = dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased();
    let mut out = Vec::new();
    InMemDicomObject::from_element_iter([element.clone()])
        .write_dataset_with_ts(&mut out, &ts)
        .unwrap();
    out
}

fn text(obj: &InMemDicomObject, tag: Tag) -> String {
    obj.element(tag)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|v| v.trim_end_matches(['\0', ' ']).to_string())
        .unwrap_or_default()
}

fn log(out: &Output) -> String {
    format!(
        "{:?}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn seq(tag: Tag, items: Vec<Vec<DataElement<InMemDicomObject>>>) -> DataElement<InMemDicomObject> {
    let items: Vec<InMemDicomObject> = items
        .into_iter()
        .map(InMemDicomObject::from_element_iter)
        .collect();
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

/// An identified Enhanced MR of `frames` 8x8 frames, each frame's functional groups
/// naming its source image (a UID the client remaps, so the whole Per-frame
/// Functional Groups Sequence is sealed) with a frame comment, as scanners write.
fn write_enhanced_mr(dir: &Path, p: &Patient, frames: u32) -> PathBuf {
    let s = |v: &str| PrimitiveValue::from(v);
    let sop = format!("{UID_ROOT}.3.50.1");
    let per_frame = (0..frames)
        .map(|f| {
            vec![
                seq(
                    tags::DERIVATION_IMAGE_SEQUENCE,
                    vec![vec![seq(
                        tags::SOURCE_IMAGE_SEQUENCE,
                        vec![vec![
                            DataElement::new(
                                tags::REFERENCED_SOP_CLASS_UID,
                                VR::UI,
                                s("1.2.840.10008.5.1.4.1.1.4"),
                            ),
                            DataElement::new(
                                tags::REFERENCED_SOP_INSTANCE_UID,
                                VR::UI,
                                s(&format!("{UID_ROOT}.9.{f}")),
                            ),
                        ]],
                    )]],
                ),
                seq(
                    tags::FRAME_CONTENT_SEQUENCE,
                    vec![vec![
                        DataElement::new(
                            tags::FRAME_ACQUISITION_NUMBER,
                            VR::US,
                            dicom_value!(U16, [1]),
                        ),
                        DataElement::new(
                            tags::DIMENSION_INDEX_VALUES,
                            VR::UL,
                            dicom_value!(U32, [1, f + 1]),
                        ),
                        DataElement::new(
                            tags::FRAME_COMMENTS,
                            VR::LT,
                            s(&format!("frame {f}: ").repeat(200)),
                        ),
                    ]],
                ),
            ]
        })
        .collect();
    let obj = InMemDicomObject::from_element_iter([
        DataElement::new(tags::SPECIFIC_CHARACTER_SET, VR::CS, s("ISO_IR 192")),
        DataElement::new(tags::IMAGE_TYPE, VR::CS, s("ORIGINAL\\PRIMARY\\M\\NONE")),
        DataElement::new(tags::SOP_CLASS_UID, VR::UI, s(ENHANCED_MR)),
        DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, s(&sop)),
        DataElement::new(tags::STUDY_DATE, VR::DA, s("20240316")),
        DataElement::new(tags::CONTENT_DATE, VR::DA, s("20240316")),
        DataElement::new(tags::ACCESSION_NUMBER, VR::SH, s(&p.accession)),
        DataElement::new(tags::MODALITY, VR::CS, s("MR")),
        DataElement::new(tags::MANUFACTURER, VR::LO, s("Acme Magnets")),
        DataElement::new(tags::INSTITUTION_NAME, VR::LO, s("St Mary Hospital")),
        DataElement::new(tags::REFERRING_PHYSICIAN_NAME, VR::PN, s("House^Gregory")),
        DataElement::new(tags::STUDY_DESCRIPTION, VR::LO, s("MR brain")),
        DataElement::new(tags::PATIENT_NAME, VR::PN, s(&p.name)),
        DataElement::new(tags::PATIENT_ID, VR::LO, s(&p.id)),
        DataElement::new(tags::PATIENT_BIRTH_DATE, VR::DA, s(&p.birth_date)),
        DataElement::new(tags::PATIENT_SEX, VR::CS, s("F")),
        DataElement::new(
            tags::STUDY_INSTANCE_UID,
            VR::UI,
            s(&format!("{UID_ROOT}.1.50")),
        ),
        DataElement::new(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            s(&format!("{UID_ROOT}.2.50")),
        ),
        DataElement::new(tags::INSTANCE_NUMBER, VR::IS, s("1")),
        DataElement::new(
            tags::FRAME_OF_REFERENCE_UID,
            VR::UI,
            s(&format!("{UID_ROOT}.4.50")),
        ),
        seq(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, per_frame),
        DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, dicom_value!(U16, [1])),
        DataElement::new(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, s("MONOCHROME2")),
        DataElement::new(tags::NUMBER_OF_FRAMES, VR::IS, s(&frames.to_string())),
        DataElement::new(tags::ROWS, VR::US, dicom_value!(U16, [8])),
        DataElement::new(tags::COLUMNS, VR::US, dicom_value!(U16, [8])),
        DataElement::new(tags::BITS_ALLOCATED, VR::US, dicom_value!(U16, [16])),
        DataElement::new(tags::BITS_STORED, VR::US, dicom_value!(U16, [12])),
        DataElement::new(tags::HIGH_BIT, VR::US, dicom_value!(U16, [11])),
        DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, dicom_value!(U16, [0])),
        DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::from(
                (0..frames * 128)
                    .map(|i| (i % 251) as u8)
                    .collect::<Vec<u8>>(),
            ),
        ),
    ]);
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(ENHANCED_MR)
        .media_storage_sop_instance_uid(sop.as_str())
        .transfer_syntax("1.2.840.10008.1.2.1");
    let path = dir.join("enhanced-mr.dcm");
    obj.with_meta(meta).unwrap().write_to_file(&path).unwrap();
    path
}

fn pacs_client(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pacs-client"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("PACS_PASSWORD", PASSWORD)
        .env_remove("PACS_CLIENT_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn query_json(config: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["query", "--user", "dr.house", "--json"];
    all.extend_from_slice(args);
    let out = pacs_client(config, &all);
    assert!(out.status.success(), "query {args:?}: {}", log(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A study-level findscu through the viewer proxy; the response data sets.
async fn viewer_find(port: u16, dir: &Path, key: &str) -> Vec<InMemDicomObject> {
    std::fs::create_dir_all(dir).unwrap();
    let mut a: Vec<String> = ["-S", "-aet", VIEWER_AE, "-aec", "PACS_CLIENT", "-X", "-od"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.push(dir.display().to_string());
    for k in [
        "SpecificCharacterSet=ISO_IR 192",
        "QueryRetrieveLevel=STUDY",
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "StudyInstanceUID",
        "AccessionNumber",
    ] {
        if !key.starts_with(k.split('=').next().unwrap()) {
            a.extend(["-k".to_string(), k.to_string()]);
        }
    }
    a.extend(["-k".to_string(), key.to_string()]);
    a.extend(["127.0.0.1".to_string(), port.to_string()]);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(dcmtk_path("findscu"))
            .args(&a)
            .stdin(Stdio::null())
            .output()
            .expect("findscu (apt-get install dcmtk)")
    })
    .await
    .unwrap();
    assert!(out.status.success(), "findscu {key}: {}", log(&out));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files.iter().map(|p| read_object(p)).collect()
}

/// The Encrypted Content of the one stored blob's sealed item, and its identity
/// summary (0013,1011).
fn stored_envelopes(gw: &GatewaySide) -> (usize, usize) {
    let blobs: Vec<PathBuf> = gw
        .all_files()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .collect();
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    let stored = read_object(&blobs[0]);
    let item = &stored
        .element(tags::ENCRYPTED_ATTRIBUTES_SEQUENCE)
        .unwrap()
        .items()
        .unwrap()[0];
    let full = item
        .element(tags::ENCRYPTED_CONTENT)
        .unwrap()
        .to_bytes()
        .unwrap()
        .len();
    let summary = stored
        .element(Tag(0x0013, 0x1011))
        .unwrap()
        .to_bytes()
        .unwrap()
        .len();
    (full, summary)
}

async fn large_enhanced_multiframe(backend: Backend) {
    let gw = GatewaySide::prepare_on(backend).await;
    let running = gw.start().await;
    let dir = tempfile::tempdir().unwrap();
    let (config, config_file, edge) =
        client_with_viewer(&gw, dir.path(), VIEWER_AE, PASSWORD).await;
    let app = Client::build(&config).await.unwrap();
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));

    let p = patient(7);
    let original = write_enhanced_mr(dir.path(), &p, 500);
    storescu(edge, vec![original.clone()]).await;
    assert_eq!(gw.wait_for(1, Duration::from_secs(60)).await, 1);
    let (full, summary) = stored_envelopes(&gw);
    assert!(full > 1024 * 1024, "full record of {full} bytes");
    assert!(summary <= 16 * 1024, "identity summary of {summary} bytes");

    // pacs-client query: by name, by Patient ID, by original Study UID.
    let study = format!("{UID_ROOT}.1.50");
    for args in [
        vec!["--name", p.name.as_str()],
        vec!["--patient-id", p.id.as_str()],
        vec!["--study", study.as_str()],
    ] {
        let rows = query_json(&config_file, &args);
        assert_eq!(rows.len(), 1, "{args:?}: {rows:?}");
        assert_eq!(rows[0]["patient_name"], p.name.as_str(), "{args:?}");
        assert_eq!(rows[0]["patient_id"], p.id.as_str(), "{args:?}");
        assert_eq!(rows[0]["study_instance_uid"], study.as_str(), "{args:?}");
        assert_eq!(rows[0]["accession_number"], p.accession.as_str());
    }

    // The viewer proxy: the same three searches, real values in the answers.
    for (n, key) in [
        format!("PatientName={}", p.name),
        format!("PatientID={}", p.id),
        format!("StudyInstanceUID={study}"),
    ]
    .iter()
    .enumerate()
    {
        let found = viewer_find(edge, &dir.path().join(format!("find-{n}")), key).await;
        assert_eq!(found.len(), 1, "{key}");
        assert_eq!(text(&found[0], tags::PATIENT_NAME), p.name, "{key}");
        assert_eq!(text(&found[0], tags::PATIENT_ID), p.id, "{key}");
        assert_eq!(text(&found[0], tags::PATIENT_BIRTH_DATE), p.birth_date);
        assert_eq!(text(&found[0], tags::STUDY_INSTANCE_UID), study, "{key}");
    }

    // Retrieve: re-identified exactly, per-frame items and all.
    let out_dir = dir.path().join("retrieved");
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
    );
    assert!(out.status.success(), "retrieve: {}", log(&out));
    let written = out_dir.join(&study).join(format!("{UID_ROOT}.3.50.1.dcm"));
    // Compared encoded: dicom-rs never calls two undefined lengths equal, and every
    // per-frame item is an undefined-length sequence.
    let (got, want) = (read_object(&written), read_object(&original));
    let differing: Vec<String> = want
        .iter()
        .filter(|e| got.get(e.tag()).map(encoded) != Some(encoded(e)))
        .map(|e| e.tag().to_string())
        .chain(
            got.iter()
                .filter(|e| want.get(e.tag()).is_none())
                .map(|e| format!("extra {}", e.tag())),
        )
        .collect();
    assert!(
        differing.is_empty(),
        "re-identified file differs at {differing:?}"
    );

    let _ = stop.send(());
    task.await.unwrap().unwrap();
    running.stop().await;
}
both_backends!(large_enhanced_multiframe);

async fn two_patients_in_one_study(backend: Backend) {
    let gw = GatewaySide::prepare_on(backend).await;
    let running = gw.start().await;
    let dir = tempfile::tempdir().unwrap();
    let (config, config_file, edge) =
        client_with_viewer(&gw, dir.path(), VIEWER_AE, PASSWORD).await;
    let app = Client::build(&config).await.unwrap();
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));

    // A mis-registered acquisition: instance 3 of study 60 belongs to another patient.
    let (first, second) = (patient(1), patient(2));
    let files = vec![
        write_instance(dir.path(), &first, 60, 1, "CT chest"),
        write_instance(dir.path(), &first, 60, 2, "CT chest"),
        write_instance(dir.path(), &second, 60, 3, "CT chest"),
    ];
    storescu(edge, files).await;
    assert_eq!(gw.wait_for(3, Duration::from_secs(30)).await, 3);

    let study = format!("{UID_ROOT}.1.60");
    for p in [&first, &second] {
        for args in [
            vec!["--patient-id", p.id.as_str()],
            vec!["--name", p.name.as_str()],
        ] {
            let rows = query_json(&config_file, &args);
            assert_eq!(rows.len(), 1, "{args:?}: {rows:?}");
            assert_eq!(rows[0]["patient_name"], p.name.as_str(), "{args:?}");
            assert_eq!(rows[0]["patient_id"], p.id.as_str(), "{args:?}");
            assert_eq!(rows[0]["study_instance_uid"], study.as_str());
        }
        let key = format!("PatientID={}", p.id);
        let found = viewer_find(edge, &dir.path().join(format!("find-{}", p.id)), &key).await;
        assert_eq!(found.len(), 1, "{key}");
        assert_eq!(text(&found[0], tags::PATIENT_NAME), p.name, "{key}");
        assert_eq!(text(&found[0], tags::STUDY_INSTANCE_UID), study);
    }
    // Without a patient key the study answers once, as its first patient.
    let all = query_json(&config_file, &[]);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["patient_id"], first.id.as_str());
    // Another patient's ID finds nothing.
    assert!(query_json(&config_file, &["--patient-id", "MRN-NOBODY"]).is_empty());

    let _ = stop.send(());
    task.await.unwrap().unwrap();
    running.stop().await;
}
both_backends!(two_patients_in_one_study);
