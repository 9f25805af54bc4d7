//! Sealed identities below study level and soft-deleted studies, on the index filled
//! through a running gateway by DCMTK's `storescu`: SERIES- and IMAGE-level C-FIND
//! return the (0400,0500) item of the series' first stored instance and of each
//! instance, bound to the right SOP Instance UID; a study whose `deleted_at` is set is
//! found at no level (nor is a patient left with deleted studies only) and retrieved by
//! neither the retrieve list nor a C-GET on the DICOM port.

mod common;

use std::path::{Path, PathBuf};

use common::data::{self, Spec};
use common::peers::tls_options;
use common::{Backend, TestGateway};
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use dimse::assoc::{EXPLICIT_VR_LE, RoleSelection};
use dimse::qr::STUDY_ROOT_GET;
use dimse::scu::{Credentials, MemoryStore, Proposal, ScuAssociation};
use gateway::qr::{self, Model};

const PASSWORD: &str = "correct horse battery";
const ROOT: &str = "1.2.826.0.1.3680043.10.77";

fn uid(kind: u32, n: u32) -> String {
    format!("{ROOT}.{kind}.{n}")
}

/// (instance n, study n, series n, patient ID), in storing order.
const INSTANCES: &[(u32, u32, u32, &str)] = &[
    (1, 1, 11, "PSEUDO-A"),
    (2, 1, 11, "PSEUDO-A"),
    (3, 1, 12, "PSEUDO-A"),
    (4, 2, 21, "PSEUDO-B"),
    (5, 3, 31, "PSEUDO-A"),
];

/// The envelope planted in instance `n`: unique per instance.
fn envelope(n: u32) -> Vec<u8> {
    (0..40u8).map(|i| i.wrapping_mul(7) ^ n as u8).collect()
}

fn write_instance(dir: &Path, &(n, study, series, patient): &(u32, u32, u32, &str)) -> PathBuf {
    let spec = Spec {
        patient_id: patient.into(),
        study_uid: uid(1, study),
        series_uid: uid(2, series),
        sop_uid: uid(3, n),
        size: 4,
        deidentified: true,
        ..Spec::new(data::CT, "CT", n)
    };
    let mut obj = data::header(&spec);
    let item = InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::ENCRYPTED_CONTENT_TRANSFER_SYNTAX_UID,
            VR::UI,
            PrimitiveValue::from(data::EXPLICIT_LE),
        ),
        DataElement::new(
            tags::ENCRYPTED_CONTENT,
            VR::OB,
            PrimitiveValue::from(envelope(n)),
        ),
    ]);
    obj.put(DataElement::new(
        tags::ENCRYPTED_ATTRIBUTES_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(vec![item]),
    ));
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::from(vec![0x22u8; 32]),
    ));
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(data::CT)
        .media_storage_sop_instance_uid(spec.sop_uid.as_str())
        .transfer_syntax(data::EXPLICIT_LE);
    let path = dir.join(format!("{n}.dcm"));
    obj.with_meta(meta).unwrap().write_to_file(&path).unwrap();
    path
}

fn identifier(level: &str, keys: &[(Tag, VR, String)], sealed: bool) -> InMemDicomObject {
    let mut obj = InMemDicomObject::from_element_iter([DataElement::new(
        tags::QUERY_RETRIEVE_LEVEL,
        VR::CS,
        PrimitiveValue::from(level),
    )]);
    for (tag, vr, value) in keys {
        let value = if value.is_empty() {
            PrimitiveValue::Empty
        } else {
            PrimitiveValue::from(value.as_str())
        };
        obj.put(DataElement::new(*tag, *vr, value));
    }
    if sealed {
        obj.put(DataElement::new(
            tags::ENCRYPTED_ATTRIBUTES_SEQUENCE,
            VR::SQ,
            DataSetSequence::<InMemDicomObject>::empty(),
        ));
    }
    obj
}

fn text(obj: &InMemDicomObject, tag: Tag) -> String {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
        .unwrap_or_default()
}

/// (envelope, bound-to UID) of each sealed item of a response.
fn sealed_items(obj: &InMemDicomObject) -> Vec<(Vec<u8>, String)> {
    let seq = obj
        .get(tags::ENCRYPTED_ATTRIBUTES_SEQUENCE)
        .expect("the sealed identity key comes back");
    seq.items()
        .expect("a sequence")
        .iter()
        .map(|item| {
            let content = item.get(tags::ENCRYPTED_CONTENT).unwrap().to_bytes();
            (
                content.unwrap().to_vec(),
                text(item, tags::REFERENCED_SOP_INSTANCE_UID),
            )
        })
        .collect()
}

struct Fx {
    gw: TestGateway,
    index: gateway::db::Index,
    _dir: tempfile::TempDir,
}

impl Fx {
    async fn start(backend: Backend) -> Fx {
        let gw = TestGateway::spawn(backend).await;
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<_> = INSTANCES
            .iter()
            .map(|i| write_instance(dir.path(), i))
            .collect();
        common::store_plain(&gw, &files).await;
        common::add_clinician(&gw, gw.setup.facility.id, "dr.house", PASSWORD).await;
        let index = gw.index().await;
        Fx {
            gw,
            index,
            _dir: dir,
        }
    }

    async fn find(
        &self,
        model: Model,
        level: &str,
        keys: &[(Tag, VR, String)],
    ) -> Vec<InMemDicomObject> {
        let query = qr::parse(model, &identifier(level, keys, true)).expect("query");
        qr::find(&self.index, self.gw.setup.facility.id, &query, 100)
            .await
            .expect("find")
    }

    async fn retrieve_list(&self, level: &str, keys: &[(Tag, VR, String)]) -> Vec<String> {
        let query = qr::parse(Model::StudyRoot, &identifier(level, keys, false)).expect("query");
        qr::instances_for_retrieve(&self.index, self.gw.setup.facility.id, &query)
            .await
            .expect("retrieve list")
            .into_iter()
            .map(|t| t.sop_instance_uid)
            .collect()
    }
}

fn key(tag: Tag, vr: VR, value: &str) -> (Tag, VR, String) {
    (tag, vr, value.to_string())
}

async fn sealed_identity_at_every_level(backend: Backend) {
    let fx = Fx::start(backend).await;
    let study1 = key(tags::STUDY_INSTANCE_UID, VR::UI, &uid(1, 1));

    let found = fx
        .find(Model::StudyRoot, "STUDY", std::slice::from_ref(&study1))
        .await;
    assert_eq!(found.len(), 1);
    assert_eq!(sealed_items(&found[0]), [(envelope(1), uid(3, 1))]);

    let series_keys = [study1.clone(), key(tags::SERIES_INSTANCE_UID, VR::UI, "")];
    let found = fx.find(Model::StudyRoot, "SERIES", &series_keys).await;
    let series: Vec<_> = found
        .iter()
        .map(|o| text(o, tags::SERIES_INSTANCE_UID))
        .collect();
    assert_eq!(series, [uid(2, 11), uid(2, 12)]);
    assert_eq!(
        sealed_items(&found[0]),
        [(envelope(1), uid(3, 1))],
        "series 11: its first stored instance's envelope"
    );
    assert_eq!(sealed_items(&found[1]), [(envelope(3), uid(3, 3))]);

    let image_keys = [
        key(tags::PATIENT_ID, VR::LO, "PSEUDO-A"),
        study1.clone(),
        key(tags::SERIES_INSTANCE_UID, VR::UI, &uid(2, 11)),
        key(tags::SOP_INSTANCE_UID, VR::UI, ""),
    ];
    for model in [Model::StudyRoot, Model::PatientRoot] {
        let found = fx.find(model, "IMAGE", &image_keys).await;
        let items: Vec<_> = found.iter().map(sealed_items).collect();
        assert_eq!(
            items,
            [
                vec![(envelope(1), uid(3, 1))],
                vec![(envelope(2), uid(3, 2))]
            ],
            "{model}: each instance's own envelope, bound to its own UID"
        );
    }
    let patient = fx
        .find(
            Model::PatientRoot,
            "PATIENT",
            &[key(tags::PATIENT_ID, VR::LO, "")],
        )
        .await;
    assert_eq!(patient.len(), 2);
    assert!(
        patient.iter().all(|p| sealed_items(p).is_empty()),
        "no envelope at PATIENT level: an empty sequence"
    );
    fx.index.close().await;
    fx.gw.stop().await;
}

both_backends!(sealed_identity_at_every_level);

async fn get_study(fx: &Fx, study: &str) -> (dimse::Status, usize) {
    let mut options = tls_options(&fx.gw.setup.cert);
    options.credentials = Some(Credentials::UsernamePassword {
        username: "dr.house".into(),
        password: PASSWORD.into(),
    });
    options.roles = vec![RoleSelection::scp(data::CT)];
    let proposals = [
        Proposal::query(STUDY_ROOT_GET),
        Proposal {
            abstract_syntax: data::CT.into(),
            transfer_syntaxes: vec![EXPLICIT_VR_LE.into()],
        },
    ];
    let addr = format!("127.0.0.1:{}", fx.gw.tls_port);
    let mut assoc = ScuAssociation::connect(&addr, &options, &proposals)
        .await
        .expect("connect");
    let keys = [key(tags::STUDY_INSTANCE_UID, VR::UI, study)];
    let ts = dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased();
    let mut bytes = Vec::new();
    identifier("STUDY", &keys, false)
        .write_dataset_with_ts(&mut bytes, &ts)
        .unwrap();
    let mut store = MemoryStore::default();
    let outcome = assoc
        .get(STUDY_ROOT_GET, &bytes, &mut store)
        .await
        .expect("C-GET");
    assoc.release().await.unwrap();
    (outcome.status, store.received().len())
}

async fn deleted_studies_are_invisible(backend: Backend) {
    let fx = Fx::start(backend).await;
    let (status, received) = get_study(&fx, &uid(1, 2)).await;
    assert!(status.is_success(), "{status:?}");
    assert_eq!(received, 1, "study 2 is retrievable before its deletion");

    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&fx.gw.setup.config.database_url())
        .await
        .unwrap();
    for study in [2, 3] {
        sqlx::query("UPDATE studies SET deleted_at = $1 WHERE facility_id = $2 AND study_uid = $3")
            .bind(1_700_000_000_000i64)
            .bind(fx.gw.setup.facility.id.0)
            .bind(uid(1, study))
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;

    let patients = fx
        .find(
            Model::PatientRoot,
            "PATIENT",
            &[
                key(tags::PATIENT_ID, VR::LO, ""),
                key(tags::NUMBER_OF_PATIENT_RELATED_STUDIES, VR::IS, ""),
                key(tags::NUMBER_OF_PATIENT_RELATED_INSTANCES, VR::IS, ""),
            ],
        )
        .await;
    let rows: Vec<_> = patients
        .iter()
        .map(|p| {
            (
                text(p, tags::PATIENT_ID),
                text(p, tags::NUMBER_OF_PATIENT_RELATED_STUDIES),
                text(p, tags::NUMBER_OF_PATIENT_RELATED_INSTANCES),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [("PSEUDO-A".to_string(), "1".to_string(), "3".to_string())],
        "PSEUDO-B has deleted studies only; PSEUDO-A's deleted study is not counted"
    );
    let studies = fx
        .find(
            Model::StudyRoot,
            "STUDY",
            &[
                key(tags::STUDY_INSTANCE_UID, VR::UI, ""),
                key(tags::MODALITIES_IN_STUDY, VR::CS, "CT"),
            ],
        )
        .await;
    let uids: Vec<_> = studies
        .iter()
        .map(|s| text(s, tags::STUDY_INSTANCE_UID))
        .collect();
    assert_eq!(uids, [uid(1, 1)]);
    let patient_root = fx
        .find(
            Model::PatientRoot,
            "STUDY",
            &[
                key(tags::PATIENT_ID, VR::LO, "PSEUDO-B"),
                key(tags::STUDY_INSTANCE_UID, VR::UI, ""),
            ],
        )
        .await;
    assert!(patient_root.is_empty());
    for deleted in [2, 3] {
        let study = key(tags::STUDY_INSTANCE_UID, VR::UI, &uid(1, deleted));
        let series_keys = [study.clone(), key(tags::SERIES_INSTANCE_UID, VR::UI, "")];
        assert!(
            fx.find(Model::StudyRoot, "SERIES", &series_keys)
                .await
                .is_empty()
        );
        let series = key(tags::SERIES_INSTANCE_UID, VR::UI, &uid(2, deleted * 10 + 1));
        let image_keys = [
            study.clone(),
            series.clone(),
            key(tags::SOP_INSTANCE_UID, VR::UI, ""),
        ];
        assert!(
            fx.find(Model::StudyRoot, "IMAGE", &image_keys)
                .await
                .is_empty()
        );
        assert!(
            fx.retrieve_list("STUDY", std::slice::from_ref(&study))
                .await
                .is_empty()
        );
        assert!(
            fx.retrieve_list("SERIES", &[study.clone(), series.clone()])
                .await
                .is_empty()
        );
        let sop = key(tags::SOP_INSTANCE_UID, VR::UI, &uid(3, deleted + 2));
        assert!(
            fx.retrieve_list("IMAGE", &[study, series, sop])
                .await
                .is_empty()
        );
    }
    assert_eq!(
        fx.retrieve_list(
            "STUDY",
            &[key(tags::STUDY_INSTANCE_UID, VR::UI, &uid(1, 1))]
        )
        .await,
        [uid(3, 1), uid(3, 2), uid(3, 3)],
        "the study that is not deleted is still listed"
    );
    let (status, received) = get_study(&fx, &uid(1, 2)).await;
    assert_eq!(received, 0, "a deleted study is not sent ({status:?})");
    let (status, received) = get_study(&fx, &uid(1, 1)).await;
    assert!(status.is_success(), "{status:?}");
    assert_eq!(received, 3);
    fx.index.close().await;
    fx.gw.stop().await;
}

both_backends!(deleted_studies_are_invisible);
