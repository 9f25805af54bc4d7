//! `completions SHELL` and `man`: shell completion scripts and manual pages generated
//! from the command definitions themselves, so they never drift from `--help`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, CommandFactory};

use super::Cli;

/// `man` flags.
#[derive(Debug, Clone, Args)]
pub struct DocsCommand {
    /// Write pacs-client.1 and one page per subcommand (pacs-client-serve.1, ...)
    /// into this folder instead of printing the main page.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Prints the completion script for `shell` on standard output.
pub(super) fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "pacs-client", &mut script);
    std::io::stdout()
        .write_all(&script)
        .context("cannot write the completion script")
}

/// Prints the main manual page, or writes every page into `--out`.
pub(super) fn man(args: &DocsCommand) -> anyhow::Result<()> {
    let cmd = Cli::command();
    match &args.out {
        None => clap_mangen::Man::new(cmd)
            .render(&mut std::io::stdout())
            .context("cannot write the manual page"),
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("cannot write manual pages into {}", dir.display()))?;
            println!("manual pages written to {}", dir.display());
            Ok(())
        }
    }
}
