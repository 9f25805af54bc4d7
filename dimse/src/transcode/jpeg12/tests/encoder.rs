//! A small 12-bit sequential JPEG encoder for tests only: it writes the streams
//! DCMTK's `dcmcjpeg` cannot (restart intervals, 16-bit quantisation tables, APPn
//! and COM segments), so the decoder can be checked on them, against DCMTK's
//! decoder too. Float forward DCT, flat quantisation, one fixed Huffman table pair
//! covering every symbol; 1 or 3 components, no subsampling.

/// What to put in the stream.
#[derive(Debug, Clone, Copy)]
pub(super) struct Options {
    /// MCUs per restart interval (0: no DRI, no restart markers).
    pub(super) restart_interval: u16,
    /// The one quantiser used for every coefficient.
    pub(super) quantiser: u16,
    /// Write the quantisation table with 16-bit entries (Pq = 1).
    pub(super) wide_table: bool,
    /// Put APP0, APP14 and COM segments (and a fill byte) before the frame.
    pub(super) extras: bool,
}

const DC_SYMBOLS: usize = 16;

fn ac_symbols() -> Vec<u8> {
    let mut symbols = vec![0x00, 0xF0];
    for run in 0..16_u8 {
        for size in 1..=15_u8 {
            symbols.push((run << 4) | size);
        }
    }
    symbols
}

struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn put(&mut self, value: u32, len: u32) {
        if len == 0 {
            return;
        }
        self.acc = (self.acc << len) | u64::from(value & ((1 << len) - 1));
        self.n += len;
        while self.n >= 8 {
            self.n -= 8;
            let byte = (self.acc >> self.n) as u8;
            self.out.push(byte);
            if byte == 0xFF {
                self.out.push(0);
            }
        }
    }
    fn pad(&mut self) {
        if self.n > 0 {
            self.put(0x7F, 8 - self.n);
        }
    }
}

fn category(v: i32) -> u32 {
    32 - v.unsigned_abs().leading_zeros()
}

fn put_value(bits: &mut Bits, v: i32, size: u32) {
    let raw = if v < 0 { v - 1 } else { v };
    bits.put(raw as u32, size);
}

fn fdct(block: &[f64; 64]) -> [f64; 64] {
    let c = |u: usize| {
        if u == 0 {
            std::f64::consts::FRAC_1_SQRT_2
        } else {
            1.0
        }
    };
    let cos =
        |p: usize, f: usize| ((2 * p + 1) as f64 * f as f64 * std::f64::consts::PI / 16.0).cos();
    std::array::from_fn(|i| {
        let (v, u) = (i / 8, i % 8);
        let mut s = 0.0;
        for y in 0..8 {
            for x in 0..8 {
                s += block[y * 8 + x] * cos(x, u) * cos(y, v);
            }
        }
        s * c(u) * c(v) / 4.0
    })
}

fn segment(out: &mut Vec<u8>, marker: u8, payload: &[u8]) {
    out.extend([0xFF, marker]);
    out.extend(((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(payload);
}

/// Encodes `samples` (interleaved, `components` per pixel, 0..=4095).
pub(super) fn encode(
    width: usize,
    height: usize,
    components: usize,
    samples: &[u16],
    options: Options,
) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8];
    if options.extras {
        segment(&mut out, 0xE0, b"JFIF\0\x01\x02\0\0\x01\0\x01\0\0");
        segment(&mut out, 0xEE, b"Adobe\0\x64\0\0\0\0\0");
        out.push(0xFF); // a fill byte before the next marker
        segment(
            &mut out,
            0xFE,
            b"made for a test, \xFF\xD9 inside a comment",
        );
    }
    let q = options.quantiser;
    let mut dqt = vec![if options.wide_table { 0x10 } else { 0x00 }];
    for _ in 0..64 {
        if options.wide_table {
            dqt.extend(q.to_be_bytes());
        } else {
            dqt.push(q as u8);
        }
    }
    segment(&mut out, 0xDB, &dqt);
    let mut sof = vec![12];
    sof.extend((height as u16).to_be_bytes());
    sof.extend((width as u16).to_be_bytes());
    sof.push(components as u8);
    for c in 0..components {
        sof.extend([c as u8 + 1, 0x11, 0]);
    }
    segment(&mut out, 0xC1, &sof);
    let mut dht = vec![0x00];
    dht.extend((1..=16).map(|len| if len == 5 { DC_SYMBOLS as u8 } else { 0 }));
    dht.extend(0..DC_SYMBOLS as u8);
    let ac = ac_symbols();
    dht.push(0x10);
    dht.extend((1..=16).map(|len| if len == 8 { ac.len() as u8 } else { 0 }));
    dht.extend(&ac);
    segment(&mut out, 0xC4, &dht);
    if options.restart_interval > 0 {
        segment(&mut out, 0xDD, &options.restart_interval.to_be_bytes());
    }
    let mut sos = vec![components as u8];
    for c in 0..components {
        sos.extend([c as u8 + 1, 0x00]);
    }
    sos.extend([0, 63, 0]);
    segment(&mut out, 0xDA, &sos);

    let ac_code = |symbol: u8| ac.iter().position(|s| *s == symbol).unwrap() as u32;
    let mut bits = Bits {
        out: Vec::new(),
        acc: 0,
        n: 0,
    };
    let (across, down) = (width.div_ceil(8), height.div_ceil(8));
    let mut predictors = vec![0_i32; components];
    let mut restarts = 0_u8;
    let zigzag = super::super::ZIGZAG;
    for mcu in 0..across * down {
        let interval = usize::from(options.restart_interval);
        if interval > 0 && mcu > 0 && mcu % interval == 0 {
            bits.pad();
            bits.out.extend([0xFF, 0xD0 + restarts]);
            restarts = (restarts + 1) & 7;
            predictors.iter_mut().for_each(|p| *p = 0);
        }
        let (bx, by) = (mcu % across, mcu / across);
        for (c, predictor) in predictors.iter_mut().enumerate() {
            let block: [f64; 64] = std::array::from_fn(|i| {
                let x = (bx * 8 + i % 8).min(width - 1);
                let y = (by * 8 + i / 8).min(height - 1);
                f64::from(samples[(y * width + x) * components + c]) - 2048.0
            });
            let coefficients = fdct(&block);
            let quantised: Vec<i32> = zigzag
                .iter()
                .map(|n| (coefficients[*n] / f64::from(q)).round() as i32)
                .collect();
            let diff = quantised[0] - *predictor;
            *predictor = quantised[0];
            let size = category(diff);
            bits.put(size, 5);
            put_value(&mut bits, diff, size);
            let mut run = 0;
            for &v in &quantised[1..] {
                if v == 0 {
                    run += 1;
                    continue;
                }
                while run > 15 {
                    bits.put(ac_code(0xF0), 8);
                    run -= 16;
                }
                let size = category(v);
                bits.put(ac_code(((run as u8) << 4) | size as u8), 8);
                put_value(&mut bits, v, size);
                run = 0;
            }
            if run > 0 {
                bits.put(ac_code(0x00), 8);
            }
        }
    }
    bits.pad();
    out.extend(bits.out);
    out.extend([0xFF, 0xD9]);
    out
}
