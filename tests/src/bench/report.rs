//! The ingest benchmark's results: samples per configuration, their medians, and the
//! three tables it prints (per configuration, gateway/peer ratios, goal figures).

use std::collections::BTreeMap;

use super::measure::median;

/// What receives the instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// DCMTK `storescp --fork`, plain DICOM.
    Storescp,
    /// DCMTK `storescp --fork +tls`.
    StorescpTls,
    /// The gateway's plain DICOM listener.
    GatewayPlain,
    /// The gateway's DICOM TLS listener.
    GatewayTls,
    /// Orthanc (SQLite index), plain DICOM.
    Orthanc,
    /// The facility client's edge, forwarding to a gateway over TLS.
    ClientPath,
}

impl Kind {
    /// As printed.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Storescp => "storescp",
            Kind::StorescpTls => "storescp +tls",
            Kind::GatewayPlain => "gateway plain",
            Kind::GatewayTls => "gateway TLS",
            Kind::Orthanc => "Orthanc plain",
            Kind::ClientPath => "client -> gateway TLS",
        }
    }
}

/// One configuration: a receiver and a number of parallel associations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Run {
    /// Receiver.
    pub kind: Kind,
    /// Parallel `storescu` associations.
    pub assocs: usize,
}

/// One run of one configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// Wall time (client path: until the gateway holds every instance).
    pub secs: f64,
    /// CPU per instance of the receiver (client path: of the client), ms.
    pub cpu_ms: Option<f64>,
    /// Peak RSS of the receiver's process (client path: of the client), bytes.
    pub rss: Option<u64>,
    /// Client path: until the client's edge accepted every instance.
    pub edge_secs: Option<f64>,
    /// Client path: the gateway's CPU per instance, ms.
    pub gateway_cpu_ms: Option<f64>,
    /// Client path: the gateway's peak RSS, bytes.
    pub gateway_rss: Option<u64>,
}

/// Everything one benchmark run measured.
#[derive(Debug)]
pub struct Results {
    /// Instances per send.
    pub count: usize,
    /// Size of those instances, MB.
    pub mb: f64,
    /// Median fsync round (write + fsync file + rename + fsync directory), seconds.
    pub fsync: f64,
    /// Median of the same write made durable with one journal commit (rename, then
    /// fsync file and directory at once), seconds.
    pub fsync_one_commit: f64,
    /// Samples per configuration.
    pub samples: BTreeMap<Run, Vec<Sample>>,
    /// Orthanc was installed.
    pub orthanc: bool,
    /// The client binary was there.
    pub client: bool,
}

/// Medians (peaks for memory) of one configuration's samples.
#[derive(Debug, Clone, Copy)]
struct Summary {
    runs: usize,
    secs: f64,
    fastest: f64,
    slowest: f64,
    cpu_ms: Option<f64>,
    rss: Option<u64>,
    edge_secs: Option<f64>,
    gateway_cpu_ms: Option<f64>,
    gateway_rss: Option<u64>,
}

impl Results {
    fn summary(&self, kind: Kind, assocs: usize) -> Option<Summary> {
        let s = self.samples.get(&Run { kind, assocs })?;
        let of =
            |f: fn(&Sample) -> Option<f64>| median(&s.iter().filter_map(f).collect::<Vec<_>>());
        let peak = |f: fn(&Sample) -> Option<u64>| s.iter().filter_map(f).max();
        let secs: Vec<f64> = s.iter().map(|x| x.secs).collect();
        Some(Summary {
            runs: s.len(),
            secs: median(&secs)?,
            fastest: secs.iter().copied().fold(f64::INFINITY, f64::min),
            slowest: secs.iter().copied().fold(0.0, f64::max),
            cpu_ms: of(|x| x.cpu_ms),
            rss: peak(|x| x.rss),
            edge_secs: of(|x| x.edge_secs),
            gateway_cpu_ms: of(|x| x.gateway_cpu_ms),
            gateway_rss: peak(|x| x.gateway_rss),
        })
    }

    fn rate(&self, secs: f64) -> f64 {
        self.count as f64 / secs
    }

    /// Instances/s (median) of a configuration.
    fn rate_of(&self, kind: Kind, assocs: usize) -> Option<f64> {
        self.summary(kind, assocs).map(|s| self.rate(s.secs))
    }

    /// Peak RSS of the gateway over every run (direct and behind the client).
    fn gateway_peak_rss(&self) -> Option<u64> {
        self.samples
            .iter()
            .flat_map(|(run, s)| {
                s.iter().filter_map(move |x| match run.kind {
                    Kind::GatewayPlain | Kind::GatewayTls => x.rss,
                    Kind::ClientPath => x.gateway_rss,
                    _ => None,
                })
            })
            .max()
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

/// Prints the three tables.
pub fn print(r: &Results) {
    print_configurations(r);
    print_ratios(r);
    print_goals(r);
}

fn print_configurations(r: &Results) {
    println!();
    println!("Per configuration (median of the rounds; peak RSS: highest of the rounds)");
    println!(
        "{:<22} {:>6} {:>5} {:>8} {:>15} {:>7} {:>12} {:>13}",
        "configuration",
        "assocs",
        "runs",
        "inst/s",
        "min-max inst/s",
        "MB/s",
        "CPU ms/inst",
        "peak RSS MiB"
    );
    for run in r.samples.keys() {
        let Some(s) = r.summary(run.kind, run.assocs) else {
            continue;
        };
        // storescp --fork's parent only accepts; its children do the work.
        let rss = match run.kind {
            Kind::Storescp | Kind::StorescpTls => "-".into(),
            _ => opt(s.rss.map(mib), 0),
        };
        println!(
            "{:<22} {:>6} {:>5} {:>8.0} {:>15} {:>7.1} {:>12} {:>13}",
            run.kind.name(),
            run.assocs,
            s.runs,
            r.rate(s.secs),
            format!("{:.0}-{:.0}", r.rate(s.slowest), r.rate(s.fastest)),
            r.mb / s.secs,
            opt(s.cpu_ms, 2),
            rss,
        );
        if run.kind == Kind::ClientPath {
            println!(
                "  (client path: CPU and RSS are the client's; its edge took every instance at {} inst/s; \
                 the gateway behind it used {} ms CPU/inst, peak RSS {} MiB)",
                opt(s.edge_secs.map(|e| r.rate(e)), 0),
                opt(s.gateway_cpu_ms, 2),
                opt(s.gateway_rss.map(mib), 0),
            );
        }
    }
    println!(
        "fsync round (512 KiB write + fsync file + rename + fsync dir), median: {:.2} ms; \
         with rename first and file + dir fsynced at once: {:.2} ms",
        r.fsync * 1000.0,
        r.fsync_one_commit * 1000.0
    );
}

fn print_ratios(r: &Results) {
    println!();
    println!(
        "{:<30} {:>6} {:>11} {:>9} {:>10} {:>8} {:>7}",
        "peer / gateway", "assocs", "peer inst/s", "peer MB/s", "gw inst/s", "gw MB/s", "ratio"
    );
    for (name, peer, ours) in [
        (
            "storescp / gateway plain",
            Kind::Storescp,
            Kind::GatewayPlain,
        ),
        (
            "storescp +tls / gateway TLS",
            Kind::StorescpTls,
            Kind::GatewayTls,
        ),
        (
            "Orthanc plain / gateway TLS",
            Kind::Orthanc,
            Kind::GatewayTls,
        ),
    ] {
        for assocs in [1, 4] {
            let (Some(base), Some(gw)) = (r.summary(peer, assocs), r.summary(ours, assocs)) else {
                continue;
            };
            println!(
                "{name:<30} {assocs:>6} {:>11.0} {:>9.1} {:>10.0} {:>8.1} {:>6.2}x",
                r.rate(base.secs),
                r.mb / base.secs,
                r.rate(gw.secs),
                r.mb / gw.secs,
                base.secs / gw.secs
            );
        }
    }
}

/// One line of the goal table.
struct Goal {
    figure: &'static str,
    peer: String,
    ours: String,
    ratio: Option<f64>,
    goal: &'static str,
    met: Option<bool>,
}

impl Goal {
    /// A figure whose ratio must reach `at_least`.
    fn ratio(
        figure: &'static str,
        values: Option<(String, String, f64)>,
        at_least: f64,
        goal: &'static str,
    ) -> Goal {
        let (peer, ours, ratio) = match values {
            Some((p, o, x)) => (p, o, Some(x)),
            None => ("-".into(), "-".into(), None),
        };
        Goal {
            figure,
            peer,
            ours,
            ratio,
            goal,
            met: ratio.map(|x| x >= at_least),
        }
    }
}

fn print_goals(r: &Results) {
    let inst = |v: f64| format!("{v:.0} inst/s");
    let ms = |v: f64| format!("{v:.2} ms");
    let mut goals = Vec::new();

    // 1 association: the durability limit is storescp +tls's time per instance
    // (no fsync) plus one fsync round.
    let limit = r
        .summary(Kind::StorescpTls, 1)
        .map(|s| 1.0 / (s.secs / r.count as f64 + r.fsync));
    goals.push(Goal::ratio(
        "gateway TLS, 1 assoc, vs durability limit 1/(storescp +tls s/inst + fsync round)",
        limit
            .zip(r.rate_of(Kind::GatewayTls, 1))
            .map(|(l, g)| (inst(l), inst(g), g / l)),
        0.90,
        ">= 0.90",
    ));
    // The same with the cheaper flush the gateway itself uses (one journal commit):
    // a stricter limit, for information.
    let strict = r
        .summary(Kind::StorescpTls, 1)
        .map(|s| 1.0 / (s.secs / r.count as f64 + r.fsync_one_commit));
    goals.push(Goal::ratio(
        "(stricter) gateway TLS, 1 assoc, vs 1/(storescp +tls s/inst + one-commit flush)",
        strict
            .zip(r.rate_of(Kind::GatewayTls, 1))
            .map(|(l, g)| (inst(l), inst(g), g / l)),
        0.90,
        "(info) >= 0.90",
    ));
    goals.push(Goal::ratio(
        "gateway TLS vs storescp +tls, 4 assocs",
        r.rate_of(Kind::StorescpTls, 4)
            .zip(r.rate_of(Kind::GatewayTls, 4))
            .map(|(p, g)| (inst(p), inst(g), g / p)),
        1.0,
        ">= 1.0x",
    ));
    let mut orthanc = Goal::ratio(
        "gateway TLS vs Orthanc plain, 4 assocs",
        r.rate_of(Kind::Orthanc, 4)
            .zip(r.rate_of(Kind::GatewayTls, 4))
            .map(|(p, g)| (inst(p), inst(g), g / p)),
        2.0,
        ">= 2.0x",
    );
    if !r.orthanc {
        orthanc.peer = "Orthanc not installed".into();
    }
    goals.push(orthanc);
    for (figure, assocs) in [
        ("CPU per instance: gateway TLS vs storescp +tls, 1 assoc", 1),
        (
            "CPU per instance: gateway TLS vs storescp +tls, 4 assocs",
            4,
        ),
    ] {
        let cpu = |kind| r.summary(kind, assocs).and_then(|s| s.cpu_ms);
        goals.push(Goal::ratio(
            figure,
            cpu(Kind::StorescpTls)
                .zip(cpu(Kind::GatewayTls))
                .map(|(p, g)| (ms(p), ms(g), p / g)),
            1.0,
            "gateway <= peer (ratio >= 1.0)",
        ));
    }
    let mut client = Goal::ratio(
        "client path end to end vs direct gateway TLS, 4 assocs",
        r.rate_of(Kind::GatewayTls, 4)
            .zip(r.rate_of(Kind::ClientPath, 4))
            .map(|(direct, path)| (inst(direct), inst(path), path / direct)),
        0.9,
        ">= 0.9",
    );
    if !r.client {
        client.peer = "pacs-client not built".into();
    }
    goals.push(client);
    let gateway_rss = r.gateway_peak_rss();
    goals.push(Goal {
        figure: "gateway peak RSS (VmHWM), highest of all runs",
        peer: "-".into(),
        ours: opt(gateway_rss.map(mib), 1) + " MiB",
        ratio: None,
        goal: "<= 64 MiB",
        met: gateway_rss.map(|b| b <= 64 * 1024 * 1024),
    });
    goals.push(Goal {
        figure: "client peak RSS (VmHWM), client path run",
        peer: "-".into(),
        ours: opt(
            r.summary(Kind::ClientPath, 4).and_then(|s| s.rss).map(mib),
            1,
        ) + " MiB",
        ratio: None,
        goal: "1 GiB instance <= 96 MiB: client/tests/memory.rs",
        met: None,
    });

    println!();
    println!(
        "Goals ({} instances, medians of the rounds; ratio > 1 is better for the gateway)",
        r.count
    );
    println!("| figure | peer value | gateway value | ratio | goal | met? |");
    println!("|---|---|---|---|---|---|");
    for g in goals {
        let met = match g.met {
            Some(true) => "yes",
            Some(false) => "no",
            None => "-",
        };
        println!(
            "| {} | {} | {} | {} | {} | {met} |",
            g.figure,
            g.peer,
            g.ours,
            opt(g.ratio, 2),
            g.goal
        );
    }
}
