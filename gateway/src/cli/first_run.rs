//! The settings an operator most often changes, as flags and environment variables
//! as well as TOML: the data directory and database for every command, the listen
//! addresses for `serve`. A flag or variable wins over the config file, which wins
//! over the defaults. An empty address disables that listener.

use std::path::PathBuf;

use clap::Args;

use crate::config::Config;

/// Flags every command takes.
#[derive(Debug, Clone, Default, Args)]
pub struct GlobalSettings {
    /// Data directory (index, blobs, dev certificates) [config: data_dir;
    /// default ./pacs-data].
    #[arg(long, global = true, env = "PACS_GATEWAY_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Index database: sqlite://FILE or postgres://USER:PASSWORD@HOST/DB
    /// [config: database_url; default SQLite in the data directory].
    #[arg(
        long,
        global = true,
        env = "PACS_GATEWAY_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub database_url: Option<String>,
}

impl GlobalSettings {
    /// Overrides the config file's values with the given ones.
    pub fn apply(&self, config: &mut Config) {
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(url) = &self.database_url {
            config.database_url = Some(url.clone());
        }
    }
}

/// `serve` flags.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// DICOM TLS listener, HOST:PORT; "" disables [config: dicom.tls_listen;
    /// default 0.0.0.0:2762].
    #[arg(long, env = "PACS_GATEWAY_TLS_LISTEN", value_name = "ADDR")]
    pub tls_listen: Option<String>,
    /// Plain DICOM listener (keep it on loopback); "" disables [config:
    /// dicom.plain_listen; default 127.0.0.1:11113].
    #[arg(long, env = "PACS_GATEWAY_PLAIN_LISTEN", value_name = "ADDR")]
    pub plain_listen: Option<String>,
    /// HTTPS listener (admin API, /healthz); "" disables [config: https.listen;
    /// default 0.0.0.0:8443].
    #[arg(long, env = "PACS_GATEWAY_HTTPS_LISTEN", value_name = "ADDR")]
    pub https_listen: Option<String>,
    /// Plain-HTTP listener for /metrics and /healthz (Prometheus); "" disables
    /// [config: metrics.listen; default 127.0.0.1:9464].
    #[arg(long, env = "PACS_GATEWAY_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<String>,
}

impl ServeArgs {
    /// Overrides the config file's listeners with the given ones and checks them.
    pub fn apply(&self, config: &mut Config) -> anyhow::Result<()> {
        for (given, slot, flag) in [
            (
                &self.tls_listen,
                &mut config.dicom.tls_listen,
                "--tls-listen",
            ),
            (
                &self.plain_listen,
                &mut config.dicom.plain_listen,
                "--plain-listen",
            ),
            (
                &self.https_listen,
                &mut config.https.listen,
                "--https-listen",
            ),
            (
                &self.metrics_listen,
                &mut config.metrics.listen,
                "--metrics-listen",
            ),
        ] {
            let Some(addr) = given else { continue };
            let addr = addr.trim();
            if !addr.is_empty() && !looks_like_address(addr) {
                crate::usage!(
                    "{flag} {addr:?} must be HOST:PORT (e.g. 127.0.0.1:2762), or \"\" to disable it"
                );
            }
            *slot = addr.to_string();
        }
        if self
            .https_listen
            .as_deref()
            .is_some_and(|a| !a.trim().is_empty())
        {
            config.https.enabled = true;
        }
        Ok(())
    }
}

/// `HOST:PORT` with a numeric port (IPv6 as `[addr]:port`).
fn looks_like_address(addr: &str) -> bool {
    addr.rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_and_empty_disables() {
        let mut config = Config::default();
        config.dicom.plain_listen = "127.0.0.1:5000".into();
        let args = ServeArgs {
            tls_listen: Some("127.0.0.1:12762".into()),
            plain_listen: Some(String::new()),
            ..ServeArgs::default()
        };
        args.apply(&mut config).unwrap();
        assert_eq!(config.dicom.tls_listen, "127.0.0.1:12762");
        assert_eq!(config.dicom.plain_listen, "");
        assert_eq!(config.https.listen, Config::default().https.listen);
        let bad = ServeArgs {
            https_listen: Some("8443".into()),
            ..ServeArgs::default()
        };
        let e = bad.apply(&mut config).unwrap_err();
        assert_eq!(crate::exit::code_for(&e), crate::exit::USAGE);
        GlobalSettings {
            data_dir: Some("/srv/pacs".into()),
            database_url: None,
        }
        .apply(&mut config);
        assert_eq!(config.data_dir, PathBuf::from("/srv/pacs"));
        assert!(
            config
                .database_url()
                .starts_with("sqlite:///srv/pacs/index.db")
        );
    }
}
