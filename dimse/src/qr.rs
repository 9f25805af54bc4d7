//! Query/retrieve as the DIMSE layer sees it: the SOP classes, what a
//! [`Service`](crate::scp::Service) hands back for a C-FIND (a stream of
//! [`FindResult`]s) or a C-GET / C-MOVE (a [`Retrieval`], a stream of
//! [`RetrieveItem`]s), and where a C-MOVE goes ([`MoveDestination`]).
//!
//! Identifiers are opaque bytes here, already encoded in the presentation context's
//! transfer syntax: matching keys against an index is the service's business, not
//! this crate's; the rules a matching value must follow are ([`values`]), for both
//! sides to check with.

pub mod values;

use tokio::io::AsyncRead;
use tokio::sync::mpsc;

use crate::assoc::{EXPLICIT_VR_LE, IMPLICIT_VR_LE};
use crate::command::{CGetRq, CMoveRq};
use crate::scp::StoreOutcome;
use crate::scu::ClientTls;

/// Patient Root Query/Retrieve Information Model - FIND.
pub const PATIENT_ROOT_FIND: &str = "1.2.840.10008.5.1.4.1.2.1.1";
/// Patient Root Query/Retrieve Information Model - MOVE.
pub const PATIENT_ROOT_MOVE: &str = "1.2.840.10008.5.1.4.1.2.1.2";
/// Patient Root Query/Retrieve Information Model - GET.
pub const PATIENT_ROOT_GET: &str = "1.2.840.10008.5.1.4.1.2.1.3";
/// Study Root Query/Retrieve Information Model - FIND.
pub const STUDY_ROOT_FIND: &str = "1.2.840.10008.5.1.4.1.2.2.1";
/// Study Root Query/Retrieve Information Model - MOVE.
pub const STUDY_ROOT_MOVE: &str = "1.2.840.10008.5.1.4.1.2.2.2";
/// Study Root Query/Retrieve Information Model - GET.
pub const STUDY_ROOT_GET: &str = "1.2.840.10008.5.1.4.1.2.2.3";

/// The largest C-FIND / C-GET / C-MOVE identifier the acceptor reads into memory;
/// a larger one is answered with [`Status::OutOfResources`](crate::Status).
pub const MAX_IDENTIFIER_LEN: usize = 1024 * 1024;

/// One result of a C-FIND, as produced by the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FindResult {
    /// A match: its identifier, encoded in the context's transfer syntax. Sent as a
    /// Pending (0xFF00) response.
    Match(Vec<u8>),
    /// A match computed without some optional keys the request asked for: sent as
    /// Pending with warning (0xFF01).
    MatchWithoutOptionalKeys(Vec<u8>),
    /// The search failed: no more matches; this is the final response.
    Failed(StoreOutcome),
}

/// A C-GET or C-MOVE request, as handed to the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetrieveRequest {
    /// Instances go back on the requesting association.
    Get(CGetRq),
    /// Instances go to `move_destination` on a new association.
    Move(CMoveRq),
}

impl RetrieveRequest {
    /// The request's message id.
    pub fn message_id(&self) -> u16 {
        match self {
            RetrieveRequest::Get(rq) => rq.message_id,
            RetrieveRequest::Move(rq) => rq.message_id,
        }
    }

    /// The information model (SOP class) of the request.
    pub fn sop_class_uid(&self) -> &str {
        match self {
            RetrieveRequest::Get(rq) => &rq.affected_sop_class_uid,
            RetrieveRequest::Move(rq) => &rq.affected_sop_class_uid,
        }
    }

    /// The C-MOVE destination AE title; `None` for a C-GET.
    pub fn move_destination(&self) -> Option<&str> {
        match self {
            RetrieveRequest::Get(_) => None,
            RetrieveRequest::Move(rq) => Some(&rq.move_destination),
        }
    }
}

/// One instance to send as a C-STORE sub-operation, as stored: it goes in
/// `transfer_syntax` when the receiver accepted that for its SOP class, and is
/// converted ([`crate::transcode`]) to another accepted syntax otherwise; when none
/// can carry it, it counts as failed.
pub struct RetrieveItem {
    /// SOP class.
    pub sop_class_uid: String,
    /// SOP instance.
    pub sop_instance_uid: String,
    /// Transfer syntax the data set is encoded in.
    pub transfer_syntax: String,
    /// The data set (no Part-10 preamble or meta header), streamed in PDVs.
    pub data: Box<dyn AsyncRead + Send + Unpin>,
}

impl std::fmt::Debug for RetrieveItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetrieveItem")
            .field("sop_class_uid", &self.sop_class_uid)
            .field("sop_instance_uid", &self.sop_instance_uid)
            .field("transfer_syntax", &self.transfer_syntax)
            .finish_non_exhaustive()
    }
}

/// What a service answers to a C-GET or C-MOVE: how many instances it will send, and
/// the instances themselves, in order.
///
/// Items that never come (the channel closes after fewer than `total`) count as
/// failed sub-operations. Dropping the receiver (on C-CANCEL) tells the producer to
/// stop: its `send` fails.
#[derive(Debug)]
pub struct Retrieval {
    /// Number of sub-operations: the "remaining" count of the first pending response.
    pub total: usize,
    /// (SOP class, transfer syntax) pairs the items use, if known: a C-MOVE proposes
    /// them all on the destination association at once (otherwise it associates again
    /// when an item needs a pair not yet proposed).
    pub syntaxes: Vec<(String, String)>,
    /// The instances.
    pub items: mpsc::Receiver<RetrieveItem>,
}

/// Where a C-MOVE destination AE title is reached.
#[derive(Debug, Clone)]
pub struct MoveDestination {
    /// `host:port`.
    pub address: String,
    /// The destination's AE title (the called AE of the new association).
    pub ae_title: String,
    /// DICOM TLS to the destination, or plain TCP.
    pub tls: Option<ClientTls>,
}

/// The identifier of a final C-GET / C-MOVE response listing failed instances:
/// Failed SOP Instance UID List (0008,0058), in `transfer_syntax` when it is one of
/// the little endian uncompressed syntaxes (`None` otherwise, or without failures).
/// The list is cut to fit the 64 KiB value of an explicit VR UI element.
pub(crate) fn failed_instances_identifier(
    transfer_syntax: &str,
    failed: &[String],
) -> Option<Vec<u8>> {
    if failed.is_empty() {
        return None;
    }
    let explicit = match transfer_syntax {
        EXPLICIT_VR_LE => true,
        IMPLICIT_VR_LE => false,
        _ => return None,
    };
    let mut value = String::new();
    for uid in failed {
        if value.len() + uid.len() + 2 > 0xFFFE {
            break;
        }
        if !value.is_empty() {
            value.push('\\');
        }
        value.push_str(uid);
    }
    let mut value = value.into_bytes();
    if value.len() % 2 == 1 {
        value.push(0);
    }
    let mut out = vec![0x08, 0x00, 0x58, 0x00];
    if explicit {
        out.extend_from_slice(b"UI");
        out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(&value);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_instance_list_in_both_little_endian_syntaxes() {
        let failed = vec!["1.2.3".to_string(), "1.2.44".to_string()];
        let implicit = failed_instances_identifier(IMPLICIT_VR_LE, &failed).unwrap();
        assert_eq!(&implicit[..8], &[0x08, 0, 0x58, 0, 12, 0, 0, 0]);
        assert_eq!(&implicit[8..], b"1.2.3\\1.2.44");
        let explicit = failed_instances_identifier(EXPLICIT_VR_LE, &failed[..1]).unwrap();
        assert_eq!(&explicit[..8], &[0x08, 0, 0x58, 0, b'U', b'I', 6, 0]);
        assert_eq!(&explicit[8..], b"1.2.3\0");
        assert_eq!(
            failed_instances_identifier("1.2.840.10008.1.2.2", &failed),
            None
        );
        assert_eq!(failed_instances_identifier(IMPLICIT_VR_LE, &[]), None);
    }
}
