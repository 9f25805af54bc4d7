//! `pacs-client modality ...` and `pacs-client rule ...` through the binary: edits
//! keep the config file's comments and layout, bad input leaves the file untouched,
//! and a running `serve` follows the change at its next association (DCMTK
//! `storescu` as the modality).

mod common;

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{
    GatewaySide, client_config, client_toml, dcmtk_path, free_port, patient, write_instance,
};

const BIN: &str = env!("CARGO_BIN_EXE_pacs-client");
/// The documented example config: full of comments worth keeping.
const EXAMPLE: &str = include_str!("../../schemas/client.toml");
const APPLIES: &str = "applies this to new associations";

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    fn code(&self) -> Option<i32> {
        self.status.code()
    }

    fn show(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// `pacs-client [--config FILE] ARGS`, nothing leaking in from the environment.
fn pacs(config: Option<&Path>, args: &[&str]) -> Run {
    let mut cmd = std::process::Command::new(BIN);
    cmd.env_remove("PACS_CLIENT_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    let out = cmd.args(args).output().expect("run pacs-client");
    Run {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(config: &Path, args: &[&str]) -> Run {
    let run = pacs(Some(config), args);
    assert_eq!(run.code(), Some(0), "{args:?}:\n{}", run.show());
    run
}

fn example(dir: &Path) -> PathBuf {
    let path = dir.join("client.toml");
    std::fs::write(&path, EXAMPLE).unwrap();
    path
}

#[test]
fn add_list_remove_round_trips_keep_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = example(dir.path());

    let run = ok(
        &file,
        &["modality", "add", "MR_ROOM_2", "--host", "10.1.2.9"],
    );
    assert!(run.stdout.contains(APPLIES), "{}", run.show());
    let edited = std::fs::read_to_string(&file).unwrap();
    assert!(
        edited.contains("[[edge.modalities]]\nae_title = \"MR_ROOM_2\"\nhost = \"10.1.2.9\"\n"),
        "{edited}"
    );
    for comment in EXAMPLE.lines().filter(|l| l.trim_start().starts_with('#')) {
        assert!(
            edited.contains(comment),
            "comment {comment:?} lost:\n{edited}"
        );
    }
    let list = ok(&file, &["modality", "list"]);
    let rows: Vec<Vec<&str>> = list
        .stdout
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [vec!["CT_ROOM_1", "any"], vec!["MR_ROOM_2", "10.1.2.9"]],
        "{}",
        list.show()
    );
    ok(&file, &["modality", "remove", "MR_ROOM_2"]);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        EXAMPLE,
        "add + remove restores the file byte for byte"
    );

    let run = ok(
        &file,
        &[
            "rule",
            "add",
            "--calling-ae",
            "US_ROOM_2",
            "--modality",
            "us",
            "--action",
            "local-only",
            "--position",
            "1",
        ],
    );
    assert!(run.stdout.contains(APPLIES), "{}", run.show());
    let list = ok(&file, &["rule", "list"]);
    let numbered: Vec<&str> = list
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    assert_eq!(numbered.len(), 2, "{}", list.show());
    assert_eq!(
        numbered[0].split_whitespace().collect::<Vec<_>>(),
        ["1", "US_ROOM_2", "US", "*", "local"]
    );
    assert_eq!(
        numbered[1].split_whitespace().collect::<Vec<_>>(),
        ["2", "*", "*", "*research*", "local"]
    );
    assert!(
        list.stdout.contains("default (no rule matches): forward"),
        "{}",
        list.show()
    );
    let config = client::config::Config::load(Some(&file)).unwrap();
    assert_eq!(config.sharing.rules[0].modality.as_deref(), Some("US"));
    ok(&file, &["rule", "remove", "1"]);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        EXAMPLE,
        "rule add + remove restores the file"
    );
}

#[test]
fn invalid_input_is_refused_and_the_file_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let file = example(dir.path());
    // The example's viewer is commented out; this test needs one.
    let original =
        format!("{EXAMPLE}\n[[edge.viewers]]\nae_title = \"VIEWER1\"\nuser = \"dr.house\"\n");
    std::fs::write(&file, &original).unwrap();
    let refused: [(&[&str], i32, &str); 10] = [
        (&["modality", "add", "CT_ROOM_1"], 1, "already allowed"),
        (&["modality", "add", "VIEWER1"], 1, "viewer"),
        (
            &["modality", "add", "SEVENTEEN_CHARS_X"],
            1,
            "1 to 16 characters",
        ),
        (
            &["modality", "add", "MR_2", "--host", "mr.example.org"],
            1,
            "not an IP address",
        ),
        (
            &["modality", "remove", "NOT_THERE"],
            1,
            "no modality NOT_THERE",
        ),
        (
            &["rule", "remove", "7"],
            1,
            "there is no rule 7: the config has 1 rule(s)",
        ),
        (
            &["rule", "add", "--description", "", "--action", "local"],
            1,
            "bad study description pattern",
        ),
        (
            &["rule", "add", "--modality", "C-T", "--action", "local"],
            1,
            "not a modality",
        ),
        (&["rule", "add", "--action", "local"], 1, "at least one of"),
        (
            &["rule", "add", "--modality", "CT", "--action", "maybe"],
            2,
            "invalid value",
        ),
    ];
    for (args, code, message) in refused {
        let run = pacs(Some(&file), args);
        assert_eq!(run.code(), Some(code), "{args:?}:\n{}", run.show());
        assert!(
            run.stderr.contains(message),
            "{args:?} should say {message:?}:\n{}",
            run.show()
        );
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            original,
            "{args:?} changed the file"
        );
    }
    let no_config = pacs(None, &["modality", "add", "MR_2"]);
    assert_eq!(no_config.code(), Some(1), "{}", no_config.show());
    assert!(
        no_config.stderr.contains("--config"),
        "{}",
        no_config.show()
    );

    // A file the loader would refuse is not edited (and says why, exit 64).
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[edge]\nlisen = \"0.0.0.0:11112\"\n").unwrap();
    let run = pacs(Some(&broken), &["modality", "add", "MR_2"]);
    assert_eq!(run.code(), Some(64), "{}", run.show());
    assert!(run.stderr.contains("lisen"), "{}", run.show());
    assert_eq!(
        std::fs::read_to_string(&broken).unwrap(),
        "[edge]\nlisen = \"0.0.0.0:11112\"\n"
    );
}

#[test]
fn every_command_has_help() {
    for args in [
        &["modality", "--help"][..],
        &["modality", "add", "--help"],
        &["modality", "remove", "--help"],
        &["modality", "list", "--help"],
        &["rule", "--help"],
        &["rule", "add", "--help"],
        &["rule", "remove", "--help"],
        &["rule", "list", "--help"],
    ] {
        let run = pacs(None, args);
        assert_eq!(run.code(), Some(0), "{args:?}:\n{}", run.show());
        assert!(
            run.stdout.contains("Usage: pacs-client"),
            "{args:?}:\n{}",
            run.show()
        );
    }
    let add = pacs(None, &["rule", "add", "--help"]);
    for option in [
        "--calling-ae",
        "--modality",
        "--description",
        "--action",
        "--position",
        "forward",
        "local",
    ] {
        assert!(
            add.stdout.contains(option),
            "rule add --help lacks {option}:\n{}",
            add.show()
        );
    }
}

/// `storescu` as `ae` to the edge; whether the store succeeded.
fn storescu_as(ae: &str, port: u16, file: &Path) -> (bool, String) {
    let out = std::process::Command::new(dcmtk_path("storescu"))
        .env("TCP_NODELAY", "1")
        .args([
            "-aet",
            ae,
            "-aec",
            "PACS_CLIENT",
            "127.0.0.1",
            &port.to_string(),
        ])
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .expect("storescu (apt-get install dcmtk)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The count `status` prints for `state`.
fn state_count(config: &Path, state: &str) -> i64 {
    let run = ok(config, &["status"]);
    run.stdout
        .lines()
        .find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some(state)).then(|| words.next()?.parse().ok())?
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_follows_modality_and_rule_changes_without_restart() {
    // Certificates from a gateway that is never started: delivery is not the point.
    let gw = GatewaySide::prepare().await;
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let port = free_port();
    let config = client_config(cwd, &gw, port);
    let file = cwd.join("client.toml");
    std::fs::write(&file, client_toml(&config)).unwrap();
    ok(&file, &["init"]);

    let log = cwd.join("serve.log");
    let mut serve = tokio::process::Command::new(BIN)
        .env_remove("PACS_CLIENT_CONFIG")
        .env_remove("RUST_LOG")
        .arg("--config")
        .arg(&file)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn pacs-client serve");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "serve did not listen: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let images = cwd.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let first = write_instance(&images, &patient(1), 1, 1, "CT chest");
    let second = write_instance(&images, &patient(2), 2, 1, "CT chest");
    let third = write_instance(&images, &patient(3), 3, 1, "CT chest");

    let (stored, out) = storescu_as("MR_NEW", port, &first);
    assert!(!stored, "an unknown AE must be refused:\n{out}");

    let run = ok(&file, &["modality", "add", "MR_NEW"]);
    assert!(run.stdout.contains(APPLIES), "{}", run.show());
    let (stored, out) = storescu_as("MR_NEW", port, &first);
    assert!(
        stored,
        "the added modality stores without a restart:\n{out}\nlog:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(state_count(&file, "local"), 0);

    ok(
        &file,
        &["rule", "add", "--calling-ae", "MR_NEW", "--action", "local"],
    );
    let (stored, out) = storescu_as("MR_NEW", port, &second);
    assert!(stored, "{out}");
    assert_eq!(
        state_count(&file, "local"),
        1,
        "the new rule routed the instance local-only"
    );

    ok(&file, &["modality", "remove", "MR_NEW"]);
    let (stored, out) = storescu_as("MR_NEW", port, &third);
    assert!(!stored, "a removed modality is refused again:\n{out}");
    let (stored, out) = storescu_as(common::MODALITY_AE, port, &third);
    assert!(stored, "the other modality is still allowed:\n{out}");

    let pid = serve.id().expect("serve is running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let exit = tokio::time::timeout(Duration::from_secs(20), serve.wait())
        .await
        .expect("serve stops on SIGTERM")
        .unwrap();
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(exit.success(), "{exit:?}\n{log_text}");
    assert!(
        log_text.contains("reloaded"),
        "serve logs the reload:\n{log_text}"
    );
}
