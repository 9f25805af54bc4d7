//! Serving a router over TLS: a tokio-rustls accept loop and hyper-util's automatic
//! HTTP/1.1 / HTTP/2 connection builder (the protocol chosen by ALPN).
//!
//! Every TLS handshake and every request head must arrive within the handshake
//! timeout; a peer sending garbage only loses its own connection. At most
//! `max_connections` are served at once: further ones are closed on arrival. On shutdown the
//! listener closes, open connections finish their requests (HTTP/2 GOAWAY, HTTP/1
//! close after the current response) and are dropped after a grace period.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;
use tracing::{debug, info, warn};

use super::session::ClientAddr;

/// How long open connections may go on after shutdown is requested.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The HTTPS server configuration: the gateway's server certificate, no client
/// certificate asked for, ALPN `h2` and `http/1.1`.
pub fn tls_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let chain = dimse::tls::load_certs_file(cert)?;
    let key = dimse::tls::load_private_key_file(key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(dimse::tls::crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `router` on `listener` over TLS until `shutdown` completes, then lets open
/// connections finish (at most [`SHUTDOWN_GRACE`]).
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    handshake_timeout: Duration,
    max_connections: usize,
    shutdown: impl Future<Output = ()>,
) {
    let mut turned_away = 0u64;
    let acceptor = TlsAcceptor::from(tls);
    let stop = CancellationToken::new();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) if connections.len() >= max_connections => {
                    // Logged for the first refusal and then every 1000th, so that a
                    // flood does not flood the log too.
                    if turned_away.is_multiple_of(1000) {
                        warn!(%peer, max_connections, refused_so_far = turned_away + 1,
                            "too many HTTPS connections; closing new ones until some end");
                    }
                    turned_away += 1;
                    drop(stream);
                }
                Ok((stream, peer)) => {
                    connections.spawn(connection(
                        stream,
                        peer,
                        acceptor.clone(),
                        router.clone(),
                        handshake_timeout,
                        stop.clone(),
                    ));
                }
                Err(e) => {
                    warn!(error = %e, "cannot accept an HTTPS connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    stop.cancel();
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!("HTTPS connections still open after the grace period; closing them");
        connections.shutdown().await;
    }
    info!("HTTPS listener stopped");
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    router: Router,
    handshake_timeout: Duration,
    stop: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            debug!(%peer, error = %e, "HTTPS TLS handshake failed");
            return;
        }
        Err(_) => {
            debug!(%peer, "HTTPS TLS handshake timed out");
            return;
        }
    };
    let service = router.map_request(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ClientAddr(peer));
        request
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(handshake_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(64);
    let conn = builder
        .serve_connection_with_upgrades(TokioIo::new(tls), TowerToHyperService::new(service));
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                debug!(%peer, error = %e, "HTTPS connection ended with an error");
            }
        }
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
