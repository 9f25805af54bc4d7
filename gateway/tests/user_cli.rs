//! `pacs-gateway user ...` as an operator uses it: passwords only through stdin (or a
//! prompt), clear refusals, a listing without hashes, and changes that the login
//! check sees at once. Runs on SQLite and, with `PACS_TEST_DATABASE_URL`, PostgreSQL.

mod common;

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use gateway::auth::{AuthError, AuthSettings, Authenticator};

use common::{Backend, FACILITY, Options, Setup};

const PASSWORD: &str = "a long enough passphrase";

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

/// Runs `pacs-gateway` with `stdin` piped in (not a terminal).
fn gateway(config: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pacs-gateway"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pacs-gateway");
    // The command may exit without reading (usage errors): ignore a broken pipe.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

async fn run(config: &Path, args: &[&str], stdin: &str) -> Output {
    let config = config.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let stdin = stdin.to_string();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        gateway(&config, &args, &stdin)
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
    assert_eq!(out.status.code(), Some(1), "{}", text(out));
    text(out)
}

async fn authenticator(setup: &Setup) -> Authenticator {
    let settings = AuthSettings {
        failure_delay_ms: 1,
        failure_delay_max_ms: 1,
        ..AuthSettings::default()
    };
    Authenticator::new(setup.index().await, settings)
        .await
        .unwrap()
}

fn peer() -> IpAddr {
    "192.0.2.1".parse().unwrap()
}

both_backends!(operator_manages_users_from_the_command_line);
async fn operator_manages_users_from_the_command_line(backend: Backend) {
    let setup = Setup::new(backend, &Options::default()).await;
    let config = config_file(&setup);
    let stdin = format!("{PASSWORD}\n");

    let out = run(
        &config,
        &["user", "add", FACILITY, "alice", "--role", "clinician"],
        &stdin,
    )
    .await;
    let said = ok(&out);
    assert!(
        said.contains("user alice added to facility st-mary as clinician"),
        "{said}"
    );
    assert!(!said.contains(PASSWORD));
    let out = run(
        &config,
        &["user", "add", FACILITY, "carol", "--role", "facility-admin"],
        "another good passphrase",
    )
    .await;
    ok(&out);

    // Taken names, short passwords, unknown facilities and roles: one clear line.
    let out = run(
        &config,
        &["user", "add", FACILITY, "alice", "--role", "clinician"],
        &stdin,
    )
    .await;
    assert!(failed(&out).contains("user alice already exists"));
    let out = run(
        &config,
        &["user", "add", FACILITY, "bob", "--role", "clinician"],
        "too short\n",
    )
    .await;
    let said = failed(&out);
    assert!(
        said.contains("password too short: use at least 12 characters"),
        "{said}"
    );
    assert!(!said.contains("too short\n"), "echoes the password: {said}");
    let out = run(
        &config,
        &["user", "add", FACILITY, "bob", "--role", "clinician"],
        "",
    )
    .await;
    assert!(failed(&out).contains("no password on stdin"));
    let out = run(
        &config,
        &["user", "add", "nowhere", "bob", "--role", "clinician"],
        &stdin,
    )
    .await;
    assert!(failed(&out).contains("no facility named nowhere"));
    let out = run(
        &config,
        &["user", "add", FACILITY, "bad name", "--role", "clinician"],
        &stdin,
    )
    .await;
    assert!(failed(&out).contains("invalid user name"));
    let out = run(
        &config,
        &["user", "add", FACILITY, "bob", "--role", "root"],
        &stdin,
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "clap usage error: {}",
        text(&out)
    );

    // The password was taken from stdin exactly (without the line ending).
    let auth = authenticator(&setup).await;
    let alice = auth.verify("alice", PASSWORD, peer()).await.unwrap();
    assert_eq!(alice.facility, setup.facility.id);
    assert!(auth.verify("bob", PASSWORD, peer()).await.is_err());

    // The listing shows role and facility, never a hash.
    let listed = ok(&run(&config, &["user", "list"], "").await);
    let line = listed.lines().find(|l| l.contains("alice")).unwrap();
    assert!(line.contains(FACILITY) && line.contains("clinician") && line.contains("active"));
    assert!(listed.contains("facility-admin"));
    assert!(!listed.contains("$argon2"), "{listed}");
    let listed = ok(&run(&config, &["user", "list", "--facility", FACILITY], "").await);
    assert!(listed.contains("carol"));

    // passwd: the old password stops working, the new one works.
    let out = run(
        &config,
        &["user", "passwd", "alice"],
        "the second passphrase\r\n",
    )
    .await;
    assert!(ok(&out).contains("password of alice changed"));
    assert!(matches!(
        auth.verify("alice", PASSWORD, peer()).await,
        Err(AuthError::Refused)
    ));
    auth.verify("alice", "the second passphrase", peer())
        .await
        .unwrap();
    let out = run(&config, &["user", "passwd", "alice"], "short\n").await;
    assert!(failed(&out).contains("password too short"));
    let out = run(&config, &["user", "passwd", "nobody"], &stdin).await;
    assert!(failed(&out).contains("no user named nobody"));

    // disable refuses every login; enable restores it.
    ok(&run(&config, &["user", "disable", "alice"], "").await);
    assert!(matches!(
        auth.verify("alice", "the second passphrase", peer()).await,
        Err(AuthError::Refused)
    ));
    let listed = ok(&run(&config, &["user", "list"], "").await);
    assert!(
        listed
            .lines()
            .any(|l| l.contains("alice") && l.contains("disabled"))
    );
    ok(&run(&config, &["user", "enable", "alice"], "").await);
    auth.verify("alice", "the second passphrase", peer())
        .await
        .unwrap();

    // unlock lifts a lockout.
    for _ in 0..5 {
        let _ = auth.verify("alice", "wrong wrong wrong", peer()).await;
    }
    let right = "the second passphrase";
    assert!(
        auth.verify("alice", right, "192.0.2.2".parse().unwrap())
            .await
            .is_err()
    );
    let listed = ok(&run(&config, &["user", "list"], "").await);
    assert!(
        listed
            .lines()
            .any(|l| l.contains("alice") && l.contains("locked"))
    );
    ok(&run(&config, &["user", "unlock", "alice"], "").await);
    auth.verify("alice", right, "192.0.2.2".parse().unwrap())
        .await
        .unwrap();
}

#[test]
fn user_commands_have_help_and_take_no_password_argument() {
    for args in [
        &["user", "--help"][..],
        &["user", "add", "--help"],
        &["user", "passwd", "--help"],
        &["user", "disable", "--help"],
        &["user", "enable", "--help"],
        &["user", "unlock", "--help"],
        &["user", "list", "--help"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_pacs-gateway"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("Usage"), "{args:?}");
        assert!(!help.contains("--password"), "{args:?}: {help}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_pacs-gateway"))
        .args(["user", "passwd", "alice", "my secret password"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a password argument is refused");
}
