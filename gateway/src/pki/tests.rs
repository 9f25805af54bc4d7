//! Tests of the PKI: files, modes, issuance and real TLS handshakes.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::{PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ProtocolVersion, RootCertStore, ServerConfig};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::*;

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn key_der(cert: &IssuedCert) -> PrivateKeyDer<'static> {
    dimse::tls::load_private_key(cert.key_pem.expose_secret().as_bytes()).unwrap()
}

fn identity(cert: &IssuedCert) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    (vec![cert.der.clone()], key_der(cert))
}

fn server_config(ca: &Ca, cert: &IssuedCert) -> Arc<ServerConfig> {
    let (chain, key) = identity(cert);
    dimse::tls::server_config(chain, key, vec![ca.cert_der()]).unwrap()
}

fn client_config(ca: &Ca, cert: Option<&IssuedCert>) -> Arc<ClientConfig> {
    dimse::tls::client_config(vec![ca.cert_der()], cert.map(identity)).unwrap()
}

/// What the server saw: the client's leaf certificate and the negotiated version.
type ServerView = (Option<CertificateDer<'static>>, Option<ProtocolVersion>);

/// Runs a real TLS handshake over an in-memory duplex pipe and one application round
/// trip (the server writes "ok"), so TLS 1.3 client-certificate rejections, which the
/// client only learns after its side of the handshake, show up on both sides.
async fn handshake(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    server_name: &'static str,
) -> (io::Result<ServerView>, io::Result<()>) {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let server_side = async move {
        let mut tls = TlsAcceptor::from(server).accept(server_io).await?;
        let conn = tls.get_ref().1;
        let peer = conn.peer_certificates().and_then(|c| c.first()).cloned();
        let version = conn.protocol_version();
        tls.write_all(b"ok").await?;
        tls.shutdown().await?;
        Ok((peer, version))
    };
    let client_side = async move {
        let name = ServerName::try_from(server_name).map_err(io::Error::other)?;
        let mut tls = TlsConnector::from(client).connect(name, client_io).await?;
        let mut buf = [0u8; 2];
        tls.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"ok");
        Ok(())
    };
    let both = async { tokio::join!(server_side, client_side) };
    tokio::time::timeout(StdDuration::from_secs(10), both)
        .await
        .expect("handshake must not hang")
}

#[test]
fn fingerprint_is_lowercase_hex_sha256() {
    assert_eq!(
        fingerprint(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn issued_client_fingerprint_is_stable_and_unique() {
    let ca = Ca::create("Test CA").unwrap();
    let a = ca.issue_client("Facility A", Some("Radiology")).unwrap();
    let b = ca.issue_client("Facility A", Some("Radiology")).unwrap();
    let fp = a.fingerprint();
    assert_eq!(fp.len(), 64);
    assert!(
        fp.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')),
        "{fp}"
    );
    assert_eq!(fp, a.fingerprint());
    assert_eq!(fp, fingerprint(&a.der));
    assert_eq!(
        fp,
        fingerprint(&dimse::tls::load_certs(a.cert_pem.as_bytes()).unwrap()[0])
    );
    assert_ne!(fp, b.fingerprint());
}

#[test]
fn debug_output_never_shows_keys() {
    let ca = Ca::create("Test CA").unwrap();
    let cert = ca.issue_client("Facility A", None).unwrap();
    let body: String = cert
        .key_pem
        .expose_secret()
        .lines()
        .nth(1)
        .unwrap()
        .to_owned();
    for shown in [format!("{cert:?}"), format!("{ca:?}")] {
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
        assert!(!shown.contains(&body), "{shown}");
    }
    assert!(format!("{cert:?}").contains("[redacted]"));
}

#[test]
fn ca_save_load_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::create("Round Trip CA").unwrap();
    let files = ca.save(dir.path()).unwrap();
    assert_eq!(files, CaFiles::in_dir(dir.path()));
    let loaded = Ca::load(&files.cert, &files.key).unwrap();
    assert_eq!(loaded.cert_der(), ca.cert_der());
    assert_eq!(loaded.cert_pem(), ca.cert_pem());
    assert_eq!(
        dimse::tls::load_certs(fs::read(&files.cert).unwrap().as_slice()).unwrap(),
        vec![ca.cert_der()]
    );
}

#[tokio::test]
async fn certificates_from_a_reloaded_ca_chain_to_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::create("Round Trip CA").unwrap();
    let files = ca.save(dir.path()).unwrap();
    let loaded = Ca::load(&files.cert, &files.key).unwrap();
    let server = loaded.issue_server(&[]).unwrap();
    let client = loaded.issue_client("Facility A", None).unwrap();
    let (srv, cli) = handshake(
        server_config(&ca, &server),
        client_config(&ca, Some(&client)),
        "localhost",
    )
    .await;
    cli.unwrap();
    assert_eq!(srv.unwrap().0, Some(client.der.clone()));
}

#[test]
fn key_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::create("Test CA").unwrap();
    let files = ca.save(dir.path()).unwrap();
    assert_eq!(mode(&files.key), 0o600);
    assert_eq!(mode(&files.cert) & 0o600, 0o600);
    let (cert, key) = ca
        .issue_client("Facility A", None)
        .unwrap()
        .write(dir.path(), "facility-a")
        .unwrap();
    assert_eq!(key, dir.path().join("facility-a.key"));
    assert_eq!(cert, dir.path().join("facility-a.crt"));
    assert_eq!(mode(&key), 0o600);
}

#[test]
fn never_overwrites_existing_files() {
    let dir = tempfile::tempdir().unwrap();
    let first = Ca::create("First CA").unwrap();
    let files = first.save(dir.path()).unwrap();
    let key_before = fs::read(&files.key).unwrap();
    let err = Ca::create("Second CA")
        .unwrap()
        .save(dir.path())
        .unwrap_err();
    assert!(matches!(err, PkiError::AlreadyExists { .. }), "{err}");
    assert!(err.to_string().contains("refusing to overwrite"), "{err}");
    assert_eq!(fs::read(&files.key).unwrap(), key_before);
    assert_eq!(
        Ca::load(&files.cert, &files.key).unwrap().cert_der(),
        first.cert_der()
    );

    let issued = first.issue_client("Facility A", None).unwrap();
    issued.write(dir.path(), "a").unwrap();
    let err = first
        .issue_client("Facility A", None)
        .unwrap()
        .write(dir.path(), "a")
        .unwrap_err();
    assert!(matches!(err, PkiError::AlreadyExists { .. }), "{err}");
    assert_eq!(
        fs::read_to_string(dir.path().join("a.crt")).unwrap(),
        issued.cert_pem
    );
}

#[test]
fn load_rejects_a_key_from_another_ca() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let fa = Ca::create("CA A").unwrap().save(a.path()).unwrap();
    let fb = Ca::create("CA B").unwrap().save(b.path()).unwrap();
    let err = Ca::load(&fa.cert, &fb.key).unwrap_err();
    assert!(matches!(err, PkiError::KeyMismatch { .. }), "{err}");
    let err = Ca::load(&fa.cert, a.path().join("missing.key")).unwrap_err();
    assert!(err.to_string().contains("missing.key"), "{err}");
}

#[test]
fn load_rejects_a_leaf_certificate_as_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::create("Test CA").unwrap();
    let (cert, key) = ca
        .issue_client("Facility A", None)
        .unwrap()
        .write(dir.path(), "leaf")
        .unwrap();
    let err = Ca::load(&cert, &key).unwrap_err();
    assert!(matches!(err, PkiError::NotACa { .. }), "{err}");
}

#[test]
fn bad_names_are_rejected() {
    let ca = Ca::create("Test CA").unwrap();
    assert!(matches!(Ca::create(" "), Err(PkiError::InvalidName { .. })));
    assert!(matches!(
        ca.issue_client("", None),
        Err(PkiError::InvalidName { .. })
    ));
    assert!(matches!(
        ca.issue_client(&"x".repeat(65), None),
        Err(PkiError::InvalidName { .. })
    ));
    let bad_host = ca.issue_server(&["bad host".to_owned()]).unwrap_err();
    assert!(bad_host.to_string().contains("bad host"), "{bad_host}");
    let dir = tempfile::tempdir().unwrap();
    let issued = ca.issue_client("Facility A", None).unwrap();
    for stem in ["../escape", ".hidden", "", "a/b"] {
        assert!(
            matches!(
                issued.write(dir.path(), stem),
                Err(PkiError::InvalidName { .. })
            ),
            "{stem}"
        );
    }
}

#[tokio::test]
async fn enrolled_client_is_accepted_and_identified() {
    let ca = Ca::create("Gateway CA").unwrap();
    let server = ca.issue_server(&[]).unwrap();
    let client = ca.issue_client("Facility A", Some("Radiology")).unwrap();
    let (srv, cli) = handshake(
        server_config(&ca, &server),
        client_config(&ca, Some(&client)),
        "localhost",
    )
    .await;
    cli.unwrap();
    let (peer, version) = srv.unwrap();
    assert_eq!(
        fingerprint(&peer.expect("server must see the client certificate")),
        client.fingerprint()
    );
    assert_eq!(version, Some(ProtocolVersion::TLSv1_3));
}

#[tokio::test]
async fn client_without_certificate_is_rejected() {
    let ca = Ca::create("Gateway CA").unwrap();
    let server = ca.issue_server(&[]).unwrap();
    let (srv, cli) = handshake(
        server_config(&ca, &server),
        client_config(&ca, None),
        "localhost",
    )
    .await;
    assert!(srv.is_err(), "server accepted an anonymous client");
    assert!(cli.is_err());
}

#[tokio::test]
async fn client_from_another_ca_is_rejected() {
    let ca = Ca::create("Gateway CA").unwrap();
    let rogue = Ca::create("Gateway CA").unwrap();
    let server = ca.issue_server(&[]).unwrap();
    let client = rogue.issue_client("Facility A", None).unwrap();
    let (srv, cli) = handshake(
        server_config(&ca, &server),
        client_config(&ca, Some(&client)),
        "localhost",
    )
    .await;
    assert!(
        srv.is_err(),
        "server accepted a certificate from another CA"
    );
    assert!(cli.is_err());
}

#[tokio::test]
async fn server_certificate_cannot_act_as_client_certificate() {
    let ca = Ca::create("Gateway CA").unwrap();
    let server = ca.issue_server(&[]).unwrap();
    let (srv, _) = handshake(
        server_config(&ca, &server),
        client_config(&ca, Some(&server)),
        "localhost",
    )
    .await;
    assert!(
        srv.is_err(),
        "serverAuth-only certificate accepted as a client certificate"
    );
}

#[tokio::test]
async fn chacha_only_client_cannot_negotiate() {
    let ca = Ca::create("Gateway CA").unwrap();
    let server = ca.issue_server(&[]).unwrap();
    let client = ca.issue_client("Facility A", None).unwrap();
    let provider = CryptoProvider {
        cipher_suites: vec![
            ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
            ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        ..ring::default_provider()
    };
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert_der()).unwrap();
    let (chain, key) = identity(&client);
    let chacha = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    let (srv, cli) = handshake(server_config(&ca, &server), Arc::new(chacha), "localhost").await;
    assert!(srv.is_err(), "server negotiated a ChaCha20 suite");
    assert!(cli.is_err());
}

#[tokio::test]
async fn tls12_client_negotiates_an_aes_gcm_suite() {
    let ca = Ca::create("Gateway CA").unwrap();
    let server = ca.issue_server(&[]).unwrap();
    let client = ca.issue_client("Facility A", None).unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert_der()).unwrap();
    let (chain, key) = identity(&client);
    let tls12 = ClientConfig::builder_with_provider(dimse::tls::crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    let (srv, cli) = handshake(server_config(&ca, &server), Arc::new(tls12), "localhost").await;
    cli.unwrap();
    let (peer, version) = srv.unwrap();
    assert_eq!(version, Some(ProtocolVersion::TLSv1_2));
    assert_eq!(peer.map(|p| fingerprint(&p)), Some(client.fingerprint()));
}

#[tokio::test]
async fn server_certificate_covers_configured_names_only() {
    let ca = Ca::create("Gateway CA").unwrap();
    let names = ["PACS.example.org".to_owned(), "10.1.2.3".to_owned()];
    let server = ca.issue_server(&names).unwrap();
    let client = ca.issue_client("Facility A", None).unwrap();
    for name in ["pacs.example.org", "10.1.2.3", "localhost", "127.0.0.1"] {
        let config = (
            server_config(&ca, &server),
            client_config(&ca, Some(&client)),
        );
        let (srv, cli) = handshake(config.0, config.1, name).await;
        assert!(
            cli.is_ok() && srv.is_ok(),
            "{name} must be covered: {cli:?}"
        );
    }
    let config = (
        server_config(&ca, &server),
        client_config(&ca, Some(&client)),
    );
    let (_, cli) = handshake(config.0, config.1, "other.example.org").await;
    assert!(cli.is_err(), "certificate must not cover other.example.org");
}

#[tokio::test]
async fn dev_pki_is_created_once_then_loaded() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let first = ensure_dev_pki(&dir, &["gateway.local".to_owned()]).unwrap();
    assert!(first.created);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("ca.key")), 0o600);
    assert_eq!(mode(&first.server_key), 0o600);
    let second = ensure_dev_pki(&dir, &["Gateway.Local".to_owned()]).unwrap();
    assert!(!second.created);
    assert!(
        second.reissued_for.is_none(),
        "same names (case aside): kept"
    );
    assert_eq!(second.ca.cert_der(), first.ca.cert_der());
    assert_eq!(
        fs::read(&second.server_cert).unwrap(),
        fs::read(&first.server_cert).unwrap()
    );

    let chain = dimse::tls::load_certs_file(&second.server_cert).unwrap();
    let key = dimse::tls::load_private_key_file(&second.server_key).unwrap();
    let ca_der = dimse::tls::load_certs_file(&second.ca_cert).unwrap();
    let server = dimse::tls::server_config(chain, key, ca_der).unwrap();
    let client = second.ca.issue_client("Facility A", None).unwrap();
    let (srv, cli) = handshake(
        server,
        client_config(&first.ca, Some(&client)),
        "gateway.local",
    )
    .await;
    cli.unwrap();
    srv.unwrap();

    // Other names: the server certificate is issued again, under the same CA.
    let before = fs::read(&first.server_cert).unwrap();
    let third = ensure_dev_pki(&dir, &["pacs.example.org".to_owned()]).unwrap();
    assert_eq!(
        third.reissued_for.as_deref(),
        Some(
            &[
                "pacs.example.org".to_owned(),
                "localhost".into(),
                "127.0.0.1".into()
            ][..]
        )
    );
    assert_eq!(third.ca.cert_der(), first.ca.cert_der());
    assert_ne!(fs::read(&third.server_cert).unwrap(), before);
    assert_eq!(fs::read(dir.join("server.crt.replaced")).unwrap(), before);
    assert!(dir.join("server.crt.replaced").is_file());
    assert_eq!(mode(&third.server_key), 0o600);
    let fourth = ensure_dev_pki(&dir, &["pacs.example.org".to_owned()]).unwrap();
    assert!(fourth.reissued_for.is_none());
}

#[test]
fn dev_pki_reissues_a_missing_server_pair_but_refuses_half_pairs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let first = ensure_dev_pki(dir, &[]).unwrap();
    fs::remove_file(&first.server_cert).unwrap();
    fs::remove_file(&first.server_key).unwrap();
    let again = ensure_dev_pki(dir, &[]).unwrap();
    assert!(again.created);
    assert_eq!(again.ca.cert_der(), first.ca.cert_der());

    fs::remove_file(&again.server_key).unwrap();
    let err = ensure_dev_pki(dir, &[]).unwrap_err();
    assert!(matches!(err, PkiError::Incomplete { .. }), "{err}");
    assert!(err.to_string().contains("server.key"), "{err}");

    fs::remove_file(&again.server_cert).unwrap();
    fs::remove_file(dir.join("ca.key")).unwrap();
    let err = ensure_dev_pki(dir, &[]).unwrap_err();
    assert!(err.to_string().contains("ca.key"), "{err}");
}

#[test]
fn dev_pki_refuses_a_server_certificate_without_its_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let first = ensure_dev_pki(tmp.path(), &[]).unwrap();
    fs::remove_file(&first.ca_cert).unwrap();
    fs::remove_file(tmp.path().join("ca.key")).unwrap();
    let err = ensure_dev_pki(tmp.path(), &[]).unwrap_err();
    assert!(matches!(err, PkiError::StaleServerCert { .. }), "{err}");
}
