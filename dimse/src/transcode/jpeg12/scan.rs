//! One sequential scan (SOS and its entropy-coded data): the scan header, the MCU
//! loop (interleaved or one component), restart intervals, and each block's
//! Huffman decoding, dequantisation and IDCT into its component's plane.

use super::huffman::{BitReader, HuffmanTable};
use super::idct::idct;
use super::{Frame, JpegError, Tables, ZIGZAG};

/// One component of a scan: its index in the frame and its tables.
struct ScanComponent<'t> {
    index: usize,
    dc: &'t HuffmanTable,
    ac: &'t HuffmanTable,
    quant: &'t [u16; 64],
    predictor: i32,
}

/// Decodes the scan whose header is `header` and whose data starts at `pos`;
/// returns the position just after its entropy-coded data.
pub(super) fn decode_scan(
    data: &[u8],
    pos: usize,
    header: &[u8],
    frame: &mut Frame,
    tables: &Tables,
) -> Result<usize, JpegError> {
    let mut scan = parse_header(header, frame, tables)?;
    let mut reader = BitReader::new(data, pos);
    let interleaved = scan.len() > 1;
    let (across, down) = if interleaved {
        (frame.mcus_x, frame.mcus_y)
    } else {
        let c = &frame.components[scan[0].index];
        (c.width.div_ceil(8), c.height.div_ceil(8))
    };
    let total = across * down;
    let interval = tables.restart_interval;
    let mut next_restart = 0_u8;
    let mut block = [0_i64; 64];
    for mcu in 0..total {
        if interval > 0 && mcu > 0 && mcu % interval == 0 {
            reader.restart(next_restart)?;
            next_restart = (next_restart + 1) & 7;
            for c in &mut scan {
                c.predictor = 0;
            }
        }
        let (mx, my) = (mcu % across, mcu / across);
        for sc in &mut scan {
            let component = &mut frame.components[sc.index];
            let (h, v) = if interleaved {
                (component.h, component.v)
            } else {
                (1, 1)
            };
            for by in 0..v {
                for bx in 0..h {
                    decode_block(&mut reader, sc, &mut block)?;
                    let (x, y) = ((mx * h + bx) * 8, (my * v + by) * 8);
                    let start = y * component.stride + x;
                    let stride = component.stride;
                    let out = component
                        .plane
                        .get_mut(start..)
                        .ok_or_else(|| JpegError::malformed("block outside the component plane"))?;
                    idct(&block, frame.precision, out, stride);
                }
            }
        }
    }
    for sc in &scan {
        frame.components[sc.index].decoded = true;
    }
    Ok(reader.position())
}

fn parse_header<'t>(
    s: &[u8],
    frame: &Frame,
    tables: &'t Tables,
) -> Result<Vec<ScanComponent<'t>>, JpegError> {
    let count = usize::from(
        *s.first()
            .ok_or_else(|| JpegError::malformed("empty scan header"))?,
    );
    if count == 0 || count > 4 || s.len() != 1 + 2 * count + 3 {
        return Err(JpegError::malformed(
            "scan header length does not match its components",
        ));
    }
    let mut scan: Vec<ScanComponent<'t>> = Vec::with_capacity(count);
    let mut blocks = 0;
    for spec in s[1..1 + 2 * count].chunks_exact(2) {
        let index = frame
            .components
            .iter()
            .position(|c| c.id == spec[0])
            .ok_or_else(|| {
                JpegError::malformed(format!("scan names unknown component {}", spec[0]))
            })?;
        let component = &frame.components[index];
        if component.decoded || scan.iter().any(|c| c.index == index) {
            return Err(JpegError::malformed(format!(
                "component {} is in more than one scan",
                spec[0]
            )));
        }
        blocks += component.h * component.v;
        let (td, ta) = (usize::from(spec[1] >> 4), usize::from(spec[1] & 15));
        let missing = |what: &str| JpegError::malformed(format!("scan uses an undefined {what}"));
        scan.push(ScanComponent {
            index,
            dc: tables
                .dc
                .get(td)
                .and_then(Option::as_ref)
                .ok_or_else(|| missing("DC Huffman table"))?,
            ac: tables
                .ac
                .get(ta)
                .and_then(Option::as_ref)
                .ok_or_else(|| missing("AC Huffman table"))?,
            quant: tables.quant[component.quant]
                .as_ref()
                .ok_or_else(|| missing("quantisation table"))?,
            predictor: 0,
        });
    }
    if count > 1 && blocks > 10 {
        return Err(JpegError::malformed("more than 10 blocks in an MCU"));
    }
    if s[1 + 2 * count] != 0 {
        return Err(JpegError::unsupported(
            "a scan starting past the DC coefficient (progressive)",
        ));
    }
    Ok(scan)
}

/// Decodes one block's coefficients and dequantises them into `block` (natural
/// order). Coefficients are kept to 16 bits, as libjpeg's are.
fn decode_block(
    reader: &mut BitReader<'_>,
    sc: &mut ScanComponent<'_>,
    block: &mut [i64; 64],
) -> Result<(), JpegError> {
    *block = [0; 64];
    let size = reader.symbol(sc.dc)?;
    let diff = reader.extend(size)?;
    sc.predictor = sc.predictor.wrapping_add(diff);
    block[0] = i64::from(sc.predictor as i16) * i64::from(sc.quant[0]);
    let mut k = 1;
    while k < 64 {
        let rs = reader.symbol(sc.ac)?;
        let (run, size) = (usize::from(rs >> 4), rs & 15);
        if size == 0 {
            if run == 15 {
                k += 16;
                continue;
            }
            break;
        }
        k += run;
        let natural = *ZIGZAG
            .get(k)
            .ok_or_else(|| JpegError::malformed("AC coefficients run past the block's end"))?;
        let value = reader.extend(size)?;
        block[natural] = i64::from(value as i16) * i64::from(sc.quant[natural]);
        k += 1;
    }
    Ok(())
}
