//! `[pixels]` of client.toml: which instances are a burned-in text risk, the
//! pixel-cleaning rules and the OCR switch (documented in schemas/client.toml).
//! Data only; the decisions live in the intake's pixel screening (`intake::pixels`).

use std::path::PathBuf;

use serde::Deserialize;

/// `[pixels]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PixelsConfig {
    /// Text detection: `auto` (use tesseract when it is installed), `off`, or
    /// `required` (refuse to start without it).
    pub ocr: OcrMode,
    /// The tesseract program.
    pub tesseract: PathBuf,
    /// Tesseract language(s), e.g. `eng` or `eng+deu`.
    pub ocr_languages: String,
    /// Frames read per instance (evenly spread, first and last included).
    pub ocr_max_frames: u32,
    /// Seconds one tesseract run may take.
    pub ocr_timeout_secs: u64,
    /// SOP classes whose pixels often carry burned-in text; `None`: the built-in list.
    pub risky_sop_classes: Option<Vec<String>>,
    /// Modalities whose pixels often carry burned-in text; `None`: the built-in list.
    pub risky_modalities: Option<Vec<String>>,
    /// Pixel-cleaning rules, first match wins.
    pub rules: Vec<PixelRule>,
}

impl Default for PixelsConfig {
    fn default() -> Self {
        PixelsConfig {
            ocr: OcrMode::Auto,
            tesseract: PathBuf::from("tesseract"),
            ocr_languages: "eng".into(),
            ocr_max_frames: 8,
            ocr_timeout_secs: 60,
            risky_sop_classes: None,
            risky_modalities: None,
            rules: Vec::new(),
        }
    }
}

/// `[pixels] ocr`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OcrMode {
    /// Use tesseract when it is found.
    Auto,
    /// Never read text.
    Off,
    /// Refuse to start without tesseract.
    Required,
}

/// `[[pixels.rules]]`: every condition given must hold; at least one is needed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PixelRule {
    /// A name shown by `pixel-rule test` and in the logs.
    pub name: String,
    /// Manufacturer (0008,0070), `*` and `?` wildcards, case-insensitive.
    pub manufacturer: Option<String>,
    /// Manufacturer's Model Name (0008,1090), wildcards as above.
    pub model: Option<String>,
    /// Rows (0028,0010).
    pub rows: Option<u32>,
    /// Columns (0028,0011).
    pub columns: Option<u32>,
    /// SOP Class UID.
    pub sop_class: Option<String>,
    /// Modality (0008,0060).
    pub modality: Option<String>,
    /// Rectangles blanked (set to zero) in every frame; parts outside the image are
    /// ignored.
    pub rectangles: Vec<Rectangle>,
}

/// A rectangle in pixels, from the top left corner of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rectangle {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Width in columns.
    pub width: u32,
    /// Height in rows.
    pub height: u32,
}

impl PixelsConfig {
    /// Every rule names at least one condition and one non-empty rectangle.
    pub fn check(&self) -> Result<(), String> {
        for (n, rule) in self.rules.iter().enumerate() {
            let label = format!("[[pixels.rules]] #{} ({:?})", n + 1, rule.name);
            let conditions = [
                rule.manufacturer.is_some(),
                rule.model.is_some(),
                rule.rows.is_some(),
                rule.columns.is_some(),
                rule.sop_class.is_some(),
                rule.modality.is_some(),
            ];
            if !conditions.contains(&true) {
                return Err(format!(
                    "{label} has no condition: give manufacturer, model, rows, columns, sop_class or modality"
                ));
            }
            if rule.rectangles.is_empty() {
                return Err(format!("{label} blanks nothing: list its `rectangles`"));
            }
            if rule
                .rectangles
                .iter()
                .any(|r| r.width == 0 || r.height == 0)
            {
                return Err(format!("{label} has a rectangle of zero width or height"));
            }
        }
        if self.ocr_max_frames == 0 {
            return Err("[pixels] ocr_max_frames must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_is_valid() {
        let text = include_str!("../../../schemas/client.toml");
        let config: crate::config::Config =
            toml::from_str(text).expect("schemas/client.toml parses");
        let pixels = &config.pixels;
        pixels.check().expect("the example rule is usable");
        assert_eq!(pixels.ocr, OcrMode::Auto);
        assert_eq!(pixels.rules.len(), 1);
        assert_eq!(pixels.rules[0].rectangles.len(), 2);
        assert_eq!(pixels.rules[0].columns, Some(640));
    }

    #[test]
    fn rules_without_conditions_or_rectangles_are_refused() {
        let parse = |rule: &str| {
            let text = format!("[[pixels.rules]]\nname = \"r\"\n{rule}");
            let config: crate::config::Config = toml::from_str(&text).unwrap();
            config.pixels.check()
        };
        let rect = "rectangles = [{ x = 0, y = 0, width = 5, height = 5 }]";
        assert!(parse(&format!("modality = \"US\"\n{rect}")).is_ok());
        assert!(parse(rect).unwrap_err().contains("no condition"));
        assert!(
            parse("modality = \"US\"\nrectangles = []")
                .unwrap_err()
                .contains("blanks nothing")
        );
        assert!(
            parse("modality = \"US\"\nrectangles = [{ x = 0, y = 0, width = 0, height = 5 }]")
                .unwrap_err()
                .contains("zero")
        );
        assert!(toml::from_str::<crate::config::Config>("[pixels]\nocr = \"sometimes\"").is_err());
    }
}
