//! Test images made at test time: native data sets built with dicom-object in any
//! native syntax, compressed copies made by DCMTK (`dcmcrle`, `dcmcjpeg`,
//! `dcmcjpls`) and, for JPEG 2000, by Pillow's OpenJPEG (in `target/python`, as
//! `scripts/test.sh` installs it). A test whose tool is missing says so and skips.

use std::process::Command;

use dicom_core::value::PixelFragmentSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

pub(crate) const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
pub(crate) const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
pub(crate) const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
pub(crate) const DEFLATED: &str = "1.2.840.10008.1.2.1.99";
pub(crate) const JPEG_2000: &str = "1.2.840.10008.1.2.4.90";
pub(crate) const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
const PYTHON_DEPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/python");

/// Pixel values as stored.
#[derive(Debug, Clone)]
pub(crate) enum Values {
    U8(Vec<u8>),
    U16(Vec<u16>),
}

/// An image to build a data set from.
#[derive(Debug, Clone)]
pub(crate) struct Image {
    pub(crate) rows: u16,
    pub(crate) columns: u16,
    pub(crate) samples: u16,
    pub(crate) bits_allocated: u16,
    pub(crate) bits_stored: u16,
    pub(crate) signed: bool,
    pub(crate) photometric: &'static str,
    pub(crate) frames: u32,
    pub(crate) values: Values,
    pub(crate) extra: Vec<(Tag, VR, PrimitiveValue)>,
}

impl Image {
    /// `rows x columns` 16-bit gray, 12 bits stored, rising from 0 at the left to
    /// 4095 at the right (rows alike): a CT with rescale -1024.
    pub(crate) fn gradient(rows: u16, columns: u16) -> Image {
        let values = (0..rows)
            .flat_map(|_| {
                (0..columns).map(move |x| (u32::from(x) * 4095 / u32::from(columns - 1)) as u16)
            })
            .collect();
        Image {
            rows,
            columns,
            samples: 1,
            bits_allocated: 16,
            bits_stored: 12,
            signed: false,
            photometric: "MONOCHROME2",
            frames: 1,
            values: Values::U16(values),
            extra: vec![
                (tags::RESCALE_SLOPE, VR::DS, PrimitiveValue::from("1")),
                (
                    tags::RESCALE_INTERCEPT,
                    VR::DS,
                    PrimitiveValue::from("-1024"),
                ),
            ],
        }
    }

    /// The same ramp in 8 bits (0 to 255).
    pub(crate) fn gradient8(rows: u16, columns: u16) -> Image {
        let values = (0..rows)
            .flat_map(|_| {
                (0..columns).map(move |x| (u32::from(x) * 255 / u32::from(columns - 1)) as u8)
            })
            .collect();
        Image {
            bits_allocated: 8,
            bits_stored: 8,
            values: Values::U8(values),
            extra: Vec::new(),
            ..Image::gradient(rows, columns)
        }
    }

    pub(crate) fn with(mut self, tag: Tag, vr: VR, value: impl Into<PrimitiveValue>) -> Image {
        self.extra.push((tag, vr, value.into()));
        self
    }

    pub(crate) fn object(&self) -> InMemDicomObject {
        let mut obj = InMemDicomObject::new_empty();
        let mut put = |tag: Tag, vr: VR, value: PrimitiveValue| {
            obj.put(DataElement::new(tag, vr, value));
        };
        put(tags::SOP_CLASS_UID, VR::UI, CT.into());
        put(
            tags::SOP_INSTANCE_UID,
            VR::UI,
            "1.2.826.0.1.3680043.9.7.1".into(),
        );
        put(
            tags::STUDY_INSTANCE_UID,
            VR::UI,
            "1.2.826.0.1.3680043.9.7.2".into(),
        );
        put(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            "1.2.826.0.1.3680043.9.7.3".into(),
        );
        put(tags::MODALITY, VR::CS, "CT".into());
        put(tags::SAMPLES_PER_PIXEL, VR::US, self.samples.into());
        put(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            self.photometric.into(),
        );
        put(tags::ROWS, VR::US, self.rows.into());
        put(tags::COLUMNS, VR::US, self.columns.into());
        put(tags::BITS_ALLOCATED, VR::US, self.bits_allocated.into());
        put(tags::BITS_STORED, VR::US, self.bits_stored.into());
        put(tags::HIGH_BIT, VR::US, (self.bits_stored - 1).into());
        put(
            tags::PIXEL_REPRESENTATION,
            VR::US,
            u16::from(self.signed).into(),
        );
        if self.samples == 3 {
            put(tags::PLANAR_CONFIGURATION, VR::US, 0_u16.into());
        }
        if self.frames > 1 {
            put(
                tags::NUMBER_OF_FRAMES,
                VR::IS,
                self.frames.to_string().into(),
            );
        }
        for (tag, vr, value) in &self.extra {
            put(*tag, *vr, value.clone());
        }
        let pixels = match &self.values {
            Values::U8(v) => DataElement::new(
                tags::PIXEL_DATA,
                VR::OB,
                PrimitiveValue::U8(v.clone().into()),
            ),
            Values::U16(v) => DataElement::new(
                tags::PIXEL_DATA,
                VR::OW,
                PrimitiveValue::U16(v.clone().into()),
            ),
        };
        obj.put(pixels);
        obj
    }

    /// As a Part-10 file in native syntax `ts`.
    pub(crate) fn part10(&self, ts: &str) -> Vec<u8> {
        part10(self.object(), ts)
    }
}

/// `obj` as a Part-10 file in `ts` (its Pixel Data already in that syntax's form).
pub(crate) fn part10(obj: InMemDicomObject, ts: &str) -> Vec<u8> {
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(ts)
        .media_storage_sop_class_uid(CT)
        .media_storage_sop_instance_uid("1.2.826.0.1.3680043.9.7.1");
    let mut out = Vec::new();
    obj.with_meta(meta)
        .expect("meta")
        .write_all(&mut out)
        .expect("write");
    out
}

fn runs(tool: &str, test: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED {test}: {tool} is not installed (apt-get install dcmtk)");
    }
    ok
}

/// `image` (Explicit VR LE) compressed by DCMTK `tool` with `args`; `None` (said) when
/// the tool is missing.
pub(crate) fn dcmtk(image: &Image, tool: &str, args: &[&str], test: &str) -> Option<Vec<u8>> {
    if !runs(tool, test) {
        return None;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (input, output) = (dir.path().join("in.dcm"), dir.path().join("out.dcm"));
    std::fs::write(&input, image.part10(EXPLICIT_LE)).expect("write input");
    let out = Command::new(tool)
        .args(args)
        .arg(&input)
        .arg(&output)
        .output()
        .expect("run DCMTK");
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(std::fs::read(&output).expect("read output"))
}

/// A single-frame gray `image` in JPEG 2000 (lossless) made by Pillow's OpenJPEG;
/// `None` (said) when Pillow is missing.
pub(crate) fn jpeg2000(image: &Image, test: &str) -> Option<Vec<u8>> {
    let Values::U16(values) = &image.values else {
        panic!("16-bit gray only");
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (raw, j2k) = (dir.path().join("in.raw"), dir.path().join("out.j2k"));
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&raw, bytes).expect("write raw");
    let script = "import sys\nfrom PIL import Image\n\
        w, h, src, dst = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]\n\
        img = Image.frombytes('I;16', (w, h), open(src, 'rb').read())\n\
        img.save(dst, format='JPEG2000', irreversible=False, no_jp2=True)\n";
    let made = Command::new("python3")
        .env("PYTHONPATH", PYTHON_DEPS)
        .args(["-c", script])
        .arg(image.columns.to_string())
        .arg(image.rows.to_string())
        .args([&raw, &j2k])
        .output();
    let codestream = match made {
        Ok(out) if out.status.success() => std::fs::read(&j2k).expect("read j2k"),
        other => {
            eprintln!(
                "SKIPPED {test}: no JPEG 2000 encoder (python3 with Pillow in {PYTHON_DEPS}, as scripts/test.sh installs it): {other:?}"
            );
            return None;
        }
    };
    let mut obj = image.object();
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PixelFragmentSequence::new_fragments(vec![codestream]),
    ));
    Some(part10(obj, JPEG_2000))
}

/// Decodes a rendered image to 8-bit gray.
pub(crate) fn gray(bytes: &[u8]) -> image::GrayImage {
    image::load_from_memory(bytes)
        .expect("decodable output")
        .to_luma8()
}

/// Decodes a rendered image to 8-bit RGB.
pub(crate) fn rgb(bytes: &[u8]) -> image::RgbImage {
    image::load_from_memory(bytes)
        .expect("decodable output")
        .to_rgb8()
}

/// Whether row `y` of `img` rises from left to right: by pixel when `exact`, else by
/// the means of 8 column bands (lossy codecs ripple).
pub(crate) fn rises(img: &image::GrayImage, y: u32, exact: bool) -> bool {
    let row: Vec<f64> = (0..img.width())
        .map(|x| f64::from(img.get_pixel(x, y).0[0]))
        .collect();
    if exact {
        return row.windows(2).all(|w| w[1] >= w[0]) && row[row.len() - 1] > row[0] + 100.0;
    }
    let band = row.len() / 8;
    let means: Vec<f64> = row
        .chunks(band.max(1))
        .map(|c| c.iter().sum::<f64>() / c.len() as f64)
        .collect();
    means.windows(2).all(|w| w[1] > w[0]) && means[means.len() - 1] > means[0] + 100.0
}
