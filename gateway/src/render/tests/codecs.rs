//! Every transfer syntax the gateway stores renders: the native ones (made with
//! dicom-object) pixel for pixel alike, the lossless compressed ones (DCMTK, Pillow)
//! equal to the native rendering, the lossy ones close to it.

use dicom_core::VR;
use dicom_dictionary_std::tags;

use super::fixtures::{
    DEFLATED, EXPLICIT_BE, EXPLICIT_LE, IMPLICIT_LE, Image, Values, dcmtk, gray, jpeg2000, rgb,
    rises,
};
use super::{RenderError, RenderOptions, png, render, three_frames};

const RLE: &str = "1.2.840.10008.1.2.5";
const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";
const JPEG_LOSSLESS: &str = "1.2.840.10008.1.2.4.70";
const JPEG_LS: &str = "1.2.840.10008.1.2.4.80";

fn syntax_of(part10: &[u8]) -> String {
    dimse::part10::parse_meta(part10)
        .unwrap()
        .transfer_syntax
        .trim_end_matches('\0')
        .to_string()
}

fn rendered(part10: &[u8]) -> image::GrayImage {
    gray(&render(part10, &png()).unwrap().bytes)
}

fn ct() -> Image {
    Image::gradient(32, 64)
        .with(tags::WINDOW_CENTER, VR::DS, "1000")
        .with(tags::WINDOW_WIDTH, VR::DS, "4000")
}

#[test]
fn native_syntaxes_render_identically() {
    for image in [ct(), Image::gradient8(16, 64)] {
        let reference = rendered(&image.part10(EXPLICIT_LE));
        assert!(rises(&reference, 5, true));
        for ts in [IMPLICIT_LE, EXPLICIT_BE, DEFLATED] {
            let bytes = image.part10(ts);
            assert_eq!(syntax_of(&bytes), ts);
            assert_eq!(
                rendered(&bytes),
                reference,
                "{ts}, {} bits",
                image.bits_allocated
            );
        }
    }
}

/// A lossless copy renders exactly as the native original.
fn lossless(made: Option<Vec<u8>>, image: &Image, ts: &str) {
    let Some(bytes) = made else { return };
    assert_eq!(syntax_of(&bytes), ts);
    assert_eq!(
        rendered(&bytes),
        rendered(&image.part10(EXPLICIT_LE)),
        "{ts}"
    );
}

/// A lossy copy has the size and still rises.
fn lossy(made: Option<Vec<u8>>, image: &Image, ts: &str) {
    let Some(bytes) = made else { return };
    assert_eq!(syntax_of(&bytes), ts);
    let img = rendered(&bytes);
    assert_eq!(
        (img.width(), img.height()),
        (u32::from(image.columns), u32::from(image.rows))
    );
    assert!(rises(&img, u32::from(image.rows) / 2, false), "{ts}");
}

#[test]
fn rle_renders_as_native() {
    lossless(dcmtk(&ct(), "dcmcrle", &[], "rle"), &ct(), RLE);
}

#[test]
fn jpeg_lossless_renders_as_native() {
    lossless(
        dcmtk(&ct(), "dcmcjpeg", &["+e1"], "jpeg_lossless"),
        &ct(),
        JPEG_LOSSLESS,
    );
}

#[test]
fn jpeg_ls_renders_as_native() {
    lossless(dcmtk(&ct(), "dcmcjpls", &[], "jpeg_ls"), &ct(), JPEG_LS);
}

#[test]
fn jpeg_2000_renders_as_native() {
    lossless(
        jpeg2000(&ct(), "jpeg_2000"),
        &ct(),
        super::fixtures::JPEG_2000,
    );
}

#[test]
fn jpeg_baseline_8_bit_renders() {
    let image = Image::gradient8(32, 64);
    lossy(
        dcmtk(&image, "dcmcjpeg", &["+eb"], "jpeg_baseline"),
        &image,
        JPEG_BASELINE,
    );
}

#[test]
fn jpeg_extended_12_bit_renders() {
    lossy(
        dcmtk(&ct(), "dcmcjpeg", &["+ee"], "jpeg_extended"),
        &ct(),
        JPEG_EXTENDED,
    );
}

/// 32 x 32 in four bands: red, green, blue, white.
fn colour_bands() -> Image {
    const BANDS: [[u8; 3]; 4] = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]];
    let values = (0..32)
        .flat_map(|_| (0..32).flat_map(|x| BANDS[x / 8]))
        .collect();
    Image {
        samples: 3,
        photometric: "RGB",
        values: Values::U8(values),
        ..Image::gradient8(32, 32)
    }
}

#[test]
fn colour_in_rle_and_jpeg_keeps_its_colours() {
    let image = colour_bands();
    let made = [
        (dcmtk(&image, "dcmcrle", &[], "colour rle"), 2),
        (dcmtk(&image, "dcmcjpeg", &["+eb"], "colour jpeg"), 40),
        (dcmtk(&image, "dcmcjpls", &[], "colour jpeg-ls"), 2),
    ];
    for (bytes, tolerance) in made {
        let Some(bytes) = bytes else { continue };
        let img = rgb(&render(&bytes, &png()).unwrap().bytes);
        for (x, want) in [
            (3, [255, 0, 0]),
            (11, [0, 255, 0]),
            (19, [0, 0, 255]),
            (27, [255, 255, 255]),
        ] {
            let got = img.get_pixel(x, 16).0;
            let near = got
                .iter()
                .zip(want)
                .all(|(a, b): (&u8, u8)| a.abs_diff(b) <= tolerance);
            assert!(near, "{}: x {x}: {got:?} want {want:?}", syntax_of(&bytes));
        }
    }
}

#[test]
fn multi_frame_rle_renders_the_middle_frame() {
    let image = three_frames();
    let Some(bytes) = dcmtk(&image, "dcmcrle", &[], "multi-frame rle") else {
        return;
    };
    assert_eq!(rendered(&bytes), rendered(&image.part10(EXPLICIT_LE)));
    let first = RenderOptions {
        frame: Some(1),
        ..png()
    };
    assert_ne!(
        render(&bytes, &first).unwrap().bytes,
        render(&bytes, &png()).unwrap().bytes
    );
}

#[test]
fn damaged_compressed_pixel_data_gives_errors_not_panics() {
    let image = Image::gradient8(32, 64);
    let sources = [
        dcmtk(&image, "dcmcjpeg", &["+eb"], "damaged jpeg"),
        dcmtk(&ct(), "dcmcjpeg", &["+ee"], "damaged jpeg 12"),
        dcmtk(&ct(), "dcmcrle", &[], "damaged rle"),
        dcmtk(&ct(), "dcmcjpls", &[], "damaged jpeg-ls"),
    ];
    for bytes in sources.into_iter().flatten() {
        // Cut short: the fragment or the sequence ends early.
        let err = render(&bytes[..bytes.len() - 120], &png()).unwrap_err();
        assert!(
            matches!(err, RenderError::Corrupt(_)),
            "{}: {err}",
            syntax_of(&bytes)
        );
        // Bytes flipped inside the compressed stream: an error or some image, no panic.
        for at in (bytes.len().saturating_sub(600).max(400)..bytes.len() - 20).step_by(23) {
            let mut bad = bytes.clone();
            bad[at] ^= 0xff;
            let _ = render(&bad, &png());
        }
    }
}
