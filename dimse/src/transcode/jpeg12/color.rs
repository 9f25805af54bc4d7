//! From decoded component planes to one interleaved image: cropping, libjpeg's
//! "fancy" (triangular) upsampling for 4:2:2 and 4:2:0 chroma, and, on request,
//! libjpeg's YCbCr to RGB conversion (the same fixed-point tables).

use super::{Component, Frame, Image, JpegError};

/// Interleaves the frame's components at full resolution.
pub(super) fn assemble(frame: Frame) -> Result<Image, JpegError> {
    let (width, height) = (frame.width, frame.height);
    let count = frame.components.len();
    let mut planes = Vec::with_capacity(count);
    for c in &frame.components {
        planes.push(full_size(c, frame.h_max, frame.v_max, width, height)?);
    }
    let mut samples = vec![0_u16; width * height * count];
    for (k, plane) in planes.iter().enumerate() {
        for (i, value) in plane.iter().enumerate() {
            samples[i * count + k] = *value;
        }
    }
    Ok(Image {
        width,
        height,
        components: count,
        precision: frame.precision,
        samples,
    })
}

/// The component as `width x height` samples.
fn full_size(
    c: &Component,
    h_max: usize,
    v_max: usize,
    width: usize,
    height: usize,
) -> Result<Vec<u16>, JpegError> {
    let at = |x: usize, y: usize| i32::from(c.plane[y * c.stride + x]);
    let mut out = Vec::with_capacity(width * height);
    match (h_max / c.h, v_max / c.v, h_max % c.h + v_max % c.v) {
        (1, 1, 0) => {
            for y in 0..height {
                out.extend_from_slice(&c.plane[y * c.stride..y * c.stride + width]);
            }
        }
        (2, 1, 0) => {
            for y in 0..height {
                let values: Vec<i32> = (0..c.width).map(|x| at(x, y)).collect();
                let row = if c.width <= 2 {
                    doubled(&values)
                } else {
                    triangle(&values, 2, 1, 2)
                };
                out.extend(row.into_iter().take(width));
            }
        }
        (2, 2, 0) => {
            let last = c.height - 1;
            for y in 0..height {
                let (y0, below) = (y / 2, y % 2 == 1);
                let y1 = if below {
                    (y0 + 1).min(last)
                } else {
                    y0.saturating_sub(1)
                };
                let row = if c.width <= 2 {
                    doubled(&(0..c.width).map(|x| at(x, y0)).collect::<Vec<_>>())
                } else {
                    let sums: Vec<i32> = (0..c.width).map(|x| at(x, y0) * 3 + at(x, y1)).collect();
                    triangle(&sums, 4, 8, 7)
                };
                out.extend(row.into_iter().take(width));
            }
        }
        _ => {
            return Err(JpegError::unsupported(format!(
                "component sampling {}x{} against {h_max}x{v_max} (only 4:4:4, 4:2:2, 4:2:0)",
                c.h, c.v
            )));
        }
    }
    Ok(out)
}

/// Each value twice (libjpeg's plain upsampling, used for components at most 2
/// samples wide).
fn doubled(values: &[i32]) -> Vec<u16> {
    values.iter().flat_map(|v| [*v as u16, *v as u16]).collect()
}

/// One row doubled horizontally by jdsample.c's triangle filter: each output is
/// (3 x nearer + farther + bias) >> shift, the edges using the edge value twice.
/// With single rows (h2v1) shift 2, biases 1 and 2; with 3:1 vertical sums (h2v2)
/// shift 4, biases 8 and 7.
fn triangle(sums: &[i32], shift: u32, bias_left: i32, bias_right: i32) -> Vec<u16> {
    let n = sums.len();
    let mut row = Vec::with_capacity(2 * n);
    for (x, this) in sums.iter().enumerate() {
        let left = if x == 0 { *this } else { sums[x - 1] };
        let right = sums.get(x + 1).copied().unwrap_or(*this);
        let a = (3 * this + left + bias_left) >> shift;
        let b = (3 * this + right + bias_right) >> shift;
        row.extend([a as u16, b as u16]);
    }
    row
}

impl Image {
    /// Converts YCbCr samples to RGB in place with libjpeg's fixed-point tables
    /// (ITU-R BT.601 full range, as DICOM YBR_FULL and YBR_FULL_422).
    pub(crate) fn ycbcr_to_rgb(&mut self) {
        if self.components != 3 {
            return;
        }
        const SCALE: u32 = 16;
        const HALF: i64 = 1 << (SCALE - 1);
        let center = 1_i64 << (self.precision - 1);
        let max = (1_i64 << self.precision) - 1;
        for px in self.samples.chunks_exact_mut(3) {
            let y = i64::from(px[0]);
            let cb = i64::from(px[1]) - center;
            let cr = i64::from(px[2]) - center;
            let r = y + ((91881 * cr + HALF) >> SCALE);
            let g = y + ((-22554 * cb + HALF - 46802 * cr) >> SCALE);
            let b = y + ((116130 * cb + HALF) >> SCALE);
            px[0] = r.clamp(0, max) as u16;
            px[1] = g.clamp(0, max) as u16;
            px[2] = b.clamp(0, max) as u16;
        }
    }
}
