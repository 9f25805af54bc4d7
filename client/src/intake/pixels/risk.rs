//! Which instances may show identifying text in their pixels: Burned In Annotation
//! (0028,0301) = YES, or a SOP class or modality where burned-in text is common
//! without an explicit NO. The built-in lists are below; `[pixels]` may replace them.

use crate::config::pixels::PixelsConfig;

/// SOP classes where burned-in text is common: ultrasound, secondary capture,
/// X-ray angiography and fluoroscopy, endoscopy and other visible-light images and
/// video, and encapsulated documents.
pub const DEFAULT_RISKY_SOP_CLASSES: &[&str] = &[
    "1.2.840.10008.5.1.4.1.1.6.1",      // Ultrasound Image
    "1.2.840.10008.5.1.4.1.1.6.2",      // Enhanced US Volume
    "1.2.840.10008.5.1.4.1.1.6.3",      // Photoacoustic Image
    "1.2.840.10008.5.1.4.1.1.3.1",      // Ultrasound Multi-frame Image
    "1.2.840.10008.5.1.4.1.1.6",        // Ultrasound Image (retired)
    "1.2.840.10008.5.1.4.1.1.3",        // Ultrasound Multi-frame Image (retired)
    "1.2.840.10008.5.1.4.1.1.7",        // Secondary Capture Image
    "1.2.840.10008.5.1.4.1.1.7.1",      // Multi-frame Single Bit SC
    "1.2.840.10008.5.1.4.1.1.7.2",      // Multi-frame Grayscale Byte SC
    "1.2.840.10008.5.1.4.1.1.7.3",      // Multi-frame Grayscale Word SC
    "1.2.840.10008.5.1.4.1.1.7.4",      // Multi-frame True Color SC
    "1.2.840.10008.5.1.4.1.1.12.1",     // X-Ray Angiographic Image
    "1.2.840.10008.5.1.4.1.1.12.1.1",   // Enhanced XA Image
    "1.2.840.10008.5.1.4.1.1.12.2",     // X-Ray Radiofluoroscopic Image
    "1.2.840.10008.5.1.4.1.1.12.2.1",   // Enhanced XRF Image
    "1.2.840.10008.5.1.4.1.1.77.1.1",   // VL Endoscopic Image
    "1.2.840.10008.5.1.4.1.1.77.1.1.1", // Video Endoscopic Image
    "1.2.840.10008.5.1.4.1.1.77.1.2",   // VL Microscopic Image
    "1.2.840.10008.5.1.4.1.1.77.1.2.1", // Video Microscopic Image
    "1.2.840.10008.5.1.4.1.1.77.1.3",   // VL Slide-Coordinates Microscopic Image
    "1.2.840.10008.5.1.4.1.1.77.1.4",   // VL Photographic Image
    "1.2.840.10008.5.1.4.1.1.77.1.4.1", // Video Photographic Image
    "1.2.840.10008.5.1.4.1.1.77.1.5.1", // Ophthalmic Photography 8 Bit Image
    "1.2.840.10008.5.1.4.1.1.77.1.5.2", // Ophthalmic Photography 16 Bit Image
    "1.2.840.10008.5.1.4.1.1.77.1.6",   // VL Whole Slide Microscopy Image
    "1.2.840.10008.5.1.4.1.1.77.1.7",   // Dermoscopic Photography Image
    "1.2.840.10008.5.1.4.1.1.104.1",    // Encapsulated PDF
    "1.2.840.10008.5.1.4.1.1.104.2",    // Encapsulated CDA
    "1.2.840.10008.5.1.4.1.1.104.3",    // Encapsulated STL
    "1.2.840.10008.5.1.4.1.1.104.4",    // Encapsulated OBJ
    "1.2.840.10008.5.1.4.1.1.104.5",    // Encapsulated MTL
];

/// Modalities where burned-in text is common (whatever the SOP class): ultrasound,
/// angiography, fluoroscopy, endoscopy, external-camera photography, general
/// microscopy, ophthalmic photography and documents.
pub const DEFAULT_RISKY_MODALITIES: &[&str] =
    &["US", "IVUS", "XA", "RF", "ES", "XC", "GM", "OP", "DOC"];

/// Burned In Annotation (0028,0301) as the instance states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Annotation {
    /// `YES`.
    Yes,
    /// `NO`.
    No,
    /// Absent, empty or another value.
    Unknown,
}

impl Annotation {
    /// From the attribute's text.
    pub fn parse(value: Option<&str>) -> Annotation {
        match value.map(str::trim) {
            Some(v) if v.eq_ignore_ascii_case("YES") => Annotation::Yes,
            Some(v) if v.eq_ignore_ascii_case("NO") => Annotation::No,
            _ => Annotation::Unknown,
        }
    }
}

/// How an instance is judged before any cleaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Risk {
    /// Not a risky class and no YES: forwarded without a look at the pixels.
    None,
    /// A risky class that says NO: forwarded, but text detection reads it.
    DeclaredClean,
    /// Must be cleaned by a rule (or released by a person) before it leaves; the
    /// text says why.
    Hold(String),
}

/// The risky lists in effect.
#[derive(Debug, Clone)]
pub struct RiskLists {
    sop_classes: Vec<String>,
    modalities: Vec<String>,
}

impl RiskLists {
    /// From `[pixels]`, the built-in lists where not set.
    pub fn new(config: &PixelsConfig) -> RiskLists {
        let own = |given: &Option<Vec<String>>, default: &[&str]| match given {
            Some(list) => list.iter().map(|v| v.trim().to_string()).collect(),
            None => default.iter().map(|v| (*v).to_string()).collect(),
        };
        RiskLists {
            sop_classes: own(&config.risky_sop_classes, DEFAULT_RISKY_SOP_CLASSES),
            modalities: own(&config.risky_modalities, DEFAULT_RISKY_MODALITIES),
        }
    }

    /// Whether the class or modality is on the lists.
    pub fn is_risky_class(&self, sop_class: &str, modality: Option<&str>) -> bool {
        self.sop_classes.iter().any(|c| c == sop_class.trim())
            || modality.is_some_and(|m| {
                self.modalities
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(m.trim()))
            })
    }

    /// The judgement for an instance.
    pub fn assess(&self, sop_class: &str, modality: Option<&str>, annotation: Annotation) -> Risk {
        let risky = self.is_risky_class(sop_class, modality);
        match (annotation, risky) {
            (Annotation::Yes, _) => Risk::Hold(
                "burned-in annotation: the instance says Burned In Annotation = YES".into(),
            ),
            (Annotation::Unknown, true) => Risk::Hold(format!(
                "burned-in annotation: {} is a burned-in text risk and Burned In Annotation is not NO",
                describe_class(sop_class, modality)
            )),
            (Annotation::No, true) => Risk::DeclaredClean,
            (_, false) => Risk::None,
        }
    }
}

fn describe_class(sop_class: &str, modality: Option<&str>) -> String {
    match modality.map(str::trim).filter(|m| !m.is_empty()) {
        Some(m) => format!("SOP class {} (modality {m})", sop_class.trim()),
        None => format!("SOP class {}", sop_class.trim()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: &str = "1.2.840.10008.5.1.4.1.1.6.1";
    const CT: &str = "1.2.840.10008.5.1.4.1.1.2";

    #[test]
    fn yes_holds_any_class_and_risky_classes_need_an_explicit_no() {
        let lists = RiskLists::new(&PixelsConfig::default());
        assert!(matches!(
            lists.assess(CT, Some("CT"), Annotation::Yes),
            Risk::Hold(r) if r.contains("= YES")
        ));
        assert_eq!(
            lists.assess(CT, Some("CT"), Annotation::Unknown),
            Risk::None
        );
        assert!(matches!(
            lists.assess(US, Some("US"), Annotation::Unknown),
            Risk::Hold(r) if r.contains("not NO")
        ));
        assert_eq!(
            lists.assess(US, Some("US"), Annotation::No),
            Risk::DeclaredClean
        );
        // A risky modality with an ordinary class, e.g. an angiography run stored as
        // a plain CT image.
        assert!(matches!(
            lists.assess(CT, Some("xa"), Annotation::Unknown),
            Risk::Hold(_)
        ));
    }

    #[test]
    fn configured_lists_replace_the_built_in_ones() {
        let config = PixelsConfig {
            risky_sop_classes: Some(vec![CT.into()]),
            risky_modalities: Some(vec![]),
            ..PixelsConfig::default()
        };
        let lists = RiskLists::new(&config);
        assert!(lists.is_risky_class(CT, None));
        assert!(!lists.is_risky_class(US, Some("US")));
    }

    #[test]
    fn annotation_values_are_read_leniently() {
        assert_eq!(Annotation::parse(Some(" yes ")), Annotation::Yes);
        assert_eq!(Annotation::parse(Some("NO")), Annotation::No);
        assert_eq!(Annotation::parse(Some("")), Annotation::Unknown);
        assert_eq!(Annotation::parse(None), Annotation::Unknown);
    }
}
