//! Text detection with the tesseract command-line program (Debian `tesseract-ocr`):
//! a frame goes to its standard input as PNG (no temporary file holds the pixels),
//! the text comes back on standard output. Sparse-text page segmentation (`--psm
//! 11`) finds annotations scattered over an image; small images are enlarged twice
//! first, since tesseract reads text of 20-30 pixels best. One thread per run
//! (`OMP_THREAD_LIMIT=1`), killed after the configured timeout.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::PixelError;
use super::frames::Image;
use crate::config::pixels::{OcrMode, PixelsConfig};

/// Images narrower than this are enlarged twice before reading.
const ENLARGE_BELOW: u32 = 1200;

/// A tesseract that answered `--version`.
#[derive(Debug, Clone)]
pub struct Ocr {
    program: PathBuf,
    languages: String,
    timeout: Duration,
}

impl Ocr {
    /// The OCR engine `[pixels]` asks for: `None` when off, or when `auto` and
    /// tesseract is missing; an error when `required` and it is missing.
    pub fn probe(config: &PixelsConfig) -> Result<Option<Ocr>, String> {
        if config.ocr == OcrMode::Off {
            return Ok(None);
        }
        let ocr = Ocr {
            program: config.tesseract.clone(),
            languages: config.ocr_languages.trim().to_string(),
            timeout: Duration::from_secs(config.ocr_timeout_secs.max(1)),
        };
        match ocr.version() {
            Ok(_) => Ok(Some(ocr)),
            Err(e) if config.ocr == OcrMode::Required => Err(format!(
                "[pixels] ocr = \"required\" but {} cannot be run ({e}): install it \
                 (`apt-get install tesseract-ocr`), set [pixels] tesseract to its path, or set ocr = \"auto\"",
                config.tesseract.display()
            )),
            Err(_) => Ok(None),
        }
    }

    /// The first line of `tesseract --version`.
    pub fn version(&self) -> Result<String, PixelError> {
        let out = self.run(&["--version"], &[], Duration::from_secs(20))?;
        Ok(out.lines().next().unwrap_or_default().trim().to_string())
    }

    /// The text tesseract reads in `image`.
    pub fn read(&self, image: &Image) -> Result<String, PixelError> {
        let png = if image.width < ENLARGE_BELOW {
            super::png::encode(&enlarge_twice(image))
        } else {
            super::png::encode(image)
        };
        let mut args = vec!["stdin", "stdout", "--psm", "11"];
        if !self.languages.is_empty() {
            args.extend(["-l", self.languages.as_str()]);
        }
        self.run(&args, &png, self.timeout)
    }

    /// Runs the program with `input` on stdin; stdout on success.
    fn run(&self, args: &[&str], input: &[u8], timeout: Duration) -> Result<String, PixelError> {
        let what = || format!("{} {}", self.program.display(), args.join(" "));
        let mut child = Command::new(&self.program)
            .args(args)
            .env("OMP_THREAD_LIMIT", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| PixelError::Ocr(format!("cannot run {}: {e}", what())))?;
        let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(PixelError::Ocr(format!("{}: no pipes", what())));
        };
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = stdout.read_to_end(&mut out);
            out
        });
        let errors = std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = stderr.read_to_end(&mut out);
            out
        });
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Err(format!(
                        "{} took longer than {} s",
                        what(),
                        timeout.as_secs()
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => break Err(format!("{}: {e}", what())),
            }
        };
        let _ = writer.join();
        let out = reader.join().unwrap_or_default();
        let err = errors.join().unwrap_or_default();
        let status = status.map_err(PixelError::Ocr)?;
        if !status.success() {
            let message = String::from_utf8_lossy(&err);
            let last = message
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
                .to_string();
            return Err(PixelError::Ocr(format!(
                "{} failed ({status}): {last}",
                what()
            )));
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// The image at twice its size (each pixel becomes 2 x 2).
fn enlarge_twice(image: &Image) -> Image {
    let channels = usize::from(image.channels);
    let width = image.width as usize;
    let mut pixels = Vec::with_capacity(image.pixels.len() * 4);
    for row in image.pixels.chunks(width * channels) {
        let mut wide = Vec::with_capacity(row.len() * 2);
        for px in row.chunks(channels) {
            wide.extend_from_slice(px);
            wide.extend_from_slice(px);
        }
        pixels.extend_from_slice(&wide);
        pixels.extend_from_slice(&wide);
    }
    Image {
        width: image.width * 2,
        height: image.height * 2,
        channels: image.channels,
        pixels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enlarging_doubles_each_pixel() {
        let image = Image {
            width: 2,
            height: 1,
            channels: 1,
            pixels: vec![1, 2],
        };
        let big = enlarge_twice(&image);
        assert_eq!((big.width, big.height), (4, 2));
        assert_eq!(big.pixels, vec![1, 1, 2, 2, 1, 1, 2, 2]);
    }

    #[test]
    fn off_needs_no_program_and_required_names_the_missing_one() {
        let off = PixelsConfig {
            ocr: OcrMode::Off,
            ..PixelsConfig::default()
        };
        assert!(Ocr::probe(&off).unwrap().is_none());
        let missing = PixelsConfig {
            ocr: OcrMode::Required,
            tesseract: "/nonexistent/tesseract".into(),
            ..PixelsConfig::default()
        };
        let e = Ocr::probe(&missing).unwrap_err();
        assert!(
            e.contains("/nonexistent/tesseract") && e.contains("tesseract-ocr"),
            "{e}"
        );
        let auto = PixelsConfig {
            tesseract: "/nonexistent/tesseract".into(),
            ..PixelsConfig::default()
        };
        assert!(Ocr::probe(&auto).unwrap().is_none());
    }
}
