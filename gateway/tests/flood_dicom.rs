//! Connection admission of the DICOM TLS port under a flood, against the real
//! `pacs-gateway` binary: 1,000 silent connections (100 of them from the facility's
//! own address) and 200 slowloris connections (one byte of a TLS ClientHello every
//! 3 s) are held and re-opened whenever the gateway closes them, while 20 stores with
//! DCMTK's `storescu` over DICOM TLS must all succeed (each within a generous 30 s;
//! their median latency against an unloaded run is printed, not asserted). The
//! gateway's log must sum refusals up (at most one line per second per reason, with
//! `refusal_log_interval_secs = 1`), and `/metrics` must count them.
//!
//! Needs about 1,300 file descriptors in the test process: the test raises its soft
//! `RLIMIT_NOFILE` to the hard limit with `prlimit` and fails with a clear message if
//! that is still too low.

mod common;
mod flood_gateway;
mod flood_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::data::{self, Spec};
use common::{Backend, GATEWAY_AE, Options, Setup, args, dcmtk_async, dcmtk_tls_args};
use flood_gateway::{GatewayProcess, metric, refused_metric};
use flood_support::{Flood, assert_log_rate, loopback_sources, median, silent, trickle};

/// Stores `file` with `storescu` over DICOM TLS; returns how long it took, or the
/// tool's output when it failed.
async fn store(gateway: &GatewayProcess, setup: &Setup, file: &Path) -> Result<Duration, String> {
    let mut list = dcmtk_tls_args(&setup.cert);
    // DCMTK's own timeouts end a hung store after 30 s.
    list.extend(args(&[
        "-to",
        "30",
        "-ta",
        "30",
        "-td",
        "30",
        "-aet",
        "FLOOD_TEST",
        "-aec",
        GATEWAY_AE,
    ]));
    list.extend(["127.0.0.1".into(), gateway.tls_port.to_string()]);
    list.push(file.display().to_string());
    let started = Instant::now();
    let out = dcmtk_async("storescu", list).await;
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

/// 20 stores one after another of files `first..first + 20`; panics on any failure.
async fn twenty_stores(
    gateway: &GatewayProcess,
    setup: &Setup,
    files: &[PathBuf],
    what: &str,
    flood: Option<&Flood>,
) -> Vec<Duration> {
    let mut latencies = Vec::new();
    for (i, file) in files.iter().enumerate() {
        match store(gateway, setup, file).await {
            Ok(took) => {
                assert!(
                    took < Duration::from_secs(30),
                    "{what} store {i} took {took:?}"
                );
                latencies.push(took);
            }
            Err(e) => panic!(
                "{what} store {i} of 20 failed ({}): {e}\n--- gateway log (tail)\n{}",
                flood.map(Flood::describe).unwrap_or_default(),
                gateway.log_tail()
            ),
        }
    }
    latencies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stores_succeed_while_a_thousand_silent_and_two_hundred_slow_connections_are_held() {
    common::require_dcmtk();
    let fds = flood_support::raise_fd_limit();
    assert!(
        fds >= 4096,
        "this test holds ~1,300 connections: raise the open-file limit (ulimit -n; now {fds})"
    );
    let setup = Setup::new(Backend::Sqlite, &Options::default()).await;
    let work = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = (0..40u32)
        .map(|n| {
            let spec = Spec {
                deidentified: true,
                ..Spec::new(data::CT, "CT", 7000 + n)
            };
            data::write(&work.path().join(format!("{n}.dcm")), &spec)
        })
        .collect();
    let gateway = GatewayProcess::spawn(&setup, "refusal_log_interval_secs = 1", "");

    let mut unloaded = twenty_stores(&gateway, &setup, &files[..20], "unloaded", None).await;

    // 1,000 silent: 100 from the facility's own address (127.0.0.1), 900 from 18
    // others; 200 slowloris from 10 more. Re-opened 1 s after the gateway closes them.
    let mut silent_sources = vec![(std::net::IpAddr::from([127, 0, 0, 1]), 100)];
    silent_sources.extend(loopback_sources(1, 36, 25));
    let pause = Duration::from_secs(1);
    let silent_flood = Flood::start(gateway.tls_addr(), &silent_sources, pause, silent);
    let hello = Arc::new(
        [
            0x16u8, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ]
        .into_iter()
        .chain(std::iter::repeat_n(0u8, 64))
        .collect::<Vec<u8>>(),
    );
    let slow_flood = Flood::start(
        gateway.tls_addr(),
        &loopback_sources(2, 10, 20),
        pause,
        move |stream| trickle(stream, hello.clone(), Duration::from_secs(3)),
    );
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

    let connects_before = silent_flood.connects() + slow_flood.connects();
    let mut loaded = twenty_stores(
        &gateway,
        &setup,
        &files[20..],
        "flooded",
        Some(&silent_flood),
    )
    .await;
    // Keep the flood up long enough for first-byte (5 s) and handshake (10 s)
    // timeouts to have happened.
    let held_for = Duration::from_secs(12);
    if flood_started.elapsed() < held_for {
        tokio::time::sleep(held_for - flood_started.elapsed()).await;
    }
    let connects_after = silent_flood.connects() + slow_flood.connects();
    let silent_report = silent_flood.describe();
    let slow_report = slow_flood.describe();
    let scrape = gateway.scrape().await;
    silent_flood.stop().await;
    slow_flood.stop().await;
    let flood_secs = flood_started.elapsed().as_secs() + 1;
    // The last summary line (written at most a second later).
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let (unloaded_median, loaded_median) = (median(&mut unloaded), median(&mut loaded));
    println!(
        "DICOM TLS stores: unloaded median {unloaded_median:?}, under flood median \
         {loaded_median:?} (x{:.2}); slowest under flood {:?}; flood at the end: \
         silent {silent_report}; slowloris {slow_report}",
        loaded_median.as_secs_f64() / unloaded_median.as_secs_f64().max(1e-6),
        loaded.last().copied().unwrap_or_default(),
    );
    // The attacker kept at it: every connection closed was opened again.
    assert!(
        connects_after >= connects_before + 1000,
        "the flood did not keep coming during the stores: silent {silent_report}; \
         slowloris {slow_report}"
    );

    let log = gateway.log_text();
    let summaries = flood_support::summary_lines(&log);
    assert!(
        !summaries.is_empty(),
        "no refusal summary line in the log:\n{}",
        gateway.log_tail()
    );
    for reason in ["shed", "first-byte-timeout", "handshake-timeout"] {
        assert!(
            summaries
                .iter()
                .any(|l| flood_support::summary_reasons(l).contains(&reason)),
            "no summary counts {reason:?}:\n{}",
            summaries.join("\n")
        );
    }
    // Refusals happen only while the flood runs (plus the last summary).
    println!("last refusal summary: {}", summaries.last().unwrap_or(&"-"));
    assert_log_rate(&log, flood_secs + 2, 60);
    for reason in ["shed", "first-byte-timeout"] {
        assert!(
            metric(&scrape, &refused_metric("tls", reason)) > 0.0,
            "/metrics does not count {reason:?}:\n{}",
            scrape
                .lines()
                .filter(|l| l.contains("connections_refused"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
