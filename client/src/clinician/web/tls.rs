//! HTTPS on the proxy's listener (`[web] tls = true`): the edge certificate and key
//! (`[edge] tls_cert`, `tls_key`, the certificate the modalities already trust on the
//! DICOM TLS port), no client certificate asked for (callers log in with HTTP
//! Basic), HTTP/1.1. Plain HTTP to that port gets no answer.
//!
//! Handshakes run in their own tasks, each within [`HANDSHAKE`] and at most
//! [`PENDING`] at once, so a silent or slow peer holds up no one else; the finished
//! ones are handed to `axum::serve` through [`TlsListener`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::config::Config;

/// Time a new connection has for its TLS handshake.
pub(super) const HANDSHAKE: Duration = Duration::from_secs(10);

/// Handshakes under way at once; a connection beyond them is closed at once.
pub(super) const PENDING: usize = 256;

/// The HTTPS server configuration when `[web] tls` is on: the edge certificate
/// chain and key, no client authentication, ALPN `http/1.1`.
pub(super) fn server_config(config: &Config) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    if !config.web.as_ref().is_some_and(|w| w.tls) {
        return Ok(None);
    }
    let (Some(cert), Some(key)) = (&config.edge.tls_cert, &config.edge.tls_key) else {
        anyhow::bail!(
            "[web] tls = true serves the edge certificate: set [edge] tls_cert and tls_key (with tls_ca)"
        );
    };
    let chain = dimse::tls::load_certs_file(cert)
        .with_context(|| format!("[web] tls: cannot read {}", cert.display()))?;
    let key = dimse::tls::load_private_key_file(key)
        .with_context(|| format!("[web] tls: cannot read {}", key.display()))?;
    let mut server = rustls::ServerConfig::builder_with_provider(dimse::tls::crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("[web] tls: the edge certificate and key do not go together")?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(server)))
}

/// A TCP listener whose connections come out with their TLS handshake done.
pub(super) struct TlsListener {
    incoming: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `listener` (until `stop`, or until this is dropped), handshaking
    /// with `tls`.
    pub(super) fn new(
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        stop: CancellationToken,
    ) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (sender, incoming) = mpsc::channel(PENDING);
        tokio::spawn(accept(listener, TlsAcceptor::from(tls), sender, stop));
        Ok(TlsListener { incoming, local })
    }
}

/// The accept loop: one task per handshake, the established streams sent on.
async fn accept(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    established: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    stop: CancellationToken,
) {
    let handshakes = Arc::new(Semaphore::new(PENDING));
    let mut failures = 0u64;
    loop {
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => return,
            () = established.closed() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Logged for the first failure and then every 1000th.
                    if failures.is_multiple_of(1000) {
                        warn!(error = %e, failures = failures + 1, "DICOMweb proxy: cannot accept a connection");
                    }
                    failures += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = handshakes.clone().try_acquire_owned() else {
            debug!(%peer, "DICOMweb proxy: too many TLS handshakes under way; closed");
            continue;
        };
        let acceptor = acceptor.clone();
        let established = established.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = established.send((tls, peer)).await;
                }
                Ok(Err(e)) => debug!(%peer, error = %e, "DICOMweb proxy: TLS handshake failed"),
                Err(_) => debug!(%peer, "DICOMweb proxy: TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.recv().await {
            Some(connection) => connection,
            // The accept loop has stopped (shutdown): nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
