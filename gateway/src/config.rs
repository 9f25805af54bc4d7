//! The gateway's TOML configuration. Every key is optional; `schemas/gateway.toml`
//! documents each one with its default. Unknown keys are refused so that a typo does
//! not silently fall back to a default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::auth::AuthSettings;

mod rendering;
pub use rendering::{FacilityRendering, RenderingConfig, ThumbnailFormat, ThumbnailsConfig};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where blobs, the SQLite index, temp files and dev certificates live.
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; default: SQLite file `index.db` in `data_dir`.
    pub database_url: Option<String>,
    /// DICOM listeners.
    pub dicom: DicomConfig,
    /// HTTPS listener: the admin API and `/healthz` (and `/metrics` with a token).
    pub https: HttpsConfig,
    /// The Prometheus endpoint.
    pub metrics: MetricsConfig,
    /// Certificates; when absent, a dev CA is created in `data_dir/certs`.
    pub tls: TlsConfig,
    /// The ingest path.
    pub ingest: IngestConfig,
    /// Password hashing and login lockout.
    pub auth: AuthSettings,
    /// The audit trail and its syslog export.
    pub audit: AuditConfig,
    /// Burned-in risk classes of server-side rendering.
    pub rendering: RenderingConfig,
    /// Background thumbnails.
    pub thumbnails: ThumbnailsConfig,
    /// The lifecycle job (retention policies: notices, hiding, purging).
    pub lifecycle: LifecycleConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./pacs-data"),
            database_url: None,
            dicom: DicomConfig::default(),
            https: HttpsConfig::default(),
            metrics: MetricsConfig::default(),
            tls: TlsConfig::default(),
            ingest: IngestConfig::default(),
            auth: AuthSettings::default(),
            audit: AuditConfig::default(),
            rendering: RenderingConfig::default(),
            thumbnails: ThumbnailsConfig::default(),
            lifecycle: LifecycleConfig::default(),
        }
    }
}

/// `[dicom]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DicomConfig {
    /// Our AE title; requests calling another title are rejected.
    pub ae_title: String,
    /// DICOM TLS listener; empty string disables it.
    pub tls_listen: String,
    /// Plain DICOM listener (keep it on loopback); empty string disables it.
    pub plain_listen: String,
    /// Calling AE title -> facility name, for the plain port only.
    pub plain_ae: BTreeMap<String, String>,
    /// Largest PDU accepted, in bytes.
    pub max_pdu: u32,
    /// Associations served at once.
    pub max_associations: usize,
    /// Seconds allowed for the TLS handshake and association request.
    pub handshake_timeout_secs: u64,
    /// Seconds allowed between PDUs.
    pub read_timeout_secs: u64,
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

impl DicomConfig {
    /// The admission bounds of both DICOM listeners.
    pub fn admission(&self) -> dimse::admission::AdmissionOptions {
        dimse::admission::AdmissionOptions {
            max_pending: self.max_pending,
            max_pending_per_address: self.max_pending_per_address,
            first_byte_timeout: std::time::Duration::from_secs(self.first_byte_timeout_secs),
            log_interval: std::time::Duration::from_secs(self.refusal_log_interval_secs),
            preferred: Default::default(),
        }
    }
}

impl Default for DicomConfig {
    fn default() -> Self {
        DicomConfig {
            ae_title: "PACS_GATEWAY".into(),
            tls_listen: "0.0.0.0:2762".into(),
            plain_listen: "127.0.0.1:11113".into(),
            plain_ae: BTreeMap::new(),
            max_pdu: 256 * 1024,
            max_associations: 64,
            handshake_timeout_secs: 10,
            read_timeout_secs: 60,
            max_pending: 1024,
            max_pending_per_address: 32,
            first_byte_timeout_secs: 5,
            refusal_log_interval_secs: 10,
        }
    }
}

/// `[https]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpsConfig {
    /// Whether the HTTPS listener runs at all.
    pub enabled: bool,
    /// Address the HTTPS listener binds.
    pub listen: String,
    /// Lifetime of an admin API bearer token, in seconds.
    pub token_ttl_secs: u64,
    /// Largest request body accepted, in bytes (larger: 413).
    pub max_body_bytes: usize,
    /// Seconds allowed for the TLS handshake and for the request headers.
    pub handshake_timeout_secs: u64,
    /// Connections held at once, all addresses together; when full, an older
    /// connection of the busiest address is closed for a newcomer.
    pub max_connections: usize,
    /// Connections held at once from one IPv4 address or IPv6 /64.
    pub max_connections_per_address: usize,
    /// Seconds a new connection has to send its first byte.
    pub first_byte_timeout_secs: u64,
    /// Longest wait, in seconds, for the next piece of a request body; also the
    /// grace period before `min_body_bytes_per_sec` applies.
    pub body_timeout_secs: u64,
    /// Bytes per second a request body must average after the grace period.
    pub min_body_bytes_per_sec: u64,
    /// Seconds between the summary lines of refused and shed connections.
    pub refusal_log_interval_secs: u64,
}

impl HttpsConfig {
    /// The listener's bounds and timeouts.
    pub fn limits(&self) -> crate::http::server::HttpsLimits {
        use std::time::Duration;
        crate::http::server::HttpsLimits {
            handshake_timeout: Duration::from_secs(self.handshake_timeout_secs),
            first_byte_timeout: Duration::from_secs(self.first_byte_timeout_secs),
            max_connections: self.max_connections,
            max_connections_per_address: self.max_connections_per_address,
            body: crate::http::limits::BodyPace {
                idle_timeout: Duration::from_secs(self.body_timeout_secs),
                min_bytes_per_sec: self.min_body_bytes_per_sec,
            },
            log_interval: Duration::from_secs(self.refusal_log_interval_secs),
        }
    }
}

impl Default for HttpsConfig {
    fn default() -> Self {
        HttpsConfig {
            enabled: true,
            listen: "0.0.0.0:8443".into(),
            token_ttl_secs: 3600,
            max_body_bytes: 64 * 1024,
            handshake_timeout_secs: 10,
            max_connections: 256,
            max_connections_per_address: 32,
            first_byte_timeout_secs: 5,
            body_timeout_secs: 10,
            min_body_bytes_per_sec: 512,
            refusal_log_interval_secs: 10,
        }
    }
}

/// `[metrics]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Plain-HTTP listener serving `/metrics` and `/healthz` only (keep it on
    /// loopback or a management network); empty string disables it.
    pub listen: String,
    /// A file holding a bearer token; when set, `/metrics` is also served on the
    /// HTTPS port to requests with `Authorization: Bearer <token>`. Without it the
    /// HTTPS port does not serve `/metrics` at all.
    pub bearer_token_file: Option<PathBuf>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: "127.0.0.1:9464".into(),
            bearer_token_file: None,
        }
    }
}

/// `[tls]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Server certificate chain (PEM).
    pub cert: Option<PathBuf>,
    /// Server private key (PEM).
    pub key: Option<PathBuf>,
    /// CA certificate that issues facility client certificates (PEM).
    pub ca_cert: Option<PathBuf>,
    /// That CA's private key, needed only by `facility issue-cert`.
    pub ca_key: Option<PathBuf>,
    /// Extra host names / addresses for the generated dev server certificate.
    pub dev_hostnames: Vec<String>,
    /// A private key readable by group or others: refuse to start, or only warn.
    pub key_permissions: KeyPermissions,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: None,
            key: None,
            ca_cert: None,
            ca_key: None,
            dev_hostnames: Vec::new(),
            key_permissions: KeyPermissions::Refuse,
        }
    }
}

/// What to do when an instance arrives again with different bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DuplicatePolicy {
    /// Refuse the new copy with a failure status (default).
    Reject,
    /// Keep the stored copy, answer success.
    KeepFirst,
    /// Store the new copy in place of the old one.
    Replace,
}

/// `[ingest]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Same SOP Instance UID, different bytes: `reject`, `keep-first` or `replace`.
    pub duplicate_policy: DuplicatePolicy,
    /// Seconds between two blob sweeps (the first runs at start).
    pub sweep_interval_secs: u64,
    /// A blob without an index row is deleted by the sweep only when older than this.
    pub orphan_min_age_secs: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            duplicate_policy: DuplicatePolicy::Reject,
            sweep_interval_secs: 3600,
            orphan_min_age_secs: 900,
        }
    }
}

/// What to do at start about a private key file that group or others may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyPermissions {
    /// Refuse to start (default).
    Refuse,
    /// Start, with a warning per file.
    Warn,
}

/// `[audit]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Events waiting for the database writer; when full, the recording request waits.
    pub queue: usize,
    /// Export to a syslog collector; none when the table is absent.
    pub syslog: Option<SyslogConfig>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            queue: 4096,
            syslog: None,
        }
    }
}

/// How syslog messages travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogTransport {
    /// RFC 5425: octet-counted frames over TLS 1.2 or later.
    Tls,
    /// RFC 6587: octet-counted frames over plain TCP.
    Tcp,
    /// RFC 5426: one message per datagram.
    Udp,
}

/// `[audit.syslog]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// Collector as `host:port` (IPv6 as `[addr]:port`).
    pub address: String,
    /// `tls` (default), `tcp` or `udp`.
    #[serde(default = "default_transport")]
    pub transport: SyslogTransport,
    /// CA certificate(s) that verify the collector (PEM); required for `tls`.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain presented to the collector (PEM), optional.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// Key of `client_cert` (PEM).
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// APP-NAME of the messages.
    #[serde(default = "default_app_name")]
    pub app_name: String,
    /// HOSTNAME of the messages; default: this machine's host name.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Syslog facility code, 0 to 23 (default 10, security/authorization).
    #[serde(default = "default_syslog_facility")]
    pub facility: u8,
    /// Messages held while the collector is slow or away; beyond that they are
    /// dropped (and counted), never waited for.
    #[serde(default = "default_syslog_buffer")]
    pub buffer: usize,
}

fn default_transport() -> SyslogTransport {
    SyslogTransport::Tls
}

fn default_app_name() -> String {
    "pacs-gateway".into()
}

fn default_syslog_facility() -> u8 {
    10
}

fn default_syslog_buffer() -> usize {
    1024
}

impl AuditConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.into()));
        if self.queue == 0 {
            return invalid("audit.queue must be at least 1");
        }
        let Some(s) = &self.syslog else {
            return Ok(());
        };
        let port_ok = s
            .address
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p != 0));
        if !port_ok {
            return invalid("audit.syslog.address must be HOST:PORT");
        }
        if s.facility > 23 {
            return invalid("audit.syslog.facility must be 0 to 23");
        }
        if s.buffer == 0 {
            return invalid("audit.syslog.buffer must be at least 1");
        }
        if s.transport == SyslogTransport::Tls && s.ca_file.is_none() {
            return invalid("audit.syslog.ca_file is required with transport = \"tls\"");
        }
        if s.client_cert.is_some() != s.client_key.is_some() {
            return invalid("audit.syslog.client_cert and client_key go together");
        }
        Ok(())
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
    /// The file is not valid.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        message: String,
    },
    /// A value that is valid TOML but makes no sense.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads `path`, or returns the defaults when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let config = match path {
            None => Config::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.into(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.into(),
                    message: e.to_string(),
                })?
            }
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but cannot work (also after command-line overrides).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let ae = self.dicom.ae_title.trim();
        if ae.is_empty() || ae.len() > 16 || !ae.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        {
            return Err(ConfigError::Invalid(format!(
                "dicom.ae_title {ae:?} must be 1 to 16 printable ASCII characters"
            )));
        }
        if self.dicom.max_associations == 0 {
            return Err(ConfigError::Invalid(
                "dicom.max_associations must be at least 1".into(),
            ));
        }
        let d = &self.dicom;
        if !(1..=65536).contains(&d.max_pending)
            || !(1..=65536).contains(&d.max_pending_per_address)
        {
            return Err(ConfigError::Invalid(
                "dicom.max_pending and dicom.max_pending_per_address must be between 1 and 65536"
                    .into(),
            ));
        }
        if !(1..=300).contains(&d.first_byte_timeout_secs)
            || !(1..=3600).contains(&d.refusal_log_interval_secs)
        {
            return Err(ConfigError::Invalid(
                "dicom.first_byte_timeout_secs must be between 1 and 300, and dicom.refusal_log_interval_secs between 1 and 3600".into(),
            ));
        }
        if !(4096..=16 * 1024 * 1024).contains(&self.dicom.max_pdu) {
            return Err(ConfigError::Invalid(
                "dicom.max_pdu must be between 4096 and 16777216".into(),
            ));
        }
        self.auth.validate().map_err(ConfigError::Invalid)?;
        self.audit.validate()?;
        rendering::validate(&self.rendering, &self.thumbnails)?;
        let https = &self.https;
        if !(1..=7 * 86400).contains(&https.token_ttl_secs) {
            return Err(ConfigError::Invalid(
                "https.token_ttl_secs must be between 1 and 604800 (a week)".into(),
            ));
        }
        if !(1024..=16 * 1024 * 1024).contains(&https.max_body_bytes) {
            return Err(ConfigError::Invalid(
                "https.max_body_bytes must be between 1024 and 16777216".into(),
            ));
        }
        if !(1..=300).contains(&https.handshake_timeout_secs) {
            return Err(ConfigError::Invalid(
                "https.handshake_timeout_secs must be between 1 and 300".into(),
            ));
        }
        if !(1..=65536).contains(&https.max_connections_per_address)
            || !(1..=300).contains(&https.first_byte_timeout_secs)
            || !(1..=300).contains(&https.body_timeout_secs)
            || !(1..=1024 * 1024 * 1024).contains(&https.min_body_bytes_per_sec)
            || !(1..=3600).contains(&https.refusal_log_interval_secs)
        {
            return Err(ConfigError::Invalid(
                "https: max_connections_per_address must be 1 to 65536, first_byte_timeout_secs and body_timeout_secs 1 to 300, min_body_bytes_per_sec 1 to 1073741824, refusal_log_interval_secs 1 to 3600".into(),
            ));
        }
        if !(1..=65536).contains(&https.max_connections) {
            return Err(ConfigError::Invalid(
                "https.max_connections must be between 1 and 65536".into(),
            ));
        }
        let ingest = &self.ingest;
        if !(1..=7 * 86400).contains(&ingest.sweep_interval_secs) {
            return Err(ConfigError::Invalid(
                "ingest.sweep_interval_secs must be between 1 and 604800 (a week)".into(),
            ));
        }
        if !(1..=30 * 86400).contains(&ingest.orphan_min_age_secs) {
            return Err(ConfigError::Invalid(
                "ingest.orphan_min_age_secs must be between 1 and 2592000 (30 days)".into(),
            ));
        }
        let tls = &self.tls;
        if tls.cert.is_some() != tls.key.is_some() || (tls.cert.is_some() && tls.ca_cert.is_none())
        {
            return Err(ConfigError::Invalid(
                "tls.cert, tls.key and tls.ca_cert go together: set all three, or none for dev certificates"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("index.db").display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_matches_defaults() {
        let text = include_str!("../../schemas/gateway.toml");
        let parsed: Config = toml::from_str(text).expect("schemas/gateway.toml must parse");
        parsed.validate().unwrap();
        let defaults = Config::default();
        assert_eq!(parsed.data_dir, defaults.data_dir);
        assert_eq!(parsed.dicom.tls_listen, defaults.dicom.tls_listen);
        assert_eq!(parsed.dicom.plain_listen, defaults.dicom.plain_listen);
        assert_eq!(parsed.dicom.max_pdu, defaults.dicom.max_pdu);
        assert_eq!(parsed.ingest.duplicate_policy, DuplicatePolicy::Reject);
        assert_eq!(
            parsed.ingest.sweep_interval_secs,
            defaults.ingest.sweep_interval_secs
        );
        assert_eq!(
            parsed.ingest.orphan_min_age_secs,
            defaults.ingest.orphan_min_age_secs
        );
        assert_eq!(parsed.tls.key_permissions, KeyPermissions::Refuse);
        assert_eq!(parsed.auth, defaults.auth);
        assert_eq!(parsed.audit.queue, defaults.audit.queue);
        assert!(parsed.audit.syslog.is_none());
        assert!(parsed.https.enabled);
        assert_eq!(parsed.https.listen, defaults.https.listen);
        assert_eq!(parsed.https.token_ttl_secs, 3600);
        assert_eq!(parsed.https.max_body_bytes, 65536);
        assert_eq!(
            parsed.https.handshake_timeout_secs,
            defaults.https.handshake_timeout_secs
        );
    }

    #[test]
    fn typos_and_nonsense_are_refused() {
        assert!(toml::from_str::<Config>("[dicom]\nae_tittle = \"X\"").is_err());
        let cfg: Config = toml::from_str("[dicom]\nae_title = \"WAY_TOO_LONG_AE_TITLE\"").unwrap();
        assert!(cfg.validate().is_err());
        let cfg: Config = toml::from_str("[tls]\ncert = \"a.pem\"").unwrap();
        assert!(cfg.validate().is_err());
        assert!(toml::from_str::<Config>("[auth]\nargon2_m = 1").is_err());
        let cfg: Config = toml::from_str("[ingest]\norphan_min_age_secs = 0").unwrap();
        assert!(cfg.validate().is_err());
        assert!(toml::from_str::<Config>("[tls]\nkey_permissions = \"ignore\"").is_err());
        let cfg: Config = toml::from_str("[https]\ntoken_ttl_secs = 0").unwrap();
        assert!(cfg.validate().is_err());
        for nonsense in [
            "[dicom]\nmax_pending_per_address = 0",
            "[dicom]\nmax_pending = 0",
            "[dicom]\nfirst_byte_timeout_secs = 0",
            "[https]\nmin_body_bytes_per_sec = 0",
            "[https]\nmax_connections_per_address = 0",
        ] {
            let cfg: Config = toml::from_str(nonsense).unwrap();
            assert!(cfg.validate().is_err(), "{nonsense}");
        }
        let cfg: Config = toml::from_str("[auth]\nargon2_m_kib = 4096").unwrap();
        assert!(cfg.validate().is_err(), "below the OWASP minimum");
        let cfg: Config = toml::from_str("[audit.syslog]\naddress = \"log:6514\"").unwrap();
        assert!(cfg.validate().is_err(), "tls without a CA file");
        let cfg: Config =
            toml::from_str("[audit.syslog]\naddress = \"log:514\"\ntransport = \"udp\"").unwrap();
        cfg.validate().unwrap();
        assert!(
            toml::from_str::<Config>(
                "[audit.syslog]\naddress = \"log:514\"\ntransport = \"smoke\""
            )
            .is_err()
        );
    }
}

/// `[lifecycle]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LifecycleConfig {
    /// Whether `serve` runs the lifecycle job (policies are kept either way).
    pub enabled: bool,
    /// Seconds between two runs.
    pub interval_secs: u64,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            enabled: true,
            interval_secs: 3600,
        }
    }
}
