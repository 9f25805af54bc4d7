//! `pacs-client admin ...` end to end against a real gateway serving the admin HTTPS
//! API (schemas/admin-api.openapi.yaml): login (password from stdin and from
//! PACS_PASSWORD), whoami, own password change, users, devices, certificates, usage
//! with a quota, audit paging, studies list/delete, logout, the expired/revoked token
//! messages (exit 3) and a facility admin naming another facility (the API's
//! not-found error).

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use client::app::Client;
use common::{
    GatewaySide, RunningGateway, client_config, client_toml, free_port, patient, storescu,
    write_instance,
};
use gateway::auth::{AuthSettings, Password, Role, Username, hash_password};
use gateway::domain::FacilityName;
use serde_json::Value;
use tokio::sync::oneshot;

const BIN: &str = env!("CARGO_BIN_EXE_pacs-client");
const ADMIN: &str = "alice.admin";
const ADMIN_PASSWORD: &str = "alice's long passphrase";
const OPERATOR: &str = "olga.operator";
const OPERATOR_PASSWORD: &str = "operator's long passphrase";
const OTHER: &str = "other-clinic";
const OTHER_ADMIN: &str = "bob.other";

/// One run of the binary.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn show(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.show()))
    }
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// `pacs-client --config CONFIG ARGS` with `env` set and `stdin` piped in (closed
/// when `None`); no password or config leaks in from the test's environment.
async fn pacs(config: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
    let (config, args, env, stdin) = (
        config.to_path_buf(),
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        env.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>(),
        stdin.map(str::to_string),
    );
    tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(BIN);
        cmd.arg("--config")
            .arg(&config)
            .args(&args)
            .env_remove("PACS_CLIENT_CONFIG")
            .env_remove("PACS_PASSWORD")
            .env_remove("PACS_NEW_PASSWORD")
            .env_remove("RUST_LOG")
            .envs(env)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run pacs-client");
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(text.as_bytes()).unwrap();
        }
        Run::from(child.wait_with_output().unwrap())
    })
    .await
    .unwrap()
}

/// Like [`pacs`], asserting exit 0.
async fn ok(config: &Path, args: &[&str]) -> Run {
    let run = pacs(config, args, &[], None).await;
    assert_eq!(run.code, Some(0), "{args:?}:\n{}", run.show());
    run
}

/// `admin login --user USER --password-stdin`.
async fn login(config: &Path, user: &str, password: &str) -> Run {
    pacs(
        config,
        &["admin", "login", "--user", user, "--password-stdin"],
        &[],
        Some(&format!("{password}\n")),
    )
    .await
}

/// The gateway side with the admin API on an ephemeral port, a second facility,
/// a facility admin in each, and an operator.
struct Setup {
    gw: GatewaySide,
    https_port: u16,
}

async fn setup(token_ttl_secs: u64) -> Setup {
    let mut gw = GatewaySide::prepare().await;
    let https_port = free_port();
    gw.config.https.listen = format!("127.0.0.1:{https_port}");
    gw.config.https.token_ttl_secs = token_ttl_secs;
    let index = gw.index().await;
    let other = index
        .create_facility(&FacilityName::parse(OTHER).unwrap(), false)
        .await
        .unwrap();
    let settings = AuthSettings::default();
    let hash = |p: &str| hash_password(&settings, &Password::new(p)).unwrap();
    for (facility, name, role, password) in [
        (gw.facility_id, ADMIN, Role::FacilityAdmin, ADMIN_PASSWORD),
        (gw.facility_id, OPERATOR, Role::Operator, OPERATOR_PASSWORD),
        (other.id, OTHER_ADMIN, Role::FacilityAdmin, ADMIN_PASSWORD),
    ] {
        index
            .create_user(
                facility,
                &Username::parse(name).unwrap(),
                role,
                &hash(password),
            )
            .await
            .unwrap();
    }
    index.close().await;
    Setup { gw, https_port }
}

impl Setup {
    /// Starts the gateway and waits for `GET /healthz` over TLS.
    async fn start(&self) -> RunningGateway {
        let running = self.gw.start().await;
        let ca = std::fs::read(self.gw.cert_dir.join("ca.crt")).unwrap();
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .build()
            .unwrap();
        let url = format!("https://127.0.0.1:{}/healthz", self.https_port);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(&url).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "admin API did not come up at {url}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        running
    }

    /// A client config (own data dir, so its own token file) whose admin_url points
    /// at the gateway's HTTPS port.
    fn client_config_file(&self, dir: &Path, name: &str) -> PathBuf {
        let mut config = client_config(&dir.join(name), &self.gw, free_port());
        config.data_dir = dir.join(name).join("data");
        let mut doc: toml_edit::DocumentMut = client_toml(&config).parse().unwrap();
        doc["gateway"]["admin_url"] =
            toml_edit::value(format!("https://127.0.0.1:{}", self.https_port));
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, doc.to_string()).unwrap();
        path
    }

    /// Stores three CT instances (two studies) through a real client and DCMTK.
    async fn store_studies(&self, dir: &Path) {
        let edge = free_port();
        let config = client_config(&dir.join("ingest"), &self.gw, edge);
        client::keyfile::create(&config.key_file()).unwrap();
        let app = Client::build(&config).await.unwrap();
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        let images = dir.join("images");
        std::fs::create_dir_all(&images).unwrap();
        let files = vec![
            write_instance(&images, &patient(1), 1, 1, "CT chest"),
            write_instance(&images, &patient(1), 1, 2, "CT chest"),
            write_instance(&images, &patient(2), 2, 1, "CT head"),
        ];
        storescu(edge, files).await;
        assert_eq!(self.gw.wait_for(3, Duration::from_secs(30)).await, 3);
        let _ = stop.send(());
        task.await.unwrap().unwrap();
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn token_file(config: &Path) -> PathBuf {
    client::config::Config::load(Some(config))
        .unwrap()
        .data_dir
        .join("admin-token")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn facility_admin_manages_the_facility_through_the_api() {
    let setup = setup(3600).await;
    let running = setup.start().await;
    let dir = tempfile::tempdir().unwrap();
    setup.store_studies(dir.path()).await;
    let cfg = setup.client_config_file(dir.path(), "alice");
    let cfg = cfg.as_path();

    // Not logged in yet: exit 3 and what to do.
    let run = pacs(cfg, &["admin", "whoami"], &[], None).await;
    assert_eq!(run.code, Some(3), "{}", run.show());
    assert!(
        run.stderr.contains("pacs-client admin login"),
        "{}",
        run.show()
    );

    // A wrong password: one line, exit 1, nothing stored.
    let run = login(cfg, ADMIN, "not the password at all").await;
    assert_eq!(run.code, Some(1), "{}", run.show());
    assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.show());
    assert!(!token_file(cfg).exists());

    // Login with the password on stdin; the token file is private.
    let run = login(cfg, ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    assert!(run.stdout.contains("st-mary"), "{}", run.show());
    assert!(!run.stdout.contains(ADMIN_PASSWORD) && !run.stderr.contains(ADMIN_PASSWORD));
    let token = token_file(cfg);
    assert_eq!(mode(&token), 0o600);
    let run = ok(cfg, &["admin", "whoami"]).await;
    assert!(
        run.stdout.contains(ADMIN)
            && run.stdout.contains("facility-admin")
            && run.stdout.contains("st-mary"),
        "{}",
        run.show()
    );
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = pacs(cfg, &["admin", "whoami"], &[], None).await;
    assert_eq!(
        run.code,
        Some(1),
        "a token file others can read is refused:\n{}",
        run.show()
    );
    assert!(
        run.stderr.contains("readable by other users"),
        "{}",
        run.show()
    );
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();

    // Own password: the wrong current one is refused (exit 1, not "log in"); the new
    // one works for the next login.
    let run = pacs(
        cfg,
        &["admin", "password", "--password-stdin"],
        &[],
        Some("wrong current one\nalice's second passphrase\n"),
    )
    .await;
    assert_eq!(run.code, Some(1), "{}", run.show());
    let run = pacs(
        cfg,
        &["admin", "password"],
        &[
            ("PACS_PASSWORD", ADMIN_PASSWORD),
            ("PACS_NEW_PASSWORD", "alice's second passphrase"),
        ],
        None,
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    assert_eq!(login(cfg, ADMIN, ADMIN_PASSWORD).await.code, Some(1));
    assert_eq!(
        login(cfg, ADMIN, "alice's second passphrase").await.code,
        Some(0)
    );

    // Users: add (password from PACS_NEW_PASSWORD), list, disable, enable, reset.
    let wilson_cfg = setup.client_config_file(dir.path(), "wilson");
    let run = pacs(
        cfg,
        &["admin", "users", "add", "dr.wilson", "--role", "clinician"],
        &[("PACS_NEW_PASSWORD", "wilson's first password")],
        None,
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    let run = pacs(
        cfg,
        &["admin", "users", "add", "dr.wilson", "--role", "clinician"],
        &[("PACS_NEW_PASSWORD", "wilson's first password")],
        None,
    )
    .await;
    assert_eq!(
        run.code,
        Some(1),
        "a second dr.wilson is a conflict:\n{}",
        run.show()
    );
    let list = ok(cfg, &["admin", "users", "list"]).await;
    let wilson_row = |run: &Run| {
        run.stdout
            .lines()
            .find(|l| l.starts_with("dr.wilson "))
            .unwrap_or_else(|| panic!("no dr.wilson:\n{}", run.show()))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(wilson_row(&list)[1..3], ["clinician", "active"]);
    assert!(list.stdout.contains(ADMIN), "{}", list.show());
    assert!(
        !list.stdout.contains(OTHER_ADMIN),
        "never another facility's users:\n{}",
        list.show()
    );

    ok(cfg, &["admin", "users", "disable", "dr.wilson"]).await;
    assert_eq!(
        wilson_row(&ok(cfg, &["admin", "users", "list"]).await)[2],
        "disabled"
    );
    let run = login(&wilson_cfg, "dr.wilson", "wilson's first password").await;
    assert_eq!(
        run.code,
        Some(1),
        "a disabled user cannot log in:\n{}",
        run.show()
    );
    ok(cfg, &["admin", "users", "enable", "dr.wilson"]).await;
    let run = pacs(
        cfg,
        &[
            "admin",
            "users",
            "reset-password",
            "dr.wilson",
            "--password-stdin",
        ],
        &[],
        Some("wilson's second password\n"),
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    assert_eq!(
        login(&wilson_cfg, "dr.wilson", "wilson's first password")
            .await
            .code,
        Some(1)
    );
    // A clinician may log in (PACS_PASSWORD this time) but not administer.
    let run = pacs(
        &wilson_cfg,
        &["admin", "login", "--user", "dr.wilson"],
        &[("PACS_PASSWORD", "wilson's second password")],
        None,
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    let run = pacs(&wilson_cfg, &["admin", "users", "list"], &[], None).await;
    assert_eq!(
        run.code,
        Some(1),
        "a clinician gets forbidden:\n{}",
        run.show()
    );
    assert!(!run.stdout.contains(ADMIN), "{}", run.show());

    // Devices (C-MOVE destinations).
    ok(
        cfg,
        &[
            "admin",
            "devices",
            "add",
            "VIEWER_7",
            "127.0.0.1:11112",
            "--tls",
        ],
    )
    .await;
    let run = pacs(
        cfg,
        &["admin", "devices", "add", "VIEWER_7", "127.0.0.1:11112"],
        &[],
        None,
    )
    .await;
    assert_eq!(run.code, Some(1), "{}", run.show());
    let list = ok(cfg, &["admin", "devices", "list"]).await;
    let row: Vec<&str> = list
        .stdout
        .lines()
        .find(|l| l.starts_with("VIEWER_7"))
        .unwrap_or_else(|| panic!("{}", list.show()))
        .split_whitespace()
        .collect();
    assert_eq!(row, ["VIEWER_7", "127.0.0.1", "11112", "yes"]);
    ok(cfg, &["admin", "devices", "remove", "VIEWER_7"]).await;
    assert!(
        !ok(cfg, &["admin", "devices", "list"])
            .await
            .stdout
            .contains("VIEWER_7")
    );
    let run = pacs(cfg, &["admin", "devices", "remove", "VIEWER_7"], &[], None).await;
    assert_eq!(run.code, Some(1), "{}", run.show());

    // Certificates: issue writes three files (key 0600), refuses to overwrite, revoke.
    let before = ok(cfg, &["admin", "certs", "list"])
        .await
        .stdout
        .lines()
        .count();
    let out = dir.path().join("new-cert");
    let out_arg = out.to_str().unwrap();
    let run = ok(cfg, &["admin", "certs", "issue", "--out", out_arg]).await;
    for name in ["facility.crt", "facility.key", "ca.crt"] {
        assert!(out.join(name).exists(), "{name} missing:\n{}", run.show());
    }
    assert_eq!(mode(&out.join("facility.key")), 0o600);
    assert!(
        std::fs::read_to_string(out.join("facility.key"))
            .unwrap()
            .contains("PRIVATE KEY")
    );
    let key_bytes = std::fs::read(out.join("facility.key")).unwrap();
    let again = pacs(
        cfg,
        &["admin", "certs", "issue", "--out", out_arg],
        &[],
        None,
    )
    .await;
    assert_eq!(again.code, Some(1), "{}", again.show());
    assert!(
        again.stderr.contains("refusing to overwrite"),
        "{}",
        again.show()
    );
    assert_eq!(std::fs::read(out.join("facility.key")).unwrap(), key_bytes);
    let list = ok(cfg, &["admin", "certs", "list"]).await;
    assert_eq!(list.stdout.lines().count(), before + 1, "{}", list.show());
    let new_id = list
        .stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse::<i64>().ok())
        .max()
        .unwrap();
    ok(cfg, &["admin", "certs", "revoke", &new_id.to_string()]).await;
    let list = ok(cfg, &["admin", "certs", "list"]).await;
    let revoked_col = list
        .stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&new_id.to_string()))
        .unwrap()
        .split_whitespace()
        .nth(3)
        .unwrap()
        .to_string();
    assert_ne!(
        revoked_col,
        "-",
        "the revoked certificate shows when:\n{}",
        list.show()
    );

    // Usage: JSON numbers and the table; a quota the operator sets shows as a share.
    let usage = ok(cfg, &["admin", "usage", "--json"]).await.json();
    assert_eq!(usage["instances"], 3, "{usage}");
    assert_eq!(usage["studies"], 2, "{usage}");
    assert_eq!(usage["by_modality"][0]["modality"], "CT", "{usage}");
    assert_eq!(usage["by_modality"][0]["instances"], 3, "{usage}");
    let stored = usage["stored_bytes"].as_u64().unwrap();
    assert!(stored > 0);
    let month = time::OffsetDateTime::now_utc();
    let month = format!("{}-{:02}", month.year(), u8::from(month.month()));
    assert_eq!(usage["by_month"][0]["month"], month.as_str(), "{usage}");
    let op_cfg = setup.client_config_file(dir.path(), "operator");
    assert_eq!(
        login(&op_cfg, OPERATOR, OPERATOR_PASSWORD).await.code,
        Some(0)
    );
    set_quota(&setup, &op_cfg, "st-mary", stored * 4, 20).await;
    let table = ok(cfg, &["admin", "usage"]).await;
    assert!(
        table.stdout.contains("25.0% used, warning at 20%"),
        "{}",
        table.show()
    );
    assert!(table.stdout.contains("WARNING"), "{}", table.show());
    assert!(
        table.stdout.lines().any(|l| l.starts_with("CT ")),
        "{}",
        table.show()
    );

    // Studies: list (pseudonymous only), delete with --yes, refuse without a TTY.
    let studies = ok(cfg, &["admin", "studies", "list", "--json"])
        .await
        .json();
    let studies = studies.as_array().unwrap().clone();
    assert_eq!(studies.len(), 2, "{studies:?}");
    let text = serde_json::to_string(&studies).unwrap();
    for identifying in [patient(1).id, patient(1).name, patient(2).id] {
        assert!(!text.contains(&identifying), "{identifying} leaked: {text}");
    }
    let ct = ok(
        cfg,
        &[
            "admin",
            "studies",
            "list",
            "--modality",
            "CT",
            "--date",
            "20240101-20241231",
            "--json",
        ],
    )
    .await
    .json();
    assert_eq!(ct.as_array().unwrap().len(), 2, "{ct}");
    let none = ok(
        cfg,
        &["admin", "studies", "list", "--date", "-20231231", "--json"],
    )
    .await
    .json();
    assert_eq!(none.as_array().unwrap().len(), 0, "{none}");
    let paged = ok(
        cfg,
        &["admin", "studies", "list", "--page-size", "1", "--json"],
    )
    .await
    .json();
    assert_eq!(
        paged.as_array().unwrap().len(),
        2,
        "offset paging collects both: {paged}"
    );
    let victim = studies[0]["study_uid"].as_str().unwrap().to_string();
    let run = pacs(cfg, &["admin", "studies", "delete", &victim], &[], None).await;
    assert_eq!(
        run.code,
        Some(2),
        "no confirmation without a TTY:\n{}",
        run.show()
    );
    ok(cfg, &["admin", "studies", "delete", &victim, "--yes"]).await;
    let after = ok(cfg, &["admin", "studies", "list", "--json"])
        .await
        .json();
    let after: Vec<&str> = after
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["study_uid"].as_str().unwrap())
        .collect();
    assert_eq!(after.len(), 1);
    assert!(!after.contains(&victim.as_str()));
    let run = pacs(
        cfg,
        &["admin", "studies", "delete", &victim, "--yes"],
        &[],
        None,
    )
    .await;
    assert_eq!(
        run.code,
        Some(1),
        "deleting twice is not found:\n{}",
        run.show()
    );

    // Audit: the deletion and the logins are there, newest first, and paging with
    // next_before_id gives the same events as one page.
    let deleted = ok(
        cfg,
        &["admin", "audit", "--kind", "instances-deleted", "--json"],
    )
    .await
    .json();
    // The deletion, then the refused second attempt (newest first).
    let outcomes: Vec<&str> = deleted
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(outcomes, ["minor-failure", "success"], "{deleted}");
    assert!(
        deleted
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["username"] == ADMIN),
        "{deleted}"
    );
    let one_page = ok(cfg, &["admin", "audit", "--limit", "7", "--json"])
        .await
        .json();
    let paged = ok(
        cfg,
        &[
            "admin",
            "audit",
            "--limit",
            "7",
            "--page-size",
            "2",
            "--json",
        ],
    )
    .await
    .json();
    let ids = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&one_page).len(), 7, "{one_page}");
    assert_eq!(
        ids(&paged),
        ids(&one_page),
        "pages of 2 add up to the same 7 events"
    );
    assert!(ids(&paged).windows(2).all(|w| w[0] > w[1]), "newest first");
    let failures = ok(
        cfg,
        &[
            "admin",
            "audit",
            "--kind",
            "authentication-failure",
            "--json",
        ],
    )
    .await
    .json();
    assert!(
        failures
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["username"] == ADMIN),
        "the wrong-password login is audited: {failures}"
    );
    let today = time::OffsetDateTime::now_utc().date();
    let since = format!("{today}");
    let recent = ok(
        cfg,
        &[
            "admin", "audit", "--since", &since, "--user", ADMIN, "--json",
        ],
    )
    .await
    .json();
    assert!(!recent.as_array().unwrap().is_empty());
    let future = ok(cfg, &["admin", "audit", "--since", "2999-01-01", "--json"])
        .await
        .json();
    assert_eq!(future.as_array().unwrap().len(), 0);
    let table = ok(cfg, &["admin", "audit", "--limit", "3"]).await;
    assert_eq!(
        table
            .stdout
            .lines()
            .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
            .count(),
        3,
        "{}",
        table.show()
    );

    // A facility admin naming another facility gets the API's not-found error,
    // never data; the operator may.
    for args in [
        &["admin", "users", "list", "--facility", OTHER][..],
        &["admin", "devices", "list", "--facility", OTHER],
        &["admin", "certs", "list", "--facility", OTHER],
        &["admin", "usage", "--facility", OTHER, "--json"],
        &["admin", "audit", "--facility", OTHER, "--json"],
        &["admin", "studies", "list", "--facility", OTHER, "--json"],
        &[
            "admin",
            "users",
            "disable",
            OTHER_ADMIN,
            "--facility",
            OTHER,
        ],
        &["admin", "users", "list", "--facility", "no-such-facility"],
    ] {
        let run = pacs(cfg, args, &[], None).await;
        assert_eq!(run.code, Some(1), "{args:?}:\n{}", run.show());
        assert!(
            run.stdout.is_empty(),
            "{args:?} printed data:\n{}",
            run.show()
        );
        assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.show());
        assert!(
            run.stderr.contains("no such facility"),
            "{args:?}: {}",
            run.show()
        );
    }
    let theirs = ok(&op_cfg, &["admin", "users", "list", "--facility", OTHER]).await;
    assert!(theirs.stdout.contains(OTHER_ADMIN), "{}", theirs.show());
    assert!(
        login(
            &setup.client_config_file(dir.path(), "bob"),
            OTHER_ADMIN,
            ADMIN_PASSWORD
        )
        .await
        .code
            == Some(0)
    );

    // Logout revokes the token at the gateway: a copy of it no longer works.
    let copy = std::fs::read(&token).unwrap();
    let run = ok(cfg, &["admin", "logout"]).await;
    assert!(run.stdout.contains("revoked"), "{}", run.show());
    assert!(!token.exists());
    let run = pacs(cfg, &["admin", "whoami"], &[], None).await;
    assert_eq!(run.code, Some(3), "{}", run.show());
    std::fs::write(&token, &copy).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let run = pacs(cfg, &["admin", "users", "list"], &[], None).await;
    assert_eq!(run.code, Some(3), "a revoked token:\n{}", run.show());
    assert!(
        run.stderr.contains("pacs-client admin login"),
        "{}",
        run.show()
    );

    // An expired token is not even sent.
    let mut stored: Value = serde_json::from_slice(&copy).unwrap();
    stored["expires_at"] = Value::from("2020-01-01T00:00:00Z");
    std::fs::write(&token, stored.to_string()).unwrap();
    let run = pacs(cfg, &["admin", "usage"], &[], None).await;
    assert_eq!(run.code, Some(3), "{}", run.show());
    assert!(
        run.stderr.contains("expired") && run.stderr.contains("pacs-client admin login"),
        "{}",
        run.show()
    );

    running.stop().await;
}

/// PUT the quota as the operator (operator commands live in `pacs-gateway`, so the
/// client CLI has none; the test talks to the API directly with the operator token).
async fn set_quota(setup: &Setup, op_cfg: &Path, facility: &str, bytes: u64, warn: u32) {
    let stored: Value =
        serde_json::from_slice(&std::fs::read(token_file(op_cfg)).unwrap()).unwrap();
    let token = stored["token"].as_str().unwrap();
    let ca = std::fs::read(setup.gw.cert_dir.join("ca.crt")).unwrap();
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    let response = http
        .put(format!(
            "https://127.0.0.1:{}/api/v1/facilities/{facility}/quota",
            setup.https_port
        ))
        .bearer_auth(token)
        .json(&serde_json::json!({"quota_bytes": bytes, "quota_warn_percent": warn}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        204,
        "{:?}",
        response.text().await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_the_gateway_expired_asks_for_a_new_login() {
    let setup = setup(1).await;
    let running = setup.start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup.client_config_file(dir.path(), "alice");
    let run = login(&cfg, ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let run = pacs(&cfg, &["admin", "users", "list"], &[], None).await;
    assert_eq!(run.code, Some(3), "{}", run.show());
    assert!(
        run.stderr.contains("pacs-client admin login"),
        "{}",
        run.show()
    );
    // Logging out with an expired token still cleans up locally.
    let run = ok(&cfg, &["admin", "logout"]).await;
    assert!(run.stdout.contains("expired"), "{}", run.show());
    assert!(!token_file(&cfg).exists());
    running.stop().await;
}
