//! Pixel data as plain frames: native pixel data read as it is, encapsulated
//! (compressed) pixel data decoded with `dicom-pixeldata`; written back as native
//! little-endian pixel data; one frame turned into an 8-bit image for PNG and OCR.

use dicom_core::value::Value;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use dicom_pixeldata::PixelDecoder;

use super::PixelError;

/// JPEG Baseline and Extended: the decoder turns YCbCr into RGB.
const JPEG_LOSSY: [&str; 2] = ["1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"];

/// Frames of one instance (all, or the ones asked for), samples little-endian.
#[derive(Clone)]
pub struct Frames {
    /// Rows.
    pub rows: u32,
    /// Columns.
    pub columns: u32,
    /// Samples per pixel (1 or 3).
    pub samples: u16,
    /// Bits allocated (8 or 16).
    pub bits_allocated: u16,
    /// Pixel Representation 1: signed samples.
    pub signed: bool,
    /// Photometric Interpretation of `data`.
    pub photometric: String,
    /// Planar Configuration of `data` (0 interleaved, 1 one plane per sample).
    pub planar: u16,
    /// The frame numbers (0-based, in the instance) held in `data`, in order.
    pub numbers: Vec<u32>,
    /// The frames back to back.
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Frames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frames")
            .field("rows", &self.rows)
            .field("columns", &self.columns)
            .field("samples", &self.samples)
            .field("bits_allocated", &self.bits_allocated)
            .field("photometric", &self.photometric)
            .field("frames", &self.numbers.len())
            .finish_non_exhaustive()
    }
}

/// An 8-bit image: 1 (gray) or 3 (RGB) channels, rows top to bottom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// 1 or 3.
    pub channels: u8,
    /// width x height x channels bytes.
    pub pixels: Vec<u8>,
}

/// Number of frames the instance declares (1 when absent).
pub fn frame_count(object: &InMemDicomObject) -> u32 {
    object
        .get(tags::NUMBER_OF_FRAMES)
        .and_then(|e| e.to_int::<u32>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1)
}

/// Whether the instance has pixel data at all.
pub fn has_pixels(object: &InMemDicomObject) -> bool {
    object.get(tags::PIXEL_DATA).is_some()
}

impl Frames {
    /// Reads the frames `which` (all when `None`) of `file`.
    pub fn read(file: &DefaultDicomObject, which: Option<&[u32]>) -> Result<Frames, PixelError> {
        let object: &InMemDicomObject = file;
        let number = |tag: Tag, name: &str| {
            object
                .get(tag)
                .and_then(|e| e.to_int::<u32>().ok())
                .ok_or_else(|| PixelError::Unsupported(format!("no {name}")))
        };
        let rows = number(tags::ROWS, "Rows")?;
        let columns = number(tags::COLUMNS, "Columns")?;
        let samples =
            u16::try_from(number(tags::SAMPLES_PER_PIXEL, "Samples per Pixel").unwrap_or(1))
                .unwrap_or(0);
        let bits_allocated =
            u16::try_from(number(tags::BITS_ALLOCATED, "Bits Allocated")?).unwrap_or(0);
        let signed = number(tags::PIXEL_REPRESENTATION, "").unwrap_or(0) == 1;
        let planar = if samples > 1 {
            u16::try_from(number(tags::PLANAR_CONFIGURATION, "").unwrap_or(0)).unwrap_or(0)
        } else {
            0
        };
        let photometric = super::text(object, tags::PHOTOMETRIC_INTERPRETATION)
            .unwrap_or_else(|| "MONOCHROME2".into())
            .to_ascii_uppercase();
        if !matches!(samples, 1 | 3) || !matches!(bits_allocated, 8 | 16) {
            return Err(PixelError::Unsupported(format!(
                "{samples} samples per pixel of {bits_allocated} bits (8 or 16 bits, 1 or 3 samples are supported)"
            )));
        }
        if rows == 0 || columns == 0 {
            return Err(PixelError::Unsupported(
                "an image of zero rows or columns".into(),
            ));
        }
        let count = frame_count(object);
        let numbers: Vec<u32> = match which {
            None => (0..count).collect(),
            Some(list) => list.iter().copied().filter(|n| *n < count).collect(),
        };
        let mut frames = Frames {
            rows,
            columns,
            samples,
            bits_allocated,
            signed,
            photometric,
            planar,
            numbers,
            data: Vec::new(),
        };
        let element = object
            .get(tags::PIXEL_DATA)
            .ok_or_else(|| PixelError::Unsupported("no Pixel Data".into()))?;
        match element.value() {
            Value::PixelSequence(_) => frames.decode(file)?,
            Value::Primitive(value) => frames.take_native(value, count)?,
            Value::Sequence(_) => {
                return Err(PixelError::Unsupported("Pixel Data is a sequence".into()));
            }
        }
        Ok(frames)
    }

    /// Bytes per frame.
    pub fn frame_len(&self) -> usize {
        self.rows as usize
            * self.columns as usize
            * usize::from(self.samples)
            * usize::from(self.bits_allocated / 8)
    }

    fn take_native(&mut self, value: &PrimitiveValue, count: u32) -> Result<(), PixelError> {
        if self.photometric.ends_with("_422") || self.photometric.ends_with("_420") {
            return Err(PixelError::Unsupported(format!(
                "native {} pixel data (sub-sampled colour)",
                self.photometric
            )));
        }
        let bytes = little_endian(value)?;
        let len = self.frame_len();
        if bytes.len() < len * count as usize {
            return Err(PixelError::Unsupported(format!(
                "Pixel Data holds {} bytes, fewer than {count} frame(s) of {len}",
                bytes.len()
            )));
        }
        for n in &self.numbers {
            let start = *n as usize * len;
            self.data.extend_from_slice(&bytes[start..start + len]);
        }
        Ok(())
    }

    fn decode(&mut self, file: &DefaultDicomObject) -> Result<(), PixelError> {
        let ts = file
            .meta()
            .transfer_syntax()
            .trim_end_matches('\0')
            .to_string();
        let len = self.frame_len();
        let mut decoded_pi = None;
        for n in self.numbers.clone() {
            let decoded = file
                .decode_pixel_data_frame(n)
                .map_err(|e| PixelError::Decode(format!("transfer syntax {ts}: {e}")))?;
            let data = decoded.data();
            if data.len() < len {
                return Err(PixelError::Decode(format!(
                    "transfer syntax {ts}: frame {} decoded to {} bytes, expected {len}",
                    n + 1,
                    data.len()
                )));
            }
            self.data.extend_from_slice(&data[..len]);
            decoded_pi = Some(decoded.photometric_interpretation().as_str().to_string());
        }
        // Decoded frames are interleaved. JPEG Baseline/Extended decoding yields RGB;
        // lossless codecs (RLE, JPEG lossless) keep the colour space they were given.
        self.planar = 0;
        if self.samples == 3 && JPEG_LOSSY.contains(&ts.as_str()) {
            self.photometric = decoded_pi.unwrap_or_else(|| "RGB".into());
        } else if self.photometric.ends_with("_422") || self.photometric.ends_with("_420") {
            self.photometric = "YBR_FULL".into();
        }
        Ok(())
    }

    /// Replaces the pixel data of `object` with these frames as native pixel data
    /// (to be sent in Explicit VR Little Endian), with the matching Photometric
    /// Interpretation and Planar Configuration. Needs every frame.
    pub fn write_native(&self, object: &mut InMemDicomObject) {
        let value = if self.bits_allocated == 8 {
            DataElement::new(
                tags::PIXEL_DATA,
                VR::OB,
                PrimitiveValue::from(self.data.clone()),
            )
        } else {
            let words: Vec<u16> = self
                .data
                .chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
                .collect();
            DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(words.into()))
        };
        object.put(value);
        object.put(DataElement::new(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            PrimitiveValue::from(self.photometric.as_str()),
        ));
        if self.samples > 1 {
            object.put(DataElement::new(
                tags::PLANAR_CONFIGURATION,
                VR::US,
                PrimitiveValue::from(self.planar),
            ));
        }
        object.remove_element(tags::EXTENDED_OFFSET_TABLE);
        object.remove_element(tags::EXTENDED_OFFSET_TABLE_LENGTHS);
    }

    /// The `index`-th frame held (not the instance's frame number) as an 8-bit image:
    /// 16-bit samples scaled from their minimum to their maximum, YBR turned into RGB.
    pub fn image(&self, index: usize) -> Option<Image> {
        let len = self.frame_len();
        let frame = self.data.get(index * len..(index + 1) * len)?;
        let pixels = self.rows as usize * self.columns as usize;
        let samples = usize::from(self.samples);
        let values: Vec<u8> = if self.bits_allocated == 8 {
            frame.to_vec()
        } else {
            scale_to_8_bits(frame, self.signed)
        };
        let mut out = vec![0u8; pixels * samples];
        for p in 0..pixels {
            for s in 0..samples {
                let at = if self.planar == 1 {
                    s * pixels + p
                } else {
                    p * samples + s
                };
                out[p * samples + s] = values[at];
            }
        }
        if samples == 3 && self.photometric.starts_with("YBR") {
            for px in out.chunks_exact_mut(3) {
                let rgb = ybr_to_rgb(px[0], px[1], px[2]);
                px.copy_from_slice(&rgb);
            }
        }
        Some(Image {
            width: self.columns,
            height: self.rows,
            channels: self.samples as u8,
            pixels: out,
        })
    }
}

/// The samples of a primitive value as little-endian bytes.
fn little_endian(value: &PrimitiveValue) -> Result<Vec<u8>, PixelError> {
    Ok(match value {
        PrimitiveValue::U8(v) => v.to_vec(),
        PrimitiveValue::U16(v) => v.iter().flat_map(|w| w.to_le_bytes()).collect(),
        PrimitiveValue::I16(v) => v.iter().flat_map(|w| w.to_le_bytes()).collect(),
        _ => {
            return Err(PixelError::Unsupported(
                "Pixel Data of an unexpected value type".into(),
            ));
        }
    })
}

fn scale_to_8_bits(frame: &[u8], signed: bool) -> Vec<u8> {
    let words: Vec<i32> = frame
        .chunks_exact(2)
        .map(|b| {
            if signed {
                i32::from(i16::from_le_bytes([b[0], b[1]]))
            } else {
                i32::from(u16::from_le_bytes([b[0], b[1]]))
            }
        })
        .collect();
    let (min, max) = words
        .iter()
        .fold((i32::MAX, i32::MIN), |(lo, hi), &w| (lo.min(w), hi.max(w)));
    let span = (max - min).max(1) as i64;
    words
        .iter()
        .map(|&w| ((i64::from(w - min) * 255) / span) as u8)
        .collect()
}

fn ybr_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    let (y, cb, cr) = (f32::from(y), f32::from(cb) - 128.0, f32::from(cr) - 128.0);
    let clamp = |v: f32| v.round().clamp(0.0, 255.0) as u8;
    [
        clamp(y + 1.402 * cr),
        clamp(y - 0.344_136 * cb - 0.714_136 * cr),
        clamp(y + 1.772 * cb),
    ]
}
