//! The ISO 9660 image of a CD or DVD medium (level 1 names, Joliet, and Rock Ridge
//! with owners reset and every file readable by all: `-r`, not the data dir's
//! private modes),
//! made by Debian's xorriso (as mkisofs), else genisoimage or mkisofs, holding the
//! File-set (`DICOMDIR`, `DICOM/`) and the index print (`INDEX.PDF`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The ISO 9660 tool: xorriso (as mkisofs), else genisoimage or mkisofs.
pub(super) fn iso_tool() -> anyhow::Result<(PathBuf, Vec<&'static str>)> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let find = |name: &str| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    };
    if let Some(xorriso) = find("xorriso") {
        return Ok((xorriso, vec!["-as", "mkisofs"]));
    }
    for name in ["genisoimage", "mkisofs"] {
        if let Some(tool) = find(name) {
            return Ok((tool, Vec::new()));
        }
    }
    bail!("a CD or DVD medium needs an ISO 9660 tool: install Debian's xorriso (or genisoimage)")
}

/// Makes `iso` holding `DICOMDIR`, `DICOM/` and `INDEX.PDF` of `out`.
pub(super) fn make_iso(out: &Path, iso: &Path, label: &str) -> anyhow::Result<()> {
    let (tool, prefix) = iso_tool()?;
    let output = Command::new(&tool)
        .args(prefix)
        .args([
            "-quiet",
            "-J",
            "-r",
            "-iso-level",
            "1",
            "-N",
            "-d",
            "-V",
            label,
        ])
        .args(["-graft-points", "-o"])
        .arg(iso)
        .arg(format!("/DICOMDIR={}", out.join("DICOMDIR").display()))
        .arg(format!("/DICOM={}", out.join("DICOM").display()))
        .arg(format!("/INDEX.PDF={}", out.join("index.pdf").display()))
        .output()
        .with_context(|| format!("cannot run {}", tool.display()))?;
    if !output.status.success() {
        bail!(
            "{} failed: {}",
            tool.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}
