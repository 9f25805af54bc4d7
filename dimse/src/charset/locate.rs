//! Finding and relabelling the Specific Character Set in the bytes of a data set,
//! for code that hands data sets to dicom-rs, which decodes one character set per
//! data set and knows neither ISO 2022 code extensions nor ISO_IR 148: relabelled
//! `ISO_IR 100` (Latin-1, one character per byte and back), such a data set is read
//! and written by dicom-rs byte for byte, and its text decoded here.

use dicom_core::Tag;
use dicom_dictionary_std::tags;

/// Character sets dicom-rs decodes faithfully on its own.
const DICOM_RS_READS: [&str; 16] = [
    "",
    "ISO_IR 6",
    "ISO_IR 100",
    "ISO_IR 101",
    "ISO_IR 109",
    "ISO_IR 110",
    "ISO_IR 126",
    "ISO_IR 127",
    "ISO_IR 138",
    "ISO_IR 144",
    "ISO_IR 13",
    "ISO_IR 166",
    "ISO_IR 192",
    "GB18030",
    "GBK",
    "ISO 2022 IR 6",
];

/// Whether dicom-rs decodes text under this (0008,0005) value (trimmed) faithfully.
pub fn dicom_rs_reads(value: &str) -> bool {
    DICOM_RS_READS.contains(&value)
}

/// The byte range of the top-level Specific Character Set value of a data set (no
/// meta header) in `transfer_syntax`: it comes first, only retired group 0008 elements can
/// precede it. Explicit VR Little and Big Endian and Implicit VR Little Endian.
pub fn locate(bytes: &[u8], transfer_syntax: &str) -> Option<std::ops::Range<usize>> {
    let (explicit, big) = match transfer_syntax.trim_matches(['\0', ' ']) {
        "1.2.840.10008.1.2" => (false, false),
        "1.2.840.10008.1.2.2" => (true, true),
        "1.2.840.10008.1.2.1.99" => return None,
        _ => (true, false),
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b: [u8; 2] = bytes.get(at..at + 2)?.try_into().ok()?;
        Some(if big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    };
    let mut at = 0;
    loop {
        let tag = Tag(u16_at(at)?, u16_at(at + 2)?);
        let (len, header) = if explicit {
            explicit_len(bytes, at, big)?
        } else {
            let len = u32::from_le_bytes(bytes.get(at + 4..at + 8)?.try_into().ok()?);
            (usize::try_from(len).ok()?, 8)
        };
        if tag == tags::SPECIFIC_CHARACTER_SET {
            let start = at + header;
            bytes.get(start..start + len)?;
            return Some(start..start + len);
        }
        if tag > tags::SPECIFIC_CHARACTER_SET || len == 0xFFFF_FFFF {
            return None;
        }
        at += header + len;
    }
}

/// Overwrites a (0008,0005) value with `ISO_IR 100` (Latin-1) padded to its length.
pub fn relabel_latin1(slot: &mut [u8]) {
    let label = b"ISO_IR 100";
    slot.fill(b' ');
    if slot.len() >= label.len() {
        slot[..label.len()].copy_from_slice(label);
    }
}

/// Value length and header length of the explicit VR element at `at`.
pub fn explicit_len(bytes: &[u8], at: usize, big: bool) -> Option<(usize, usize)> {
    let vr = bytes.get(at + 4..at + 6)?;
    let long = matches!(
        vr,
        b"OB"
            | b"OD"
            | b"OF"
            | b"OL"
            | b"OV"
            | b"OW"
            | b"SQ"
            | b"SV"
            | b"UC"
            | b"UN"
            | b"UR"
            | b"UT"
            | b"UV"
    );
    if long {
        let b: [u8; 4] = bytes.get(at + 8..at + 12)?.try_into().ok()?;
        let len = if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        };
        Some((usize::try_from(len).ok()?, 12))
    } else {
        let b: [u8; 2] = bytes.get(at + 6..at + 8)?.try_into().ok()?;
        let len = if big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        };
        Some((usize::from(len), 8))
    }
}
