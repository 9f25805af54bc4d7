//! `[rendering]` (burned-in risk classes, per facility) and `[thumbnails]` (the
//! background thumbnailer) of the gateway config; used by [`crate::render`].

use std::collections::BTreeMap;

use serde::Deserialize;

use super::ConfigError;

/// `[rendering]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RenderingConfig {
    /// Modalities (`US`) and SOP Class UIDs whose pixels may carry burned-in text:
    /// their instances are rendered only when they say Burned In Annotation = NO.
    pub burned_in_risk: Vec<String>,
    /// Facility name -> its own list, replacing `burned_in_risk` for it.
    pub facility: BTreeMap<String, FacilityRendering>,
}

impl Default for RenderingConfig {
    fn default() -> Self {
        RenderingConfig {
            burned_in_risk: crate::render::risk::default_entries(),
            facility: BTreeMap::new(),
        }
    }
}

/// `[rendering.facility.NAME]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FacilityRendering {
    /// This facility's burned-in risk classes (an empty list: none).
    pub burned_in_risk: Vec<String>,
}

/// Encoding of background thumbnails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThumbnailFormat {
    /// JPEG, quality 85 (default).
    Jpeg,
    /// PNG.
    Png,
}

/// `[thumbnails]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThumbnailsConfig {
    /// Whether a series' representative thumbnail is made in the background after
    /// ingest (on-demand thumbnails are made either way).
    pub enabled: bool,
    /// Largest side of a background thumbnail, in pixels (16 to 1024).
    pub size: u32,
    /// `jpeg` or `png`.
    pub format: ThumbnailFormat,
    /// Series waiting for a thumbnail; when full, new work is dropped (and counted).
    pub queue: usize,
    /// Milliseconds a series waits after its first new instance, so that one burst
    /// of a series makes one thumbnail.
    pub delay_ms: u64,
}

impl Default for ThumbnailsConfig {
    fn default() -> Self {
        ThumbnailsConfig {
            enabled: true,
            size: 128,
            format: ThumbnailFormat::Jpeg,
            queue: 1024,
            delay_ms: 2000,
        }
    }
}

impl ThumbnailsConfig {
    /// The spec of background thumbnails.
    pub fn spec(&self) -> crate::render::ThumbnailSpec {
        crate::render::ThumbnailSpec {
            size: self.size,
            format: match self.format {
                ThumbnailFormat::Jpeg => crate::render::Format::Jpeg { quality: 85 },
                ThumbnailFormat::Png => crate::render::Format::Png,
            },
        }
    }
}

/// Checks `[rendering]` and `[thumbnails]`.
pub(super) fn validate(
    rendering: &RenderingConfig,
    thumbnails: &ThumbnailsConfig,
) -> Result<(), ConfigError> {
    crate::render::RiskPolicy::from_config(rendering)
        .map_err(|e| ConfigError::Invalid(format!("rendering: {e}")))?;
    if !(16..=1024).contains(&thumbnails.size) {
        return Err(ConfigError::Invalid(
            "thumbnails.size must be between 16 and 1024".into(),
        ));
    }
    if !(1..=1_000_000).contains(&thumbnails.queue) || thumbnails.delay_ms > 600_000 {
        return Err(ConfigError::Invalid(
            "thumbnails.queue must be between 1 and 1000000, thumbnails.delay_ms at most 600000"
                .into(),
        ));
    }
    Ok(())
}
