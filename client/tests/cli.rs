//! The `pacs-client` binary as a facility administrator uses it: creating and backing
//! up the key, sending a folder, reading `status`, retrying dead letters, per-study
//! sharing flags and `--help`, against a real gateway where delivery matters.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use client::config::Config;
use common::{
    GatewaySide, UID_ROOT, client_config, client_toml, client_toml_with_forwarder, free_port,
    patient, write_instance,
};

const BIN: &str = env!("CARGO_BIN_EXE_pacs-client");
const PASSPHRASE: &str = "correct horse battery staple";

/// What one run of the binary did.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// For assertion messages.
    fn show(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `pacs-client [--config FILE] ARGS` in `cwd`, with no configuration or
/// passphrase leaking in from the environment, and stdin closed.
async fn pacs(cwd: &Path, config: Option<&Path>, args: &[&str], passphrase: Option<&str>) -> Run {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.current_dir(cwd)
        .env_remove("PACS_CLIENT_CONFIG")
        .env_remove("PACS_KEY_PASSPHRASE")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    cmd.args(args);
    if let Some(passphrase) = passphrase {
        cmd.env("PACS_KEY_PASSPHRASE", passphrase);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("pacs-client {args:?} did not finish within 120 s"))
        .expect("run pacs-client");
    Run {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Writes `text` as `<dir>/<name>.toml`.
fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// A client that never talks to a gateway (key commands only); its data lives
/// under `<dir>/<name>`.
fn offline_config(dir: &Path, name: &str) -> (Config, PathBuf) {
    let mut config = Config {
        data_dir: dir.join(name),
        facility: common::FACILITY.into(),
        ..Config::default()
    };
    config.edge.listen = format!("127.0.0.1:{}", free_port());
    let absent = dir.join("no-gateway");
    config.gateway.cert = Some(absent.join("facility.crt"));
    config.gateway.key = Some(absent.join("facility.key"));
    config.gateway.ca = Some(absent.join("ca.crt"));
    let file = write_config(dir, name, &client_toml(&config));
    (config, file)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The hex line of a key file (the key itself).
fn key_hex(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let hex = text.lines().nth(1).expect("key file has a key line").trim();
    assert_eq!(hex.len(), 64, "a 256-bit key in hex");
    hex.to_string()
}

/// Every 16-hex-digit word in `text`.
fn key_ids(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| w.len() == 16 && w.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_string)
        .collect()
}

/// The count `status` prints for `state`, if it prints that state.
fn state_count(status: &Run, state: &str) -> Option<i64> {
    status.stdout.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some(state))
            .then(|| words.next()?.parse().ok())
            .flatten()
    })
}

/// A number from the `send` summary line (`sent N (N of them already at the
/// gateway), kept local N, failed N (dead letters), refused at import N`), by the
/// text before it (`"("` for the duplicates).
fn summary(run: &Run, label: &str) -> usize {
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("sent "))
        .unwrap_or_else(|| panic!("no summary line:\n{}", run.show()));
    let (_, rest) = line
        .split_once(label)
        .unwrap_or_else(|| panic!("no {label:?} in the summary:\n{}", run.show()));
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number after {label:?}:\n{}", run.show()))
}

/// The location `status --studies` prints for a study.
fn study_location(status: &Run, study_uid: &str) -> Option<String> {
    status.stdout.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some(study_uid)).then(|| words.next().map(str::to_string))?
    })
}

/// `pacs-client init` for a client config; panics if it fails.
async fn init(cwd: &Path, config_file: &Path) {
    let run = pacs(cwd, Some(config_file), &["init"], None).await;
    assert_eq!(run.code(), Some(0), "init failed:\n{}", run.show());
}

/// Runs `pacs-client serve` until the gateway holds `n` instances, then stops it
/// with SIGTERM as a service manager would; returns how many the gateway holds.
async fn serve_until_stored(cwd: &Path, config_file: &Path, gw: &GatewaySide, n: usize) -> usize {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let log = cwd.join(format!(
        "serve-{}.log",
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    let mut child = tokio::process::Command::new(BIN)
        .current_dir(cwd)
        .env_remove("PACS_CLIENT_CONFIG")
        .env_remove("RUST_LOG")
        .arg("--config")
        .arg(config_file)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn pacs-client serve");
    let stored = gw.wait_for(n, Duration::from_secs(30)).await;
    let pid = child.id().expect("serve is still running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success(), "kill -TERM {pid}");
    let exit = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let exit = exit
        .unwrap_or_else(|_| panic!("serve did not stop within 20 s of SIGTERM; log:\n{log_text}"))
        .unwrap();
    assert!(
        exit.success(),
        "serve exits 0 on SIGTERM, got {exit:?}; log:\n{log_text}"
    );
    assert_eq!(
        stored, n,
        "serve delivered {stored} of {n}; log:\n{log_text}"
    );
    stored
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_creates_a_private_key_once_and_warns() {
    let dir = tempfile::tempdir().unwrap();
    let (config, file) = offline_config(dir.path(), "client");
    let key_file = config.key_file();

    let run = pacs(dir.path(), Some(&file), &["init"], None).await;
    assert_eq!(run.code(), Some(0), "{}", run.show());
    assert!(key_file.is_file(), "init wrote {}", key_file.display());
    assert_eq!(mode(&key_file), 0o600, "only the owner can read the key");
    let key = client::keyfile::load(&key_file).unwrap();
    assert_eq!(
        key_ids(&run.stdout),
        vec![key.id().as_str().to_string()],
        "stdout names the new key's id:\n{}",
        run.show()
    );
    let secret = key_hex(&key_file);
    assert!(
        !run.stdout.contains(&secret) && !run.stderr.contains(&secret),
        "the key itself is never printed"
    );
    assert!(
        run.stderr.contains("key export"),
        "the warning says how to back the key up:\n{}",
        run.show()
    );
    assert!(
        run.stderr.contains("lost") && run.stderr.contains("identit"),
        "the warning says that losing the key loses the identities:\n{}",
        run.show()
    );

    let before = std::fs::read(&key_file).unwrap();
    let again = pacs(dir.path(), Some(&file), &["init"], None).await;
    assert_ne!(
        again.code(),
        Some(0),
        "a second init fails:\n{}",
        again.show()
    );
    assert!(
        again.stderr.contains("refusing to overwrite"),
        "and says it refuses to overwrite:\n{}",
        again.show()
    );
    assert!(
        key_ids(&again.stdout).is_empty(),
        "no new key id is announced:\n{}",
        again.show()
    );
    assert_eq!(
        std::fs::read(&key_file).unwrap(),
        before,
        "the existing key is untouched"
    );
    assert_eq!(mode(&key_file), 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_export_import_moves_the_key_to_another_client() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (first, first_file) = offline_config(cwd, "first");
    init(cwd, &first_file).await;
    let key = client::keyfile::load(&first.key_file()).unwrap();
    let secret = key_hex(&first.key_file());

    // Export.
    let backup = cwd.join("backup.key");
    let backup_arg = backup.to_str().unwrap();
    let run = pacs(
        cwd,
        Some(&first_file),
        &["key", "export", "--out", backup_arg],
        Some(PASSPHRASE),
    )
    .await;
    assert_eq!(run.code(), Some(0), "{}", run.show());
    assert!(backup.is_file(), "the export was written");
    assert_eq!(mode(&backup), 0o600, "the backup is private too");
    let wrapped = std::fs::read(&backup).unwrap();
    let raw = hex::decode(&secret).unwrap();
    assert!(
        !wrapped
            .windows(secret.len())
            .any(|w| w == secret.as_bytes())
            && !wrapped.windows(raw.len()).any(|w| w == raw.as_slice()),
        "the backup holds the key only wrapped"
    );
    assert!(
        !run.stdout.contains(&secret) && !run.stderr.contains(&secret),
        "the key itself is never printed"
    );
    assert!(
        !run.stdout.contains(PASSPHRASE) && !run.stderr.contains(PASSPHRASE),
        "nor the passphrase"
    );

    // A second export does not overwrite the first.
    let again = pacs(
        cwd,
        Some(&first_file),
        &["key", "export", "--out", backup_arg],
        Some("another passphrase entirely"),
    )
    .await;
    assert_ne!(again.code(), Some(0), "{}", again.show());
    assert_eq!(
        std::fs::read(&backup).unwrap(),
        wrapped,
        "an existing backup is not overwritten"
    );

    // Import on a second client machine.
    let (second, second_file) = offline_config(cwd, "second");
    let run = pacs(
        cwd,
        Some(&second_file),
        &["key", "import", backup_arg],
        Some(PASSPHRASE),
    )
    .await;
    assert_eq!(run.code(), Some(0), "{}", run.show());
    assert_eq!(
        mode(&second.key_file()),
        0o600,
        "the imported key is private"
    );
    let imported = client::keyfile::load(&second.key_file()).unwrap();
    assert_eq!(imported.id(), key.id(), "the same key on both clients");
    assert_eq!(
        key_hex(&second.key_file()),
        secret,
        "byte for byte the same key"
    );
    assert!(
        run.stdout.contains(key.id().as_str()),
        "import names the key id:\n{}",
        run.show()
    );
    assert!(!run.stdout.contains(&secret) && !run.stderr.contains(&secret));

    // Importing over an existing key is refused.
    let over = pacs(
        cwd,
        Some(&second_file),
        &["key", "import", backup_arg],
        Some(PASSPHRASE),
    )
    .await;
    assert_ne!(over.code(), Some(0), "{}", over.show());
    assert!(
        over.stderr.contains("refusing to overwrite"),
        "{}",
        over.show()
    );

    // A wrong passphrase.
    let (third, third_file) = offline_config(cwd, "third");
    let wrong = pacs(
        cwd,
        Some(&third_file),
        &["key", "import", backup_arg],
        Some("not the passphrase at all"),
    )
    .await;
    assert_ne!(wrong.code(), Some(0), "{}", wrong.show());
    assert!(
        wrong.stderr.contains("wrong passphrase"),
        "the error says what is wrong:\n{}",
        wrong.show()
    );
    assert!(
        !wrong.stderr.contains("not the passphrase at all"),
        "the error does not echo the passphrase:\n{}",
        wrong.show()
    );
    assert!(
        !third.key_file().exists(),
        "no key file is created from a failed import"
    );

    // Export before there is a key.
    let (_fourth, fourth_file) = offline_config(cwd, "fourth");
    let nowhere = cwd.join("nothing.key");
    let run = pacs(
        cwd,
        Some(&fourth_file),
        &["key", "export", "--out", nowhere.to_str().unwrap()],
        Some(PASSPHRASE),
    )
    .await;
    assert_ne!(run.code(), Some(0), "{}", run.show());
    assert!(
        run.stderr.contains("pacs-client init"),
        "the error says how to get a key:\n{}",
        run.show()
    );
    assert!(!nowhere.exists(), "no export file without a key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn send_imports_a_folder_and_reports() {
    let gw = GatewaySide::prepare().await;
    let running = gw.start().await;
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let config = client_config(cwd, &gw, free_port());
    let file = write_config(cwd, "client", &client_toml(&config));
    init(cwd, &file).await;

    let cd = cwd.join("cd");
    std::fs::create_dir_all(cd.join("series")).unwrap();
    let good: Vec<PathBuf> = (1..=3)
        .map(|i| write_instance(&cd.join("series"), &patient(10), 10, i, "CT chest"))
        .collect();
    // What a CD carries besides images: skipped and counted, not failures.
    let noise: Vec<u8> = (0..400u32).map(|i| (i * 37 % 251) as u8).collect();
    std::fs::write(cd.join("README.TXT"), b"Patient CD\r\n").unwrap();
    std::fs::write(cd.join("AUTORUN.INF"), b"[autorun]\r\n").unwrap();
    std::fs::write(cd.join("garbage.dcm"), &noise).unwrap();
    let mut dicomdir = vec![0u8; 128];
    dicomdir.extend_from_slice(b"DICM");
    std::fs::write(cd.join("DICOMDIR"), &dicomdir).unwrap();
    // A Part-10 file whose content is broken: refused, by path, with the reason.
    let mut broken = vec![0u8; 128];
    broken.extend_from_slice(b"DICM");
    broken.extend_from_slice(&noise);
    let broken_path = cd.join("series").join("broken.dcm");
    std::fs::write(&broken_path, broken).unwrap();

    let run = pacs(cwd, Some(&file), &["send", cd.to_str().unwrap()], None).await;
    assert_eq!(run.code(), Some(1), "something failed:\n{}", run.show());
    assert!(
        run.stdout.contains("skipped 4 non-DICOM file(s)"),
        "README, AUTORUN.INF, garbage and DICOMDIR are skipped and counted:\n{}",
        run.show()
    );
    assert_eq!(summary(&run, "sent"), 3, "{}", run.show());
    assert_eq!(
        summary(&run, "("),
        0,
        "nothing was there before:\n{}",
        run.show()
    );
    assert_eq!(summary(&run, "refused at import"), 1, "{}", run.show());
    assert_eq!(summary(&run, "failed"), 0, "{}", run.show());
    assert_eq!(summary(&run, "kept local"), 0, "{}", run.show());
    let refused: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("refused "))
        .collect();
    assert_eq!(refused.len(), 1, "one refused file listed:\n{}", run.show());
    assert!(
        refused[0].contains(broken_path.to_str().unwrap()) && refused[0].split_once(": ").is_some(),
        "the refused file is named, with a reason:\n{}",
        run.show()
    );
    let stored = gw.stored().await;
    assert_eq!(stored.len(), 3, "the gateway has the three instances");

    // The same files again: identical duplicates, nothing new at the gateway.
    let args: Vec<&str> = std::iter::once("send")
        .chain(good.iter().map(|p| p.to_str().unwrap()))
        .collect();
    let again = pacs(cwd, Some(&file), &args, None).await;
    assert_eq!(again.code(), Some(0), "{}", again.show());
    assert_eq!(summary(&again, "sent"), 3, "{}", again.show());
    assert_eq!(
        summary(&again, "("),
        3,
        "the summary counts the duplicates:\n{}",
        again.show()
    );
    assert_eq!(summary(&again, "refused at import"), 0, "{}", again.show());
    assert_eq!(summary(&again, "failed"), 0, "{}", again.show());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = gw.stored().await;
    let uids = |rows: &[gateway::db::read::InstanceRow]| {
        rows.iter()
            .map(|r| r.sop_instance_uid.clone())
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(after.len(), 3, "still three instances at the gateway");
    assert_eq!(uids(&after), uids(&stored), "the same three");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_and_retry_dead_letters() {
    let gw = GatewaySide::prepare().await; // not started yet
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let mut config = client_config(cwd, &gw, free_port());
    config.forwarder.max_attempts = 1;
    let file = write_config(cwd, "client", &client_toml_with_forwarder(&config));
    init(cwd, &file).await;
    let instance = write_instance(cwd, &patient(20), 20, 1, "CT");
    let sop = format!("{UID_ROOT}.3.20.1");

    let run = pacs(
        cwd,
        Some(&file),
        &["send", instance.to_str().unwrap()],
        None,
    )
    .await;
    assert_eq!(
        run.code(),
        Some(1),
        "a dead letter is a failure:\n{}",
        run.show()
    );
    assert_eq!(summary(&run, "failed"), 1, "{}", run.show());
    assert_eq!(summary(&run, "sent"), 0, "{}", run.show());
    assert!(
        run.stdout
            .lines()
            .any(|l| l.contains(&sop) && l.contains("cannot reach the gateway")),
        "the dead letter is listed with its reason:\n{}",
        run.show()
    );

    let status = pacs(cwd, Some(&file), &["status"], None).await;
    assert_eq!(status.code(), Some(0), "{}", status.show());
    assert_eq!(state_count(&status, "dead"), Some(1), "{}", status.show());
    assert_eq!(state_count(&status, "pending"), None, "{}", status.show());
    assert!(
        status
            .stdout
            .lines()
            .any(|l| l.contains(&sop) && l.contains("cannot reach the gateway")),
        "status lists the dead letter with its reason:\n{}",
        status.show()
    );

    // `retry` must say which.
    let vague = pacs(cwd, Some(&file), &["retry"], None).await;
    assert_ne!(vague.code(), Some(0), "{}", vague.show());
    assert!(
        vague.stderr.contains("retry --all") && vague.stderr.contains("retry ID"),
        "the error says how to call it:\n{}",
        vague.show()
    );
    let status = pacs(cwd, Some(&file), &["status"], None).await;
    assert_eq!(
        state_count(&status, "dead"),
        Some(1),
        "a refused retry changes nothing:\n{}",
        status.show()
    );

    let running = gw.start().await;
    let retried = pacs(cwd, Some(&file), &["retry", "--all"], None).await;
    assert_eq!(retried.code(), Some(0), "{}", retried.show());
    assert!(
        retried.stdout.contains("1 dead letter(s) due again"),
        "{}",
        retried.show()
    );
    let status = pacs(cwd, Some(&file), &["status"], None).await;
    assert_eq!(state_count(&status, "dead"), None, "{}", status.show());
    assert_eq!(
        state_count(&status, "pending"),
        Some(1),
        "{}",
        status.show()
    );
    assert!(
        !status.stdout.contains("dead letters ("),
        "no dead letters listed any more:\n{}",
        status.show()
    );

    assert_eq!(gw.stored().await.len(), 0, "nothing sent before serve runs");
    serve_until_stored(cwd, &file, &gw, 1).await;
    assert_eq!(gw.stored().await.len(), 1);
    let status = pacs(cwd, Some(&file), &["status"], None).await;
    assert_eq!(
        state_count(&status, "delivered"),
        Some(1),
        "{}",
        status.show()
    );
    assert_eq!(state_count(&status, "pending"), None, "{}", status.show());
    assert_eq!(state_count(&status, "dead"), None, "{}", status.show());
    assert!(
        status.stdout.contains("nothing waiting to be sent"),
        "{}",
        status.show()
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn study_flags_override_rules() {
    let gw = GatewaySide::prepare().await;
    let running = gw.start().await;
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let config = client_config(cwd, &gw, free_port());
    let file = write_config(cwd, "client", &client_toml(&config));
    init(cwd, &file).await;
    let study = format!("{UID_ROOT}.1.30");

    let run = pacs(cwd, Some(&file), &["study", "unshare", &study], None).await;
    assert_eq!(run.code(), Some(0), "{}", run.show());
    assert!(run.stdout.contains("kept local-only"), "{}", run.show());

    let incoming = cwd.join("incoming");
    std::fs::create_dir_all(&incoming).unwrap();
    for i in 1..=2 {
        write_instance(&incoming, &patient(30), 30, i, "CT abdomen");
    }
    write_instance(&incoming, &patient(31), 31, 1, "CT abdomen"); // no flag: forwarded
    let sent = pacs(
        cwd,
        Some(&file),
        &["send", incoming.to_str().unwrap()],
        None,
    )
    .await;
    assert_eq!(sent.code(), Some(0), "{}", sent.show());
    assert_eq!(
        summary(&sent, "kept local"),
        2,
        "the unshared study stays local:\n{}",
        sent.show()
    );
    assert_eq!(
        summary(&sent, "sent"),
        1,
        "the other study is sent:\n{}",
        sent.show()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        gw.stored().await.len(),
        1,
        "only the study without a flag reached the gateway"
    );
    let other = format!("{UID_ROOT}.1.31");
    let where_ = pacs(cwd, Some(&file), &["status", "--studies"], None).await;
    assert_eq!(where_.code(), Some(0), "{}", where_.show());
    assert_eq!(
        study_location(&where_, &study).as_deref(),
        Some("local-only"),
        "{}",
        where_.show()
    );
    assert_eq!(
        study_location(&where_, &other).as_deref(),
        Some("gateway"),
        "{}",
        where_.show()
    );

    let shared = pacs(cwd, Some(&file), &["study", "share", &study], None).await;
    assert_eq!(shared.code(), Some(0), "{}", shared.show());
    assert!(
        shared.stdout.contains("2 instance(s) re-routed"),
        "{}",
        shared.show()
    );
    let status = pacs(cwd, Some(&file), &["status"], None).await;
    assert_eq!(
        state_count(&status, "pending"),
        Some(2),
        "{}",
        status.show()
    );
    assert_eq!(state_count(&status, "local"), None, "{}", status.show());
    assert_eq!(
        state_count(&status, "delivered"),
        Some(1),
        "{}",
        status.show()
    );

    serve_until_stored(cwd, &file, &gw, 3).await;
    let status = pacs(cwd, Some(&file), &["status", "--studies"], None).await;
    assert_eq!(
        study_location(&status, &study).as_deref(),
        Some("gateway"),
        "the shared study is at the gateway now:\n{}",
        status.show()
    );
    assert_eq!(
        state_count(&status, "delivered"),
        Some(3),
        "{}",
        status.show()
    );

    for bad in ["../x", "1.2.3/../../etc", &"1".repeat(65)] {
        let run = pacs(cwd, Some(&file), &["study", "share", bad], None).await;
        assert_ne!(run.code(), Some(0), "{bad:?} accepted:\n{}", run.show());
        assert!(
            run.stderr.contains("not a Study Instance UID"),
            "{}",
            run.show()
        );
    }
    running.stop().await;
}

#[tokio::test]
async fn help_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let commands: &[(&[&str], &str)] = &[
        (&[], "Usage: pacs-client"),
        (&["init"], "Usage: pacs-client init"),
        (&["key"], "Usage: pacs-client key"),
        (&["key", "export"], "Usage: pacs-client key export"),
        (&["key", "import"], "Usage: pacs-client key import"),
        (&["serve"], "Usage: pacs-client serve"),
        (&["send"], "Usage: pacs-client send"),
        (&["status"], "Usage: pacs-client status"),
        (&["retry"], "Usage: pacs-client retry"),
        (&["study"], "Usage: pacs-client study"),
        (&["study", "share"], "Usage: pacs-client study share"),
        (&["study", "unshare"], "Usage: pacs-client study unshare"),
    ];
    for (path, usage) in commands {
        let mut args = path.to_vec();
        args.push("--help");
        let run = pacs(dir.path(), None, &args, None).await;
        assert_eq!(run.code(), Some(0), "{args:?}:\n{}", run.show());
        assert!(run.stdout.contains(usage), "{args:?}:\n{}", run.show());
        assert!(
            run.stdout.contains("--config"),
            "{args:?} documents --config:\n{}",
            run.show()
        );
    }
    let top = pacs(dir.path(), None, &["--help"], None).await;
    for command in ["init", "key", "serve", "send", "status", "retry", "study"] {
        assert!(
            top.stdout
                .lines()
                .any(|l| l.trim_start().starts_with(command)),
            "--help lists {command}:\n{}",
            top.show()
        );
    }
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "--help creates nothing"
    );
}

#[test]
fn weak_inputs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("client.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nfacility = \"st-mary\"\n",
            data.display().to_string()
        ),
    )
    .unwrap();
    let run = |args: &[&str], passphrase: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pacs-client"));
        cmd.arg("--config")
            .arg(&config)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null());
        match passphrase {
            Some(p) => cmd.env("PACS_KEY_PASSPHRASE", p),
            None => cmd.env_remove("PACS_KEY_PASSPHRASE"),
        };
        cmd.output().unwrap()
    };
    assert!(run(&["init"], None).status.success());
    let short = dir.path().join("short.key");
    let out = run(
        &["key", "export", "--out", short.to_str().unwrap()],
        Some("abc"),
    );
    assert!(
        !out.status.success(),
        "a 3-character passphrase was accepted"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 12"));
    assert!(!short.exists());
    // Originals need not follow PS3.5 9.1 (leading zeros, empty components are
    // accepted at intake), but must be digits and dots that start with a digit.
    for bad in [".", ".1.2", "1.2a", "1.2/3", &"1.".repeat(33)] {
        let out = run(&["study", "share", bad], None);
        assert!(!out.status.success(), "study share {bad} was accepted");
    }
    let out = run(&["retry", "999"], None);
    assert!(
        !out.status.success(),
        "retry of an unknown id reported success"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cannot retry 999: there is no such outbox id")
    );
}
