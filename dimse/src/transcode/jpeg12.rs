//! A decoder for sequential Huffman DCT JPEG with 8- or 12-bit samples (ITU T.81
//! baseline and extended, SOF0/SOF1), the codec of DICOM "JPEG Extended (Process 2
//! & 4)", whose 12-bit form the `jpeg-decoder` crate refuses. One to three
//! components (interleaved or in separate scans), 4:4:4, 4:2:2 and 4:2:0 sampling,
//! restart intervals, 8- and 16-bit quantisation tables; APPn and COM are skipped.
//! Samples match libjpeg's (the IJG "islow" IDCT and fancy upsampling, as DCMTK
//! decodes). It reads bytes only: no DICOM here (see `native12`), no colour policy
//! (the caller asks for [`Image::ycbcr_to_rgb`]).
//!
//! Every read is bounds-checked and every malformed stream gives a [`JpegError`];
//! the image size is checked against the caller's limit before any allocation.

mod color;
mod huffman;
mod idct;
mod scan;
#[cfg(test)]
mod tests;

use huffman::HuffmanTable;

/// The largest image decoded, in samples (rows x columns x components).
pub(crate) const MAX_SAMPLES: usize = 1 << 28;

/// Why a JPEG stream could not be decoded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JpegError {
    /// The stream breaks the JPEG syntax or is cut short.
    #[error("malformed JPEG stream: {0}")]
    Malformed(String),
    /// Valid JPEG this decoder does not handle (progressive, lossless, arithmetic...).
    #[error("unsupported JPEG stream: {0}")]
    Unsupported(String),
}

impl JpegError {
    fn malformed(why: impl Into<String>) -> Self {
        Self::Malformed(why.into())
    }
    fn unsupported(why: impl Into<String>) -> Self {
        Self::Unsupported(why.into())
    }
}

/// A decoded image: samples interleaved, components at full resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Image {
    /// Columns.
    pub(crate) width: usize,
    /// Rows.
    pub(crate) height: usize,
    /// Components per pixel (1 or 3).
    pub(crate) components: usize,
    /// Sample precision in bits (8 or 12).
    pub(crate) precision: u8,
    /// `width * height * components` samples, row by row, components interleaved.
    pub(crate) samples: Vec<u16>,
}

/// T.81 Figure A.6: the natural-order index of each zig-zag position.
const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// One frame component and its decoded plane (padded to whole MCUs).
#[derive(Debug)]
struct Component {
    id: u8,
    h: usize,
    v: usize,
    quant: usize,
    /// Samples in this component's own resolution (T.81 A.1.1).
    width: usize,
    height: usize,
    /// Plane row length (blocks across all MCUs x 8).
    stride: usize,
    plane: Vec<u16>,
    decoded: bool,
}

/// The frame header (SOF) and what follows from it.
#[derive(Debug)]
struct Frame {
    precision: u8,
    width: usize,
    height: usize,
    h_max: usize,
    v_max: usize,
    mcus_x: usize,
    mcus_y: usize,
    components: Vec<Component>,
}

/// The tables in force, as DQT, DHT and DRI set them.
struct Tables {
    quant: [Option<[u16; 64]>; 4],
    dc: [Option<HuffmanTable>; 4],
    ac: [Option<HuffmanTable>; 4],
    restart_interval: usize,
}

/// Decodes one JPEG stream (SOI to EOI) into an image of at most `max_samples`
/// samples (also capped at [`MAX_SAMPLES`]).
pub(crate) fn decode(data: &[u8], max_samples: usize) -> Result<Image, JpegError> {
    if data.get(..2) != Some(&[0xFF, 0xD8]) {
        return Err(JpegError::malformed("no SOI marker at the start"));
    }
    let mut pos = 2;
    let mut tables = Tables {
        quant: [None; 4],
        dc: Default::default(),
        ac: Default::default(),
        restart_interval: 0,
    };
    let mut frame: Option<Frame> = None;
    while let Some((marker, after)) = next_marker(data, pos) {
        pos = after;
        match marker {
            0xD9 => break,
            0xC0 | 0xC1 => {
                if frame.is_some() {
                    return Err(JpegError::malformed("a second frame header (SOF)"));
                }
                let segment = segment(data, pos)?;
                let limits = (max_samples.min(MAX_SAMPLES), data.len());
                frame = Some(parse_frame(segment, limits)?);
                pos += 2 + segment.len();
            }
            0xC2 | 0xC6 | 0xCA | 0xCE => {
                return Err(JpegError::unsupported("progressive DCT (only sequential)"));
            }
            0xC3 | 0xC7 | 0xCB | 0xCF => {
                return Err(JpegError::unsupported(
                    "lossless JPEG (only sequential DCT)",
                ));
            }
            0xC5 | 0xC9 | 0xCD | 0xCC => {
                return Err(JpegError::unsupported(
                    "arithmetic coding or hierarchical frame (only Huffman sequential)",
                ));
            }
            0xC4 | 0xDB | 0xDD => {
                let segment = segment(data, pos)?;
                match marker {
                    0xC4 => parse_dht(segment, &mut tables)?,
                    0xDB => parse_dqt(segment, &mut tables)?,
                    _ => parse_dri(segment, &mut tables)?,
                }
                pos += 2 + segment.len();
            }
            0xDA => {
                let frame = frame
                    .as_mut()
                    .ok_or_else(|| JpegError::malformed("a scan (SOS) before the frame header"))?;
                let segment = segment(data, pos)?;
                pos += 2 + segment.len();
                pos = scan::decode_scan(data, pos, segment, frame, &tables)?;
            }
            0xDC => {
                return Err(JpegError::unsupported(
                    "DNL marker (image height after the scan)",
                ));
            }
            0xE0..=0xEF | 0xFE | 0xF0..=0xFD | 0xC8 => {
                pos += 2 + segment(data, pos)?.len();
            }
            0x01 => {}
            0xD0..=0xD7 => return Err(JpegError::malformed("restart marker outside a scan")),
            0xD8 => return Err(JpegError::malformed("a second SOI marker")),
            other => {
                return Err(JpegError::malformed(format!(
                    "unknown marker FF{other:02X} at byte offset {}",
                    pos - 2
                )));
            }
        }
    }
    let frame =
        frame.ok_or_else(|| JpegError::malformed("no frame header (SOF) before the end"))?;
    if let Some(c) = frame.components.iter().find(|c| !c.decoded) {
        return Err(JpegError::malformed(format!(
            "the stream ends before component {} was decoded (truncated?)",
            c.id
        )));
    }
    color::assemble(frame)
}

/// The marker at or after `pos`: skips fill bytes (FF FF) and, after a scan, stray
/// bytes before the marker. `None` at the end of the data.
fn next_marker(data: &[u8], mut pos: usize) -> Option<(u8, usize)> {
    loop {
        while *data.get(pos)? != 0xFF {
            pos += 1;
        }
        while *data.get(pos + 1)? == 0xFF {
            pos += 1;
        }
        let code = *data.get(pos + 1)?;
        if code != 0 {
            return Some((code, pos + 2));
        }
        pos += 2;
    }
}

/// The payload of the marker segment whose length field is at `pos`.
fn segment(data: &[u8], pos: usize) -> Result<&[u8], JpegError> {
    let length = data
        .get(pos..pos + 2)
        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        .ok_or_else(|| JpegError::malformed("the stream ends inside a marker segment length"))?;
    if length < 2 {
        return Err(JpegError::malformed("marker segment length below 2"));
    }
    data.get(pos + 2..pos + length)
        .ok_or_else(|| JpegError::malformed("the stream ends inside a marker segment (truncated)"))
}

/// The frame header; `limits` are the most samples allowed and the stream's
/// length, checked before the component planes are allocated.
fn parse_frame(s: &[u8], limits: (usize, usize)) -> Result<Frame, JpegError> {
    let (max_samples, stream_length) = limits;
    if s.len() < 6 {
        return Err(JpegError::malformed("frame header too short"));
    }
    let precision = s[0];
    if precision != 8 && precision != 12 {
        return Err(JpegError::unsupported(format!(
            "{precision}-bit samples (8 or 12 only)"
        )));
    }
    let height = usize::from(u16::from_be_bytes([s[1], s[2]]));
    let width = usize::from(u16::from_be_bytes([s[3], s[4]]));
    let count = usize::from(s[5]);
    if height == 0 {
        return Err(JpegError::unsupported(
            "image height 0 (set by a DNL marker)",
        ));
    }
    if width == 0 {
        return Err(JpegError::malformed("image width 0"));
    }
    if count != 1 && count != 3 {
        return Err(JpegError::unsupported(format!(
            "{count} components (1 or 3 only)"
        )));
    }
    if s.len() != 6 + 3 * count {
        return Err(JpegError::malformed(
            "frame header length does not match its components",
        ));
    }
    let samples = width * height * count;
    if samples > max_samples {
        return Err(JpegError::malformed(format!(
            "the frame declares {width}x{height}x{count} samples, more than the {max_samples} allowed"
        )));
    }
    // Each 8x8 block takes at least 2 bits (a DC and an end-of-block code).
    if samples / 256 > stream_length {
        return Err(JpegError::malformed(format!(
            "a stream of {stream_length} bytes cannot hold the {width}x{height}x{count} samples it declares"
        )));
    }
    let mut specs: Vec<(u8, usize, usize, usize)> = Vec::with_capacity(count);
    for c in s[6..].chunks_exact(3) {
        let (h, v, quant) = (
            usize::from(c[1] >> 4),
            usize::from(c[1] & 15),
            usize::from(c[2]),
        );
        if !(1..=4).contains(&h) || !(1..=4).contains(&v) || quant > 3 {
            return Err(JpegError::malformed(
                "bad sampling factor or quantisation table",
            ));
        }
        if specs.iter().any(|(id, ..)| *id == c[0]) {
            return Err(JpegError::malformed(
                "two components with the same identifier",
            ));
        }
        specs.push((c[0], h, v, quant));
    }
    let h_max = specs.iter().map(|s| s.1).max().unwrap_or(1);
    let v_max = specs.iter().map(|s| s.2).max().unwrap_or(1);
    for (_, h, v, _) in &specs {
        let ratio = (h_max / h, v_max / v, h_max % h + v_max % v);
        if !matches!(ratio, (1, 1, 0) | (2, 1, 0) | (2, 2, 0)) {
            return Err(JpegError::unsupported(format!(
                "component sampling {h}x{v} against {h_max}x{v_max} (only 4:4:4, 4:2:2, 4:2:0)"
            )));
        }
    }
    let mcus_x = width.div_ceil(8 * h_max);
    let mcus_y = height.div_ceil(8 * v_max);
    let components = specs
        .into_iter()
        .map(|(id, h, v, quant)| {
            let stride = mcus_x * h * 8;
            Component {
                id,
                h,
                v,
                quant,
                width: (width * h).div_ceil(h_max),
                height: (height * v).div_ceil(v_max),
                stride,
                plane: vec![0; stride * mcus_y * v * 8],
                decoded: false,
            }
        })
        .collect();
    Ok(Frame {
        precision,
        width,
        height,
        h_max,
        v_max,
        mcus_x,
        mcus_y,
        components,
    })
}

fn parse_dqt(mut s: &[u8], tables: &mut Tables) -> Result<(), JpegError> {
    while let Some((&pq_tq, rest)) = s.split_first() {
        let (pq, tq) = (pq_tq >> 4, usize::from(pq_tq & 15));
        if pq > 1 || tq > 3 {
            return Err(JpegError::malformed(
                "bad quantisation table precision or number",
            ));
        }
        let size = if pq == 0 { 64 } else { 128 };
        let values = rest
            .get(..size)
            .ok_or_else(|| JpegError::malformed("quantisation table cut short"))?;
        let mut table = [0_u16; 64];
        for (k, natural) in ZIGZAG.iter().enumerate() {
            table[*natural] = if pq == 0 {
                u16::from(values[k])
            } else {
                u16::from_be_bytes([values[2 * k], values[2 * k + 1]])
            };
        }
        tables.quant[tq] = Some(table);
        s = &rest[size..];
    }
    Ok(())
}

fn parse_dht(mut s: &[u8], tables: &mut Tables) -> Result<(), JpegError> {
    while let Some((&tc_th, rest)) = s.split_first() {
        let (tc, th) = (tc_th >> 4, usize::from(tc_th & 15));
        if tc > 1 || th > 3 {
            return Err(JpegError::malformed("bad Huffman table class or number"));
        }
        let counts: [u8; 16] = rest
            .get(..16)
            .and_then(|c| c.try_into().ok())
            .ok_or_else(|| JpegError::malformed("Huffman table cut short"))?;
        let total: usize = counts.iter().map(|c| usize::from(*c)).sum();
        let values = rest
            .get(16..16 + total)
            .ok_or_else(|| JpegError::malformed("Huffman table symbols cut short"))?;
        let table = HuffmanTable::new(&counts, values)?;
        if tc == 0 {
            tables.dc[th] = Some(table);
        } else {
            tables.ac[th] = Some(table);
        }
        s = &rest[16 + total..];
    }
    Ok(())
}

fn parse_dri(s: &[u8], tables: &mut Tables) -> Result<(), JpegError> {
    match s {
        [hi, lo] => {
            tables.restart_interval = usize::from(u16::from_be_bytes([*hi, *lo]));
            Ok(())
        }
        _ => Err(JpegError::malformed(
            "restart interval segment is not 2 bytes",
        )),
    }
}
