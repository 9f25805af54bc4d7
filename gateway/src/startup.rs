//! What `serve` says when it starts: one banner line (version and commit, config file,
//! data directory, database kind and location with the password redacted, certificate
//! files, listeners) and a warning for each setting that can never work.

use std::path::Path;

use tracing::{info, warn};

use crate::config::Config;
use crate::db::Index;
use crate::domain::FacilityName;
use crate::telemetry::{COMMIT, VERSION, redact_url};

/// Logs the start banner.
pub fn banner(config: &Config, config_file: Option<&Path>) {
    let url = config.database_url();
    let kind = if url.starts_with("postgres") {
        "postgresql"
    } else {
        "sqlite"
    };
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let tls = &config.tls;
    let certs = match (&tls.cert, &tls.key, &tls.ca_cert) {
        (Some(cert), Some(key), Some(ca)) => format!(
            "cert={} key={} ca={}{}",
            cert.display(),
            key.display(),
            ca.display(),
            tls.ca_key
                .as_ref()
                .map(|k| format!(" ca_key={}", k.display()))
                .unwrap_or_default()
        ),
        _ => format!(
            "development CA and server certificate in {}",
            absolute(&config.data_dir.join("certs")).display()
        ),
    };
    let off = |addr: &str| {
        if addr.is_empty() {
            "off".to_string()
        } else {
            addr.to_string()
        }
    };
    let https = match config.https.enabled {
        true => off(&config.https.listen),
        false => "off".into(),
    };
    info!(
        version = VERSION,
        commit = COMMIT,
        config = %config_file.map_or_else(|| "none (defaults)".into(), |p| absolute(p).display().to_string()),
        data_dir = %absolute(&config.data_dir).display(),
        database = kind,
        database_url = %redact_url(&url),
        certificates = %certs,
        dicom_tls = %off(&config.dicom.tls_listen),
        dicom_plain = %off(&config.dicom.plain_listen),
        https = %https,
        metrics = %off(&config.metrics.listen),
        "pacs-gateway starting"
    );
}

/// Warns about settings that parse but can never work, once the index is open.
pub async fn warn_unusable(config: &Config, index: &Index) {
    let d = &config.dicom;
    if !d.plain_ae.is_empty() && d.plain_listen.is_empty() {
        warn!(
            "[dicom.plain_ae] lists calling AE titles but dicom.plain_listen is off: they can never connect"
        );
    }
    for (ae, facility) in &d.plain_ae {
        let known = match FacilityName::parse(facility) {
            Ok(name) => index.facility_by_name(&name).await.ok().flatten().is_some(),
            Err(_) => false,
        };
        if !known {
            warn!(
                calling_ae = %ae.trim(),
                facility = %facility,
                "[dicom.plain_ae] names a facility that does not exist: associations from this AE title will be refused; add it with `pacs-gateway facility add {facility}` or fix the name"
            );
        }
    }
}
