//! Reading a spooled (original, identified) instance with its text in the right
//! characters, whatever its Specific Character Set.
//!
//! dicom-rs decodes one character set per data set and knows neither ISO 2022 code
//! extensions (escape sequences: Japanese, Korean, Chinese, mixed single-byte sets)
//! nor ISO_IR 148. For those data sets the file is read with its (0008,0005) value
//! replaced by `ISO_IR 100` (Latin-1, which maps every byte to one character and
//! back), every text value is then decoded from those bytes by
//! [`dimse::charset`], and the data set is labelled `ISO_IR 192`: from here on
//! (de-identification, the sealed originals, the gateway's copy, the viewer proxy,
//! re-identified files) it is UTF-8. Everything else is read as dicom-rs reads it.

use std::path::Path;

use dicom_core::header::Header;
use dicom_core::value::{DataSetSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemElement;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};
use dimse::charset::{CharacterSet, Delimiters};

/// Opens a Part-10 file; see the module doc. Errors are readable and carry no
/// patient data.
pub fn open(path: &Path) -> Result<DefaultDicomObject, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse(&bytes, false)
}

/// [`open`], up to the pixel data (for listings).
pub fn open_header(path: &Path) -> Result<DefaultDicomObject, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse(&bytes, true)
}

/// [`open`] on the bytes of a Part-10 file (with its 128-byte preamble).
pub fn from_bytes(bytes: &[u8]) -> Result<DefaultDicomObject, String> {
    parse(bytes, false)
}

fn parse(bytes: &[u8], header_only: bool) -> Result<DefaultDicomObject, String> {
    let read = |bytes: &[u8]| {
        let options =
            OpenFileOptions::new().read_preamble(dicom_object::file::ReadPreamble::Always);
        let options = if header_only {
            options.read_until(tags::PIXEL_DATA)
        } else {
            options
        };
        options
            .from_reader(bytes)
            .map_err(|e| format!("not a readable DICOM file: {e}"))
    };
    let Some(found) = specific_character_set(bytes) else {
        return read(bytes);
    };
    let Some(charset) = foreign_charset(&bytes[found.clone()]) else {
        return read(bytes);
    };
    let mut patched = bytes.to_vec();
    dimse::charset::relabel_latin1(&mut patched[found]);
    let file = read(&patched)?;
    let meta = file.meta().clone();
    let mut object = recode(&file.into_inner(), &charset);
    object.put(utf8_label());
    Ok(object.with_exact_meta(meta))
}

/// Every text value of `object` (at any depth) decoded from its Latin-1 projection.
fn recode(object: &InMemDicomObject, charset: &CharacterSet) -> InMemDicomObject {
    InMemDicomObject::from_element_iter(object.iter().map(|e| recode_element(e, charset)))
}

fn recode_element(element: &InMemElement, charset: &CharacterSet) -> InMemElement {
    let (tag, vr) = (element.tag(), element.vr());
    match element.value() {
        Value::Sequence(seq) => {
            let items: Vec<InMemDicomObject> =
                seq.items().iter().map(|i| recode(i, charset)).collect();
            DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
        }
        Value::Primitive(p) if is_text(vr) && tag != tags::SPECIFIC_CHARACTER_SET => {
            let raw: Vec<u8> = p
                .to_str()
                .chars()
                .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
                .collect();
            let delimiters = if vr == VR::PN {
                Delimiters::PersonName
            } else {
                Delimiters::Text
            };
            let text = charset.decode(&raw, delimiters);
            let value = if matches!(vr, VR::LT | VR::ST | VR::UT) {
                PrimitiveValue::from(text)
            } else {
                PrimitiveValue::Strs(text.split('\\').map(str::to_owned).collect())
            };
            DataElement::new(tag, vr, value)
        }
        _ => element.clone(),
    }
}

/// `object` (UTF-8 in memory) with its text values written in `charset` and labelled
/// so, for a peer that does not read UTF-8. The values go in as bytes (dicom-rs
/// cannot write ISO 2022 code extensions), each padded with a space to even length.
///
/// Errors: the first character `charset` cannot hold; nothing is half converted.
pub fn write_in(
    object: &InMemDicomObject,
    charset: &CharacterSet,
) -> Result<InMemDicomObject, dimse::charset::Unencodable> {
    let mut out = encode_items(object, charset)?;
    // The label as bytes too: dicom-rs would switch its text codec on a label it does
    // not know (and warn); every value left as text is ASCII.
    let mut label = charset.name().as_bytes().to_vec();
    if label.len() % 2 == 1 {
        label.push(b' ');
    }
    out.put(DataElement::new(
        tags::SPECIFIC_CHARACTER_SET,
        VR::CS,
        PrimitiveValue::U8(label.into()),
    ));
    Ok(out)
}

fn encode_items(
    object: &InMemDicomObject,
    charset: &CharacterSet,
) -> Result<InMemDicomObject, dimse::charset::Unencodable> {
    let elements = object
        .iter()
        .map(|element| {
            let (tag, vr) = (element.tag(), element.vr());
            Ok(match element.value() {
                Value::Sequence(seq) => {
                    let items = seq
                        .items()
                        .iter()
                        .map(|i| encode_items(i, charset))
                        .collect::<Result<Vec<_>, _>>()?;
                    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
                }
                Value::Primitive(p @ (PrimitiveValue::Str(_) | PrimitiveValue::Strs(_)))
                    if is_text(vr) && !p.to_str().is_ascii() =>
                {
                    let delimiters = if vr == VR::PN {
                        Delimiters::PersonName
                    } else {
                        Delimiters::Text
                    };
                    let mut bytes = charset.encode(&p.to_str(), delimiters)?;
                    if bytes.len() % 2 == 1 {
                        bytes.push(b' ');
                    }
                    DataElement::new(tag, vr, PrimitiveValue::U8(bytes.into()))
                }
                _ => element.clone(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(InMemDicomObject::from_element_iter(elements))
}

/// VRs whose values the Specific Character Set governs (PS3.5 6.1.2.3).
fn is_text(vr: VR) -> bool {
    matches!(
        vr,
        VR::SH | VR::LO | VR::ST | VR::LT | VR::PN | VR::UC | VR::UT
    )
}

/// The byte range of the top-level Specific Character Set value of a Part-10 file,
/// if the data set has one; `None` for deflated data sets and anything unexpected
/// (then dicom-rs reads the file as it is).
fn specific_character_set(bytes: &[u8]) -> Option<std::ops::Range<usize>> {
    if bytes.get(128..132)? != b"DICM" {
        return None;
    }
    // File meta: Explicit VR Little Endian elements of group 0002.
    let mut at = 132;
    let mut transfer_syntax = String::new();
    loop {
        let group = u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?);
        if group != 0x0002 {
            break;
        }
        let element = u16::from_le_bytes(bytes.get(at + 2..at + 4)?.try_into().ok()?);
        let (len, header) = dimse::charset::explicit_len(bytes, at, false)?;
        let value = bytes.get(at + header..at + header + len)?;
        if element == 0x0010 {
            transfer_syntax = String::from_utf8_lossy(value)
                .trim_matches(['\0', ' '])
                .to_owned();
        }
        at += header + len;
    }
    let found = dimse::charset::locate(bytes.get(at..)?, &transfer_syntax)?;
    Some(found.start + at..found.end + at)
}

/// A data set (no meta) in `transfer_syntax`, as [`open`] reads files: text under a
/// character set dicom-rs cannot decode comes back as UTF-8, labelled `ISO_IR 192`.
pub fn read_dataset(bytes: &[u8], transfer_syntax: &str) -> Result<InMemDicomObject, String> {
    use dicom_encoding::TransferSyntaxIndex;
    let ts = dicom_transfer_syntax_registry::TransferSyntaxRegistry
        .get(transfer_syntax)
        .ok_or_else(|| format!("unknown transfer syntax {transfer_syntax}"))?;
    let read = |bytes: &[u8]| {
        InMemDicomObject::read_dataset_with_ts(bytes, ts)
            .map_err(|e| format!("malformed data set: {e}"))
    };
    let Some(found) = dimse::charset::locate(bytes, transfer_syntax) else {
        return read(bytes);
    };
    let Some(charset) = foreign_charset(&bytes[found.clone()]) else {
        return read(bytes);
    };
    let mut patched = bytes.to_vec();
    dimse::charset::relabel_latin1(&mut patched[found]);
    let mut object = recode(&read(&patched)?, &charset);
    object.put(utf8_label());
    Ok(object)
}

/// The character set of a (0008,0005) value that dicom-rs cannot decode itself.
fn foreign_charset(value: &[u8]) -> Option<CharacterSet> {
    let value = String::from_utf8_lossy(value);
    let terms = value.trim_matches([' ', '\0']);
    if dimse::charset::dicom_rs_reads(terms) {
        return None;
    }
    // An unknown term: read as dicom-rs does (every byte kept as one character).
    CharacterSet::from_specific_character_set(terms).ok()
}

fn utf8_label() -> InMemElement {
    DataElement::new(
        tags::SPECIFIC_CHARACTER_SET,
        VR::CS,
        PrimitiveValue::from("ISO_IR 192"),
    )
}

#[cfg(test)]
mod tests;
