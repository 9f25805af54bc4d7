//! `pacs-gateway device ...` as an operator uses it: registering, listing and
//! removing C-MOVE destinations per facility, with clear refusals of bad AE titles,
//! bad addresses, unknown facilities and duplicates. Runs on SQLite and, with
//! `PACS_TEST_DATABASE_URL`, PostgreSQL.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Backend, FACILITY, Options, Setup};
use gateway::domain::AeTitle;

/// A config file pointing at the setup's data dir and database.
fn config_file(setup: &Setup) -> PathBuf {
    let path = setup.dir.path().join("cli.toml");
    let mut text = format!("data_dir = {:?}\n", setup.config.data_dir);
    if let Some(url) = &setup.config.database_url {
        text.push_str(&format!("database_url = {url:?}\n"));
    }
    std::fs::write(&path, text).unwrap();
    path
}

async fn run(config: &Path, args: &[&str]) -> Output {
    let config = config.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_pacs-gateway"))
            .arg("--config")
            .arg(config)
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .expect("run pacs-gateway")
    })
    .await
    .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{}", text(out));
    text(out)
}

fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "unexpectedly succeeded: {}",
        text(out)
    );
    text(out)
}

async fn add_list_remove(backend: Backend) {
    let mut setup = Setup::new(backend, &Options::default()).await;
    let other = setup.add_plain_facility("other-clinic", "OTHER_AE").await;
    let config = config_file(&setup);

    let added = ok(&run(
        &config,
        &["device", "add", FACILITY, "WS1", "127.0.0.1:11112"],
    )
    .await);
    assert!(added.contains("WS1") && added.contains("plain"), "{added}");
    ok(&run(
        &config,
        &[
            "device",
            "add",
            FACILITY,
            "VIEWER",
            "viewer.example.org:2762",
            "--tls",
        ],
    )
    .await);
    // The same AE title for another facility is a different destination.
    ok(&run(
        &config,
        &["device", "add", "other-clinic", "WS1", "10.0.0.9:104"],
    )
    .await);

    let index = setup.index().await;
    let ws1 = AeTitle::parse("WS1").unwrap();
    let ours = index
        .find_destination(setup.facility.id, &ws1)
        .await
        .unwrap()
        .expect("registered");
    assert_eq!(
        (ours.host.as_str(), ours.port, ours.tls),
        ("127.0.0.1", 11112, false)
    );
    let viewer = index
        .find_destination(setup.facility.id, &AeTitle::parse("VIEWER").unwrap())
        .await
        .unwrap()
        .expect("registered");
    assert!(viewer.tls);
    let theirs = index
        .find_destination(other.id, &ws1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(theirs.address(), "10.0.0.9:104");

    let listed = ok(&run(&config, &["device", "list", "--facility", FACILITY]).await);
    assert!(
        listed.contains("WS1") && listed.contains("127.0.0.1:11112"),
        "{listed}"
    );
    assert!(listed.contains("viewer.example.org:2762") && listed.contains("tls"));
    assert!(
        !listed.contains("10.0.0.9"),
        "another facility's row: {listed}"
    );
    let all = ok(&run(&config, &["device", "list"]).await);
    assert!(
        all.contains("10.0.0.9:104") && all.contains("other-clinic"),
        "{all}"
    );

    let dup = failed(
        &run(
            &config,
            &["device", "add", FACILITY, "WS1", "127.0.0.1:104"],
        )
        .await,
    );
    assert!(dup.contains("already has a destination WS1"), "{dup}");
    for (ae, address, expected) in [
        ("", "127.0.0.1:104", "invalid AE title"),
        ("A\\B", "127.0.0.1:104", "invalid AE title"),
        ("SEVENTEEN_CHARS_X", "127.0.0.1:104", "invalid AE title"),
        ("OK", "127.0.0.1", "no port"),
        ("OK", "host:0", "1 to 65535"),
        ("OK", "host:99999", "1 to 65535"),
        ("OK", "bad host:104", "not a host name"),
    ] {
        let out = failed(&run(&config, &["device", "add", FACILITY, ae, address]).await);
        assert!(out.contains(expected), "{ae:?} {address:?}: {out}");
    }
    let unknown = failed(&run(&config, &["device", "add", "nowhere", "WS2", "h:104"]).await);
    assert!(unknown.contains("no facility named nowhere"), "{unknown}");

    ok(&run(&config, &["device", "remove", FACILITY, "WS1"]).await);
    assert!(
        index
            .find_destination(setup.facility.id, &ws1)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        index
            .find_destination(other.id, &ws1)
            .await
            .unwrap()
            .is_some(),
        "only this facility's WS1 is removed"
    );
    let again = failed(&run(&config, &["device", "remove", FACILITY, "WS1"]).await);
    assert!(again.contains("has no destination WS1"), "{again}");
    index.close().await;
}

both_backends!(add_list_remove);
