//! The DICOM network layer that `dicom-ul` lacks: DIMSE.
//!
//! Owns typed DIMSE messages and their command-set encoding ([`command`], [`status`]),
//! association negotiation ([`assoc`]), the acceptor over TCP or DICOM TLS with its
//! timeouts, limits and graceful shutdown ([`server`]), streaming receive of data sets
//! into any async sink ([`scp`]), the streaming structural check of a received data set
//! ([`scan`]), query/retrieve streaming with cancel and sub-operations ([`qr`], on both
//! sides), the requestor side ([`scu`]), and the
//! transfer-syntax conversion of retrieved instances ([`transcode`]). It does no policy: who may associate
//! ([`server::Policy`]), what happens to a received instance and what a query matches
//! ([`scp::Service`]) are decided by the caller's implementations. No SQL, HTTP or
//! configuration here.

pub mod admission;
pub mod assoc;
pub mod charset;
pub mod command;
pub mod error;
pub mod part10;
pub mod pdu_io;
pub mod qr;
pub mod scan;
pub mod scp;
pub mod scu;
pub mod server;
pub mod sop;
pub mod status;
pub mod throttle;
pub mod tls;
pub mod transcode;

pub use error::DimseError;
pub use status::Status;
