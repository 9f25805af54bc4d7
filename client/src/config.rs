//! The facility client's TOML configuration. Every key has a default except the
//! facility name and the gateway certificate files, which enrollment provides;
//! `schemas/client.toml` documents each key. Unknown keys are refused.

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub mod pixels;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Spool, local store, outbox database and key file live here.
    pub data_dir: PathBuf,
    /// The facility's name as enrolled at the gateway; bound into every sealed identity.
    pub facility: String,
    /// The facility key file; default `<data_dir>/facility.key`.
    pub key_file: Option<PathBuf>,
    /// The edge SCP modalities store to.
    pub edge: EdgeConfig,
    /// The central gateway.
    pub gateway: GatewayConfig,
    /// Delivery to the gateway.
    pub forwarder: ForwarderConfig,
    /// De-identification options (PS3.15 Annex E).
    pub deidentification: DeidConfig,
    /// What stays local.
    pub sharing: SharingConfig,
    /// How long the local copies are kept.
    pub retention: RetentionConfig,
    /// Clinician credentials for `query` and `retrieve`.
    pub credentials: CredentialsConfig,
    /// Burned-in text: risky classes, pixel-cleaning rules, OCR.
    pub pixels: pixels::PixelsConfig,
    /// The re-identifying DICOMweb proxy; off when the section is absent.
    pub web: Option<WebConfig>,
    /// `[sync]`: thumbnail sync of `serve`, off when absent.
    pub sync: Option<SyncConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./pacs-client-data"),
            facility: String::new(),
            key_file: None,
            edge: EdgeConfig::default(),
            gateway: GatewayConfig::default(),
            forwarder: ForwarderConfig::default(),
            deidentification: DeidConfig::default(),
            sharing: SharingConfig::default(),
            retention: RetentionConfig::default(),
            credentials: CredentialsConfig::default(),
            pixels: pixels::PixelsConfig::default(),
            web: None,
            sync: None,
        }
    }
}

/// `[edge]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EdgeConfig {
    /// Our AE title as the modalities call it.
    pub ae_title: String,
    /// Listen address (plain DICOM on the facility LAN).
    pub listen: String,
    /// Modalities allowed to store here.
    pub modalities: Vec<Modality>,
    /// Viewers allowed to query and retrieve here (proxied to the gateway).
    pub viewers: Vec<Viewer>,
    /// Largest PDU accepted.
    pub max_pdu: u32,
    /// Seconds allowed between PDUs.
    pub read_timeout_secs: u64,
    /// Optional DICOM TLS on the edge: server certificate, key, and the CA that
    /// modality certificates must chain to (all three, or none for plain DICOM).
    pub tls_cert: Option<PathBuf>,
    /// Edge TLS key.
    pub tls_key: Option<PathBuf>,
    /// CA for modality client certificates.
    pub tls_ca: Option<PathBuf>,
    /// Seconds allowed for the TLS handshake (if any) and the association request.
    pub handshake_timeout_secs: u64,
    /// Connections held before their association is established, all addresses
    /// together; when full, the busiest address's least advanced ones are shed.
    pub max_pending: usize,
    /// Such connections held from one IPv4 address or IPv6 /64.
    pub max_pending_per_address: usize,
    /// Seconds a new connection has to send its first byte.
    pub first_byte_timeout_secs: u64,
    /// Seconds between the summary lines of refused and shed connections.
    pub refusal_log_interval_secs: u64,
}

impl EdgeConfig {
    /// The admission bounds of the edge listener.
    pub fn admission(&self) -> dimse::admission::AdmissionOptions {
        dimse::admission::AdmissionOptions {
            max_pending: self.max_pending,
            max_pending_per_address: self.max_pending_per_address,
            first_byte_timeout: std::time::Duration::from_secs(self.first_byte_timeout_secs),
            log_interval: std::time::Duration::from_secs(self.refusal_log_interval_secs),
            // The configured modalities' and viewers' addresses are shed last.
            preferred: self
                .modalities
                .iter()
                .filter_map(|m| m.host.as_deref())
                .chain(self.viewers.iter().filter_map(|v| v.host.as_deref()))
                .filter_map(|host| host.trim().parse::<std::net::IpAddr>().ok())
                .map(dimse::admission::PeerKey::of)
                .collect(),
        }
    }

    /// Refuses admission bounds that make no sense.
    pub fn check_admission(&self) -> Result<(), ConfigError> {
        let ok = (1..=300).contains(&self.handshake_timeout_secs)
            && (1..=65536).contains(&self.max_pending)
            && (1..=65536).contains(&self.max_pending_per_address)
            && (1..=300).contains(&self.first_byte_timeout_secs)
            && (1..=3600).contains(&self.refusal_log_interval_secs);
        match ok {
            true => Ok(()),
            false => Err(ConfigError::Invalid(
                "[edge]: handshake_timeout_secs and first_byte_timeout_secs must be 1 to 300, \
                 max_pending and max_pending_per_address 1 to 65536, \
                 refusal_log_interval_secs 1 to 3600"
                    .into(),
            )),
        }
    }
}

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig {
            ae_title: "PACS_CLIENT".into(),
            listen: "0.0.0.0:11112".into(),
            modalities: Vec::new(),
            viewers: Vec::new(),
            max_pdu: 256 * 1024,
            read_timeout_secs: 60,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            handshake_timeout_secs: 10,
            max_pending: 1024,
            max_pending_per_address: 32,
            first_byte_timeout_secs: 5,
            refusal_log_interval_secs: 10,
        }
    }
}

/// `[[edge.modalities]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Modality {
    /// Calling AE title of the modality.
    pub ae_title: String,
    /// If set, the modality must also connect from this IP address.
    pub host: Option<String>,
}

/// `[[edge.viewers]]`: a workstation that queries and retrieves through the client.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Viewer {
    /// Calling AE title of the viewer.
    pub ae_title: String,
    /// If set, the viewer must also connect from this IP address.
    pub host: Option<String>,
    /// The gateway user whose credentials the client uses for this viewer; the
    /// password comes from the `[credentials] file` (when it is this user's) or from
    /// `PACS_PASSWORD`.
    pub user: String,
    /// The viewer's own DICOM port, where C-MOVE sends what it asks for (its AE
    /// title is then the move destination); needs `host`. Without it the viewer can
    /// only C-GET.
    #[serde(default)]
    pub port: Option<u16>,
    /// Specific Character Set (0008,0005) the viewer's answers and instances are
    /// written in, for viewers that do not read UTF-8: e.g. `"\\ISO 2022 IR 87"`
    /// (Japanese), `"\\ISO 2022 IR 149"` (Korean), `"ISO_IR 100"`. Default: UTF-8
    /// (`ISO_IR 192`). A data set holding a character that set lacks is sent in
    /// UTF-8 instead (and the log says so, without the character).
    #[serde(default)]
    pub character_set: Option<String>,
}

impl Viewer {
    /// The viewer's character set, when it is not UTF-8.
    pub fn character_set(&self) -> Option<dimse::charset::CharacterSet> {
        let name = self.character_set.as_deref()?;
        dimse::charset::CharacterSet::from_specific_character_set(name)
            .ok()
            .filter(|set| !set.is_utf8())
    }

    /// `host:port` of the viewer as a C-MOVE destination, when it is one.
    pub fn move_address(&self) -> Option<String> {
        match (&self.host, self.port) {
            (Some(host), Some(port)) => Some(format!("{}:{port}", host.trim())),
            _ => None,
        }
    }
}

/// `[gateway]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// host:port of the gateway's DICOM TLS listener.
    pub address: String,
    /// The gateway's AE title.
    pub ae_title: String,
    /// Our AE title towards the gateway.
    pub calling_ae: String,
    /// Name the gateway's certificate must carry.
    pub server_name: String,
    /// Facility client certificate (from `pacs-gateway facility issue-cert`).
    pub cert: Option<PathBuf>,
    /// Its private key.
    pub key: Option<PathBuf>,
    /// The gateway CA.
    pub ca: Option<PathBuf>,
    /// Base URL of the gateway's admin HTTPS API; default `https://<host of address>:8443`.
    pub admin_url: Option<String>,
    /// `key` readable or writable by group or others: refuse to use it, or only warn.
    pub key_permissions: KeyPermissions,
}

/// What to do about a TLS private key file that group or others may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyPermissions {
    /// Refuse (default).
    Refuse,
    /// Use it, with a warning.
    Warn,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            address: "localhost:2762".into(),
            ae_title: "PACS_GATEWAY".into(),
            calling_ae: "PACS_CLIENT".into(),
            server_name: "localhost".into(),
            cert: None,
            key: None,
            ca: None,
            admin_url: None,
            key_permissions: KeyPermissions::Refuse,
        }
    }
}

impl GatewayConfig {
    /// The admin API base URL in effect, without a trailing slash: `admin_url`, or
    /// `https://<host of address>:8443`.
    pub fn admin_url(&self) -> String {
        if let Some(url) = self.admin_url.as_deref().filter(|u| !u.trim().is_empty()) {
            return url.trim().trim_end_matches('/').to_string();
        }
        let host = match self.address.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => self.address.as_str(),
        };
        format!("https://{host}:8443")
    }
}

/// `[forwarder]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForwarderConfig {
    /// Associations to the gateway at once.
    pub associations: usize,
    /// Tries before an instance goes to the dead letters.
    pub max_attempts: u32,
    /// First retry delay, seconds (doubles each try).
    pub backoff_initial_secs: u64,
    /// Longest retry delay, seconds.
    pub backoff_max_secs: u64,
    /// How often the outbox is polled when idle, milliseconds.
    pub poll_interval_ms: u64,
    /// Instances claimed and sent together over one association.
    pub batch: usize,
}

impl Default for ForwarderConfig {
    fn default() -> Self {
        ForwarderConfig {
            associations: 4,
            max_attempts: 10,
            backoff_initial_secs: 2,
            backoff_max_secs: 600,
            poll_interval_ms: 500,
            batch: 16,
        }
    }
}

/// `[deidentification]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeidConfig {
    /// Keep full dates (the gateway indexes by date).
    pub retain_longitudinal_full_dates: bool,
    /// Keep age, sex, size, weight...
    pub retain_patient_characteristics: bool,
    /// Keep device serial numbers and the like.
    pub retain_device_identity: bool,
    /// Clean free-text descriptions instead of removing them.
    pub clean_descriptors: bool,
}

impl Default for DeidConfig {
    fn default() -> Self {
        DeidConfig {
            retain_longitudinal_full_dates: true,
            retain_patient_characteristics: false,
            retain_device_identity: false,
            clean_descriptors: false,
        }
    }
}

impl DeidConfig {
    /// The phi options.
    pub fn options(&self) -> phi::profile::Options {
        phi::profile::Options {
            retain_longitudinal_full_dates: self.retain_longitudinal_full_dates,
            retain_patient_characteristics: self.retain_patient_characteristics,
            retain_device_identity: self.retain_device_identity,
            clean_descriptors: self.clean_descriptors,
            clean_pixel_data: false,
        }
    }
}

/// Where an instance goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Destination {
    /// De-identify and send to the gateway.
    Forward,
    /// Keep in the client's own store only.
    Local,
}

/// `[sharing]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SharingConfig {
    /// When no rule matches.
    pub default: Destination,
    /// Rules, first match wins (a per-study flag overrides them all).
    pub rules: Vec<Rule>,
}

impl Default for SharingConfig {
    fn default() -> Self {
        SharingConfig {
            default: Destination::Forward,
            rules: Vec::new(),
        }
    }
}

/// `[[sharing.rules]]`: every condition given must hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Calling AE title of the sender.
    pub calling_ae: Option<String>,
    /// Modality (CT, MR, ...).
    pub modality: Option<String>,
    /// Study Description pattern, `*` and `?` wildcards, case-insensitive.
    pub study_description: Option<String>,
    /// What to do.
    pub action: Destination,
}

/// `[retention]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days a forwarded instance stays in the local store (local-only ones stay).
    pub local_days: u32,
    /// Seconds between two retention sweeps.
    pub sweep_interval_secs: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            local_days: 30,
            sweep_interval_secs: 600,
        }
    }
}

/// `[credentials]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CredentialsConfig {
    /// TOML file with `username` and `password` (mode 0600) used by `query` and
    /// `retrieve` when no `--user` is given; none means `--user` and a prompt or
    /// `PACS_PASSWORD`.
    pub file: Option<PathBuf>,
}

/// `[web]`: the re-identifying DICOMweb proxy (`/dicom-web`) of `serve`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// `host:port` of its listener; loopback by default, empty for off.
    pub listen: String,
    /// HTTPS with the edge certificate and key (`[edge] tls_cert`, `tls_key`)
    /// instead of plain HTTP.
    pub tls: bool,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: "127.0.0.1:8081".into(),
            tls: false,
        }
    }
}

/// `[sync]`: keeps a folder of this PC holding the gateway's thumbnails of every
/// study this PC does not hold itself (`pacs-client sync`, and `serve` continuously).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncConfig {
    /// The folder; `serve` syncs only when it is set.
    pub out: Option<PathBuf>,
    /// Gateway user the sync logs in as (its password from the `[credentials]` file
    /// when that holds this user, else `PACS_PASSWORD`); none: the credentials file's.
    pub user: Option<String>,
    /// Seconds between two looks at the changes feed while serving.
    pub interval_secs: u64,
    /// Also keep thumbnails of the studies this PC holds itself.
    pub include_local: bool,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            out: None,
            user: None,
            interval_secs: 60,
            include_local: false,
        }
    }
}

impl Config {
    /// The thumbnail sync `serve` runs, if `[sync] out` is set.
    pub fn sync_settings(&self) -> Option<&SyncConfig> {
        self.sync
            .as_ref()
            .filter(|s| s.out.as_ref().is_some_and(|o| !o.as_os_str().is_empty()))
    }

    /// Where the DICOMweb proxy listens, if it is on.
    pub fn web_listen(&self) -> Option<&str> {
        self.web
            .as_ref()
            .map(|w| w.listen.trim())
            .filter(|l| !l.is_empty())
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not valid TOML for this schema.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What, where.
        message: String,
    },
    /// Valid TOML, unusable value.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads `path`, or the defaults when `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses the text of the config file at `path` (named in errors only). The one
    /// parser every reader of the file goes through, so an edit made by
    /// `pacs-client modality|rule` is checked exactly as `serve` will read it.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        })?;
        config.check_viewers()?;
        config.edge.check_admission()?;
        config.pixels.check().map_err(ConfigError::Invalid)?;
        Ok(config)
    }

    /// A viewer with a `port` (a C-MOVE destination) must have a `host` too.
    pub fn check_viewers(&self) -> Result<(), ConfigError> {
        if let Some(v) = self
            .edge
            .viewers
            .iter()
            .find(|v| v.port.is_some() && v.host.is_none())
        {
            return Err(ConfigError::Invalid(format!(
                "[[edge.viewers]] {}: `port` needs `host` (where C-MOVE sends its instances)",
                v.ae_title
            )));
        }
        for v in &self.edge.viewers {
            if let Some(name) = &v.character_set
                && let Err(e) = dimse::charset::CharacterSet::from_specific_character_set(name)
            {
                return Err(ConfigError::Invalid(format!(
                    "[[edge.viewers]] {}: character_set: {e}",
                    v.ae_title
                )));
            }
        }
        Ok(())
    }

    /// The facility name, required for anything that seals or sends.
    pub fn facility(&self) -> Result<&str, ConfigError> {
        let name = self.facility.trim();
        if name.is_empty() {
            return Err(ConfigError::Invalid(
                "`facility` is not set: put the facility name enrolled at the gateway in the config".into(),
            ));
        }
        Ok(name)
    }

    /// The key file in effect.
    pub fn key_file(&self) -> PathBuf {
        self.key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("facility.key"))
    }

    /// The outbox database URL.
    pub fn database_url(&self) -> String {
        format!(
            "sqlite://{}?mode=rwc",
            self.data_dir.join("client.db").display()
        )
    }
}

#[cfg(test)]
mod tests;
