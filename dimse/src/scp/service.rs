//! What the acceptor hands to the caller's code: the [`Service`] that answers
//! messages, the [`DataSink`] a C-STORE data set streams into, the [`StoreOutcome`]
//! of an operation and the [`AssociationInfo`] of the association. Interfaces only;
//! the association loop that drives them is the parent module.

use std::future::Future;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, mpsc};

use crate::assoc::{AcceptedContext, Capabilities, Peer};
use crate::command::{CFindRq, CStoreRq};
#[cfg(doc)]
use crate::qr::MAX_IDENTIFIER_LEN;
use crate::qr::{FindResult, MoveDestination, Retrieval, RetrieveRequest};
use crate::status::Status;

/// What the service knows about the association a message arrived on.
#[derive(Debug)]
pub struct AssociationInfo {
    /// Calling AE title.
    pub calling_ae: String,
    /// Called AE title.
    pub called_ae: String,
    /// The transport peer (address, verified certificate).
    pub peer: Peer,
    /// Accepted presentation contexts.
    pub contexts: Vec<AcceptedContext>,
    /// Largest PDU the peer accepts.
    pub peer_max_pdu: u32,
    pub(crate) read_timeout: Duration,
    pub(crate) permit: Option<OwnedSemaphorePermit>,
}

impl AssociationInfo {
    /// The accepted context with this id.
    pub fn context(&self, id: u8) -> Option<&AcceptedContext> {
        self.contexts.iter().find(|c| c.id == id)
    }
}

/// The result of a C-STORE as reported to the requestor; also how a service refuses
/// or fails a C-FIND, C-GET or C-MOVE (a status and an explanatory comment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOutcome {
    /// DIMSE status.
    pub status: Status,
    /// Error Comment (0000,0902), for failures; at most 64 characters are sent.
    pub comment: Option<String>,
}

impl StoreOutcome {
    /// A plain success.
    pub fn success() -> Self {
        StoreOutcome {
            status: Status::Success,
            comment: None,
        }
    }

    /// A status with an explanatory comment.
    pub fn with(status: Status, comment: impl Into<String>) -> Self {
        StoreOutcome {
            status,
            comment: Some(comment.into()),
        }
    }
}

/// Where a received data set goes, fragment by fragment.
pub trait DataSink: Send {
    /// Takes the next fragment of the data set.
    fn write(&mut self, chunk: &[u8]) -> impl Future<Output = Result<(), StoreOutcome>> + Send;
    /// The whole data set arrived: make it durable (or refuse it) and say how it went.
    fn finish(self) -> impl Future<Output = StoreOutcome> + Send;
    /// The transfer failed or was abandoned: remove every trace of it.
    fn discard(self) -> impl Future<Output = ()> + Send;
}

/// Handles the DIMSE messages of an association. `Session` is what the [`Policy`]
/// admitted the association as.
///
/// [`Policy`]: crate::server::Policy
pub trait Service<Session>: Capabilities + Send + Sync + 'static {
    /// Sink for C-STORE data sets.
    type Sink: DataSink;

    /// Answers a C-ECHO.
    fn echo(
        &self,
        _session: &Session,
        _association: &AssociationInfo,
    ) -> impl Future<Output = Status> + Send {
        async { Status::Success }
    }

    /// Starts receiving a C-STORE data set on `context`; an `Err` refuses it (the data
    /// set is then read and dropped, and the outcome sent as the response).
    fn begin_store(
        &self,
        session: &Session,
        association: &AssociationInfo,
        request: &CStoreRq,
        context: &AcceptedContext,
    ) -> impl Future<Output = Result<Self::Sink, StoreOutcome>> + Send;

    /// Starts a C-FIND on `context`. `identifier` is the request's identifier as
    /// received (in the context's transfer syntax, at most [`MAX_IDENTIFIER_LEN`]
    /// bytes). Each [`FindResult`] received is sent at once as a pending response; the
    /// closed channel ends the search with Success. On C-CANCEL the receiver is dropped
    /// (the producer's `send` fails: it should stop) and the final status is Cancel.
    /// An `Err` refuses the query with that status. The default refuses every query.
    fn find(
        &self,
        _session: &Session,
        _association: &AssociationInfo,
        _request: &CFindRq,
        _context: &AcceptedContext,
        _identifier: Vec<u8>,
    ) -> impl Future<Output = Result<mpsc::Receiver<FindResult>, StoreOutcome>> + Send {
        async { Err(unsupported("C-FIND")) }
    }

    /// Starts a C-GET or C-MOVE on `context` (same identifier rules as
    /// [`Service::find`]). Each item is sent as a C-STORE sub-operation: back on this
    /// association for a C-GET (over a context whose SCP role was accepted, see
    /// [`Capabilities::sends_storage`]), to the [`Service::move_destination`] for a
    /// C-MOVE; a pending response with the sub-operation counts follows each one. The
    /// default refuses every retrieval.
    fn retrieve(
        &self,
        _session: &Session,
        _association: &AssociationInfo,
        _request: &RetrieveRequest,
        _context: &AcceptedContext,
        _identifier: Vec<u8>,
    ) -> impl Future<Output = Result<Retrieval, StoreOutcome>> + Send {
        async { Err(unsupported("C-GET and C-MOVE")) }
    }

    /// Where the C-MOVE destination `ae_title` is reached; `None` refuses the C-MOVE
    /// with Move Destination Unknown (0xA801) before [`Service::retrieve`] is asked.
    /// The default knows no destination.
    fn move_destination(
        &self,
        _session: &Session,
        _association: &AssociationInfo,
        _ae_title: &str,
    ) -> impl Future<Output = Option<MoveDestination>> + Send {
        async { None }
    }
}

fn unsupported(what: &str) -> StoreOutcome {
    StoreOutcome::with(
        Status::UnrecognizedOperation,
        format!("{what} is not supported here"),
    )
}
