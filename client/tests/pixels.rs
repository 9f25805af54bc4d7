//! Burned-in text, through the binaries: DCMTK storescu as the modality, the facility
//! client, a real gateway over DICOM TLS. Ultrasound and RGB secondary-capture images
//! with a patient's name, ID and birth date rendered into the pixels (Pillow with the
//! DejaVu font, at run time) are held without a pixel rule, cleaned with one (native,
//! JPEG lossless and RLE), read by tesseract, released or kept local by a person.
//!
//! Needs python3 with Pillow (site-wide or in `target/python`), the DejaVu font and
//! tesseract (`scripts/test.sh` installs them); says SKIPPED without them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use client::app::Client;
use client::config::Config;
use client::config::pixels::{OcrMode, PixelRule, Rectangle};
use client::intake::pixels::frames::Frames;
use common::{GatewaySide, client_config, client_toml, free_port};
use dicom_core::{DataElement, PrimitiveValue, VR, dicom_value};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject, OpenFileOptions};
use phi::keys::FacilityKey;
use tokio::sync::oneshot;

const BIN: &str = env!("CARGO_BIN_EXE_pacs-client");
const PYTHON_DEPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/python");
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const US: &str = "1.2.840.10008.5.1.4.1.1.6.1";
const SC: &str = "1.2.840.10008.5.1.4.1.1.7";
const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
const ROOT: &str = "1.2.826.0.1.3680043.99.9";
const WIDTH: u32 = 512;
const HEIGHT: u32 = 384;

/// The patient whose identity is burned into the pixels.
const NAME: &str = "SMITHERS^WAYLON";
const PATIENT_ID: &str = "MRN4711223";
const BIRTH: &str = "19650311";

/// The text as a modality prints it: x, y, size, text.
const BURNED_IN: [&str; 4] = [
    "8,8,20,SMITHERS, WAYLON",
    "8,36,20,ID MRN4711223",
    "300,8,20,DOB 11.03.1965",
    "8,350,16,MI 0.8 TIS 0.4",
];

/// Covers the identifying text (top band), not the bottom line.
fn top_band() -> Rectangle {
    Rectangle {
        x: 0,
        y: 0,
        width: WIDTH,
        height: 64,
    }
}

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

const RENDER: &str = r#"
import sys
from PIL import Image, ImageDraw, ImageFont
w, h, mode, font = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
img = Image.new(mode, (w, h))
px = img.load()
for y in range(h):
    for x in range(w):
        v = 20 + (x // 16 + y // 16) % 24
        px[x, y] = v if mode == "L" else (v, v + 10, 40 + (x // 32) % 8)
d = ImageDraw.Draw(img)
for spec in sys.argv[5:]:
    x, y, size, text = spec.split(",", 3)
    f = ImageFont.truetype(font, int(size))
    d.text((int(x), int(y)), text, fill=255 if mode == "L" else (255, 255, 0), font=f)
sys.stdout.buffer.write(img.tobytes())
"#;

/// Renders a WIDTH x HEIGHT image (gray or RGB) with `texts`; `None` (and a SKIPPED
/// line) when python3, Pillow or the font is missing.
fn render(rgb: bool, texts: &[&str]) -> Option<Vec<u8>> {
    if !Path::new(FONT).exists() {
        eprintln!("SKIPPED: {FONT} is missing (apt-get install fonts-dejavu-core)");
        return None;
    }
    let out = python()
        .args(["-c", RENDER, &WIDTH.to_string(), &HEIGHT.to_string()])
        .arg(if rgb { "RGB" } else { "L" })
        .arg(FONT)
        .args(texts)
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(out) if out.status.success() => Some(out.stdout),
        Ok(out) => {
            eprintln!(
                "SKIPPED: python3 cannot render with Pillow (scripts/test.sh installs it): {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or_default()
            );
            None
        }
        Err(e) => {
            eprintln!("SKIPPED: cannot run python3: {e}");
            None
        }
    }
}

fn tesseract_installed() -> bool {
    let found = Command::new("tesseract")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("SKIPPED (OCR part): tesseract is missing (apt-get install tesseract-ocr)");
    }
    found
}

/// What tesseract reads in an 8-bit image (gray or RGB), the way the client reads.
fn ocr(image: &client::intake::pixels::frames::Image) -> String {
    let config = client::config::pixels::PixelsConfig::default();
    let ocr = client::intake::pixels::ocr::Ocr::probe(&config)
        .unwrap()
        .expect("tesseract");
    ocr.read(image).unwrap().to_uppercase()
}

/// One synthetic image instance.
struct Spec<'a> {
    sop_class: &'a str,
    modality: &'a str,
    n: u32,
    rgb: bool,
    pixels: &'a [u8],
    burned_in_annotation: Option<&'a str>,
    manufacturer: &'a str,
}

fn sop_uid(n: u32) -> String {
    format!("{ROOT}.3.{n}")
}

/// Writes an identified image instance (Explicit VR Little Endian).
fn write_image(dir: &Path, spec: &Spec<'_>) -> PathBuf {
    let s = |v: &str| PrimitiveValue::from(v);
    let sop = sop_uid(spec.n);
    let mut obj = InMemDicomObject::from_element_iter([
        DataElement::new(tags::SOP_CLASS_UID, VR::UI, s(spec.sop_class)),
        DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, s(&sop)),
        DataElement::new(tags::STUDY_DATE, VR::DA, s("20240315")),
        DataElement::new(tags::MODALITY, VR::CS, s(spec.modality)),
        DataElement::new(tags::MANUFACTURER, VR::LO, s(spec.manufacturer)),
        DataElement::new(tags::MANUFACTURER_MODEL_NAME, VR::LO, s("SonoStar 5000")),
        DataElement::new(tags::PATIENT_NAME, VR::PN, s(NAME)),
        DataElement::new(tags::PATIENT_ID, VR::LO, s(PATIENT_ID)),
        DataElement::new(tags::PATIENT_BIRTH_DATE, VR::DA, s(BIRTH)),
        DataElement::new(tags::STUDY_INSTANCE_UID, VR::UI, s(&format!("{ROOT}.1.1"))),
        DataElement::new(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            s(&format!("{ROOT}.2.{}", spec.n)),
        ),
        DataElement::new(tags::INSTANCE_NUMBER, VR::IS, s(&spec.n.to_string())),
        DataElement::new(
            tags::SAMPLES_PER_PIXEL,
            VR::US,
            dicom_value!(U16, [if spec.rgb { 3 } else { 1 }]),
        ),
        DataElement::new(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            s(if spec.rgb { "RGB" } else { "MONOCHROME2" }),
        ),
        DataElement::new(tags::ROWS, VR::US, dicom_value!(U16, [HEIGHT as u16])),
        DataElement::new(tags::COLUMNS, VR::US, dicom_value!(U16, [WIDTH as u16])),
        DataElement::new(tags::BITS_ALLOCATED, VR::US, dicom_value!(U16, [8])),
        DataElement::new(tags::BITS_STORED, VR::US, dicom_value!(U16, [8])),
        DataElement::new(tags::HIGH_BIT, VR::US, dicom_value!(U16, [7])),
        DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, dicom_value!(U16, [0])),
        DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            PrimitiveValue::from(spec.pixels.to_vec()),
        ),
    ]);
    if spec.rgb {
        obj.put(DataElement::new(
            tags::PLANAR_CONFIGURATION,
            VR::US,
            dicom_value!(U16, [0]),
        ));
    }
    let frames = spec.pixels.len() / (WIDTH * HEIGHT) as usize / if spec.rgb { 3 } else { 1 };
    if frames > 1 {
        obj.put(DataElement::new(
            tags::NUMBER_OF_FRAMES,
            VR::IS,
            s(&frames.to_string()),
        ));
    }
    if let Some(bia) = spec.burned_in_annotation {
        obj.put(DataElement::new(tags::BURNED_IN_ANNOTATION, VR::CS, s(bia)));
    }
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(spec.sop_class)
        .media_storage_sop_instance_uid(sop.as_str())
        .transfer_syntax("1.2.840.10008.1.2.1");
    let path = dir.join(format!("i{}.dcm", spec.n));
    obj.with_meta(meta).unwrap().write_to_file(&path).unwrap();
    path
}

/// Compresses `file` with a DCMTK tool (`dcmcjpeg` / `dcmcrle`) into `out`.
fn compress(tool: &str, file: &Path, out: &Path) {
    let status = Command::new(common::dcmtk_path(tool))
        .arg(file)
        .arg(out)
        .status()
        .unwrap_or_else(|e| panic!("{tool} (apt-get install dcmtk): {e}"));
    assert!(status.success(), "{tool} failed");
}

/// storescu from the modality with extra options (e.g. `-R -xs` for JPEG lossless).
fn storescu(port: u16, options: &[&str], files: &[PathBuf]) {
    let out = Command::new(common::dcmtk_path("storescu"))
        .env("TCP_NODELAY", "1")
        .args(["-aet", common::MODALITY_AE, "-aec", "PACS_CLIENT"])
        .args(options)
        .args(["127.0.0.1", &port.to_string()])
        .args(files)
        .stdin(Stdio::null())
        .output()
        .expect("storescu (apt-get install dcmtk)");
    assert!(
        out.status.success(),
        "storescu failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn start_client(
    config: &Config,
) -> (
    FacilityKey,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let key = match client::keyfile::load(&config.key_file()) {
        Ok(key) => key,
        Err(_) => client::keyfile::create(&config.key_file()).unwrap(),
    };
    let client = Client::build(config).await.unwrap();
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(client.run_until_stopped(async move {
        let _ = rx.await;
    }));
    (key, tx, task)
}

/// Polls the outbox until `uid` is in `state`.
async fn wait_state(config: &Config, uid: &str, state: &str, within: Duration) -> Option<String> {
    let outbox = client::outbox::open(config).await.unwrap();
    let deadline = Instant::now() + within;
    loop {
        let now = outbox.state_of(uid).await.unwrap();
        if now.as_deref() == Some(state) || Instant::now() > deadline {
            outbox.close().await;
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the binary; stdout, stderr and the exit code.
fn pacs(config: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn rule(name: &str, modality: Option<&str>, sop_class: Option<&str>) -> PixelRule {
    PixelRule {
        name: name.into(),
        manufacturer: Some("ACME*".into()),
        model: None,
        rows: Some(HEIGHT),
        columns: Some(WIDTH),
        sop_class: sop_class.map(Into::into),
        modality: modality.map(Into::into),
        rectangles: vec![top_band()],
    }
}

/// The `[pixels]` section for the binary (OCR off: these runs do not screen).
fn pixels_toml(rules: &[PixelRule]) -> String {
    let mut text = String::from("[pixels]\nocr = \"auto\"\n");
    for r in rules {
        text.push_str(&format!(
            "[[pixels.rules]]\nname = {:?}\nmanufacturer = {:?}\nrows = {}\ncolumns = {}\n",
            r.name,
            r.manufacturer.clone().unwrap_or_default(),
            r.rows.unwrap_or_default(),
            r.columns.unwrap_or_default()
        ));
        if let Some(m) = &r.modality {
            text.push_str(&format!("modality = {m:?}\n"));
        }
        if let Some(c) = &r.sop_class {
            text.push_str(&format!("sop_class = {c:?}\n"));
        }
        for b in &r.rectangles {
            text.push_str(&format!(
                "rectangles = [{{ x = {}, y = {}, width = {}, height = {} }}]\n",
                b.x, b.y, b.width, b.height
            ));
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn risky_instances_are_held_until_a_person_releases_or_keeps_them() {
    let (Some(gray), Some(color)) = (render(false, &BURNED_IN), render(true, &BURNED_IN)) else {
        return;
    };
    let gw = GatewaySide::prepare().await;
    let running = gw.start().await;
    let dir = tempfile::tempdir().unwrap();
    let edge = free_port();
    let config = client_config(dir.path(), &gw, edge);
    let config_file = dir.path().join("client.toml");
    std::fs::write(&config_file, client_toml(&config)).unwrap();
    let (_key, stop, task) = start_client(&config).await;

    let us = write_image(
        dir.path(),
        &Spec {
            sop_class: US,
            modality: "US",
            n: 1,
            rgb: false,
            pixels: &gray,
            burned_in_annotation: None,
            manufacturer: "ACME",
        },
    );
    let sc = write_image(
        dir.path(),
        &Spec {
            sop_class: SC,
            modality: "OT",
            n: 2,
            rgb: true,
            pixels: &color,
            burned_in_annotation: None,
            manufacturer: "ACME",
        },
    );
    let flagged_ct = write_image(
        dir.path(),
        &Spec {
            sop_class: CT,
            modality: "CT",
            n: 3,
            rgb: false,
            pixels: &gray,
            burned_in_annotation: Some("YES"),
            manufacturer: "Other",
        },
    );
    let ct = write_image(
        dir.path(),
        &Spec {
            sop_class: CT,
            modality: "CT",
            n: 4,
            rgb: false,
            pixels: &vec![7u8; (WIDTH * HEIGHT) as usize],
            burned_in_annotation: None,
            manufacturer: "Other",
        },
    );
    storescu(edge, &[], &[us, sc, flagged_ct, ct]);
    for n in 1..=3 {
        assert_eq!(
            wait_state(&config, &sop_uid(n), "held", Duration::from_secs(60))
                .await
                .as_deref(),
            Some("held"),
            "instance {n} is held"
        );
    }
    assert_eq!(gw.wait_for(1, Duration::from_secs(30)).await, 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stored = gw.stored().await;
    assert_eq!(stored.len(), 1, "only the plain CT reaches the gateway");

    let (code, status, _) = pacs(&config_file, &["status"]);
    assert_eq!(code, 0);
    assert!(
        status
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["held", "3"]),
        "status counts 3 held: {status}"
    );
    for n in 1..=3 {
        let line = status
            .lines()
            .find(|l| l.contains(&sop_uid(n)))
            .unwrap_or_else(|| panic!("status lists held instance {n}: {status}"));
        assert!(line.contains("held: burned-in annotation"), "{line}");
    }
    assert!(status.contains("Burned In Annotation = YES"), "{status}");
    assert!(status.contains("is a burned-in text risk"), "{status}");

    let outbox = client::outbox::open(&config).await.unwrap();
    let held = outbox.held_instances().await.unwrap();
    let id_of = |n: u32| {
        held.iter()
            .find(|h| h.sop_instance_uid == sop_uid(n))
            .unwrap()
            .id
            .to_string()
    };
    let (us_id, sc_id) = (id_of(1), id_of(2));

    // Release needs the explicit confirmation.
    let (code, _, err) = pacs(&config_file, &["held", "release", &us_id]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--confirm-no-burned-in-identity"), "{err}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        gw.stored().await.len(),
        1,
        "nothing sent without confirmation"
    );

    let (code, out, err) = pacs(
        &config_file,
        &["held", "release", &us_id, "--confirm-no-burned-in-identity"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("audit") && err.contains("release"),
        "audit log line: {err}"
    );
    assert_eq!(
        wait_state(&config, &sop_uid(1), "delivered", Duration::from_secs(30))
            .await
            .as_deref(),
        Some("delivered"),
        "a released instance is sent"
    );
    assert_eq!(gw.wait_for(2, Duration::from_secs(30)).await, 2);

    let (code, out, err) = pacs(&config_file, &["held", "keep-local", &sc_id]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        outbox.state_of(&sop_uid(2)).await.unwrap().as_deref(),
        Some("local")
    );
    let (code, _, err) = pacs(&config_file, &["held", "keep-local", &sc_id]);
    assert_ne!(code, 0, "only held instances can be kept local: {err}");

    let audit = outbox.pixel_audit().await.unwrap();
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[0].action, "keep-local");
    assert_eq!(audit[1].action, "release");
    assert_eq!(audit[1].sop_instance_uid, sop_uid(1));
    assert!(!audit[1].os_user.is_empty());
    assert!(audit[1].reason.contains("burned-in annotation"));
    let (_, out, _) = pacs(&config_file, &["held", "audit"]);
    assert!(
        out.contains("release") && out.contains("keep-local"),
        "{out}"
    );
    let (_, out, _) = pacs(&config_file, &["held", "list"]);
    assert!(
        out.contains(&sop_uid(3)) && !out.contains(&sop_uid(1)),
        "{out}"
    );

    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        gw.stored().await.len(),
        2,
        "the kept-local instance stays here"
    );
    outbox.close().await;
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    running.stop().await;
}

/// An instance as the gateway stored it, re-identified (for its original UID).
fn gateway_copy(
    gw: &GatewaySide,
    key: &FacilityKey,
    blob_key: &str,
) -> (String, dicom_object::DefaultDicomObject) {
    let file = OpenFileOptions::new()
        .open_file(gw.config.data_dir.join("blobs").join(blob_key))
        .unwrap();
    let restored = phi::deid::reidentify(&file, &key.ring(), common::FACILITY).unwrap();
    let uid = restored
        .element(tags::SOP_INSTANCE_UID)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches('\0')
        .to_string();
    (uid, file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pixel_rule_blanks_the_text_in_native_and_compressed_images() {
    let (Some(gray), Some(color)) = (render(false, &BURNED_IN), render(true, &BURNED_IN)) else {
        return;
    };
    let gw = GatewaySide::prepare().await;
    let running = gw.start().await;
    let dir = tempfile::tempdir().unwrap();
    let edge = free_port();
    let mut config = client_config(dir.path(), &gw, edge);
    config.pixels.rules = vec![
        rule("acme US", Some("US"), None),
        rule("acme SC", None, Some(SC)),
    ];
    let (key, stop, task) = start_client(&config).await;

    let spec = |n, sop_class, modality, rgb, pixels| Spec {
        sop_class,
        modality,
        n,
        rgb,
        pixels,
        burned_in_annotation: Some("YES"),
        manufacturer: "ACME Medical",
    };
    let us = write_image(dir.path(), &spec(11, US, "US", false, &gray));
    let sc = write_image(dir.path(), &spec(12, SC, "OT", true, &color));
    let us_jpeg_source = write_image(dir.path(), &spec(13, US, "US", false, &gray));
    let sc_rle_source = write_image(dir.path(), &spec(14, SC, "OT", true, &color));
    let us_jpeg = dir.path().join("us-jpeg-lossless.dcm");
    let sc_rle = dir.path().join("sc-rle.dcm");
    compress("dcmcjpeg", &us_jpeg_source, &us_jpeg);
    compress("dcmcrle", &sc_rle_source, &sc_rle);
    let cine: Vec<u8> = gray.iter().chain(&gray).chain(&gray).copied().collect();
    let us_cine = write_image(
        dir.path(),
        &spec(15, "1.2.840.10008.5.1.4.1.1.3.1", "US", false, &cine),
    );
    storescu(edge, &[], &[us, sc, us_cine]);
    storescu(edge, &["-R", "-xs"], &[us_jpeg]);
    storescu(edge, &["-R", "-xr"], &[sc_rle]);
    assert_eq!(
        gw.wait_for(5, Duration::from_secs(60)).await,
        5,
        "all five cleaned and sent"
    );

    let read_ocr = tesseract_installed();
    let band = top_band();
    for row in gw.stored().await {
        let (uid, file) = gateway_copy(&gw, &key, &row.blob_key);
        let n: u32 = uid.rsplit('.').next().unwrap().parse().unwrap();
        let (rgb, original) = if n.is_multiple_of(2) {
            (true, &color)
        } else {
            (false, &gray)
        };
        assert_eq!(
            file.meta().transfer_syntax().trim_end_matches('\0'),
            "1.2.840.10008.1.2.1",
            "a cleaned instance travels as Explicit VR Little Endian"
        );
        assert_eq!(
            file.element(tags::BURNED_IN_ANNOTATION)
                .unwrap()
                .to_str()
                .unwrap()
                .trim(),
            "NO"
        );
        let codes: Vec<String> = file
            .element(tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE)
            .unwrap()
            .items()
            .unwrap()
            .iter()
            .map(|item| {
                item.element(tags::CODE_VALUE)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .trim()
                    .to_string()
            })
            .collect();
        assert!(
            codes.contains(&"113101".to_string()),
            "Clean Pixel Data code: {codes:?}"
        );
        let photometric = file
            .element(tags::PHOTOMETRIC_INTERPRETATION)
            .unwrap()
            .to_str()
            .unwrap();
        assert_eq!(photometric.trim(), if rgb { "RGB" } else { "MONOCHROME2" });

        let frames = Frames::read(&file, None).unwrap();
        let samples = if rgb { 3 } else { 1 };
        let count = frames.numbers.len();
        assert_eq!(count, if n == 15 { 3 } else { 1 }, "instance {n}: frames");
        assert_eq!(frames.data.len(), original.len() * count, "instance {n}");
        let mut blanked = 0;
        let pixels = (WIDTH * HEIGHT) as usize;
        for (i, (got, was)) in frames.data.iter().zip(original.iter().cycle()).enumerate() {
            let p = (i / samples) % pixels;
            let (x, y) = (p as u32 % WIDTH, p as u32 / WIDTH);
            if x < band.x + band.width && y < band.y + band.height {
                assert_eq!(*got, 0, "instance {n}: ({x},{y}) is blanked");
                blanked += 1;
            } else {
                assert_eq!(got, was, "instance {n}: ({x},{y}) is unchanged");
            }
        }
        assert_eq!(blanked, (WIDTH * band.height) as usize * samples * count);

        if read_ocr {
            let text = ocr(&frames.image(0).unwrap());
            for word in ["SMITHERS", "WAYLON", PATIENT_ID, "1965"] {
                assert!(
                    !text.contains(word),
                    "instance {n}: OCR of the gateway copy reads {word:?}: {text}"
                );
            }
        }
    }
    if read_ocr {
        // The same OCR reads the name in an original, so the check above can fail.
        let original = write_image(dir.path(), &spec(99, US, "US", false, &gray));
        let file = OpenFileOptions::new().open_file(original).unwrap();
        let text = ocr(&Frames::read(&file, None).unwrap().image(0).unwrap());
        assert!(
            text.contains("SMITHERS") && text.contains("MRN4711223"),
            "{text}"
        );
    }

    // No identifier in any byte the gateway wrote.
    for file in gw.all_files() {
        let bytes = std::fs::read(&file).unwrap();
        for secret in ["SMITHERS", "WAYLON", PATIENT_ID, BIRTH, ROOT] {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "{secret:?} found in {}", file.display());
        }
    }
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ocr_holds_instances_declared_clean_whose_pixels_show_the_patient() {
    if !tesseract_installed() {
        return;
    }
    let (Some(text), Some(plain)) = (render(false, &BURNED_IN), render(false, &[BURNED_IN[3]]))
    else {
        return;
    };
    let gw = GatewaySide::prepare().await;
    let running = gw.start().await;
    let dir = tempfile::tempdir().unwrap();
    let edge = free_port();
    let mut config = client_config(dir.path(), &gw, edge);
    config.pixels.ocr = OcrMode::Required;
    let (_key, stop, task) = start_client(&config).await;
    let spec = |n, pixels| Spec {
        sop_class: US,
        modality: "US",
        n,
        rgb: false,
        pixels,
        burned_in_annotation: Some("NO"),
        manufacturer: "ACME",
    };
    let lying = write_image(dir.path(), &spec(21, &text));
    let honest = write_image(dir.path(), &spec(22, &plain));
    storescu(edge, &[], &[lying, honest]);
    assert_eq!(
        wait_state(&config, &sop_uid(21), "held", Duration::from_secs(60))
            .await
            .as_deref(),
        Some("held")
    );
    assert_eq!(
        gw.wait_for(1, Duration::from_secs(60)).await,
        1,
        "the clean one is sent"
    );
    let outbox = client::outbox::open(&config).await.unwrap();
    let held = outbox.held_instances().await.unwrap();
    assert_eq!(held.len(), 1);
    assert!(
        held[0]
            .reason
            .contains("OCR read the patient's name in frame 1"),
        "{}",
        held[0].reason
    );
    assert!(
        !held[0].reason.to_uppercase().contains("SMITHERS"),
        "no value in the reason"
    );
    outbox.close().await;
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    running.stop().await;
}

#[tokio::test]
async fn pixel_rule_test_shows_what_a_rule_blanks() {
    let Some(gray) = render(false, &BURNED_IN) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().join("client"),
        facility: common::FACILITY.into(),
        ..Config::default()
    };
    let absent = dir.path().join("no-gateway");
    config.gateway.cert = Some(absent.join("facility.crt"));
    config.gateway.key = Some(absent.join("facility.key"));
    config.gateway.ca = Some(absent.join("ca.crt"));
    let config_file = dir.path().join("client.toml");
    let text = format!(
        "{}{}",
        client_toml(&config),
        pixels_toml(&[rule("acme US", Some("US"), None)])
    );
    std::fs::write(&config_file, text).unwrap();
    let file = write_image(
        dir.path(),
        &Spec {
            sop_class: US,
            modality: "US",
            n: 31,
            rgb: false,
            pixels: &gray,
            burned_in_annotation: Some("YES"),
            manufacturer: "ACME",
        },
    );
    let png = dir.path().join("out.png");
    let (code, out, err) = pacs(
        &config_file,
        &[
            "pixel-rule",
            "test",
            file.to_str().unwrap(),
            "--png",
            png.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("rule \"acme US\" matches"), "{out}");
    assert!(out.contains("blanks columns 0..512 rows 0..64"), "{out}");
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    if tesseract_installed() {
        assert!(
            out.contains("OCR reads none of this instance's identifiers"),
            "{out}"
        );
        let read = Command::new("tesseract")
            .arg(&png)
            .args(["stdout", "--psm", "11"])
            .output()
            .unwrap();
        let read = String::from_utf8_lossy(&read.stdout).to_uppercase();
        assert!(
            !read.contains("SMITHERS") && !read.contains("MRN"),
            "{read}"
        );
    }

    let other = write_image(
        dir.path(),
        &Spec {
            sop_class: US,
            modality: "US",
            n: 32,
            rgb: false,
            pixels: &gray,
            burned_in_annotation: Some("YES"),
            manufacturer: "Other Vendor",
        },
    );
    let (code, out, _) = pacs(
        &config_file,
        &[
            "pixel-rule",
            "test",
            other.to_str().unwrap(),
            "--png",
            png.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0);
    assert!(out.contains("no pixel rule matches"), "{out}");
    if tesseract_installed() {
        assert!(out.contains("OCR still reads the patient's name"), "{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_reports_held_instances_instead_of_waiting_for_them() {
    let Some(gray) = render(false, &BURNED_IN) else {
        return;
    };
    let gw = GatewaySide::prepare().await; // never started: held instances need no gateway
    let dir = tempfile::tempdir().unwrap();
    let config = client_config(dir.path(), &gw, free_port());
    client::keyfile::create(&config.key_file()).unwrap();
    let config_file = dir.path().join("client.toml");
    std::fs::write(&config_file, client_toml(&config)).unwrap();
    let folder = dir.path().join("cd");
    std::fs::create_dir_all(&folder).unwrap();
    write_image(
        &folder,
        &Spec {
            sop_class: US,
            modality: "US",
            n: 41,
            rgb: false,
            pixels: &gray,
            burned_in_annotation: Some("YES"),
            manufacturer: "ACME",
        },
    );
    let (code, out, err) = pacs(&config_file, &["send", folder.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("held for burned-in text 1"), "{out}");
    assert!(out.contains("pacs-client held list"), "{out}");
}
