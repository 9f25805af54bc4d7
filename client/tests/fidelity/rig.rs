//! The harness of `fidelity.rs`: the test set (an image in each compressed syntax,
//! made with DCMTK or Pillow), and a running client with a viewer in front of a
//! strict gateway, driven with DCMTK's storescu and getscu.

#![allow(dead_code, unreachable_pub)]

use crate::common::{GatewaySide, MODALITY_AE, client_config, dcmtk_path, free_port};
use client::app::Client;
use client::config::{Config, Viewer};
use dicom_core::value::Value;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR, dicom_value};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject, OpenFileOptions};
use gateway::auth::{AuthSettings, Password, Role, Username, hash_password};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use tokio::sync::oneshot;

pub const PASSWORD: &str = "correct horse battery";
pub const VIEWER_AE: &str = "VIEWER1";
pub const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
pub const ROOT: &str = "1.2.826.0.1.3680043.77";
pub const PYTHON_DEPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/python");

/// One compressed syntax of the test set.
pub struct Variant {
    pub name: &'static str,
    pub ts: &'static str,
    /// storescu's option to propose it.
    pub store: &'static str,
    /// getscu's option to prefer it.
    pub prefer: &'static str,
    pub lossless: bool,
    /// Made from the 8-bit image (JPEG baseline) rather than the 12-bit one.
    pub eight_bit: bool,
}

pub const VARIANTS: [Variant; 6] = [
    Variant {
        name: "jpeg-baseline",
        ts: "1.2.840.10008.1.2.4.50",
        store: "-xy",
        prefer: "+xy",
        lossless: false,
        eight_bit: true,
    },
    Variant {
        // 12-bit (Process 4), decoded by dimse's own decoder.
        name: "jpeg-extended",
        ts: "1.2.840.10008.1.2.4.51",
        store: "-xx",
        prefer: "+xx",
        lossless: false,
        eight_bit: false,
    },
    Variant {
        name: "jpeg-lossless",
        ts: "1.2.840.10008.1.2.4.70",
        store: "-xs",
        prefer: "+xs",
        lossless: true,
        eight_bit: false,
    },
    Variant {
        name: "rle",
        ts: "1.2.840.10008.1.2.5",
        store: "-xr",
        prefer: "+xr",
        lossless: true,
        eight_bit: false,
    },
    Variant {
        name: "jpeg-ls",
        ts: "1.2.840.10008.1.2.4.80",
        store: "-xt",
        prefer: "+xt",
        lossless: true,
        eight_bit: false,
    },
    Variant {
        name: "jpeg-2000",
        ts: "1.2.840.10008.1.2.4.90",
        store: "-xv",
        prefer: "+xv",
        lossless: true,
        eight_bit: false,
    },
];

pub fn run(tool: &str, args: &[&str]) -> Output {
    Command::new(dcmtk_path(tool))
        .env("TCP_NODELAY", "1")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{tool} (apt-get install dcmtk): {e}"))
}

pub fn log(out: &Output) -> String {
    format!(
        "{:?}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn must(tool: &str, args: &[&str]) -> Output {
    let out = run(tool, args);
    assert!(out.status.success(), "{tool} {args:?}: {}", log(&out));
    out
}

pub fn text(obj: &InMemDicomObject, tag: Tag) -> String {
    obj.element(tag)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|v| v.trim_end_matches(['\0', ' ']).to_string())
        .unwrap_or_default()
}

pub fn open(path: &Path) -> dicom_object::DefaultDicomObject {
    OpenFileOptions::new()
        .open_file(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An identified CT image, 32 x 32, study `n`: 12 bits stored in 16 (or 8 bits).
pub fn write_image(dir: &Path, n: u32, eight_bit: bool, study_uid: Option<&str>) -> PathBuf {
    let s = |v: &str| PrimitiveValue::from(v);
    let (rows, cols) = (32_u16, 32_u16);
    let sop = format!("{ROOT}.3.{n}.1");
    let study = study_uid.map_or_else(|| format!("{ROOT}.1.{n}"), str::to_string);
    let pixels: PrimitiveValue = if eight_bit {
        let v: Vec<u8> = (0..rows * cols)
            .map(|i| ((i % cols) * 6 + (i / cols) * 2) as u8)
            .collect();
        PrimitiveValue::from(v)
    } else {
        let (r, c) = (u32::from(rows), u32::from(cols));
        let v: Vec<u16> = (0..r * c)
            .map(|i| ((i % c) * 97 + (i / c) * 31 + (i * 7919) % 13) % 4096)
            .map(|v| v as u16)
            .collect();
        PrimitiveValue::U16(v.into())
    };
    let (bits, stored) = if eight_bit { (8_u16, 8_u16) } else { (16, 12) };
    let obj = InMemDicomObject::from_element_iter([
        DataElement::new(tags::SPECIFIC_CHARACTER_SET, VR::CS, s("ISO_IR 100")),
        DataElement::new(tags::SOP_CLASS_UID, VR::UI, s("1.2.840.10008.5.1.4.1.1.2")),
        DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, s(&sop)),
        DataElement::new(tags::STUDY_DATE, VR::DA, s("20240315")),
        DataElement::new(tags::ACCESSION_NUMBER, VR::SH, s(&format!("ACC{n}"))),
        DataElement::new(tags::MODALITY, VR::CS, s("CT")),
        DataElement::new(tags::INSTITUTION_NAME, VR::LO, s("St Mary Hospital")),
        DataElement::new(tags::STUDY_DESCRIPTION, VR::LO, s("CT chest")),
        DataElement::new(tags::PATIENT_NAME, VR::PN, s(&format!("Fidelity{n}^Ada"))),
        DataElement::new(tags::PATIENT_ID, VR::LO, s(&format!("FID-{n:04}"))),
        DataElement::new(tags::PATIENT_BIRTH_DATE, VR::DA, s("19700101")),
        DataElement::new(tags::STUDY_INSTANCE_UID, VR::UI, s(&study)),
        DataElement::new(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            s(&format!("{ROOT}.2.{n}")),
        ),
        DataElement::new(tags::INSTANCE_NUMBER, VR::IS, s("1")),
        DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, dicom_value!(U16, [1])),
        DataElement::new(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, s("MONOCHROME2")),
        DataElement::new(tags::ROWS, VR::US, dicom_value!(U16, [rows])),
        DataElement::new(tags::COLUMNS, VR::US, dicom_value!(U16, [cols])),
        DataElement::new(tags::BITS_ALLOCATED, VR::US, dicom_value!(U16, [bits])),
        DataElement::new(tags::BITS_STORED, VR::US, dicom_value!(U16, [stored])),
        DataElement::new(tags::HIGH_BIT, VR::US, dicom_value!(U16, [stored - 1])),
        DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, dicom_value!(U16, [0])),
        DataElement::new(
            tags::PIXEL_DATA,
            if eight_bit { VR::OB } else { VR::OW },
            pixels,
        ),
    ]);
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.2")
        .media_storage_sop_instance_uid(sop.as_str())
        .transfer_syntax(EXPLICIT_LE);
    let path = dir.join(format!("native{n}.dcm"));
    obj.with_meta(meta).unwrap().write_to_file(&path).unwrap();
    path
}

/// JPEG 2000 (lossless) with Pillow's OpenJPEG, wrapped by pydicom.
pub const J2K_SCRIPT: &str = r#"
import sys, io
import pydicom
from pydicom.encaps import encapsulate
from PIL import Image
src, dst = sys.argv[1], sys.argv[2]
ds = pydicom.dcmread(src)
img = Image.frombytes("I;16", (ds.Columns, ds.Rows), ds.PixelData)
buf = io.BytesIO()
img.save(buf, format="JPEG2000", irreversible=False, no_jp2=True)
ds.PixelData = encapsulate([buf.getvalue()])
ds["PixelData"].VR = "OB"
ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.90"
ds.save_as(dst, enforce_file_format=True)
"#;

/// The compressed copy of `native` in `variant`'s syntax, with fresh UIDs.
pub fn compress(native: &Path, variant: &Variant, out: &Path) {
    let (o, n) = (out.to_str().unwrap(), native.to_str().unwrap());
    match variant.name {
        "jpeg-baseline" => drop(must("dcmcjpeg", &["+eb", n, o])),
        "jpeg-extended" => drop(must("dcmcjpeg", &["+ee", n, o])),
        "jpeg-lossless" => drop(must("dcmcjpeg", &["+e1", n, o])),
        "rle" => drop(must("dcmcrle", &[n, o])),
        "jpeg-ls" => drop(must("dcmcjpls", &["+el", n, o])),
        "jpeg-2000" => {
            let made = Command::new("python3")
                .env("PYTHONPATH", PYTHON_DEPS)
                .args(["-c", J2K_SCRIPT, n, o])
                .output()
                .expect("python3");
            assert!(
                made.status.success(),
                "JPEG 2000 fixture (needs pydicom and Pillow in target/python, as \
                 scripts/test.sh installs them): {}",
                log(&made)
            );
        }
        other => panic!("unknown variant {other}"),
    }
    let ts = open(out)
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_string();
    assert_eq!(ts, variant.ts, "{} fixture", variant.name);
}

pub fn pixel_bytes(obj: &InMemDicomObject) -> Vec<u8> {
    obj.element(tags::PIXEL_DATA)
        .unwrap()
        .to_bytes()
        .expect("native pixel data")
        .to_vec()
}

pub fn fragments(obj: &InMemDicomObject) -> Vec<Vec<u8>> {
    match obj.element(tags::PIXEL_DATA).unwrap().value() {
        Value::PixelSequence(seq) => seq.fragments().iter().map(|f| f.to_vec()).collect(),
        _ => panic!("pixel data is not encapsulated"),
    }
}

/// A client with the viewer, a strict gateway with the viewer's user; returns what
/// keeps them running.
pub struct Rig {
    pub gw: GatewaySide,
    /// The client's config file, for the `pacs-client` binary.
    pub config_file: PathBuf,
    pub _running: crate::common::RunningGateway,
    pub dir: tempfile::TempDir,
    pub edge: u16,
    pub stop: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Rig {
    pub async fn start() -> Rig {
        let gw = GatewaySide::prepare().await;
        let running = gw.start().await;
        let dir = tempfile::tempdir().unwrap();
        let edge = free_port();
        let mut config: Config = client_config(dir.path(), &gw, edge);
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
        client::keyfile::create(&config.key_file()).unwrap();
        let config_file = dir.path().join("client.toml");
        std::fs::write(&config_file, crate::common::client_toml(&config)).unwrap();
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
        Rig {
            gw,
            config_file,
            _running: running,
            dir,
            edge,
            stop: Some(stop),
            task,
        }
    }

    /// storescu to the edge with `options`; the output, whatever the status.
    pub async fn store(&self, options: &[&str], file: &Path) -> Output {
        let mut args: Vec<String> = ["-v", "-d", "-aet", MODALITY_AE, "-aec", "PACS_CLIENT"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(options.iter().map(|s| s.to_string()));
        args.extend([
            "127.0.0.1".to_string(),
            self.edge.to_string(),
            file.display().to_string(),
        ]);
        tokio::task::spawn_blocking(move || {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            run("storescu", &a)
        })
        .await
        .unwrap()
    }

    /// A study-level getscu as the viewer with `options`; the one file it wrote.
    pub async fn get(&self, options: &[&str], study: &str, into: &str) -> PathBuf {
        let dir = self.dir.path().join(into);
        std::fs::create_dir_all(&dir).unwrap();
        let mut args: Vec<String> = ["-v", "-S", "-aet", VIEWER_AE, "-aec", "PACS_CLIENT"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(options.iter().map(|s| s.to_string()));
        args.extend([
            "-od".to_string(),
            dir.display().to_string(),
            "-k".into(),
            "QueryRetrieveLevel=STUDY".into(),
            "-k".into(),
            format!("StudyInstanceUID={study}"),
            "127.0.0.1".into(),
            self.edge.to_string(),
        ]);
        let out = tokio::task::spawn_blocking(move || {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            run("getscu", &a)
        })
        .await
        .unwrap();
        let got: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        if std::env::var_os("FIDELITY_DEBUG").is_some() {
            eprintln!("getscu {options:?}: {}", log(&out));
        }
        assert_eq!(got.len(), 1, "getscu {options:?} of {study}: {}", log(&out));
        got[0].clone()
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(30), &mut self.task).await;
    }
}
