//! Connection floods for the admission tests (also used by the client's edge test
//! through `#[path]`): many TCP connections from chosen loopback source addresses
//! (127.0.0.0/8 is all loopback on Linux), each running a behaviour (silent, or
//! trickling one byte every few seconds) until the server closes it, then reconnecting
//! after a short pause, as a real attacker would, until the flood is stopped.
//! Also: raising this process's open-file limit, medians, and reading the summary
//! lines of a server log.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Counts of a flood.
#[derive(Debug, Default)]
pub struct FloodStats {
    /// Connections made (including reconnections).
    pub connects: AtomicU64,
    /// Connections the server closed.
    pub closed: AtomicU64,
    /// Connection attempts that failed.
    pub connect_errors: AtomicU64,
    /// Connections open right now.
    pub open: AtomicI64,
}

/// A running flood; stop it with [`Flood::stop`] (dropping it aborts the tasks too).
pub struct Flood {
    stop: CancellationToken,
    tasks: JoinSet<()>,
    /// Its counts.
    pub stats: Arc<FloodStats>,
}

impl Flood {
    /// Starts `per_source` connections from each of `sources` to `target`, each
    /// running `behaviour` until the server closes it (the behaviour returns), then
    /// reconnecting after `pause`.
    pub fn start<F, Fut>(
        target: SocketAddr,
        sources: &[(IpAddr, usize)],
        pause: Duration,
        behaviour: F,
    ) -> Flood
    where
        F: Fn(TcpStream) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let stop = CancellationToken::new();
        let stats = Arc::new(FloodStats::default());
        let mut tasks = JoinSet::new();
        for &(source, count) in sources {
            for i in 0..count {
                let (stop, stats, behaviour) = (stop.clone(), stats.clone(), behaviour.clone());
                // Spread the first connections over a second.
                let delay = Duration::from_millis((i as u64 * 997) % 1000);
                tasks.spawn(async move {
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = stop.cancelled() => return,
                    }
                    while !stop.is_cancelled() {
                        match connect_from(source, target).await {
                            Ok(stream) => {
                                stats.connects.fetch_add(1, Ordering::Relaxed);
                                stats.open.fetch_add(1, Ordering::Relaxed);
                                tokio::select! {
                                    () = behaviour(stream) => {
                                        stats.closed.fetch_add(1, Ordering::Relaxed);
                                    }
                                    () = stop.cancelled() => {}
                                }
                                stats.open.fetch_sub(1, Ordering::Relaxed);
                            }
                            Err(_) => {
                                stats.connect_errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        tokio::select! {
                            () = tokio::time::sleep(pause) => {}
                            () = stop.cancelled() => {}
                        }
                    }
                });
            }
        }
        Flood { stop, tasks, stats }
    }

    /// Connections open right now.
    pub fn open(&self) -> i64 {
        self.stats.open.load(Ordering::Relaxed)
    }

    /// Connections made so far (including reconnections).
    pub fn connects(&self) -> u64 {
        self.stats.connects.load(Ordering::Relaxed)
    }

    /// A one-line account of the flood so far.
    pub fn describe(&self) -> String {
        let s = &self.stats;
        format!(
            "{} open, {} connects, {} closed by the server, {} failed connects",
            s.open.load(Ordering::Relaxed),
            s.connects.load(Ordering::Relaxed),
            s.closed.load(Ordering::Relaxed),
            s.connect_errors.load(Ordering::Relaxed)
        )
    }

    /// Stops every connection and waits for the tasks.
    pub async fn stop(mut self) -> Arc<FloodStats> {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
        self.stats.clone()
    }
}

/// A TCP connection from `source` (port chosen by the kernel) to `target`.
pub async fn connect_from(source: IpAddr, target: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = match source {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(source, 0))?;
    tokio::time::timeout(Duration::from_secs(5), socket.connect(target))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))?
}

/// Sends nothing; returns when the server closes the connection.
pub async fn silent(mut stream: TcpStream) {
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Sends `bytes` one byte every `every` (the first at once, cycling); returns when
/// the server closes the connection.
pub async fn trickle(stream: TcpStream, bytes: Arc<Vec<u8>>, every: Duration) {
    let (mut reader, mut writer) = stream.into_split();
    let closed = async move {
        let mut buf = [0u8; 256];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    let send = async move {
        for i in 0.. {
            let byte = bytes[i % bytes.len().max(1)];
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(every).await;
        }
    };
    tokio::select! {
        () = closed => {}
        () = send => {}
    }
}

/// `127.0.X.Y` sources: `count` addresses starting at `127.0.X.1`.
pub fn loopback_sources(x: u8, count: u8, per_source: usize) -> Vec<(IpAddr, usize)> {
    (1..=count)
        .map(|y| (IpAddr::from([127, 0, x, y]), per_source))
        .collect()
}

/// Raises this process's soft open-file limit to its hard limit (children inherit
/// it), with `prlimit` from util-linux; returns the soft limit then in effect.
pub fn raise_fd_limit() -> u64 {
    let read = || -> (u64, u64) {
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap_or("");
        let numbers: Vec<u64> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        (
            numbers.first().copied().unwrap_or(0),
            numbers.get(1).copied().unwrap_or(0),
        )
    };
    let (soft, hard) = read();
    if soft < hard {
        let _ = std::process::Command::new("prlimit")
            .arg("--pid")
            .arg(std::process::id().to_string())
            .arg(format!("--nofile={hard}:{hard}"))
            .status();
    }
    read().0
}

/// The median of `values` (sorted in place); zero when empty.
pub fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    match values.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2,
    }
}

/// The refusal summary lines in a server log (`connections refused, shed or timed
/// out`).
pub fn summary_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("connections refused, shed or timed out before being served"))
        .collect()
}

/// The reasons counted in a summary line (`refused=shed 12 (...); busy 1 (...)`).
pub fn summary_reasons(line: &str) -> Vec<&str> {
    let Some((_, summary)) = line.split_once("refused=") else {
        return Vec::new();
    };
    summary
        .split("; ")
        .filter_map(|part| part.trim_start_matches('"').split(' ').next())
        .collect()
}

/// Checks that no refusal reason shows up in more summary lines than one per second
/// of `seconds` (plus one for a partial second), and that refusals are not logged
/// one by one: besides the summaries and the one line per finished association, the
/// log holds at most `other_lines` lines. Panics with the offending lines otherwise.
pub fn assert_log_rate(log: &str, seconds: u64, other_lines: usize) {
    let summaries = summary_lines(log);
    let mut per_reason: std::collections::BTreeMap<&str, u64> = Default::default();
    for line in &summaries {
        for reason in summary_reasons(line) {
            *per_reason.entry(reason).or_default() += 1;
        }
    }
    for (reason, lines) in &per_reason {
        assert!(
            *lines <= seconds + 1,
            "{lines} summary lines count {reason:?} in {seconds} s: more than one per second:\n{}",
            summaries.join("\n")
        );
    }
    let others: Vec<&str> = log
        .lines()
        .filter(|l| !summaries.contains(l) && !l.contains("association finished"))
        .collect();
    assert!(
        others.len() <= other_lines,
        "{} other log lines (at most {other_lines} expected): refusals logged one by one? \
         The first ones:\n{}",
        others.len(),
        others[..others.len().min(10)].join("\n")
    );
}
