//! `pacs-client held ...` (instances the pixel screening kept back: list, release
//! as they are, keep local; audited) and `pacs-client pixel-rule test` (what a
//! `[[pixels.rules]]` blanks in a file, as a PNG).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use tracing::info;

use crate::config::Config;
use crate::intake::pixels::frames::{Frames, Image};
use crate::intake::pixels::identifiers::Identifiers;
use crate::intake::pixels::{Screener, blank, png, rules};
use crate::outbox::{self, HeldRow, Outbox};

/// The flag `held release` requires.
pub(super) const CONFIRM_FLAG: &str = "--confirm-no-burned-in-identity";

/// `held ...`
#[derive(Debug, Subcommand)]
pub enum HeldCommand {
    /// Instances held back for burned-in text, with the reason and the spool file.
    List,
    /// Send a held instance to the gateway exactly as it is (pixels unchanged).
    /// Look at its pixels first (`pacs-client pixel-rule test SPOOL_FILE --png
    /// OUT.png`); the decision is audited with your OS user name.
    Release {
        /// Outbox id (from `held list` or `status`).
        id: i64,
        /// Confirms that you looked at every frame and it shows no name, ID, birth
        /// date or other identifying text.
        #[arg(long = "confirm-no-burned-in-identity")]
        confirm: bool,
    },
    /// Keep a held instance local-only (never sent); audited.
    KeepLocal {
        /// Outbox id.
        id: i64,
    },
    /// The local audit of release / keep-local decisions, newest first.
    Audit,
}

/// `pixel-rule ...`
#[derive(Debug, Subcommand)]
pub enum PixelRuleCommand {
    /// Which `[[pixels.rules]]` matches a DICOM file, and a PNG of one frame as the
    /// gateway would receive it (rectangles blanked).
    Test {
        /// A DICOM (Part-10) file, e.g. a held instance's spool file.
        file: PathBuf,
        /// Where to write the PNG.
        #[arg(long)]
        png: PathBuf,
        /// Frame to show, from 1.
        #[arg(long, default_value_t = 1)]
        frame: u32,
        /// Tint the blanked rectangles red over the original pixels instead of
        /// blanking them (to check that they cover the text).
        #[arg(long)]
        overlay: bool,
    },
}

/// Runs `held ...`; returns the exit code.
pub(super) async fn held(config: &Config, cmd: HeldCommand) -> anyhow::Result<i32> {
    let outbox = outbox::open(config).await?;
    match cmd {
        HeldCommand::List => {
            let held = outbox.held_instances().await?;
            if held.is_empty() {
                println!("no held instances");
            } else {
                print_held(&held);
            }
        }
        HeldCommand::Release { id, confirm } => {
            if !confirm {
                eprintln!(
                    "pacs-client: `held release` sends the pixels exactly as they are, burned-in text included.\n\
                     Look at every frame first (`pacs-client pixel-rule test SPOOL_FILE --png OUT.png --frame N`);\n\
                     if none shows a name, ID, birth date or other identifying text, run again with {CONFIRM_FLAG}."
                );
                return Ok(2);
            }
            let row = decide(&outbox, id, "release").await?;
            println!(
                "released held instance {id} ({}); `pacs-client serve` sends it as it is",
                row.sop_instance_uid
            );
        }
        HeldCommand::KeepLocal { id } => {
            let row = decide(&outbox, id, "keep-local").await?;
            println!(
                "held instance {id} ({}) is now kept local-only",
                row.sop_instance_uid
            );
        }
        HeldCommand::Audit => {
            let rows = outbox.pixel_audit().await?;
            if rows.is_empty() {
                println!("no decisions about held instances yet");
            }
            for r in rows {
                println!(
                    "{}  {:<10} {:<12} id {:<6} {}  ({})",
                    time_text(r.at),
                    r.action,
                    r.os_user,
                    r.outbox_id,
                    r.sop_instance_uid,
                    r.reason
                );
            }
        }
    }
    Ok(0)
}

async fn decide(outbox: &Outbox, id: i64, action: &str) -> anyhow::Result<HeldRow> {
    let user = os_user();
    let row = if action == "release" {
        outbox.release_held(id, &user).await?
    } else {
        outbox.keep_held_local(id, &user).await?
    };
    let Some(row) = row else {
        bail!("no held instance with id {id}; `pacs-client held list` shows them");
    };
    info!(
        target: "audit",
        event = "held-instance",
        action,
        os_user = %user,
        outbox_id = id,
        sop_instance_uid = %row.sop_instance_uid,
        reason = %row.reason,
        "decision about a held instance"
    );
    Ok(row)
}

/// The held instances, for `held list` and `status`.
pub(super) fn print_held(held: &[HeldRow]) {
    println!(
        "held (release with `pacs-client held release ID {CONFIRM_FLAG}` after looking at the pixels, or `pacs-client held keep-local ID`):"
    );
    for h in held {
        println!(
            "  {:>6}  {}  {:<4} {}  held: {}\n          spool file: {}",
            h.id,
            time_text(h.received_at),
            h.modality.as_deref().unwrap_or("-"),
            h.sop_instance_uid,
            h.reason,
            h.spool_path
        );
    }
}

/// The operating-system user running this process: the name of the process's
/// owner in /etc/passwd, else $USER / $LOGNAME, else `uid N`.
pub(super) fn os_user() -> String {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    if let Some(uid) = uid
        && let Ok(passwd) = std::fs::read_to_string("/etc/passwd")
    {
        let name = passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.len() > 2 && fields[2].parse::<u32>().ok() == Some(uid))
                .then(|| fields[0].to_string())
        });
        if let Some(name) = name {
            return name;
        }
    }
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| uid.map_or_else(|| "unknown".into(), |u| format!("uid {u}")))
}

fn time_text(ms: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// Runs `pixel-rule ...`; returns the exit code.
pub(super) fn pixel_rule(config: &Config, cmd: PixelRuleCommand) -> anyhow::Result<i32> {
    let PixelRuleCommand::Test {
        file,
        png: out,
        frame,
        overlay,
    } = cmd;
    let screener = Screener::new(&config.pixels).map_err(crate::config::ConfigError::Invalid)?;
    let dicom = crate::dicomfile::open(&file)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("cannot read {} as a DICOM file", file.display()))?;
    let sop_class = dicom
        .meta()
        .media_storage_sop_class_uid()
        .trim_end_matches('\0')
        .to_string();
    if frame == 0 {
        bail!("--frame counts from 1");
    }
    let rule = screener.rule_for(&dicom, &sop_class).cloned();
    let frames = Frames::read(&dicom, Some(&[frame - 1]))
        .with_context(|| format!("cannot read frame {frame} of {}", file.display()))?;
    if frames.numbers.is_empty() {
        bail!(
            "{} has {} frame(s); there is no frame {frame}",
            file.display(),
            crate::intake::pixels::frames::frame_count(&dicom)
        );
    }
    let original = frames.image(0).context("cannot render the frame")?;
    let mut shown = frames.clone();
    match &rule {
        Some(rule) => {
            println!("rule {:?} matches {}", rule.name, file.display());
            for r in &rule.rectangles {
                match rules::clip(r, frames.columns, frames.rows) {
                    Some((xs, ys)) => println!(
                        "  blanks columns {}..{} rows {}..{}",
                        xs.start, xs.end, ys.start, ys.end
                    ),
                    None => println!(
                        "  rectangle x={} y={} {}x{} lies outside this {}x{} image",
                        r.x, r.y, r.width, r.height, frames.columns, frames.rows
                    ),
                }
            }
            blank::blank(&mut shown, &rule.rectangles);
        }
        None => println!(
            "no pixel rule matches {} (it would be held if it is a burned-in text risk)",
            file.display()
        ),
    }
    let cleaned = shown.image(0).context("cannot render the frame")?;
    let image = if overlay {
        let rectangles = rule
            .as_ref()
            .map(|r| r.rectangles.as_slice())
            .unwrap_or(&[]);
        tint(&original, rectangles)
    } else {
        cleaned.clone()
    };
    write_png(&out, &image)?;
    println!(
        "wrote frame {frame} to {}{}",
        out.display(),
        if overlay {
            " (blanked areas tinted red)"
        } else {
            " as the gateway would receive it"
        }
    );
    if let Some(ocr) = screener.ocr() {
        let identifiers = Identifiers::of(&dicom);
        let text = ocr.read(&cleaned).context("text detection failed")?;
        match identifiers.find_in(&text) {
            Some(found) => println!(
                "OCR still reads {} in this frame{}",
                found.describe(),
                if rule.is_some() {
                    " after blanking"
                } else {
                    ""
                }
            ),
            None => println!("OCR reads none of this instance's identifiers in this frame"),
        }
    }
    Ok(0)
}

/// `original` with the rule's rectangles tinted red (in RGB).
fn tint(original: &Image, rectangles: &[crate::config::pixels::Rectangle]) -> Image {
    let channels = usize::from(original.channels);
    let mut pixels = Vec::with_capacity(original.pixels.len() / channels * 3);
    for o in original.pixels.chunks_exact(channels) {
        if channels == 3 {
            pixels.extend_from_slice(o);
        } else {
            pixels.extend_from_slice(&[o[0]; 3]);
        }
    }
    for r in rectangles {
        let Some((xs, ys)) = rules::clip(r, original.width, original.height) else {
            continue;
        };
        for y in ys {
            for x in xs.clone() {
                let at = (y as usize * original.width as usize + x as usize) * 3;
                pixels[at] = 255;
                pixels[at + 1] /= 3;
                pixels[at + 2] /= 3;
            }
        }
    }
    Image {
        width: original.width,
        height: original.height,
        channels: 3,
        pixels,
    }
}

fn write_png(path: &Path, image: &Image) -> anyhow::Result<()> {
    std::fs::write(path, png::encode(image))
        .with_context(|| format!("cannot write {}", path.display()))
}
