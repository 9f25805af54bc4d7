//! Association negotiation as the acceptor: the typed view of an A-ASSOCIATE-RQ that
//! policies decide on, the rejection reasons they may give, the choice of
//! presentation contexts and the answer to SCP/SCU Role Selection (PS3.7 D.3.3.4).
//! Pure functions over PDUs; no I/O.

use std::net::SocketAddr;

use dicom_ul::pdu::{
    AssociationAC, AssociationRJ, AssociationRJResult, AssociationRJServiceProviderASCEReason,
    AssociationRJServiceProviderPresentationReason, AssociationRJServiceUserReason,
    AssociationRJSource, AssociationRQ, PresentationContextResult, PresentationContextResultReason,
    RequestorRoles, UserIdentity, UserVariableItem,
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
    /// The association requestor may send requests of this SOP class (the default
    /// role; false only when Role Selection made the requestor SCP alone).
    pub scu_role: bool,
    /// The association acceptor may send requests of this SOP class to the requestor:
    /// the C-STORE sub-operations of a C-GET (accepted through Role Selection).
    pub scp_role: bool,
}

/// An SCP/SCU Role Selection sub-item (PS3.7 D.3.3.4), from the requestor's side:
/// which roles the requestor proposes (or the acceptor accepted) for one SOP class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSelection {
    /// The SOP class.
    pub sop_class_uid: String,
    /// The requestor acts as SCU (sends requests).
    pub scu_role: bool,
    /// The requestor acts as SCP (receives requests): what a C-GET requestor proposes
    /// for the storage classes it wants back.
    pub scp_role: bool,
}

impl RoleSelection {
    /// The requestor as SCP only, as DCMTK's `getscu` proposes storage classes.
    pub fn scp(sop_class_uid: impl Into<String>) -> Self {
        RoleSelection {
            sop_class_uid: sop_class_uid.into(),
            scu_role: false,
            scp_role: true,
        }
    }

    /// The sub-item of an A-ASSOCIATE PDU.
    pub fn to_item(&self) -> UserVariableItem {
        UserVariableItem::ScuScpRoleSelectionSubItem(
            self.sop_class_uid.clone(),
            RequestorRoles {
                scu: self.scu_role,
                scp: self.scp_role,
            },
        )
    }
}

/// The Role Selection sub-items of an A-ASSOCIATE-RQ or -AC.
pub fn role_selections(user_variables: &[UserVariableItem]) -> Vec<RoleSelection> {
    user_variables
        .iter()
        .filter_map(|v| match v {
            UserVariableItem::ScuScpRoleSelectionSubItem(uid, roles) => Some(RoleSelection {
                sop_class_uid: uid.trim_end_matches(['\0', ' ']).to_string(),
                scu_role: roles.scu,
                scp_role: roles.scp,
            }),
            _ => None,
        })
        .collect()
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
    /// Whether this acceptor sends C-STOREs back to a requestor (C-GET): if so, the
    /// SCP role a requestor proposes for a supported storage class is accepted.
    fn sends_storage(&self) -> bool {
        false
    }
}

/// The roles granted for `abstract_syntax`: the default (requestor SCU) without a
/// Role Selection item; otherwise the requested SCU role, and the requested SCP role
/// for storage classes when the acceptor sends storage.
fn granted_roles(
    caps: &impl Capabilities,
    requested: &[RoleSelection],
    abstract_syntax: &str,
) -> (bool, bool) {
    match requested
        .iter()
        .find(|r| r.sop_class_uid == abstract_syntax)
    {
        None => (true, false),
        Some(r) => (
            r.scu_role,
            r.scp_role && caps.sends_storage() && crate::sop::is_storage_sop_class(abstract_syntax),
        ),
    }
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

/// Picks the transfer syntax of a context on which this acceptor sends C-STOREs (the
/// sub-operations of a C-GET): the requestor's first choice that can be sent, stored
/// so or converted to ([`crate::transcode`]). DCMTK's getscu proposes several
/// syntaxes in one context, its preferred first: a compressed first choice is
/// honoured, so that an instance stored in it goes as it is and others are converted
/// to it. When the first choice is uncompressed, Explicit VR Little Endian is taken
/// if offered (requestors list the uncompressed syntaxes in no meaningful order, and
/// most instances are stored so: they then go as they are).
fn choose_for_sending<'a>(caps: &impl Capabilities, proposed: &'a [String]) -> Option<&'a String> {
    let trimmed = |ts: &'a String| ts.trim_end_matches(['\0', ' ']);
    let first = proposed.iter().find(|ts| {
        let ts = trimmed(ts);
        caps.supports_transfer_syntax(ts)
            && (crate::transcode::can_encode(ts) || crate::transcode::can_decode(ts))
    })?;
    if crate::transcode::is_native(trimmed(first))
        && let Some(explicit) = proposed.iter().find(|ts| trimmed(ts) == EXPLICIT_VR_LE)
        && caps.supports_transfer_syntax(EXPLICIT_VR_LE)
    {
        return Some(explicit);
    }
    Some(first)
}

/// Negotiates the presentation contexts and roles of `rq`, returning the
/// A-ASSOCIATE-AC to send and the contexts accepted. A context whose SOP class would
/// be left with neither role (the requestor asked to be SCP only and that was
/// refused) is rejected, as it could carry nothing.
pub fn negotiate(
    rq: &AssociationRQ,
    caps: &impl Capabilities,
    max_pdu: u32,
) -> (AssociationAC, Vec<AcceptedContext>) {
    let requested = role_selections(&rq.user_variables);
    let mut results = Vec::with_capacity(rq.presentation_contexts.len());
    let mut accepted: Vec<AcceptedContext> = Vec::new();
    for pc in &rq.presentation_contexts {
        let abstract_syntax = pc.abstract_syntax.trim_end_matches(['\0', ' ']);
        let first = pc.transfer_syntaxes.first().cloned().unwrap_or_default();
        let (scu_role, scp_role) = granted_roles(caps, &requested, abstract_syntax);
        let (reason, ts) = if !caps.supports_abstract_syntax(abstract_syntax) {
            (
                PresentationContextResultReason::AbstractSyntaxNotSupported,
                first,
            )
        } else if !scu_role && !scp_role {
            (PresentationContextResultReason::UserRejection, first)
        } else if let Some(ts) = if scp_role {
            choose_for_sending(caps, &pc.transfer_syntaxes)
        } else {
            choose_transfer_syntax(caps, &pc.transfer_syntaxes)
        } {
            let ts = ts.trim_end_matches(['\0', ' ']).to_string();
            accepted.push(AcceptedContext {
                id: pc.id,
                abstract_syntax: abstract_syntax.to_string(),
                transfer_syntax: ts.clone(),
                scu_role,
                scp_role,
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
    let mut user_variables = vec![
        UserVariableItem::MaxLength(max_pdu),
        UserVariableItem::ImplementationClassUID(IMPLEMENTATION_CLASS_UID.to_string()),
        UserVariableItem::ImplementationVersionName(IMPLEMENTATION_VERSION.to_string()),
    ];
    // Answer each Role Selection item whose class was accepted.
    for role in &requested {
        if let Some(c) = accepted
            .iter()
            .find(|c| c.abstract_syntax == role.sop_class_uid)
        {
            let answer = RoleSelection {
                sop_class_uid: role.sop_class_uid.clone(),
                scu_role: c.scu_role,
                scp_role: c.scp_role,
            };
            user_variables.push(answer.to_item());
        }
    }
    let ac = AssociationAC {
        protocol_version: 1,
        calling_ae_title: rq.calling_ae_title.clone(),
        called_ae_title: rq.called_ae_title.clone(),
        application_context_name: APPLICATION_CONTEXT.to_string(),
        presentation_contexts: results,
        user_variables,
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

    /// [`Caps`] that also sends storage (a C-GET acceptor).
    struct Sender;
    impl Capabilities for Sender {
        fn supports_abstract_syntax(&self, uid: &str) -> bool {
            Caps.supports_abstract_syntax(uid)
        }
        fn supports_transfer_syntax(&self, uid: &str) -> bool {
            Caps.supports_transfer_syntax(uid)
        }
        fn sends_storage(&self) -> bool {
            true
        }
    }

    const CT: &str = "1.2.840.10008.5.1.4.1.1.2";

    fn with_roles(roles: &[RoleSelection]) -> AssociationRQ {
        let mut request = rq(vec![
            (1, VERIFICATION, vec![IMPLICIT_VR_LE]),
            (3, CT, vec![EXPLICIT_VR_LE]),
        ]);
        request
            .user_variables
            .extend(roles.iter().map(RoleSelection::to_item));
        request
    }

    #[test]
    fn the_scp_role_for_a_storage_class_is_granted_to_a_sender_only() {
        let request = with_roles(&[RoleSelection::scp(CT)]);
        let (ac, accepted) = negotiate(&request, &Sender, 65536);
        let ct = accepted.iter().find(|c| c.id == 3).expect("CT accepted");
        assert_eq!((ct.scu_role, ct.scp_role), (false, true));
        let verification = accepted.iter().find(|c| c.id == 1).unwrap();
        assert_eq!(
            (verification.scu_role, verification.scp_role),
            (true, false)
        );
        assert_eq!(
            role_selections(&ac.user_variables),
            [RoleSelection::scp(CT)]
        );

        // Without the capability the context could carry nothing: rejected, unanswered.
        let (ac, accepted) = negotiate(&request, &Caps, 65536);
        assert!(accepted.iter().all(|c| c.id != 3));
        assert_eq!(
            ac.presentation_contexts[1].reason,
            PresentationContextResultReason::UserRejection
        );
        assert!(role_selections(&ac.user_variables).is_empty());
    }

    #[test]
    fn both_roles_proposed_keep_scu_and_never_grant_scp_for_non_storage() {
        let both = |uid: &str| RoleSelection {
            sop_class_uid: uid.into(),
            scu_role: true,
            scp_role: true,
        };
        let request = with_roles(&[both(CT), both(VERIFICATION)]);
        let (ac, accepted) = negotiate(&request, &Sender, 65536);
        let roles: Vec<_> = accepted.iter().map(|c| (c.scu_role, c.scp_role)).collect();
        assert_eq!(roles, [(true, false), (true, true)]);
        let answered = role_selections(&ac.user_variables);
        assert_eq!(answered.len(), 2);
        assert!(answered.contains(&both(CT)));
    }

    #[test]
    fn a_context_to_send_on_takes_the_requestors_first_choice() {
        let jpeg = "1.2.840.10008.1.2.4.50";
        let mut request = rq(vec![
            (1, CT, vec![jpeg, EXPLICIT_VR_LE, IMPLICIT_VR_LE]),
            (3, VERIFICATION, vec![IMPLICIT_VR_LE, EXPLICIT_VR_LE]),
        ]);
        request
            .user_variables
            .push(RoleSelection::scp(CT).to_item());
        let (_, accepted) = negotiate(&request, &Sender, 65536);
        assert_eq!(
            accepted[0].transfer_syntax, jpeg,
            "getscu's preferred syntax"
        );
        assert_eq!(
            accepted[1].transfer_syntax, EXPLICIT_VR_LE,
            "ours otherwise"
        );
        // A syntax the acceptor does not support is passed over.
        request.presentation_contexts[0].transfer_syntaxes =
            vec!["1.2.840.10008.1.2.4.90".into(), IMPLICIT_VR_LE.into()];
        let (_, accepted) = negotiate(&request, &Sender, 65536);
        assert_eq!(accepted[0].transfer_syntax, IMPLICIT_VR_LE);
        // Uncompressed first (pynetdicom's order): Explicit VR LE when offered.
        request.presentation_contexts[0].transfer_syntaxes =
            vec![IMPLICIT_VR_LE.into(), EXPLICIT_VR_LE.into()];
        let (_, accepted) = negotiate(&request, &Sender, 65536);
        assert_eq!(accepted[0].transfer_syntax, EXPLICIT_VR_LE);
    }

    #[test]
    fn peer_max_pdu_defaults() {
        assert_eq!(peer_max_pdu(&[UserVariableItem::MaxLength(0)]), 1024 * 1024);
        assert_eq!(peer_max_pdu(&[UserVariableItem::MaxLength(16384)]), 16384);
        assert_eq!(peer_max_pdu(&[]), dicom_ul::pdu::DEFAULT_MAX_PDU);
    }
}
