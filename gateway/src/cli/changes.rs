//! `pacs-gateway changes FACILITY`: a facility's changes feed, oldest first, as a
//! table or JSON lines (the same fields as `GET /api/v1/changes`).

use clap::Args;

use super::lookup;
use crate::audit::rfc3339;
use crate::config::Config;
use crate::http::changes::ChangeItem;

/// `changes ...`
#[derive(Debug, Args)]
pub struct ChangesArgs {
    /// Facility name.
    pub facility: String,
    /// Only events with a greater seq (the `last` of a previous listing).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..))]
    pub after: i64,
    /// At most this many events (1 to 1000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `changes`.
pub(super) async fn run(config: Config, args: ChangesArgs) -> anyhow::Result<()> {
    let index = crate::app::open_index(&config).await?;
    let facility = lookup(&index, &args.facility).await?;
    let page = index.changes(facility.id, args.after, args.limit).await?;
    index.close().await;
    if args.json {
        for c in page.changes {
            println!("{}", serde_json::to_string(&ChangeItem::of(c))?);
        }
        return Ok(());
    }
    println!(
        "{:>8} {:<24} {:<13} {:>9} {:>6} study / series",
        "seq", "time", "kind", "instances", "series"
    );
    for c in &page.changes {
        println!(
            "{:>8} {:<24} {:<13} {:>9} {:>6} {} {}",
            c.seq,
            rfc3339(c.at),
            c.kind,
            c.instances,
            c.series,
            c.study_uid,
            c.series_uid.as_deref().unwrap_or("-")
        );
    }
    if page.more {
        let last = page.changes.last().map_or(args.after, |c| c.seq);
        eprintln!(
            "more events follow: pacs-gateway changes {} --after {last}",
            facility.name
        );
    }
    Ok(())
}
