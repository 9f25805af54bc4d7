//! The index print and the label sheet of a medium, as PDF (krilla): patient name,
//! ID and birth date, each study's date, description, modalities and number of
//! images, and the representative image (the gateway's thumbnail) of each series.
//! Names may be in any script, so the text is set in a CJK-capable OpenType font
//! found on this machine (Debian's fonts-noto-cjk, or `PACS_EXPORT_FONT`), which
//! krilla embeds subsetted to the glyphs used.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use krilla::Document;
use krilla::geom::{PathBuilder, Point, Size, Transform};
use krilla::image::Image;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::surface::Surface;
use krilla::text::{Font, TextDirection};

/// Where the font is looked for, in order (after `PACS_EXPORT_FONT`).
const FONTS: [&str; 4] = [
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
];

/// The CJK-capable font file: `PACS_EXPORT_FONT`, else the first of [`FONTS`] present.
pub fn font_path() -> anyhow::Result<PathBuf> {
    if let Some(given) = std::env::var_os("PACS_EXPORT_FONT") {
        let path = PathBuf::from(given);
        if !path.is_file() {
            bail!(
                "PACS_EXPORT_FONT names {}, which is not a file",
                path.display()
            );
        }
        return Ok(path);
    }
    FONTS
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .map(Path::to_path_buf)
        .context(
            "no CJK-capable font for the index and label: install Debian's fonts-noto-cjk \
             (or set PACS_EXPORT_FONT to an OpenType/TrueType font file)",
        )
}

/// What the sheets show: the medium and its patients.
#[derive(Debug, Default)]
pub struct Sheet {
    /// The medium's label (the File-set ID and volume name).
    pub label: String,
    /// Medium kind and creation time, for people.
    pub subtitle: String,
    /// The patients on the medium.
    pub patients: Vec<PatientEntry>,
}

/// One patient on the medium.
#[derive(Debug, Default)]
pub struct PatientEntry {
    /// Patient Name for people (components joined by spaces).
    pub name: String,
    /// Patient ID.
    pub id: String,
    /// Birth date (YYYY-MM-DD or empty).
    pub birth_date: String,
    /// The patient's studies.
    pub studies: Vec<StudyEntry>,
}

/// One study.
#[derive(Debug, Default)]
pub struct StudyEntry {
    /// Study date (YYYY-MM-DD or empty).
    pub date: String,
    /// Study Description.
    pub description: String,
    /// The modalities of its series, e.g. `CT, SR`.
    pub modalities: String,
    /// Instances on the medium.
    pub images: usize,
    /// Its series.
    pub series: Vec<SeriesEntry>,
}

/// One series and its representative image.
#[derive(Debug, Default)]
pub struct SeriesEntry {
    /// Series Number.
    pub number: String,
    /// Modality.
    pub modality: String,
    /// Series Description.
    pub description: String,
    /// Instances on the medium.
    pub images: usize,
    /// The representative image: bytes and whether PNG (else JPEG).
    pub image: Option<(Vec<u8>, bool)>,
    /// Why there is no image.
    pub no_image: Option<String>,
}

const A4: (f32, f32) = (595.0, 842.0);
const MARGIN: f32 = 50.0;

/// A text cursor over pages.
struct Writer<'a> {
    document: &'a mut Document,
    font: Font,
    pages: Vec<Vec<Op>>,
    y: f32,
}

/// What goes on a page, drawn when the page is finished.
enum Op {
    Text(f32, f32, f32, String),
    Image(f32, f32, f32, f32, Image),
    Line(f32, f32, f32, f32),
}

impl Writer<'_> {
    fn ensure(&mut self, height: f32) {
        if self.pages.is_empty() || self.y + height > A4.1 - MARGIN {
            self.pages.push(Vec::new());
            self.y = MARGIN;
        }
    }

    fn op(&mut self, op: Op) {
        if let Some(page) = self.pages.last_mut() {
            page.push(op);
        }
    }

    fn line(&mut self, x: f32, size: f32, text: &str) {
        self.ensure(size * 1.5);
        self.y += size * 1.4;
        let y = self.y;
        self.op(Op::Text(x, y, size, text.to_string()));
    }

    fn rule(&mut self) {
        self.ensure(8.0);
        self.y += 6.0;
        let y = self.y;
        self.op(Op::Line(MARGIN, y, A4.0 - MARGIN, y));
    }

    fn finish(self) {
        let font = self.font;
        for ops in self.pages {
            let Some(size) = Size::from_wh(A4.0, A4.1) else {
                continue;
            };
            let mut page = self.document.start_page_with(PageSettings::new(size));
            let mut surface = page.surface();
            for op in ops {
                draw(&mut surface, &font, op);
            }
            surface.finish();
            page.finish();
        }
    }
}

fn draw(surface: &mut Surface<'_>, font: &Font, op: Op) {
    match op {
        Op::Text(x, y, size, text) => {
            surface.set_fill(Some(Fill::default()));
            surface.draw_text(
                Point::from_xy(x, y),
                font.clone(),
                size,
                &text,
                false,
                TextDirection::Auto,
            );
        }
        Op::Image(x, y, w, h, image) => {
            if let Some(size) = Size::from_wh(w, h) {
                surface.push_transform(&Transform::from_translate(x, y));
                surface.draw_image(image, size);
                surface.pop();
            }
        }
        Op::Line(x1, y1, x2, y2) => {
            let mut builder = PathBuilder::new();
            builder.move_to(x1, y1);
            builder.line_to(x2, y2);
            if let Some(path) = builder.finish() {
                surface.set_fill(None);
                surface.set_stroke(Some(Stroke::default()));
                surface.draw_path(&path);
                surface.set_stroke(None);
            }
        }
    }
}

/// The image of a series scaled to fit `max` x `max` points, or `None`.
fn image_of(series: &SeriesEntry, max: f32) -> Option<(Image, f32, f32)> {
    let (bytes, png) = series.image.as_ref()?;
    let data = krilla::Data::from(bytes.clone());
    let image = if *png {
        Image::from_png(data, true).ok()?
    } else {
        Image::from_jpeg(data, true).ok()?
    };
    let (w, h) = image.size();
    if w == 0 || h == 0 {
        return None;
    }
    let scale = (max / w as f32).min(max / h as f32);
    Some((image, w as f32 * scale, h as f32 * scale))
}

fn load_font(path: &Path) -> anyhow::Result<Font> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Font::new(krilla::Data::from(bytes), 0)
        .with_context(|| format!("{} is not a usable font", path.display()))
}

fn images_label(n: usize) -> String {
    if n == 1 {
        "1 image".into()
    } else {
        format!("{n} images")
    }
}

/// The index print: every patient, study and series with its image, page after page.
pub fn index(sheet: &Sheet, font_path: &Path) -> anyhow::Result<Vec<u8>> {
    let font = load_font(font_path)?;
    let mut document = Document::new();
    let mut w = Writer {
        document: &mut document,
        font,
        pages: Vec::new(),
        y: MARGIN,
    };
    w.line(MARGIN, 16.0, &format!("Medium {}", sheet.label));
    w.line(MARGIN, 10.0, &sheet.subtitle);
    for patient in &sheet.patients {
        w.rule();
        w.line(MARGIN, 13.0, &format!("Patient: {}", patient.name));
        w.line(
            MARGIN,
            10.0,
            &format!("ID: {}    Birth date: {}", patient.id, patient.birth_date),
        );
        for study in &patient.studies {
            w.line(
                MARGIN + 10.0,
                11.0,
                &format!(
                    "Study {}  {}  ({}, {})",
                    study.date,
                    study.description,
                    study.modalities,
                    images_label(study.images)
                ),
            );
            for series in &study.series {
                let caption = format!(
                    "Series {}  {}  {}  ({})",
                    series.number,
                    series.modality,
                    series.description,
                    images_label(series.images)
                );
                match image_of(series, 90.0) {
                    Some((image, iw, ih)) => {
                        w.ensure(ih + 8.0);
                        let top = w.y + 4.0;
                        w.op(Op::Image(MARGIN + 20.0, top, iw, ih, image));
                        w.op(Op::Text(MARGIN + 120.0, top + 12.0, 10.0, caption));
                        w.y = top + ih.max(16.0);
                    }
                    None => {
                        w.line(MARGIN + 20.0, 10.0, &caption);
                        let why = series.no_image.as_deref().unwrap_or("no image");
                        w.line(
                            MARGIN + 30.0,
                            8.0,
                            &format!("(no representative image: {why})"),
                        );
                    }
                }
            }
        }
    }
    w.finish();
    document
        .finish()
        .map_err(|e| anyhow::anyhow!("cannot write the index PDF: {e:?}"))
}

/// The label sheet: a 120 mm disc/box label framed on an A4 page per patient, with
/// the patient, the studies and a row of the series' images.
pub fn label(sheet: &Sheet, font_path: &Path) -> anyhow::Result<Vec<u8>> {
    let font = load_font(font_path)?;
    let mut document = Document::new();
    let side = 340.0; // 120 mm
    for patient in &sheet.patients {
        let mut w = Writer {
            document: &mut document,
            font: font.clone(),
            pages: vec![Vec::new()],
            y: MARGIN,
        };
        let (left, top) = (MARGIN, MARGIN);
        for (a, b, c, d) in [
            (left, top, left + side, top),
            (left + side, top, left + side, top + side),
            (left + side, top + side, left, top + side),
            (left, top + side, left, top),
        ] {
            w.op(Op::Line(a, b, c, d));
        }
        w.y = top + 6.0;
        let x = left + 12.0;
        w.line(x, 14.0, &patient.name);
        w.line(
            x,
            9.0,
            &format!("ID: {}   Birth date: {}", patient.id, patient.birth_date),
        );
        for study in &patient.studies {
            w.line(
                x,
                9.0,
                &format!(
                    "{}  {}  {}  {}",
                    study.date,
                    study.modalities,
                    study.description,
                    images_label(study.images)
                ),
            );
        }
        let row_top = w.y + 8.0;
        let (mut ix, thumb) = (x, 60.0);
        let mut iy = row_top;
        for series in patient.studies.iter().flat_map(|s| &s.series) {
            if let Some((image, iw, ih)) = image_of(series, thumb) {
                if ix + thumb > left + side - 10.0 {
                    ix = x;
                    iy += thumb + 6.0;
                }
                if iy + thumb <= top + side - 30.0 {
                    w.op(Op::Image(ix, iy, iw, ih, image));
                }
                ix += thumb + 6.0;
            }
        }
        w.op(Op::Text(
            x,
            top + side - 12.0,
            8.0,
            format!("{}  {}", sheet.label, sheet.subtitle),
        ));
        w.finish();
    }
    if sheet.patients.is_empty() {
        bail!("nothing to label");
    }
    document
        .finish()
        .map_err(|e| anyhow::anyhow!("cannot write the label PDF: {e:?}"))
}
