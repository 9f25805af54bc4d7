//! Records the git commit the binary is built from, for `--version`, the start banner,
//! `/healthz` and the `build_info` metric. `PACS_GIT_COMMIT` overrides it (container
//! builds copy the sources without `.git`); outside a git checkout it is `unknown`.
//! Also rebuilds the crate when a migration is added or changed (`sqlx::migrate!`
//! embeds schemas/client/sqlite at compile time).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn main() {
    println!("cargo:rerun-if-changed=../schemas/client/sqlite");
    println!("cargo:rerun-if-env-changed=PACS_GIT_COMMIT");
    let commit = std::env::var("PACS_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    // Rebuild when HEAD moves (a worktree's HEAD and the shared refs live apart).
    for path in ["HEAD"] {
        if let Some(p) = git(&["rev-parse", "--git-path", path]) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    if let Some(common) = git(&["rev-parse", "--git-common-dir"]) {
        println!("cargo:rerun-if-changed={common}/refs/heads");
        // Only if it exists: cargo reruns a build script every time for a missing path.
        let packed = format!("{common}/packed-refs");
        if std::path::Path::new(&packed).exists() {
            println!("cargo:rerun-if-changed={packed}");
        }
    }
    println!("cargo:rustc-env=PACS_GIT_COMMIT={commit}");
}
