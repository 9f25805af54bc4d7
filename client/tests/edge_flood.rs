//! Connection admission of the client's edge under a flood, against the real
//! `pacs-client serve` binary (a real gateway in-process behind it): 1,000 silent
//! connections (100 from the modality's own address, 127.0.0.1) and 200 slowloris
//! connections (an A-ASSOCIATE-RQ one byte every 3 s) are held and re-opened whenever
//! the edge closes them, while 20 stores with DCMTK's `storescu` must all succeed
//! (each within a generous 30 s; their median latency against an unloaded run is
//! printed, not asserted). The log must sum refusals up (at most one line per second
//! per reason, with `refusal_log_interval_secs = 1`), and 300 associations from an
//! AE title the edge does not know, made during the flood, may write at most one
//! warning per second.
//!
//! Needs about 1,300 file descriptors: the test raises its soft `RLIMIT_NOFILE` to
//! the hard limit with `prlimit` and fails with a clear message if still too low.

mod common;
#[path = "../../gateway/tests/flood_support/mod.rs"]
mod flood_support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    GatewaySide, MODALITY_AE, client_config, client_toml, dcmtk_path, free_port, patient,
    write_instance,
};
use flood_support::{Flood, assert_log_rate, loopback_sources, median, silent, trickle};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_pacs-client");

/// Runs `pacs-client` with `args` on the config file `file`.
fn command(dir: &Path, file: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_remove("PACS_CLIENT_CONFIG")
        .env_remove("RUST_LOG")
        .arg("--config")
        .arg(file)
        .args(args)
        .stdin(Stdio::null());
    cmd
}

/// Stores `file` to the edge; returns how long it took, or the tool's output.
async fn store(port: u16, file: PathBuf) -> Result<Duration, String> {
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(dcmtk_path("storescu"))
            .env("TCP_NODELAY", "1")
            .args(["-to", "30", "-ta", "30", "-td", "30", "-aet", MODALITY_AE])
            .args(["-aec", "PACS_CLIENT", "127.0.0.1", &port.to_string()])
            .arg(&file)
            .stdin(Stdio::null())
            .output()
            .expect("storescu (apt-get install dcmtk)")
    })
    .await
    .unwrap();
    let took = started.elapsed();
    match out.status.success() {
        true => Ok(took),
        false => Err(format!(
            "{:?} after {took:?}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

async fn twenty_stores(
    port: u16,
    files: &[PathBuf],
    what: &str,
    flood: Option<&Flood>,
    log: &Path,
) -> Vec<Duration> {
    let mut latencies = Vec::new();
    for (i, file) in files.iter().enumerate() {
        match store(port, file.clone()).await {
            Ok(took) => {
                assert!(
                    took < Duration::from_secs(30),
                    "{what} store {i} took {took:?}"
                );
                latencies.push(took);
            }
            Err(e) => panic!(
                "{what} store {i} of 20 failed ({}): {e}\n--- client log\n{}",
                flood.map(Flood::describe).unwrap_or_default(),
                std::fs::read_to_string(log).unwrap_or_default()
            ),
        }
    }
    latencies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn edge_stores_succeed_while_a_thousand_silent_and_two_hundred_slow_connections_are_held() {
    let fds = flood_support::raise_fd_limit();
    assert!(
        fds >= 4096,
        "this test holds ~1,300 connections: raise the open-file limit (ulimit -n; now {fds})"
    );
    let gw = GatewaySide::prepare().await;
    let _running = gw.start().await;
    let dir = tempfile::tempdir().unwrap();
    let edge_port = free_port();
    let config = client_config(dir.path(), &gw, edge_port);
    let file = dir.path().join("client.toml");
    let text = client_toml(&config).replace("[edge]\n", "[edge]\nrefusal_log_interval_secs = 1\n");
    std::fs::write(&file, text).unwrap();
    let init = command(dir.path(), &file, &["init"])
        .output()
        .await
        .unwrap();
    assert!(init.status.success(), "init: {init:?}");
    let log = dir.path().join("serve.log");
    let _serve: Child = command(dir.path(), &file, &["serve"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn pacs-client serve");
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", edge_port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "serve did not start listening:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let work = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = (0..40u32)
        .map(|i| write_instance(work.path(), &patient(i % 3), 1, i, "FLOOD TEST"))
        .collect();

    let mut unloaded = twenty_stores(edge_port, &files[..20], "unloaded", None, &log).await;

    let target = std::net::SocketAddr::from(([127, 0, 0, 1], edge_port));
    let mut silent_sources = vec![(std::net::IpAddr::from([127, 0, 0, 1]), 100)];
    silent_sources.extend(loopback_sources(1, 36, 25));
    let pause = Duration::from_secs(1);
    let silent_flood = Flood::start(target, &silent_sources, pause, silent);
    // The start of an A-ASSOCIATE-RQ (PDU type 1, length 0x100, version 1).
    let request = Arc::new(
        [0x01u8, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00]
            .into_iter()
            .chain(b"PACS_CLIENT     SLOWLORIS       ".iter().copied())
            .collect::<Vec<u8>>(),
    );
    let slow_flood = Flood::start(target, &loopback_sources(2, 10, 20), pause, move |stream| {
        trickle(stream, request.clone(), Duration::from_secs(3))
    });
    let flood_started = Instant::now();
    let deadline = flood_started + Duration::from_secs(20);
    // Every flood connection has been made at least once.
    while silent_flood.connects() < 1000 || slow_flood.connects() < 200 {
        assert!(
            Instant::now() < deadline,
            "the flood did not get going: silent {}; slow {}",
            silent_flood.describe(),
            slow_flood.describe()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Associations from an AE title in no config, one every 5 ms (so over at
    // least 1.5 s: two throttling windows at least).
    let intruder = tokio::spawn(async move {
        let started = Instant::now();
        let options = dimse::scu::ScuOptions::new("INTRUDER", "PACS_CLIENT");
        let address = format!("127.0.0.1:{edge_port}");
        let mut refused = 0;
        for _ in 0..300 {
            let proposals = [dimse::scu::Proposal::verification()];
            match dimse::scu::ScuAssociation::connect(&address, &options, &proposals).await {
                Ok(association) => association.abort().await,
                Err(_) => refused += 1,
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (refused, started.elapsed())
    });
    let connects_before = silent_flood.connects() + slow_flood.connects();
    let mut loaded = twenty_stores(
        edge_port,
        &files[20..],
        "flooded",
        Some(&silent_flood),
        &log,
    )
    .await;
    let held_for = Duration::from_secs(12);
    if flood_started.elapsed() < held_for {
        tokio::time::sleep(held_for - flood_started.elapsed()).await;
    }
    let (intruders_refused, intruders_took) = intruder.await.unwrap();
    let connects_after = silent_flood.connects() + slow_flood.connects();
    let silent_report = silent_flood.describe();
    let slow_report = slow_flood.describe();
    silent_flood.stop().await;
    slow_flood.stop().await;
    let flood_secs = flood_started.elapsed().as_secs() + 1;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let (unloaded_median, loaded_median) = (median(&mut unloaded), median(&mut loaded));
    println!(
        "edge stores: unloaded median {unloaded_median:?}, under flood median \
         {loaded_median:?} (x{:.2}); flood at the end: silent {silent_report}; \
         slowloris {slow_report}",
        loaded_median.as_secs_f64() / unloaded_median.as_secs_f64().max(1e-6),
    );
    // The attacker kept at it: every connection closed was opened again.
    assert!(
        connects_after >= connects_before + 1000,
        "the flood did not keep coming during the stores: silent {silent_report}; \
         slowloris {slow_report}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let summaries = flood_support::summary_lines(&text);
    for reason in ["shed", "first-byte-timeout", "handshake-timeout"] {
        assert!(
            summaries
                .iter()
                .any(|l| flood_support::summary_reasons(l).contains(&reason)),
            "no summary counts {reason:?}:\n{}",
            summaries.join("\n")
        );
    }
    println!("last refusal summary: {}", summaries.last().unwrap_or(&"-"));
    // Other lines: 60, plus the intruders' throttled warnings (one a second).
    assert_log_rate(&text, flood_secs + 2, 60 + flood_secs as usize + 2);
    // Every intruder was refused, and the log said so about once a second, counting
    // the ones it left out.
    assert_eq!(
        intruders_refused, 300,
        "associations from an unknown AE refused"
    );
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("neither a modality nor a viewer"))
        .collect();
    let allowed = intruders_took.as_secs() as usize + 2;
    println!(
        "300 unknown-AE associations in {intruders_took:?}: {} warning lines",
        warnings.len()
    );
    assert!(
        !warnings.is_empty() && warnings.len() <= allowed,
        "{} warnings for 300 refused associations in {intruders_took:?} (at most {allowed}):\n{}",
        warnings.len(),
        warnings.join("\n")
    );
    let counted: u64 = warnings
        .iter()
        .map(|l| {
            l.split("suppressed=")
                .nth(1)
                .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|v| v.parse::<u64>().ok())
                .expect("a throttled warning says how many it left out")
        })
        .sum();
    assert!(
        warnings.len() >= 2 && counted > 0 && counted + warnings.len() as u64 <= 300,
        "{} warnings account for {counted} left out",
        warnings.len()
    );
}
