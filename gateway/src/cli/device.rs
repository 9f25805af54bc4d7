//! `pacs-gateway device ...`: the C-MOVE destinations a facility's users may send
//! studies to (an AE title, the address the gateway calls, and whether over DICOM
//! TLS). Unregistered destinations are refused with 0xA801.

use std::net::IpAddr;

use anyhow::bail;
use clap::Subcommand;

use super::lookup;
use crate::db::destinations::Destination;
use crate::domain::AeTitle;

/// `device ...`
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Register a C-MOVE destination for a facility's users.
    Add {
        /// Facility name.
        facility: String,
        /// The destination's AE title (1 to 16 printable ASCII characters, no
        /// backslash).
        ae_title: String,
        /// Where the gateway calls it: HOST:PORT (IPv6 as [ADDR]:PORT).
        address: String,
        /// Call it over DICOM TLS (its certificate must be issued by the gateway's CA).
        #[arg(long)]
        tls: bool,
    },
    /// Remove a facility's C-MOVE destination.
    Remove {
        /// Facility name.
        facility: String,
        /// The destination's AE title.
        ae_title: String,
    },
    /// List C-MOVE destinations.
    List {
        /// Only this facility's destinations.
        #[arg(long)]
        facility: Option<String>,
    },
}

/// Runs a `device` command.
pub(super) async fn run(config: crate::config::Config, cmd: DeviceCommand) -> anyhow::Result<()> {
    let index = crate::app::open_index(&config).await?;
    match cmd {
        DeviceCommand::Add {
            facility,
            ae_title,
            address,
            tls,
        } => {
            let ae = parse_ae(&ae_title)?;
            let (host, port) = parse_address(&address)?;
            let facility = lookup(&index, &facility).await?;
            if index.find_destination(facility.id, &ae).await?.is_some() {
                bail!(
                    "facility {} already has a destination {ae}; remove it first with \
                     `pacs-gateway device remove {} {ae}`",
                    facility.name,
                    facility.name
                );
            }
            let d = index
                .add_destination(facility.id, &ae, &host, port, tls)
                .await?;
            println!(
                "destination {} added for facility {}: {} ({})",
                d.ae_title,
                d.facility_name,
                d.address(),
                if d.tls { "DICOM TLS" } else { "plain" }
            );
        }
        DeviceCommand::Remove { facility, ae_title } => {
            let ae = parse_ae(&ae_title)?;
            let facility = lookup(&index, &facility).await?;
            if !index.remove_destination(facility.id, &ae).await? {
                bail!(
                    "facility {} has no destination {ae}; list them with \
                     `pacs-gateway device list --facility {}`",
                    facility.name,
                    facility.name
                );
            }
            println!("destination {ae} of facility {} removed", facility.name);
        }
        DeviceCommand::List { facility } => {
            let facility = match facility {
                Some(name) => Some(lookup(&index, &name).await?.id),
                None => None,
            };
            print_destinations(&index.list_destinations(facility).await?);
        }
    }
    index.close().await;
    Ok(())
}

fn parse_ae(ae: &str) -> anyhow::Result<AeTitle> {
    AeTitle::parse(ae).map_err(anyhow::Error::msg)
}

/// Splits and checks `HOST:PORT` (or `[IPV6]:PORT`).
fn parse_address(address: &str) -> anyhow::Result<(String, u16)> {
    let bad = |why: &str| {
        anyhow::anyhow!(
            "invalid destination address {address:?}: {why}; use HOST:PORT, e.g. \
             workstation.example.org:104 or [::1]:11112"
        )
    };
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (v6, port) = rest.split_once("]:").ok_or_else(|| bad("no port"))?;
        v6.parse::<std::net::Ipv6Addr>()
            .map_err(|_| bad("not an IPv6 address in brackets"))?;
        (v6, port)
    } else {
        let (host, port) = address.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        if host.contains(':') {
            return Err(bad("IPv6 addresses go in brackets"));
        }
        let name_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .split('.')
                .all(|label| !label.is_empty() && label.len() <= 63)
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if !name_ok && host.parse::<IpAddr>().is_err() {
            return Err(bad("not a host name or IP address"));
        }
        (host, port)
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?;
    Ok((host.to_string(), port))
}

fn print_destinations(destinations: &[Destination]) {
    println!(
        "{:<24} {:<16} {:<40} transport",
        "facility", "ae_title", "address"
    );
    for d in destinations {
        println!(
            "{:<24} {:<16} {:<40} {}",
            d.facility_name.as_str(),
            d.ae_title.as_str(),
            d.address(),
            if d.tls { "tls" } else { "plain" }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked() {
        assert_eq!(
            parse_address("ws1.example.org:104").unwrap(),
            ("ws1.example.org".into(), 104)
        );
        assert_eq!(
            parse_address("10.0.0.7:11112").unwrap(),
            ("10.0.0.7".into(), 11112)
        );
        assert_eq!(parse_address("[::1]:4242").unwrap(), ("::1".into(), 4242));
        for bad in [
            "",
            "host",
            "host:",
            ":104",
            "host:0",
            "host:65536",
            "host:port",
            "::1:104",
            "[nothost]:104",
            "a b:104",
            "host..x:104",
        ] {
            assert!(parse_address(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
