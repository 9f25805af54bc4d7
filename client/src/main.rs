//! `pacs-client`: parses the command line, sets up logging, runs the command.

use clap::Parser;

use client::cli::{Cli, run};
use client::config::ConfigError;

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    client::telemetry::init(cli.verbose);
    match run(cli).await {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("pacs-client: {e:#}");
            let code = if e.downcast_ref::<ConfigError>().is_some() {
                64
            } else {
                1
            };
            std::process::exit(code);
        }
    }
}
