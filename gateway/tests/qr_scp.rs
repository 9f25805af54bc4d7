//! Query/retrieve on the gateway's DICOM ports with a password: our own SCU with
//! User Identity Negotiation finds and retrieves; wrong, missing or foreign
//! credentials are refused at association time; DCMTK's findscu, which cannot send
//! credentials, is refused.

mod common;

use common::data::{self, Spec};
use common::peers::tls_options;
use common::{Backend, GATEWAY_AE, PLAIN_AE, TestGateway, args, dcmtk_async};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dimse::assoc::{EXPLICIT_VR_LE, RoleSelection};
use dimse::qr::{STUDY_ROOT_FIND, STUDY_ROOT_GET};
use dimse::scu::{Credentials, MemoryStore, Proposal, ScuAssociation};

const PASSWORD: &str = "correct horse battery";

async fn gateway_with_data(
    backend: Backend,
) -> (TestGateway, Vec<std::path::PathBuf>, tempfile::TempDir) {
    let gw = TestGateway::spawn(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<_> = (0..3)
        .map(|n| {
            data::write(
                &dir.path().join(format!("{n}.dcm")),
                &Spec::new(data::CT, "CT", n),
            )
        })
        .collect();
    common::store_plain(&gw, &files).await;
    common::add_clinician(&gw, gw.setup.facility.id, "dr.house", PASSWORD).await;
    (gw, files, dir)
}

fn study_query(level: &str) -> Vec<u8> {
    let obj = InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::QUERY_RETRIEVE_LEVEL,
            VR::CS,
            PrimitiveValue::from(level),
        ),
        DataElement::new(tags::STUDY_INSTANCE_UID, VR::UI, PrimitiveValue::from("")),
        DataElement::new(tags::PATIENT_ID, VR::LO, PrimitiveValue::from("")),
        DataElement::new(tags::MODALITIES_IN_STUDY, VR::CS, PrimitiveValue::from("")),
    ]);
    let ts = dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased();
    let mut out = Vec::new();
    obj.write_dataset_with_ts(&mut out, &ts).unwrap();
    out
}

async fn connect(
    gw: &TestGateway,
    user: &str,
    password: Option<&str>,
) -> Result<ScuAssociation, dimse::DimseError> {
    let mut options = tls_options(&gw.setup.cert);
    options.credentials = password.map(|p| Credentials::UsernamePassword {
        username: user.into(),
        password: p.into(),
    });
    options.roles = vec![RoleSelection::scp(data::CT)];
    let proposals = [
        Proposal::query(STUDY_ROOT_FIND),
        Proposal::query(STUDY_ROOT_GET),
        Proposal {
            abstract_syntax: data::CT.into(),
            transfer_syntaxes: vec![EXPLICIT_VR_LE.into()],
        },
    ];
    ScuAssociation::connect(&format!("127.0.0.1:{}", gw.tls_port), &options, &proposals).await
}

async fn find_and_get_with_a_password(backend: Backend) {
    let (gw, files, _dir) = gateway_with_data(backend).await;
    let mut assoc = connect(&gw, "dr.house", Some(PASSWORD))
        .await
        .expect("the right password is admitted");
    let found = assoc
        .find(STUDY_ROOT_FIND, &study_query("STUDY"))
        .await
        .unwrap();
    assert!(found.response.status.is_success(), "{:?}", found.response);
    assert_eq!(
        found.matches.len(),
        3,
        "three studies (Spec::new puts instance n in study n % 3 + 1)"
    );

    let ts = dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased();
    let first = InMemDicomObject::read_dataset_with_ts(found.matches[0].as_slice(), &ts).unwrap();
    let study = first
        .element(tags::STUDY_INSTANCE_UID)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let get = InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::QUERY_RETRIEVE_LEVEL,
            VR::CS,
            PrimitiveValue::from("STUDY"),
        ),
        DataElement::new(
            tags::STUDY_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(study.as_str()),
        ),
    ]);
    let mut identifier = Vec::new();
    get.write_dataset_with_ts(&mut identifier, &ts).unwrap();
    let mut store = MemoryStore::default();
    let outcome = assoc
        .get(STUDY_ROOT_GET, &identifier, &mut store)
        .await
        .unwrap();
    assert!(outcome.status.is_success(), "{outcome:?}");
    let received = store.received();
    assert_eq!(received.len(), 1);
    let sent = files
        .iter()
        .map(|f| common::peers::file_dataset(f))
        .find(|d| *d == received[0].data)
        .is_some();
    assert!(
        sent,
        "the retrieved data set is byte-for-byte one of the stored ones"
    );
    assoc.release().await.unwrap();
    gw.stop().await;
}

both_backends!(find_and_get_with_a_password);

async fn bad_or_missing_credentials_are_refused(backend: Backend) {
    let (mut gw, _files, _dir) = gateway_with_data(backend).await;
    for (user, password) in [
        ("dr.house", Some("wrong password!!")),
        ("nobody", Some(PASSWORD)),
        ("dr.house", None),
    ] {
        let refused = connect(&gw, user, password).await;
        assert!(
            matches!(refused, Err(dimse::DimseError::Rejected(_))),
            "{user}/{password:?} was admitted"
        );
    }
    // A user of another facility, on this facility's certificate, sees nothing.
    let other = gw
        .setup
        .add_plain_facility("other-clinic", "OTHER_AE")
        .await;
    common::add_clinician(&gw, other.id, "dr.other", PASSWORD).await;
    assert!(matches!(
        connect(&gw, "dr.other", Some(PASSWORD)).await,
        Err(dimse::DimseError::Rejected(_))
    ));

    // DCMTK 3.6.7's findscu cannot send credentials: refused.
    let out = dcmtk_async(
        "findscu",
        args(&[
            "-S",
            "-aet",
            PLAIN_AE,
            "-aec",
            GATEWAY_AE,
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            "StudyInstanceUID",
            "127.0.0.1",
            &gw.plain_port.to_string(),
        ]),
    )
    .await;
    assert!(
        !out.status.success(),
        "findscu without credentials was answered"
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("Association Rejected") || text.contains("Association Request Failed"),
        "{text}"
    );
    gw.stop().await;
}

both_backends!(bad_or_missing_credentials_are_refused);

fn identifier(elements: Vec<(dicom_core::Tag, VR, &str)>) -> Vec<u8> {
    let obj = InMemDicomObject::from_element_iter(
        elements
            .into_iter()
            .map(|(tag, vr, value)| DataElement::new(tag, vr, PrimitiveValue::from(value))),
    );
    let ts = dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased();
    let mut out = Vec::new();
    obj.write_dataset_with_ts(&mut out, &ts).unwrap();
    out
}

async fn malformed_queries_get_failure_statuses(backend: Backend) {
    let (gw, _files, _dir) = gateway_with_data(backend).await;
    let mut assoc = connect(&gw, "dr.house", Some(PASSWORD))
        .await
        .expect("admitted");
    let level = |l: &'static str| (tags::QUERY_RETRIEVE_LEVEL, VR::CS, l);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage bytes", vec![0x55; 37]),
        (
            "no level",
            identifier(vec![(tags::STUDY_INSTANCE_UID, VR::UI, "")]),
        ),
        (
            "unknown level",
            identifier(vec![level("FOO"), (tags::STUDY_INSTANCE_UID, VR::UI, "")]),
        ),
        (
            "patient level in study root",
            identifier(vec![level("PATIENT"), (tags::PATIENT_ID, VR::LO, "")]),
        ),
        (
            "impossible date range",
            identifier(vec![
                level("STUDY"),
                (tags::STUDY_DATE, VR::DA, "20240230-2023"),
            ]),
        ),
        (
            "malformed UID list",
            identifier(vec![
                level("STUDY"),
                (tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3\\../x"),
            ]),
        ),
    ];
    for (what, bytes) in cases {
        let outcome = assoc
            .find(STUDY_ROOT_FIND, &bytes)
            .await
            .unwrap_or_else(|e| panic!("{what}: association broke: {e}"));
        assert!(
            outcome.response.status.is_failure(),
            "{what}: answered {:?}",
            outcome.response.status
        );
        assert!(outcome.matches.is_empty(), "{what}: returned matches");
    }
    // The association still answers a good query afterwards.
    let good = assoc
        .find(STUDY_ROOT_FIND, &study_query("STUDY"))
        .await
        .unwrap();
    assert!(good.response.status.is_success());
    assert_eq!(good.matches.len(), 3);
    assoc.release().await.unwrap();
    gw.stop().await;
}

both_backends!(malformed_queries_get_failure_statuses);
