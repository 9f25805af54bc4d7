//! Logging setup for the `pacs-client` binary: `RUST_LOG` wins, otherwise `info`
//! (`-v` debug, `-vv` trace). Patient data never goes into a span or event: log
//! lines carry outbox ids, UIDs and AE titles, never names or patient IDs.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber (stderr, compact).
pub fn init(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .compact()
        .try_init();
}
