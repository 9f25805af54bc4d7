//! Blanking: every sample of every pixel inside the rule's rectangles (clipped to
//! the image) becomes zero, in every frame; YBR colour becomes black (Y 0, Cb and
//! Cr at their midpoint) so that no chroma trace of the text is left.

use super::frames::Frames;
use super::rules::clip;
use crate::config::pixels::Rectangle;

/// Blanks `rectangles` in every frame held by `frames`.
pub fn blank(frames: &mut Frames, rectangles: &[Rectangle]) {
    let len = frames.frame_len();
    if len == 0 {
        return;
    }
    let columns = frames.columns as usize;
    let pixels = frames.rows as usize * columns;
    let samples = usize::from(frames.samples);
    let bytes = usize::from(frames.bits_allocated / 8);
    let fill = fill_values(frames);
    let planar = frames.planar == 1;
    for frame in frames.data.chunks_exact_mut(len) {
        for r in rectangles {
            let Some((xs, ys)) = clip(r, frames.columns, frames.rows) else {
                continue;
            };
            for y in ys {
                for x in xs.clone() {
                    let p = y as usize * columns + x as usize;
                    for (s, value) in fill.iter().enumerate().take(samples) {
                        let index = if planar {
                            s * pixels + p
                        } else {
                            p * samples + s
                        };
                        let at = index * bytes;
                        frame[at] = *value;
                        if bytes == 2 {
                            frame[at + 1] = 0;
                        }
                    }
                }
            }
        }
    }
}

/// The value each sample is set to (the low byte; high bytes are zero).
fn fill_values(frames: &Frames) -> [u8; 3] {
    if frames.samples == 3 && frames.photometric.starts_with("YBR") && frames.bits_allocated == 8 {
        [0, 128, 128]
    } else {
        [0, 0, 0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(samples: u16, bits: u16, planar: u16, count: u32, photometric: &str) -> Frames {
        let (rows, columns) = (4u32, 5u32);
        let len = (rows * columns) as usize * usize::from(samples) * usize::from(bits / 8);
        Frames {
            rows,
            columns,
            samples,
            bits_allocated: bits,
            signed: false,
            photometric: photometric.into(),
            planar,
            numbers: (0..count).collect(),
            data: vec![0xAB; len * count as usize],
        }
    }

    fn rect(x: u32, y: u32, width: u32, height: u32) -> Rectangle {
        Rectangle {
            x,
            y,
            width,
            height,
        }
    }

    /// Sample `s` of pixel (x, y) in frame `f`, as a number.
    fn sample(fr: &Frames, f: usize, x: usize, y: usize, s: usize) -> u32 {
        let pixels = (fr.rows * fr.columns) as usize;
        let p = y * fr.columns as usize + x;
        let samples = usize::from(fr.samples);
        let index = if fr.planar == 1 {
            s * pixels + p
        } else {
            p * samples + s
        };
        let bytes = usize::from(fr.bits_allocated / 8);
        let at = f * fr.frame_len() + index * bytes;
        if bytes == 2 {
            u32::from(u16::from_le_bytes([fr.data[at], fr.data[at + 1]]))
        } else {
            u32::from(fr.data[at])
        }
    }

    #[test]
    fn only_the_rectangles_are_zero_in_every_frame_and_layout() {
        for (samples, bits, planar) in [(1, 8, 0), (1, 16, 0), (3, 8, 0), (3, 8, 1), (3, 16, 1)] {
            let mut fr = frames(
                samples,
                bits,
                planar,
                3,
                if samples == 3 { "RGB" } else { "MONOCHROME2" },
            );
            // (1,1)-(2,2) and a rectangle hanging over the right edge: column 4, row 3.
            blank(&mut fr, &[rect(1, 1, 2, 2), rect(4, 3, 10, 10)]);
            for f in 0..3 {
                for y in 0..4 {
                    for x in 0..5 {
                        let inside =
                            ((1..3).contains(&x) && (1..3).contains(&y)) || (x == 4 && y == 3);
                        for s in 0..usize::from(samples) {
                            let v = sample(&fr, f, x, y, s);
                            let untouched = if bits == 16 { 0xABAB } else { 0xAB };
                            assert_eq!(
                                v,
                                if inside { 0 } else { untouched },
                                "samples {samples} bits {bits} planar {planar} frame {f} ({x},{y}) sample {s}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn ybr_is_blanked_to_black() {
        let mut fr = frames(3, 8, 0, 1, "YBR_FULL");
        blank(&mut fr, &[rect(0, 0, 1, 1)]);
        assert_eq!(&fr.data[..3], &[0, 128, 128]);
        assert_eq!(fr.data[3], 0xAB);
    }

    #[test]
    fn rectangles_outside_the_image_change_nothing() {
        let mut fr = frames(1, 8, 0, 2, "MONOCHROME2");
        blank(&mut fr, &[rect(5, 0, 3, 3), rect(0, 4, 3, 3)]);
        assert!(fr.data.iter().all(|b| *b == 0xAB));
    }
}
