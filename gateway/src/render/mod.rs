//! Rendering stored instances as JPEG or PNG images, and thumbnails (DESIGN.md "Web
//! access": `/rendered`, `/thumbnail`, the representative image of a series).
//!
//! One call, [`render_instance`], takes a stored instance (the Part-10 bytes of a
//! blob), checks it against the facility's burned-in risk classes ([`risk`]), decodes
//! one frame in whatever transfer syntax it was stored ([`frame`]: native, deflated,
//! big endian, RLE, JPEG baseline / extended 8 and 12 bit / lossless, JPEG-LS, JPEG
//! 2000), maps it to 8-bit display values ([`lut`]: Modality LUT, VOI window or LUT,
//! MONOCHROME1, palette and YBR colour) and scales and encodes it ([`output`]).
//! [`thumbs`] caches thumbnails as blobs and picks a series' representative
//! instance; [`queue`] makes them in the background after ingest.
//!
//! No HTTP here and no policy beyond the burned-in rule: the DICOMweb handlers parse
//! their query parameters into [`RenderOptions`] and decide who may see what. Every
//! malformed input gives a [`RenderError`], never a panic, and the decoded size is
//! checked before anything is allocated for it.

pub mod frame;
mod kos;
pub mod lut;
pub mod output;
pub mod queue;
pub mod risk;
mod rle;
pub mod thumbs;

#[cfg(test)]
mod tests;

pub use output::{Format, Viewport};
pub use risk::{Refusal, RiskClasses, RiskPolicy};
pub use thumbs::{Thumbnail, ThumbnailError, ThumbnailSpec, Thumbnails};

/// A window given by the caller instead of the data set's (DICOMweb `window`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Window Center, in modality units (after Rescale Slope/Intercept).
    pub center: f64,
    /// Window Width (> 0; at least 1 for LINEAR).
    pub width: f64,
    /// VOI LUT Function.
    pub function: VoiFunction,
}

/// VOI LUT Function (0028,1056), PS3.3 C.11.2.1.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VoiFunction {
    /// `LINEAR` (the default).
    #[default]
    Linear,
    /// `LINEAR_EXACT`.
    LinearExact,
    /// `SIGMOID`.
    Sigmoid,
}

impl VoiFunction {
    /// Parses the DICOM code string (case-insensitive, as DICOMweb's `window` allows).
    pub fn parse(value: &str) -> Option<VoiFunction> {
        match value.trim().to_ascii_uppercase().as_str() {
            "LINEAR" => Some(VoiFunction::Linear),
            "LINEAR_EXACT" => Some(VoiFunction::LinearExact),
            "SIGMOID" => Some(VoiFunction::Sigmoid),
            _ => None,
        }
    }
}

/// What to render and how.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderOptions {
    /// Frame number, 1-based; `None`: the middle frame of a multi-frame instance.
    pub frame: Option<u32>,
    /// JPEG (with a quality) or PNG.
    pub format: Format,
    /// Largest output size (aspect ratio kept).
    pub viewport: Viewport,
    /// A window replacing the data set's VOI (grayscale only).
    pub window: Option<Window>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            frame: None,
            format: Format::Jpeg { quality: 85 },
            viewport: Viewport::default(),
            window: None,
        }
    }
}

/// An encoded image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The encoded bytes.
    pub bytes: Vec<u8>,
    /// `image/jpeg` or `image/png`.
    pub mime: &'static str,
    /// Output width in pixels.
    pub width: u32,
    /// Output height in pixels.
    pub height: u32,
}

/// Why an instance could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The instance has no Pixel Data (a structured report, a KOS, ...).
    #[error("the instance has no pixel data to render")]
    NoPixelData,
    /// The facility does not allow server-side rendering of this instance.
    #[error("not rendered: {0}")]
    Refused(#[from] Refusal),
    /// Valid DICOM this renderer does not handle (a transfer syntax without a
    /// decoder, an unusual photometric interpretation, ...).
    #[error("cannot render: {0}")]
    Unsupported(String),
    /// The data set or its pixel data is malformed or cut short.
    #[error("cannot render, corrupt data: {0}")]
    Corrupt(String),
    /// The image is larger than the renderer accepts (checked before decoding).
    #[error("cannot render: {0}")]
    TooLarge(String),
    /// The requested frame does not exist.
    #[error("frame {asked} does not exist (the instance has {frames})")]
    NoSuchFrame {
        /// The frame asked for (1-based).
        asked: u32,
        /// Frames in the instance.
        frames: u32,
    },
    /// Encoding the output failed (should not happen).
    #[error("cannot encode the rendered image: {0}")]
    Encode(String),
}

/// Renders the stored instance `part10` (a Part-10 file, as the blob store holds
/// them) after checking it against `risk`. CPU-bound: call it from a blocking task.
pub fn render_instance(
    part10: &[u8],
    options: &RenderOptions,
    risk: &RiskClasses,
) -> Result<Rendered, RenderError> {
    let object = frame::open(part10)?;
    risk::may_render(&object, risk)?;
    render_object(&object, options)
}

/// Renders an already opened instance (no burned-in check: the caller did it).
pub fn render_object(
    object: &frame::Object,
    options: &RenderOptions,
) -> Result<Rendered, RenderError> {
    let decoded = frame::decode(object, options.frame)?;
    let image = lut::display(object, &decoded, options.window.as_ref())?;
    output::encode(image, options.viewport, options.format)
}
