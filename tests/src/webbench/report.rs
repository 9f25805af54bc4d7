//! Figures over interleaved rounds (the median of each round's p50 and p99) and the
//! table of the goals, each with its measured figure and whether it is met.

use std::time::Duration;

use crate::bench::measure::median;
use crate::findbench::peer::Stats;

use super::qido::ms;

/// One kind of query against one peer, over every round.
#[derive(Debug, Clone, Default)]
pub struct Rounds {
    /// Each round's figures, in order.
    pub rounds: Vec<Stats>,
}

impl Rounds {
    /// Median over the rounds of each round's p50, in ms.
    pub fn p50(&self) -> f64 {
        self.median_of(|s| s.p50)
    }

    /// Median over the rounds of each round's p99, in ms.
    pub fn p99(&self) -> f64 {
        self.median_of(|s| s.p99)
    }

    /// Slowest query of any round, in ms.
    pub fn max(&self) -> f64 {
        self.rounds.iter().map(|s| ms(s.max)).fold(0.0, f64::max)
    }

    /// Queries timed per round.
    pub fn count(&self) -> usize {
        self.rounds.first().map_or(0, |s| s.count)
    }

    /// Mean matches per query (first round).
    pub fn mean_matches(&self) -> f64 {
        self.rounds.first().map_or(0.0, Stats::mean_matches)
    }

    fn median_of(&self, f: impl Fn(&Stats) -> Duration) -> f64 {
        let values: Vec<f64> = self.rounds.iter().map(|s| ms(f(s))).collect();
        median(&values).unwrap_or(f64::NAN)
    }
}

/// One line of the goals table.
#[derive(Debug, Clone)]
pub struct Goal {
    /// What is measured.
    pub figure: String,
    /// The measured value, with its unit or both peers' values.
    pub measured: String,
    /// The goal, as text.
    pub goal: String,
    /// Whether it is met (`None`: not measured).
    pub met: Option<bool>,
}

/// Prints the goals as a Markdown table (ready for the README).
pub fn print_goals(goals: &[Goal]) {
    println!("\n| figure | measured | goal | met? |\n|---|---|---|---|");
    for g in goals {
        let met = match g.met {
            Some(true) => "yes",
            Some(false) => "no",
            None => "-",
        };
        println!("| {} | {} | {} | {met} |", g.figure, g.measured, g.goal);
    }
}

/// The load average and core count, for the record of what else ran.
pub fn machine_load() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("load average {} on {cores} cores", load.join(" "))
}
