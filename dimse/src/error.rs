//! Errors of the DIMSE layer.

use std::time::Duration;

use crate::command::CommandError;

/// What went wrong on an association.
#[derive(Debug, thiserror::Error)]
pub enum DimseError {
    /// The transport failed (reset, broken pipe, TLS alert...).
    #[error("network I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent nothing for too long.
    #[error("the peer sent nothing for {0:?}")]
    Timeout(Duration),
    /// The peer closed the connection between PDUs.
    #[error("the peer closed the connection")]
    Closed,
    /// A PDU larger than the negotiated maximum.
    #[error("PDU of {length} bytes exceeds the negotiated maximum of {max} bytes")]
    PduTooLarge {
        /// Declared length.
        length: u32,
        /// Negotiated maximum.
        max: u32,
    },
    /// Bytes that do not form a valid PDU.
    #[error("malformed PDU: {0}")]
    Malformed(String),
    /// A valid PDU at the wrong moment.
    #[error("unexpected PDU: {0}")]
    Unexpected(String),
    /// A command set that cannot be decoded.
    #[error("invalid DIMSE command: {0}")]
    Command(#[from] CommandError),
    /// A PDU could not be encoded.
    #[error("cannot encode PDU: {0}")]
    Encode(String),
    /// The TLS handshake failed.
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// The peer rejected the association.
    #[error("association rejected by the peer: {0}")]
    Rejected(String),
    /// The peer aborted the association.
    #[error("association aborted by the peer")]
    Aborted,
    /// No presentation context fits what is to be sent.
    #[error("no accepted presentation context for {0}")]
    NoContext(String),
    /// A Part-10 file that cannot be sent.
    #[error("cannot send {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}
