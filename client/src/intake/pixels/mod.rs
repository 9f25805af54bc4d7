//! Pixel privacy at the facility client: identifying text burned into the pixels
//! must not reach the gateway. The forwarder calls [`Screener::screen`] on every
//! spooled instance before de-identification (on a blocking thread, never in the
//! modality's C-STORE path):
//!
//! 1. [`risk`]: Burned In Annotation = YES, or a risky class or modality without an
//!    explicit NO, is held unless a pixel rule cleans it;
//! 2. [`rules`] + [`blank`]: the first matching `[[pixels.rules]]` blanks its
//!    rectangles in every frame ([`frames`] decodes compressed pixel data; the result
//!    is sent as native Explicit VR Little Endian), then Burned In Annotation = NO
//!    and the de-identification adds the Clean Pixel Data code (113101);
//! 3. [`ocr`] + [`identifiers`]: for risky instances (also after cleaning), tesseract
//!    reads a few frames and the instance is held when the text contains its
//!    patient's name, ID or birth date.
//!
//! A held instance stays in the outbox (state `held`, with the reason) until a person
//! releases it as it is or keeps it local (`pacs-client held ...`, audited). Reasons
//! and logs name the kind of identifier found, never its value. No I/O here except
//! running tesseract.

pub mod blank;
pub mod frames;
pub mod identifiers;
pub mod ocr;
pub mod png;
pub mod risk;
pub mod rules;

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject};

use self::frames::Frames;
use self::identifiers::Identifiers;
use self::ocr::Ocr;
use self::risk::{Annotation, Risk, RiskLists};
use crate::config::pixels::{PixelRule, PixelsConfig};

/// Explicit VR Little Endian: how a cleaned instance is sent.
pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";

/// Why pixels could not be read, cleaned or scanned.
#[derive(Debug, thiserror::Error)]
pub enum PixelError {
    /// A layout this client does not handle.
    #[error("unsupported pixel data: {0}")]
    Unsupported(String),
    /// The codec failed or is missing.
    #[error("cannot decode the pixel data: {0}")]
    Decode(String),
    /// Tesseract failed.
    #[error("text detection failed: {0}")]
    Ocr(String),
}

/// What the forwarder does with an instance.
#[derive(Debug)]
pub enum Screened {
    /// Send it: the data set (cleaned or not, no meta) and its transfer syntax.
    Forward {
        /// The data set to de-identify.
        object: InMemDicomObject,
        /// Its transfer syntax.
        transfer_syntax: String,
        /// A pixel rule blanked it: the de-identification adds Clean Pixel Data.
        cleaned: bool,
    },
    /// Keep it at the client; the reason, for `status` and `held list`.
    Held(String),
}

/// The pixel policy in effect (built once per forwarder).
#[derive(Debug, Clone)]
pub struct Screener {
    lists: RiskLists,
    rules: Vec<PixelRule>,
    ocr: Option<Ocr>,
    max_frames: u32,
}

impl Screener {
    /// From `[pixels]`; finds tesseract unless OCR is off. Errors when the rules are
    /// unusable or OCR is required and missing.
    pub fn new(config: &PixelsConfig) -> Result<Screener, String> {
        config.check()?;
        Ok(Screener {
            lists: RiskLists::new(config),
            rules: config.rules.clone(),
            ocr: Ocr::probe(config)?,
            max_frames: config.ocr_max_frames.max(1),
        })
    }

    /// Whether text detection runs.
    pub fn ocr(&self) -> Option<&Ocr> {
        self.ocr.as_ref()
    }

    /// The first rule that matches `object`, if it has pixels.
    pub fn rule_for(&self, object: &InMemDicomObject, sop_class: &str) -> Option<&PixelRule> {
        if !frames::has_pixels(object) {
            return None;
        }
        rules::find(&self.rules, &rules::Facts::of(object, sop_class))
    }

    /// Whether [`Screener::screen`] would forward the instance as it is, without
    /// holding it, cleaning it or reading its pixels for text, decided from `header`
    /// alone: its data set without the pixel data (which it has). The forwarder then
    /// streams the pixel data from the spool instead of loading it.
    pub fn forwards_unchanged(
        &self,
        header: &InMemDicomObject,
        sop_class: &str,
        released: bool,
    ) -> bool {
        if released {
            return true;
        }
        if rules::find(&self.rules, &rules::Facts::of(header, sop_class)).is_some() {
            return false;
        }
        let annotation = Annotation::parse(text(header, tags::BURNED_IN_ANNOTATION).as_deref());
        let modality = text(header, tags::MODALITY);
        match self
            .lists
            .assess(sop_class, modality.as_deref(), annotation)
        {
            Risk::None => true,
            // `read_text` runs only with OCR and identifiers to look for.
            Risk::DeclaredClean => self.ocr.is_none() || Identifiers::of(header).is_empty(),
            Risk::Hold(_) => false,
        }
    }

    /// Decides what happens to a spooled instance; `released`: a person released it
    /// (sent as it is, unscreened).
    pub fn screen(&self, file: DefaultDicomObject, released: bool) -> Screened {
        let transfer_syntax = file
            .meta()
            .transfer_syntax()
            .trim_end_matches('\0')
            .to_string();
        let sop_class = file
            .meta()
            .media_storage_sop_class_uid()
            .trim_end_matches('\0')
            .to_string();
        if released {
            return Screened::Forward {
                object: file.into_inner(),
                transfer_syntax,
                cleaned: false,
            };
        }
        let object: &InMemDicomObject = &file;
        let annotation = Annotation::parse(text(object, tags::BURNED_IN_ANNOTATION).as_deref());
        let modality = text(object, tags::MODALITY);
        let risk = self
            .lists
            .assess(&sop_class, modality.as_deref(), annotation);
        let identifiers = Identifiers::of(object);

        let Some(rule) = self.rule_for(object, &sop_class) else {
            if let Risk::Hold(reason) = risk {
                return Screened::Held(format!("{reason}; no pixel rule matches"));
            }
            if risk == Risk::DeclaredClean
                && let Some(reason) = self.read_text(&file, None, &identifiers)
            {
                return Screened::Held(reason);
            }
            return Screened::Forward {
                object: file.into_inner(),
                transfer_syntax,
                cleaned: false,
            };
        };

        let mut frames = match Frames::read(&file, None) {
            Ok(frames) => frames,
            Err(e) => {
                return Screened::Held(format!(
                    "burned-in annotation: pixel rule {:?} cannot clean this instance: {e}",
                    rule.name
                ));
            }
        };
        blank::blank(&mut frames, &rule.rectangles);
        if risk != Risk::None
            && let Some(reason) = self.read_text(&file, Some(&frames), &identifiers)
        {
            return Screened::Held(format!("{reason} after pixel rule {:?}", rule.name));
        }
        let mut object = file.into_inner();
        frames.write_native(&mut object);
        object.put(DataElement::new(
            tags::BURNED_IN_ANNOTATION,
            VR::CS,
            PrimitiveValue::from("NO"),
        ));
        Screened::Forward {
            object,
            transfer_syntax: EXPLICIT_VR_LE.into(),
            cleaned: true,
        }
    }

    /// Reads text in a sample of frames (of `cleaned` when given, else of `file`);
    /// a hold reason when an identifier of the instance shows, or when reading
    /// fails. `None` without OCR, identifiers or pixels.
    fn read_text(
        &self,
        file: &DefaultDicomObject,
        cleaned: Option<&Frames>,
        identifiers: &Identifiers,
    ) -> Option<String> {
        let ocr = self.ocr.as_ref()?;
        if identifiers.is_empty() || !frames::has_pixels(file) {
            return None;
        }
        let sample = sample_frames(frames::frame_count(file), self.max_frames);
        let read;
        let (frames, indexes): (&Frames, Vec<usize>) = match cleaned {
            Some(all) => (all, sample.iter().map(|n| *n as usize).collect()),
            None => match Frames::read(file, Some(&sample)) {
                Ok(frames) => {
                    read = frames;
                    let held = read.numbers.len();
                    (&read, (0..held).collect())
                }
                Err(e) => {
                    return Some(format!(
                        "burned-in annotation: cannot read the pixels to look for text: {e}"
                    ));
                }
            },
        };
        for index in indexes {
            let Some(image) = frames.image(index) else {
                continue;
            };
            let number = frames.numbers.get(index).copied().unwrap_or(0) + 1;
            match ocr.read(&image) {
                Ok(text) => {
                    if let Some(found) = identifiers.find_in(&text) {
                        return Some(format!(
                            "burned-in annotation: OCR read {} in frame {number}",
                            found.describe()
                        ));
                    }
                }
                Err(e) => return Some(format!("burned-in annotation: {e}")),
            }
        }
        None
    }
}

/// Whether the instance's De-identification Method Code Sequence already carries
/// Clean Pixel Data (113101, DCM): cleaned upstream, so the code is kept.
pub fn declares_clean_pixels(object: &InMemDicomObject) -> bool {
    let Some(dicom_core::value::Value::Sequence(items)) = object
        .get(tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE)
        .map(|e| e.value())
    else {
        return false;
    };
    items.items().iter().any(|item| {
        text(item, tags::CODE_VALUE).as_deref() == Some("113101")
            && text(item, tags::CODING_SCHEME_DESIGNATOR).as_deref() == Some("DCM")
    })
}

/// Up to `max` frame numbers (0-based) spread evenly over `count`, first and last
/// included.
pub fn sample_frames(count: u32, max: u32) -> Vec<u32> {
    let k = max.max(1).min(count.max(1));
    if k == 1 {
        return vec![0];
    }
    let mut out: Vec<u32> = (0..k)
        .map(|i| (u64::from(i) * u64::from(count - 1) / u64::from(k - 1)) as u32)
        .collect();
    out.dedup();
    out
}

/// A top-level text value, trimmed; `None` when absent, empty or not text.
pub(crate) fn text(object: &InMemDicomObject, tag: Tag) -> Option<String> {
    let value = object.get(tag)?.value().to_str().ok()?;
    let value = value.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!value.is_empty()).then(|| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An 8x8 MONOCHROME2 instance of `class`, `modality`, Burned In Annotation
    /// `annotation` (absent when `None`).
    fn instance(class: &str, modality: &str, annotation: Option<&str>) -> DefaultDicomObject {
        use dicom_core::dicom_value;
        let mut object = InMemDicomObject::from_element_iter([
            DataElement::new(tags::SOP_CLASS_UID, VR::UI, PrimitiveValue::from(class)),
            DataElement::new(
                tags::SOP_INSTANCE_UID,
                VR::UI,
                PrimitiveValue::from("2.25.7"),
            ),
            DataElement::new(tags::MODALITY, VR::CS, PrimitiveValue::from(modality)),
            DataElement::new(tags::PATIENT_NAME, VR::PN, PrimitiveValue::from("Doe^Jane")),
            DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, dicom_value!(U16, [1])),
            DataElement::new(
                tags::PHOTOMETRIC_INTERPRETATION,
                VR::CS,
                PrimitiveValue::from("MONOCHROME2"),
            ),
            DataElement::new(tags::ROWS, VR::US, dicom_value!(U16, [8])),
            DataElement::new(tags::COLUMNS, VR::US, dicom_value!(U16, [8])),
            DataElement::new(tags::BITS_ALLOCATED, VR::US, dicom_value!(U16, [8])),
            DataElement::new(tags::BITS_STORED, VR::US, dicom_value!(U16, [8])),
            DataElement::new(tags::HIGH_BIT, VR::US, dicom_value!(U16, [7])),
            DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, dicom_value!(U16, [0])),
            DataElement::new(
                tags::PIXEL_DATA,
                VR::OB,
                PrimitiveValue::from(vec![200u8; 64]),
            ),
        ]);
        if let Some(value) = annotation {
            object.put(DataElement::new(
                tags::BURNED_IN_ANNOTATION,
                VR::CS,
                PrimitiveValue::from(value),
            ));
        }
        let meta = dicom_object::FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(class)
            .media_storage_sop_instance_uid("2.25.7")
            .transfer_syntax(EXPLICIT_VR_LE);
        object.with_meta(meta).unwrap()
    }

    #[test]
    fn the_header_verdict_agrees_with_the_screening() {
        const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
        const US: &str = "1.2.840.10008.5.1.4.1.1.6.1";
        let plain = PixelsConfig {
            ocr: crate::config::pixels::OcrMode::Off,
            ..PixelsConfig::default()
        };
        let with_rule = PixelsConfig {
            rules: vec![PixelRule {
                name: "MR banner".into(),
                manufacturer: None,
                model: None,
                rows: Some(8),
                columns: None,
                sop_class: None,
                modality: Some("MR".into()),
                rectangles: vec![crate::config::pixels::Rectangle {
                    x: 0,
                    y: 0,
                    width: 8,
                    height: 2,
                }],
            }],
            ..plain.clone()
        };
        let cases = [
            (&plain, CT, "CT", None, false, true),
            (&plain, CT, "CT", Some("YES"), false, false),
            (&plain, CT, "CT", Some("YES"), true, true),
            (&plain, US, "US", None, false, false),
            (&plain, US, "US", Some("NO"), false, true),
            (&with_rule, CT, "MR", Some("NO"), false, false),
            (&with_rule, CT, "CT", None, false, true),
        ];
        for (config, class, modality, annotation, released, unchanged) in cases {
            let screener = Screener::new(config).unwrap();
            let file = instance(class, modality, annotation);
            let mut header = file.clone().into_inner();
            header.remove_element(tags::PIXEL_DATA);
            let case = format!("{modality} {annotation:?} released={released}");
            assert_eq!(
                screener.forwards_unchanged(&header, class, released),
                unchanged,
                "{case}"
            );
            let screened = screener.screen(file, released);
            let forwarded_as_is = matches!(screened, Screened::Forward { cleaned: false, .. });
            assert_eq!(forwarded_as_is, unchanged, "{case}: {screened:?}");
        }
    }

    #[test]
    fn frames_are_sampled_evenly_with_first_and_last() {
        assert_eq!(sample_frames(1, 8), vec![0]);
        assert_eq!(sample_frames(3, 8), vec![0, 1, 2]);
        assert_eq!(sample_frames(100, 4), vec![0, 33, 66, 99]);
        assert_eq!(sample_frames(10, 1), vec![0]);
        assert_eq!(sample_frames(0, 8), vec![0]);
    }
}
