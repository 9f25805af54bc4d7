//! The data set behind `qr_find.rs`: two facilities' studies, written as DICOM files,
//! stored through a running gateway with `storescu`, plus query helpers.

use std::path::{Path, PathBuf};

use crate::common::data::{self, Spec};
use crate::common::{Backend, GATEWAY_AE, Options, PLAIN_AE, Setup, TestGateway, dcmtk_async};
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use gateway::db::Index;
use gateway::domain::FacilityId;
use gateway::qr::{self, Model};

/// The second facility and the AE title it sends from.
const OTHER: &str = "st-john";
const OTHER_AE: &str = "MODALITY2";
/// Prefix of the generated Study (.1.), Series (.2.) and SOP Instance (.3.) UIDs.
const ROOT: &str = "1.2.826.0.1.3680043.10";
/// The sealed identity envelope planted on study 101.
pub(crate) const ENVELOPE: [u8; 6] = [1, 2, 3, 4, 5, 6];

struct StudyDef {
    n: u32,
    patient_id: &'static str,
    name: &'static str,
    date: &'static str,
    time: &'static str,
    accession: &'static str,
    description: &'static str,
    blind_index: Option<&'static str>,
    /// (series n, series number, modality, SOP class, instances, frames)
    series: &'static [(u32, i64, &'static str, &'static str, u32, u32)],
}

const fn study(
    n: u32,
    patient: (&'static str, &'static str),
    when: (&'static str, &'static str),
    accession: &'static str,
    description: &'static str,
    blind_index: Option<&'static str>,
    series: &'static [(u32, i64, &'static str, &'static str, u32, u32)],
) -> StudyDef {
    StudyDef {
        n,
        patient_id: patient.0,
        name: patient.1,
        date: when.0,
        time: when.1,
        accession,
        description,
        blind_index,
        series,
    }
}

/// St Mary's: 4 studies, 3 patients, 7 series, 10 instances.
const MINE: &[StudyDef] = &[
    study(
        101,
        ("PSEUDO0001", "Alpha^Anna"),
        ("20240105", "083000"),
        "ACC101",
        "CT Chest",
        Some("be3f"),
        &[
            (201, 1, "CT", data::CT, 3, 1),
            (202, 2, "CT", data::CT, 1, 1),
        ],
    ),
    study(
        102,
        ("PSEUDO0001", "Alpha^Anna"),
        ("20240220", "141500"),
        "ACC102",
        "MR Brain",
        Some("be3f"),
        &[
            (203, 1, "MR", data::MR, 2, 1),
            (204, 2, "OT", data::SC, 1, 1),
        ],
    ),
    study(
        103,
        ("PSEUDO0002", "Beta^Bob"),
        ("20231231", "235959"),
        "ACC_103",
        "100% CT",
        None,
        &[
            (205, 1, "CT", data::CT, 1, 1),
            (206, 3, "XA", data::XA, 1, 3),
        ],
    ),
    study(
        104,
        ("PSEUDO0003", "alpha^carl"),
        ("20240301", "090000"),
        "ACC104",
        "ct chest",
        Some("0a1c"),
        &[(207, 1, "MR", data::MR, 1, 1)],
    ),
];

/// St John's: the same Study Instance UID 101 (other series), and a study of its own.
const THEIRS: &[StudyDef] = &[
    study(
        101,
        ("PSEUDO0001", "Alpha^Anna"),
        ("20240105", "083000"),
        "ACC101",
        "CT Chest",
        Some("be3f"),
        &[(301, 1, "CT", data::CT, 2, 1)],
    ),
    study(
        105,
        ("PSEUDO0009", "Gamma^Gus"),
        ("20240110", "100000"),
        "ACC105",
        "Other CT",
        None,
        &[(302, 1, "CT", data::CT, 1, 1)],
    ),
];

pub(crate) fn uid(kind: u32, n: u32) -> String {
    format!("{ROOT}.{kind}.{n}")
}

/// Writes every instance of `studies` into `dir`; SOP Instance UIDs count up from
/// `first_sop`.
fn write_studies(dir: &Path, studies: &[StudyDef], first_sop: u32) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut sop = first_sop;
    for s in studies {
        for &(series, number, modality, class, count, frames) in s.series {
            for instance in 1..=count {
                let spec = Spec {
                    patient_id: s.patient_id.into(),
                    study_uid: uid(1, s.n),
                    series_uid: uid(2, series),
                    sop_uid: uid(3, sop),
                    study_date: s.date.into(),
                    accession: s.accession.into(),
                    size: 4,
                    frames,
                    ..Spec::new(class, modality, sop)
                };
                files.push(write_instance(dir, s, &spec, number, instance));
                sop += 1;
            }
        }
    }
    files
}

fn write_instance(dir: &Path, s: &StudyDef, spec: &Spec, series: i64, instance: u32) -> PathBuf {
    let mut obj = data::header(spec);
    let mut put =
        |tag, vr, value: &str| obj.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
    put(tags::PATIENT_NAME, VR::PN, s.name);
    put(tags::STUDY_TIME, VR::TM, s.time);
    put(tags::STUDY_DESCRIPTION, VR::LO, s.description);
    put(tags::SERIES_NUMBER, VR::IS, &series.to_string());
    put(tags::INSTANCE_NUMBER, VR::IS, &instance.to_string());
    if let Some(blind) = s.blind_index {
        put(
            Tag(0x0013, 0x0010),
            VR::LO,
            dimse::scan::PRODUCT_PRIVATE_CREATOR,
        );
        put(Tag(0x0013, 0x1010), VR::LO, blind);
    }
    let pixels = vec![0x11u8; 4 * 4 * 2 * spec.frames as usize];
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::from(pixels),
    ));
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(spec.sop_class)
        .media_storage_sop_instance_uid(spec.sop_uid.as_str())
        .transfer_syntax(data::EXPLICIT_LE);
    let path = dir.join(format!("{}.dcm", spec.sop_uid));
    obj.with_meta(meta).unwrap().write_to_file(&path).unwrap();
    path
}

async fn store(gw: &TestGateway, aet: &str, files: Vec<PathBuf>) {
    let mut list = crate::common::args(&["-aet", aet, "-aec", GATEWAY_AE, "-R", "127.0.0.1"]);
    list.push(gw.plain_port.to_string());
    list.extend(files.iter().map(|f| f.display().to_string()));
    let out = dcmtk_async("storescu", list).await;
    assert!(
        out.status.success(),
        "storescu as {aet} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) struct Fixture {
    pub(crate) gw: TestGateway,
    pub(crate) index: Index,
    pub(crate) mine: FacilityId,
    pub(crate) theirs: FacilityId,
}

/// A gateway with both facilities' studies stored through it, and the sealed identity
/// of St Mary's study 101 planted in the index (these instances carry none; ingest of
/// sealed instances is covered by `qr_sealed.rs`).
pub(crate) async fn fixture(backend: Backend) -> Fixture {
    let mut setup = Setup::new(backend, &Options::default()).await;
    let theirs = setup.add_plain_facility(OTHER, OTHER_AE).await.id;
    let gw = TestGateway::start(setup).await;
    let dir = tempfile::tempdir().unwrap();
    let (mine_files, their_files) = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        move || {
            (
                write_studies(&dir, MINE, 1),
                write_studies(&dir, THEIRS, 100),
            )
        }
    })
    .await
    .unwrap();
    store(&gw, PLAIN_AE, mine_files).await;
    store(&gw, OTHER_AE, their_files).await;
    let index = gw.index().await;
    assert_eq!(index.count_instances().await.unwrap(), 13);
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&gw.setup.config.database_url())
        .await
        .unwrap();
    // A study's sealed identity is its (first) patient's.
    for table in ["studies", "study_patients"] {
        sqlx::query(&format!(
            "UPDATE {table} SET sealed_identity = $1 WHERE facility_id = $2 AND study_uid = $3"
        ))
        .bind(ENVELOPE.to_vec())
        .bind(gw.setup.facility.id.0)
        .bind(uid(1, 101))
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;
    let mine = gw.setup.facility.id;
    Fixture {
        gw,
        index,
        mine,
        theirs,
    }
}

impl Fixture {
    pub(crate) async fn stop(self) {
        self.index.close().await;
        self.gw.stop().await;
    }
}

pub(crate) fn identifier(level: &str, keys: &[(Tag, VR, &str)]) -> InMemDicomObject {
    let mut obj = InMemDicomObject::new_empty();
    obj.put(DataElement::new(
        tags::QUERY_RETRIEVE_LEVEL,
        VR::CS,
        PrimitiveValue::from(level),
    ));
    for (tag, vr, value) in keys {
        let value = if value.is_empty() {
            PrimitiveValue::Empty
        } else {
            PrimitiveValue::from(*value)
        };
        obj.put(DataElement::new(*tag, *vr, value));
    }
    obj
}

/// Parses and runs a query (limit 100) in `facility`.
pub(crate) async fn find(
    index: &Index,
    facility: FacilityId,
    model: Model,
    level: &str,
    keys: &[(Tag, VR, &str)],
) -> Vec<InMemDicomObject> {
    let query = qr::parse(model, &identifier(level, keys))
        .unwrap_or_else(|e| panic!("{level} query refused: {e}"));
    qr::find(index, facility, &query, 100).await.expect("find")
}

/// The value of `tag` in each response (`\`-joined; "" when empty).
pub(crate) fn column(results: &[InMemDicomObject], tag: Tag) -> Vec<String> {
    results
        .iter()
        .map(|o| {
            let e = o
                .get(tag)
                .unwrap_or_else(|| panic!("{tag} missing from a response"));
            e.to_str().map(|s| s.into_owned()).unwrap_or_default()
        })
        .collect()
}

/// The Study Instance UID suffixes of study-level results.
pub(crate) fn studies(results: &[InMemDicomObject]) -> Vec<String> {
    column(results, tags::STUDY_INSTANCE_UID)
        .iter()
        .map(|u| u.rsplit('.').next().unwrap().to_string())
        .collect()
}

/// Study Root STUDY query with one matching key plus the Study Instance UID.
pub(crate) async fn studies_where(fx: &Fixture, tag: Tag, vr: VR, value: &str) -> Vec<String> {
    let keys = [(tags::STUDY_INSTANCE_UID, VR::UI, ""), (tag, vr, value)];
    studies(&find(&fx.index, fx.mine, Model::StudyRoot, "STUDY", &keys).await)
}
