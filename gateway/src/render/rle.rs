//! RLE Lossless (PS3.5 Annex G) frame decoding, bounds-checked: the decoder behind
//! `dicom-pixeldata` 0.10 panics on a segment cut short, so RLE frames are decoded
//! here. A frame is one fragment: a 64-byte header (segment count, then up to 15
//! offsets) and PackBits segments, one per byte of each sample, most significant
//! byte first. The output is what native Pixel Data holds: samples interleaved,
//! little endian.

/// Decodes one RLE fragment of `pixels` pixels with `samples` samples of
/// `bytes_per_sample` bytes (1, 2 or 4).
pub(super) fn decode(
    fragment: &[u8],
    pixels: usize,
    samples: usize,
    bytes_per_sample: usize,
) -> Result<Vec<u8>, String> {
    let word = |i: usize| -> Result<usize, String> {
        fragment
            .get(i * 4..i * 4 + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| "RLE header cut short".to_string())
    };
    let count = word(0)?;
    let expected = samples * bytes_per_sample;
    if count != expected || count > 15 {
        return Err(format!(
            "{count} RLE segments where {expected} are expected"
        ));
    }
    let offsets = (1..=count).map(word).collect::<Result<Vec<_>, _>>()?;
    let mut out = vec![0u8; pixels * expected];
    for (segment, start) in offsets.iter().enumerate() {
        let end = offsets.get(segment + 1).copied().unwrap_or(fragment.len());
        let data = fragment
            .get(*start..end.min(fragment.len()))
            .filter(|_| *start >= 64 && *start <= end)
            .ok_or_else(|| format!("RLE segment {} lies outside the fragment", segment + 1))?;
        let plane =
            unpack(data, pixels).map_err(|why| format!("RLE segment {}: {why}", segment + 1))?;
        // Segment order: sample by sample, most significant byte first.
        let (sample, byte) = (segment / bytes_per_sample, segment % bytes_per_sample);
        let at = sample * bytes_per_sample + (bytes_per_sample - 1 - byte);
        for (pixel, value) in plane.into_iter().enumerate() {
            out[pixel * expected + at] = value;
        }
    }
    Ok(out)
}

/// PackBits: `pixels` bytes out of `data` (trailing padding ignored).
fn unpack(data: &[u8], pixels: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(pixels);
    let mut at = 0;
    while out.len() < pixels {
        let Some(&n) = data.get(at) else {
            return Err(format!(
                "{} of {pixels} bytes, then the data ends",
                out.len()
            ));
        };
        at += 1;
        let n = n as i8;
        if n >= 0 {
            let run = n as usize + 1;
            let literal = data.get(at..at + run).ok_or("a literal run is cut short")?;
            out.extend_from_slice(literal);
            at += run;
        } else if n != -128 {
            let value = *data.get(at).ok_or("a repeat run is cut short")?;
            out.extend(std::iter::repeat_n(value, (1 - i32::from(n)) as usize));
            at += 1;
        }
    }
    out.truncate(pixels);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fragment(segments: &[Vec<u8>]) -> Vec<u8> {
        let mut header = vec![0u8; 64];
        header[..4].copy_from_slice(&(segments.len() as u32).to_le_bytes());
        let mut at = 64u32;
        let mut body = Vec::new();
        for (i, s) in segments.iter().enumerate() {
            header[4 + i * 4..8 + i * 4].copy_from_slice(&at.to_le_bytes());
            at += s.len() as u32;
            body.extend_from_slice(s);
        }
        [header, body].concat()
    }

    #[test]
    fn literal_and_repeat_runs_make_16_bit_samples() {
        // High bytes: 3 x 0x01 (repeat); low bytes: literal 0x10 0x20 0x30.
        let f = fragment(&[vec![0xfe, 0x01], vec![0x02, 0x10, 0x20, 0x30]]);
        assert_eq!(
            decode(&f, 3, 1, 2).unwrap(),
            [0x10, 0x01, 0x20, 0x01, 0x30, 0x01]
        );
    }

    #[test]
    fn short_or_inconsistent_fragments_are_errors() {
        let f = fragment(&[vec![0x02, 0x10, 0x20]]);
        assert!(decode(&f, 3, 1, 1).is_err(), "literal cut short");
        assert!(decode(&f, 3, 1, 2).is_err(), "segment count");
        assert!(decode(&f[..40], 3, 1, 1).is_err(), "header cut short");
        let mut bad = fragment(&[vec![0x00, 0x10]]);
        bad[4..8].copy_from_slice(&9999u32.to_le_bytes());
        assert!(decode(&bad, 1, 1, 1).is_err(), "offset outside");
    }
}
