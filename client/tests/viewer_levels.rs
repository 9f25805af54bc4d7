//! The viewer proxy at every level, end to end: DCMTK storescu (modality) -> client
//! -> gateway, then DCMTK `findscu -P` / `-S` (PATIENT, STUDY, SERIES, IMAGE),
//! `getscu` (STUDY, SERIES, IMAGE) and `movescu` (to a DCMTK `storescp` configured
//! as a viewer with host and port) against the client's edge port, and our own SCU
//! with the viewer's own User Identity. Responses show original names, IDs and UIDs
//! and never a pseudonym or a sealed item; a name that hits a blind-index false
//! positive is filtered; retrieved and moved files equal the modality's originals.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use client::app::Client;
use client::config::{Destination, Rule, Viewer};
use common::{
    GatewaySide, Patient, UID_ROOT, client_config, dcmtk_path, free_port, patient, storescu,
    write_instance,
};
use dicom_core::header::Header;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{InMemDicomObject, OpenFileOptions};
use dimse::assoc::EXPLICIT_VR_LE;
use dimse::qr::{STUDY_ROOT_FIND, STUDY_ROOT_MOVE};
use dimse::scu::{Credentials, Proposal, ScuAssociation, ScuOptions};
use gateway::auth::{AuthSettings, Password, Role, Username, hash_password};
use phi::keys::KeyRing;
use phi::pseudonym::{blind_index, normalize_name};
use tokio::sync::oneshot;

const PASSWORD: &str = "correct horse battery";
const WILSON_PASSWORD: &str = "oncology rules 42";
const VIEWER_AE: &str = "VIEWER1";
const STORE_AE: &str = "VIEWSTORE";

/// Elements whose presence or value may legitimately differ between a modality's
/// original and what the proxy hands back: the de-identification marks. Each one
/// must still be absent from the restored file when the original lacked it, which
/// `assert_restored` checks, so the list only documents what is compared.
const DEID_MARKS: [Tag; 4] = [
    tags::PATIENT_IDENTITY_REMOVED,
    tags::DEIDENTIFICATION_METHOD,
    tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE,
    tags::ENCRYPTED_ATTRIBUTES_SEQUENCE,
];

fn read_object(path: &Path) -> InMemDicomObject {
    OpenFileOptions::new().open_file(path).unwrap().into_inner()
}

fn text(obj: &InMemDicomObject, tag: Tag) -> String {
    obj.element(tag)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|v| v.trim_end_matches(['\0', ' ']).to_string())
        .unwrap_or_default()
}

/// Element-by-element comparison of a retrieved file with the original: every
/// original element is present with the same VR and value, and the only elements the
/// retrieved one may add are the de-identification marks (and the product's private
/// block, group 0013) — which must not be there either, since re-identification
/// restores the original exactly.
fn assert_restored(received: &InMemDicomObject, original: &InMemDicomObject, what: &str) {
    for element in original.iter() {
        let tag = element.tag();
        let got = received
            .get(tag)
            .unwrap_or_else(|| panic!("{what}: {tag} missing"));
        assert_eq!(got.vr(), element.vr(), "{what}: VR of {tag}");
        assert_eq!(got.value(), element.value(), "{what}: value of {tag}");
    }
    for element in received.iter() {
        let tag = element.tag();
        if original.get(tag).is_none() {
            let mark = DEID_MARKS.contains(&tag) || tag.group() == 0x0013;
            panic!("{what}: extra element {tag} (a de-identification mark: {mark})");
        }
    }
}

/// A name that differs from `name` but has the same 16-bit blind index.
fn colliding_name(ring: &KeyRing, name: &str) -> String {
    let target = blind_index(ring, name);
    (0..2_000_000)
        .map(|k| format!("Decoy{k}^Anna"))
        .find(|n| blind_index(ring, n) == target && normalize_name(n) != normalize_name(name))
        .expect("a 16-bit collision within two million names")
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

fn log(out: &Output) -> String {
    format!(
        "{:?}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// The running pieces and what the checks need.
struct Env {
    edge: u16,
    dir: tempfile::TempDir,
    ring: KeyRing,
    p1: Patient,
    decoy: Patient,
    /// Modality files: study 1 (p1, two instances), study 2 (decoy), study 3 (p1,
    /// local-only).
    files: Vec<PathBuf>,
    n: std::sync::atomic::AtomicU32,
}

impl Env {
    fn fresh_dir(&self, name: &str) -> PathBuf {
        let n = self.n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = self.dir.path().join(format!("{name}-{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// findscu with `model` (`-P` / `-S`); the responses.
    async fn find(&self, model: &str, keys: &[String]) -> Vec<InMemDicomObject> {
        let dir = self.fresh_dir("find");
        let mut a: Vec<String> = [
            "-v",
            model,
            "-aet",
            VIEWER_AE,
            "-aec",
            "PACS_CLIENT",
            "-X",
            "-od",
        ]
        .map(String::from)
        .to_vec();
        a.push(dir.display().to_string());
        a.push("-k".into());
        a.push("SpecificCharacterSet=ISO_IR 192".into());
        for key in keys {
            a.push("-k".into());
            a.push(key.clone());
        }
        a.extend(["127.0.0.1".to_string(), self.edge.to_string()]);
        let out = dcmtk("findscu", a).await;
        assert!(out.status.success(), "{}", log(&out));
        let found: Vec<InMemDicomObject> = files_in(&dir).iter().map(|p| read_object(p)).collect();
        for response in &found {
            self.assert_no_pseudonym(response);
        }
        found
    }

    /// No value of a response is a pseudonym of ours, and no sealed item shows.
    fn assert_no_pseudonym(&self, response: &InMemDicomObject) {
        assert!(response.get(tags::ENCRYPTED_ATTRIBUTES_SEQUENCE).is_none());
        let pseudonyms = [
            phi::pseudonym::patient_id(&self.ring, &self.p1.id),
            phi::pseudonym::patient_id(&self.ring, &self.decoy.id),
            phi::pseudonym::patient_name(&self.ring, &self.p1.name),
            phi::pseudonym::patient_name(&self.ring, &self.decoy.name),
        ];
        for element in response.iter() {
            let value = element.to_str().map(|v| v.into_owned()).unwrap_or_default();
            assert!(
                !value.starts_with(phi::pseudonym::UID_ROOT),
                "{}: pseudonymous UID {value}",
                element.tag()
            );
            assert!(
                !pseudonyms.iter().any(|p| value.contains(p.as_str())),
                "{}: pseudonym {value}",
                element.tag()
            );
            assert!(element.tag().group() % 2 == 0, "private {}", element.tag());
        }
    }

    /// getscu with `keys`; the files written.
    async fn get(&self, model: &str, keys: &[String]) -> Vec<PathBuf> {
        let dir = self.fresh_dir("get");
        let mut a: Vec<String> = ["-v", model, "-aet", VIEWER_AE, "-aec", "PACS_CLIENT", "-od"]
            .map(String::from)
            .to_vec();
        a.push(dir.display().to_string());
        for key in keys {
            a.push("-k".into());
            a.push(key.clone());
        }
        a.extend(["127.0.0.1".to_string(), self.edge.to_string()]);
        let out = dcmtk("getscu", a).await;
        assert!(out.status.success(), "{}", log(&out));
        files_in(&dir)
    }

    /// The modality's original of SOP Instance `sop`.
    fn original(&self, sop: &str) -> InMemDicomObject {
        self.files
            .iter()
            .map(|f| read_object(f))
            .find(|o| text(o, tags::SOP_INSTANCE_UID) == sop)
            .unwrap_or_else(|| panic!("no original {sop}"))
    }

    /// Every file restores its original exactly; returns their SOP Instance UIDs.
    fn check_files(&self, files: &[PathBuf]) -> Vec<String> {
        let mut sops = Vec::new();
        for file in files {
            let received = read_object(file);
            let sop = text(&received, tags::SOP_INSTANCE_UID);
            assert_restored(&received, &self.original(&sop), &sop);
            sops.push(sop);
        }
        sops.sort();
        sops
    }
}

fn sop(study: u32, i: u32) -> String {
    format!("{UID_ROOT}.3.{study}.{i}")
}

fn study_uid(study: u32) -> String {
    format!("{UID_ROOT}.1.{study}")
}

fn series_uid(study: u32) -> String {
    format!("{UID_ROOT}.2.{study}")
}

fn keys(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

async fn finds_at_every_level(env: &Env) {
    let (p1, decoy) = (&env.p1, &env.decoy);
    // PATIENT (Patient Root only): grouped, with the local-only study counted.
    let found = env
        .find(
            "-P",
            &keys(&[
                "QueryRetrieveLevel=PATIENT",
                "PatientName",
                "PatientID",
                "NumberOfPatientRelatedStudies",
                "NumberOfPatientRelatedInstances",
            ]),
        )
        .await;
    let mut rows: Vec<_> = found
        .iter()
        .map(|o| {
            (
                text(o, tags::PATIENT_NAME),
                text(o, tags::PATIENT_ID),
                text(o, tags::NUMBER_OF_PATIENT_RELATED_STUDIES),
                text(o, tags::NUMBER_OF_PATIENT_RELATED_INSTANCES),
            )
        })
        .collect();
    rows.sort();
    let s = |v: &str| v.to_string();
    let mut expected = vec![
        (p1.name.clone(), p1.id.clone(), s("2"), s("3")),
        (decoy.name.clone(), decoy.id.clone(), s("1"), s("1")),
    ];
    expected.sort();
    assert_eq!(rows, expected);

    // The decoy shares p1's blind index: the gateway returns it, the proxy drops it.
    for level in ["PATIENT", "STUDY"] {
        let found = env
            .find(
                "-P",
                &[
                    format!("QueryRetrieveLevel={level}"),
                    format!("PatientName={}", p1.name),
                    if level == "STUDY" {
                        format!("PatientID={}", p1.id)
                    } else {
                        "PatientID".into()
                    },
                    "StudyInstanceUID".into(),
                ],
            )
            .await;
        assert!(!found.is_empty(), "{level}");
        assert!(
            found.iter().all(|o| text(o, tags::PATIENT_NAME) == p1.name),
            "{level}: only {}",
            p1.name
        );
    }
    let by_name = env
        .find(
            "-S",
            &keys(&["QueryRetrieveLevel=STUDY", "StudyInstanceUID"])
                .into_iter()
                .chain([format!("PatientName={}", p1.name)])
                .collect::<Vec<_>>(),
        )
        .await;
    let mut studies: Vec<_> = by_name
        .iter()
        .map(|o| text(o, tags::STUDY_INSTANCE_UID))
        .collect();
    studies.sort();
    assert_eq!(
        studies,
        [study_uid(1), study_uid(3)],
        "decoy study 2 dropped"
    );

    // STUDY in Patient Root needs the Patient ID: the original one works.
    let found = env
        .find(
            "-P",
            &[
                "QueryRetrieveLevel=STUDY".into(),
                format!("PatientID={}", decoy.id),
                "StudyInstanceUID".into(),
                "AccessionNumber".into(),
                "PatientName".into(),
            ],
        )
        .await;
    assert_eq!(found.len(), 1);
    assert_eq!(text(&found[0], tags::STUDY_INSTANCE_UID), study_uid(2));
    assert_eq!(text(&found[0], tags::ACCESSION_NUMBER), decoy.accession);
    assert_eq!(text(&found[0], tags::PATIENT_NAME), decoy.name);

    // SERIES in both models, a gateway study and the local-only one.
    for (model, study, count) in [("-S", 1, "2"), ("-P", 1, "2"), ("-S", 3, "1")] {
        let mut k = vec![
            "QueryRetrieveLevel=SERIES".to_string(),
            format!("StudyInstanceUID={}", study_uid(study)),
            "SeriesInstanceUID".into(),
            "Modality".into(),
            "NumberOfSeriesRelatedInstances".into(),
            "PatientName".into(),
        ];
        if model == "-P" {
            k.push(format!("PatientID={}", p1.id));
        }
        let found = env.find(model, &k).await;
        assert_eq!(found.len(), 1, "{model} series of study {study}");
        assert_eq!(
            text(&found[0], tags::SERIES_INSTANCE_UID),
            series_uid(study)
        );
        assert_eq!(text(&found[0], tags::MODALITY), "CT");
        assert_eq!(
            text(&found[0], tags::NUMBER_OF_SERIES_RELATED_INSTANCES),
            count
        );
        assert_eq!(text(&found[0], tags::PATIENT_NAME), p1.name);
    }

    // IMAGE in both models: each instance's own original SOP Instance UID.
    for model in ["-S", "-P"] {
        let mut k = vec![
            "QueryRetrieveLevel=IMAGE".to_string(),
            format!("StudyInstanceUID={}", study_uid(1)),
            format!("SeriesInstanceUID={}", series_uid(1)),
            "SOPInstanceUID".into(),
            "SOPClassUID".into(),
            "InstanceNumber".into(),
        ];
        if model == "-P" {
            k.push(format!("PatientID={}", p1.id));
        }
        let found = env.find(model, &k).await;
        let mut sops: Vec<_> = found
            .iter()
            .map(|o| text(o, tags::SOP_INSTANCE_UID))
            .collect();
        sops.sort();
        assert_eq!(sops, [sop(1, 1), sop(1, 2)], "{model}");
        let one = env
            .find(
                model,
                &k.iter()
                    .map(|key| {
                        if key == "SOPInstanceUID" {
                            format!("SOPInstanceUID={}", sop(1, 2))
                        } else {
                            key.clone()
                        }
                    })
                    .collect::<Vec<_>>(),
            )
            .await;
        assert_eq!(one.len(), 1);
        assert_eq!(text(&one[0], tags::INSTANCE_NUMBER), "2");
    }
}

async fn gets_at_every_level(env: &Env) {
    let study = format!("StudyInstanceUID={}", study_uid(1));
    let series = format!("SeriesInstanceUID={}", series_uid(1));
    let got = env
        .get("-S", &["QueryRetrieveLevel=STUDY".into(), study.clone()])
        .await;
    assert_eq!(env.check_files(&got), [sop(1, 1), sop(1, 2)]);
    let got = env
        .get(
            "-P",
            &[
                "QueryRetrieveLevel=STUDY".into(),
                format!("PatientID={}", env.p1.id),
                study.clone(),
            ],
        )
        .await;
    assert_eq!(env.check_files(&got), [sop(1, 1), sop(1, 2)]);
    let got = env
        .get(
            "-S",
            &[
                "QueryRetrieveLevel=SERIES".into(),
                study.clone(),
                series.clone(),
            ],
        )
        .await;
    assert_eq!(env.check_files(&got), [sop(1, 1), sop(1, 2)]);
    let got = env
        .get(
            "-S",
            &[
                "QueryRetrieveLevel=IMAGE".into(),
                study,
                series,
                format!("SOPInstanceUID={}", sop(1, 2)),
            ],
        )
        .await;
    assert_eq!(env.check_files(&got), [sop(1, 2)]);
    // A local-only instance, at IMAGE level, from the client's own store.
    let got = env
        .get(
            "-S",
            &[
                "QueryRetrieveLevel=IMAGE".into(),
                format!("StudyInstanceUID={}", study_uid(3)),
                format!("SeriesInstanceUID={}", series_uid(3)),
                format!("SOPInstanceUID={}", sop(3, 1)),
            ],
        )
        .await;
    assert_eq!(env.check_files(&got), [sop(3, 1)]);
}

/// DCMTK's `storescp` on a free port, killed when dropped.
struct StoreScp {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl StoreScp {
    fn start(dir: PathBuf) -> StoreScp {
        let port = free_port();
        let child = Command::new(dcmtk_path("storescp"))
            .args(["-aet", STORE_AE, "-od"])
            .arg(&dir)
            .arg(port.to_string())
            .env("TCP_NODELAY", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("storescp (apt-get install dcmtk)");
        StoreScp { child, port, dir }
    }

    /// Takes the files received so far out of its folder.
    fn take(&self) -> Vec<PathBuf> {
        let taken = self.dir.with_extension(format!("{}", rand_suffix()));
        std::fs::create_dir_all(&taken).unwrap();
        for f in files_in(&self.dir) {
            std::fs::rename(&f, taken.join(f.file_name().unwrap())).unwrap();
        }
        files_in(&taken)
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

impl Drop for StoreScp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn movescu(env: &Env, destination: &str, keys: &[String]) -> Output {
    let mut a: Vec<String> = [
        "-v",
        "-S",
        "-aet",
        VIEWER_AE,
        "-aec",
        "PACS_CLIENT",
        "-aem",
        destination,
    ]
    .map(String::from)
    .to_vec();
    for key in keys {
        a.push("-k".into());
        a.push(key.clone());
    }
    a.extend(["127.0.0.1".to_string(), env.edge.to_string()]);
    dcmtk("movescu", a).await
}

async fn moves_at_every_level(env: &Env, scp: &StoreScp) {
    let study = format!("StudyInstanceUID={}", study_uid(1));
    let series = format!("SeriesInstanceUID={}", series_uid(1));
    let cases: [(Vec<String>, Vec<String>); 3] = [
        (
            vec!["QueryRetrieveLevel=STUDY".into(), study.clone()],
            vec![sop(1, 1), sop(1, 2)],
        ),
        (
            vec![
                "QueryRetrieveLevel=SERIES".into(),
                study.clone(),
                series.clone(),
            ],
            vec![sop(1, 1), sop(1, 2)],
        ),
        (
            vec![
                "QueryRetrieveLevel=IMAGE".into(),
                study.clone(),
                series.clone(),
                format!("SOPInstanceUID={}", sop(1, 1)),
            ],
            vec![sop(1, 1)],
        ),
    ];
    for (keys, expected) in cases {
        let out = movescu(env, STORE_AE, &keys).await;
        assert!(out.status.success(), "{}", log(&out));
        assert_eq!(env.check_files(&scp.take()), expected, "{keys:?}");
    }
    // An AE that is not a viewer with host and port: 0xA801, nothing sent.
    let out = movescu(env, "NOWHERE", &["QueryRetrieveLevel=STUDY".into(), study]).await;
    let text = log(&out).to_lowercase();
    assert!(
        text.contains("movedestinationunknown") || text.contains("a801"),
        "{text}"
    );
    assert!(files_in(&scp.dir).is_empty());
}

fn identifier(elements: &[(Tag, VR, &str)]) -> Vec<u8> {
    let obj = InMemDicomObject::from_element_iter(
        elements
            .iter()
            .map(|(t, vr, v)| DataElement::new(*t, *vr, PrimitiveValue::from(*v))),
    );
    let ts = dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased();
    let mut out = Vec::new();
    obj.write_dataset_with_ts(&mut out, &ts).unwrap();
    out
}

async fn own_scu(
    env: &Env,
    credentials: Option<(&str, &str)>,
) -> Result<ScuAssociation, dimse::DimseError> {
    let mut options = ScuOptions::new(VIEWER_AE.to_string(), "PACS_CLIENT".to_string());
    options.credentials = credentials.map(|(u, p)| Credentials::UsernamePassword {
        username: u.into(),
        password: p.into(),
    });
    let proposals = [STUDY_ROOT_FIND, STUDY_ROOT_MOVE].map(|class| Proposal {
        abstract_syntax: class.into(),
        transfer_syntaxes: vec![EXPLICIT_VR_LE.into()],
    });
    ScuAssociation::connect(&format!("127.0.0.1:{}", env.edge), &options, &proposals).await
}

/// The viewer's own user name + passcode: the right ones query and move (with the
/// sub-operation counts), wrong ones refuse the association.
async fn own_user_identity(env: &Env, scp: &StoreScp) {
    let mut assoc = own_scu(env, Some(("dr.wilson", WILSON_PASSWORD)))
        .await
        .expect("the viewer's own right credentials are admitted");
    let found = assoc
        .find(
            STUDY_ROOT_FIND,
            &identifier(&[
                (tags::QUERY_RETRIEVE_LEVEL, VR::CS, "STUDY"),
                (tags::STUDY_INSTANCE_UID, VR::UI, &study_uid(1)),
                (tags::PATIENT_NAME, VR::PN, ""),
            ]),
        )
        .await
        .unwrap();
    assert!(found.response.status.is_success());
    assert_eq!(found.matches.len(), 1);
    let moved = assoc
        .move_(
            STUDY_ROOT_MOVE,
            STORE_AE,
            &identifier(&[
                (tags::QUERY_RETRIEVE_LEVEL, VR::CS, "STUDY"),
                (tags::STUDY_INSTANCE_UID, VR::UI, &study_uid(1)),
            ]),
            |_| std::ops::ControlFlow::Continue(()),
        )
        .await
        .unwrap();
    assert!(moved.status.is_success(), "{moved:?}");
    assert_eq!(moved.sub_operations.completed, Some(2), "{moved:?}");
    assert_eq!(moved.sub_operations.failed.unwrap_or(0), 0, "{moved:?}");
    assert_eq!(moved.sub_operations.warning.unwrap_or(0), 0, "{moved:?}");
    assoc.release().await.unwrap();
    assert_eq!(env.check_files(&scp.take()), [sop(1, 1), sop(1, 2)]);

    for bad in [("dr.wilson", "not the password"), ("dr.nobody", PASSWORD)] {
        let refused = own_scu(env, Some(bad)).await;
        assert!(
            matches!(refused, Err(dimse::DimseError::Rejected(_))),
            "{}: {refused:?}",
            bad.0
        );
    }
    // Without an identity the mapped user still works.
    let assoc = own_scu(env, None).await.expect("mapped user");
    assoc.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn viewer_finds_gets_and_moves_at_every_level() {
    let gw = GatewaySide::prepare().await;
    let running = gw.start().await;
    let dir = tempfile::tempdir().unwrap();
    let edge = free_port();
    let scp = StoreScp::start(dir.path().join("moved"));
    std::fs::create_dir_all(&scp.dir).unwrap();
    let mut config = client_config(dir.path(), &gw, edge);
    config.edge.viewers = vec![
        Viewer {
            ae_title: VIEWER_AE.into(),
            host: None,
            user: "dr.house".into(),
            port: None,
            character_set: None,
        },
        Viewer {
            ae_title: STORE_AE.into(),
            host: Some("127.0.0.1".into()),
            user: "dr.house".into(),
            port: Some(scp.port),
            character_set: None,
        },
    ];
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
    let key = client::keyfile::create(&config.key_file()).unwrap();
    let ring = key.ring();

    let index = gw.index().await;
    for (user, password) in [("dr.house", PASSWORD), ("dr.wilson", WILSON_PASSWORD)] {
        let hash = hash_password(&AuthSettings::default(), &Password::new(password)).unwrap();
        index
            .create_user(
                gw.facility_id,
                &Username::parse(user).unwrap(),
                Role::Clinician,
                &hash,
            )
            .await
            .unwrap();
    }
    index.close().await;

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
    let files = vec![
        write_instance(dir.path(), &p1, 1, 1, "CT chest"),
        write_instance(dir.path(), &p1, 1, 2, "CT chest"),
        write_instance(dir.path(), &decoy, 2, 1, "CT head"),
        // Kept local-only by the sharing rule.
        write_instance(dir.path(), &p1, 3, 1, "Trial RESEARCH arm"),
    ];
    storescu(edge, files.clone()).await;
    assert_eq!(gw.wait_for(3, Duration::from_secs(30)).await, 3);

    let env = Env {
        edge,
        dir,
        ring,
        p1,
        decoy,
        files,
        n: std::sync::atomic::AtomicU32::new(0),
    };
    finds_at_every_level(&env).await;
    gets_at_every_level(&env).await;
    moves_at_every_level(&env, &scp).await;
    own_user_identity(&env, &scp).await;

    let _ = stop.send(());
    task.await.unwrap().unwrap();
    running.stop().await;
}
