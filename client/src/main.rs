//! `pacs-client`: parses the command line, sets up logging, runs the command, and
//! exits with a code from the table in [`client::exit`].

use clap::Parser;

use client::cli::{Cli, run};
use client::exit;

#[tokio::main]
async fn main() {
    // Before anything is written: files 0600, directories 0700.
    client::at_rest::restrict_umask();
    exit::exit_quietly_on_closed_stdout();
    let cli = Cli::parse();
    client::telemetry::init(cli.verbose, cli.log_format);
    match run(cli).await {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            if !exit::is_broken_pipe(&e) {
                eprintln!("pacs-client: {}", exit::one_line(&e));
            }
            std::process::exit(exit::code_for(&e));
        }
    }
}
