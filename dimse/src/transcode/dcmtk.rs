//! Test helpers: 12-bit images as DICOM files, compressed and decompressed by
//! DCMTK's `dcmcjpeg` and `dcmdjpeg` (Debian package `dcmtk`), so the JPEG decoder
//! is checked against libjpeg as DCMTK builds it. Tests skip, saying so, when DCMTK
//! is not installed.

use std::path::Path;
use std::process::Command;

use dicom_core::value::PixelFragmentSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

/// Whether `dcmcjpeg` and `dcmdjpeg` run; prints why a test is skipped otherwise.
pub(super) fn available(test: &str) -> bool {
    let ok = ["dcmcjpeg", "dcmdjpeg"].iter().all(|tool| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !ok {
        eprintln!(
            "SKIPPED {test}: DCMTK (dcmcjpeg, dcmdjpeg) is not installed; apt-get install dcmtk"
        );
    }
    ok
}

/// A test image: `frames` frames of `rows x columns`, 1 sample (MONOCHROME2) or 3
/// (RGB), 12 bits stored in 16: smooth ramps, a sharp-edged disc and texture, using
/// the whole 0..4095 range.
pub(super) fn pixels(rows: usize, columns: usize, samples: usize, frames: usize) -> Vec<u16> {
    let mut out = Vec::with_capacity(rows * columns * samples * frames);
    for f in 0..frames {
        for y in 0..rows {
            for x in 0..columns {
                for s in 0..samples {
                    let ramp = (x * 4095 / columns.max(2) + y * 1000 / rows.max(2)) % 4096;
                    let (dx, dy) = (x as i64 - columns as i64 / 2, y as i64 - rows as i64 / 3);
                    let disc = dx * dx + dy * dy < (rows.min(columns) as i64 / 4).pow(2);
                    let texture = (x * 7 + y * 13 + s * 101 + f * 577) % 97;
                    let value = if disc {
                        3900 - ramp / 8
                    } else {
                        ramp / 2 + texture * 4
                    };
                    out.push(((value + s * 600 + f * 150) % 4096) as u16);
                }
            }
        }
    }
    out
}

fn base_object(rows: usize, columns: usize, samples: usize, frames: usize) -> InMemDicomObject {
    let mut obj = InMemDicomObject::new_empty();
    let mut put =
        |tag: Tag, vr: VR, value: PrimitiveValue| obj.put(DataElement::new(tag, vr, value));
    put(
        tags::SOP_CLASS_UID,
        VR::UI,
        "1.2.840.10008.5.1.4.1.1.7".into(),
    );
    put(tags::SOP_INSTANCE_UID, VR::UI, "2.25.4242".into());
    put(tags::MODALITY, VR::CS, "OT".into());
    put(
        tags::SAMPLES_PER_PIXEL,
        VR::US,
        PrimitiveValue::from(samples as u16),
    );
    let photometric = if samples == 1 { "MONOCHROME2" } else { "RGB" };
    put(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, photometric.into());
    if samples > 1 {
        put(
            tags::PLANAR_CONFIGURATION,
            VR::US,
            PrimitiveValue::from(0_u16),
        );
    }
    if frames > 1 {
        put(tags::NUMBER_OF_FRAMES, VR::IS, frames.to_string().into());
    }
    put(tags::ROWS, VR::US, PrimitiveValue::from(rows as u16));
    put(tags::COLUMNS, VR::US, PrimitiveValue::from(columns as u16));
    put(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16_u16));
    put(tags::BITS_STORED, VR::US, PrimitiveValue::from(12_u16));
    put(tags::HIGH_BIT, VR::US, PrimitiveValue::from(11_u16));
    put(
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(0_u16),
    );
    obj
}

fn write(obj: InMemDicomObject, ts: &str, path: &Path) {
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(ts)
        .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
        .media_storage_sop_instance_uid("2.25.4242");
    obj.with_meta(meta).unwrap().write_to_file(path).unwrap();
}

/// Writes the native image `pixels` to `path` (Explicit VR Little Endian).
pub(super) fn write_native(path: &Path, pixels: &[u16], dims: (usize, usize, usize, usize)) {
    let (rows, columns, samples, frames) = dims;
    let mut obj = base_object(rows, columns, samples, frames);
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(pixels.to_vec().into()),
    ));
    write(obj, "1.2.840.10008.1.2.1", path);
}

/// Writes the native 8-bit image `pixels` (0..=255) to `path`.
pub(super) fn write_native_8(path: &Path, pixels: &[u16], dims: (usize, usize, usize, usize)) {
    let (rows, columns, samples, frames) = dims;
    let mut obj = base_object(rows, columns, samples, frames);
    for (tag, value) in [
        (tags::BITS_ALLOCATED, 8_u16),
        (tags::BITS_STORED, 8),
        (tags::HIGH_BIT, 7),
    ] {
        obj.put(DataElement::new(tag, VR::US, PrimitiveValue::from(value)));
    }
    let bytes: Vec<u8> = pixels.iter().map(|p| *p as u8).collect();
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::from(bytes),
    ));
    write(obj, "1.2.840.10008.1.2.1", path);
}

/// Writes one JPEG stream per frame as a JPEG Extended file at `path`.
pub(super) fn write_jpeg(path: &Path, streams: &[Vec<u8>], dims: (usize, usize, usize, usize)) {
    let (rows, columns, samples, frames) = dims;
    let mut obj = base_object(rows, columns, samples, frames);
    let fragments: Vec<Vec<u8>> = streams
        .iter()
        .map(|s| {
            let mut s = s.clone();
            if s.len() % 2 == 1 {
                s.push(0);
            }
            s
        })
        .collect();
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PixelFragmentSequence::new_fragments(fragments),
    ));
    write(obj, "1.2.840.10008.1.2.4.51", path);
}

/// Runs a DCMTK tool with `args` then `input output`; panics with its output on
/// failure.
pub(super) fn run(tool: &str, args: &[&str], input: &Path, output: &Path) {
    let out = Command::new(tool)
        .args(args)
        .arg(input)
        .arg(output)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The data set (no meta) and transfer syntax of the DICOM file at `path`.
pub(super) fn open(path: &Path) -> (InMemDicomObject, String) {
    let file = dicom_object::open_file(path).unwrap();
    let ts = file
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_string();
    (file.into_inner(), ts)
}

/// The native 16-bit samples of `obj`.
pub(super) fn native_pixels(obj: &InMemDicomObject) -> Vec<u16> {
    let bytes = obj.get(tags::PIXEL_DATA).unwrap().to_bytes().unwrap();
    bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect()
}

/// The fragments of encapsulated pixel data.
pub(super) fn fragments(obj: &InMemDicomObject) -> Vec<Vec<u8>> {
    obj.get(tags::PIXEL_DATA)
        .unwrap()
        .value()
        .fragments()
        .unwrap()
        .to_vec()
}

/// The largest absolute difference between two sample vectors of equal length.
pub(super) fn max_difference(a: &[u16], b: &[u16]) -> u16 {
    assert_eq!(a.len(), b.len(), "sample counts differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}

/// Checks our samples against DCMTK's: within 1 everywhere (the brief's bound for
/// two islow IDCTs) and equal in at least 99% of samples (the same IDCT and
/// upsampling as libjpeg's; a different rounding shows up as many +-1s). Prints
/// and returns the largest difference.
pub(super) fn assert_like_dcmtk(ours: &[u16], reference: &[u16], what: &str) -> u16 {
    let max = max_difference(ours, reference);
    let differing = ours.iter().zip(reference).filter(|(a, b)| a != b).count();
    println!(
        "{what}: max difference from dcmdjpeg {max}, {differing} of {} samples differ",
        ours.len()
    );
    assert!(max <= 1, "{what}: max difference {max}");
    assert!(
        differing * 100 <= ours.len(),
        "{what}: {differing} of {} samples differ",
        ours.len()
    );
    max
}
