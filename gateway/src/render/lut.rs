//! Stored values to display values (PS3.4 N.2 grayscale pipeline, PS3.3 C.7.6.3
//! colour): Modality LUT (Rescale Slope/Intercept or the Modality LUT Sequence), VOI
//! (a caller's window, else the data set's first Window Center/Width with its VOI
//! LUT Function, else its VOI LUT Sequence, else the frame's own range), MONOCHROME1
//! inversion; PALETTE COLOR lookup; YBR_FULL to RGB. Enhanced multi-frame instances
//! are read through their functional groups (per-frame first, then shared).
//!
//! For up to 16 bits stored, the whole pipeline is computed once per possible stored
//! value into a table, so a frame costs one lookup per pixel.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use image::{DynamicImage, GrayImage, RgbImage};

use super::frame::{Decoded, Pixels, int};
use super::{RenderError, VoiFunction, Window};

/// Display values of a decoded frame of `object`, `window` replacing the data set's VOI.
pub fn display(
    object: &InMemDicomObject,
    decoded: &Decoded,
    window: Option<&Window>,
) -> Result<DynamicImage, RenderError> {
    let (w, h) = (decoded.width, decoded.height);
    let wrong = || RenderError::Corrupt("the decoded frame does not match its size".into());
    match &decoded.pixels {
        Pixels::Rgb(rgb) => RgbImage::from_raw(w, h, rgb.clone())
            .map(DynamicImage::ImageRgb8)
            .ok_or_else(wrong),
        Pixels::Palette(indices) => RgbImage::from_raw(w, h, palette(object, indices)?)
            .map(DynamicImage::ImageRgb8)
            .ok_or_else(wrong),
        Pixels::Gray {
            values,
            bits_stored,
            signed,
            inverted,
        } => {
            let frame = functional_groups(object, decoded.frame);
            let gray = gray(&frame, values, *bits_stored, *signed, *inverted, window)?;
            GrayImage::from_raw(w, h, gray)
                .map(DynamicImage::ImageLuma8)
                .ok_or_else(wrong)
        }
    }
}

/// Where the pixel value transformation and VOI of a frame are: the top level, or
/// for enhanced multi-frame instances the per-frame and shared functional groups.
struct FrameAttributes<'a> {
    places: Vec<&'a InMemDicomObject>,
}

impl FrameAttributes<'_> {
    fn get(&self, tag: Tag) -> Option<&dicom_object::mem::InMemElement> {
        self.places.iter().find_map(|o| o.get(tag))
    }
    fn float(&self, tag: Tag) -> Option<f64> {
        let element = self.get(tag)?;
        let values = element.to_multi_float64().ok()?;
        values.first().copied().filter(|v| v.is_finite())
    }
    fn item(&self, tag: Tag) -> Option<&InMemDicomObject> {
        self.get(tag)?.items()?.first()
    }
}

fn functional_groups(object: &InMemDicomObject, frame: u32) -> FrameAttributes<'_> {
    let mut places = Vec::new();
    let macros = [
        tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE,
        tags::FRAME_VOILUT_SEQUENCE,
    ];
    let per_frame = object
        .get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .and_then(|e| e.items())
        .and_then(|items| items.get(frame as usize));
    let shared = object
        .get(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE)
        .and_then(|e| e.items())
        .and_then(|items| items.first());
    for group in [per_frame, shared].into_iter().flatten() {
        for tag in macros {
            if let Some(item) = group
                .get(tag)
                .and_then(|e| e.items())
                .and_then(|i| i.first())
            {
                places.push(item);
            }
        }
    }
    places.push(object);
    FrameAttributes { places }
}

/// A lookup table (LUT Descriptor + LUT Data).
#[derive(Debug, Clone)]
struct Lut {
    first: i64,
    data: Vec<u16>,
    bits: u32,
}

impl Lut {
    fn read(
        object: &InMemDicomObject,
        descriptor: Tag,
        data: Tag,
        signed: bool,
    ) -> Result<Option<Lut>, RenderError> {
        let Some(desc) = object.get(descriptor) else {
            return Ok(None);
        };
        let bad = |why: &str| RenderError::Corrupt(format!("LUT {descriptor}: {why}"));
        let desc = desc
            .to_multi_int::<i64>()
            .map_err(|_| bad("unreadable descriptor"))?;
        let [entries, first, bits] = desc[..] else {
            return Err(bad("the descriptor needs 3 values"));
        };
        let entries = if entries == 0 { 65536 } else { entries };
        let first = if signed && first > 32767 {
            first - 65536
        } else {
            first
        };
        let Some(values) = object.get(data) else {
            return Err(RenderError::Unsupported(format!(
                "LUT {descriptor} without LUT Data (segmented LUTs are not rendered)"
            )));
        };
        let mut values: Vec<u16> = match values.to_multi_int::<u16>() {
            Ok(v) => v,
            Err(_) => values
                .to_bytes()
                .map_err(|_| bad("unreadable data"))?
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect(),
        };
        // 8-bit entries may come packed two to a 16-bit word.
        if bits <= 8 && values.len() * 2 == entries as usize {
            values = values
                .iter()
                .flat_map(|w| [w & 0xff, w >> 8])
                .collect::<Vec<u16>>();
        }
        if values.is_empty() || !(1..=16).contains(&bits) {
            return Err(bad("empty data or bits outside 1..16"));
        }
        Ok(Some(Lut {
            first,
            data: values,
            bits: bits as u32,
        }))
    }

    fn get(&self, x: f64) -> f64 {
        let last = self.data.len() as i64 - 1;
        let i = (x.round() as i64 - self.first).clamp(0, last);
        f64::from(self.data[i as usize])
    }

    fn max(&self) -> f64 {
        f64::from((1u32 << self.bits) - 1)
    }
}

/// The modality transform: a LUT, or Rescale Slope/Intercept (default 1 and 0).
enum Modality {
    Lut(Lut),
    Rescale { slope: f64, intercept: f64 },
}

impl Modality {
    fn apply(&self, stored: i32) -> f64 {
        match self {
            Modality::Lut(lut) => lut.get(f64::from(stored)),
            Modality::Rescale { slope, intercept } => f64::from(stored) * slope + intercept,
        }
    }
}

/// The VOI transform to 0..=255.
enum Voi {
    Window(Window),
    Lut(Lut),
}

impl Voi {
    fn apply(&self, x: f64) -> f64 {
        match self {
            Voi::Window(w) => window(x, w.center, w.width, w.function),
            Voi::Lut(lut) => lut.get(x) * 255.0 / lut.max(),
        }
    }
}

/// PS3.3 C.11.2.1.2: a value through a window, to 0..=255.
pub fn window(x: f64, center: f64, width: f64, function: VoiFunction) -> f64 {
    const MAX: f64 = 255.0;
    match function {
        VoiFunction::Linear => {
            let width = width.max(1.0);
            let (low, high) = (
                center - 0.5 - (width - 1.0) / 2.0,
                center - 0.5 + (width - 1.0) / 2.0,
            );
            if x <= low {
                0.0
            } else if x > high {
                MAX
            } else {
                ((x - (center - 0.5)) / (width - 1.0) + 0.5) * MAX
            }
        }
        VoiFunction::LinearExact => {
            let width = width.max(f64::MIN_POSITIVE);
            if x <= center - width / 2.0 {
                0.0
            } else if x > center + width / 2.0 {
                MAX
            } else {
                ((x - center) / width + 0.5) * MAX
            }
        }
        VoiFunction::Sigmoid => {
            let width = width.max(f64::MIN_POSITIVE);
            MAX / (1.0 + (-4.0 * (x - center) / width).exp())
        }
    }
}

fn gray(
    frame: &FrameAttributes<'_>,
    values: &[i32],
    bits_stored: u32,
    signed: bool,
    inverted: bool,
    asked: Option<&Window>,
) -> Result<Vec<u8>, RenderError> {
    let modality_lut = match frame.item(tags::MODALITY_LUT_SEQUENCE) {
        Some(item) => Lut::read(item, tags::LUT_DESCRIPTOR, tags::LUT_DATA, signed)?,
        None => None,
    };
    let modality = match modality_lut {
        Some(lut) => Modality::Lut(lut),
        None => Modality::Rescale {
            slope: frame.float(tags::RESCALE_SLOPE).unwrap_or(1.0),
            intercept: frame.float(tags::RESCALE_INTERCEPT).unwrap_or(0.0),
        },
    };
    let (min, max) = values
        .iter()
        .fold((i32::MAX, i32::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    if values.is_empty() {
        return Ok(Vec::new());
    }
    let voi = match asked.copied().or_else(|| stored_window(frame)) {
        Some(w) => Voi::Window(w),
        None => match frame.item(tags::VOILUT_SEQUENCE) {
            Some(item) => match Lut::read(item, tags::LUT_DESCRIPTOR, tags::LUT_DATA, false)? {
                Some(lut) => Voi::Lut(lut),
                None => Voi::Window(range_window(&modality, min, max)),
            },
            None => Voi::Window(range_window(&modality, min, max)),
        },
    };
    let pipeline = |v: i32| -> u8 {
        let y = voi.apply(modality.apply(v)).round().clamp(0.0, 255.0) as u8;
        if inverted { 255 - y } else { y }
    };
    if bits_stored <= 16 {
        // One evaluation per stored value in the frame's range, then a lookup.
        let table: Vec<u8> = (min..=max).map(pipeline).collect();
        Ok(values.iter().map(|v| table[(v - min) as usize]).collect())
    } else {
        Ok(values.iter().map(|v| pipeline(*v)).collect())
    }
}

/// The data set's first Window Center/Width, with its VOI LUT Function.
fn stored_window(frame: &FrameAttributes<'_>) -> Option<Window> {
    let center = frame.float(tags::WINDOW_CENTER)?;
    let width = frame.float(tags::WINDOW_WIDTH).filter(|w| *w > 0.0)?;
    let function = frame
        .get(tags::VOILUT_FUNCTION)
        .and_then(|e| e.to_str().ok())
        .and_then(|f| VoiFunction::parse(&f))
        .unwrap_or_default();
    Some(Window {
        center,
        width,
        function,
    })
}

/// A window spanning the frame's values after the modality transform.
fn range_window(modality: &Modality, min: i32, max: i32) -> Window {
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    let mut note = |v: f64| {
        lo = lo.min(v);
        hi = hi.max(v);
    };
    match modality {
        // Linear: the ends are the extremes.
        Modality::Rescale { .. } => {
            note(modality.apply(min));
            note(modality.apply(max));
        }
        Modality::Lut(_) => (min..=max).for_each(|v| note(modality.apply(v))),
    }
    Window {
        center: (lo + hi) / 2.0,
        width: (hi - lo).max(f64::MIN_POSITIVE),
        function: VoiFunction::LinearExact,
    }
}

/// PALETTE COLOR: each index through the red, green and blue LUTs, to 8-bit RGB.
fn palette(object: &InMemDicomObject, indices: &[i32]) -> Result<Vec<u8>, RenderError> {
    let signed = int(object, tags::PIXEL_REPRESENTATION) == Some(1);
    let read = |desc, data, name: &str| {
        Lut::read(object, desc, data, signed)?.ok_or_else(|| {
            RenderError::Corrupt(format!("PALETTE COLOR without a {name} palette descriptor"))
        })
    };
    let luts = [
        read(
            tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            "red",
        )?,
        read(
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            "green",
        )?,
        read(
            tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            "blue",
        )?,
    ];
    let mut out = Vec::with_capacity(indices.len() * 3);
    for index in indices {
        for lut in &luts {
            let v = lut.get(f64::from(*index));
            let v = if lut.bits > 8 {
                v / 257.0
            } else {
                v * 255.0 / lut.max()
            };
            out.push(v.round().clamp(0.0, 255.0) as u8);
        }
    }
    Ok(out)
}

/// Three-sample values (`to8` maps one to 8 bits) to interleaved RGB: planar
/// configuration 1 de-interleaved, YBR_FULL_422 (two lumas, then Cb, Cr) expanded,
/// YBR_FULL converted.
pub(super) fn colour(
    values: &[i32],
    pixels: usize,
    planar: bool,
    subsampled: bool,
    ybr: bool,
    to8: impl Fn(i32) -> u8,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(pixels * 3);
    for p in 0..pixels {
        let [a, b, c] = if subsampled {
            let pair = (p / 2) * 4;
            [values[pair + p % 2], values[pair + 2], values[pair + 3]]
        } else if planar {
            [values[p], values[pixels + p], values[2 * pixels + p]]
        } else {
            [values[3 * p], values[3 * p + 1], values[3 * p + 2]]
        };
        let rgb = [to8(a), to8(b), to8(c)];
        out.extend_from_slice(&if ybr { ybr_to_rgb(rgb) } else { rgb });
    }
    out
}

/// PS3.3 C.7.6.3.1.2: YBR_FULL (ITU-R BT.601, full range) to RGB.
pub fn ybr_to_rgb([y, cb, cr]: [u8; 3]) -> [u8; 3] {
    let (y, cb, cr) = (f64::from(y), f64::from(cb) - 128.0, f64::from(cr) - 128.0);
    let c = |v: f64| v.round().clamp(0.0, 255.0) as u8;
    [
        c(y + 1.402 * cr),
        c(y - 0.344136 * cb - 0.714136 * cr),
        c(y + 1.772 * cb),
    ]
}
