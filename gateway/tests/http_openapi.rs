//! schemas/admin-api.openapi.yaml against the code: every route the router is built
//! from is documented with the same method, and every documented route exists.

use std::collections::BTreeSet;

/// (METHOD, path) pairs under `paths:` of the OpenAPI file (paths at two spaces of
/// indentation, methods at four).
fn documented() -> BTreeSet<(String, String)> {
    let text = include_str!("../../schemas/admin-api.openapi.yaml");
    let mut out = BTreeSet::new();
    let mut in_paths = false;
    let mut current: Option<String> = None;
    for line in text.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() {
            in_paths = line.trim_end() == "paths:";
            current = None;
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(rest) = line.strip_prefix("  ")
            && rest.starts_with('/')
        {
            let path = rest.trim_end().trim_end_matches(':').to_string();
            current = Some(path);
            continue;
        }
        if let Some(rest) = line.strip_prefix("    ") {
            if rest.starts_with(' ') {
                continue;
            }
            let key = rest.trim_end().trim_end_matches(':');
            let methods = ["get", "put", "post", "delete", "patch", "head", "options"];
            if methods.contains(&key) {
                let path = current.clone().expect("method outside a path");
                out.insert((key.to_uppercase(), path));
            }
        }
    }
    out
}

#[test]
fn openapi_matches_the_router() {
    let documented = documented();
    let coded: BTreeSet<(String, String)> = gateway::http::route_table()
        .into_iter()
        .map(|(m, p)| (m.as_str().to_string(), p.to_string()))
        .collect();
    assert!(coded.len() >= 20, "route table looks empty: {coded:?}");
    let undocumented: Vec<_> = coded.difference(&documented).collect();
    let missing: Vec<_> = documented.difference(&coded).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from schemas/admin-api.openapi.yaml: {undocumented:?}"
    );
    assert!(
        missing.is_empty(),
        "documented routes the router does not have: {missing:?}"
    );
}

#[test]
fn the_parser_sees_every_path_of_the_file() {
    // Guards the line parser: as many distinct paths as `  /` lines under paths:.
    let text = include_str!("../../schemas/admin-api.openapi.yaml");
    let lines = text.lines().filter(|l| l.starts_with("  /")).count();
    let paths: BTreeSet<String> = documented().into_iter().map(|(_, p)| p).collect();
    assert_eq!(paths.len(), lines);
}
