//! The HTTPS listener of the real `pacs-gateway` binary under a slow-body flood:
//! 300 TLS connections (60 from the caller's own address, 240 from 8 others) each
//! sending a `POST /api/v1/login` head and then its body one byte every 5 s, re-opened
//! whenever the gateway closes them. Meanwhile `/healthz` (20 times) and an
//! authenticated API call (login, then `GET /api/v1/me`) must succeed, each within a
//! generous 30 s (their median latency against an unloaded run is printed, not
//! asserted); the slow bodies must be cut off (counted as `slow-body`), and the
//! log must sum refusals up (at most one line per second per reason).

mod common;
mod flood_gateway;
mod flood_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Backend, Options, Setup};
use flood_gateway::{GatewayProcess, metric, refused_metric};
use flood_support::{Flood, assert_log_rate, loopback_sources, median};
use gateway::auth::{AuthSettings, Password, Role, Username, hash_password};
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const USER: &str = "admin-a";
const PASSWORD: &str = "correct horse battery";

/// A new client for every request (no pooled connection to be shed), resolving
/// `localhost` to 127.0.0.1 and trusting the dev CA.
fn client(setup: &Setup, https: SocketAddr) -> reqwest::Client {
    let ca = std::fs::read(&setup.cert.ca).unwrap();
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .resolve("localhost", https)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// `GET /healthz` 20 times and one login + `GET /api/v1/me`; returns the healthz
/// latencies and the API call's.
async fn legitimate_calls(
    setup: &Setup,
    gateway: &GatewayProcess,
    what: &str,
    flood: Option<&Flood>,
) -> (Vec<Duration>, Duration) {
    let base = format!("https://localhost:{}", gateway.https_port);
    let state = || flood.map(Flood::describe).unwrap_or_default();
    let mut healthz = Vec::new();
    for i in 0..20 {
        let started = Instant::now();
        let response = client(setup, gateway.https_addr())
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{what} /healthz {i} failed ({}): {e}\n{}",
                    state(),
                    gateway.log_tail()
                )
            });
        assert!(
            response.status().is_success(),
            "{what} /healthz {i}: {}",
            response.status()
        );
        healthz.push(started.elapsed());
    }
    let started = Instant::now();
    let api = client(setup, gateway.https_addr());
    let login: Value = api
        .post(format!("{base}/api/v1/login"))
        .json(&json!({"username": USER, "password": PASSWORD}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{what} login failed ({}): {e}", state()))
        .json()
        .await
        .expect("login answer");
    let token = login["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{what} login refused: {login}"));
    let me: Value = api
        .get(format!("{base}/api/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{what} GET /api/v1/me failed ({}): {e}", state()))
        .json()
        .await
        .expect("/api/v1/me answer");
    assert_eq!(me["username"], USER, "{what} GET /api/v1/me: {me}");
    (healthz, started.elapsed())
}

/// A TLS connection that sends a login request head announcing a 1,000-byte body
/// and then the body one byte every 5 s; returns when the gateway closes it.
async fn slow_body(stream: TcpStream, tls: tokio_rustls::TlsConnector) {
    let name = ServerName::try_from("localhost").unwrap();
    let Ok(Ok(stream)) =
        tokio::time::timeout(Duration::from_secs(10), tls.connect(name, stream)).await
    else {
        return;
    };
    let (mut reader, mut writer) = tokio::io::split(stream);
    let head = "POST /api/v1/login HTTP/1.1\r\nHost: localhost\r\n\
                Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n";
    if writer.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let closed = async move {
        let mut buf = [0u8; 512];
        while let Ok(n) = reader.read(&mut buf).await {
            if n == 0 {
                return;
            }
        }
    };
    let trickle = async move {
        loop {
            if writer.write_all(b" ").await.is_err() || writer.flush().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    };
    tokio::select! {
        () = closed => {}
        () = trickle => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn healthz_and_the_api_answer_under_a_slow_body_flood() {
    let fds = flood_support::raise_fd_limit();
    assert!(
        fds >= 2048,
        "this test holds ~400 connections: raise the open-file limit (ulimit -n; now {fds})"
    );
    let setup = Setup::new(Backend::Sqlite, &Options::default()).await;
    let index = setup.index().await;
    let hash = hash_password(&AuthSettings::default(), &Password::new(PASSWORD)).unwrap();
    index
        .create_user(
            setup.facility.id,
            &Username::parse(USER).unwrap(),
            Role::FacilityAdmin,
            &hash,
        )
        .await
        .unwrap();
    index.close().await;
    let gateway = GatewayProcess::spawn(&setup, "", "refusal_log_interval_secs = 1");

    let (mut unloaded, unloaded_api) = legitimate_calls(&setup, &gateway, "unloaded", None).await;

    let roots = dimse::tls::load_certs_file(&setup.cert.ca).unwrap();
    let config = dimse::tls::client_config(roots, None).unwrap();
    let mut config = Arc::unwrap_or_clone(config);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut sources = vec![(std::net::IpAddr::from([127, 0, 0, 1]), 60)];
    sources.extend(loopback_sources(3, 8, 30));
    let flood = Flood::start(
        gateway.https_addr(),
        &sources,
        Duration::from_secs(1),
        move |stream| slow_body(stream, tls.clone()),
    );
    let flood_started = Instant::now();
    let deadline = flood_started + Duration::from_secs(20);
    while flood.open() < 250 {
        assert!(
            Instant::now() < deadline,
            "the flood did not get going: {}",
            flood.describe()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (mut loaded, loaded_api) =
        legitimate_calls(&setup, &gateway, "flooded", Some(&flood)).await;
    // Long enough for slow bodies to be cut off (10 s grace, then 512 B/s).
    let held_for = Duration::from_secs(15);
    if flood_started.elapsed() < held_for {
        tokio::time::sleep(held_for - flood_started.elapsed()).await;
    }
    // Still answering at the end.
    let (mut late, late_api) =
        legitimate_calls(&setup, &gateway, "late in the flood", Some(&flood)).await;
    let report = flood.describe();
    let scrape = gateway.scrape().await;
    flood.stop().await;
    let flood_secs = flood_started.elapsed().as_secs() + 1;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let (unloaded_median, loaded_median) = (median(&mut unloaded), median(&mut loaded));
    println!(
        "HTTPS /healthz: unloaded median {unloaded_median:?}, under flood median \
         {loaded_median:?} (x{:.2}), late in the flood median {:?}; login + /me: \
         unloaded {unloaded_api:?}, under flood {loaded_api:?}, late {late_api:?}; \
         flood: {report}",
        loaded_median.as_secs_f64() / unloaded_median.as_secs_f64().max(1e-6),
        median(&mut late),
    );
    for reason in ["slow-body", "shed"] {
        assert!(
            metric(&scrape, &refused_metric("https", reason)) > 0.0,
            "/metrics does not count {reason:?}:\n{}",
            scrape
                .lines()
                .filter(|l| l.contains("connections_refused"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let log = gateway.log_text();
    let summaries = flood_support::summary_lines(&log);
    assert!(
        summaries
            .iter()
            .any(|l| flood_support::summary_reasons(l).contains(&"slow-body")),
        "no summary counts slow bodies:\n{}",
        gateway.log_tail()
    );
    println!("last refusal summary: {}", summaries.last().unwrap_or(&"-"));
    assert_log_rate(&log, flood_secs + 2, 60);
}
