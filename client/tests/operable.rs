//! `pacs-client` as an administrator runs it: the exit-code table, `--version` with the
//! commit, a closed output pipe, the data-dir flag and variable, and `serve`'s start
//! banner in both log formats (no escape bytes in a redirected log, JSON lines parse).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pacs-client");

fn client(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("PACS_CLIENT_CONFIG")
        .env_remove("PACS_CLIENT_DATA_DIR")
        .env_remove("PACS_LOG_FORMAT")
        .env_remove("PACS_PASSWORD")
        .stdin(Stdio::null());
    cmd
}

fn run(dir: &Path, args: &[&str]) -> Output {
    client(dir, args).output().expect("run pacs-client")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn config(dir: &Path, edge_port: u16) -> std::path::PathBuf {
    let path = dir.join("client.toml");
    std::fs::write(
        &path,
        format!(
            "data_dir = \"./data\"\nfacility = \"st-mary\"\n[edge]\nlisten = \"127.0.0.1:{edge_port}\"\n\
             [[edge.modalities]]\nae_title = \"CT_1\"\n[gateway]\naddress = \"127.0.0.1:1\"\n\
             cert = \"./cert/facility.crt\"\nkey = \"./cert/facility.key\"\nca = \"./cert/ca.crt\"\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn every_row_of_the_exit_code_table() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let c = config(d, 11112);
    let c = c.to_str().unwrap();
    // 0
    let out = run(d, &["--config", c, "init"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // 1: runtime (the key exists already and is never overwritten).
    let out = run(d, &["--config", c, "init"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // 2: usage, from clap and from our own checks.
    for args in [
        &["--config", c, "stauts"][..],
        &["--config", c, "retry"],
        &["--config", c, "admin", "audit", "--outcome", "bogus"],
        &["--config", c, "serve", "--edge-listen", "11112"],
        &["--config", c, "query", "--level", "series"],
        &["--config", c, "study", "share", "not-a-uid"],
    ] {
        let out = run(d, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    // 3: not logged in (the README's own example of `admin audit`).
    let ca = rcgen::generate_simple_self_signed(vec!["ca".into()]).unwrap();
    std::fs::create_dir_all(d.join("cert")).unwrap();
    std::fs::write(d.join("cert/ca.crt"), ca.cert.pem()).unwrap();
    let out = run(
        d,
        &["--config", c, "admin", "audit", "--outcome", "failure"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("admin login"), "{}", stderr(&out));
    // 64: configuration, the OS error said once.
    let out = run(d, &["--config", "nope.toml", "status"]);
    assert_eq!(out.status.code(), Some(64));
    assert_eq!(
        stderr(&out).matches("No such file").count(),
        1,
        "{}",
        stderr(&out)
    );
    // --user given, no password, no terminal: says so (not "give --user").
    let out = run(
        d,
        &[
            "--config", c, "query", "--user", "dr.house", "--name", "Doe",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(text.contains("no password for --user dr.house"), "{text}");
    assert!(text.contains("PACS_PASSWORD"), "{text}");
    // The table is in --help.
    let help = String::from_utf8_lossy(&run(d, &["--help"]).stdout).into_owned();
    assert!(help.contains("3 not logged in"), "{help}");
}

#[test]
fn version_completions_and_man() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--version"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.starts_with(&format!(
            "pacs-client {} (commit ",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    let out = run(dir.path(), &["completions", "fish"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("pacs-client"));
    let out = run(dir.path(), &["man", "--out", "man"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.path().join("man/pacs-client-serve.1").is_file());
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    // Every completion script at once is far more than a pipe buffer.
    let mut child = client(dir.path(), &["completions", "zsh"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!err.contains("panicked"), "{err}");
    // Small outputs may fit the pipe and end normally; a large one ends with 141.
    assert!(
        matches!(status.code(), Some(0) | Some(141)),
        "{status:?} {err}"
    );
}

#[test]
fn data_dir_from_flag_and_env() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let c = config(d, 11112);
    let c = c.to_str().unwrap();
    let out = run(d, &["--config", c, "--data-dir", "by-flag", "init"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(d.join("by-flag/facility.key").is_file());
    let out = client(d, &["--config", c, "init"])
        .env("PACS_CLIENT_DATA_DIR", d.join("by-env"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(d.join("by-env/facility.key").is_file());
    assert!(
        !d.join("data").exists(),
        "the config's data_dir was overridden"
    );
}

fn serve_log(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let log = dir.join(format!("serve-{}.log", args.len()));
    let mut child = client(dir, args)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("edge SCP listening") || child.try_wait().unwrap().is_some() {
            break text;
        }
        assert!(Instant::now() < deadline, "serve did not start:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    drop(text);
    std::fs::read_to_string(&log).unwrap_or_default()
}

#[test]
fn serve_banner_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A client certificate from a throwaway CA, so that serve starts.
    let ca = rcgen::generate_simple_self_signed(vec!["ca".into()]).unwrap();
    // Issued for the facility (CN = st-mary), as `facility issue-cert` does: serve
    // checks the configured facility against it.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["st-mary".to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "st-mary");
    let cert = params.self_signed(&key).unwrap();
    std::fs::create_dir_all(d.join("cert")).unwrap();
    std::fs::write(d.join("cert/ca.crt"), ca.cert.pem()).unwrap();
    std::fs::write(d.join("cert/facility.crt"), cert.pem()).unwrap();
    std::fs::write(d.join("cert/facility.key"), key.serialize_pem()).unwrap();
    // A private key for the client's user only, or serve refuses it.
    std::fs::set_permissions(
        d.join("cert/facility.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = config(d, 1);
    let c = c.to_str().unwrap();
    assert!(run(d, &["--config", c, "init"]).status.success());
    let listen = format!("127.0.0.1:{port}");
    let json = serve_log(
        d,
        &[
            "--config",
            c,
            "--log-format",
            "json",
            "serve",
            "--edge-listen",
            &listen,
        ],
        &[],
    );
    assert!(!json.contains('\u{1b}'), "{json}");
    let lines: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let banner = lines
        .iter()
        .find(|l| l["message"] == "pacs-client starting")
        .unwrap_or_else(|| panic!("no banner in:\n{json}"));
    assert_eq!(banner["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(banner["edge"], listen, "the flag wins over the config");
    assert_eq!(banner["facility"], "st-mary");
    assert!(
        banner["gateway_cert"]
            .as_str()
            .unwrap()
            .ends_with("facility.crt")
    );
    let text = serve_log(
        d,
        &["--config", c, "serve", "--edge-listen", &listen],
        &[("NO_COLOR", "1")],
    );
    assert!(text.contains("pacs-client starting"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "no escape bytes in a redirected log:\n{text}"
    );
}
