//! The gateway's own certificate authority.
//!
//! Facilities are identified on the DICOM TLS port by a client certificate issued by this
//! CA; the gateway's server certificate comes from it too. This module creates, saves and
//! loads the CA, issues server and client (facility) certificates, computes the SHA-256
//! fingerprints the index stores, and sets up a development PKI in the data directory on
//! first start when no certificate is configured.
//!
//! Private keys are written with mode 0600 from the moment the file exists and are never
//! overwritten. Nothing here logs, formats or returns key material except through
//! [`PrivateKeyPem::expose_secret`]; `Debug` output of keys prints `[redacted]`.
//! TLS configuration itself (cipher suites, verification) lives in [`dimse::tls`].

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData as _, SanType,
    SerialNumber,
};
use rustls::pki_types::CertificateDer;
use sha2::{Digest as _, Sha256};
use time::{Duration, OffsetDateTime};

/// Common name of the CA made by [`ensure_dev_pki`].
pub const DEV_CA_COMMON_NAME: &str = "PACS Gateway Development CA";

const CA_VALIDITY: Duration = Duration::days(3652);
const LEAF_VALIDITY: Duration = Duration::days(730);
/// Back-dating of `notBefore`, so peers with slightly slow clocks accept a fresh cert.
const CLOCK_SKEW: Duration = Duration::hours(1);
const KEY_MODE: u32 = 0o600;
const CERT_MODE: u32 = 0o644;
/// X.520 upper bound for commonName and organizationalUnitName.
const MAX_DN_VALUE_CHARS: usize = 64;

/// Why a PKI operation failed. Messages name the file and say what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// A certificate or key file could not be read.
    #[error("cannot read {}: {source}; check that it exists and is readable by the gateway user", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A certificate or key file could not be written.
    #[error("cannot write {}: {source}; check that the directory exists and is writable", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Writing would replace an existing certificate or key.
    #[error("{} already exists; refusing to overwrite it (move it away first if you really mean to replace it)", path.display())]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// The CA certificate file is not a usable certificate.
    #[error("{} is not a usable CA certificate: {source}; it must be the PEM certificate of the gateway CA", path.display())]
    InvalidCaCert {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: rcgen::Error,
    },
    /// The certificate is not allowed to sign certificates.
    #[error("{} is not a CA certificate (no keyCertSign key usage); configure the gateway CA certificate instead", path.display())]
    NotACa {
        /// The file.
        path: PathBuf,
    },
    /// The CA key file is not a usable private key.
    #[error("{} is not a usable CA private key: {source}; it must be an unencrypted PKCS#8 PEM key", path.display())]
    InvalidKey {
        /// The file.
        path: PathBuf,
        /// The parser's error (never contains key bytes).
        #[source]
        source: rcgen::Error,
    },
    /// The CA key does not belong to the CA certificate.
    #[error("the private key {} does not belong to the CA certificate {}; configure the matching pair", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// A name to be put into a certificate (or used as a file stem) was rejected.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        /// What the name was for ("host name", "common name", ...).
        what: &'static str,
        /// The rejected value.
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// Only part of a certificate/key pair exists.
    #[error("found {} but not {}; restore the missing file, or move both away to create a new development PKI", present.display(), missing.display())]
    Incomplete {
        /// The file that exists.
        present: PathBuf,
        /// The file that is missing.
        missing: PathBuf,
    },
    /// A server certificate exists but the CA it came from is gone.
    #[error("{} was issued by a CA that no longer exists in {}; move server.crt and server.key away so a new one is issued", path.display(), dir.display())]
    StaleServerCert {
        /// The server certificate.
        path: PathBuf,
        /// The PKI directory.
        dir: PathBuf,
    },
    /// Key generation or signing failed.
    #[error("cannot {what}: {source}")]
    Crypto {
        /// The operation.
        what: &'static str,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },
    /// The system random number generator failed.
    #[error("the system random number generator failed; cannot make a certificate serial number")]
    Random,
}

/// Where [`Ca::save`] put the CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFiles {
    /// `ca.crt`, PEM, mode 0644.
    pub cert: PathBuf,
    /// `ca.key`, PEM PKCS#8, mode 0600.
    pub key: PathBuf,
}

impl CaFiles {
    /// The standard file names `ca.crt` and `ca.key` inside `dir`.
    pub fn in_dir(dir: &Path) -> CaFiles {
        CaFiles {
            cert: dir.join("ca.crt"),
            key: dir.join("ca.key"),
        }
    }
}

/// The gateway CA: its signing key and self-signed certificate.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("fingerprint", &fingerprint(&self.cert_der))
            .field("key", &"[redacted]")
            .finish()
    }
}

impl Ca {
    /// A new ECDSA P-256 CA, valid for 10 years, allowed to sign end-entity certificates
    /// and CRLs only (path length 0).
    pub fn create(common_name: &str) -> Result<Ca, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(common_name, None)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(random_serial()?);
        set_validity(&mut params, CA_VALIDITY);
        let key = generate_key()?;
        let cert = params
            .self_signed(&key)
            .map_err(|source| PkiError::Crypto {
                what: "self-sign the CA certificate",
                source,
            })?;
        Ok(Ca {
            issuer: Issuer::new(params, key),
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
        })
    }

    /// Loads a CA from its PEM certificate and PEM (PKCS#8) private key, checking that the
    /// key belongs to the certificate and that the certificate may sign certificates.
    pub fn load(
        cert_pem_path: impl AsRef<Path>,
        key_pem_path: impl AsRef<Path>,
    ) -> Result<Ca, PkiError> {
        let (cert_path, key_path) = (cert_pem_path.as_ref(), key_pem_path.as_ref());
        let cert_pem = read_to_string(cert_path)?;
        warn_if_key_exposed(key_path);
        let key = KeyPair::from_pem(&read_to_string(key_path)?).map_err(|source| {
            PkiError::InvalidKey {
                path: key_path.to_path_buf(),
                source,
            }
        })?;
        let invalid_cert = |source| PkiError::InvalidCaCert {
            path: cert_path.to_path_buf(),
            source,
        };
        let cert_der = dimse::tls::load_certs(cert_pem.as_bytes())
            .ok()
            .and_then(|certs| certs.into_iter().next())
            .ok_or_else(|| invalid_cert(rcgen::Error::CouldNotParseCertificate))?;
        // The certificate embeds its subject public key info verbatim.
        let spki = key.subject_public_key_info();
        if !cert_der.windows(spki.len()).any(|w| w == spki.as_slice()) {
            return Err(PkiError::KeyMismatch {
                cert: cert_path.to_path_buf(),
                key: key_path.to_path_buf(),
            });
        }
        let issuer = Issuer::from_ca_cert_der(&cert_der, key).map_err(invalid_cert)?;
        let usages = issuer.key_usages();
        if !usages.is_empty() && !usages.contains(&KeyUsagePurpose::KeyCertSign) {
            return Err(PkiError::NotACa {
                path: cert_path.to_path_buf(),
            });
        }
        Ok(Ca {
            issuer,
            cert_pem,
            cert_der,
        })
    }

    /// Writes `ca.crt` (0644) and `ca.key` (0600) into the existing directory `dir`.
    /// Refuses to overwrite either file.
    pub fn save(&self, dir: &Path) -> Result<CaFiles, PkiError> {
        let files = CaFiles::in_dir(dir);
        let key_pem = self.issuer.key().serialize_pem();
        write_pair(
            &files.cert,
            self.cert_pem.as_bytes(),
            &files.key,
            key_pem.as_bytes(),
        )?;
        Ok(files)
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// The CA certificate, DER (for trust stores).
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.cert_der.clone()
    }

    /// A server certificate (EKU serverAuth, 2 years) for `hostnames` plus `localhost` and
    /// `127.0.0.1`. Names that parse as IP addresses become IP SANs, others DNS SANs.
    pub fn issue_server(&self, hostnames: &[String]) -> Result<IssuedCert, PkiError> {
        let names = server_names(hostnames);
        let mut params = leaf_params(ExtendedKeyUsagePurpose::ServerAuth)?;
        params.distinguished_name = distinguished_name(&names[0], None)?;
        params.subject_alt_names = names
            .iter()
            .map(|name| san(name))
            .collect::<Result<_, _>>()?;
        self.issue(params)
    }

    /// A client certificate for a facility (EKU clientAuth, CN = `common_name`, optional
    /// OU, 2 years, fresh random serial).
    pub fn issue_client(
        &self,
        common_name: &str,
        org_unit: Option<&str>,
    ) -> Result<IssuedCert, PkiError> {
        let mut params = leaf_params(ExtendedKeyUsagePurpose::ClientAuth)?;
        params.distinguished_name = distinguished_name(common_name, org_unit)?;
        self.issue(params)
    }

    fn issue(&self, params: CertificateParams) -> Result<IssuedCert, PkiError> {
        let key = generate_key()?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|source| PkiError::Crypto {
                what: "sign the certificate",
                source,
            })?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: PrivateKeyPem(key.serialize_pem()),
            der: cert.der().clone(),
        })
    }
}

/// A PEM private key. `Debug` prints `[redacted]`; there is no `Display`.
#[derive(Clone)]
pub struct PrivateKeyPem(String);

impl PrivateKeyPem {
    /// The PEM text. Write it to a 0600 file or hand it to a TLS config; never log it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PrivateKeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A certificate issued by the [`Ca`], with its new private key.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM PKCS#8.
    pub key_pem: PrivateKeyPem,
    /// The certificate, DER.
    pub der: CertificateDer<'static>,
}

impl IssuedCert {
    /// Lowercase hex SHA-256 of the certificate DER (what the device index stores).
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.der)
    }

    /// Writes `<stem>.crt` (0644) and `<stem>.key` (0600) into the existing directory
    /// `dir`, refusing to overwrite either. Returns `(cert_path, key_path)`.
    pub fn write(&self, dir: &Path, stem: &str) -> Result<(PathBuf, PathBuf), PkiError> {
        check_stem(stem)?;
        let cert = dir.join(format!("{stem}.crt"));
        let key = dir.join(format!("{stem}.key"));
        write_pair(
            &cert,
            self.cert_pem.as_bytes(),
            &key,
            self.key_pem.expose_secret().as_bytes(),
        )?;
        Ok((cert, key))
    }
}

/// Lowercase hex SHA-256 of `der`: the certificate fingerprint used throughout the gateway.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// The development PKI in the data directory, as found or created by [`ensure_dev_pki`].
#[derive(Debug)]
pub struct DevPki {
    /// The CA, able to issue facility certificates.
    pub ca: Ca,
    /// `ca.crt`.
    pub ca_cert: PathBuf,
    /// `server.crt`, issued by `ca`.
    pub server_cert: PathBuf,
    /// `server.key`, mode 0600.
    pub server_key: PathBuf,
    /// Whether anything was created by this call (the caller logs where).
    pub created: bool,
    /// The names of a server certificate issued again by this call because
    /// `dev_hostnames` changed since the old one was made (the caller says so).
    pub reissued_for: Option<Vec<String>>,
}

/// Loads the development PKI from `dir` (`ca.crt`, `ca.key`, `server.crt`, `server.key`),
/// creating whatever is missing: the directory (0700), a new CA, and a server certificate
/// for `hostnames`. A half-present pair is an error rather than silently replaced.
pub fn ensure_dev_pki(dir: &Path, hostnames: &[String]) -> Result<DevPki, PkiError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| PkiError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
    let files = CaFiles::in_dir(dir);
    let server_cert = dir.join("server.crt");
    let server_key = dir.join("server.key");
    let server_exists = pair_exists(&server_cert, &server_key)?;
    let (ca, ca_created) = if pair_exists(&files.cert, &files.key)? {
        (Ca::load(&files.cert, &files.key)?, false)
    } else if server_exists {
        return Err(PkiError::StaleServerCert {
            path: server_cert,
            dir: dir.to_path_buf(),
        });
    } else {
        let ca = Ca::create(DEV_CA_COMMON_NAME)?;
        ca.save(dir)?;
        (ca, true)
    };
    let mut reissued_for = None;
    if !server_exists {
        ca.issue_server(hostnames)?.write(dir, "server")?;
    } else {
        let wanted = server_names(hostnames);
        let mut have = names_in(&server_cert)?;
        let mut sorted = wanted.clone();
        sorted.sort();
        have.sort();
        if have != sorted {
            // Keep the old pair beside the new one, then issue for the new names.
            for path in [&server_cert, &server_key] {
                let mut old = path.clone().into_os_string();
                old.push(".replaced");
                fs::rename(path, &old).map_err(|source| PkiError::Write {
                    path: path.clone(),
                    source,
                })?;
            }
            ca.issue_server(hostnames)?.write(dir, "server")?;
            reissued_for = Some(wanted);
        }
    }
    Ok(DevPki {
        ca,
        ca_cert: files.cert,
        server_cert,
        server_key,
        created: ca_created || !server_exists,
        reissued_for,
    })
}

/// The DNS names and IP addresses a certificate file is issued for, lowercase.
fn names_in(cert: &Path) -> Result<Vec<String>, PkiError> {
    let pem = fs::read_to_string(cert).map_err(|source| PkiError::Read {
        path: cert.to_path_buf(),
        source,
    })?;
    use x509_parser::extensions::GeneralName;
    let unreadable = || PkiError::StaleServerCert {
        path: cert.to_path_buf(),
        dir: cert.parent().unwrap_or(Path::new(".")).to_path_buf(),
    };
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|_| unreadable())?;
    let parsed = pem.parse_x509().map_err(|_| unreadable())?;
    let Ok(Some(san)) = parsed.subject_alternative_name() else {
        return Ok(Vec::new());
    };
    Ok(san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes)
                    .ok()
                    .map(|b| IpAddr::from(b).to_string()),
                16 => <[u8; 16]>::try_from(*bytes)
                    .ok()
                    .map(|b| IpAddr::from(b).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect())
}

/// Whether both files exist; only one of them is [`PkiError::Incomplete`].
fn pair_exists(a: &Path, b: &Path) -> Result<bool, PkiError> {
    let exists = |path: &Path| {
        path.try_exists().map_err(|source| PkiError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    match (exists(a)?, exists(b)?) {
        (true, true) => Ok(true),
        (false, false) => Ok(false),
        (true, false) => Err(PkiError::Incomplete {
            present: a.to_path_buf(),
            missing: b.to_path_buf(),
        }),
        (false, true) => Err(PkiError::Incomplete {
            present: b.to_path_buf(),
            missing: a.to_path_buf(),
        }),
    }
}

fn generate_key() -> Result<KeyPair, PkiError> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| PkiError::Crypto {
        what: "generate an ECDSA P-256 key",
        source,
    })
}

/// 16 random bytes, positive (RFC 5280 4.1.2.2: positive, at most 20 octets).
fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    dimse::tls::crypto_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| PkiError::Random)?;
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

fn set_validity(params: &mut CertificateParams, validity: Duration) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - CLOCK_SKEW;
    params.not_after = now + validity;
}

fn leaf_params(usage: ExtendedKeyUsagePurpose) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial()?);
    set_validity(&mut params, LEAF_VALIDITY);
    Ok(params)
}

fn distinguished_name(
    common_name: &str,
    org_unit: Option<&str>,
) -> Result<DistinguishedName, PkiError> {
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        check_dn_value("common name", common_name)?,
    );
    if let Some(ou) = org_unit {
        dn.push(
            DnType::OrganizationalUnitName,
            check_dn_value("organizational unit", ou)?,
        );
    }
    Ok(dn)
}

fn check_dn_value<'a>(what: &'static str, value: &'a str) -> Result<&'a str, PkiError> {
    let reason = if value.trim().is_empty() {
        "must not be empty"
    } else if value.chars().count() > MAX_DN_VALUE_CHARS {
        "must be at most 64 characters"
    } else if value.chars().any(char::is_control) {
        "must not contain control characters"
    } else {
        return Ok(value);
    };
    Err(invalid_name(what, value, reason))
}

/// The configured names, trimmed and de-duplicated, followed by localhost and 127.0.0.1.
/// Never empty: the first entry is the subject common name.
fn server_names(hostnames: &[String]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let defaults = ["localhost", "127.0.0.1"];
    for name in hostnames.iter().map(|h| h.trim()).chain(defaults) {
        let name = name.to_ascii_lowercase();
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

fn san(name: &str) -> Result<SanType, PkiError> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let labels_ok = name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !labels_ok {
        return Err(invalid_name(
            "host name",
            name,
            "must be an IP address or a DNS name (letters, digits, '-' and '.')",
        ));
    }
    let dns = name
        .try_into()
        .map_err(|_| invalid_name("host name", name, "must be an ASCII DNS name"))?;
    Ok(SanType::DnsName(dns))
}

fn check_stem(stem: &str) -> Result<(), PkiError> {
    let ok = !stem.is_empty()
        && !stem.starts_with('.')
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(invalid_name(
            "file name stem",
            stem,
            "use letters, digits, '.', '_' and '-' only, not starting with '.'",
        ))
    }
}

fn invalid_name(what: &'static str, value: &str, reason: &'static str) -> PkiError {
    PkiError::InvalidName {
        what,
        value: value.to_owned(),
        reason,
    }
}

fn read_to_string(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|source| PkiError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn warn_if_key_exposed(path: &Path) {
    let exposed = fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0);
    if exposed {
        tracing::warn!(
            path = %path.display(),
            "CA private key is accessible to other users; run `chmod 600` on it"
        );
    }
}

/// Writes a certificate and its key as new files, key first; neither may exist yet.
/// If the certificate cannot be written, the key just written is removed again.
fn write_pair(cert: &Path, cert_pem: &[u8], key: &Path, key_pem: &[u8]) -> Result<(), PkiError> {
    for path in [cert, key] {
        if path.symlink_metadata().is_ok() {
            return Err(PkiError::AlreadyExists {
                path: path.to_path_buf(),
            });
        }
    }
    write_new(key, key_pem, KEY_MODE)?;
    if let Err(e) = write_new(cert, cert_pem, CERT_MODE) {
        let _ = fs::remove_file(key);
        return Err(e);
    }
    Ok(())
}

/// Creates `path` with `mode` (never more permissive, even briefly), writes and syncs it.
/// A partly written file is removed again.
fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| match source.kind() {
            io::ErrorKind::AlreadyExists => PkiError::AlreadyExists {
                path: path.to_path_buf(),
            },
            _ => PkiError::Write {
                path: path.to_path_buf(),
                source,
            },
        })?;
    if let Err(source) = file.write_all(contents).and_then(|()| file.sync_all()) {
        drop(file);
        let _ = fs::remove_file(path);
        return Err(PkiError::Write {
            path: path.to_path_buf(),
            source,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
