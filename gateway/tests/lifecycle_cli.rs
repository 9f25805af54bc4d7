//! `pacs-gateway lifecycle ...` on the gateway host: operator default policies set,
//! listed and removed, one run of the job, the lists, and a tombstone asked for.

use std::path::Path;
use std::process::{Command, Output};

fn gateway(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pacs-gateway"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn operator_policies_and_a_run_of_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!("data_dir = {:?}\n", dir.path().join("data")),
    )
    .unwrap();
    assert!(
        gateway(&config, &["facility", "add", "st-mary"])
            .status
            .success()
    );

    let set = gateway(
        &config,
        &[
            "lifecycle",
            "set-policy",
            "st-mary",
            "--days",
            "365",
            "--modality",
            "us",
            "--notice-days",
            "30",
        ],
    );
    assert!(set.status.success(), "{}", text(&set));
    let bad = gateway(
        &config,
        &[
            "lifecycle",
            "set-policy",
            "st-mary",
            "--days",
            "10",
            "--notice-days",
            "10",
        ],
    );
    assert!(
        !bad.status.success() && text(&bad).contains("shorter"),
        "{}",
        text(&bad)
    );
    let listed = gateway(&config, &["lifecycle", "policies", "st-mary"]);
    let shown = text(&listed);
    assert!(listed.status.success(), "{shown}");
    let row = shown
        .lines()
        .find(|l| l.starts_with("operator"))
        .unwrap_or_else(|| panic!("{shown}"));
    for word in ["US", "365", "receipt", "30", "hide-purge"] {
        assert!(row.contains(word), "{word} in {row}");
    }

    let run = gateway(&config, &["lifecycle", "run"]);
    assert!(run.status.success(), "{}", text(&run));
    assert!(text(&run).contains("notices 0"), "{}", text(&run));
    let studies = gateway(&config, &["lifecycle", "studies", "st-mary"]);
    assert!(studies.status.success(), "{}", text(&studies));
    let none = gateway(&config, &["lifecycle", "tombstone", "st-mary", "2.25.1"]);
    assert!(
        !none.status.success() && text(&none).contains("no tombstone"),
        "{}",
        text(&none)
    );

    let removed = gateway(
        &config,
        &["lifecycle", "remove-policy", "st-mary", "--modality", "US"],
    );
    assert!(removed.status.success(), "{}", text(&removed));
    let again = gateway(
        &config,
        &["lifecycle", "remove-policy", "st-mary", "--modality", "US"],
    );
    assert!(!again.status.success(), "{}", text(&again));
    let unknown = gateway(&config, &["lifecycle", "policies", "nowhere"]);
    assert!(!unknown.status.success() && text(&unknown).contains("no facility"));
}
