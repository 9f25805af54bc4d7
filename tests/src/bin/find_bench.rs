//! C-FIND benchmark (issue 4): bulk-loads N synthetic pseudonymous instances (default
//! 1,000,000 in N/20 studies over 5 facilities) into a gateway index on SQLite and,
//! when it answers, PostgreSQL; serves it with an in-process gateway and times C-FIND
//! over one real association with User Identity (p50, p99, max per kind of query).
//! Then loads the same logical data at a smaller size (default 20,000 instances) into
//! Orthanc and into a gateway, runs the same queries against both and prints the
//! ratio. Never fails on a timing.
//!
//! Usage: `find-bench [INSTANCES] [--orthanc N] [--picks N] [--no-postgres]
//! [--sqlite-path FILE]`; run it with `scripts/bench-find.sh` (release build).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tests::findbench::data::{Dataset, Spec};
use tests::findbench::load::{fresh_postgres, generate_reporting, load_reporting};
use tests::findbench::orthanc::{ORTHANC_AE, Orthanc};
use tests::findbench::peer::{
    BenchGateway, GATEWAY_AE, PASSWORD, Requestor, Stats, USER, add_clinician, picks_for,
};
use tests::findbench::queries::{Find, Kind, picks};

/// The p99 the issue aims at on SQLite.
const TARGET: Duration = Duration::from_millis(50);
/// Seed of the random picks.
const PICK_SEED: u64 = 42;
/// Database the benchmark drops and recreates on the PostgreSQL server.
const PG_DATABASE: &str = "pacs_find_bench";

struct Args {
    instances: u64,
    orthanc: u64,
    picks: usize,
    postgres: bool,
    sqlite_path: Option<String>,
}

fn args() -> Result<Args> {
    let mut out = Args {
        instances: 1_000_000,
        orthanc: 20_000,
        picks: 200,
        postgres: true,
        sqlite_path: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--orthanc" => out.orthanc = value("--orthanc")?.parse()?,
            "--picks" => out.picks = value("--picks")?.parse()?,
            "--no-postgres" => out.postgres = false,
            "--sqlite-path" => out.sqlite_path = Some(value("--sqlite-path")?),
            n if !n.starts_with('-') => out.instances = n.parse().context("INSTANCES")?,
            other => bail!(
                "unknown argument {other}; usage: find-bench [INSTANCES] [--orthanc N] [--picks N] [--no-postgres] [--sqlite-path FILE]"
            ),
        }
    }
    if out.instances < 100 || out.picks == 0 {
        bail!("INSTANCES must be at least 100 and --picks at least 1");
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = args()?;
    let work = tempfile::tempdir()?;
    let data = generate_reporting(Spec::new(args.instances));

    let sqlite_url = match &args.sqlite_path {
        Some(path) => format!("sqlite://{path}?mode=rwc"),
        None => format!(
            "sqlite://{}?mode=rwc",
            work.path().join("index.db").display()
        ),
    };
    let sqlite = run_index("SQLite", &sqlite_url, &data, args.picks, work.path()).await?;
    print_table("SQLite", &sqlite);
    for (kind, stats) in &sqlite {
        let verdict = if stats.p99 < TARGET { "met" } else { "not met" };
        println!(
            "target p99 < 50 ms on SQLite: {verdict} for {} (p99 {:.1} ms)",
            kind.label(),
            ms(stats.p99)
        );
    }

    if args.postgres {
        match fresh_postgres(PG_DATABASE).await {
            Ok(url) => {
                let pg = run_index("PostgreSQL", &url, &data, args.picks, work.path()).await?;
                print_table("PostgreSQL", &pg);
            }
            Err(e) => println!("\nPostgreSQL skipped: {e:#}"),
        }
    }
    drop(data);

    if args.orthanc > 0 {
        compare_with_orthanc(args.orthanc, args.picks, work.path()).await?;
    }
    Ok(())
}

/// Loads `data` into the index at `url`, serves it, and times every kind of query.
async fn run_index(
    label: &str,
    url: &str,
    data: &Dataset,
    picks_per_kind: usize,
    work: &Path,
) -> Result<Vec<(Kind, Stats)>> {
    println!(
        "\n== {label}: loading {} instances ...",
        data.instance_count()
    );
    let report = load_reporting(url, data).await?;
    let data_dir = tempfile::tempdir_in(work)?;
    add_clinician(url, report.facility_ids[0]).await?;
    let gateway = BenchGateway::start(url, &data.facilities[0].name, data_dir.path()).await?;
    let addr = format!("127.0.0.1:{}", gateway.port);
    let mut requestor = Requestor::connect(&addr, GATEWAY_AE, Some((USER, PASSWORD))).await?;
    let mut out = Vec::new();
    for kind in Kind::ALL {
        let finds = picks(data, 0, kind, picks_for(kind, picks_per_kind), PICK_SEED);
        let stats = requestor.measure(&finds, warmup(&finds)).await?;
        out.push((kind, stats));
    }
    requestor.release().await?;
    gateway.stop().await?;
    Ok(out)
}

fn warmup(finds: &[Find]) -> usize {
    finds.len().min(20)
}

/// The same logical data (one facility) in Orthanc and in a gateway on SQLite; the
/// same picks against both.
async fn compare_with_orthanc(instances: u64, picks_per_kind: usize, work: &Path) -> Result<()> {
    println!("\n== Orthanc comparison at {instances} instances (one facility, same data)");
    let Some(orthanc) = Orthanc::start(work, false)? else {
        println!("Orthanc is not installed (apt-get install -y orthanc): comparison skipped");
        return Ok(());
    };
    let data = Dataset::generate(Spec {
        facilities: 1,
        ..Spec::new(instances)
    });
    orthanc.load_reporting(&data).await?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        work.join("compare-index.db").display()
    );
    let report = load_reporting(&url, &data).await?;
    add_clinician(&url, report.facility_ids[0]).await?;
    let data_dir = tempfile::tempdir_in(work)?;
    let gateway = BenchGateway::start(&url, &data.facilities[0].name, data_dir.path()).await?;
    let mut ours = Requestor::connect(
        &format!("127.0.0.1:{}", gateway.port),
        GATEWAY_AE,
        Some((USER, PASSWORD)),
    )
    .await?;
    let mut theirs = Requestor::connect(
        &format!("127.0.0.1:{}", orthanc.dicom_port),
        ORTHANC_AE,
        None,
    )
    .await?;
    println!(
        "\n{:<28} {:>6} {:>9} {:>9} {:>11} {:>11} {:>9} {:>8}",
        "query", "count", "gw p50", "gw p99", "orthanc p50", "orthanc p99", "ratio p50", "matches"
    );
    for kind in Kind::ALL {
        let finds = picks(&data, 0, kind, picks_for(kind, picks_per_kind), PICK_SEED);
        let g = ours.measure(&finds, warmup(&finds)).await?;
        let o = theirs.measure(&finds, warmup(&finds)).await?;
        let agree = if g.matches == o.matches {
            format!("{:.0}", g.mean_matches())
        } else {
            format!(
                "DIFFER (gw {:.1}, orthanc {:.1})",
                g.mean_matches(),
                o.mean_matches()
            )
        };
        println!(
            "{:<28} {:>6} {:>9.2} {:>9.2} {:>11.2} {:>11.2} {:>8.2}x {:>8}",
            kind.label(),
            g.count,
            ms(g.p50),
            ms(g.p99),
            ms(o.p50),
            ms(o.p99),
            o.p50.as_secs_f64() / g.p50.as_secs_f64().max(1e-9),
            agree
        );
    }
    println!("(ratio = Orthanc p50 / gateway p50; > 1 means the gateway is faster; times in ms)");
    ours.release().await?;
    theirs.release().await?;
    gateway.stop().await?;
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn print_table(label: &str, rows: &[(Kind, Stats)]) {
    println!(
        "\n{label}: C-FIND latency over one association (ms)\n{:<28} {:>6} {:>9} {:>9} {:>9} {:>14}",
        "query", "count", "p50", "p99", "max", "matches/query"
    );
    for (kind, s) in rows {
        println!(
            "{:<28} {:>6} {:>9.2} {:>9.2} {:>9.2} {:>14.1}",
            kind.label(),
            s.count,
            ms(s.p50),
            ms(s.p99),
            ms(s.max),
            s.mean_matches()
        );
    }
}
