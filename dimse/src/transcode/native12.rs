//! Decoding of 12-bit "JPEG Extended (Process 2 & 4)" pixel data, which the
//! `jpeg-decoder` crate behind `dicom-pixeldata` refuses, with our own decoder
//! ([`super::jpeg12`]): each frame's JPEG stream is decoded and the Pixel Data
//! replaced by native 16-bit samples, with the attributes describing it made to
//! match (as `dicom-pixeldata` does for the syntaxes it decodes). The caller then
//! treats the object as native.

use dicom_core::value::Value;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::jpeg12;

/// JPEG Extended (Process 2 & 4).
pub(super) const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";

/// Whether `object`, read from `from`, holds pixel data this module must decode:
/// JPEG Extended with more than 8 bits per sample.
pub(super) fn applies(object: &InMemDicomObject, from: &str) -> bool {
    from == JPEG_EXTENDED
        && object
            .get(tags::PIXEL_DATA)
            .is_some_and(|e| e.value().fragments().is_some())
        && (int(object, tags::BITS_STORED).unwrap_or(0) > 8
            || int(object, tags::BITS_ALLOCATED).unwrap_or(0) > 8)
}

fn int(object: &InMemDicomObject, tag: dicom_core::Tag) -> Option<u32> {
    object.get(tag).and_then(|e| e.to_int::<u32>().ok())
}

/// Replaces the encapsulated Pixel Data of `object` by native 16-bit samples
/// (sign-extended from Bits Stored when Pixel Representation is 1) and sets Bits
/// Allocated, Photometric Interpretation and Planar Configuration to match;
/// removes Encapsulated Pixel Data Value Total Length. `max_bytes` bounds
/// the decoded pixel data.
pub(super) fn decode_in_place(object: &mut InMemDicomObject, max_bytes: u64) -> Result<(), String> {
    let need = |tag, name: &str| {
        int(object, tag).ok_or_else(|| format!("no valid {name} for the JPEG pixel data"))
    };
    let rows = need(tags::ROWS, "Rows")? as usize;
    let columns = need(tags::COLUMNS, "Columns")? as usize;
    let samples = need(tags::SAMPLES_PER_PIXEL, "Samples per Pixel")? as usize;
    let frames = int(object, tags::NUMBER_OF_FRAMES)
        .filter(|n| *n > 0)
        .unwrap_or(1) as usize;
    if samples != 1 && samples != 3 {
        return Err(format!("{samples} samples per pixel (1 or 3 only)"));
    }
    let photometric = object
        .get(tags::PHOTOMETRIC_INTERPRETATION)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
        .unwrap_or_default();
    let (to_rgb, photometric) = match (samples, photometric.as_str()) {
        (1, "MONOCHROME1") => (false, "MONOCHROME1"),
        (1, _) => (false, "MONOCHROME2"),
        (3, "YBR_FULL" | "YBR_FULL_422") => (true, "RGB"),
        (3, "RGB") => (false, "RGB"),
        (_, other) => {
            return Err(format!(
                "photometric interpretation {other:?} with {samples} samples in 12-bit JPEG"
            ));
        }
    };
    // Signed samples travel in JPEG as their two's complement bit pattern.
    let sign_bit = match (
        int(object, tags::PIXEL_REPRESENTATION),
        int(object, tags::BITS_STORED),
    ) {
        (Some(1), Some(bits @ 2..=15)) => Some(1_u16 << (bits - 1)),
        _ => None,
    };
    let per_frame = rows * columns * samples;
    let total_bytes = (per_frame as u64) * (frames as u64) * 2;
    if per_frame == 0 || total_bytes > max_bytes {
        return Err(format!(
            "{frames} frame(s) of {rows}x{columns}x{samples} samples: empty or larger than {max_bytes} bytes decoded"
        ));
    }
    let streams = frame_streams(object, frames)?;
    // Grown frame by frame: a false Number of Frames allocates nothing up front.
    let mut pixels: Vec<u16> = Vec::new();
    for (n, stream) in streams.iter().enumerate() {
        let mut image =
            jpeg12::decode(stream, per_frame).map_err(|e| format!("frame {}: {e}", n + 1))?;
        if (image.height, image.width, image.components) != (rows, columns, samples) {
            return Err(format!(
                "frame {}: the JPEG image is {}x{}x{} but the data set says {rows}x{columns}x{samples}",
                n + 1,
                image.height,
                image.width,
                image.components
            ));
        }
        if to_rgb {
            image.ycbcr_to_rgb();
        }
        match sign_bit {
            Some(bit) => pixels.extend(image.samples.iter().map(|s| sign_extend(*s, bit))),
            None => pixels.extend_from_slice(&image.samples),
        }
    }
    let put_us = |object: &mut InMemDicomObject, tag, value: u16| {
        object.put(DataElement::new(tag, VR::US, PrimitiveValue::from(value)));
    };
    object.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(pixels.into()),
    ));
    put_us(object, tags::BITS_ALLOCATED, 16);
    object.put(DataElement::new(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        PrimitiveValue::from(photometric),
    ));
    if samples > 1 {
        put_us(object, tags::PLANAR_CONFIGURATION, 0);
    }
    object.remove_element(tags::ENCAPSULATED_PIXEL_DATA_VALUE_TOTAL_LENGTH);
    Ok(())
}

/// `value` with the bits above `sign_bit` copies of it.
fn sign_extend(value: u16, sign_bit: u16) -> u16 {
    let low = value & (sign_bit | (sign_bit - 1));
    if low & sign_bit != 0 {
        low | !(sign_bit | (sign_bit - 1))
    } else {
        low
    }
}

/// The JPEG stream of each frame: all fragments for one frame, one fragment per
/// frame, or fragments grouped by the Basic Offset Table.
fn frame_streams(object: &InMemDicomObject, frames: usize) -> Result<Vec<Vec<u8>>, String> {
    let value: &Value<_, _> = object
        .get(tags::PIXEL_DATA)
        .map(|e| e.value())
        .ok_or("no Pixel Data")?;
    let fragments = value.fragments().ok_or("Pixel Data is not encapsulated")?;
    if frames == 1 {
        return Ok(vec![fragments.concat()]);
    }
    if fragments.len() == frames {
        return Ok(fragments.to_vec());
    }
    let offsets = value.offset_table().unwrap_or(&[]);
    if offsets.len() != frames || offsets.first() != Some(&0) {
        return Err(format!(
            "{frames} frames in {} fragments and no usable Basic Offset Table",
            fragments.len()
        ));
    }
    let mut streams: Vec<Vec<u8>> = Vec::with_capacity(frames);
    let mut at: u64 = 0;
    for fragment in fragments {
        if offsets.iter().any(|o| u64::from(*o) == at) {
            streams.push(Vec::new());
        }
        if let Some(last) = streams.last_mut() {
            last.extend_from_slice(fragment);
        }
        at += 8 + fragment.len() as u64;
    }
    if streams.len() != frames {
        return Err("the Basic Offset Table does not match the fragments".to_string());
    }
    Ok(streams)
}
