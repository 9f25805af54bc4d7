//! The DICOMDIR of a File-set (PS3.10 section 7, PS3.3 Annex F "Basic Directory"),
//! written here because dicom-rs has no DICOMDIR support (Enet4/dicom-rs#184): a
//! Part-10 file of the Media Storage Directory Storage SOP class in Explicit VR
//! Little Endian whose Directory Record Sequence holds the PATIENT, STUDY, SERIES and
//! IMAGE (or other leaf) records depth first, linked by byte offsets counted from the
//! first byte of the file (the preamble).
//!
//! The records are encoded by hand (a few fixed VRs) so every offset is known: each
//! record has the same size whatever its offsets hold, so one pass measures and a
//! second writes.

use anyhow::Context;
use dicom_object::FileMetaTableBuilder;

/// Media Storage Directory Storage.
pub const DIRECTORY_SOP_CLASS: &str = "1.2.840.10008.1.3.10";
/// Explicit VR Little Endian.
pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";

/// One directory record with its children (lower-level entity).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// Directory Record Type (PATIENT, STUDY, SERIES, IMAGE, SR DOCUMENT, ...).
    pub kind: String,
    /// For leaf records: Referenced File ID components, Referenced SOP Class,
    /// SOP Instance and Transfer Syntax UIDs in File.
    pub file: Option<FileRef>,
    /// The record's own keys in ascending tag order: (group, element, VR, value).
    pub keys: Vec<(u16, u16, &'static str, String)>,
    /// The records of the lower-level directory entity.
    pub children: Vec<Record>,
}

/// What a leaf record references.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileRef {
    /// File ID components (`DICOM`, `P0000001`, ...).
    pub components: Vec<String>,
    /// SOP Class UID.
    pub sop_class: String,
    /// SOP Instance UID.
    pub sop_instance: String,
    /// Transfer Syntax UID.
    pub transfer_syntax: String,
}

/// VRs with a 4-byte length in Explicit VR.
fn long_vr(vr: &str) -> bool {
    matches!(
        vr,
        "OB" | "OD" | "OF" | "OL" | "OV" | "OW" | "SQ" | "SV" | "UC" | "UN" | "UR" | "UT" | "UV"
    )
}

/// One element in Explicit VR Little Endian; text padded to even length.
fn element(out: &mut Vec<u8>, group: u16, elem: u16, vr: &str, value: &[u8]) {
    let mut value = value.to_vec();
    if value.len() % 2 == 1 {
        value.push(if vr == "UI" || vr == "OB" { 0 } else { b' ' });
    }
    out.extend_from_slice(&group.to_le_bytes());
    out.extend_from_slice(&elem.to_le_bytes());
    out.extend_from_slice(vr.as_bytes());
    if long_vr(vr) {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    } else {
        out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    }
    out.extend_from_slice(&value);
}

fn text(out: &mut Vec<u8>, group: u16, elem: u16, vr: &str, value: &str) {
    element(out, group, elem, vr, value.as_bytes());
}

fn ul(out: &mut Vec<u8>, elem: u16, value: u32) {
    element(out, 0x0004, elem, "UL", &value.to_le_bytes());
}

/// A record flattened: its place in the sequence and where its links point.
struct Flat<'a> {
    record: &'a Record,
    next: Option<usize>,
    lower: Option<usize>,
}

/// Flattens `records` (siblings) depth first into `out`; returns their indexes.
fn flatten<'a>(records: &'a [Record], out: &mut Vec<Flat<'a>>) -> Vec<usize> {
    let mut indexes = Vec::new();
    for record in records {
        let at = out.len();
        out.push(Flat {
            record,
            next: None,
            lower: None,
        });
        let children = flatten(&record.children, out);
        out[at].lower = children.first().copied();
        indexes.push(at);
    }
    for pair in indexes.windows(2) {
        out[pair[0]].next = Some(pair[1]);
    }
    indexes
}

/// One record as an item of undefined length, its offsets taken from `offsets`.
fn item(flat: &Flat<'_>, offsets: &[u32]) -> Vec<u8> {
    let offset = |i: Option<usize>| i.and_then(|i| offsets.get(i).copied()).unwrap_or(0);
    let mut out = Vec::new();
    out.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
    ul(&mut out, 0x1400, offset(flat.next));
    element(&mut out, 0x0004, 0x1410, "US", &0xFFFFu16.to_le_bytes());
    ul(&mut out, 0x1420, offset(flat.lower));
    text(&mut out, 0x0004, 0x1430, "CS", &flat.record.kind);
    if let Some(file) = &flat.record.file {
        text(&mut out, 0x0004, 0x1500, "CS", &file.components.join("\\"));
        text(&mut out, 0x0004, 0x1510, "UI", &file.sop_class);
        text(&mut out, 0x0004, 0x1511, "UI", &file.sop_instance);
        text(&mut out, 0x0004, 0x1512, "UI", &file.transfer_syntax);
    }
    for (group, elem, vr, value) in &flat.record.keys {
        text(&mut out, *group, *elem, vr, value);
    }
    out.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
    out
}

/// The whole DICOMDIR file: preamble, file meta, File-set ID, root offsets,
/// consistency flag and the records.
pub fn encode(fileset_id: &str, instance_uid: &str, roots: &[Record]) -> anyhow::Result<Vec<u8>> {
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(DIRECTORY_SOP_CLASS)
        .media_storage_sop_instance_uid(instance_uid)
        .transfer_syntax(EXPLICIT_VR_LE)
        .build()
        .context("cannot build the DICOMDIR file meta")?;
    let mut head = vec![0u8; 128];
    head.extend_from_slice(b"DICM");
    meta.write(&mut head)
        .context("cannot encode the DICOMDIR file meta")?;
    let mut flat = Vec::new();
    let root_indexes = flatten(roots, &mut flat);
    let build = |offsets: &[u32]| -> Vec<u8> {
        let mut body = Vec::new();
        text(&mut body, 0x0004, 0x1130, "CS", fileset_id);
        let first = root_indexes.first().and_then(|i| offsets.get(*i)).copied();
        let last = root_indexes.last().and_then(|i| offsets.get(*i)).copied();
        ul(&mut body, 0x1200, first.unwrap_or(0));
        ul(&mut body, 0x1202, last.unwrap_or(0));
        element(&mut body, 0x0004, 0x1212, "US", &0u16.to_le_bytes());
        body.extend_from_slice(&[
            0x04, 0x00, 0x20, 0x12, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
        ]);
        body
    };
    // Measure: the sizes do not depend on the offsets' values.
    let zeros = vec![0u32; flat.len()];
    let mut at = (head.len() + build(&zeros).len()) as u64;
    let mut offsets = Vec::with_capacity(flat.len());
    for f in &flat {
        offsets.push(u32::try_from(at).context("the DICOMDIR would exceed 4 GiB")?);
        at += item(f, &zeros).len() as u64;
    }
    let mut out = head;
    out.extend_from_slice(&build(&offsets));
    for f in &flat {
        out.extend_from_slice(&item(f, &offsets));
    }
    out.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(n: u32) -> Record {
        Record {
            kind: "IMAGE".into(),
            file: Some(FileRef {
                components: vec!["DICOM".into(), format!("I{n:07}")],
                sop_class: "1.2.840.10008.5.1.4.1.1.2".into(),
                sop_instance: format!("1.2.3.{n}"),
                transfer_syntax: EXPLICIT_VR_LE.into(),
            }),
            keys: vec![(0x0020, 0x0013, "IS", n.to_string())],
            children: Vec::new(),
        }
    }

    #[test]
    fn offsets_point_at_items_and_read_back() {
        let patient = Record {
            kind: "PATIENT".into(),
            file: None,
            keys: vec![(0x0010, 0x0010, "PN", "Doe^J".into())],
            children: vec![leaf(1), leaf(2)],
        };
        let bytes = encode("TEST", "2.25.1", &[patient]).unwrap();
        let obj = dicom_object::from_reader(&bytes[128..]).unwrap();
        let first = obj
            .element(dicom_dictionary_std::tags::OFFSET_OF_THE_FIRST_DIRECTORY_RECORD_OF_THE_ROOT_DIRECTORY_ENTITY)
            .unwrap()
            .to_int::<u32>()
            .unwrap() as usize;
        assert_eq!(&bytes[first..first + 4], &[0xFE, 0xFF, 0x00, 0xE0]);
        let records = obj
            .element(dicom_dictionary_std::tags::DIRECTORY_RECORD_SEQUENCE)
            .unwrap()
            .items()
            .unwrap();
        assert_eq!(records.len(), 3);
        let lower = records[0]
            .element(dicom_dictionary_std::tags::OFFSET_OF_REFERENCED_LOWER_LEVEL_DIRECTORY_ENTITY)
            .unwrap()
            .to_int::<u32>()
            .unwrap() as usize;
        let next = records[1]
            .element(dicom_dictionary_std::tags::OFFSET_OF_THE_NEXT_DIRECTORY_RECORD)
            .unwrap()
            .to_int::<u32>()
            .unwrap() as usize;
        assert!(lower > first && next > lower);
        assert_eq!(&bytes[lower..lower + 4], &[0xFE, 0xFF, 0x00, 0xE0]);
        assert_eq!(&bytes[next..next + 4], &[0xFE, 0xFF, 0x00, 0xE0]);
    }
}
