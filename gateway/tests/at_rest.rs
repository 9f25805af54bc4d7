//! Data at rest through the `pacs-gateway` binary, started with a umask of 022: the
//! data dir is 0700 (also one that existed with wider permissions), the index, the
//! blobs and the dev keys 0600, blob directories 0700; a TLS key readable by others
//! stops `serve` with exit code 64 naming the file, or only warns with
//! `[tls] key_permissions = "warn"`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pacs-gateway");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn gateway(config: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("PACS_GATEWAY_DATA_DIR")
        .env_remove("PACS_GATEWAY_DATABASE_URL")
        .env_remove("PACS_LOG_FORMAT")
        .stdin(Stdio::null());
    cmd
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn modes(dir: &Path) -> Vec<(PathBuf, bool, u32)> {
    let mut out = vec![(dir.to_path_buf(), true, mode(dir))];
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(modes(&path));
        } else {
            out.push((path.clone(), false, mode(&path)));
        }
    }
    out
}

/// Sets this test process's umask (inherited by the binaries it starts) with the
/// shell, so no `unsafe` is needed here.
fn with_umask_022(cmd: Command) -> Command {
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let mut shell = Command::new("sh");
    shell
        .arg("-c")
        .arg("umask 022 && exec \"$0\" \"$@\"")
        .arg(program)
        .args(args);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => shell.env(k, v),
            None => shell.env_remove(k),
        };
    }
    shell.stdin(Stdio::null());
    shell
}

struct Serve {
    child: Child,
    log: PathBuf,
}

impl Serve {
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

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("serve did not stop:\n{}", self.text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn serve(config: &Path, log: PathBuf) -> Serve {
    let child = with_umask_022(gateway(config, &["serve"]))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Serve { child, log }
}

#[test]
fn files_are_private_even_with_an_open_umask() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let plain = free_port();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[dicom]\ntls_listen = \"127.0.0.1:0\"\nplain_listen = \"127.0.0.1:{plain}\"\n\
             [dicom.plain_ae]\nCT_1 = \"st-mary\"\n[https]\nlisten = \"127.0.0.1:0\"\n[metrics]\nlisten = \"\"\n",
            data.display().to_string()
        ),
    )
    .unwrap();
    let out = with_umask_022(gateway(
        &config,
        &["facility", "add", "st-mary", "--accept-identified"],
    ))
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let server = serve(&config, dir.path().join("serve.log"));
    server.wait_for("plain DICOM listening");
    // A stored instance: a blob, its directories and the index write.
    let file = dir.path().join("ct.dcm");
    let dump = dir.path().join("ct.dump");
    std::fs::write(
        &dump,
        "(0008,0016) UI =CTImageStorage\n(0008,0018) UI [1.2.826.0.1.3680043.99.7.1]\n\
         (0010,0010) PN [Doe^Jane]\n(0020,000d) UI [1.2.826.0.1.3680043.99.7]\n\
         (0020,000e) UI [1.2.826.0.1.3680043.99.7.2]\n(0008,0060) CS [CT]\n",
    )
    .unwrap();
    let made = Command::new("dump2dcm")
        .args(["-g", dump.to_str().unwrap(), file.to_str().unwrap()])
        .output()
        .expect("dump2dcm (apt-get install dcmtk)");
    assert!(made.status.success(), "{}", show(&made));
    let sent = Command::new("storescu")
        .args([
            "-aet",
            "CT_1",
            "-aec",
            "PACS_GATEWAY",
            "127.0.0.1",
            &plain.to_string(),
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(sent.status.success(), "{}", show(&sent));
    let all = modes(&data);
    server.stop();

    let blobs: Vec<_> = all
        .iter()
        .filter(|(p, dir, _)| !dir && p.extension().is_some_and(|e| e == "dcm"))
        .collect();
    assert_eq!(blobs.len(), 1, "{all:?}");
    for name in ["index.db", "certs/ca.key", "certs/server.key"] {
        assert!(data.join(name).is_file(), "{name}: {all:?}");
    }
    for (path, dir, m) in &all {
        // Certificates are public; everything else is the gateway's alone.
        let public_cert = path.extension().is_some_and(|e| e == "crt");
        let want = match (dir, public_cert) {
            (true, _) => 0o700,
            (false, true) => *m,
            (false, false) => 0o600,
        };
        assert_eq!(*m, want, "{} is {m:o}", path.display());
    }
}

#[test]
fn a_readable_server_key_stops_serve_unless_told_to_warn() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let write_config = |extra: &str| {
        let config = dir.path().join("gateway.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = {:?}\n[dicom]\ntls_listen = \"127.0.0.1:0\"\nplain_listen = \"\"\n\
                 [https]\nlisten = \"127.0.0.1:0\"\n[metrics]\nlisten = \"\"\n[tls]\n{extra}",
                data.display().to_string()
            ),
        )
        .unwrap();
        config
    };
    // First start creates the dev PKI (keys 0600); then the key is opened up.
    let config = write_config("");
    let first = serve(&config, dir.path().join("first.log"));
    first.wait_for("DICOM TLS listening");
    first.stop();
    let key = data.join("certs/server.key");
    assert_eq!(mode(&key), 0o600);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();

    let out = gateway(&config, &["serve"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains(&key.display().to_string()) && text.contains("chmod 600"),
        "{text}"
    );

    let config = write_config("key_permissions = \"warn\"\n");
    let warned = serve(&config, dir.path().join("warn.log"));
    let log = warned.wait_for("DICOM TLS listening");
    assert!(
        log.contains("private key readable or writable by other users"),
        "{log}"
    );
    warned.stop();
}
