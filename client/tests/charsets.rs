//! Names in the character sets of PS3.5 Annexes H (Japanese, ISO 2022 IR 87 and
//! IR 13), I (Korean, ISO 2022 IR 149) and J (Chinese, GB18030 and ISO 2022 IR 58),
//! byte for byte as the standard's examples: DCMTK storescu -> client -> gateway
//! (SQLite and PostgreSQL), then `pacs-client query` by each component group, by
//! family name and by prefix, and DCMTK findscu through the viewer proxy, whose
//! answers are UTF-8 and say so; a viewer configured for `\ISO 2022 IR 87` gets
//! the standard's bytes back (C-FIND answers and C-GET instances, checked with
//! pydicom). Nothing logs "Unsupported character set".

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use client::app::Client;
use common::{
    Backend, GatewaySide, UID_ROOT, client_toml, client_with_viewer, dcmtk_path, storescu,
};
use dicom_core::{DataElement, PrimitiveValue, VR, dicom_value};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use tokio::sync::oneshot;

const PASSWORD: &str = "correct horse battery";
const VIEWER_AE: &str = "VIEWER1";
/// A viewer that reads Japanese in ISO 2022 only.
const OLD_VIEWER_AE: &str = "OLDVIEWER";
const JAPANESE: &str = "\\ISO 2022 IR 87";

/// Everything logged in this test binary (the client and gateway run in-process),
/// to check that no character set goes unsupported.
fn captured_log() -> &'static std::sync::Mutex<Vec<u8>> {
    static LOG: std::sync::OnceLock<&'static std::sync::Mutex<Vec<u8>>> =
        std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let log: &'static std::sync::Mutex<Vec<u8>> = Box::leak(Box::default());
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || Capture(log))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
        log
    })
}

struct Capture(&'static std::sync::Mutex<Vec<u8>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One example: its Specific Character Set, the name's bytes, and the name.
struct Example {
    charset: &'static [u8],
    name_hex: &'static str,
    name: &'static str,
    id: &'static str,
}

const EXAMPLES: [Example; 5] = [
    Example {
        charset: b"\\ISO 2022 IR 87",
        name_hex: "59616d6164615e5461726f753d1b24423b3345441b28425e1b244242404f3a1b28423d\
                   1b24422464245e24401b28425e1b2442243f246d24261b2842",
        name: "Yamada^Tarou=山田^太郎=やまだ^たろう",
        id: "JP-H1",
    },
    Example {
        charset: b"ISO 2022 IR 13\\ISO 2022 IR 87",
        name_hex: "d4cfc0de5ec0dbb33d1b24423b3345441b284a5e1b244242404f3a1b284a3d1b2442\
                   2464245e24401b284a5e1b2442243f246d24261b284a",
        name: "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう",
        id: "JP-H2",
    },
    Example {
        charset: b"\\ISO 2022 IR 149",
        name_hex: "486f6e675e47696c646f6e673d1b242943fbf35e1b242943d1ced4d73d1b242943c8ab5e\
                   1b242943b1e6b5bf",
        name: "Hong^Gildong=洪^吉洞=홍^길동",
        id: "KR-I1",
    },
    Example {
        charset: b"GB18030",
        name_hex: "57616e675e5869616f446f6e673dcdf55ed0a1967c3d",
        name: "Wang^XiaoDong=王^小東=",
        id: "CN-J1",
    },
    Example {
        charset: b"\\ISO 2022 IR 58",
        name_hex: "5a68616e675e5869616f446f6e673d1b242941d5c55e1b242941d0a1b6ab3d",
        name: "Zhang^XiaoDong=张^小东=",
        id: "CN-J3",
    },
];

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Writes instance `n` of the example: its Specific Character Set and Patient Name
/// exactly as the standard's bytes (placeholders of the same length, patched).
fn write_example(dir: &Path, n: u32, e: &Example) -> PathBuf {
    let even = |mut v: Vec<u8>| {
        if v.len() % 2 == 1 {
            v.push(b' ');
        }
        v
    };
    let charset = even(e.charset.to_vec());
    let name = even(hex(e.name_hex));
    let cs_placeholder = "C".repeat(charset.len());
    let pn_placeholder = "N".repeat(name.len());
    let s = |v: &str| PrimitiveValue::from(v);
    let sop = format!("{UID_ROOT}.3.70.{n}");
    let obj = InMemDicomObject::from_element_iter([
        // As bytes: dicom-rs does not switch its text codec for these.
        DataElement::new(
            tags::SPECIFIC_CHARACTER_SET,
            VR::CS,
            PrimitiveValue::U8(cs_placeholder.as_bytes().to_vec().into()),
        ),
        DataElement::new(tags::SOP_CLASS_UID, VR::UI, s("1.2.840.10008.5.1.4.1.1.2")),
        DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, s(&sop)),
        DataElement::new(tags::STUDY_DATE, VR::DA, s("20240320")),
        DataElement::new(tags::MODALITY, VR::CS, s("CT")),
        DataElement::new(tags::STUDY_DESCRIPTION, VR::LO, s("CT head")),
        DataElement::new(tags::PATIENT_NAME, VR::PN, s(&pn_placeholder)),
        DataElement::new(tags::PATIENT_ID, VR::LO, s(e.id)),
        DataElement::new(
            tags::STUDY_INSTANCE_UID,
            VR::UI,
            s(&format!("{UID_ROOT}.1.7{n}")),
        ),
        DataElement::new(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            s(&format!("{UID_ROOT}.2.7{n}")),
        ),
        DataElement::new(tags::ROWS, VR::US, dicom_value!(U16, [4])),
        DataElement::new(tags::COLUMNS, VR::US, dicom_value!(U16, [4])),
        DataElement::new(tags::BITS_ALLOCATED, VR::US, dicom_value!(U16, [16])),
        DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::from(vec![7u8; 32]),
        ),
    ]);
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.2")
        .media_storage_sop_instance_uid(sop.as_str())
        .transfer_syntax("1.2.840.10008.1.2.1");
    let mut bytes = Vec::new();
    obj.with_meta(meta).unwrap().write_all(&mut bytes).unwrap();
    let patch = |bytes: &mut Vec<u8>, from: &[u8], to: &[u8]| {
        let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
        bytes[at..at + from.len()].copy_from_slice(to);
    };
    patch(&mut bytes, cs_placeholder.as_bytes(), &charset);
    patch(&mut bytes, pn_placeholder.as_bytes(), &name);
    let path = dir.join(format!("charset-{n}.dcm"));
    std::fs::write(&path, bytes).unwrap();
    path
}

fn log(out: &Output) -> String {
    format!(
        "{:?}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn query_json(config: &Path, name: &str) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_pacs-client"))
        .arg("--config")
        .arg(config)
        .args(["query", "--user", "dr.house", "--json", "--name", name])
        .env("PACS_PASSWORD", PASSWORD)
        .env_remove("PACS_CLIENT_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "query --name {name}: {}", log(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// One answer of the viewer proxy: its file, its data set (read as the client reads
/// files) and its Specific Character Set as pydicom reads it.
struct Answer {
    file: PathBuf,
    object: InMemDicomObject,
    charset: String,
}

/// Study-level findscu through the viewer proxy by Patient Name, as viewer `ae`;
/// the answers, whose names pydicom decodes as the client does.
async fn viewer_find(port: u16, dir: &Path, name: &str, ae: &str) -> Vec<Answer> {
    std::fs::create_dir_all(dir).unwrap();
    let mut a: Vec<String> = ["-S", "-aet", ae, "-aec", "PACS_CLIENT", "-X", "-od"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.push(dir.display().to_string());
    for k in [
        "SpecificCharacterSet=ISO_IR 192".to_string(),
        "QueryRetrieveLevel=STUDY".to_string(),
        "PatientID".to_string(),
        "StudyInstanceUID".to_string(),
        format!("PatientName={name}"),
    ] {
        a.extend(["-k".to_string(), k]);
    }
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
    assert!(out.status.success(), "findscu {name}: {}", log(&out));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let (charset, by_pydicom) = pydicom_name(&p);
            let obj = client::dicomfile::open(&p).unwrap().into_inner();
            // pydicom leaves out trailing empty component groups (`王^小東=`).
            let canonical = |s: &str| s.trim_end_matches(['=', '^']).to_owned();
            assert_eq!(
                canonical(&by_pydicom),
                canonical(&text(&obj, tags::PATIENT_NAME)),
                "{}",
                p.display()
            );
            Answer {
                file: p,
                object: obj,
                charset,
            }
        })
        .collect()
}

/// C-GET of a study through the viewer proxy, as viewer `ae`; the files received.
async fn viewer_get(port: u16, dir: &Path, study: &str, ae: &str) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let mut a: Vec<String> = ["-S", "-aet", ae, "-aec", "PACS_CLIENT", "-od"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.push(dir.display().to_string());
    for k in [
        "QueryRetrieveLevel=STUDY".to_string(),
        format!("StudyInstanceUID={study}"),
    ] {
        a.extend(["-k".to_string(), k]);
    }
    a.extend(["127.0.0.1".to_string(), port.to_string()]);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(dcmtk_path("getscu"))
            .args(&a)
            .stdin(Stdio::null())
            .output()
            .expect("getscu (apt-get install dcmtk)")
    })
    .await
    .unwrap();
    assert!(out.status.success(), "getscu {study}: {}", log(&out));
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect()
}

/// pydicom (installed with pynetdicom into target/python by scripts/test.sh): the
/// file's Specific Character Set and its Patient Name decoded under it.
fn pydicom_name(file: &Path) -> (String, String) {
    let deps = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/python");
    let out = Command::new("python3")
        .env("PYTHONPATH", deps)
        .args([
            "-c",
            "import sys, pydicom\n\
             ds = pydicom.dcmread(sys.argv[1], force=True)\n\
             cs = ds.SpecificCharacterSet\n\
             print('\\\\'.join(cs) if not isinstance(cs, str) else cs)\n\
             print(str(ds.PatientName))",
        ])
        .arg(file)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "pydicom (scripts/test.sh installs it): {}",
        log(&out)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines().map(str::to_owned);
    (
        lines.next().unwrap_or_default(),
        lines.next().unwrap_or_default(),
    )
}

fn text(obj: &InMemDicomObject, tag: dicom_core::Tag) -> String {
    obj.element(tag)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|v| v.trim_end_matches(['\0', ' ']).to_string())
        .unwrap_or_default()
}

async fn names_of_every_script(backend: Backend) {
    captured_log();
    let gw = GatewaySide::prepare_on(backend).await;
    let running = gw.start().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut config, config_file, edge) =
        client_with_viewer(&gw, dir.path(), VIEWER_AE, PASSWORD).await;
    let mut old_viewer = config.edge.viewers[0].clone();
    old_viewer.ae_title = OLD_VIEWER_AE.into();
    old_viewer.character_set = Some(JAPANESE.into());
    config.edge.viewers.push(old_viewer);
    std::fs::write(&config_file, client_toml(&config)).unwrap();
    let app = Client::build(&config).await.unwrap();
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));

    let files: Vec<PathBuf> = EXAMPLES
        .iter()
        .enumerate()
        .map(|(n, e)| write_example(dir.path(), n as u32, e))
        .collect();
    storescu(edge, files).await;
    assert_eq!(gw.wait_for(5, Duration::from_secs(30)).await, 5);

    // Each component group, the family name alone, and a prefix find the patient;
    // `query --json` shows the name in Unicode.
    let searches: [(&str, &[&str]); 5] = [
        (
            "JP-H1",
            &["Yamada^Tarou", "山田^太郎", "やまだ", "YAMA*", "山田*"],
        ),
        ("JP-H2", &["ﾔﾏﾀﾞ", "ヤマダ^タロウ", "ﾔﾏ*"]),
        ("KR-I1", &["Hong", "洪^吉洞", "홍", "홍^길동", "hong^gil*"]),
        ("CN-J1", &["Wang^XiaoDong", "王", "王^小東", "WANG*"]),
        ("CN-J3", &["Zhang", "张^小东", "张"]),
    ];
    for (id, queries) in searches {
        let example = EXAMPLES.iter().find(|e| e.id == id).unwrap();
        for query in queries {
            let rows = query_json(&config_file, query);
            let ids: Vec<&str> = rows
                .iter()
                .map(|r| r["patient_id"].as_str().unwrap())
                .collect();
            assert!(ids.contains(&id), "{query:?} should find {id}: {rows:?}");
            let row = rows.iter().find(|r| r["patient_id"] == id).unwrap();
            assert_eq!(row["patient_name"], example.name, "{query:?}");
        }
    }
    // The katakana of H2 are not the kanji of H1: searching by the kana name finds H2
    // (and H1, whose phonetic group is hiragana, not).
    let rows = query_json(&config_file, "ﾔﾏﾀﾞ^ﾀﾛｳ");
    let ids: Vec<&str> = rows
        .iter()
        .map(|r| r["patient_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["JP-H2"], "{rows:?}");

    // The viewer proxy answers in UTF-8, labelled ISO_IR 192.
    for (n, (query, id)) in [("山田^太郎", "JP-H1"), ("홍", "KR-I1"), ("王*", "CN-J1")]
        .iter()
        .enumerate()
    {
        let at = dir.path().join(format!("find-{n}"));
        let found = viewer_find(edge, &at, query, VIEWER_AE).await;
        assert!(found.iter().all(|a| a.charset == "ISO_IR 192"), "{query}");
        let mine: Vec<&InMemDicomObject> = found
            .iter()
            .map(|a| &a.object)
            .filter(|o| text(o, tags::PATIENT_ID) == *id)
            .collect();
        assert_eq!(mine.len(), 1, "{query}: {} answers", found.len());
        let example = EXAMPLES.iter().find(|e| e.id == *id).unwrap();
        assert_eq!(text(mine[0], tags::PATIENT_NAME), example.name, "{query}");
    }

    // The viewer configured for ISO 2022 IR 87 gets the standard's own bytes, in
    // its C-FIND answers and in the instances of its C-GET.
    let h1 = &EXAMPLES[0];
    let at = dir.path().join("find-old");
    let found = viewer_find(edge, &at, "山田^太郎", OLD_VIEWER_AE).await;
    let of = |id: &str| {
        found
            .iter()
            .find(|a| text(&a.object, tags::PATIENT_ID) == id)
            .unwrap_or_else(|| panic!("{id} among the answers"))
    };
    let answer = of("JP-H1");
    assert_eq!(answer.charset, JAPANESE);
    assert_eq!(text(&answer.object, tags::PATIENT_NAME), h1.name);
    let raw = std::fs::read(&answer.file).unwrap();
    let name = hex(h1.name_hex);
    assert!(raw.windows(name.len()).any(|w| w == name), "Annex H bytes");
    // H2's half-width katakana are not in JIS X 0208 (that is ISO 2022 IR 13): that
    // answer comes in UTF-8, correctly labelled.
    assert_eq!(of("JP-H2").charset, "ISO_IR 192");
    assert_eq!(
        text(&of("JP-H2").object, tags::PATIENT_NAME),
        EXAMPLES[1].name
    );
    let study = text(&answer.object, tags::STUDY_INSTANCE_UID);
    let got = viewer_get(edge, &dir.path().join("get-old"), &study, OLD_VIEWER_AE).await;
    assert_eq!(got.len(), 1, "one instance: {got:?}");
    assert_eq!(
        pydicom_name(&got[0]),
        (JAPANESE.to_string(), h1.name.to_string())
    );
    let raw = std::fs::read(&got[0]).unwrap();
    assert!(raw.windows(name.len()).any(|w| w == name), "Annex H bytes");
    // A Korean name has no JIS X 0208 form: that answer comes in UTF-8.
    let at = dir.path().join("find-old-korean");
    let found = viewer_find(edge, &at, "홍", OLD_VIEWER_AE).await;
    assert_eq!(found.len(), 1, "one answer");
    assert_eq!(found[0].charset, "ISO_IR 192");
    assert_eq!(text(&found[0].object, tags::PATIENT_NAME), EXAMPLES[2].name);

    let log = String::from_utf8_lossy(&captured_log().lock().unwrap()).into_owned();
    assert!(
        !log.contains("Unsupported character set"),
        "{}",
        log.lines()
            .filter(|l| l.contains("Unsupported character set"))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );

    let _ = stop.send(());
    task.await.unwrap().unwrap();
    running.stop().await;
}
both_backends!(names_of_every_script);
