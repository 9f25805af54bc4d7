//! Logging setup for the `pacs-gateway` binary: `RUST_LOG` wins, otherwise `info`
//! (`-v` debug, `-vv` trace). Patient data never goes into a span or event: what
//! reaches the gateway is pseudonymous, and even that is logged only as UIDs.

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
