//! One frame of a stored instance decoded to sample values: the data set read from
//! the Part-10 bytes (`dimse::transcode::read_for_pixels`, which also decodes 12-bit
//! JPEG), the geometry checked against limits before anything is allocated for it,
//! encapsulated frames decoded by `dicom-pixeldata` (JPEG, JPEG-LS, JPEG 2000, RLE)
//! and native frames cut from the Pixel Data (1, 8, 16 or 32 bits allocated, planar
//! configuration 0 or 1, YBR_FULL_422 subsampling). Colour ends as 8-bit RGB here
//! ([`super::lut::ybr_to_rgb`]); grayscale and palette indices stay stored values,
//! masked to Bits Stored and sign-extended, for [`super::lut`].

use std::borrow::Cow;

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::{FileDicomObject, InMemDicomObject};
use dicom_pixeldata::PixelDecoder;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use super::RenderError;

/// A stored instance read for rendering.
pub type Object = FileDicomObject<InMemDicomObject>;

/// Most samples in one frame (rows x columns x samples per pixel): 8192 x 8192 x 1.
pub const MAX_FRAME_SAMPLES: u64 = 1 << 26;
/// Most frames an instance may declare.
pub const MAX_FRAMES: u32 = 1 << 16;
/// Most bytes a whole-instance decode may produce (12-bit JPEG is decoded whole).
pub const MAX_DECODED_BYTES: u64 = 1 << 30;

const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";

/// Reads the Part-10 bytes of a stored instance.
pub fn open(part10: &[u8]) -> Result<Object, RenderError> {
    let meta = dimse::part10::parse_meta(part10)
        .map_err(|e| RenderError::Corrupt(format!("Part-10 meta header: {e}")))?;
    let data = part10
        .get(meta.dataset_offset..)
        .ok_or_else(|| RenderError::Corrupt("the data set is missing".into()))?;
    let ts = meta.transfer_syntax.trim_end_matches(['\0', ' ']);
    if !dimse::transcode::can_decode(ts) {
        return Err(RenderError::Unsupported(format!(
            "no decoder here for transfer syntax {ts}"
        )));
    }
    dimse::transcode::read_for_pixels(data, ts, MAX_DECODED_BYTES).map_err(|e| match e {
        dimse::transcode::TranscodeError::Unsupported { why, .. } => RenderError::Unsupported(why),
        dimse::transcode::TranscodeError::Failed { why, .. } => RenderError::Corrupt(why),
    })
}

/// The Image Pixel module of an instance, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geometry {
    /// Rows.
    pub rows: u32,
    /// Columns.
    pub columns: u32,
    /// Samples per Pixel (1 or 3).
    pub samples: u32,
    /// Bits Allocated (1, 8, 16 or 32).
    pub bits_allocated: u32,
    /// Bits Stored.
    pub bits_stored: u32,
    /// Pixel Representation is 1.
    pub signed: bool,
    /// Number of Frames (1 when absent).
    pub frames: u32,
    /// Photometric Interpretation as stored.
    pub photometric: String,
    /// Planar Configuration (native colour only).
    pub planar: u32,
}

pub(super) fn int(object: &InMemDicomObject, tag: Tag) -> Option<i64> {
    object.get(tag).and_then(|e| e.to_int::<i64>().ok())
}

pub(super) fn text(object: &InMemDicomObject, tag: Tag) -> Option<String> {
    object
        .get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_matches(['\0', ' ']).to_string())
}

/// Reads and checks the pixel geometry: every value present and sane, one frame at
/// most [`MAX_FRAME_SAMPLES`], at most [`MAX_FRAMES`] frames.
pub fn geometry(object: &InMemDicomObject) -> Result<Geometry, RenderError> {
    let need = |tag, name: &str| {
        int(object, tag).ok_or_else(|| RenderError::Corrupt(format!("no valid {name}")))
    };
    let rows = need(tags::ROWS, "Rows")?;
    let columns = need(tags::COLUMNS, "Columns")?;
    let samples = need(tags::SAMPLES_PER_PIXEL, "Samples per Pixel")?;
    let bits_allocated = need(tags::BITS_ALLOCATED, "Bits Allocated")?;
    let bits_stored = int(object, tags::BITS_STORED).unwrap_or(bits_allocated);
    let frames = int(object, tags::NUMBER_OF_FRAMES).unwrap_or(1);
    let corrupt = |m: String| Err(RenderError::Corrupt(m));
    if rows < 1 || columns < 1 || rows > 65535 || columns > 65535 {
        return corrupt(format!("{rows} x {columns} pixels"));
    }
    if samples != 1 && samples != 3 {
        return Err(RenderError::Unsupported(format!(
            "{samples} samples per pixel (1 or 3 only)"
        )));
    }
    if ![1, 8, 16, 32].contains(&bits_allocated) {
        return Err(RenderError::Unsupported(format!(
            "{bits_allocated} bits allocated"
        )));
    }
    if bits_stored < 1 || bits_stored > bits_allocated {
        return corrupt(format!(
            "{bits_stored} bits stored in {bits_allocated} allocated"
        ));
    }
    if frames < 1 || frames > i64::from(MAX_FRAMES) {
        return Err(RenderError::TooLarge(format!(
            "{frames} frames (1 to {MAX_FRAMES} accepted)"
        )));
    }
    let frame_samples = (rows * columns * samples) as u64;
    if frame_samples > MAX_FRAME_SAMPLES {
        return Err(RenderError::TooLarge(format!(
            "a frame of {rows} x {columns} x {samples} samples (at most {MAX_FRAME_SAMPLES})"
        )));
    }
    Ok(Geometry {
        rows: rows as u32,
        columns: columns as u32,
        samples: samples as u32,
        bits_allocated: bits_allocated as u32,
        bits_stored: bits_stored as u32,
        signed: int(object, tags::PIXEL_REPRESENTATION) == Some(1),
        frames: frames as u32,
        photometric: text(object, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default(),
        planar: int(object, tags::PLANAR_CONFIGURATION).unwrap_or(0) as u32,
    })
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// The frame chosen, 0-based.
    pub frame: u32,
    /// The samples.
    pub pixels: Pixels,
}

/// A frame's samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pixels {
    /// MONOCHROME1/2 stored values (masked to Bits Stored, sign-extended).
    Gray {
        /// One value per pixel, row by row.
        values: Vec<i32>,
        /// Bits Stored.
        bits_stored: u32,
        /// Pixel Representation is 1.
        signed: bool,
        /// MONOCHROME1: low values are white.
        inverted: bool,
    },
    /// PALETTE COLOR indices.
    Palette(Vec<i32>),
    /// Interleaved 8-bit RGB.
    Rgb(Vec<u8>),
}

/// The 0-based frame to render: `asked` (1-based) or the middle one.
pub fn pick_frame(asked: Option<u32>, frames: u32) -> Result<u32, RenderError> {
    match asked {
        None => Ok(frames / 2),
        Some(n) if n >= 1 && n <= frames => Ok(n - 1),
        Some(asked) => Err(RenderError::NoSuchFrame { asked, frames }),
    }
}

/// Decodes frame `asked` (1-based; `None`: the middle frame) of `object`.
pub fn decode(object: &Object, asked: Option<u32>) -> Result<Decoded, RenderError> {
    let element = object
        .get(tags::PIXEL_DATA)
        .ok_or(RenderError::NoPixelData)?;
    let g = geometry(object)?;
    let index = pick_frame(asked, g.frames)?;
    let ts = object
        .meta()
        .transfer_syntax()
        .trim_end_matches(['\0', ' ']);
    let encapsulated = TransferSyntaxRegistry
        .get(ts)
        .is_some_and(|t| t.is_encapsulated_pixel_data());
    let photometric = g.photometric.as_str();
    let subsampled = photometric == "YBR_FULL_422" && !encapsulated;
    if subsampled && (g.columns % 2 != 0 || g.samples != 3) {
        return Err(RenderError::Corrupt(format!(
            "YBR_FULL_422 with {} columns and {} samples (an even width and 3 needed)",
            g.columns, g.samples
        )));
    }
    let (bytes, planar): (Cow<'_, [u8]>, u32) = if encapsulated {
        let Some(fragments) = element.value().fragments() else {
            return Err(RenderError::Corrupt(
                "the transfer syntax is encapsulated but the Pixel Data is not".into(),
            ));
        };
        if ts == RLE_LOSSLESS {
            // One fragment per frame (PS3.5 A.4.2).
            let fragment = match (g.frames, fragments) {
                (1, all) => Cow::Owned(all.concat()),
                (frames, all) if all.len() == frames as usize => {
                    Cow::Borrowed(all[index as usize].as_slice())
                }
                (frames, all) => {
                    return Err(RenderError::Corrupt(format!(
                        "RLE: {frames} frames in {} fragments",
                        all.len()
                    )));
                }
            };
            let pixels = (g.rows * g.columns) as usize;
            let width = (g.bits_allocated / 8).max(1) as usize;
            let decoded = super::rle::decode(&fragment, pixels, g.samples as usize, width)
                .map_err(|why| RenderError::Corrupt(format!("frame {}: {why}", index + 1)))?;
            (Cow::Owned(decoded), 0)
        } else {
            // The codecs behind dicom-pixeldata are third-party code, some of which
            // panics on malformed streams (dicom-transfer-syntax-registry 0.10's RLE
            // reader indexes past a short segment): such a panic is a corrupt frame.
            let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                object.decode_pixel_data_frame(index).map(|d| d.into_data())
            }))
            .map_err(|_| RenderError::Corrupt(format!("frame {}: the decoder failed", index + 1)))?
            .map_err(|e| RenderError::Corrupt(format!("frame {}: {e}", index + 1)))?;
            (Cow::Owned(decoded), 0)
        }
    } else {
        let all = element
            .to_bytes()
            .map_err(|_| RenderError::Corrupt("Pixel Data is not a byte value".into()))?;
        let frame = native_frame(all, &g, index, subsampled)?;
        (frame, g.planar)
    };
    let pixels_per_frame = (g.rows * g.columns) as usize;
    let samples = if subsampled {
        2 * pixels_per_frame
    } else {
        pixels_per_frame * g.samples as usize
    };
    let values = unpack(&bytes, &g, samples)?;
    let pixels = match (g.samples, photometric) {
        (1, "MONOCHROME1" | "MONOCHROME2") => Pixels::Gray {
            values,
            bits_stored: g.bits_stored,
            signed: g.signed,
            inverted: photometric == "MONOCHROME1",
        },
        (1, "PALETTE COLOR") => Pixels::Palette(values),
        (1, other) => {
            return Err(RenderError::Unsupported(format!(
                "photometric interpretation {other:?} with 1 sample"
            )));
        }
        _ => {
            let planar = planar == 1 && !encapsulated;
            let ybr = match photometric {
                "YBR_FULL" | "YBR_FULL_422" => !encapsulated || ts == RLE_LOSSLESS,
                // Decoders of JPEG, JPEG-LS and JPEG 2000 return RGB.
                "RGB" | "YBR_ICT" | "YBR_RCT" | "YBR_PARTIAL_420" | "YBR_PARTIAL_422" => false,
                other if encapsulated => {
                    return Err(RenderError::Unsupported(format!(
                        "photometric interpretation {other:?} with 3 samples"
                    )));
                }
                other => {
                    return Err(RenderError::Unsupported(format!(
                        "native photometric interpretation {other:?} with 3 samples"
                    )));
                }
            };
            let shift = g.bits_stored.saturating_sub(8);
            let to8 = |v: i32| (v.max(0) >> shift).min(255) as u8;
            let rgb = super::lut::colour(&values, pixels_per_frame, planar, subsampled, ybr, to8);
            Pixels::Rgb(rgb)
        }
    };
    Ok(Decoded {
        width: g.columns,
        height: g.rows,
        frame: index,
        pixels,
    })
}

/// Frame `index` of native Pixel Data `all`.
fn native_frame<'a>(
    all: Cow<'a, [u8]>,
    g: &Geometry,
    index: u32,
    subsampled: bool,
) -> Result<Cow<'a, [u8]>, RenderError> {
    let pixels = u64::from(g.rows) * u64::from(g.columns);
    let samples = if subsampled {
        2 * pixels
    } else {
        pixels * u64::from(g.samples)
    };
    let (start, len) = if g.bits_allocated == 1 {
        // Frames of 1-bit pixels follow each other bit by bit: take whole bytes
        // around the frame and shift them into place.
        let first_bit = samples * u64::from(index);
        let (start, end) = (first_bit / 8, (first_bit + samples).div_ceil(8));
        let bytes = all.get(start as usize..end as usize).ok_or_else(|| {
            RenderError::Corrupt(format!(
                "Pixel Data is {} bytes, too short for frame {}",
                all.len(),
                index + 1
            ))
        })?;
        let shift = (first_bit % 8) as u32;
        let out: Vec<u8> = (0..samples)
            .map(|i| {
                let bit = i + u64::from(shift);
                (bytes[(bit / 8) as usize] >> (bit % 8)) & 1
            })
            .collect();
        return Ok(Cow::Owned(out));
    } else {
        let len = samples * u64::from(g.bits_allocated / 8);
        (len * u64::from(index), len)
    };
    let end = start + len;
    if (all.len() as u64) < end {
        return Err(RenderError::Corrupt(format!(
            "Pixel Data is {} bytes, too short for frame {} of {} ({} bytes needed)",
            all.len(),
            index + 1,
            g.frames,
            end
        )));
    }
    Ok(match all {
        Cow::Borrowed(b) => Cow::Borrowed(&b[start as usize..end as usize]),
        Cow::Owned(b) => Cow::Owned(b[start as usize..end as usize].to_vec()),
    })
}

/// `count` samples of `bytes` (little endian; 1-bit frames already one per byte),
/// masked to Bits Stored and sign-extended.
fn unpack(bytes: &[u8], g: &Geometry, count: usize) -> Result<Vec<i32>, RenderError> {
    let width = match g.bits_allocated {
        1 | 8 => 1,
        16 => 2,
        _ => 4,
    };
    if bytes.len() < count * width {
        return Err(RenderError::Corrupt(format!(
            "the decoded frame is {} bytes, {} expected",
            bytes.len(),
            count * width
        )));
    }
    let bits = g.bits_stored.min(32);
    let mask: u32 = if bits >= 32 {
        u32::MAX
    } else {
        (1u32 << bits) - 1
    };
    let sign = if g.signed && bits < 32 {
        1u32 << (bits - 1)
    } else {
        0
    };
    let fix = |raw: u32| -> i32 {
        let v = raw & mask;
        if sign != 0 && v & sign != 0 {
            (v | !mask) as i32
        } else if bits >= 32 && !g.signed {
            v.min(i32::MAX as u32) as i32
        } else {
            v as i32
        }
    };
    let bytes = &bytes[..count * width];
    Ok(match width {
        1 => bytes.iter().map(|b| fix(u32::from(*b))).collect(),
        2 => bytes
            .chunks_exact(2)
            .map(|c| fix(u32::from(u16::from_le_bytes([c[0], c[1]]))))
            .collect(),
        _ => bytes
            .chunks_exact(4)
            .map(|c| fix(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
    })
}
