//! The inverse DCT: the accurate integer algorithm of the IJG library (`jidctint.c`,
//! "islow", Loeffler-Ligtenberg-Moschytz with 13-bit constants), so that our
//! samples equal those of DCMTK and libjpeg. Arithmetic is 64-bit, so no
//! coefficient or quantiser however large can overflow; results are level-shifted
//! and clamped to the sample range.

const CONST_BITS: u32 = 13;
const FIX_0_298631336: i64 = 2446;
const FIX_0_390180644: i64 = 3196;
const FIX_0_541196100: i64 = 4433;
const FIX_0_765366865: i64 = 6270;
const FIX_0_899976223: i64 = 7373;
const FIX_1_175875602: i64 = 9633;
const FIX_1_501321110: i64 = 12299;
const FIX_1_847759065: i64 = 15137;
const FIX_1_961570560: i64 = 16069;
const FIX_2_053119869: i64 = 16819;
const FIX_2_562915447: i64 = 20995;
const FIX_3_072711026: i64 = 25172;

fn descale(x: i64, n: u32) -> i64 {
    (x + (1 << (n - 1))) >> n
}

/// One 1-D pass over 8 values: returns the 8 outputs before descaling.
fn pass(v: [i64; 8]) -> [i64; 8] {
    // Even part.
    let z1 = (v[2] + v[6]) * FIX_0_541196100;
    let tmp2 = z1 - v[6] * FIX_1_847759065;
    let tmp3 = z1 + v[2] * FIX_0_765366865;
    let tmp0 = (v[0] + v[4]) << CONST_BITS;
    let tmp1 = (v[0] - v[4]) << CONST_BITS;
    let (tmp10, tmp13) = (tmp0 + tmp3, tmp0 - tmp3);
    let (tmp11, tmp12) = (tmp1 + tmp2, tmp1 - tmp2);
    // Odd part.
    let (t0, t1, t2, t3) = (v[7], v[5], v[3], v[1]);
    let z5 = (t0 + t2 + t1 + t3) * FIX_1_175875602;
    let z1 = -(t0 + t3) * FIX_0_899976223;
    let z2 = -(t1 + t2) * FIX_2_562915447;
    let z3 = -(t0 + t2) * FIX_1_961570560 + z5;
    let z4 = -(t1 + t3) * FIX_0_390180644 + z5;
    let t0 = t0 * FIX_0_298631336 + z1 + z3;
    let t1 = t1 * FIX_2_053119869 + z2 + z4;
    let t2 = t2 * FIX_3_072711026 + z2 + z3;
    let t3 = t3 * FIX_1_501321110 + z1 + z4;
    [
        tmp10 + t3,
        tmp11 + t2,
        tmp12 + t1,
        tmp13 + t0,
        tmp13 - t0,
        tmp12 - t1,
        tmp11 - t2,
        tmp10 - t3,
    ]
}

/// Inverse-transforms the dequantized coefficients `block` (natural order) into
/// 8x8 samples of `precision` bits (8 or 12), written row by row at
/// `out[row * stride + column]`.
pub(super) fn idct(block: &[i64; 64], precision: u8, out: &mut [u16], stride: usize) {
    // libjpeg keeps one fraction bit more in the middle for 8-bit samples.
    let pass1_bits: u32 = if precision <= 8 { 2 } else { 1 };
    let center: i64 = 1 << (precision - 1);
    let max: i64 = (1 << precision) - 1;
    let mut work = [0_i64; 64];
    for col in 0..8 {
        let column: [i64; 8] = std::array::from_fn(|row| block[row * 8 + col]);
        let result = pass(column);
        for (row, value) in result.into_iter().enumerate() {
            work[row * 8 + col] = descale(value, CONST_BITS - pass1_bits);
        }
    }
    for row in 0..8 {
        let line: [i64; 8] = std::array::from_fn(|col| work[row * 8 + col]);
        let result = pass(line);
        let start = row * stride;
        for (col, value) in result.into_iter().enumerate() {
            let sample = descale(value, CONST_BITS + pass1_bits + 3) + center;
            if let Some(slot) = out.get_mut(start + col) {
                *slot = sample.clamp(0, max) as u16;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dc_only_block_is_flat_and_level_shifted() {
        let mut block = [0_i64; 64];
        // DC 8 * 100: every sample 100 above the centre.
        block[0] = 800;
        let mut out = [0_u16; 64];
        idct(&block, 12, &mut out, 8);
        assert!(out.iter().all(|&s| s == 2148), "{out:?}");
        block[0] = -1_000_000;
        idct(&block, 12, &mut out, 8);
        assert!(out.iter().all(|&s| s == 0), "clamped low");
        block[0] = 32767 * 65535;
        idct(&block, 12, &mut out, 8);
        assert!(out.iter().all(|&s| s == 4095), "clamped high");
        // The largest coefficients times the largest quantisers: no overflow.
        for (i, c) in block.iter_mut().enumerate() {
            *c = if i % 3 == 0 {
                -32768 * 65535
            } else {
                32767 * 65535
            };
        }
        idct(&block, 12, &mut out, 8);
    }

    #[test]
    fn matches_the_floating_point_definition_within_one() {
        let mut block = [0_i64; 64];
        for (i, c) in block.iter_mut().enumerate() {
            *c = ((i as i64 * 7919) % 401) - 200;
        }
        let mut out = [0_u16; 64];
        idct(&block, 12, &mut out, 8);
        let c = |u: usize| if u == 0 { 1.0 / 2_f64.sqrt() } else { 1.0 };
        for y in 0..8 {
            for x in 0..8 {
                let mut s = 0.0;
                for v in 0..8 {
                    for u in 0..8 {
                        let cos = |p: usize, f: usize| {
                            ((2 * p + 1) as f64 * f as f64 * std::f64::consts::PI / 16.0).cos()
                        };
                        s += c(u) * c(v) * block[v * 8 + u] as f64 * cos(x, u) * cos(y, v);
                    }
                }
                let want = (s / 4.0 + 2048.0).round().clamp(0.0, 4095.0);
                let got = f64::from(out[y * 8 + x]);
                assert!((got - want).abs() <= 1.0, "({x},{y}): {got} vs {want}");
            }
        }
    }
}
