//! What `serve` says when it starts: one banner line (version and commit, config file,
//! data directory, outbox database, key file, gateway and its certificate files,
//! edge listener) and a warning for each setting that can never work.

use std::path::Path;

use tracing::{info, warn};

use crate::config::Config;
use crate::telemetry::{COMMIT, VERSION};

/// Logs the start banner and the warnings.
pub fn banner(config: &Config, config_file: Option<&Path>) {
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let shown = |p: &Option<std::path::PathBuf>| {
        p.as_ref()
            .map_or_else(|| "not set".to_string(), |p| p.display().to_string())
    };
    let g = &config.gateway;
    info!(
        version = VERSION,
        commit = COMMIT,
        config = %config_file.map_or_else(|| "none (defaults)".into(), |p| absolute(p).display().to_string()),
        data_dir = %absolute(&config.data_dir).display(),
        database = "sqlite",
        database_file = %absolute(&config.data_dir.join("client.db")).display(),
        key_file = %config.key_file().display(),
        facility = %config.facility.trim(),
        edge = %config.edge.listen,
        edge_ae = %config.edge.ae_title,
        gateway = %g.address,
        gateway_cert = %shown(&g.cert),
        gateway_key = %shown(&g.key),
        gateway_ca = %shown(&g.ca),
        "pacs-client starting"
    );
    for warning in warnings(config) {
        warn!("{warning}");
    }
}

/// Settings that parse but can never work.
pub fn warnings(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if config.edge.modalities.is_empty() {
        out.push(
            "no [[edge.modalities]] in the config: every modality will be refused; add one with `pacs-client modality add AE_TITLE`".to_string(),
        );
    }
    for viewer in &config.edge.viewers {
        let file = config.credentials.file.as_deref();
        if let Err(e) = crate::credentials::for_viewer(&viewer.ae_title, &viewer.user, file) {
            out.push(format!("[[edge.viewers]] {}: {e}", viewer.ae_title));
        }
    }
    let tls = [
        &config.edge.tls_cert,
        &config.edge.tls_key,
        &config.edge.tls_ca,
    ];
    let set = tls.iter().filter(|p| p.is_some()).count();
    if set != 0 && set != 3 {
        out.push(
            "[edge] tls_cert, tls_key and tls_ca go together: set all three, or none for plain DICOM".into(),
        );
    }
    if config.web.as_ref().is_some_and(|w| w.tls)
        && (config.edge.tls_cert.is_none() || config.edge.tls_key.is_none())
    {
        out.push(
            "[web] tls = true serves the edge certificate: set [edge] tls_cert and tls_key (with tls_ca)".into(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_can_never_work_is_named() {
        let config: Config = toml::from_str(
            "facility = \"f\"\n[[edge.viewers]]\nae_title = \"V1\"\nuser = \"nobody-has-this\"\n",
        )
        .unwrap();
        let w = warnings(&config);
        assert!(w.iter().any(|w| w.contains("[[edge.modalities]]")), "{w:?}");
        if std::env::var_os(crate::credentials::PASSWORD_ENV).is_none() {
            assert!(w.iter().any(|w| w.contains("V1")), "{w:?}");
        }
        let fine: Config =
            toml::from_str("facility = \"f\"\n[[edge.modalities]]\nae_title = \"CT\"\n").unwrap();
        assert!(warnings(&fine).is_empty());
        let https_without_certificate: Config = toml::from_str(
            "facility = \"f\"\n[[edge.modalities]]\nae_title = \"CT\"\n[web]\ntls = true\n",
        )
        .unwrap();
        let w = warnings(&https_without_certificate);
        assert!(w.iter().any(|w| w.contains("[web] tls")), "{w:?}");
    }
}
