//! Ingest benchmark: the same synthetic CT instances (512x512, 16-bit) sent with DCMTK
//! `storescu` to DCMTK `storescp --fork` (plain and `+tls`), to the gateway (fresh
//! data dir each run: durable writes, hashing, validation, indexing; plain and TLS),
//! to Orthanc when installed, with 1 and 4 associations, and through the facility
//! client to a gateway. ROUNDS interleaved rounds (every configuration once per round,
//! peers and gateway alternating, the order reversed every other round); medians.
//!
//! Prints per configuration instances/s, MB/s, CPU per instance and peak RSS; the
//! gateway/peer ratios; and the figures of the ingest goals, each against a peer
//! measured in the same run. Timing never fails the run: this is not a test.
//!
//! With `--thumbnails` as third argument it runs only the thumbnailing comparison
//! instead: the gateway over DICOM TLS with 4 associations and `[thumbnails] enabled =
//! false`, `true` (default `delay_ms` 2000) and `true` with `delay_ms = 0` (the worst
//! case: every series rendered while the send goes on), interleaved in ROUNDS rounds,
//! and the ratio of the medians (goal: with thumbnails >= 0.95x of without).
//!
//! Run with `scripts/bench-ingest.sh [COUNT] [ROUNDS] [--thumbnails]` (release build).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tests::bench::measure::{Flush, clock_ticks, cpu_ticks_tree, fsync_round, median, peak_rss};
use tests::bench::report::{self, Kind, Run, Sample};
use tests::bench::services::{Client, Gateway};
use tests::bench::{ClientCert, Peer, ServerCerts, generate};

/// Fsync rounds measured per benchmark round, spread over its runs (a few before
/// each), so they see the same neighbours as the runs.
const FSYNC_ROUNDS: usize = 200;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let rounds: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(3);
    let thumbnails = match args.next().as_deref() {
        None => false,
        Some("--thumbnails") => true,
        Some(other) => bail!("unknown argument {other}"),
    };
    if count == 0 || rounds == 0 {
        bail!("usage: ingest-bench [COUNT >= 1] [ROUNDS >= 1] [--thumbnails]");
    }
    let bin = |var: &str, default: &str| {
        PathBuf::from(std::env::var(var).unwrap_or_else(|_| default.into()))
    };
    let gateway_bin = bin("PACS_GATEWAY_BIN", "target/release/pacs-gateway");
    let client_bin = bin("PACS_CLIENT_BIN", "target/release/pacs-client");
    for tool in ["storescu", "storescp"] {
        if Command::new(tool).arg("--version").output().is_err() {
            bail!("{tool} not found: apt-get install -y dcmtk");
        }
    }
    let orthanc = Command::new("Orthanc").arg("--version").output().is_ok();
    let client = client_bin.exists();
    let env = Env {
        count,
        work: tempfile::tempdir()?,
        ticks: clock_ticks()?,
        gateway_bin,
        client_bin,
    };
    let files = env.work.path().join("files");
    println!("generating {count} CT instances (512x512x16) ...");
    let mb = generate(&files, count)? as f64 / 1e6;
    println!(
        "{count} files, {mb:.0} MB, {rounds} rounds; work dir {} ({}); gateway {}",
        env.work.path().display(),
        filesystem(env.work.path()),
        env.gateway_bin.display()
    );
    if !orthanc {
        println!("Orthanc not installed (apt-get install orthanc): skipped");
    }
    if !client {
        println!(
            "{} not found (cargo build --release -p client): client path skipped",
            env.client_bin.display()
        );
    }
    if thumbnails {
        return thumbnail_comparison(&env, &files, rounds);
    }
    let (server, facility) = env.pki()?;

    let mut plan = Vec::new();
    for assocs in [1, 4] {
        for (peer, ours) in [
            (Kind::Storescp, Kind::GatewayPlain),
            (Kind::StorescpTls, Kind::GatewayTls),
        ] {
            plan.push(Run { kind: peer, assocs });
            plan.push(Run { kind: ours, assocs });
        }
        if orthanc {
            plan.push(Run {
                kind: Kind::Orthanc,
                assocs,
            });
        }
    }
    if client {
        plan.push(Run {
            kind: Kind::ClientPath,
            assocs: 4,
        });
    }

    let mut samples: BTreeMap<Run, Vec<Sample>> = BTreeMap::new();
    let (mut fsyncs, mut one_commit) = (Vec::new(), Vec::new());
    let data = vec![0x5a_u8; 512 * 1024];
    for round in 0..rounds {
        let mut order = plan.clone();
        if round % 2 == 1 {
            order.reverse();
        }
        for run in order {
            // Flush what the previous run left dirty (storescp and Orthanc do not
            // fsync), so neither the fsync rounds nor the next run pay for it.
            syncfs(env.work.path());
            let dir = tempfile::tempdir_in(env.work.path())?;
            for n in 0..FSYNC_ROUNDS.div_ceil(plan.len()) {
                fsyncs.push(fsync_round(dir.path(), n, &data, Flush::Serial)?.as_secs_f64());
                let m = n + FSYNC_ROUNDS;
                one_commit.push(fsync_round(dir.path(), m, &data, Flush::Parallel)?.as_secs_f64());
            }
            drop(dir);
            let result = match run.kind {
                Kind::Storescp | Kind::StorescpTls => {
                    let tls = run.kind == Kind::StorescpTls;
                    let peer = Peer::storescp(env.work.path(), tls, &server)?;
                    env.peer(
                        peer,
                        &files,
                        run.assocs,
                        tls.then_some(&facility),
                        round == 0,
                    )
                }
                Kind::Orthanc => match Peer::orthanc(env.work.path())? {
                    Some(peer) => env.peer(peer, &files, run.assocs, None, false),
                    None => Err(anyhow::anyhow!("Orthanc did not start")),
                },
                Kind::GatewayPlain | Kind::GatewayTls => {
                    env.gateway(&files, run.assocs, run.kind == Kind::GatewayTls)
                }
                Kind::ClientPath => env.client_path(&files, run.assocs),
            };
            match result {
                Ok(sample) => {
                    println!(
                        "round {}/{rounds}: {:<22} {} assoc(s) {:>7.0} inst/s",
                        round + 1,
                        run.kind.name(),
                        run.assocs,
                        count as f64 / sample.secs
                    );
                    samples.entry(run).or_default().push(sample);
                }
                Err(e) => println!(
                    "round {}/{rounds}: {} {} assoc(s) FAILED: {e:#}",
                    round + 1,
                    run.kind.name(),
                    run.assocs
                ),
            }
        }
    }
    report::print(&report::Results {
        count,
        mb,
        fsync: median(&fsyncs).context("no fsync round")?,
        fsync_one_commit: median(&one_commit).context("no fsync round")?,
        samples,
        orthanc,
        client,
    });
    Ok(())
}

/// The thumbnailing configurations compared, as `[thumbnails]` tables.
const THUMBNAIL_CONFIGS: [(&str, &str); 3] = [
    ("thumbnails off", "[thumbnails]\nenabled = false\n"),
    ("thumbnails on", "[thumbnails]\nenabled = true\n"),
    (
        "thumbnails on, delay 0",
        "[thumbnails]\nenabled = true\ndelay_ms = 0\n",
    ),
];

/// Instances per series of [`generate`]'s data.
const PER_SERIES: usize = 10;

/// One send with one of [`THUMBNAIL_CONFIGS`].
struct ThumbSample {
    secs: f64,
    cpu_ms: f64,
    /// Thumbnails made (rendered) when the send was done.
    made_during: u64,
    /// Seconds after the send until every series had its thumbnail (None: not
    /// within 60 s).
    all_after: Option<f64>,
}

/// `--thumbnails`: ingest throughput (gateway TLS, 4 associations) with background
/// thumbnails off and on, interleaved rounds, medians and ratios.
fn thumbnail_comparison(env: &Env, files: &Path, rounds: usize) -> Result<()> {
    const ASSOCS: usize = 4;
    let series = env.count.div_ceil(PER_SERIES) as u64;
    println!(
        "thumbnailing comparison: gateway TLS, {ASSOCS} associations, {} instances in {series} series",
        env.count
    );
    let mut samples: Vec<Vec<ThumbSample>> = THUMBNAIL_CONFIGS.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        let mut order: Vec<usize> = (0..THUMBNAIL_CONFIGS.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let (label, extra) = THUMBNAIL_CONFIGS[i];
            syncfs(env.work.path());
            let sample = env.thumbnail_run(files, ASSOCS, extra, series)?;
            println!(
                "round {}/{rounds}: {label:<24} {:>7.0} inst/s  CPU {:.2} ms/inst  thumbnails made during the send {:>4}, all {series} {}",
                round + 1,
                env.count as f64 / sample.secs,
                sample.cpu_ms,
                sample.made_during,
                match (i, sample.all_after) {
                    (0, _) => "-".to_string(),
                    (_, None) => "not within 60 s".into(),
                    (_, Some(s)) => format!("done {s:.1} s after it"),
                },
            );
            samples[i].push(sample);
        }
    }
    let m = |v: Vec<f64>| median(&v).unwrap_or(f64::NAN);
    let rate = |i: usize| {
        m(samples[i]
            .iter()
            .map(|s| env.count as f64 / s.secs)
            .collect())
    };
    println!(
        "\n{:<24} {:>5} {:>8} {:>13} {:>12} {:>16}",
        "configuration", "runs", "inst/s", "CPU ms/inst", "vs off", "made in send"
    );
    let off = rate(0);
    for (i, (label, _)) in THUMBNAIL_CONFIGS.iter().enumerate() {
        println!(
            "{label:<24} {:>5} {:>8.0} {:>13.2} {:>11.3}x {:>16}",
            samples[i].len(),
            rate(i),
            m(samples[i].iter().map(|s| s.cpu_ms).collect()),
            rate(i) / off,
            m(samples[i].iter().map(|s| s.made_during as f64).collect()),
        );
    }
    println!(
        "goal: ingest with thumbnails on >= 0.95x of off: {:.3}x ({}); with delay_ms = 0: {:.3}x",
        rate(1) / off,
        if rate(1) / off >= 0.95 {
            "met"
        } else {
            "NOT met"
        },
        rate(2) / off
    );
    Ok(())
}

/// What every run needs.
struct Env {
    count: usize,
    work: tempfile::TempDir,
    ticks: f64,
    gateway_bin: PathBuf,
    client_bin: PathBuf,
}

impl Env {
    /// A server certificate and a facility certificate from one gateway's dev PKI
    /// (for `storescp +tls`), copied out of its data dir.
    fn pki(&self) -> Result<(ServerCerts, ClientCert)> {
        let gateway = Gateway::start(&self.gateway_bin, self.work.path())?;
        let dir = self.work.path().join("pki");
        std::fs::create_dir_all(&dir)?;
        let copy = |from: &Path, name: &str| -> Result<PathBuf> {
            let to = dir.join(name);
            std::fs::copy(from, &to).with_context(|| format!("copy {}", from.display()))?;
            Ok(to)
        };
        let server = ServerCerts {
            key: copy(&gateway.server.key, "server.key")?,
            cert: copy(&gateway.server.cert, "server.crt")?,
            ca: copy(&gateway.server.ca, "ca.crt")?,
        };
        let facility = ClientCert {
            key: copy(&gateway.client.key, "facility.key")?,
            cert: copy(&gateway.client.cert, "facility.crt")?,
            ca: server.ca.clone(),
        };
        Ok((server, facility))
    }

    /// CPU milliseconds per instance between two tick readings.
    fn cpu_ms(&self, before: u64, after: u64) -> f64 {
        after.saturating_sub(before) as f64 / self.ticks * 1000.0 / self.count as f64
    }

    /// One send to a peer; CPU of the peer's process tree.
    fn peer(
        &self,
        peer: Peer,
        files: &Path,
        assocs: usize,
        tls: Option<&ClientCert>,
        show_cpu_parts: bool,
    ) -> Result<Sample> {
        let before = cpu_ticks_tree(peer.pid())?;
        let secs = peer.send(files, assocs, tls)?.as_secs_f64();
        let after = cpu_ticks_tree(peer.pid())?;
        if show_cpu_parts {
            println!(
                "  CPU ticks of the storescp tree: parent {}, children it waited for {}, children not yet waited for {}",
                after.own - before.own,
                after.reaped_children - before.reaped_children,
                after.unreaped_children,
            );
        }
        Ok(Sample {
            secs,
            cpu_ms: Some(self.cpu_ms(before.total(), after.total())),
            rss: peak_rss(peer.pid()).ok(),
            ..Sample::default()
        })
    }

    /// One send straight to a fresh gateway.
    fn gateway(&self, files: &Path, assocs: usize, tls: bool) -> Result<Sample> {
        let gateway = Gateway::start(&self.gateway_bin, self.work.path())?;
        let before = cpu_ticks_tree(gateway.pid())?.total();
        let secs = gateway.send(files, assocs, tls)?.as_secs_f64();
        let after = cpu_ticks_tree(gateway.pid())?.total();
        let stored = gateway.stored()?;
        if stored != self.count as u64 {
            bail!("the gateway stored {stored} of {} instances", self.count);
        }
        Ok(Sample {
            secs,
            cpu_ms: Some(self.cpu_ms(before, after)),
            rss: Some(peak_rss(gateway.pid())?),
            ..Sample::default()
        })
    }

    /// One send to a fresh gateway configured with `extra`; then waits (up to 60 s)
    /// until `series` thumbnails are made, refused or failed.
    fn thumbnail_run(
        &self,
        files: &Path,
        assocs: usize,
        extra: &str,
        series: u64,
    ) -> Result<ThumbSample> {
        let gateway = Gateway::start_with(&self.gateway_bin, self.work.path(), extra)?;
        let before = cpu_ticks_tree(gateway.pid())?.total();
        let secs = gateway.send(files, assocs, true)?.as_secs_f64();
        let after = cpu_ticks_tree(gateway.pid())?.total();
        let stored = gateway.stored()?;
        if stored != self.count as u64 {
            bail!("the gateway stored {stored} of {} instances", self.count);
        }
        let made = || gateway.counter("pacs_gateway_thumbnails_made_total");
        let made_during = made()?;
        let failed = || gateway.counter("pacs_gateway_thumbnails_failed_total");
        let end = Instant::now();
        let mut all_after = None;
        if !extra.contains("enabled = false") {
            while end.elapsed() < Duration::from_secs(60) {
                let done = made()?
                    + gateway.counter("pacs_gateway_thumbnails_refused_total")?
                    + failed()?
                    + gateway.counter("pacs_gateway_thumbnail_queue_dropped_total")?;
                if done >= series {
                    all_after = Some(end.elapsed().as_secs_f64());
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if failed()? > 0 {
            bail!(
                "the gateway could not make {} thumbnails (see its log)",
                failed()?
            );
        }
        Ok(ThumbSample {
            secs,
            cpu_ms: self.cpu_ms(before, after),
            made_during,
            all_after,
        })
    }

    /// Modality -> client edge -> gateway: from the first byte sent to the client
    /// until the gateway has stored every instance.
    fn client_path(&self, files: &Path, assocs: usize) -> Result<Sample> {
        let gateway = Gateway::start(&self.gateway_bin, self.work.path())?;
        let client = Client::start(&self.client_bin, self.work.path(), &gateway, assocs)?;
        let client_before = cpu_ticks_tree(client.pid())?.total();
        let gateway_before = cpu_ticks_tree(gateway.pid())?.total();
        let start = Instant::now();
        let (edge, secs) = std::thread::scope(|s| {
            let edge = s.spawn(|| client.send(files, assocs));
            let secs = self.until_stored(&gateway, start, &edge);
            let edge = edge
                .join()
                .map_err(|_| anyhow::anyhow!("storescu thread panicked"));
            (edge, secs)
        });
        // The modality's error says more than "the gateway stalled".
        let edge = edge??.as_secs_f64();
        let secs = secs?;
        let client_after = cpu_ticks_tree(client.pid())?.total();
        let gateway_after = cpu_ticks_tree(gateway.pid())?.total();
        Ok(Sample {
            secs,
            cpu_ms: Some(self.cpu_ms(client_before, client_after)),
            rss: Some(peak_rss(client.pid())?),
            edge_secs: Some(edge),
            gateway_cpu_ms: Some(self.cpu_ms(gateway_before, gateway_after)),
            gateway_rss: Some(peak_rss(gateway.pid())?),
        })
    }
}

impl Env {
    /// Seconds from `start` until `gateway` holds every instance (its metrics polled
    /// every 20 ms); fails when nothing arrives for 60 s after the modality is done.
    fn until_stored<T>(
        &self,
        gateway: &Gateway,
        start: Instant,
        modality: &std::thread::ScopedJoinHandle<'_, T>,
    ) -> Result<f64> {
        let (mut last, mut since) = (0, Instant::now());
        loop {
            let stored = gateway.stored()?;
            if stored >= self.count as u64 {
                return Ok(start.elapsed().as_secs_f64());
            }
            if stored != last {
                (last, since) = (stored, Instant::now());
            }
            if modality.is_finished() && since.elapsed() > Duration::from_secs(60) {
                bail!(
                    "the gateway stored {stored} of {} instances, then nothing for 60 s",
                    self.count
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Writes back every dirty page of the filesystem holding `dir` (`sync -f`).
fn syncfs(dir: &Path) {
    let synced = Command::new("sync").arg("-f").arg(dir).status();
    if !synced.is_ok_and(|s| s.success()) {
        println!(
            "sync -f {} failed: runs may pay for earlier runs' writes",
            dir.display()
        );
    }
}

/// The filesystem type of `dir` (`stat -f`), for the record.
fn filesystem(dir: &Path) -> String {
    Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "filesystem unknown".into())
}
