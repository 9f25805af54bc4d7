//! Serving a router over TLS: a tokio-rustls accept loop and hyper-util's automatic
//! HTTP/1.1 / HTTP/2 connection builder (the protocol chosen by ALPN).
//!
//! A new connection must send its first byte within the first-byte timeout; every TLS
//! handshake and every request head must arrive within the handshake timeout, and
//! every request body at the minimum pace ([`super::limits`]); a peer sending garbage
//! or trickling bytes only loses its own connection. Connections are bounded per
//! address and in total, shedding the busiest address's older connections rather than
//! refusing newcomers (see [`serve`]). On shutdown the listener closes, open
//! connections finish their requests (HTTP/2 GOAWAY, HTTP/1 close after the current
//! response) and are dropped after a grace period.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use dimse::admission::{Admission, AdmissionOptions, Refusal, RefusalLog, Stage, Ticket};
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

use super::limits::{BodyPace, PacedBody};
use super::session::ClientAddr;
use crate::metrics::Metrics;

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

/// Bounds and timeouts of the HTTPS listener.
#[derive(Debug, Clone)]
pub struct HttpsLimits {
    /// Time allowed for the TLS handshake and for each request head.
    pub handshake_timeout: Duration,
    /// Time a new connection has to send its first byte.
    pub first_byte_timeout: Duration,
    /// Connections held at once (all addresses).
    pub max_connections: usize,
    /// Connections held at once from one IPv4 address or IPv6 /64.
    pub max_connections_per_address: usize,
    /// How fast request bodies must arrive.
    pub body: BodyPace,
    /// Interval of the summary line of refused and shed connections.
    pub log_interval: Duration,
}

/// Serves `router` on `listener` over TLS until `shutdown` completes, then lets open
/// connections finish (at most [`SHUTDOWN_GRACE`]).
///
/// Every connection holds a place in an [`Admission`] registry for its whole life:
/// at most `max_connections` in total and `max_connections_per_address` per address.
/// A newcomer is always let in; when a bound is hit, an older connection of the
/// busiest address is closed instead (the least advanced first: silent, then in its
/// TLS handshake, then the oldest), so a flood from a few addresses cannot keep
/// `/healthz` or the API away from anyone else. Refusals are counted in
/// `pacs_gateway_connections_refused_total{listener="https"}` and summed up in one log
/// line per interval.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    limits: HttpsLimits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    let log = Arc::new(RefusalLog::new(
        "https",
        Some(Arc::new(move |reason| {
            metrics.connection_refused("https", reason)
        })),
    ));
    let admission = Admission::new(
        AdmissionOptions {
            max_pending: limits.max_connections,
            max_pending_per_address: limits.max_connections_per_address,
            first_byte_timeout: limits.first_byte_timeout,
            log_interval: limits.log_interval,
            preferred: Default::default(),
        },
        log.clone(),
    );
    let acceptor = TlsAcceptor::from(tls);
    let stop = CancellationToken::new();
    let log_stop = CancellationToken::new();
    let log_task = tokio::spawn(log.run(limits.log_interval, log_stop.clone()));
    let mut connections = JoinSet::new();
    let mut accept_failures = 0u64;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let ticket = admission.admit(peer.ip());
                    connections.spawn(connection(
                        stream,
                        peer,
                        ticket,
                        acceptor.clone(),
                        router.clone(),
                        limits.clone(),
                        stop.clone(),
                    ));
                }
                Err(e) => {
                    // Logged for the first failure and then every 1000th.
                    if accept_failures.is_multiple_of(1000) {
                        warn!(error = %e, failures = accept_failures + 1, "cannot accept an HTTPS connection");
                    }
                    accept_failures += 1;
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
    log_stop.cancel();
    let _ = log_task.await;
    info!("HTTPS listener stopped");
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    ticket: Ticket,
    acceptor: TlsAcceptor,
    router: Router,
    limits: HttpsLimits,
    stop: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    if !ticket.first_byte(&stream).await {
        return;
    }
    let handshake = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream));
    let tls = tokio::select! {
        result = handshake => match result {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                debug!(%peer, error = %e, "HTTPS TLS handshake failed");
                ticket.refuse(Refusal::HandshakeFailed);
                return;
            }
            Err(_) => {
                debug!(%peer, "HTTPS TLS handshake timed out");
                ticket.refuse(Refusal::HandshakeTimeout);
                return;
            }
        },
        () = ticket.shed() => return,
    };
    ticket.advance(Stage::Verified);
    let ticket = Arc::new(ticket);
    let kill = CancellationToken::new();
    let pace = limits.body;
    let (body_kill, body_ticket) = (kill.clone(), ticket.clone());
    let service = router.map_request(move |request: Request<Incoming>| {
        let (kill, ticket) = (body_kill.clone(), body_ticket.clone());
        let on_trip = Box::new(move || ticket.refuse(Refusal::SlowBody));
        let mut request =
            request.map(|incoming| Body::new(PacedBody::new(incoming, pace, kill, on_trip)));
        request.extensions_mut().insert(ClientAddr(peer));
        request
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.handshake_timeout);
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
        () = ticket.shed() => debug!(%peer, "HTTPS connection shed for a newer one"),
        () = kill.cancelled() => debug!(%peer, "HTTPS request body too slow; connection closed"),
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
