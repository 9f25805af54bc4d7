//! DICOM TLS profiles (PS3.15 B.12, BCP 195 / RFC 9325) as rustls configurations.
//!
//! Owns the one restricted crypto provider every DICOM TLS connection uses (TLS 1.2 and
//! 1.3, AES-GCM with ECDHE only: no ChaCha20, no CBC, no static RSA), PEM loading of
//! certificates and private keys, and the server (mutual TLS, client certificate
//! required) and client configurations built from them.
//!
//! It decides nothing about *who* a verified peer is: mapping a client certificate to a
//! facility is the caller's policy. It must never log, format or return key material;
//! errors name files and say what to do, never echo their contents.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::crypto::ring::{self, cipher_suite};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{VerifierBuilderError, WebPkiClientVerifier};
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};

/// Protocol versions offered and accepted: TLS 1.2 and 1.3 (BCP 195).
static PROTOCOL_VERSIONS: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Why a TLS configuration could not be built. Messages are meant for the operator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate or key file could not be read.
    #[error(
        "cannot read {what} file {}: {source}",
        path.display()
    )]
    ReadFile {
        /// "certificate" or "private key".
        what: &'static str,
        /// The file that could not be read.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A certificate or key file was read but does not hold usable PEM.
    #[error(
        "{} is not a usable {what} file: {source}; it must contain an unencrypted PEM {what}",
        path.display()
    )]
    InvalidFile {
        /// "certificate" or "private key".
        what: &'static str,
        /// The offending file.
        path: PathBuf,
        /// What was wrong with its contents.
        #[source]
        source: Box<TlsError>,
    },
    /// PEM input could not be decoded.
    #[error("cannot decode PEM {what}: {source}")]
    Pem {
        /// "certificate" or "private key".
        what: &'static str,
        /// The PEM decoder's error (it never contains key bytes).
        #[source]
        source: pem::Error,
    },
    /// PEM input held no item of the wanted kind.
    #[error("no PEM {what} found (expected a \"-----BEGIN {marker}-----\" block)")]
    Missing {
        /// "certificate" or "private key".
        what: &'static str,
        /// The PEM label expected.
        marker: &'static str,
    },
    /// An empty certificate chain was supplied for our own identity.
    #[error("the {side} certificate chain is empty; configure the certificate file")]
    EmptyChain {
        /// "server" or "client".
        side: &'static str,
    },
    /// No trusted CA certificate was supplied.
    #[error("no trusted CA certificate for verifying {peers}; configure the CA file")]
    NoTrustAnchors {
        /// "client certificates" or "the server".
        peers: &'static str,
    },
    /// A trusted CA certificate could not be used as a trust anchor.
    #[error(
        "CA certificate #{index} cannot be used as a trust anchor: {source}; check the CA file"
    )]
    InvalidTrustAnchor {
        /// Position of the certificate in the supplied list, from 0.
        index: usize,
        /// Why rustls refused it.
        #[source]
        source: rustls::Error,
    },
    /// The client-certificate verifier could not be built.
    #[error("cannot set up client certificate verification: {source}; check the CA file")]
    ClientVerifier {
        /// Why the verifier builder failed.
        #[source]
        source: VerifierBuilderError,
    },
    /// Our own certificate and key were rejected (mismatch or unsupported algorithm).
    #[error(
        "the {side} certificate and private key cannot be used together: {source}; \
         check that the key belongs to the certificate and is ECDSA, Ed25519 or RSA"
    )]
    Identity {
        /// "server" or "client".
        side: &'static str,
        /// Why rustls refused them.
        #[source]
        source: rustls::Error,
    },
    /// The restricted provider cannot serve the requested protocol versions.
    #[error("TLS provider does not support TLS 1.2/1.3: {source}")]
    Provider {
        /// Why rustls refused the version set.
        #[source]
        source: rustls::Error,
    },
}

/// The crypto provider for all DICOM TLS: *ring* restricted to the BCP 195 AES-GCM suites.
///
/// Cipher suites, in preference order: TLS 1.3 AES-128-GCM and AES-256-GCM, then TLS 1.2
/// ECDHE-ECDSA and ECDHE-RSA with AES-128-GCM and AES-256-GCM. Key exchange groups are
/// *ring*'s defaults (X25519, P-256, P-384).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            Arc::new(CryptoProvider {
                cipher_suites: vec![
                    cipher_suite::TLS13_AES_128_GCM_SHA256,
                    cipher_suite::TLS13_AES_256_GCM_SHA384,
                    cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                    cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                    cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
                    cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                ],
                ..ring::default_provider()
            })
        })
        .clone()
}

/// Decodes every `CERTIFICATE` block in `pem`, in order (leaf first for a chain).
///
/// Other PEM blocks (keys, parameters) are skipped. At least one certificate is required.
pub fn load_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            what: "certificate",
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::Missing {
            what: "certificate",
            marker: "CERTIFICATE",
        });
    }
    Ok(certs)
}

/// Decodes the first private key in `pem` (PKCS#8, PKCS#1 RSA or SEC1 EC; unencrypted).
pub fn load_private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|source| match source {
        pem::Error::NoItemsFound => TlsError::Missing {
            what: "private key",
            marker: "PRIVATE KEY",
        },
        source => TlsError::Pem {
            what: "private key",
            source,
        },
    })
}

/// [`load_certs`] from a file; errors name the file.
pub fn load_certs_file(path: impl AsRef<Path>) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let path = path.as_ref();
    let pem = read_file(path, "certificate")?;
    load_certs(&pem).map_err(|e| in_file(e, path, "certificate"))
}

/// [`load_private_key`] from a file; errors name the file but never show its contents.
pub fn load_private_key_file(path: impl AsRef<Path>) -> Result<PrivateKeyDer<'static>, TlsError> {
    let path = path.as_ref();
    let pem = read_file(path, "private key")?;
    load_private_key(&pem).map_err(|e| in_file(e, path, "private key"))
}

/// Server side of DICOM TLS: presents `chain`/`key` and *requires* a client certificate
/// that chains to one of `client_roots`. Anonymous clients fail the handshake.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_roots: Vec<CertificateDer<'static>>,
) -> Result<Arc<ServerConfig>, TlsError> {
    if chain.is_empty() {
        return Err(TlsError::EmptyChain { side: "server" });
    }
    let provider = crypto_provider();
    let roots = root_store(client_roots, "client certificates")?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|source| TlsError::ClientVerifier { source })?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(|source| TlsError::Provider { source })?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|source| TlsError::Identity {
            side: "server",
            source,
        })?;
    tracing::debug!("built DICOM TLS server config (client certificate required)");
    Ok(Arc::new(config))
}

/// Client side of DICOM TLS: verifies the server against `server_roots` and, when
/// `identity` is given, presents that certificate chain and key for mutual TLS.
pub fn client_config(
    server_roots: Vec<CertificateDer<'static>>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let roots = root_store(server_roots, "the server")?;
    let builder = ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(|source| TlsError::Provider { source })?
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((chain, _)) if chain.is_empty() => {
            return Err(TlsError::EmptyChain { side: "client" });
        }
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|source| TlsError::Identity {
                side: "client",
                source,
            })?,
    };
    Ok(Arc::new(config))
}

fn root_store(
    certs: Vec<CertificateDer<'static>>,
    peers: &'static str,
) -> Result<RootCertStore, TlsError> {
    if certs.is_empty() {
        return Err(TlsError::NoTrustAnchors { peers });
    }
    let mut store = RootCertStore::empty();
    for (index, cert) in certs.into_iter().enumerate() {
        store
            .add(cert)
            .map_err(|source| TlsError::InvalidTrustAnchor { index, source })?;
    }
    Ok(store)
}

fn read_file(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::ReadFile {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn in_file(error: TlsError, path: &Path, what: &'static str) -> TlsError {
    TlsError::InvalidFile {
        what,
        path: path.to_path_buf(),
        source: Box::new(error),
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    /// Syntactically valid PEM whose body is not a certificate: enough for loader tests.
    const NOT_A_KEY: &[u8] = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";

    #[test]
    fn provider_offers_only_bcp195_aes_gcm_suites() {
        let names: Vec<String> = crypto_provider()
            .cipher_suites
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        assert_eq!(
            names,
            [
                "TLS13_AES_128_GCM_SHA256",
                "TLS13_AES_256_GCM_SHA384",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            ]
        );
        assert!(
            names
                .iter()
                .all(|n| !n.contains("CHACHA") && !n.contains("CBC"))
        );
    }

    #[test]
    fn provider_supports_tls12_and_tls13() {
        let provider = crypto_provider();
        for version in PROTOCOL_VERSIONS {
            assert!(
                provider
                    .cipher_suites
                    .iter()
                    .any(|s| s.version() == *version),
                "no suite for {:?}",
                version.version
            );
        }
    }

    #[test]
    fn certs_without_certificate_block_is_an_error() {
        let err = load_certs(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
            .unwrap_err();
        assert!(matches!(err, TlsError::Missing { .. }), "{err}");
        assert!(load_certs(b"").is_err());
    }

    #[test]
    fn certs_are_returned_in_file_order() {
        let two = [
            NOT_A_KEY,
            b"-----BEGIN CERTIFICATE-----\nAAAB\n-----END CERTIFICATE-----\n",
        ]
        .concat();
        let certs = load_certs(&two).unwrap();
        assert_eq!(certs.len(), 2);
        assert_eq!(certs[0].as_ref(), &[0, 0, 0]);
        assert_eq!(certs[1].as_ref(), &[0, 0, 1]);
    }

    #[test]
    fn key_missing_in_certificate_pem_is_an_error() {
        let err = load_private_key(NOT_A_KEY).unwrap_err();
        assert!(matches!(err, TlsError::Missing { .. }), "{err}");
    }

    #[test]
    fn broken_key_error_does_not_echo_the_file() {
        let secret =
            b"-----BEGIN PRIVATE KEY-----\nTOPSECRETKEYMATERIAL*\n-----END PRIVATE KEY-----\n";
        let err = load_private_key(secret).unwrap_err();
        assert!(matches!(err, TlsError::Pem { .. }), "{err}");
        let shown = format!("{err} {err:?} {:?}", err.source());
        assert!(!shown.contains("TOPSECRET"), "{shown}");
    }

    #[test]
    fn missing_file_error_names_the_path_and_no_config_section() {
        let path = std::env::temp_dir().join("dimse-tls-test-does-not-exist.crt");
        let err = load_certs_file(&path).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        // The protocol layer knows no config file: callers name their section.
        assert!(!msg.contains('['), "{msg}");
        assert!(err.source().is_some());
        assert!(
            load_private_key_file(&path)
                .unwrap_err()
                .to_string()
                .contains("private key")
        );
    }

    #[test]
    fn configs_refuse_empty_trust_list_and_chain() {
        let err = client_config(Vec::new(), None).unwrap_err();
        assert!(matches!(err, TlsError::NoTrustAnchors { .. }), "{err}");
        let key = PrivateKeyDer::from_pem_slice(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let err = server_config(Vec::new(), key, Vec::new()).unwrap_err();
        assert!(matches!(err, TlsError::EmptyChain { .. }), "{err}");
    }
}
