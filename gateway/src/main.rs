//! `pacs-gateway`: parses the command line, sets up logging, runs the command, and
//! exits with a code from the table in [`gateway::exit`].

use clap::Parser;

use gateway::cli::{Cli, run};
use gateway::exit;

#[tokio::main]
async fn main() {
    // Before anything is written: files 0600, directories 0700.
    gateway::at_rest::restrict_umask();
    exit::exit_quietly_on_closed_stdout();
    let cli = Cli::parse();
    gateway::telemetry::init(cli.verbose, cli.log_format);
    if let Err(e) = run(cli).await {
        if !exit::is_broken_pipe(&e) {
            eprintln!("pacs-gateway: {}", exit::one_line(&e));
        }
        std::process::exit(exit::code_for(&e));
    }
}
