//! `pacs-gateway` as an administrator runs it: the exit-code table, `--version` with
//! the commit, a closed output pipe, the data-dir and listener flags, both log
//! formats with the start banner, the one INFO line per finished association, and
//! the warnings about settings that can never work.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pacs-gateway");

fn gateway(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env_remove("PACS_GATEWAY_CONFIG")
        .env_remove("PACS_GATEWAY_DATA_DIR")
        .env_remove("PACS_GATEWAY_DATABASE_URL")
        .env_remove("PACS_LOG_FORMAT")
        .stdin(Stdio::null());
    cmd
}

fn run(args: &[&str]) -> Output {
    gateway(args).output().expect("run pacs-gateway")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn every_row_of_the_exit_code_table() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    // 0: done.
    let ok = run(&["--data-dir", d, "facility", "add", "st-mary"]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    // 1: failed while running.
    let again = run(&["--data-dir", d, "facility", "add", "st-mary"]);
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    // 2: usage, from clap and from our own checks.
    for args in [
        &["facility", "lst"][..],
        &["--data-dir", d, "audit", "list", "--outcome", "bogus"],
        &["--data-dir", d, "audit", "list", "--since", "yesterday-ish"],
        &["--data-dir", d, "serve", "--https-listen", "8443"],
        &["--log-format", "xml", "facility", "list"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    // The help's own example is valid.
    let failures = run(&["--data-dir", d, "audit", "list", "--outcome", "failure"]);
    assert_eq!(failures.status.code(), Some(0), "{}", stderr(&failures));
    // 64: configuration; the OS error is said once.
    let missing = dir.path().join("nope.toml");
    let out = run(&["--config", missing.to_str().unwrap(), "facility", "list"]);
    assert_eq!(out.status.code(), Some(64));
    let text = stderr(&out);
    assert_eq!(text.matches("No such file").count(), 1, "{text}");
    assert!(
        text.starts_with("pacs-gateway: cannot read config file"),
        "{text}"
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[dicom]\nae_title = \"WAY_TOO_LONG_AE_TITLE\"\n").unwrap();
    let out = run(&["--config", bad.to_str().unwrap(), "facility", "list"]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    // The table is in --help.
    let help = run(&["--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("Exit codes: 0 done; 1 failed"), "{help}");
}

#[test]
fn version_names_the_commit() {
    let out = run(&["--version"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.starts_with(&format!(
            "pacs-gateway {} (commit ",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    let commit = text
        .trim()
        .trim_end_matches(')')
        .rsplit(' ')
        .next()
        .unwrap();
    assert!(
        commit == "unknown" || (commit.len() >= 7 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "{text}"
    );
}

#[test]
fn completions_and_man_pages() {
    let out = run(&["completions", "bash"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("pacs-gateway"));
    let out = run(&["man"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(".ie"));
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["man", "--out", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    for page in [
        "pacs-gateway.1",
        "pacs-gateway-serve.1",
        "pacs-gateway-facility-list.1",
    ] {
        assert!(dir.path().join(page).is_file(), "{page} missing");
    }
}

/// `pacs-gateway facility list | head -1`: the reader stops after one line.
#[test]
fn a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let config = gateway::config::Config {
            data_dir: data.clone(),
            ..Default::default()
        };
        let index = gateway::app::open_index(&config).await.unwrap();
        // Far more than a pipe buffer (64 KiB) of output.
        for i in 0..2500 {
            let name = gateway::domain::FacilityName::parse(&format!("facility-{i:05}")).unwrap();
            index.create_facility(&name, false).await.unwrap();
        }
        index.close().await;
    });
    let mut child = gateway(&["--data-dir", data.to_str().unwrap(), "facility", "list"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader went away (as `head -1` does).
    assert!(first.starts_with("id"), "{first}");
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.is_empty(), "nothing on stderr, got {err}");
    assert_eq!(status.code(), Some(141), "{err}");
}

#[test]
fn data_dir_from_flag_env_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let by_flag = dir.path().join("flag");
    let by_env = dir.path().join("env");
    let by_file = dir.path().join("file");
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, format!("data_dir = {:?}\n", by_file)).unwrap();
    let c = config.to_str().unwrap();
    let out = run(&[
        "--config",
        c,
        "--data-dir",
        by_flag.to_str().unwrap(),
        "facility",
        "add",
        "a",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        by_flag.join("index.db").is_file(),
        "the flag wins over the file"
    );
    assert!(!by_file.exists());
    let out = gateway(&["--config", c, "facility", "add", "b"])
        .env("PACS_GATEWAY_DATA_DIR", &by_env)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        by_env.join("index.db").is_file(),
        "the variable wins over the file"
    );
    let out = run(&["--config", c, "facility", "add", "c"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(by_file.join("index.db").is_file(), "else the file");
}

/// A `serve` with stderr in a file, stopped with SIGTERM.
struct Serve {
    child: Child,
    log: PathBuf,
}

impl Serve {
    fn start(args: &[&str], log: PathBuf, env: &[(&str, &str)]) -> Serve {
        let mut cmd = gateway(args);
        cmd.envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        Serve {
            child: cmd.spawn().unwrap(),
            log,
        }
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_for(&self, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = self.text();
            if text.contains(what) {
                return text;
            }
            assert!(Instant::now() < deadline, "no {what:?} in the log:\n{text}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(mut self) -> (Option<i32>, String) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), self.text());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("serve did not stop on SIGTERM:\n{}", self.text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn listen_args(data: &Path, plain: u16) -> Vec<String> {
    [
        "--data-dir",
        data.to_str().unwrap(),
        "serve",
        "--tls-listen",
        "127.0.0.1:0",
        "--https-listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
        "--plain-listen",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("127.0.0.1:{plain}")])
    .collect()
}

#[test]
fn json_logs_banner_association_line_and_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        "[dicom]\nae_title = \"PACS_GATEWAY\"\n[dicom.plain_ae]\nCT_1 = \"st-mary\"\nMR_9 = \"no-such-facility\"\n",
    )
    .unwrap();
    let out = run(&[
        "--data-dir",
        data.to_str().unwrap(),
        "facility",
        "add",
        "st-mary",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plain = free_port();
    let mut args = vec![
        "--config".to_string(),
        config.display().to_string(),
        "--log-format".into(),
        "json".into(),
    ];
    args.extend(listen_args(&data, plain));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let serve = Serve::start(&args, dir.path().join("json.log"), &[]);
    serve.wait_for("plain DICOM listening");
    let echo = Command::new("echoscu")
        .env("TCP_NODELAY", "1")
        .args([
            "-aet",
            "CT_1",
            "-aec",
            "PACS_GATEWAY",
            "127.0.0.1",
            &plain.to_string(),
        ])
        .output()
        .expect("echoscu (DCMTK) must be installed");
    assert!(echo.status.success(), "{}", stderr(&echo));
    serve.wait_for("association finished");
    let (code, text) = serve.stop();
    assert_eq!(code, Some(0), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "no escape bytes in a redirected log"
    );
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let find = |message: &str| {
        lines
            .iter()
            .find(|l| l["message"].as_str().is_some_and(|m| m.contains(message)))
            .unwrap_or_else(|| panic!("no {message:?} in:\n{text}"))
    };
    let banner = find("pacs-gateway starting");
    assert_eq!(banner["version"], env!("CARGO_PKG_VERSION"));
    assert!(banner["commit"].is_string());
    assert_eq!(banner["database"], "sqlite");
    assert!(
        banner["data_dir"].as_str().unwrap().ends_with("data"),
        "{banner}"
    );
    assert!(banner["config"].as_str().unwrap().ends_with("gateway.toml"));
    assert!(banner["certificates"].as_str().unwrap().contains("certs"));
    assert_eq!(banner["dicom_plain"], format!("127.0.0.1:{plain}"));
    let finished = find("association finished");
    assert_eq!(finished["calling_ae"], "CT_1");
    assert_eq!(finished["facility"], "st-mary");
    assert_eq!(finished["stored"], 0);
    assert_eq!(finished["ended"], "released");
    assert!(finished["duration_ms"].is_u64());
    let warning = find("names a facility that does not exist");
    assert_eq!(warning["level"], "WARN");
    assert_eq!(warning["calling_ae"], "MR_9");

    // Same data dir, other dev host names: the server certificate is issued again.
    std::fs::write(&config, "[tls]\ndev_hostnames = [\"pacs.example.org\"]\n").unwrap();
    let mut args = vec!["--config".to_string(), config.display().to_string()];
    args.extend(listen_args(&data, free_port()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let serve = Serve::start(&args, dir.path().join("text.log"), &[("NO_COLOR", "")]);
    serve.wait_for("HTTPS listening");
    let (code, text) = serve.stop();
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("dev_hostnames changed"), "{text}");
    assert!(data.join("certs/server.crt.replaced").is_file());
    assert!(
        !text.contains('\u{1b}'),
        "no escape bytes in a redirected log:\n{text}"
    );
    assert!(text.contains("pacs-gateway starting"));
}

#[test]
fn the_banner_never_shows_a_database_password() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut args = vec![
        "--database-url".to_string(),
        // Nothing listens on port 1: the start fails after the banner.
        "postgres://pacs:s3cret-pw@127.0.0.1:1/pacs".into(),
    ];
    args.extend(listen_args(&data, free_port()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&args);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("postgres://pacs:***@127.0.0.1:1/pacs"),
        "{text}"
    );
    assert!(!text.contains("s3cret-pw"), "{text}");
}
