//! The association acceptor: accept loop, admission of new connections (see
//! [`crate::admission`]: bounded per address and globally, shedding the least
//! advanced connections of the busiest address rather than refusing newcomers, a
//! first-byte timeout), TLS handshake, association negotiation, limits and graceful
//! shutdown. Refusals are counted and logged as one summary line per interval.
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
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::admission::{Admission, AdmissionOptions, Refusal, RefusalLog, Stage, Ticket};
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

    /// Called once per connection refused, shed or timed out before its association
    /// was established (e.g. to count it in a metric). The default does nothing.
    fn refused(&self, _reason: Refusal) {}
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
    /// Bounds on connections before their association is established.
    pub admission: AdmissionOptions,
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
            admission: AdmissionOptions::default(),
            shutdown_grace: Duration::from_secs(10),
            tls: None,
        }
    }
}

struct Shared<P, S> {
    options: ServerOptions,
    policy: Arc<P>,
    service: Arc<S>,
    /// Established associations.
    slots: Arc<Semaphore>,
    stop: CancellationToken,
}

/// The name of the listener in log lines: `tls` or `plain`.
fn listener_name(options: &ServerOptions) -> &'static str {
    match options.tls {
        Some(_) => "tls",
        None => "plain",
    }
}

/// Warns about failed accepts (e.g. out of file descriptors) at most once per
/// interval, with the number of failures since the last warning.
#[derive(Default)]
struct AcceptFailures {
    last_warned: Option<std::time::Instant>,
    unreported: u64,
}

impl AcceptFailures {
    fn failed(&mut self, error: &std::io::Error, interval: Duration) {
        self.unreported += 1;
        if self.last_warned.is_none_or(|at| at.elapsed() >= interval) {
            warn!(error = %error, failures = self.unreported, "accept failed");
            self.last_warned = Some(std::time::Instant::now());
            self.unreported = 0;
        }
    }
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
    let policy = Arc::new(policy);
    let hook_policy = policy.clone();
    let log = Arc::new(RefusalLog::new(
        listener_name(&options),
        Some(Arc::new(move |reason| hook_policy.refused(reason))),
    ));
    let log_interval = options.admission.log_interval;
    let admission = Admission::new(options.admission.clone(), log.clone());
    let shared = Arc::new(Shared {
        slots: Arc::new(Semaphore::new(options.max_associations)),
        options,
        policy,
        service,
        stop: CancellationToken::new(),
    });
    let log_stop = CancellationToken::new();
    let log_task = tokio::spawn(log.run(log_interval, log_stop.clone()));
    let mut failures = AcceptFailures::default();
    let tracker = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, addr)) => {
                    // Connections that never associate must not hold association
                    // slots: they hold a place in the admission registry, which sheds
                    // the least advanced ones of the busiest address when full.
                    let ticket = admission.admit(addr.ip());
                    let span = info_span!("association", peer = %addr);
                    tracker.spawn(handle(socket, addr, ticket, shared.clone()).instrument(span));
                }
                Err(e) => {
                    failures.failed(&e, log_interval);
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
    log_stop.cancel();
    let _ = log_task.await;
}

async fn handle<P, S>(
    socket: TcpStream,
    addr: SocketAddr,
    ticket: Ticket,
    shared: Arc<Shared<P, S>>,
) where
    P: Policy,
    S: Service<P::Session>,
{
    if let Err(e) = socket.set_nodelay(true) {
        debug!(error = %e, "cannot set TCP_NODELAY");
    }
    let limit = shared.options.handshake_timeout;
    let attempt = async {
        if !ticket.first_byte(&socket).await {
            return Ok(None);
        }
        establish(socket, addr, &ticket, &shared).await
    };
    let result = tokio::select! {
        result = tokio::time::timeout(limit, attempt) => result,
        // Counted by the registry that shed it.
        () = ticket.shed() => return,
    };
    let refuse = |reason| ticket.refuse(reason);
    let (conn, info, session) = match result {
        Ok(Ok(Some(parts))) => parts,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            debug!(error = %e, "association not established");
            refuse(match e {
                DimseError::Timeout(_) => Refusal::HandshakeTimeout,
                _ => Refusal::HandshakeFailed,
            });
            return;
        }
        Err(_) => {
            debug!("association not established within {limit:?}");
            refuse(Refusal::HandshakeTimeout);
            return;
        }
    };
    // Established: the association holds a slot now, no longer a registry place.
    drop(ticket);
    let stop = shared.stop.clone();
    let label = shared.policy.describe(&session);
    scp::run(conn, info, session, label, shared.service.clone(), stop).await;
}

/// How long a refused peer is given to close the connection after our
/// A-ASSOCIATE-RJ (PS3.8 ARTIM timer) before we drop it.
const ARTIM: Duration = Duration::from_secs(2);

type Established<T> = Option<(PduConn, AssociationInfo, T)>;

async fn establish<P, S>(
    socket: TcpStream,
    addr: SocketAddr,
    ticket: &Ticket,
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
            ticket.advance(Stage::Verified);
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
        ticket.refuse(Refusal::Rejected);
        conn.write_pdu(&refuse(assoc::reject_protocol_version()))
            .await?;
        conn.linger(ARTIM).await;
        return Ok(None);
    }
    if rq.application_context_name.trim_end_matches(['\0', ' ']) != APPLICATION_CONTEXT {
        ticket.refuse(Refusal::Rejected);
        conn.write_pdu(&refuse(assoc::reject_application_context()))
            .await?;
        conn.linger(ARTIM).await;
        return Ok(None);
    }
    let Ok(permit) = shared.slots.clone().try_acquire_owned() else {
        debug!(
            calling_ae,
            "association limit reached; rejecting as transient"
        );
        ticket.refuse(Refusal::Busy);
        conn.write_pdu(&refuse(Rejection::Busy.to_pdu())).await?;
        conn.linger(ARTIM).await;
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
            debug!(calling_ae, called_ae, ?rejection, "association rejected");
            ticket.refuse(Refusal::Rejected);
            conn.write_pdu(&refuse(rejection.to_pdu())).await?;
            conn.linger(ARTIM).await;
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
