//! `pacs-gateway facility quota` and `pacs-gateway audit list` through the binary:
//! human sizes, unlimited, warning level, clear errors, and the audit trail as a
//! table and as JSON lines with filters.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Backend, FACILITY, Options, Setup};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn config_file(setup: &Setup) -> PathBuf {
    let path = setup.dir.path().join("cli.toml");
    let mut text = format!("data_dir = {:?}\n", setup.config.data_dir);
    if let Some(url) = &setup.config.database_url {
        text += &format!("database_url = {url:?}\n");
    }
    std::fs::write(&path, text).unwrap();
    path
}

async fn cli(config: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pacs-gateway"));
    command
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .env("USER", "op.jane");
    tokio::task::spawn_blocking(move || command.output().expect("run pacs-gateway"))
        .await
        .unwrap()
}

async fn quota_and_audit_list(backend: Backend) {
    let setup = Setup::new(backend, &Options::default()).await;
    let config = config_file(&setup);
    let facility = setup.facility.id;
    let index = setup.index().await;

    let out = cli(&config, &["facility", "quota", FACILITY]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("quota unlimited"), "{}", text(&out));

    let out = cli(
        &config,
        &[
            "facility",
            "quota",
            FACILITY,
            "--set",
            "1.5GiB",
            "--warn-percent",
            "80",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("quota 1.50 GiB (1610612736 bytes)")
            && text(&out).contains("warning at 80%"),
        "{}",
        text(&out)
    );
    let quota = index.quota(facility).await.unwrap().unwrap();
    assert_eq!(
        (quota.quota_bytes, quota.warn_percent),
        (Some(1_610_612_736), 80)
    );

    let out = cli(&config, &["facility", "quota", FACILITY, "--set", "4096"]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        index.quota(facility).await.unwrap().unwrap().quota_bytes,
        Some(4096)
    );

    for (args, expected) in [
        (vec!["--set", "5GB"], "invalid size"),
        (vec!["--set", "1GiB", "--unlimited"], "cannot be used with"),
        (vec!["--warn-percent", "0"], "warn-percent"),
        (vec!["--warn-percent", "101"], "warn-percent"),
    ] {
        let mut list = vec!["facility", "quota", FACILITY];
        list.extend(args.iter().copied());
        let out = cli(&config, &list).await;
        assert!(!out.status.success(), "{list:?} must fail");
        assert!(text(&out).contains(expected), "{list:?}: {}", text(&out));
    }
    let out = cli(&config, &["facility", "quota", "no-such", "--unlimited"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("no facility named no-such"),
        "{}",
        text(&out)
    );
    assert_eq!(
        index.quota(facility).await.unwrap().unwrap().quota_bytes,
        Some(4096),
        "refused commands change nothing"
    );

    let out = cli(&config, &["facility", "quota", FACILITY, "--unlimited"]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        index.quota(facility).await.unwrap().unwrap().quota_bytes,
        None
    );

    // Three changes were made: --set with --warn-percent, --set, --unlimited.
    let out = cli(
        &config,
        &[
            "audit",
            "list",
            "--facility",
            FACILITY,
            "--json",
            "--kind",
            "admin-change",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert_eq!(
        lines[0]["detail"], "quota removed (unlimited)",
        "newest first"
    );
    assert_eq!(
        lines[2]["detail"],
        "quota set to 1610612736 bytes; quota warning at 80%"
    );
    for line in &lines {
        assert_eq!(line["protocol"], "cli");
        assert_eq!(line["username"], "op.jane");
        assert_eq!(line["facility"], FACILITY);
        assert_eq!(line["kind"], "admin-change");
    }
    let out = cli(&config, &["audit", "list", "--limit", "1", "--since", "1h"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(table.lines().count(), 2, "header and one event:\n{table}");
    assert!(table.contains("quota removed (unlimited)"), "{table}");
    let out = cli(&config, &["audit", "list", "--since", "2999-01-01"]).await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        1,
        "only the header"
    );
    for (bad, expected) in [
        (
            vec!["audit", "list", "--kind", "nonsense"],
            "unknown --kind \"nonsense\"; one of: instances-transferred",
        ),
        (
            vec!["audit", "list", "--since", "yesterday"],
            "invalid --since \"yesterday\"",
        ),
        (
            vec!["audit", "list", "--limit", "0"],
            "0 is not in 1..=1000",
        ),
        (
            vec!["audit", "list", "--facility", "no-such"],
            "no facility named no-such",
        ),
    ] {
        let out = cli(&config, &bad).await;
        assert!(!out.status.success(), "{bad:?} must fail: {}", text(&out));
        let last = String::from_utf8_lossy(&out.stderr)
            .lines()
            .rfind(|l| !l.trim().is_empty() && !l.starts_with("For more"))
            .unwrap_or("")
            .to_string();
        assert!(last.contains(expected), "{bad:?}: {}", text(&out));
    }
    index.close().await;
}

both_backends!(quota_and_audit_list);

#[test]
fn new_subcommands_have_help() {
    for args in [
        &["facility", "quota", "--help"][..],
        &["facility", "certs", "--help"],
        &["facility", "revoke-cert", "--help"],
        &["audit", "list", "--help"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_pacs-gateway"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}
