//! The decoder against DCMTK: streams made by `dcmcjpeg +ee` decoded here and by
//! `dcmdjpeg`, and streams from the test encoder (restart intervals, 16-bit tables)
//! decoded here and by `dcmdjpeg`; malformed streams give errors, never panics.

mod encoder;

use std::path::Path;

use super::super::dcmtk;
use super::*;
use encoder::Options;

/// Compresses `pixels` with `dcmcjpeg args`, returns the JPEG streams (one per
/// frame) and `dcmdjpeg`'s decoding of them.
fn through_dcmtk(
    dir: &Path,
    pixels: &[u16],
    dims: (usize, usize, usize, usize),
    args: &[&str],
) -> (Vec<Vec<u8>>, Vec<u16>) {
    let (native, compressed, back) = (dir.join("n.dcm"), dir.join("c.dcm"), dir.join("d.dcm"));
    dcmtk::write_native(&native, pixels, dims);
    dcmtk::run("dcmcjpeg", args, &native, &compressed);
    let (obj, ts) = dcmtk::open(&compressed);
    assert_eq!(
        ts, "1.2.840.10008.1.2.4.51",
        "dcmcjpeg {args:?} wrote JPEG Extended"
    );
    dcmtk::run("dcmdjpeg", &[], &compressed, &back);
    let (decoded, _) = dcmtk::open(&back);
    (dcmtk::fragments(&obj), dcmtk::native_pixels(&decoded))
}

/// dcmdjpeg's decoding of our own streams.
fn dcmtk_decodes(dir: &Path, streams: &[Vec<u8>], dims: (usize, usize, usize, usize)) -> Vec<u16> {
    let (compressed, back) = (dir.join("ours.dcm"), dir.join("ours-d.dcm"));
    dcmtk::write_jpeg(&compressed, streams, dims);
    dcmtk::run("dcmdjpeg", &[], &compressed, &back);
    dcmtk::native_pixels(&dcmtk::open(&back).0)
}

/// The sample precision in the stream's SOF1 header (panics without SOF1).
fn sof1_precision(stream: &[u8]) -> u8 {
    let at = stream
        .windows(2)
        .position(|w| w == [0xFF, 0xC1])
        .expect("an SOF1 marker");
    stream[at + 4]
}

/// Each component's sampling factors (H << 4 | V) in the SOF1 header.
fn sampling(stream: &[u8]) -> Vec<u8> {
    let at = stream
        .windows(2)
        .position(|w| w == [0xFF, 0xC1])
        .expect("an SOF1 marker");
    let count = usize::from(stream[at + 9]);
    (0..count).map(|k| stream[at + 11 + 3 * k]).collect()
}

fn decode_all(streams: &[Vec<u8>]) -> Vec<u16> {
    streams
        .iter()
        .flat_map(|s| decode(s, MAX_SAMPLES).unwrap().samples)
        .collect()
}

#[test]
fn extended_12_bit_from_dcmtk_decodes_as_dcmtk_does() {
    if !dcmtk::available("extended_12_bit_from_dcmtk_decodes_as_dcmtk_does") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Sizes that are not whole blocks exercise the cropped edges.
    for (rows, columns) in [(61, 77), (128, 96), (1, 9)] {
        let pixels = dcmtk::pixels(rows, columns, 1, 1);
        let dims = (rows, columns, 1, 1);
        let (streams, reference) = through_dcmtk(dir.path(), &pixels, dims, &["+ee"]);
        assert_eq!(sof1_precision(&streams[0]), 12, "a 12-bit stream");
        let image = decode(&streams[0], rows * columns).unwrap();
        assert_eq!(
            (image.width, image.height, image.components),
            (columns, rows, 1)
        );
        assert_eq!(image.precision, 12);
        dcmtk::assert_like_dcmtk(&image.samples, &reference, &format!("{rows}x{columns} +ee"));
        let lossy = dcmtk::max_difference(&image.samples, &pixels);
        assert!(lossy < 400, "quality 90 is close to the original: {lossy}");
    }
}

#[test]
fn eight_bit_baseline_and_extended_decode_as_dcmtk_does() {
    if !dcmtk::available("eight_bit_baseline_and_extended_decode_as_dcmtk_does") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (rows, columns) = (35, 50);
    let pixels: Vec<u16> = dcmtk::pixels(rows, columns, 1, 1)
        .iter()
        .map(|p| p / 16)
        .collect();
    let (native, compressed, back) = (
        dir.path().join("n.dcm"),
        dir.path().join("c.dcm"),
        dir.path().join("d.dcm"),
    );
    dcmtk::write_native_8(&native, &pixels, (rows, columns, 1, 1));
    for (args, sof) in [(["+eb"], 0xC0), (["+ee"], 0xC1)] {
        dcmtk::run("dcmcjpeg", &args, &native, &compressed);
        dcmtk::run("dcmdjpeg", &[], &compressed, &back);
        let stream = &dcmtk::fragments(&dcmtk::open(&compressed).0)[0];
        let at = stream.windows(2).position(|w| w == [0xFF, sof]).unwrap();
        assert_eq!(stream[at + 4], 8, "{args:?}: 8-bit samples");
        let image = decode(stream, MAX_SAMPLES).unwrap();
        assert_eq!(image.precision, 8);
        let (decoded, _) = dcmtk::open(&back);
        let bytes = decoded.get(dicom_dictionary_std::tags::PIXEL_DATA).unwrap();
        let reference: Vec<u16> = bytes
            .to_bytes()
            .unwrap()
            .iter()
            .map(|b| u16::from(*b))
            .collect();
        dcmtk::assert_like_dcmtk(
            &image.samples,
            &reference[..rows * columns],
            &format!("8-bit {args:?}"),
        );
    }
}

#[test]
fn quality_100_is_close_to_the_original() {
    if !dcmtk::available("quality_100_is_close_to_the_original") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (rows, columns) = (64, 72);
    let pixels = dcmtk::pixels(rows, columns, 1, 1);
    let dims = (rows, columns, 1, 1);
    let (streams, reference) = through_dcmtk(dir.path(), &pixels, dims, &["+ee", "+q", "100"]);
    let ours = decode_all(&streams);
    dcmtk::assert_like_dcmtk(&ours, &reference, "+q 100");
    let from_original = dcmtk::max_difference(&ours, &pixels);
    println!("+q 100: max difference from the original {from_original}");
    assert!(from_original <= 4, "{from_original}");
}

#[test]
fn every_frame_of_a_multi_frame_image() {
    if !dcmtk::available("every_frame_of_a_multi_frame_image") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (rows, columns, frames) = (40, 33, 4);
    let pixels = dcmtk::pixels(rows, columns, 1, frames);
    let dims = (rows, columns, 1, frames);
    let (streams, reference) = through_dcmtk(dir.path(), &pixels, dims, &["+ee"]);
    assert_eq!(streams.len(), frames, "one fragment per frame");
    let ours = decode_all(&streams);
    dcmtk::assert_like_dcmtk(&ours, &reference, &format!("{frames} frames"));
    let per_frame = rows * columns;
    assert_ne!(
        ours[..per_frame],
        ours[per_frame..2 * per_frame],
        "frames differ"
    );
}

#[test]
fn colour_in_every_sampling_dcmtk_writes_here() {
    if !dcmtk::available("colour_in_every_sampling_dcmtk_writes_here") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (rows, columns) = (37, 45);
    let pixels = dcmtk::pixels(rows, columns, 3, 1);
    let dims = (rows, columns, 3, 1);
    // 4:2:2 (YBR_FULL_422), 4:4:4 (YBR_FULL), 4:2:2 as YBR_FULL, RGB kept as RGB.
    // dcmcjpeg's "4:1:1" options write 4:2:0 (2x2 luma).
    let cases: [(&[&str], u8); 6] = [
        (&["+ee"], 0x21),
        (&["+ee", "+s4"], 0x11),
        (&["+ee", "+n2"], 0x21),
        (&["+ee", "+n1"], 0x22),
        (&["+ee", "+np"], 0x22),
        (&["+ee", "+cr"], 0x11),
    ];
    for (args, luma) in cases {
        let (streams, reference) = through_dcmtk(dir.path(), &pixels, dims, args);
        assert_eq!(sampling(&streams[0]), [luma, 0x11, 0x11], "{args:?}");
        let mut image = decode(&streams[0], MAX_SAMPLES).unwrap();
        assert_eq!(image.components, 3);
        if !args.contains(&"+cr") {
            image.ycbcr_to_rgb();
        }
        dcmtk::assert_like_dcmtk(&image.samples, &reference, &format!("colour {args:?}"));
    }
    // True 4:1:1 (4x1 luma) is refused, with the reason.
    let (mut streams, _) = through_dcmtk(dir.path(), &pixels, dims, &["+ee", "+n2"]);
    let at = streams[0]
        .windows(2)
        .position(|w| w == [0xFF, 0xC1])
        .unwrap();
    streams[0][at + 11] = 0x41;
    let e = decode(&streams[0], MAX_SAMPLES)
        .map(|i| i.width)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("sampling 1x1 against 4x1 (only 4:4:4"),
        "{e}"
    );
}

#[test]
fn restart_intervals_change_nothing_and_dcmtk_agrees() {
    let (rows, columns) = (50, 70);
    let pixels = dcmtk::pixels(rows, columns, 1, 1);
    let plain = Options {
        restart_interval: 0,
        quantiser: 1,
        wide_table: false,
        extras: false,
    };
    let without = decode(
        &encoder::encode(columns, rows, 1, &pixels, plain),
        MAX_SAMPLES,
    )
    .unwrap();
    let diff = dcmtk::max_difference(&without.samples, &pixels);
    assert!(diff <= 2, "quantiser 1 is near-lossless: {diff}");
    let mut streams = Vec::new();
    for interval in [1, 3, 8, 100] {
        let options = Options {
            restart_interval: interval,
            ..plain
        };
        let stream = encoder::encode(columns, rows, 1, &pixels, options);
        assert!(
            stream.windows(2).any(|w| w == [0xFF, 0xDD]),
            "a DRI segment"
        );
        let with = decode(&stream, MAX_SAMPLES).unwrap();
        assert_eq!(with.samples, without.samples, "restart interval {interval}");
        streams.push(stream);
    }
    if dcmtk::available("restart_intervals_change_nothing_and_dcmtk_agrees (DCMTK part)") {
        let dir = tempfile::tempdir().unwrap();
        let reference = dcmtk_decodes(dir.path(), &streams[1..2], (rows, columns, 1, 1));
        dcmtk::assert_like_dcmtk(&without.samples, &reference, "restart interval 3");
    }
}

#[test]
fn wide_quantisation_tables_and_app_and_com_segments() {
    let (rows, columns) = (24, 24);
    let pixels = dcmtk::pixels(rows, columns, 3, 1);
    let options = Options {
        restart_interval: 2,
        quantiser: 300,
        wide_table: true,
        extras: true,
    };
    let stream = encoder::encode(columns, rows, 3, &pixels, options);
    let image = decode(&stream, MAX_SAMPLES).unwrap();
    assert_eq!(image.components, 3);
    let narrow = Options {
        quantiser: 200,
        wide_table: false,
        ..options
    };
    let other = decode(
        &encoder::encode(columns, rows, 3, &pixels, narrow),
        MAX_SAMPLES,
    )
    .unwrap();
    assert_ne!(image.samples, other.samples, "the quantiser matters");
    if dcmtk::available("wide_quantisation_tables_and_app_and_com_segments (DCMTK part)") {
        let dir = tempfile::tempdir().unwrap();
        let reference = dcmtk_decodes(dir.path(), &[stream], (rows, columns, 3, 1));
        dcmtk::assert_like_dcmtk(&image.samples, &reference, "16-bit table, APP/COM");
    }
}

fn small_stream() -> Vec<u8> {
    let pixels = dcmtk::pixels(20, 20, 1, 1);
    let options = Options {
        restart_interval: 2,
        quantiser: 4,
        wide_table: false,
        extras: true,
    };
    encoder::encode(20, 20, 1, &pixels, options)
}

#[test]
fn malformed_streams_are_errors_with_a_reason() {
    let good = small_stream();
    assert!(decode(&good, MAX_SAMPLES).is_ok());
    let sof = good.windows(2).position(|w| w == [0xFF, 0xC1]).unwrap();
    let message = |data: &[u8], limit: usize| decode(data, limit).unwrap_err().to_string();

    // Cut anywhere before the last scan's end: an error (a cut just before EOI
    // leaves a complete image).
    for end in 0..good.len() - 2 {
        let e = message(&good[..end], MAX_SAMPLES);
        assert!(
            e.starts_with("malformed JPEG stream: "),
            "cut at {end}: {e}"
        );
    }
    assert!(message(&good[..good.len() - 40], MAX_SAMPLES).contains("truncated"));
    // An unknown marker instead of SOF1; a lossless SOF3 instead.
    let mut bad = good.clone();
    bad[sof + 1] = 0x4F;
    assert!(message(&bad, MAX_SAMPLES).contains("unknown marker FF4F"));
    bad[sof + 1] = 0xC3;
    assert!(message(&bad, MAX_SAMPLES).contains("lossless JPEG"));
    // A huge declared size: refused before allocating.
    let mut huge = good.clone();
    huge[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
    assert!(message(&huge, MAX_SAMPLES).contains("65535x65535x1 samples, more than"));
    // A size within the limits but far beyond what the stream can hold.
    huge[sof + 5..sof + 9].copy_from_slice(&[0x0F, 0xA0, 0x0F, 0xA0]);
    assert!(message(&huge, MAX_SAMPLES).contains("cannot hold the 4000x4000x1 samples"));
    // More than the DICOM attributes allow.
    assert!(message(&good, 20 * 19).contains("more than the 380 allowed"));
    // A restart marker out of sequence.
    let rst = good.windows(2).position(|w| w == [0xFF, 0xD1]).unwrap();
    let mut skipped = good.clone();
    skipped[rst + 1] = 0xD5;
    assert!(message(&skipped, MAX_SAMPLES).contains("RST5 where RST1 was expected"));
    // 16-bit precision is not ours (lossless only in DICOM).
    let mut p16 = good.clone();
    p16[sof + 4] = 16;
    assert!(
        decode(&p16, MAX_SAMPLES)
            .unwrap_err()
            .to_string()
            .contains("16-bit samples")
    );
    assert!(message(b"not a jpeg", MAX_SAMPLES).contains("no SOI"));
}

#[test]
fn corrupted_streams_never_panic() {
    let good = small_stream();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        let mut bad = good.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % bad.len();
            bad[at] = next() as u8;
        }
        // Either outcome is fine; a panic fails the test.
        let _ = decode(&bad, 1 << 20);
    }
}
