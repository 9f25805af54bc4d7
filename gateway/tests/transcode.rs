//! Transfer-syntax negotiation and conversion in the gateway's C-GET: instances stored
//! compressed (made with DCMTK's dcmcjpls and dcmcrle) are sent as stored when the
//! requestor's context takes that syntax, and converted otherwise, with several
//! syntaxes proposed in one context as DCMTK's getscu does. The conversion keeps the
//! sealed envelope (0400,0500) and the private block (0013,xxxx) as they were.

mod common;

use std::path::{Path, PathBuf};

use common::peers::tls_options;
use common::{Backend, GATEWAY_AE, PLAIN_AE, TestGateway, args, dcmtk_async};
use dicom_core::value::{DataSetSequence, Value};
use dicom_core::{DataElement, PrimitiveValue, Tag, VR, dicom_value};
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject, OpenFileOptions};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dimse::assoc::{EXPLICIT_VR_LE, IMPLICIT_VR_LE, RoleSelection};
use dimse::qr::STUDY_ROOT_GET;
use dimse::scu::{Credentials, MemoryStore, Proposal, ScuAssociation};

const PASSWORD: &str = "correct horse battery";
const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
const RLE: &str = "1.2.840.10008.1.2.5";
const JPEG_LS: &str = "1.2.840.10008.1.2.4.80";
const ROOT: &str = "1.2.826.0.1.3680043.78";
const SEALED: Tag = Tag(0x0400, 0x0500);
const CONTENT: Tag = Tag(0x0400, 0x0520);
const PRIVATE_VALUE: Tag = Tag(0x0013, 0x1010);

/// A 12-bit CT image of study `n` with a sealed envelope and a private block.
fn write_image(dir: &Path, n: u32) -> PathBuf {
    let s = |v: &str| PrimitiveValue::from(v);
    let pixels: Vec<u16> = (0..48_u16 * 40)
        .map(|i| ((i % 40) * 89 + (i / 40) * 23 + i % 7) % 4096)
        .collect();
    let sop = format!("{ROOT}.3.{n}");
    let envelope = InMemDicomObject::from_element_iter([DataElement::new(
        CONTENT,
        VR::OB,
        PrimitiveValue::from(vec![0xA5_u8; 48]),
    )]);
    let obj = InMemDicomObject::from_element_iter([
        DataElement::new(tags::SOP_CLASS_UID, VR::UI, s(CT)),
        DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, s(&sop)),
        DataElement::new(tags::STUDY_DATE, VR::DA, s("20240315")),
        DataElement::new(tags::MODALITY, VR::CS, s("CT")),
        DataElement::new(tags::PATIENT_NAME, VR::PN, s("PSEUDO^ONE")),
        DataElement::new(tags::PATIENT_ID, VR::LO, s("P-0001")),
        DataElement::new(Tag(0x0013, 0x0010), VR::LO, s("PACS GATEWAY")),
        DataElement::new(PRIVATE_VALUE, VR::LO, s("a1b2")),
        DataElement::new(
            tags::STUDY_INSTANCE_UID,
            VR::UI,
            s(&format!("{ROOT}.1.{n}")),
        ),
        DataElement::new(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            s(&format!("{ROOT}.2.{n}")),
        ),
        DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, dicom_value!(U16, [1])),
        DataElement::new(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, s("MONOCHROME2")),
        DataElement::new(tags::ROWS, VR::US, dicom_value!(U16, [48])),
        DataElement::new(tags::COLUMNS, VR::US, dicom_value!(U16, [40])),
        DataElement::new(tags::BITS_ALLOCATED, VR::US, dicom_value!(U16, [16])),
        DataElement::new(tags::BITS_STORED, VR::US, dicom_value!(U16, [12])),
        DataElement::new(tags::HIGH_BIT, VR::US, dicom_value!(U16, [11])),
        DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, dicom_value!(U16, [0])),
        DataElement::new(SEALED, VR::SQ, DataSetSequence::from(vec![envelope])),
        DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(pixels.into())),
    ]);
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(CT)
        .media_storage_sop_instance_uid(sop.as_str())
        .transfer_syntax(EXPLICIT_VR_LE);
    let path = dir.join(format!("native{n}.dcm"));
    obj.with_meta(meta).unwrap().write_to_file(&path).unwrap();
    path
}

fn open(path: &Path) -> InMemDicomObject {
    OpenFileOptions::new().open_file(path).unwrap().into_inner()
}

fn read(data: &[u8], ts: &str) -> InMemDicomObject {
    let ts = TransferSyntaxRegistry.get(ts).expect("known syntax");
    InMemDicomObject::read_dataset_with_ts(data, ts).expect("a readable data set")
}

fn pixels(obj: &InMemDicomObject) -> Vec<u8> {
    obj.element(tags::PIXEL_DATA)
        .unwrap()
        .to_bytes()
        .unwrap()
        .to_vec()
}

fn fragments(obj: &InMemDicomObject) -> Vec<Vec<u8>> {
    match obj.element(tags::PIXEL_DATA).unwrap().value() {
        Value::PixelSequence(seq) => seq.fragments().iter().map(|f| f.to_vec()).collect(),
        _ => panic!("pixel data is not encapsulated"),
    }
}

fn sealed(obj: &InMemDicomObject) -> Vec<u8> {
    let items = obj.element(SEALED).unwrap().items().unwrap();
    items[0]
        .element(CONTENT)
        .unwrap()
        .to_bytes()
        .unwrap()
        .to_vec()
}

fn get_identifier(study: &str) -> Vec<u8> {
    let obj = InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::QUERY_RETRIEVE_LEVEL,
            VR::CS,
            PrimitiveValue::from("STUDY"),
        ),
        DataElement::new(
            tags::STUDY_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(study),
        ),
    ]);
    let ts = dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased();
    let mut out = Vec::new();
    obj.write_dataset_with_ts(&mut out, &ts).unwrap();
    out
}

/// C-GET of `study`, the CT class proposed with `syntaxes` in one context.
async fn get(gw: &TestGateway, study: &str, syntaxes: &[&str]) -> MemoryStore {
    let mut options = tls_options(&gw.setup.cert);
    options.credentials = Some(Credentials::UsernamePassword {
        username: "dr.house".into(),
        password: PASSWORD.into(),
    });
    options.roles = vec![RoleSelection::scp(CT)];
    let proposals = [
        Proposal::query(STUDY_ROOT_GET),
        Proposal {
            abstract_syntax: CT.into(),
            transfer_syntaxes: syntaxes.iter().map(|s| s.to_string()).collect(),
        },
    ];
    let address = format!("127.0.0.1:{}", gw.tls_port);
    let mut assoc = ScuAssociation::connect(&address, &options, &proposals)
        .await
        .expect("the user is admitted");
    let mut store = MemoryStore::default();
    let outcome = assoc
        .get(STUDY_ROOT_GET, &get_identifier(study), &mut store)
        .await
        .unwrap();
    assert!(
        outcome.status.is_success(),
        "C-GET {syntaxes:?}: {outcome:?}"
    );
    let _ = assoc.release().await;
    store
}

async fn store(gw: &TestGateway, option: &str, file: &Path) {
    let mut list = args(&["-aet", PLAIN_AE, "-aec", GATEWAY_AE, option]);
    list.extend(["127.0.0.1".into(), gw.plain_port.to_string()]);
    list.push(file.display().to_string());
    let out = dcmtk_async("storescu", list).await;
    assert!(
        out.status.success(),
        "storescu {option}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn compress(tool: &str, extra: &[&str], from: &Path, to: &Path) {
    let mut list = args(extra);
    list.push(from.display().to_string());
    list.push(to.display().to_string());
    let out = dcmtk_async(tool, list).await;
    assert!(
        out.status.success(),
        "{tool}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn c_get_converts_what_the_requestor_cannot_take(backend: Backend) {
    let gw = TestGateway::spawn(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let (rle_native, ls_native) = (write_image(dir.path(), 1), write_image(dir.path(), 2));
    let (rle, ls) = (dir.path().join("rle.dcm"), dir.path().join("ls.dcm"));
    compress("dcmcrle", &[], &rle_native, &rle).await;
    compress("dcmcjpls", &["+el"], &ls_native, &ls).await;
    store(&gw, "-xr", &rle).await;
    store(&gw, "-xt", &ls).await;
    common::add_clinician(&gw, gw.setup.facility.id, "dr.house", PASSWORD).await;
    let rle_study = format!("{ROOT}.1.1");
    let ls_study = format!("{ROOT}.1.2");

    for (study, native, stored, stored_ts) in [
        (&rle_study, &rle_native, &rle, RLE),
        (&ls_study, &ls_native, &ls, JPEG_LS),
    ] {
        let original = open(native);
        // Uncompressed syntaxes only, several in one context: decompressed.
        for syntaxes in [
            vec![EXPLICIT_VR_LE, "1.2.840.10008.1.2.2", IMPLICIT_VR_LE],
            vec![IMPLICIT_VR_LE],
        ] {
            let got = get(&gw, study, &syntaxes).await.received();
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].transfer_syntax, syntaxes[0], "{stored_ts}");
            let obj = read(&got[0].data, &got[0].transfer_syntax);
            assert!(
                pixels(&obj) == pixels(&original),
                "{stored_ts}: pixel-exact"
            );
            assert_eq!(
                sealed(&obj),
                sealed(&original),
                "{stored_ts}: envelope kept"
            );
            assert_eq!(
                obj.element(PRIVATE_VALUE)
                    .unwrap()
                    .to_bytes()
                    .unwrap()
                    .as_ref(),
                b"a1b2",
                "{stored_ts}: private block kept"
            );
        }
        // The stored syntax first in the context: sent byte for byte as stored.
        let got = get(&gw, study, &[stored_ts, EXPLICIT_VR_LE])
            .await
            .received();
        assert_eq!(got[0].transfer_syntax, stored_ts);
        assert!(
            got[0].data == common::peers::file_dataset(stored),
            "{stored_ts} as stored"
        );
    }

    // JPEG-LS asked for, RLE stored: compressed on the way (JPEG-LS can be encoded).
    let got = get(&gw, &rle_study, &[JPEG_LS, EXPLICIT_VR_LE])
        .await
        .received();
    assert_eq!(got[0].transfer_syntax, JPEG_LS);
    let obj = read(&got[0].data, JPEG_LS);
    assert!(!fragments(&obj).is_empty());
    assert_eq!(sealed(&obj), sealed(&open(&rle_native)));
    let back = dimse::transcode::transcode(&got[0].data, JPEG_LS, EXPLICIT_VR_LE).unwrap();
    assert!(
        pixels(&read(&back, EXPLICIT_VR_LE)) == pixels(&open(&rle_native)),
        "JPEG-LS made from RLE decodes to the original pixels"
    );
    gw.stop().await;
}

both_backends!(c_get_converts_what_the_requestor_cannot_take);
