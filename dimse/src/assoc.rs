//! Association negotiation as the acceptor: the typed view of an A-ASSOCIATE-RQ that
//! policies decide on, the rejection reasons they may give, and the choice of
//! presentation contexts. Pure functions over PDUs; no I/O.

use std::net::SocketAddr;

use dicom_ul::pdu::{
    AssociationAC, AssociationRJ, AssociationRJResult, AssociationRJServiceProviderASCEReason,
    AssociationRJServiceProviderPresentationReason, AssociationRJServiceUserReason,
    AssociationRJSource, AssociationRQ, PresentationContextResult, PresentationContextResultReason,
    UserIdentity, UserVariableItem,
};
use rustls::pki_types::CertificateDer;

/// The DICOM application context name.
pub const APPLICATION_CONTEXT: &str = "1.2.840.10008.3.1.1.1";
/// Implementation Class UID of this product.
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.204311986107734385126870945734651922361";
/// Implementation Version Name of this product (at most 16 characters).
pub const IMPLEMENTATION_VERSION: &str = "PACSGW_0_1";
/// Explicit VR Little Endian.
pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
/// Implicit VR Little Endian.
pub const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
/// Verification SOP Class (C-ECHO).
pub const VERIFICATION: &str = "1.2.840.10008.1.1";

/// A presentation context both sides agreed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedContext {
    /// Presentation context id (odd, 1..=255).
    pub id: u8,
    /// SOP class.
    pub abstract_syntax: String,
    /// Transfer syntax the data sets on this context use.
    pub transfer_syntax: String,
}

/// Who is on the other end of the transport.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Remote socket address.
    pub addr: SocketAddr,
    /// Leaf certificate the peer presented, verified against the configured roots
    /// (TLS only).
    pub certificate: Option<CertificateDer<'static>>,
}

/// What a policy sees of an association request.
#[derive(Debug)]
pub struct AssociateRequest<'a> {
    /// Calling AE title, trimmed.
    pub calling_ae: &'a str,
    /// Called AE title, trimmed.
    pub called_ae: &'a str,
    /// The transport peer.
    pub peer: &'a Peer,
    /// User identity sub-item, if the requestor sent one.
    pub user_identity: Option<&'a UserIdentity>,
    /// Abstract syntaxes proposed.
    pub abstract_syntaxes: Vec<&'a str>,
}

/// Why an association is refused (A-ASSOCIATE-RJ).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The calling AE (or the certificate, or the user) is not known.
    CallingAeNotRecognized,
    /// The called AE title is not ours.
    CalledAeNotRecognized,
    /// Refused without a more specific reason (bad credentials, for instance).
    NoReason,
    /// Too many associations at once; try again later.
    Busy,
}

impl Rejection {
    /// The A-ASSOCIATE-RJ PDU for this rejection.
    pub fn to_pdu(&self) -> AssociationRJ {
        let (result, source) = match self {
            Rejection::CallingAeNotRecognized => (
                AssociationRJResult::Permanent,
                AssociationRJSource::ServiceUser(
                    AssociationRJServiceUserReason::CallingAETitleNotRecognized,
                ),
            ),
            Rejection::CalledAeNotRecognized => (
                AssociationRJResult::Permanent,
                AssociationRJSource::ServiceUser(
                    AssociationRJServiceUserReason::CalledAETitleNotRecognized,
                ),
            ),
            Rejection::NoReason => (
                AssociationRJResult::Permanent,
                AssociationRJSource::ServiceUser(AssociationRJServiceUserReason::NoReasonGiven),
            ),
            Rejection::Busy => (
                AssociationRJResult::Transient,
                AssociationRJSource::ServiceProviderPresentation(
                    AssociationRJServiceProviderPresentationReason::LocalLimitExceeded,
                ),
            ),
        };
        AssociationRJ { result, source }
    }
}

/// Rejection for an unsupported application context name.
pub(crate) fn reject_application_context() -> AssociationRJ {
    AssociationRJ {
        result: AssociationRJResult::Permanent,
        source: AssociationRJSource::ServiceUser(
            AssociationRJServiceUserReason::ApplicationContextNameNotSupported,
        ),
    }
}

/// Rejection for a protocol version without bit 0.
pub(crate) fn reject_protocol_version() -> AssociationRJ {
    AssociationRJ {
        result: AssociationRJResult::Permanent,
        source: AssociationRJSource::ServiceProviderASCE(
            AssociationRJServiceProviderASCEReason::ProtocolVersionNotSupported,
        ),
    }
}

/// Which syntaxes an acceptor supports.
pub trait Capabilities {
    /// Whether the abstract syntax (SOP class) is served.
    fn supports_abstract_syntax(&self, uid: &str) -> bool;
    /// Whether data sets in this transfer syntax are accepted.
    fn supports_transfer_syntax(&self, uid: &str) -> bool;
}

/// Picks the transfer syntax for one proposed context: Explicit VR Little Endian when
/// offered, otherwise the requestor's first supported choice (we never transcode, so
/// the sender's preference wins).
fn choose_transfer_syntax<'a>(
    caps: &impl Capabilities,
    proposed: &'a [String],
) -> Option<&'a String> {
    let trimmed = |s: &String| s.trim_end_matches(['\0', ' ']).to_string();
    proposed
        .iter()
        .find(|ts| trimmed(ts) == EXPLICIT_VR_LE && caps.supports_transfer_syntax(EXPLICIT_VR_LE))
        .or_else(|| {
            proposed
                .iter()
                .find(|ts| caps.supports_transfer_syntax(&trimmed(ts)))
        })
}

/// Negotiates the presentation contexts of `rq`, returning the A-ASSOCIATE-AC to send
/// and the contexts accepted.
pub fn negotiate(
    rq: &AssociationRQ,
    caps: &impl Capabilities,
    max_pdu: u32,
) -> (AssociationAC, Vec<AcceptedContext>) {
    let mut results = Vec::with_capacity(rq.presentation_contexts.len());
    let mut accepted = Vec::new();
    for pc in &rq.presentation_contexts {
        let abstract_syntax = pc.abstract_syntax.trim_end_matches(['\0', ' ']);
        let first = pc.transfer_syntaxes.first().cloned().unwrap_or_default();
        let (reason, ts) = if !caps.supports_abstract_syntax(abstract_syntax) {
            (
                PresentationContextResultReason::AbstractSyntaxNotSupported,
                first,
            )
        } else if let Some(ts) = choose_transfer_syntax(caps, &pc.transfer_syntaxes) {
            let ts = ts.trim_end_matches(['\0', ' ']).to_string();
            accepted.push(AcceptedContext {
                id: pc.id,
                abstract_syntax: abstract_syntax.to_string(),
                transfer_syntax: ts.clone(),
            });
            (PresentationContextResultReason::Acceptance, ts)
        } else {
            (
                PresentationContextResultReason::TransferSyntaxesNotSupported,
                first,
            )
        };
        results.push(PresentationContextResult {
            id: pc.id,
            reason,
            transfer_syntax: ts,
        });
    }
    let ac = AssociationAC {
        protocol_version: 1,
        calling_ae_title: rq.calling_ae_title.clone(),
        called_ae_title: rq.called_ae_title.clone(),
        application_context_name: APPLICATION_CONTEXT.to_string(),
        presentation_contexts: results,
        user_variables: vec![
            UserVariableItem::MaxLength(max_pdu),
            UserVariableItem::ImplementationClassUID(IMPLEMENTATION_CLASS_UID.to_string()),
            UserVariableItem::ImplementationVersionName(IMPLEMENTATION_VERSION.to_string()),
        ],
    };
    (ac, accepted)
}

/// The maximum PDU length the peer announced (0 means unlimited; we then use 1 MiB).
pub fn peer_max_pdu(user_variables: &[UserVariableItem]) -> u32 {
    let announced = user_variables.iter().find_map(|v| match v {
        UserVariableItem::MaxLength(n) => Some(*n),
        _ => None,
    });
    match announced {
        Some(0) => 1024 * 1024,
        Some(n) => n.max(dicom_ul::pdu::MINIMUM_PDU_SIZE),
        None => dicom_ul::pdu::DEFAULT_MAX_PDU,
    }
}

/// The user identity sub-item of a request, if any.
pub fn user_identity(user_variables: &[UserVariableItem]) -> Option<&UserIdentity> {
    user_variables.iter().find_map(|v| match v {
        UserVariableItem::UserIdentityItem(id) => Some(id),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_ul::pdu::PresentationContextProposed;

    struct Caps;
    impl Capabilities for Caps {
        fn supports_abstract_syntax(&self, uid: &str) -> bool {
            uid == VERIFICATION || uid == "1.2.840.10008.5.1.4.1.1.2"
        }
        fn supports_transfer_syntax(&self, uid: &str) -> bool {
            uid == EXPLICIT_VR_LE || uid == IMPLICIT_VR_LE || uid == "1.2.840.10008.1.2.4.50"
        }
    }

    fn rq(contexts: Vec<(u8, &str, Vec<&str>)>) -> AssociationRQ {
        AssociationRQ {
            protocol_version: 1,
            calling_ae_title: "SCU".into(),
            called_ae_title: "SCP".into(),
            application_context_name: APPLICATION_CONTEXT.into(),
            presentation_contexts: contexts
                .into_iter()
                .map(|(id, a, ts)| PresentationContextProposed {
                    id,
                    abstract_syntax: a.into(),
                    transfer_syntaxes: ts.into_iter().map(String::from).collect(),
                })
                .collect(),
            user_variables: vec![UserVariableItem::MaxLength(16384)],
        }
    }

    #[test]
    fn prefers_explicit_le_then_sender_order_and_rejects_unknown() {
        let request = rq(vec![
            (1, VERIFICATION, vec![IMPLICIT_VR_LE, EXPLICIT_VR_LE]),
            (
                3,
                "1.2.840.10008.5.1.4.1.1.2",
                vec!["1.2.840.10008.1.2.4.50"],
            ),
            (5, "1.2.3.4", vec![EXPLICIT_VR_LE]),
            (
                7,
                "1.2.840.10008.5.1.4.1.1.2",
                vec!["1.2.840.10008.1.2.4.90"],
            ),
        ]);
        let (ac, accepted) = negotiate(&request, &Caps, 65536);
        assert_eq!(accepted.len(), 2);
        assert_eq!(accepted[0].transfer_syntax, EXPLICIT_VR_LE);
        assert_eq!(accepted[1].transfer_syntax, "1.2.840.10008.1.2.4.50");
        let reasons: Vec<_> = ac
            .presentation_contexts
            .iter()
            .map(|r| r.reason.clone())
            .collect();
        assert_eq!(
            reasons,
            vec![
                PresentationContextResultReason::Acceptance,
                PresentationContextResultReason::Acceptance,
                PresentationContextResultReason::AbstractSyntaxNotSupported,
                PresentationContextResultReason::TransferSyntaxesNotSupported,
            ]
        );
    }

    #[test]
    fn peer_max_pdu_defaults() {
        assert_eq!(peer_max_pdu(&[UserVariableItem::MaxLength(0)]), 1024 * 1024);
        assert_eq!(peer_max_pdu(&[UserVariableItem::MaxLength(16384)]), 16384);
        assert_eq!(peer_max_pdu(&[]), dicom_ul::pdu::DEFAULT_MAX_PDU);
    }
}
