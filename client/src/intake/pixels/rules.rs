//! Pixel-cleaning rules (in the spirit of RSNA CTP's DicomPixelAnonymizer): the first
//! `[[pixels.rules]]` whose conditions all hold names the rectangles to blank.

use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use crate::config::pixels::{PixelRule, Rectangle};

/// What a rule looks at, read from an instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Manufacturer's Model Name.
    pub model: Option<String>,
    /// Rows.
    pub rows: Option<u32>,
    /// Columns.
    pub columns: Option<u32>,
    /// SOP Class UID.
    pub sop_class: String,
    /// Modality.
    pub modality: Option<String>,
}

impl Facts {
    /// Reads the facts of `object` (SOP class from the object, or `sop_class` when
    /// the object has none).
    pub fn of(object: &InMemDicomObject, sop_class: &str) -> Facts {
        let number = |tag| object.get(tag).and_then(|e| e.to_int::<u32>().ok());
        Facts {
            manufacturer: super::text(object, tags::MANUFACTURER),
            model: super::text(object, tags::MANUFACTURER_MODEL_NAME),
            rows: number(tags::ROWS),
            columns: number(tags::COLUMNS),
            sop_class: super::text(object, tags::SOP_CLASS_UID)
                .unwrap_or_else(|| sop_class.trim().to_string()),
            modality: super::text(object, tags::MODALITY),
        }
    }
}

/// The first rule that matches, if any.
pub fn find<'r>(rules: &'r [PixelRule], facts: &Facts) -> Option<&'r PixelRule> {
    rules.iter().find(|rule| matches(rule, facts))
}

/// Whether every condition of `rule` holds for `facts`.
pub fn matches(rule: &PixelRule, facts: &Facts) -> bool {
    let pattern = |want: &Option<String>, have: &Option<String>| match want {
        None => true,
        Some(want) => have.as_deref().is_some_and(|have| {
            crate::intake::rules::glob(&want.trim().to_lowercase(), &have.trim().to_lowercase())
        }),
    };
    let number = |want: Option<u32>, have: Option<u32>| want.is_none() || want == have;
    let exact = |want: &Option<String>, have: Option<&str>| match want {
        None => true,
        Some(want) => have.is_some_and(|have| want.trim().eq_ignore_ascii_case(have.trim())),
    };
    pattern(&rule.manufacturer, &facts.manufacturer)
        && pattern(&rule.model, &facts.model)
        && number(rule.rows, facts.rows)
        && number(rule.columns, facts.columns)
        && exact(&rule.sop_class, Some(&facts.sop_class))
        && exact(&rule.modality, facts.modality.as_deref())
}

/// A rectangle cut to an image of `columns` x `rows`: half-open column and row
/// ranges, or `None` when nothing of it lies inside the image.
pub fn clip(
    r: &Rectangle,
    columns: u32,
    rows: u32,
) -> Option<(std::ops::Range<u32>, std::ops::Range<u32>)> {
    let x_end = r.x.saturating_add(r.width).min(columns);
    let y_end = r.y.saturating_add(r.height).min(rows);
    (r.x < x_end && r.y < y_end).then_some((r.x..x_end, r.y..y_end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str) -> PixelRule {
        PixelRule {
            name: name.into(),
            manufacturer: None,
            model: None,
            rows: None,
            columns: None,
            sop_class: None,
            modality: None,
            rectangles: vec![Rectangle {
                x: 0,
                y: 0,
                width: 10,
                height: 10,
            }],
        }
    }

    fn facts() -> Facts {
        Facts {
            manufacturer: Some("ACME Medical Systems".into()),
            model: Some("SonoStar 5000".into()),
            rows: Some(480),
            columns: Some(640),
            sop_class: "1.2.840.10008.5.1.4.1.1.6.1".into(),
            modality: Some("US".into()),
        }
    }

    #[test]
    fn every_condition_must_hold_and_the_first_match_wins() {
        let mut acme = rule("acme");
        acme.manufacturer = Some("acme*".into());
        acme.model = Some("SonoStar ?000".into());
        acme.rows = Some(480);
        acme.columns = Some(640);
        acme.modality = Some("us".into());
        acme.sop_class = Some("1.2.840.10008.5.1.4.1.1.6.1".into());
        let mut other_size = acme.clone();
        other_size.name = "acme 1024".into();
        other_size.columns = Some(1024);
        let mut any_us = rule("any US");
        any_us.modality = Some("US".into());

        let rules = vec![other_size.clone(), acme.clone(), any_us.clone()];
        assert_eq!(find(&rules, &facts()).unwrap().name, "acme");
        assert!(!matches(&other_size, &facts()));

        let mut unknown_maker = facts();
        unknown_maker.manufacturer = None;
        assert_eq!(find(&rules, &unknown_maker).unwrap().name, "any US");
        let mut ct = facts();
        ct.modality = Some("CT".into());
        ct.manufacturer = Some("Other".into());
        assert!(find(&rules, &ct).is_none());
        let mut other_class = facts();
        other_class.sop_class = "1.2.840.10008.5.1.4.1.1.7".into();
        assert!(!matches(&acme, &other_class));
    }

    #[test]
    fn rectangles_are_clipped_to_the_image() {
        let r = |x, y, width, height| Rectangle {
            x,
            y,
            width,
            height,
        };
        assert_eq!(clip(&r(0, 0, 10, 5), 640, 480), Some((0..10, 0..5)));
        assert_eq!(
            clip(&r(600, 470, 100, 100), 640, 480),
            Some((600..640, 470..480))
        );
        assert_eq!(clip(&r(640, 0, 10, 10), 640, 480), None);
        assert_eq!(clip(&r(0, 480, 10, 10), 640, 480), None);
        assert_eq!(
            clip(&r(u32::MAX - 1, 0, u32::MAX, 1), 640, 480),
            None,
            "no overflow"
        );
        assert_eq!(clip(&r(5, 5, u32::MAX, u32::MAX), 8, 8), Some((5..8, 5..8)));
    }
}
