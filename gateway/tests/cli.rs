//! The `pacs-gateway` command line as an operator uses it: enrolling facilities,
//! issuing certificates, and clear one-line errors with the right exit codes.

use std::path::Path;
use std::process::{Command, Output};

fn gateway(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pacs-gateway"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run pacs-gateway")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn config_in(dir: &Path) -> std::path::PathBuf {
    let config = dir.join("gateway.toml");
    std::fs::write(&config, format!("data_dir = {:?}\n", dir.join("data"))).unwrap();
    config
}

#[test]
fn enroll_a_facility_and_issue_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(dir.path());
    let out = gateway(&config, &["facility", "add", "st-mary"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("facility st-mary added"));

    let again = gateway(&config, &["facility", "add", "st-mary"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again).contains("already exists"), "{}", text(&again));

    let certs = dir.path().join("cert");
    let out = gateway(
        &config,
        &[
            "facility",
            "issue-cert",
            "st-mary",
            "--out",
            certs.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    for file in ["facility.crt", "facility.key", "ca.crt"] {
        assert!(certs.join(file).is_file(), "{file} missing");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(certs.join("facility.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the facility key must be readable by its owner only"
    );
    let listed = gateway(&config, &["facility", "list"]);
    assert!(text(&listed).contains("st-mary"));

    // A second issue into the same directory must not overwrite the key.
    let out = gateway(
        &config,
        &[
            "facility",
            "issue-cert",
            "st-mary",
            "--out",
            certs.to_str().unwrap(),
        ],
    );
    assert!(
        !out.status.success(),
        "overwrote an existing key: {}",
        text(&out)
    );
}

#[test]
fn mistakes_get_one_clear_line_and_an_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(dir.path());
    let out = gateway(
        &config,
        &["facility", "issue-cert", "nowhere", "--out", "x"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("no facility named nowhere"),
        "{}",
        text(&out)
    );

    let out = gateway(&config, &["facility", "add", "bad/name"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("invalid facility name"),
        "{}",
        text(&out)
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[dicom]\nae_tittle = \"X\"\n").unwrap();
    let out = gateway(&bad, &["facility", "list"]);
    assert_eq!(
        out.status.code(),
        Some(64),
        "bad configuration exits 64: {}",
        text(&out)
    );
    assert!(
        text(&out).contains("ae_tittle"),
        "the error names the unknown key: {}",
        text(&out)
    );

    let missing = dir.path().join("missing.toml");
    let out = gateway(&missing, &["facility", "list"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out).contains("missing.toml"), "{}", text(&out));
}

#[test]
fn every_subcommand_has_help() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["facility", "--help"],
        &["facility", "add", "--help"],
        &["facility", "issue-cert", "--help"],
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

/// One `serve` per data dir: a second one (other ports) is refused, naming the first.
#[test]
fn a_second_serve_on_one_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = |name: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "data_dir = {:?}\n[dicom]\ntls_listen = \"127.0.0.1:0\"\nplain_listen = \"127.0.0.1:0\"\n\
                 [https]\nlisten = \"127.0.0.1:0\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
                dir.path().join("data")
            ),
        )
        .unwrap();
        path
    };
    let (first_config, second_config) = (config("one.toml"), config("two.toml"));
    let mut first = Command::new(env!("CARGO_BIN_EXE_pacs-gateway"))
        .arg("--config")
        .arg(&first_config)
        .arg("serve")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lock = dir.path().join("data").join("serve.lock");
    let pid = first.id().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::fs::read_to_string(&lock).unwrap_or_default().trim() != pid {
        assert!(
            std::time::Instant::now() < deadline,
            "the first serve never took the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let second = gateway(&second_config, &["serve"]);
    let _ = first.kill();
    let _ = first.wait();
    assert!(!second.status.success(), "{}", text(&second));
    let said = text(&second);
    assert!(
        said.contains("another pacs-gateway serve") && said.contains(&format!("pid {pid}")),
        "the refusal names the running process: {said}"
    );
}
