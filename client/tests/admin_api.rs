//! `pacs-client admin ...` through the binary, over real TLS, against a small
//! in-test HTTPS server that answers a few routes the way the admin API contract
//! (admin-api.md) says. It is a test double of the gateway's API, not the gateway:
//! it checks the client side (trust through `[gateway] ca` only, bearer token,
//! percent-encoded paths, JSON bodies, paging with `next_before_id`, the API's
//! error message on one line, exit codes, the token file). The end-to-end test
//! against the real gateway arrives with the gateway's HTTPS server.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::GatewaySide;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_pacs-client");
const PASSWORD: &str = "the right password";
const AUDIT_EVENTS: i64 = 25;

/// What the double remembers.
#[derive(Default)]
struct State {
    tokens: HashSet<String>,
    issued: usize,
    users: Vec<String>,
    /// `METHOD path?query` of every request, for assertions on paging.
    requests: Vec<String>,
}

struct Reply(u16, Option<Value>);

fn error(status: u16, code: &str, message: &str) -> Reply {
    Reply(
        status,
        Some(json!({"error": {"code": code, "message": message}})),
    )
}

fn query_param(query: &str, name: &str) -> Option<i64> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
}

/// The contract's answers for the routes this test uses.
fn route(
    state: &Mutex<State>,
    method: &str,
    target: &str,
    auth: Option<&str>,
    body: &[u8],
) -> Reply {
    let mut state = state.lock().unwrap();
    state.requests.push(format!("{method} {target}"));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if (method, path) == ("POST", "/api/v1/login") {
        if body["password"] != PASSWORD {
            return error(401, "unauthorized", "invalid user name or password");
        }
        state.issued += 1;
        let token = format!("token-{}-{}", state.issued, "x".repeat(30));
        state.tokens.insert(token.clone());
        let user =
            json!({"username": body["username"], "facility": "st-mary", "role": "facility-admin"});
        return Reply(
            200,
            Some(json!({"token": token, "expires_at": "2999-01-01T00:00:00Z", "user": user})),
        );
    }
    let token = auth.and_then(|a| a.strip_prefix("Bearer ")).unwrap_or("");
    if !state.tokens.contains(token) {
        return error(401, "unauthorized", "missing or expired token");
    }
    let segments: Vec<&str> = path.trim_start_matches("/api/v1/").split('/').collect();
    match (method, segments.as_slice()) {
        ("POST", ["logout"]) => {
            state.tokens.remove(token);
            Reply(204, None)
        }
        ("PUT", ["me", "password"]) if body["current_password"] != PASSWORD => {
            error(401, "unauthorized", "the current password is wrong")
        }
        ("PUT", ["me", "password"]) => Reply(204, None),
        ("GET", ["me"]) => Reply(
            200,
            Some(json!({"username": "alice", "facility": "st-mary", "role": "facility-admin"})),
        ),
        (_, ["facilities", f, ..]) if *f != "st-mary" => {
            error(404, "not_found", "no such facility")
        }
        ("GET", [_, _, "users"]) => {
            let users: Vec<Value> = state
                .users
                .iter()
                .map(|u| json!({"username": u, "role": "clinician", "disabled": false, "locked_until": null, "created_at": "2026-11-21T10:00:00.123Z"}))
                .collect();
            Reply(200, Some(Value::from(users)))
        }
        ("POST", [_, _, "users"]) => {
            let name = body["username"].as_str().unwrap_or_default().to_string();
            if state.users.contains(&name) {
                return error(409, "conflict", &format!("user {name} already exists"));
            }
            if body["password"].as_str().is_none_or(|p| p.len() < 12) || body["role"] != "clinician"
            {
                return error(422, "unprocessable", "bad user");
            }
            state.users.push(name.clone());
            Reply(
                201,
                Some(
                    json!({"username": name, "role": "clinician", "disabled": false, "locked_until": null, "created_at": "2026-11-21T10:00:00Z"}),
                ),
            )
        }
        ("POST", [_, _, "users", name, "disable"]) if state.users.iter().any(|u| u == name) => {
            Reply(204, None)
        }
        ("GET", [_, _, "audit"]) => {
            let limit = query_param(query, "limit").unwrap_or(100);
            let before = query_param(query, "before_id").unwrap_or(AUDIT_EVENTS + 1);
            let events: Vec<Value> = (1..before)
                .rev()
                .take(limit as usize)
                .map(|id| json!({"id": id, "occurred_at": "2026-11-21T10:00:00Z", "kind": "query", "outcome": "success",
                                 "username": "alice", "peer": "10.0.0.1", "protocol": "dimse", "detail": null, "object_count": 1}))
                .collect();
            let last = events.last().and_then(|e| e["id"].as_i64());
            let next = last.filter(|&id| id > 1);
            Reply(200, Some(json!({"events": events, "next_before_id": next})))
        }
        ("GET", [_, _, "usage"]) => Reply(
            200,
            Some(json!({
            "stored_bytes": 3 * 1024 * 1024, "studies": 2, "series": 2, "instances": 1234,
            "last_ingest_at": "2026-11-21T09:59:59.999Z", "quota_bytes": 4 * 1024 * 1024, "quota_warn_percent": 90,
            "by_modality": [{"modality": "CT", "studies": 2, "instances": 1234, "bytes": 3 * 1024 * 1024}],
            "by_month": [{"month": "2026-11", "instances": 1234, "bytes": 3 * 1024 * 1024}]})),
        ),
        _ => error(404, "not_found", "no such route"),
    }
}

/// Serves one connection: one request, `Connection: close`.
fn serve_one(tls: Arc<rustls::ServerConfig>, tcp: TcpStream, state: Arc<Mutex<State>>) {
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let Ok(conn) = rustls::ServerConnection::new(tls) else {
        return;
    };
    let mut stream = BufReader::new(rustls::StreamOwned::new(conn, tcp));
    let mut request_line = String::new();
    if stream.read_line(&mut request_line).is_err() {
        return; // e.g. the client refused our certificate
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let (mut length, mut auth) = (0usize, None);
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).is_err() || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "authorization" => auth = Some(value.trim().to_string()),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    if stream.read_exact(&mut body).is_err() {
        return;
    }
    let Reply(status, json) = route(&state, &method, &target, auth.as_deref(), &body);
    let body = json.map(|j| j.to_string()).unwrap_or_default();
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let stream = stream.get_mut();
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
    let _ = stream.flush();
    stream.conn.send_close_notify();
    let _ = stream.flush();
}

/// The double on an ephemeral port with the gateway dev PKI's server certificate.
struct Api {
    port: u16,
    ca: PathBuf,
    state: Arc<Mutex<State>>,
    _gw: GatewaySide,
}

async fn start_api() -> Api {
    let gw = GatewaySide::prepare().await;
    let files = gateway::app::TlsFiles::resolve(&gw.config).unwrap();
    let chain = dimse::tls::load_certs_file(&files.server_cert).unwrap();
    let key = dimse::tls::load_private_key_file(&files.server_key).unwrap();
    let tls = Arc::new(
        rustls::ServerConfig::builder_with_provider(dimse::tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let state = Arc::new(Mutex::new(State::default()));
    let shared = state.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let (tls, state) = (tls.clone(), shared.clone());
            std::thread::spawn(move || serve_one(tls, tcp, state));
        }
    });
    Api {
        port,
        ca: gw.cert_dir.join("ca.crt"),
        state,
        _gw: gw,
    }
}

/// A client config with `[gateway] ca` and `admin_url` pointing at the double.
fn config_file(dir: &Path, api: &Api, ca: &Path) -> PathBuf {
    let path = dir.join("client.toml");
    std::fs::write(
        &path,
        format!(
            "data_dir = {:?}\nfacility = \"st-mary\"\n[gateway]\nca = {:?}\nadmin_url = \"https://127.0.0.1:{}\"\n",
            dir.join("data").display().to_string(),
            ca.display().to_string(),
            api.port
        ),
    )
    .unwrap();
    path
}

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
}

fn pacs(config: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
    let mut child = std::process::Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("PACS_CLIENT_CONFIG")
        .env_remove("PACS_PASSWORD")
        .env_remove("PACS_NEW_PASSWORD")
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let out: Output = child.wait_with_output().unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(config: &Path, args: &[&str]) -> Run {
    let run = pacs(config, args, &[], None);
    assert_eq!(run.code, Some(0), "{args:?}:\n{}", run.show());
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_speak_the_contract_over_tls() {
    let api = start_api().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path(), &api, &api.ca);
    let cfg = cfg.as_path();
    let token = dir.path().join("data").join("admin-token");

    let run = pacs(cfg, &["admin", "users", "list"], &[], None);
    assert_eq!(run.code, Some(3), "{}", run.show());
    assert!(
        run.stderr.contains("run `pacs-client admin login`"),
        "{}",
        run.show()
    );

    let login = |password: &str| {
        pacs(
            cfg,
            &["admin", "login", "--user", "alice", "--password-stdin"],
            &[],
            Some(&format!("{password}\n")),
        )
    };
    let run = login("wrong password");
    assert_eq!(run.code, Some(1), "{}", run.show());
    assert_eq!(
        run.stderr,
        "pacs-client: login failed: invalid user name or password\n"
    );
    assert!(!token.exists());
    let run = login(PASSWORD);
    assert_eq!(run.code, Some(0), "{}", run.show());
    assert!(
        run.stdout
            .contains("as alice (facility-admin, facility st-mary)"),
        "{}",
        run.show()
    );
    assert_eq!(
        std::fs::metadata(&token).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let run = ok(cfg, &["admin", "whoami"]);
    assert!(
        run.stdout
            .starts_with("alice (facility-admin) of facility st-mary"),
        "{}",
        run.show()
    );

    // Users: add with PACS_NEW_PASSWORD, the API's conflict message, list.
    let add = |name: &str| {
        pacs(
            cfg,
            &["admin", "users", "add", name, "--role", "clinician"],
            &[("PACS_NEW_PASSWORD", "a new long password")],
            None,
        )
    };
    assert_eq!(add("dr.wilson").code, Some(0));
    let run = add("dr.wilson");
    assert_eq!(run.code, Some(1), "{}", run.show());
    assert_eq!(run.stderr, "pacs-client: user dr.wilson already exists\n");
    let run = pacs(
        cfg,
        &["admin", "users", "add", "dr.short", "--role", "clinician"],
        &[("PACS_NEW_PASSWORD", "short")],
        None,
    );
    assert_eq!(
        run.code,
        Some(2),
        "a short password is a usage error:\n{}",
        run.show()
    );
    let list = ok(cfg, &["admin", "users", "list"]);
    assert_eq!(
        list.stdout,
        "user       role       state   created\ndr.wilson  clinician  active  2026-11-21 10:00:00Z\n"
    );
    ok(cfg, &["admin", "users", "disable", "dr.wilson"]);

    // Own password: two lines on stdin; a wrong current one is the API's message, not "log in".
    let change = |input: &str| {
        pacs(
            cfg,
            &["admin", "password", "--password-stdin"],
            &[],
            Some(input),
        )
    };
    let run = change("not it\nmy new long password\n");
    assert_eq!(run.code, Some(1), "{}", run.show());
    assert_eq!(run.stderr, "pacs-client: the current password is wrong\n");
    let run = change(&format!("{PASSWORD}\nmy new long password\n"));
    assert_eq!(run.code, Some(0), "{}", run.show());
    assert!(
        run.stdout.contains("password changed for alice"),
        "{}",
        run.show()
    );

    // Another facility: the API's not-found message, nothing on stdout.
    let run = pacs(
        cfg,
        &["admin", "users", "--facility", "other clinic", "list"],
        &[],
        None,
    );
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (Some(1), "", "pacs-client: no such facility\n")
    );

    // Audit paging: 7 events in pages of 3 follow next_before_id.
    let run = ok(
        cfg,
        &[
            "admin",
            "audit",
            "--limit",
            "7",
            "--page-size",
            "3",
            "--json",
        ],
    );
    let events: Value = serde_json::from_str(&run.stdout).unwrap();
    let ids: Vec<i64> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [25, 24, 23, 22, 21, 20, 19]);
    let table = ok(cfg, &["admin", "audit", "--limit", "2"]);
    assert!(
        table.stdout.contains("(more events before id 24"),
        "{}",
        table.show()
    );

    let usage = ok(cfg, &["admin", "usage"]);
    assert!(
        usage
            .stdout
            .contains("stored       3.0 MiB in 2 studies, 2 series, 1,234 instances"),
        "{}",
        usage.show()
    );
    assert!(
        usage
            .stdout
            .contains("quota        4.0 MiB (75.0% used, warning at 90%)\n"),
        "{}",
        usage.show()
    );

    let requests = api.state.lock().unwrap().requests.clone();
    let audit: Vec<&String> = requests.iter().filter(|r| r.contains("/audit")).collect();
    assert_eq!(audit.len(), 4, "{audit:?}");
    assert!(
        audit[1].contains("limit=3") && audit[1].contains("before_id=23"),
        "{audit:?}"
    );
    assert!(
        audit[2].contains("limit=1") && audit[2].contains("before_id=20"),
        "{audit:?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r == "GET /api/v1/facilities/other%20clinic/users"),
        "{requests:?}"
    );

    // Logout revokes at the API and deletes the file; a kept copy no longer works.
    let copy = std::fs::read(&token).unwrap();
    let run = ok(cfg, &["admin", "logout"]);
    assert!(run.stdout.contains("revoked"), "{}", run.show());
    assert!(!token.exists());
    assert!(api.state.lock().unwrap().tokens.is_empty());
    std::fs::write(&token, &copy).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let run = pacs(cfg, &["admin", "usage"], &[], None);
    assert_eq!(run.code, Some(3), "{}", run.show());
    assert!(run.stderr.contains("no longer accepts"), "{}", run.show());
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = pacs(cfg, &["admin", "usage"], &[], None);
    assert_eq!(run.code, Some(1), "{}", run.show());
    assert!(
        run.stderr.contains("readable by other users"),
        "{}",
        run.show()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_configured_ca_is_trusted() {
    let api = start_api().await;
    let dir = tempfile::tempdir().unwrap();
    // Another gateway's dev CA: the server's certificate does not chain to it.
    let other = GatewaySide::prepare().await;
    let other_ca = other.cert_dir.join("ca.crt");
    let cfg = config_file(dir.path(), &api, &other_ca);
    let run = pacs(
        &cfg,
        &["admin", "login", "--user", "alice", "--password-stdin"],
        &[],
        Some("the right password\n"),
    );
    assert_eq!(run.code, Some(1), "{}", run.show());
    assert!(
        run.stderr.contains("cannot reach the admin API"),
        "{}",
        run.show()
    );
    assert!(
        run.stderr.to_lowercase().contains("certificate"),
        "{}",
        run.show()
    );
    assert!(
        api.state.lock().unwrap().requests.is_empty(),
        "no request crossed an untrusted connection"
    );

    // No CA configured at all: a configuration error (64), nothing sent.
    let bare = dir.path().join("bare.toml");
    std::fs::write(
        &bare,
        format!(
            "data_dir = {:?}\n",
            dir.path().join("d").display().to_string()
        ),
    )
    .unwrap();
    let run = pacs(
        &bare,
        &["admin", "login", "--user", "alice", "--password-stdin"],
        &[],
        Some("x\n"),
    );
    assert_eq!(run.code, Some(64), "{}", run.show());
    assert!(run.stderr.contains("[gateway] ca"), "{}", run.show());
}
