//! The grayscale and colour pipelines, frames, viewport, corrupt input and the
//! burned-in rule; codecs in `tests/codecs.rs`, the cache and the background queue
//! in `tests/cache.rs`.

mod bench;
mod cache;
mod codecs;
mod fixtures;

use dicom_core::{PrimitiveValue, VR};
use dicom_dictionary_std::tags;

use super::*;
use fixtures::{EXPLICIT_LE, Image, Values, gray, rgb, rises};

fn png() -> RenderOptions {
    RenderOptions {
        format: Format::Png,
        ..RenderOptions::default()
    }
}

fn render(part10: &[u8], options: &RenderOptions) -> Result<Rendered, RenderError> {
    render_instance(part10, options, &RiskClasses::default())
}

fn mean(img: &image::GrayImage) -> f64 {
    img.pixels().map(|p| f64::from(p.0[0])).sum::<f64>() / f64::from(img.width() * img.height())
}

#[test]
fn a_gradient_without_a_window_spans_black_to_white_and_rises() {
    let out = render(&Image::gradient(32, 64).part10(EXPLICIT_LE), &png()).unwrap();
    assert_eq!((out.width, out.height, out.mime), (64, 32, "image/png"));
    let img = gray(&out.bytes);
    assert!(rises(&img, 10, true));
    assert_eq!(img.get_pixel(0, 0).0[0], 0);
    assert_eq!(img.get_pixel(63, 0).0[0], 255);
}

#[test]
fn monochrome1_is_inverted() {
    let two = gray(
        &render(&Image::gradient(16, 64).part10(EXPLICIT_LE), &png())
            .unwrap()
            .bytes,
    );
    let mut image = Image::gradient(16, 64);
    image.photometric = "MONOCHROME1";
    let one = gray(&render(&image.part10(EXPLICIT_LE), &png()).unwrap().bytes);
    for x in 0..64 {
        assert_eq!(
            one.get_pixel(x, 3).0[0],
            255 - two.get_pixel(x, 3).0[0],
            "x {x}"
        );
    }
}

#[test]
fn the_data_set_window_applies_in_rescaled_units_and_an_override_replaces_it() {
    // Stored 0..4095, rescaled -1024..3071; a window of 0..400 HU.
    let image = Image::gradient(8, 256)
        .with(tags::WINDOW_CENTER, VR::DS, "200")
        .with(tags::WINDOW_WIDTH, VR::DS, "400");
    let bytes = image.part10(EXPLICIT_LE);
    let windowed = gray(&render(&bytes, &png()).unwrap().bytes);
    // Stored value of column x is x*4095/255, i.e. x*16.06 - 1024 HU.
    let at = |img: &image::GrayImage, x| img.get_pixel(x, 4).0[0];
    assert_eq!(at(&windowed, 60), 0, "-60 HU is below the window");
    assert_eq!(at(&windowed, 100), 255, "582 HU is above it");
    assert!(
        (100..160).contains(&at(&windowed, 76)),
        "196 HU mid-gray: {}",
        at(&windowed, 76)
    );
    // A lower center makes the image brighter.
    let brighter = RenderOptions {
        window: Some(Window {
            center: -500.0,
            width: 400.0,
            function: VoiFunction::Linear,
        }),
        ..png()
    };
    let low = gray(&render(&bytes, &brighter).unwrap().bytes);
    assert!(
        mean(&low) > mean(&windowed) + 30.0,
        "{} vs {}",
        mean(&low),
        mean(&windowed)
    );
}

#[test]
fn voi_functions_follow_ps3_3() {
    use lut::window;
    // LINEAR, c=100 w=50: from 74.5 (black) to 124.5 (white).
    assert_eq!(window(74.0, 100.0, 50.0, VoiFunction::Linear), 0.0);
    assert_eq!(window(125.0, 100.0, 50.0, VoiFunction::Linear), 255.0);
    assert!((window(99.5, 100.0, 50.0, VoiFunction::Linear) - 127.5).abs() < 1e-9);
    // LINEAR_EXACT: exactly c +- w/2.
    assert_eq!(window(75.0, 100.0, 50.0, VoiFunction::LinearExact), 0.0);
    assert!((window(100.0, 100.0, 50.0, VoiFunction::LinearExact) - 127.5).abs() < 1e-9);
    // SIGMOID: half at the center, never saturating exactly, rising.
    assert!((window(100.0, 100.0, 50.0, VoiFunction::Sigmoid) - 127.5).abs() < 1e-9);
    let (a, b) = (
        window(90.0, 100.0, 50.0, VoiFunction::Sigmoid),
        window(110.0, 100.0, 50.0, VoiFunction::Sigmoid),
    );
    assert!(0.0 < a && a < b && b < 255.0);
}

#[test]
fn sigmoid_from_the_data_set_differs_from_linear() {
    let image = |function: &str| {
        Image::gradient(4, 128)
            .with(tags::WINDOW_CENTER, VR::DS, "1000")
            .with(tags::WINDOW_WIDTH, VR::DS, "1000")
            .with(tags::VOILUT_FUNCTION, VR::CS, function.to_string())
    };
    let linear = gray(
        &render(&image("LINEAR").part10(EXPLICIT_LE), &png())
            .unwrap()
            .bytes,
    );
    let sigmoid = gray(
        &render(&image("SIGMOID").part10(EXPLICIT_LE), &png())
            .unwrap()
            .bytes,
    );
    assert!(rises(&sigmoid, 1, true));
    // Far below the center, LINEAR is black and SIGMOID is not quite.
    assert_eq!(linear.get_pixel(20, 1).0[0], 0);
    assert!(sigmoid.get_pixel(20, 1).0[0] > 0);
}

#[test]
fn signed_pixels_and_high_bits_beyond_bits_stored() {
    // 12 bits stored, signed: -2048..2047, with junk in the 4 unused high bits.
    let columns = 64u16;
    let values: Vec<u16> = (0..4)
        .flat_map(|_| {
            (0..columns).map(|x| {
                let v = -2048 + i32::from(x) * 4095 / 63;
                ((v as u16) & 0x0fff) | 0xa000
            })
        })
        .collect();
    let image = Image {
        signed: true,
        values: Values::U16(values),
        extra: Vec::new(),
        ..Image::gradient(4, columns)
    };
    let img = gray(&render(&image.part10(EXPLICIT_LE), &png()).unwrap().bytes);
    assert!(
        rises(&img, 2, true),
        "signed values in order, junk bits ignored"
    );
    assert_eq!(img.get_pixel(0, 2).0[0], 0);
}

#[test]
fn modality_lut_sequence_is_applied() {
    use dicom_core::value::DataSetSequence;
    use dicom_object::InMemDicomObject;
    // A LUT mapping stored 0..4095 backwards: the image comes out falling.
    let data: Vec<u16> = (0..4096u16).map(|v| 4095 - v).collect();
    let item = InMemDicomObject::from_element_iter([
        dicom_core::DataElement::new(
            tags::LUT_DESCRIPTOR,
            VR::US,
            PrimitiveValue::U16(vec![4096, 0, 12].into()),
        ),
        dicom_core::DataElement::new(tags::LUT_DATA, VR::OW, PrimitiveValue::U16(data.into())),
    ]);
    let mut image = Image::gradient(4, 64);
    image.extra.clear();
    let mut obj = image.object();
    obj.put(dicom_core::DataElement::new(
        tags::MODALITY_LUT_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(vec![item]),
    ));
    let img = gray(
        &render(&fixtures::part10(obj, EXPLICIT_LE), &png())
            .unwrap()
            .bytes,
    );
    assert_eq!(img.get_pixel(0, 1).0[0], 255);
    assert_eq!(img.get_pixel(63, 1).0[0], 0);
}

#[test]
fn palette_colours_come_out_right() {
    // Indices 0..3 in four column bands; 16-bit palette entries.
    let colours: [[u16; 3]; 4] = [
        [0xffff, 0, 0],
        [0, 0xffff, 0],
        [0, 0, 0xffff],
        [0x8080, 0x8080, 0],
    ];
    let values: Vec<u8> = (0..4).flat_map(|_| (0..16u8).map(|x| x / 4)).collect();
    let lut = |c: usize| PrimitiveValue::U16(colours.iter().map(|rgb| rgb[c]).collect());
    let image = Image {
        photometric: "PALETTE COLOR",
        ..Image::gradient8(4, 16)
    };
    let image = Image {
        values: Values::U8(values),
        ..image
    }
    .with(
        tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
        VR::US,
        PrimitiveValue::U16(vec![4, 0, 16].into()),
    )
    .with(
        tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
        VR::US,
        PrimitiveValue::U16(vec![4, 0, 16].into()),
    )
    .with(
        tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
        VR::US,
        PrimitiveValue::U16(vec![4, 0, 16].into()),
    )
    .with(tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA, VR::OW, lut(0))
    .with(tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA, VR::OW, lut(1))
    .with(tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA, VR::OW, lut(2));
    let img = rgb(&render(&image.part10(EXPLICIT_LE), &png()).unwrap().bytes);
    assert_eq!(img.get_pixel(1, 1).0, [255, 0, 0]);
    assert_eq!(img.get_pixel(5, 1).0, [0, 255, 0]);
    assert_eq!(img.get_pixel(9, 1).0, [0, 0, 255]);
    assert_eq!(img.get_pixel(13, 1).0, [128, 128, 0]);
}

/// Four pixels: red, green, blue, white, as RGB triples.
const PRIMARIES: [[u8; 3]; 4] = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]];

fn colour_image(photometric: &'static str, planar: u16, values: Vec<u8>, columns: u16) -> Image {
    Image {
        samples: 3,
        photometric,
        values: Values::U8(values),
        ..Image::gradient8(1, columns)
    }
    .with(tags::PLANAR_CONFIGURATION, VR::US, planar)
}

fn close(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 3)
}

#[test]
fn rgb_interleaved_and_planar_and_ybr_full_render_the_same_colours() {
    let interleaved: Vec<u8> = PRIMARIES.concat();
    let planar: Vec<u8> = (0..3)
        .flat_map(|c| PRIMARIES.iter().map(move |p| p[c]))
        .collect();
    let ybr: Vec<u8> = PRIMARIES.iter().flat_map(|p| rgb_to_ybr(*p)).collect();
    for image in [
        colour_image("RGB", 0, interleaved, 4),
        colour_image("RGB", 1, planar, 4),
        colour_image("YBR_FULL", 0, ybr, 4),
    ] {
        let img = rgb(&render(&image.part10(EXPLICIT_LE), &png()).unwrap().bytes);
        for (x, want) in PRIMARIES.iter().enumerate() {
            let got = img.get_pixel(x as u32, 0).0;
            assert!(
                close(got, *want),
                "{}: pixel {x} {got:?}, want {want:?}",
                image.photometric
            );
        }
    }
}

fn rgb_to_ybr([r, g, b]: [u8; 3]) -> [u8; 3] {
    let (r, g, b) = (f64::from(r), f64::from(g), f64::from(b));
    let c = |v: f64| v.round().clamp(0.0, 255.0) as u8;
    [
        c(0.299 * r + 0.587 * g + 0.114 * b),
        c(-0.168_736 * r - 0.331_264 * g + 0.5 * b + 128.0),
        c(0.5 * r - 0.418_688 * g - 0.081_312 * b + 128.0),
    ]
}

#[test]
fn ybr_full_422_pairs_share_their_chroma() {
    // Two pairs: gray 50/200 (neutral chroma), then red-ish.
    let red = rgb_to_ybr([200, 30, 30]);
    let values = vec![50, 200, 128, 128, red[0], red[0], red[1], red[2]];
    let image = colour_image("YBR_FULL_422", 0, values, 4);
    let img = rgb(&render(&image.part10(EXPLICIT_LE), &png()).unwrap().bytes);
    assert!(close(img.get_pixel(0, 0).0, [50, 50, 50]));
    assert!(close(img.get_pixel(1, 0).0, [200, 200, 200]));
    assert!(
        close(img.get_pixel(3, 0).0, [200, 30, 30]),
        "{:?}",
        img.get_pixel(3, 0).0
    );
}

/// Three frames, each flat: 0, 2000, 4000.
fn three_frames() -> Image {
    let values = [0u16, 2000, 4000]
        .iter()
        .flat_map(|v| std::iter::repeat_n(*v, 16 * 16))
        .collect();
    Image {
        frames: 3,
        values: Values::U16(values),
        ..Image::gradient(16, 16)
    }
    .with(tags::WINDOW_CENTER, VR::DS, "976")
    .with(tags::WINDOW_WIDTH, VR::DS, "4000")
}

#[test]
fn the_middle_frame_is_the_default_and_others_can_be_asked_for() {
    let bytes = three_frames().part10(EXPLICIT_LE);
    let level = |frame| {
        let options = RenderOptions { frame, ..png() };
        gray(&render(&bytes, &options).unwrap().bytes)
            .get_pixel(8, 8)
            .0[0]
    };
    let (first, middle, last) = (level(Some(1)), level(None), level(Some(3)));
    assert_eq!(level(Some(2)), middle);
    assert!(first < middle && middle < last, "{first} {middle} {last}");
    let err = render(
        &bytes,
        &RenderOptions {
            frame: Some(4),
            ..png()
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            RenderError::NoSuchFrame {
                asked: 4,
                frames: 3
            }
        ),
        "{err}"
    );
}

#[test]
fn the_viewport_keeps_the_aspect_ratio_and_never_upscales_unless_asked() {
    let bytes = Image::gradient(256, 512).part10(EXPLICIT_LE);
    let fit = |viewport| {
        let out = render(
            &bytes,
            &RenderOptions {
                viewport,
                ..RenderOptions::default()
            },
        )
        .unwrap();
        let img = gray(&out.bytes);
        assert_eq!((img.width(), img.height()), (out.width, out.height));
        assert_eq!(out.mime, "image/jpeg");
        (out.width, out.height)
    };
    assert_eq!(fit(Viewport::square(128)), (128, 64));
    assert_eq!(
        fit(Viewport {
            max_width: None,
            max_height: Some(32),
            upscale: false
        }),
        (64, 32)
    );
    assert_eq!(fit(Viewport::square(1024)), (512, 256));
    assert_eq!(
        fit(Viewport {
            upscale: true,
            ..Viewport::square(1024)
        }),
        (1024, 512)
    );
    let img = gray(
        &render(
            &bytes,
            &RenderOptions {
                viewport: Viewport::square(128),
                ..png()
            },
        )
        .unwrap()
        .bytes,
    );
    assert!(rises(&img, 30, true), "scaled gradient still rises");
}

#[test]
fn corrupt_and_absurd_input_gives_errors_not_panics() {
    let good = Image::gradient(16, 16).part10(EXPLICIT_LE);
    // Pixel Data cut short: the element length still says 512 bytes.
    let truncated = &good[..good.len() - 100];
    assert!(render(truncated, &png()).is_err());
    // Every prefix and some bit flips: never a panic.
    for cut in (0..good.len()).step_by(37) {
        let _ = render(&good[..cut], &png());
    }
    for at in (132..good.len()).step_by(13) {
        let mut bad = good.clone();
        bad[at] ^= 0x5a;
        let _ = render(&bad, &png());
    }
    assert!(matches!(
        render(b"not dicom", &png()),
        Err(RenderError::Corrupt(_))
    ));
    // Claims 65535 x 65535 x 3 in 60000 frames: refused before allocating.
    let huge = Image::gradient(16, 16)
        .with(tags::ROWS, VR::US, 65535_u16)
        .with(tags::COLUMNS, VR::US, 65535_u16);
    assert!(matches!(
        render(&huge.part10(EXPLICIT_LE), &png()),
        Err(RenderError::TooLarge(_))
    ));
    let frames = Image::gradient(16, 16).with(tags::NUMBER_OF_FRAMES, VR::IS, "9999999");
    assert!(matches!(
        render(&frames.part10(EXPLICIT_LE), &png()),
        Err(RenderError::TooLarge(_))
    ));
    // More frames declared than present.
    let short = Image::gradient(16, 16).with(tags::NUMBER_OF_FRAMES, VR::IS, "3");
    let err = render(
        &short.part10(EXPLICIT_LE),
        &RenderOptions {
            frame: Some(3),
            ..png()
        },
    )
    .unwrap_err();
    assert!(matches!(err, RenderError::Corrupt(_)), "{err}");
    // No pixel data at all.
    let mut obj = Image::gradient(16, 16).object();
    obj.remove_element(tags::PIXEL_DATA);
    let err = render(&fixtures::part10(obj, EXPLICIT_LE), &png()).unwrap_err();
    assert!(matches!(err, RenderError::NoPixelData), "{err}");
}

#[test]
fn burned_in_risk_classes_are_refused_unless_the_instance_says_no() {
    let us = |bia: Option<&str>| {
        let image = Image::gradient(8, 8).with(tags::MODALITY, VR::CS, "US");
        match bia {
            Some(v) => image.with(tags::BURNED_IN_ANNOTATION, VR::CS, v.to_string()),
            None => image,
        }
        .part10(EXPLICIT_LE)
    };
    let err = render(&us(None), &png()).unwrap_err();
    assert!(
        matches!(&err, RenderError::Refused(Refusal::RiskClass { class }) if class == "modality US"),
        "{err}"
    );
    assert!(render(&us(Some("NO")), &png()).is_ok());
    assert!(render(&us(Some("YES")), &png()).is_err());
    // Secondary capture by SOP class; CT is fine unless it says YES.
    let sc = Image::gradient(8, 8).with(tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.7");
    assert!(matches!(
        render(&sc.part10(EXPLICIT_LE), &png()),
        Err(RenderError::Refused(_))
    ));
    assert!(render(&Image::gradient(8, 8).part10(EXPLICIT_LE), &png()).is_ok());
    let ct_yes = Image::gradient(8, 8).with(tags::BURNED_IN_ANNOTATION, VR::CS, "YES");
    let err = render(&ct_yes.part10(EXPLICIT_LE), &png()).unwrap_err();
    assert!(
        matches!(err, RenderError::Refused(Refusal::BurnedInAnnotation)),
        "{err}"
    );
    // A facility without risk classes renders US.
    assert!(render_instance(&us(None), &png(), &RiskClasses::none()).is_ok());
    // Per-facility classes.
    let mut facilities = std::collections::BTreeMap::new();
    facilities.insert("clinic-a".to_string(), RiskClasses::parse(["XA"]).unwrap());
    let policy = RiskPolicy::new(RiskClasses::default(), facilities);
    let name = |n| crate::domain::FacilityName::parse(n).unwrap();
    assert_eq!(
        policy.for_facility(&name("clinic-a")),
        &RiskClasses::parse(["XA"]).unwrap()
    );
    assert_eq!(
        policy.for_facility(&name("clinic-b")),
        &RiskClasses::default()
    );
    assert!(RiskClasses::parse(["us"]).is_err());
    assert!(RiskClasses::parse(["1.2..3"]).is_err());
    assert_ne!(
        RiskClasses::default().fingerprint(),
        RiskClasses::none().fingerprint()
    );
}
