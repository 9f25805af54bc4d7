//! The connection to the gateway as the configuration describes it: TLS settings with
//! the facility certificate, the check that the certificate names the configured
//! facility, the Q/R association a clinician's login opens (`connect`), and the HTTPS
//! client towards the gateway's API and DICOMweb (`https`). Shared by the intake
//! side (the forwarder's C-STORE associations) and the clinician side (query,
//! retrieve, the viewer and DICOMweb proxies, thumbnail sync).

use dimse::assoc::RoleSelection;
use dimse::scu::{ClientTls, Proposal, ScuAssociation};

use crate::config::Config;
use crate::credentials::Login;

/// Builds the TLS settings towards the gateway from the config.
pub fn tls(config: &Config) -> anyhow::Result<ClientTls> {
    let g = &config.gateway;
    let (Some(cert), Some(key), Some(ca)) = (&g.cert, &g.key, &g.ca) else {
        anyhow::bail!(
            "gateway.cert, gateway.key and gateway.ca must be set (the files from `pacs-gateway facility issue-cert`)"
        );
    };
    let hint = |e: dimse::tls::TlsError| {
        anyhow::anyhow!("{e}; check `cert`, `key` and `ca` in the [gateway] section of the config")
    };
    crate::at_rest::check_private_key(key, g.key_permissions)
        .map_err(|e| crate::config::ConfigError::Invalid(e.to_string()))?;
    let chain = dimse::tls::load_certs_file(cert).map_err(hint)?;
    let key = dimse::tls::load_private_key_file(key).map_err(hint)?;
    let roots = dimse::tls::load_certs_file(ca).map_err(hint)?;
    let config_tls = dimse::tls::client_config(roots, Some((chain, key))).map_err(hint)?;
    let server_name =
        rustls::pki_types::ServerName::try_from(g.server_name.clone()).map_err(|_| {
            anyhow::anyhow!(
                "gateway.server_name {:?} is not a valid host name",
                g.server_name
            )
        })?;
    Ok(ClientTls {
        config: config_tls,
        server_name,
    })
}

/// Refuses a configuration whose `facility` differs from the facility named in the
/// client certificate (its Common Name, as `pacs-gateway facility issue-cert` writes
/// it): everything would be sealed for a facility the gateway does not file it under,
/// and the facility's users could not read the names.
pub fn check_certificate_facility(config: &Config) -> anyhow::Result<()> {
    let Some(cert) = &config.gateway.cert else {
        return Ok(());
    };
    let facility = config.facility()?;
    let chain = dimse::tls::load_certs_file(cert)?;
    let Some(leaf) = chain.first() else {
        anyhow::bail!("{}: no certificate in the file", cert.display());
    };
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| anyhow::anyhow!("{}: not a readable certificate: {e}", cert.display()))?;
    let names: Vec<String> = parsed
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_string))
        .collect();
    if names.iter().any(|cn| cn == facility) {
        return Ok(());
    }
    anyhow::bail!(
        "the configured facility {facility:?} does not match the client certificate {} (issued for {}); \
         set `facility` to the name the certificate was issued for, or use that facility's certificate",
        cert.display(),
        match names.as_slice() {
            [] => "no facility name".to_string(),
            names => names
                .iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", "),
        }
    )
}

/// Opens a Q/R association to the gateway with the facility certificate and `login`.
pub(crate) async fn connect(
    config: &Config,
    login: &Login,
    proposals: &[Proposal],
    roles: Vec<RoleSelection>,
) -> anyhow::Result<ScuAssociation> {
    let g = &config.gateway;
    let mut options = dimse::scu::ScuOptions::new(g.calling_ae.clone(), g.ae_title.clone());
    options.tls = Some(tls(config)?);
    options.credentials = Some(login.credentials());
    options.roles = roles;
    ScuAssociation::connect(&g.address, &options, proposals)
        .await
        .map_err(|e| match e {
            dimse::DimseError::Rejected(_) => anyhow::anyhow!(
                "the gateway refused the login of {} (wrong user name or password, disabled or locked account)",
                login.username
            ),
            other => anyhow::Error::new(other).context(format!("cannot reach the gateway at {}", g.address)),
        })
}

/// The HTTPS client towards the gateway's admin API and DICOMweb (`[gateway]
/// admin_url`), trusting only `[gateway] ca`.
pub fn https(config: &Config) -> anyhow::Result<reqwest::Client> {
    use anyhow::Context;
    let ca = config
        .gateway
        .ca
        .as_ref()
        .context("`[gateway] ca` is not set")?;
    let pem = std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?;
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .https_only(true)
        .connect_timeout(std::time::Duration::from_secs(10))
        .user_agent(concat!("pacs-client/", env!("CARGO_PKG_VERSION")));
    for root in reqwest::Certificate::from_pem_bundle(&pem)? {
        builder = builder.add_root_certificate(root);
    }
    Ok(builder.build()?)
}
