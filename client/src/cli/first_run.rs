//! The settings most often changed on a first run, as flags and environment variables
//! as well as TOML: the data directory for every command, the edge listener and the
//! gateway address for `serve`. A flag or variable wins over the config file, which
//! wins over the defaults.

use std::path::PathBuf;

use clap::Args;

use crate::config::Config;

/// Flags every command takes.
#[derive(Debug, Clone, Default, Args)]
pub struct GlobalSettings {
    /// Data directory (spool, local store, outbox, key file) [config: data_dir;
    /// default ./pacs-client-data].
    #[arg(long, global = true, env = "PACS_CLIENT_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl GlobalSettings {
    /// Overrides the config file's values with the given ones.
    pub fn apply(&self, config: &mut Config) {
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
    }
}

/// `serve` flags.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Edge listener for modalities and viewers, HOST:PORT [config: edge.listen;
    /// default 0.0.0.0:11112].
    #[arg(long, env = "PACS_CLIENT_EDGE_LISTEN", value_name = "ADDR")]
    pub edge_listen: Option<String>,
    /// The gateway's DICOM TLS address, HOST:PORT [config: gateway.address; default
    /// localhost:2762].
    #[arg(long, env = "PACS_CLIENT_GATEWAY_ADDRESS", value_name = "ADDR")]
    pub gateway_address: Option<String>,
}

impl ServeArgs {
    /// Overrides the config file's values with the given ones and checks them.
    pub fn apply(&self, config: &mut Config) -> anyhow::Result<()> {
        for (given, slot, flag) in [
            (&self.edge_listen, &mut config.edge.listen, "--edge-listen"),
            (
                &self.gateway_address,
                &mut config.gateway.address,
                "--gateway-address",
            ),
        ] {
            let Some(addr) = given else { continue };
            let addr = addr.trim();
            let ok = addr
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !ok {
                return Err(crate::exit::UsageError(format!(
                    "{flag} {addr:?} must be HOST:PORT (e.g. 127.0.0.1:11112)"
                ))
                .into());
            }
            *slot = addr.to_string();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file() {
        let mut config = Config::default();
        ServeArgs {
            edge_listen: Some("127.0.0.1:4104".into()),
            gateway_address: None,
        }
        .apply(&mut config)
        .unwrap();
        assert_eq!(config.edge.listen, "127.0.0.1:4104");
        assert_eq!(config.gateway.address, "localhost:2762");
        let e = ServeArgs {
            edge_listen: Some("4104".into()),
            gateway_address: None,
        }
        .apply(&mut config)
        .unwrap_err();
        assert_eq!(crate::exit::code_for(&e), crate::exit::USAGE);
        GlobalSettings {
            data_dir: Some("/srv/client".into()),
        }
        .apply(&mut config);
        assert_eq!(config.key_file(), PathBuf::from("/srv/client/facility.key"));
    }
}
