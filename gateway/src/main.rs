//! `pacs-gateway`: parses the command line, sets up logging, runs the command.

use clap::Parser;

use gateway::cli::{Cli, run};
use gateway::config::ConfigError;

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    gateway::telemetry::init(cli.verbose);
    if let Err(e) = run(cli).await {
        eprintln!("pacs-gateway: {e:#}");
        let code = if e.downcast_ref::<ConfigError>().is_some() {
            64
        } else {
            1
        };
        std::process::exit(code);
    }
}
