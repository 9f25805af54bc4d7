//! Scaling (aspect ratio kept, a triangle filter, no upscaling unless asked) and
//! encoding (JPEG at a quality, or PNG) of a display image, with the `image` crate.

use std::io::Cursor;

use image::DynamicImage;
use image::imageops::FilterType;

use super::{RenderError, Rendered};

/// The largest side of an output image (an upscale is held to it).
pub const MAX_OUTPUT_SIDE: u32 = 8192;

/// Output encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Baseline JPEG, quality 1 to 100.
    Jpeg {
        /// Quality (clamped to 1..=100).
        quality: u8,
    },
    /// PNG (8-bit gray or RGB).
    Png,
}

impl Format {
    /// The media type.
    pub fn mime(self) -> &'static str {
        match self {
            Format::Jpeg { .. } => "image/jpeg",
            Format::Png => "image/png",
        }
    }

    /// A short name for keys and file names: `jpg` (with the quality unless 85) or `png`.
    pub fn tag(self) -> String {
        match self {
            Format::Jpeg { quality: 85 } => "jpg".into(),
            Format::Jpeg { quality } => format!("q{quality}.jpg"),
            Format::Png => "png".into(),
        }
    }

    /// Parses a media type or name (`image/jpeg`, `jpeg`, `jpg`, `image/png`, `png`);
    /// JPEG at quality 85.
    pub fn parse(value: &str) -> Option<Format> {
        match value.trim().to_ascii_lowercase().as_str() {
            "image/jpeg" | "jpeg" | "jpg" => Some(Format::Jpeg { quality: 85 }),
            "image/png" | "png" => Some(Format::Png),
            _ => None,
        }
    }
}

/// The largest output size; `None` sides are free. The aspect ratio is always kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Viewport {
    /// Most columns.
    pub max_width: Option<u32>,
    /// Most rows.
    pub max_height: Option<u32>,
    /// Whether a smaller image is enlarged to fill the viewport.
    pub upscale: bool,
}

impl Viewport {
    /// A square box of `side` pixels, no upscaling (thumbnails).
    pub fn square(side: u32) -> Viewport {
        Viewport {
            max_width: Some(side),
            max_height: Some(side),
            upscale: false,
        }
    }

    /// The output size of a `width` x `height` image.
    pub fn fit(&self, width: u32, height: u32) -> (u32, u32) {
        let (w, h) = (f64::from(width.max(1)), f64::from(height.max(1)));
        let scale_w = self
            .max_width
            .map_or(f64::INFINITY, |m| f64::from(m.max(1)) / w);
        let scale_h = self
            .max_height
            .map_or(f64::INFINITY, |m| f64::from(m.max(1)) / h);
        let mut scale = scale_w.min(scale_h);
        if !scale.is_finite() || (scale > 1.0 && !self.upscale) {
            scale = 1.0;
        }
        // An upscale stays within MAX_OUTPUT_SIDE.
        if scale > 1.0 {
            scale = scale.min(f64::from(MAX_OUTPUT_SIDE) / w.max(h)).max(1.0);
        }
        let side = |v: f64| ((v * scale).round() as u32).max(1);
        (side(w), side(h))
    }
}

/// Scales `image` into `viewport` and encodes it as `format`.
pub fn encode(
    image: DynamicImage,
    viewport: Viewport,
    format: Format,
) -> Result<Rendered, RenderError> {
    let (width, height) = viewport.fit(image.width(), image.height());
    let image = if (width, height) == (image.width(), image.height()) {
        image
    } else {
        image.resize_exact(width, height, FilterType::Triangle)
    };
    let mut bytes = Vec::new();
    let encoded = match format {
        Format::Jpeg { quality } => {
            let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(
                &mut bytes,
                quality.clamp(1, 100),
            );
            image.write_with_encoder(encoder)
        }
        Format::Png => image.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png),
    };
    encoded.map_err(|e| RenderError::Encode(e.to_string()))?;
    Ok(Rendered {
        bytes,
        mime: format.mime(),
        width,
        height,
    })
}
