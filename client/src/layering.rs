//! The layering described in the crate doc, checked on the source tree: the shared
//! layer names nothing above it, the sides (`intake`, `clinician`, `admin`) name
//! neither each other nor the top (`app`, `cli`, `edge`, `startup`), and inside the
//! clinician side the flows (`query`, `retrieve`, `viewer`, `web`, `sync`,
//! `lifecycle`, `export`) name neither each other
//! nor are named by what they share (`fetch`, `translate`).
//!
//! Reads every `crate::` path outside comment lines; `super::super` is refused so no
//! path climbs around the check.

use std::path::{Path, PathBuf};

/// Modules above both sides.
const TOP: [&str; 4] = ["app", "cli", "edge", "startup"];
/// The sides.
const SIDES: [&str; 3] = ["intake", "clinician", "admin"];
/// The clinician side's flows.
const FLOWS: [&str; 7] = [
    "query",
    "retrieve",
    "viewer",
    "web",
    "sync",
    "lifecycle",
    "export",
];

/// Where a file sits, from its path under `src/`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Layer {
    Top,
    /// A side, and for the clinician side the flow (or `None` for what they share).
    Side(String, Option<String>),
    Shared,
}

fn layer_of(relative: &Path) -> Layer {
    let parts: Vec<String> = relative
        .components()
        .map(|c| {
            c.as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string()
        })
        .collect();
    let first = parts.first().map(String::as_str).unwrap_or_default();
    if TOP.contains(&first) || ["lib", "main", "layering"].contains(&first) {
        return Layer::Top;
    }
    if SIDES.contains(&first) {
        let flow = parts
            .get(1)
            .filter(|p| first == "clinician" && FLOWS.contains(&p.as_str()))
            .cloned();
        return Layer::Side(first.to_string(), flow);
    }
    Layer::Shared
}

/// The `crate::a::b` paths a line names (segments), skipping comment lines.
fn crate_paths(line: &str) -> Vec<Vec<String>> {
    if line.trim_start().starts_with("//") {
        return Vec::new();
    }
    line.match_indices("crate::")
        .filter(|(at, _)| !line[..*at].ends_with('$'))
        .map(|(at, found)| {
            line[at + found.len()..]
                .split("::")
                .map(|s| {
                    s.chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect::<String>()
                })
                .take_while(|s| !s.is_empty())
                .collect()
        })
        .collect()
}

/// Why `path` may not be named from `layer`, if it may not.
fn refusal(layer: &Layer, path: &[String]) -> Option<String> {
    let first = path.first()?.as_str();
    let second = path.get(1).map(String::as_str);
    match layer {
        Layer::Top => None,
        Layer::Shared if TOP.contains(&first) || SIDES.contains(&first) => {
            Some(format!("the shared layer names crate::{first}"))
        }
        Layer::Shared => None,
        Layer::Side(side, _) if TOP.contains(&first) => {
            Some(format!("{side} names crate::{first}, which is above it"))
        }
        Layer::Side(side, _) if SIDES.contains(&first) && first != side => {
            Some(format!("{side} names the other side crate::{first}"))
        }
        Layer::Side(side, flow) if side == "clinician" && first == "clinician" => {
            let named = second.filter(|s| FLOWS.contains(s))?;
            match flow {
                Some(own) if own == named => None,
                Some(own) => Some(format!(
                    "clinician::{own} names the flow clinician::{named}"
                )),
                None => Some(format!("what the flows share names clinician::{named}")),
            }
        }
        Layer::Side(..) => None,
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir)
        .expect("read the source tree")
        .flatten()
    {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn imports_only_go_down() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        if relative == Path::new("layering.rs") {
            continue; // its own patterns and samples
        }
        let layer = layer_of(relative);
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.contains("super::super") {
                problems.push(format!("{}:{}: super::super", relative.display(), n + 1));
            }
            for path in crate_paths(line) {
                checked += 1;
                if let Some(why) = refusal(&layer, &path) {
                    problems.push(format!("{}:{}: {why}", relative.display(), n + 1));
                }
            }
        }
    }
    assert!(
        files.len() > 50 && checked > 100,
        "the source tree was not found ({} files, {checked} paths)",
        files.len()
    );
    assert!(
        problems.is_empty(),
        "imports that go up or sideways:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_check_sees_what_it_must_refuse() {
    let layer = |p: &str| layer_of(Path::new(p));
    let refused = |file: &str, line: &str| {
        crate_paths(line)
            .iter()
            .any(|path| refusal(&layer(file), path).is_some())
    };
    assert!(refused(
        "intake/spool.rs",
        "use crate::clinician::viewer::ViewerProxy;"
    ));
    assert!(refused(
        "clinician/query.rs",
        "let o = crate::intake::spool::x();"
    ));
    assert!(refused(
        "clinician/viewer/mod.rs",
        "use crate::clinician::query::text;"
    ));
    assert!(refused(
        "clinician/translate/find.rs",
        "crate::clinician::retrieve::x"
    ));
    assert!(refused(
        "clinician/web/qido.rs",
        "use crate::clinician::viewer::ViewerProxy;"
    ));
    assert!(refused(
        "clinician/search.rs",
        "use crate::clinician::web::WebProxy;"
    ));
    assert!(refused("admin/records.rs", "crate::edge::valid_uid(x)"));
    assert!(refused("outbox.rs", "use crate::app::Client;"));
    assert!(!refused(
        "clinician/viewer/retrieve.rs",
        "use crate::clinician::viewer::x;"
    ));
    assert!(!refused(
        "clinician/viewer/mod.rs",
        "use crate::clinician::translate::text;"
    ));
    assert!(!refused("intake/forward.rs", "use crate::outbox::Outbox;"));
    assert!(!refused("app.rs", "use crate::intake::spool::Spool;"));
    assert!(!refused(
        "intake/spool.rs",
        "// see crate::clinician::viewer"
    ));
    assert!(!refused(
        "exit.rs",
        "return Err($crate::exit::UsageError(x))"
    ));
}
