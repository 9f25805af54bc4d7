//! Transfer-syntax conversion of one data set for retrieval (C-GET, C-MOVE): which
//! syntaxes can be read and written, which one to send when the receiver did not
//! accept the stored one, and the conversion itself.
//!
//! Decoding covers the codecs built in (`dicom-pixeldata` with the native codecs,
//! CharLS and OpenJPEG): JPEG baseline, extended (8-bit) and lossless, JPEG-LS,
//! JPEG 2000, RLE and deflate; 12-bit JPEG extended, which `jpeg-decoder` refuses,
//! by our own decoder (`jpeg12`, wired in by `native12`). Encoding covers the
//! native syntaxes (Explicit and Implicit VR Little Endian, Explicit VR Big
//! Endian), Deflated Explicit VR Little Endian, JPEG baseline (8-bit samples) and
//! JPEG-LS (lossless and near-lossless); RLE and JPEG 2000 are decoded only. Only
//! the Pixel Data and the attributes describing it (Photometric Interpretation,
//! Planar Configuration, Number of Frames, Bits Allocated) change: every other
//! value, private or sealed, is kept as it is, re-encoded in the new
//! syntax. No policy here: the caller decides whether an instance may be converted.

use std::io::Cursor;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_encoding::Codec;
use dicom_encoding::TransferSyntaxIndex;
use dicom_encoding::transfer_syntax::TransferSyntax;
use dicom_object::{FileDicomObject, FileMetaTableBuilder, InMemDicomObject};
use dicom_pixeldata::Transcode;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use crate::assoc::{EXPLICIT_VR_LE, IMPLICIT_VR_LE};

/// Explicit VR Big Endian (retired, still proposed by DCMTK tools).
pub const EXPLICIT_VR_BE: &str = "1.2.840.10008.1.2.2";
/// Deflated Explicit VR Little Endian.
pub const DEFLATED_EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1.99";

/// The largest data set converted in memory (larger ones are sent only as stored).
pub const MAX_TRANSCODE_BYTES: u64 = 1 << 30;

/// Why a data set could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    /// The source or target syntax is unknown or has no codec here.
    #[error("cannot convert {from} to {to}: {why}")]
    Unsupported {
        /// Source transfer syntax.
        from: String,
        /// Target transfer syntax.
        to: String,
        /// What is missing.
        why: String,
    },
    /// The data set or its pixel data could not be decoded or encoded.
    #[error("cannot convert {from} to {to}: {why}")]
    Failed {
        /// Source transfer syntax.
        from: String,
        /// Target transfer syntax.
        to: String,
        /// The codec's or parser's message.
        why: String,
    },
}

fn registry(uid: &str) -> Option<&'static TransferSyntax> {
    TransferSyntaxRegistry.get(uid.trim_end_matches(['\0', ' ']))
}

/// Whether data sets in `uid` can be read, pixel data included.
pub fn can_decode(uid: &str) -> bool {
    registry(uid).is_some_and(|ts| match ts.codec() {
        Codec::None | Codec::Dataset(Some(_)) => true,
        Codec::EncapsulatedPixelData(reader, _) => reader.is_some(),
        Codec::Dataset(None) => false,
    })
}

/// Whether data sets can be written in `uid`, pixel data included (from native).
pub fn can_encode(uid: &str) -> bool {
    registry(uid).is_some_and(|ts| match ts.codec() {
        Codec::None | Codec::Dataset(Some(_)) => true,
        Codec::EncapsulatedPixelData(_, writer) => writer.is_some(),
        Codec::Dataset(None) => false,
    })
}

/// Whether an instance stored in `from` can be sent in `to`.
pub fn can_transcode(from: &str, to: &str) -> bool {
    from == to || (can_decode(from) && can_encode(to))
}

/// Whether `uid` keeps pixel data native (uncompressed, possibly deflated as a whole).
pub fn is_native(uid: &str) -> bool {
    registry(uid).is_some_and(|ts| !ts.is_encapsulated_pixel_data())
}

/// The syntax to send an instance stored in `stored` in, among the `accepted` ones
/// (the receiver's accepted contexts for its SOP class): the stored syntax itself
/// when accepted; otherwise Explicit VR Little Endian, Implicit VR Little Endian,
/// then the first other accepted syntax this module can convert to. `None` when
/// none can carry it.
pub fn pick<'a>(stored: &str, accepted: &[&'a str]) -> Option<&'a str> {
    if let Some(same) = accepted.iter().find(|ts| **ts == stored) {
        return Some(same);
    }
    if !can_decode(stored) {
        return None;
    }
    let preferred = [EXPLICIT_VR_LE, IMPLICIT_VR_LE, EXPLICIT_VR_BE];
    preferred
        .iter()
        .find_map(|p| accepted.iter().find(|ts| *ts == p))
        .or_else(|| accepted.iter().find(|ts| can_encode(ts)))
        .copied()
}

/// Converts the data set `data` (no meta header) from `from` to `to`. Pixel data is
/// decoded when `from` compresses it and encoded when `to` does; the rest of the
/// data set is re-encoded value for value.
pub fn transcode(data: &[u8], from: &str, to: &str) -> Result<Vec<u8>, TranscodeError> {
    let (from, to) = (
        from.trim_end_matches(['\0', ' ']),
        to.trim_end_matches(['\0', ' ']),
    );
    if from == to {
        return Ok(data.to_vec());
    }
    let unsupported = |why: &str| TranscodeError::Unsupported {
        from: from.to_string(),
        to: to.to_string(),
        why: why.to_string(),
    };
    let failed = |why: String| TranscodeError::Failed {
        from: from.to_string(),
        to: to.to_string(),
        why,
    };
    let source = registry(from).ok_or_else(|| unsupported("unknown source transfer syntax"))?;
    let target = registry(to).ok_or_else(|| unsupported("unknown target transfer syntax"))?;
    if !can_decode(from) {
        return Err(unsupported("no decoder for the source syntax here"));
    }
    if !can_encode(to) {
        return Err(unsupported("no encoder for the target syntax here"));
    }
    let was_encapsulated = source.is_encapsulated_pixel_data();
    let mut file = open(data, source, MAX_TRANSCODE_BYTES).map_err(failed)?;
    let has_pixels = file.get(tags::PIXEL_DATA).is_some();
    // A deflated target is written from Explicit VR LE: the deflate is the writer's.
    let dataset_codec = matches!(target.codec(), Codec::Dataset(Some(_)));
    let intermediate = if dataset_codec {
        registry(EXPLICIT_VR_LE).ok_or_else(|| unsupported("no Explicit VR Little Endian"))?
    } else {
        target
    };
    if has_pixels || !was_encapsulated {
        file.transcode(intermediate)
            .map_err(|e| failed(e.to_string()))?;
    }
    if was_encapsulated && has_pixels && !intermediate.is_encapsulated_pixel_data() {
        native_fixups(&mut file);
    }
    let mut out = Vec::with_capacity(data.len());
    file.write_dataset_with_ts(&mut out, target)
        .map_err(|e| failed(format!("cannot write the data set: {e}")))?;
    Ok(out)
}

/// Reads the data set `data` (no meta header) stored in `uid` for its pixel data:
/// a file object whose meta header names the syntax its Pixel Data is now in, ready
/// for `dicom_pixeldata::PixelDecoder`. 12-bit JPEG Extended pixel data, which
/// `dicom-pixeldata` cannot decode, is decoded here to native samples (bounded by
/// `max_bytes`); other syntaxes are left for `dicom-pixeldata` to decode frame by
/// frame. Text under a character set dicom-rs does not know is read as Latin-1.
pub fn read_for_pixels(
    data: &[u8],
    uid: &str,
    max_bytes: u64,
) -> Result<FileDicomObject<InMemDicomObject>, TranscodeError> {
    let uid = uid.trim_end_matches(['\0', ' ']);
    let failed = |why: String| TranscodeError::Failed {
        from: uid.to_string(),
        to: "native pixel data".to_string(),
        why,
    };
    let source = registry(uid).ok_or_else(|| TranscodeError::Unsupported {
        from: uid.to_string(),
        to: "native pixel data".to_string(),
        why: "unknown transfer syntax".to_string(),
    })?;
    open(data, source, max_bytes).map_err(failed)
}

/// The data set `data` read in `source` with a meta header, 12-bit JPEG Extended
/// pixel data decoded to native (the meta then says Explicit VR Little Endian).
fn open(
    data: &[u8],
    source: &'static TransferSyntax,
    max_bytes: u64,
) -> Result<FileDicomObject<InMemDicomObject>, String> {
    let from = source.uid();
    // Text under a character set dicom-rs does not know (ISO 2022 code extensions)
    // is carried byte for byte: read as Latin-1, written back under its own label.
    let foreign = crate::charset::locate(data, from).filter(|range| {
        let value = String::from_utf8_lossy(&data[range.clone()]);
        !crate::charset::dicom_rs_reads(value.trim_matches([' ', '\0']))
    });
    let relabelled;
    let (data, label) = match foreign {
        Some(range) => {
            let mut copy = data.to_vec();
            let label = copy[range.clone()].to_vec();
            crate::charset::relabel_latin1(&mut copy[range]);
            relabelled = copy;
            (relabelled.as_slice(), Some(label))
        }
        None => (data, None),
    };
    let mut object = InMemDicomObject::read_dataset_with_ts(Cursor::new(data), source)
        .map_err(|e| format!("cannot read the data set: {e}"))?;
    if let Some(label) = label {
        // As bytes, the writer keeps its Latin-1 codec for the text that follows.
        object.put(DataElement::new(
            tags::SPECIFIC_CHARACTER_SET,
            VR::CS,
            PrimitiveValue::U8(label.into()),
        ));
    }
    let class = text(&object, tags::SOP_CLASS_UID);
    let instance = text(&object, tags::SOP_INSTANCE_UID);
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(from)
        .media_storage_sop_class_uid(class.as_str())
        .media_storage_sop_instance_uid(instance.as_str());
    let mut file = object
        .with_meta(meta)
        .map_err(|e| format!("cannot build the meta header: {e}"))?;
    if native12::applies(&file, from) {
        // 12-bit JPEG Extended: decoded here, then native as far as dicom-pixeldata knows.
        native12::decode_in_place(&mut file, max_bytes)?;
        let native = registry(EXPLICIT_VR_LE).ok_or("no Explicit VR Little Endian")?;
        file.update_meta(|meta| meta.set_transfer_syntax(native));
    }
    Ok(file)
}

/// Decoded frames come interleaved and whole: Planar Configuration 0, no
/// Encapsulated Pixel Data Value Total Length.
fn native_fixups(file: &mut InMemDicomObject) {
    let samples = file
        .get(tags::SAMPLES_PER_PIXEL)
        .and_then(|e| e.to_int::<u16>().ok())
        .unwrap_or(1);
    if samples > 1 {
        file.put(DataElement::new(
            tags::PLANAR_CONFIGURATION,
            VR::US,
            PrimitiveValue::from(0_u16),
        ));
    }
    file.remove_element(tags::ENCAPSULATED_PIXEL_DATA_VALUE_TOTAL_LENGTH);
}

fn text(object: &InMemDicomObject, tag: dicom_core::Tag) -> String {
    object
        .get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
        .unwrap_or_default()
}

mod jpeg12;
mod native12;

#[cfg(test)]
mod dcmtk;
#[cfg(test)]
mod tests;
