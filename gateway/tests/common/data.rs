//! DICOM files generated at test time: native Explicit VR Little Endian files written
//! with dicom-object, converted to other transfer syntaxes with DCMTK (`dcmconv`,
//! `dcmcjpeg`, `dcmcrle`), and a streamed writer for very large instances.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, VR, dicom_value};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

use super::{args, dcmtk};

/// Explicit VR Little Endian.
pub const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
/// CT Image Storage.
pub const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
/// MR Image Storage.
pub const MR: &str = "1.2.840.10008.5.1.4.1.1.4";
/// Computed Radiography Image Storage.
pub const CR: &str = "1.2.840.10008.5.1.4.1.1.1";
/// Ultrasound Image Storage.
pub const US: &str = "1.2.840.10008.5.1.4.1.1.6.1";
/// Secondary Capture Image Storage.
pub const SC: &str = "1.2.840.10008.5.1.4.1.1.7";
/// Multi-frame Grayscale Word Secondary Capture Image Storage.
pub const SC_MULTIFRAME_WORD: &str = "1.2.840.10008.5.1.4.1.1.7.3";
/// X-Ray Angiographic Image Storage (multi-frame).
pub const XA: &str = "1.2.840.10008.5.1.4.1.1.12.1";

/// Name blind index carried by de-identified test instances.
pub const BLIND_INDEX: &str = "be3f";

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    /// SOP Class UID.
    pub sop_class: &'static str,
    /// Modality.
    pub modality: &'static str,
    /// Patient ID.
    pub patient_id: String,
    /// Study Instance UID.
    pub study_uid: String,
    /// Series Instance UID.
    pub series_uid: String,
    /// SOP Instance UID.
    pub sop_uid: String,
    /// Study Date.
    pub study_date: String,
    /// Accession Number.
    pub accession: String,
    /// Rows and columns.
    pub size: u16,
    /// Frames (1 = single frame, no Number of Frames attribute).
    pub frames: u32,
    /// 8 or 16 bits allocated.
    pub bits: u16,
    /// Carry Patient Identity Removed = YES and a sealed-identity item.
    pub deidentified: bool,
    /// Seed for pixel values, so instances differ.
    pub seed: u8,
}

impl Spec {
    /// A 64x64 16-bit single-frame instance with UIDs made unique by `n`.
    pub fn new(sop_class: &'static str, modality: &'static str, n: u32) -> Spec {
        Spec {
            sop_class,
            modality,
            patient_id: format!("PSEUDO{:04}", n % 3),
            study_uid: format!("1.2.826.0.1.3680043.10.1.{}", n % 3 + 1),
            series_uid: format!("1.2.826.0.1.3680043.10.2.{}", n + 1),
            sop_uid: format!("1.2.826.0.1.3680043.10.3.{}", n + 1),
            study_date: format!("202401{:02}", n % 28 + 1),
            accession: format!("ACC{n}"),
            size: 64,
            frames: 1,
            bits: 16,
            deidentified: false,
            seed: n as u8,
        }
    }

    fn pixel_len(&self) -> usize {
        usize::from(self.size)
            * usize::from(self.size)
            * self.frames as usize
            * usize::from(self.bits / 8)
    }
}

fn sealed_identity_item() -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::ENCRYPTED_CONTENT_TRANSFER_SYNTAX_UID,
            VR::UI,
            PrimitiveValue::from(EXPLICIT_LE),
        ),
        DataElement::new(
            tags::ENCRYPTED_CONTENT,
            VR::OB,
            PrimitiveValue::from(vec![0x5Au8; 48]),
        ),
    ])
}

/// The data set of `spec`, without pixel data.
pub fn header(spec: &Spec) -> InMemDicomObject {
    let s = |v: &str| PrimitiveValue::from(v);
    let mut obj = InMemDicomObject::from_element_iter([
        DataElement::new(tags::SOP_CLASS_UID, VR::UI, s(spec.sop_class)),
        DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, s(&spec.sop_uid)),
        DataElement::new(tags::STUDY_DATE, VR::DA, s(&spec.study_date)),
        DataElement::new(tags::STUDY_TIME, VR::TM, s("101500")),
        DataElement::new(tags::ACCESSION_NUMBER, VR::SH, s(&spec.accession)),
        DataElement::new(tags::MODALITY, VR::CS, s(spec.modality)),
        DataElement::new(tags::STUDY_DESCRIPTION, VR::LO, s("Generated study")),
        DataElement::new(tags::SERIES_DESCRIPTION, VR::LO, s("Generated series")),
        DataElement::new(tags::PATIENT_NAME, VR::PN, s("Pseudonym^Test")),
        DataElement::new(tags::PATIENT_ID, VR::LO, s(&spec.patient_id)),
        DataElement::new(tags::STUDY_INSTANCE_UID, VR::UI, s(&spec.study_uid)),
        DataElement::new(tags::SERIES_INSTANCE_UID, VR::UI, s(&spec.series_uid)),
        DataElement::new(tags::SERIES_NUMBER, VR::IS, s("1")),
        DataElement::new(tags::INSTANCE_NUMBER, VR::IS, s("1")),
        DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, dicom_value!(U16, [1])),
        DataElement::new(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, s("MONOCHROME2")),
        DataElement::new(tags::ROWS, VR::US, dicom_value!(U16, [spec.size])),
        DataElement::new(tags::COLUMNS, VR::US, dicom_value!(U16, [spec.size])),
        DataElement::new(tags::BITS_ALLOCATED, VR::US, dicom_value!(U16, [spec.bits])),
        DataElement::new(tags::BITS_STORED, VR::US, dicom_value!(U16, [spec.bits])),
        DataElement::new(tags::HIGH_BIT, VR::US, dicom_value!(U16, [spec.bits - 1])),
        DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, dicom_value!(U16, [0])),
    ]);
    if spec.frames > 1 {
        obj.put(DataElement::new(
            tags::NUMBER_OF_FRAMES,
            VR::IS,
            s(&spec.frames.to_string()),
        ));
    }
    if spec.deidentified {
        obj.put(DataElement::new(
            tags::PATIENT_IDENTITY_REMOVED,
            VR::CS,
            s("YES"),
        ));
        let creator = dimse::scan::PRODUCT_PRIVATE_CREATOR;
        obj.put(DataElement::new(
            dicom_core::Tag(0x0013, 0x0010),
            VR::LO,
            s(creator),
        ));
        obj.put(DataElement::new(
            dicom_core::Tag(0x0013, 0x1010),
            VR::LO,
            s(BLIND_INDEX),
        ));
        obj.put(DataElement::new(
            tags::ENCRYPTED_ATTRIBUTES_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![sealed_identity_item()]),
        ));
    }
    obj
}

/// The pixel data `write` puts into `spec`'s file.
pub fn pixels(spec: &Spec) -> Vec<u8> {
    (0..spec.pixel_len())
        .map(|i| ((i / 7) as u8).wrapping_add(spec.seed).wrapping_mul(3))
        .collect()
}

/// Writes `spec` as an Explicit VR Little Endian Part-10 file.
pub fn write(path: &Path, spec: &Spec) -> PathBuf {
    let mut obj = header(spec);
    let vr = if spec.bits == 8 { VR::OB } else { VR::OW };
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        vr,
        PrimitiveValue::from(pixels(spec)),
    ));
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(spec.sop_class)
        .media_storage_sop_instance_uid(spec.sop_uid.as_str())
        .transfer_syntax(EXPLICIT_LE);
    obj.with_meta(meta)
        .expect("meta")
        .write_to_file(path)
        .expect("write DICOM file");
    path.to_path_buf()
}

/// Converts `src` into `dst` with a DCMTK tool (`dcmconv +ti`, `dcmcjpeg +eb`, ...).
pub fn convert(tool: &str, flags: &[&str], src: &Path, dst: &Path) -> PathBuf {
    let mut list = args(flags);
    list.push(src.display().to_string());
    list.push(dst.display().to_string());
    let out = dcmtk(tool, &list);
    assert!(
        out.status.success(),
        "{tool} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dst.to_path_buf()
}

/// Writes a huge single instance without holding it in memory: header from
/// dicom-object, then a Pixel Data element streamed in 1 MiB chunks.
pub fn write_large(path: &Path, spec: &Spec) -> PathBuf {
    let obj = header(spec);
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(spec.sop_class)
        .media_storage_sop_instance_uid(spec.sop_uid.as_str())
        .transfer_syntax(EXPLICIT_LE);
    obj.with_meta(meta)
        .expect("meta")
        .write_to_file(path)
        .expect("write header");
    let file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let len = spec.pixel_len() as u32;
    out.write_all(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0])
        .unwrap();
    out.write_all(&len.to_le_bytes()).unwrap();
    let chunk: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i % 251) as u8 ^ spec.seed)
        .collect();
    let mut left = len as usize;
    while left > 0 {
        let n = left.min(chunk.len());
        out.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    out.flush().unwrap();
    path.to_path_buf()
}
