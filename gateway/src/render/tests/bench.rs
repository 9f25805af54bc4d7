//! Thumbnails per second for a 512 x 512 CT on one core (the issue asks for at
//! least 50): `cargo test -p gateway --lib render::tests::bench -- --ignored
//! --nocapture`. The whole path after the blob read: parse, decode, window, scale to
//! 128, JPEG encode.

use std::time::{Duration, Instant};

use dicom_core::VR;
use dicom_dictionary_std::tags;

use super::fixtures::{EXPLICIT_LE, Image, Values};
use crate::render::{RenderOptions, RiskClasses, Viewport, render_instance};

fn ct_512() -> Vec<u8> {
    // A body-like disc with texture over air, signed 16-bit, rescaled to HU.
    let values = (0..512i32)
        .flat_map(|y| {
            (0..512i32).map(move |x| {
                let (dx, dy) = (x - 256, y - 256);
                let inside = dx * dx + dy * dy < 200 * 200;
                let texture = (x * 7 + y * 13) % 61;
                let hu = if inside {
                    40 + texture
                } else {
                    -1000 + texture / 4
                };
                (hu + 1024) as u16
            })
        })
        .collect();
    Image {
        values: Values::U16(values),
        bits_stored: 16,
        ..Image::gradient(512, 512)
    }
    .with(tags::WINDOW_CENTER, VR::DS, "40")
    .with(tags::WINDOW_WIDTH, VR::DS, "400")
    .part10(EXPLICIT_LE)
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn thumbnails_per_second_for_512_ct() {
    let bytes = ct_512();
    let options = RenderOptions {
        viewport: Viewport::square(128),
        ..RenderOptions::default()
    };
    let risk = RiskClasses::default();
    let started = Instant::now();
    let mut made = 0u32;
    while started.elapsed() < Duration::from_secs(5) {
        let out = render_instance(&bytes, &options, &risk).unwrap();
        assert_eq!((out.width, out.height), (128, 128));
        made += 1;
    }
    let rate = f64::from(made) / started.elapsed().as_secs_f64();
    println!("thumbnails/s (512x512 CT -> 128 JPEG, one core): {rate:.1}");
}
