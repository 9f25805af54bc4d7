//! DICOMweb benchmark (issue 13), side by side with Orthanc 1.10 and its DICOMweb
//! plugin. Three parts, each against the real `pacs-gateway serve` (HTTPS, HTTP
//! Basic; a verified credential is remembered 60 s) and Orthanc over plain HTTP, one
//! reqwest client speaking HTTP/1.1 with keep-alive to both:
//!
//! 1. QIDO-RS study search by patient ID and by modality + 30-day date range on an
//!    index bulk-loaded with INSTANCES synthetic instances (the C-FIND benchmark's
//!    loader), on SQLite and, when it answers, PostgreSQL: p50/p99 (goal p99 < 20 ms
//!    at 1,000,000 instances).
//! 2. The same searches against the gateway and Orthanc holding the same data at a
//!    smaller size (default 20,000; Orthanc loaded through its REST API): goal the
//!    gateway >= 5x faster (Orthanc p50 / gateway p50).
//! 3. WADO-RS retrieval of 512x512 16-bit CT instances (stored in both with
//!    `storescu`) by 4 concurrent clients: instances/s, goal >= 1.5x Orthanc's.
//!
//! Every comparison runs in ROUNDS interleaved rounds (peers alternating, the order
//! reversed every other round); figures are medians over the rounds. Never fails on
//! a timing: this is a benchmark, not a test.
//!
//! Usage: `dicomweb-bench [INSTANCES] [--orthanc N] [--wado N] [--rounds N]
//! [--picks N] [--clients N] [--no-postgres] [--no-sqlite]`; run it with
//! `scripts/bench-dicomweb.sh`. `--no-sqlite` leaves SQLite out of part 1 (with
//! `--orthanc 0`, only the PostgreSQL QIDO-RS part runs).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use tests::bench::measure::{clock_ticks, median, proc_stat};
use tests::bench::{generate, storescu};
use tests::findbench::data::{Dataset, Spec};
use tests::findbench::load::{fresh_postgres, generate_reporting, load_reporting};
use tests::findbench::orthanc::{ORTHANC_AE, Orthanc};
use tests::findbench::queries::{Find, Kind, picks};
use tests::webbench::http::WebPeer;
use tests::webbench::qido::{self, KINDS};
use tests::webbench::report::{Goal, Rounds, machine_load, print_goals};
use tests::webbench::server::{PASSWORD, USER, WebGateway};
use tests::webbench::wado;

/// Seed of the random picks (the C-FIND benchmark's).
const PICK_SEED: u64 = 42;
/// Database the benchmark drops and recreates on the PostgreSQL server.
const PG_DATABASE: &str = "pacs_dicomweb_bench";
/// Goals of issue 13.
const QIDO_P99_MS: f64 = 20.0;
const QIDO_VS_ORTHANC: f64 = 5.0;
const WADO_VS_ORTHANC: f64 = 1.5;
/// Bytes of a generated CT instance's pixel data: no answer may be smaller.
const CT_PIXEL_BYTES: usize = 512 * 512 * 2;

struct Args {
    instances: u64,
    orthanc: u64,
    wado: usize,
    rounds: usize,
    picks: usize,
    clients: usize,
    postgres: bool,
    sqlite: bool,
    bin: PathBuf,
}

fn args() -> Result<Args> {
    let mut out = Args {
        instances: 1_000_000,
        orthanc: 20_000,
        wado: 300,
        rounds: 3,
        picks: 200,
        clients: 4,
        postgres: true,
        sqlite: true,
        bin: PathBuf::from(
            std::env::var("PACS_GATEWAY_BIN")
                .unwrap_or_else(|_| "target/release/pacs-gateway".into()),
        ),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--orthanc" => out.orthanc = value("--orthanc")?.parse()?,
            "--wado" => out.wado = value("--wado")?.parse()?,
            "--rounds" => out.rounds = value("--rounds")?.parse()?,
            "--picks" => out.picks = value("--picks")?.parse()?,
            "--clients" => out.clients = value("--clients")?.parse()?,
            "--no-postgres" => out.postgres = false,
            "--no-sqlite" => out.sqlite = false,
            n if !n.starts_with('-') => out.instances = n.parse().context("INSTANCES")?,
            other => bail!(
                "unknown argument {other}; usage: dicomweb-bench [INSTANCES] [--orthanc N] [--wado N] [--rounds N] [--picks N] [--clients N] [--no-postgres] [--no-sqlite]"
            ),
        }
    }
    if out.instances < 100 || out.picks == 0 || out.rounds == 0 || out.clients == 0 {
        bail!("INSTANCES must be at least 100; --picks, --rounds and --clients at least 1");
    }
    if !out.bin.exists() {
        bail!(
            "{} not found: build it (cargo build --release -p gateway) or set PACS_GATEWAY_BIN",
            out.bin.display()
        );
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = args()?;
    let work = tempfile::tempdir()?;
    println!(
        "dicomweb-bench: {} instances at scale, {} for the Orthanc comparison, {} CT instances for WADO-RS, {} rounds, {} picks per kind, {} WADO clients; {}",
        args.instances,
        args.orthanc,
        args.wado,
        args.rounds,
        args.picks,
        args.clients,
        machine_load()
    );
    println!(
        "gateway: {} serve, HTTPS (TLS, HTTP/1.1 keep-alive, HTTP Basic); Orthanc: plain HTTP, no TLS, no authentication (TLS costs the gateway what Orthanc does not pay)",
        args.bin.display()
    );
    let mut goals = scale(&args, work.path()).await?;
    if args.orthanc > 0 {
        goals.extend(against_orthanc(&args, work.path()).await?);
    }
    println!("\nafter the run: {}", machine_load());
    print_goals(&goals);
    Ok(())
}

/// Part 1: QIDO-RS on the big index, SQLite and PostgreSQL served at once, their
/// rounds interleaved.
async fn scale(args: &Args, work: &Path) -> Result<Vec<Goal>> {
    println!();
    let data = generate_reporting(Spec::new(args.instances));
    let sqlite = format!("sqlite://{}?mode=rwc", work.join("index.db").display());
    let mut backends = Vec::new();
    if args.sqlite {
        backends.push((
            "SQLite",
            serve_loaded("SQLite", &sqlite, &data, args, work).await?,
        ));
    }
    if args.postgres {
        match fresh_postgres(PG_DATABASE).await {
            Ok(url) => backends.push((
                "PostgreSQL",
                serve_loaded("PostgreSQL", &url, &data, args, work).await?,
            )),
            Err(e) => println!("\nPostgreSQL skipped: {e:#}"),
        }
    }
    if backends.is_empty() {
        println!("\nQIDO-RS at scale skipped: neither SQLite nor PostgreSQL");
        return Ok(Vec::new());
    }
    let peers = backends
        .iter()
        .map(|(_, g)| WebPeer::gateway(g.https_port, &g.ca, USER, PASSWORD))
        .collect::<Result<Vec<_>>>()?;
    let results = check_and_measure(&peers, &data, args).await?;
    let labels: Vec<&str> = backends.iter().map(|(label, _)| *label).collect();
    drop(backends);
    let mut goals = Vec::new();
    for (label, peer_rounds) in labels.into_iter().zip(&results) {
        println!(
            "\n{label}, {} instances: QIDO-RS /studies latency over HTTPS, ms (median over {} rounds)\n{:<28} {:>6} {:>9} {:>9} {:>9} {:>14}",
            args.instances, args.rounds, "query", "count", "p50", "p99", "max", "matches/query"
        );
        for (k, r) in peer_rounds.iter().enumerate() {
            println!(
                "{:<28} {:>6} {:>9.2} {:>9.2} {:>9.2} {:>14.1}",
                KINDS[k].label(),
                r.count(),
                r.p50(),
                r.p99(),
                r.max(),
                r.mean_matches()
            );
            goals.push(Goal {
                figure: format!(
                    "QIDO-RS {} p99, {label}, {} instances",
                    short(KINDS[k]),
                    args.instances
                ),
                measured: format!("{:.1} ms (p50 {:.1} ms)", r.p99(), r.p50()),
                goal: format!("< {QIDO_P99_MS:.0} ms at 1,000,000"),
                met: Some(r.p99() < QIDO_P99_MS),
            });
        }
    }
    Ok(goals)
}

/// Loads `data` into the empty index at `url` and serves it with a gateway
/// process, the benchmark's user in the first facility.
async fn serve_loaded(
    label: &str,
    url: &str,
    data: &Dataset,
    args: &Args,
    work: &Path,
) -> Result<WebGateway> {
    println!(
        "\n== {label}: loading {} instances ...",
        data.instance_count()
    );
    load_reporting(url, data).await?;
    WebGateway::start(&args.bin, work, url, &data.facilities[0].name)
}

/// Parts 2 and 3: the same data in a gateway (SQLite) and Orthanc with DICOMweb.
async fn against_orthanc(args: &Args, work: &Path) -> Result<Vec<Goal>> {
    println!(
        "\n== Orthanc comparison at {} instances (one facility, same data)",
        args.orthanc
    );
    let Some(orthanc) = Orthanc::start(work, true)? else {
        println!(
            "Orthanc is not installed (apt-get install -y orthanc orthanc-dicomweb): comparison skipped"
        );
        return Ok(Vec::new());
    };
    let data = generate_reporting(Spec {
        facilities: 1,
        ..Spec::new(args.orthanc)
    });
    orthanc.load_reporting(&data).await?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        work.join("compare-index.db").display()
    );
    let gateway = serve_loaded("SQLite", &url, &data, args, work).await?;
    let peers = [
        WebPeer::gateway(gateway.https_port, &gateway.ca, USER, PASSWORD)?,
        WebPeer::orthanc(orthanc.http_port)?,
    ];
    let results = check_and_measure(&peers, &data, args).await?;
    println!(
        "\nQIDO-RS /studies at {} instances, ms (median over {} rounds; gateway HTTPS, Orthanc plain HTTP)\n{:<28} {:>9} {:>9} {:>11} {:>11} {:>9} {:>8}",
        args.orthanc,
        args.rounds,
        "query",
        "gw p50",
        "gw p99",
        "orthanc p50",
        "orthanc p99",
        "ratio p50",
        "matches"
    );
    let mut goals = Vec::new();
    for (k, kind) in KINDS.iter().enumerate() {
        let (g, o) = (&results[0][k], &results[1][k]);
        let ratio = o.p50() / g.p50().max(1e-9);
        println!(
            "{:<28} {:>9.2} {:>9.2} {:>11.2} {:>11.2} {:>8.2}x {:>8.1}",
            kind.label(),
            g.p50(),
            g.p99(),
            o.p50(),
            o.p99(),
            ratio,
            g.mean_matches()
        );
        goals.push(Goal {
            figure: format!(
                "QIDO-RS {} vs Orthanc DICOMweb, {} instances (Orthanc p50 / gateway p50)",
                short(*kind),
                args.orthanc
            ),
            measured: format!("{ratio:.1}x ({:.2} vs {:.2} ms)", o.p50(), g.p50()),
            goal: format!(">= {QIDO_VS_ORTHANC:.0}x"),
            met: Some(ratio >= QIDO_VS_ORTHANC),
        });
    }
    println!("(ratio = Orthanc p50 / gateway p50; > 1 means the gateway is faster)");
    if args.wado > 0 {
        goals.push(wado_part(args, work, &gateway, &orthanc, &peers).await?);
    }
    Ok(goals)
}

/// Part 3: WADO-RS throughput with `args.clients` concurrent clients.
async fn wado_part(
    args: &Args,
    work: &Path,
    gateway: &WebGateway,
    orthanc: &Orthanc,
    peers: &[WebPeer; 2],
) -> Result<Goal> {
    let files = work.join("ct");
    println!(
        "\n== WADO-RS: generating {} CT instances (512x512x16) ...",
        args.wado
    );
    let mb = generate(&files, args.wado)? as f64 / 1e6;
    gateway.store(&files, 4)?;
    storescu(&files, ORTHANC_AE, "BENCH", orthanc.dicom_port, 4, None)?;
    println!(
        "stored {} instances ({mb:.0} MB) in both with storescu",
        args.wado
    );
    let pids = [gateway.pid(), orthanc.pid()];
    let ticks = clock_ticks()?;
    for peer in peers {
        // Untimed: checks every answer, warms caches and connections.
        wado::pass(peer, args.wado, args.clients, CT_PIXEL_BYTES).await?;
    }
    let (mut rates, mut cpu) = ([vec![], vec![]], [vec![], vec![]]);
    for round in 0..args.rounds {
        for i in order(round) {
            let before = proc_stat(pids[i])?.own;
            let pass = wado::pass(&peers[i], args.wado, args.clients, CT_PIXEL_BYTES).await?;
            let used = proc_stat(pids[i])?.own.saturating_sub(before) as f64 / ticks;
            rates[i].push(pass.per_sec());
            cpu[i].push(used * 1000.0 / args.wado as f64);
            println!(
                "  round {}: {:<8} {:>7.0} inst/s {:>7.0} MB/s  CPU {:.2} ms/inst",
                round + 1,
                peers[i].name,
                pass.per_sec(),
                pass.bytes as f64 / 1e6 / pass.elapsed.as_secs_f64(),
                used * 1000.0 / args.wado as f64
            );
        }
    }
    let m = |v: &[f64]| median(v).unwrap_or(f64::NAN);
    let (g, o) = (m(&rates[0]), m(&rates[1]));
    println!(
        "WADO-RS, {} instances, {} clients (median over {} rounds): gateway {g:.0} inst/s ({:.2} ms CPU/inst, HTTPS), Orthanc {o:.0} inst/s ({:.2} ms CPU/inst, plain HTTP): {:.2}x",
        args.wado,
        args.clients,
        args.rounds,
        m(&cpu[0]),
        m(&cpu[1]),
        g / o
    );
    Ok(Goal {
        figure: format!(
            "WADO-RS instances/s, {} clients, {} CT 512x512x16 (gateway / Orthanc)",
            args.clients, args.wado
        ),
        measured: format!("{:.2}x ({g:.0} vs {o:.0} inst/s)", g / o),
        goal: format!(">= {WADO_VS_ORTHANC}x"),
        met: Some(g / o >= WADO_VS_ORTHANC),
    })
}

/// Random picks of every kind in [`KINDS`] on facility 0 of `data`, checked against
/// every peer, then timed in interleaved rounds: per peer, per kind.
async fn check_and_measure(
    peers: &[WebPeer],
    data: &Dataset,
    args: &Args,
) -> Result<Vec<Vec<Rounds>>> {
    let finds: Vec<Vec<Find>> = KINDS
        .iter()
        .map(|&k| picks(data, 0, k, args.picks, PICK_SEED))
        .collect();
    check_matches(peers, data, &finds).await?;
    interleave(peers, &finds, args.rounds).await
}

/// First round of `finds` against every peer: the matches must be the ones the
/// generator predicts (checked on Study Instance UIDs).
async fn check_matches(peers: &[WebPeer], data: &Dataset, finds: &[Vec<Find>]) -> Result<()> {
    for peer in peers {
        let mut differ = 0;
        for find in finds.iter().flatten() {
            let body = peer.get(&qido::path(find)?, qido::ACCEPT).await?;
            if qido::study_uids(body.as_ref())? != find.expected(data, 0) {
                differ += 1;
            }
        }
        let total = finds.iter().map(Vec::len).sum::<usize>();
        match differ {
            0 => println!(
                "{}: all {total} searches return the expected studies",
                peer.name
            ),
            n => println!(
                "{}: {n} of {total} searches DIFFER from the expected studies",
                peer.name
            ),
        }
    }
    Ok(())
}

/// `rounds` rounds; in each, every kind against every peer, the peers' order
/// reversed every other round. Result: per peer, per kind.
async fn interleave(
    peers: &[WebPeer],
    finds: &[Vec<Find>],
    rounds: usize,
) -> Result<Vec<Vec<Rounds>>> {
    let mut out = vec![vec![Rounds::default(); finds.len()]; peers.len()];
    for round in 0..rounds {
        let mut idx: Vec<usize> = (0..peers.len()).collect();
        if !round.is_multiple_of(2) {
            idx.reverse();
        }
        for (k, kind_finds) in finds.iter().enumerate() {
            for &p in &idx {
                let stats = qido::measure(&peers[p], kind_finds, kind_finds.len().min(20)).await?;
                out[p][k].rounds.push(stats);
            }
        }
        println!("  QIDO round {} of {rounds} done", round + 1);
    }
    Ok(out)
}

/// Gateway first in even rounds, Orthanc first in odd ones.
fn order(round: usize) -> [usize; 2] {
    if round.is_multiple_of(2) {
        [0, 1]
    } else {
        [1, 0]
    }
}

fn short(kind: Kind) -> &'static str {
    match kind {
        Kind::Patient => "study by patient ID",
        _ => "study by modality+30d",
    }
}
