//! The association acceptor: accept loop, TLS handshake, association negotiation,
//! limits and graceful shutdown.
//!
//! Policy plugs in through [`Policy`] (who may associate, and as whom) and the
//! [`Service`](crate::scp::Service) (what to do with messages). The server itself
//! decides nothing about facilities, users or storage.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dicom_ul::Pdu;
use dicom_ul::pdu::AbortRQServiceProviderReason;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::assoc::{self, APPLICATION_CONTEXT, AssociateRequest, Peer, Rejection};
use crate::error::DimseError;
use crate::pdu_io::PduConn;
use crate::scp::{self, AssociationInfo, Service};

/// The largest A-ASSOCIATE-RQ read, whatever the maximum PDU: a C-GET requestor
/// proposing every storage class with role selection sends more than a small maximum
/// PDU (DCMTK 3.6.7's `getscu`: 17,429 bytes).
const MAX_ASSOCIATE_RQ: u32 = 64 * 1024;

/// Decides whether an association request is admitted, and as whom.
pub trait Policy: Send + Sync + 'static {
    /// What the service learns about an admitted association (a facility, a user).
    type Session: Send + Sync + 'static;

    /// Admits or rejects a request.
    fn admit(
        &self,
        request: &AssociateRequest<'_>,
    ) -> impl Future<Output = Result<Self::Session, Rejection>> + Send;

    /// Who an admitted association is, for the one INFO line logged when it ends
    /// (e.g. the facility). Never patient data. The default says nothing.
    fn describe(&self, _session: &Self::Session) -> Option<String> {
        None
    }
}

/// Limits and timeouts of an acceptor.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Largest PDU we accept (announced in the A-ASSOCIATE-AC).
    pub max_pdu: u32,
    /// Time allowed for the TLS handshake and the A-ASSOCIATE-RQ.
    pub handshake_timeout: Duration,
    /// Time allowed between PDUs once associated.
    pub read_timeout: Duration,
    /// Associations served at once; further requests are rejected as transient.
    pub max_associations: usize,
    /// How long running associations may go on after shutdown is requested.
    pub shutdown_grace: Duration,
    /// Server TLS configuration; `None` serves plain DICOM.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_pdu: 256 * 1024,
            handshake_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            max_associations: 64,
            shutdown_grace: Duration::from_secs(10),
            tls: None,
        }
    }
}

struct Shared<P, S> {
    options: ServerOptions,
    policy: P,
    service: Arc<S>,
    /// Established associations.
    slots: Arc<Semaphore>,
    /// Connections still in the TLS handshake or before their A-ASSOCIATE-RQ.
    handshakes: Arc<Semaphore>,
    stop: CancellationToken,
}

/// Serves associations on `listener` until `shutdown` completes, then waits up to the
/// grace period for running associations before returning.
pub async fn serve<P, S>(
    listener: TcpListener,
    options: ServerOptions,
    policy: P,
    service: Arc<S>,
    shutdown: impl Future<Output = ()>,
) where
    P: Policy,
    S: Service<P::Session>,
{
    let grace = options.shutdown_grace;
    let shared = Arc::new(Shared {
        slots: Arc::new(Semaphore::new(options.max_associations)),
        handshakes: Arc::new(Semaphore::new(
            options.max_associations.saturating_mul(4).max(16),
        )),
        options,
        policy,
        service,
        stop: CancellationToken::new(),
    });
    let tracker = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, addr)) => {
                    // Connections that never associate must not hold association slots:
                    // they get a bounded handshake slot, or are closed at once.
                    let Ok(handshake) = shared.handshakes.clone().try_acquire_owned() else {
                        warn!(peer = %addr, "too many connections in handshake; closing");
                        continue;
                    };
                    let span = info_span!("association", peer = %addr);
                    tracker.spawn(handle(socket, addr, handshake, shared.clone()).instrument(span));
                }
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        info!("shutdown grace period over; aborting remaining associations");
        shared.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(2), tracker.wait()).await;
    }
}

async fn handle<P, S>(
    socket: TcpStream,
    addr: SocketAddr,
    handshake_slot: OwnedSemaphorePermit,
    shared: Arc<Shared<P, S>>,
) where
    P: Policy,
    S: Service<P::Session>,
{
    if let Err(e) = socket.set_nodelay(true) {
        debug!(error = %e, "cannot set TCP_NODELAY");
    }
    let limit = shared.options.handshake_timeout;
    let result = tokio::time::timeout(limit, establish(socket, addr, &shared)).await;
    drop(handshake_slot);
    let (conn, info, session) = match result {
        Ok(Ok(Some(parts))) => parts,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            info!(error = %e, "association not established");
            return;
        }
        Err(_) => {
            info!("association not established within {limit:?}");
            return;
        }
    };
    let stop = shared.stop.clone();
    let label = shared.policy.describe(&session);
    scp::run(conn, info, session, label, shared.service.clone(), stop).await;
}

type Established<T> = Option<(PduConn, AssociationInfo, T)>;

async fn establish<P, S>(
    socket: TcpStream,
    addr: SocketAddr,
    shared: &Shared<P, S>,
) -> Result<Established<P::Session>, DimseError>
where
    P: Policy,
    S: Service<P::Session>,
{
    let opts = &shared.options;
    let handshake_max = opts.max_pdu.max(MAX_ASSOCIATE_RQ);
    let (mut conn, peer) = match &opts.tls {
        Some(config) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(config.clone());
            let tls = acceptor
                .accept(socket)
                .await
                .map_err(|e| DimseError::Tls(e.to_string()))?;
            let certificate = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|c| c.clone().into_owned());
            let conn = PduConn::new(Box::new(tls), handshake_max, opts.handshake_timeout);
            (conn, Peer { addr, certificate })
        }
        None => {
            let conn = PduConn::new(Box::new(socket), handshake_max, opts.handshake_timeout);
            (
                conn,
                Peer {
                    addr,
                    certificate: None,
                },
            )
        }
    };
    let rq = match conn.read_pdu().await {
        Ok(Pdu::AssociationRQ(rq)) => rq,
        Ok(other) => {
            conn.abort(AbortRQServiceProviderReason::UnexpectedPdu)
                .await;
            return Err(DimseError::Unexpected(
                other.short_description().to_string(),
            ));
        }
        Err(e) => {
            conn.abort(AbortRQServiceProviderReason::InvalidPduParameter)
                .await;
            return Err(e);
        }
    };
    conn.set_max_receive(opts.max_pdu);
    let calling_ae = rq.calling_ae_title.trim();
    let called_ae = rq.called_ae_title.trim();
    let refuse = |rj| Pdu::AssociationRJ(rj);
    if rq.protocol_version & 1 == 0 {
        conn.write_pdu(&refuse(assoc::reject_protocol_version()))
            .await?;
        return Ok(None);
    }
    if rq.application_context_name.trim_end_matches(['\0', ' ']) != APPLICATION_CONTEXT {
        conn.write_pdu(&refuse(assoc::reject_application_context()))
            .await?;
        return Ok(None);
    }
    let Ok(permit) = shared.slots.clone().try_acquire_owned() else {
        warn!(
            calling_ae,
            "association limit reached; rejecting as transient"
        );
        conn.write_pdu(&refuse(Rejection::Busy.to_pdu())).await?;
        return Ok(None);
    };
    let request = AssociateRequest {
        calling_ae,
        called_ae,
        peer: &peer,
        user_identity: assoc::user_identity(&rq.user_variables),
        abstract_syntaxes: rq
            .presentation_contexts
            .iter()
            .map(|pc| pc.abstract_syntax.as_str())
            .collect(),
    };
    let session = match shared.policy.admit(&request).await {
        Ok(session) => session,
        Err(rejection) => {
            info!(calling_ae, called_ae, ?rejection, "association rejected");
            conn.write_pdu(&refuse(rejection.to_pdu())).await?;
            return Ok(None);
        }
    };
    let (ac, contexts) = assoc::negotiate(&rq, &*shared.service, opts.max_pdu);
    conn.write_pdu(&Pdu::AssociationAC(ac)).await?;
    let info = AssociationInfo {
        calling_ae: calling_ae.to_string(),
        called_ae: called_ae.to_string(),
        peer,
        contexts,
        peer_max_pdu: assoc::peer_max_pdu(&rq.user_variables),
        read_timeout: opts.read_timeout,
        permit: Some(permit),
    };
    debug!(
        calling_ae,
        contexts = info.contexts.len(),
        "association accepted"
    );
    Ok(Some((conn, info, session)))
}
