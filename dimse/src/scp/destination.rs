//! The association a C-MOVE opens to its destination: made when the first instance
//! is to be sent, proposing every (SOP class, transfer syntax) pair known so far (one
//! context each, so that the stored syntax goes as it is when the destination takes
//! it) and, for a compressed syntax this build can decode, the same class in
//! Explicit and Implicit VR Little Endian (so that a destination that takes only
//! uncompressed data gets it converted); made again when an instance needs a pair
//! not yet proposed.

use crate::assoc::{EXPLICIT_VR_LE, IMPLICIT_VR_LE};
use crate::error::DimseError;
use crate::qr::MoveDestination;
use crate::scp::AssociationInfo;
use crate::scu::{Proposal, ScuAssociation, ScuOptions};
use crate::transcode;

/// At most this many contexts are proposed (128 is the protocol's limit).
const MAX_PROPOSALS: usize = 128;

/// Adds `pair` and, for a syntax that can be converted, its uncompressed fallbacks.
fn add(proposed: &mut Vec<(String, String)>, pair: &(String, String)) {
    let mut pairs = vec![pair.clone()];
    let (class, ts) = pair;
    if ts != EXPLICIT_VR_LE && ts != IMPLICIT_VR_LE && transcode::can_decode(ts) {
        pairs.push((class.clone(), EXPLICIT_VR_LE.to_string()));
        pairs.push((class.clone(), IMPLICIT_VR_LE.to_string()));
    }
    for pair in pairs {
        if !proposed.contains(&pair) {
            proposed.push(pair);
        }
    }
}

pub(super) struct Destination {
    address: String,
    options: ScuOptions,
    /// The C-MOVE requestor's AE title and the C-MOVE's message id, sent with each
    /// C-STORE sub-operation.
    originator: (String, u16),
    proposed: Vec<(String, String)>,
    association: Option<ScuAssociation>,
}

impl Destination {
    pub(super) fn new(
        target: MoveDestination,
        info: &AssociationInfo,
        message_id: u16,
        syntaxes: &[(String, String)],
    ) -> Self {
        let mut options = ScuOptions::new(info.called_ae.clone(), target.ae_title);
        options.tls = target.tls;
        options.read_timeout = info.read_timeout;
        let mut proposed: Vec<(String, String)> = Vec::new();
        for pair in syntaxes {
            add(&mut proposed, pair);
        }
        Destination {
            address: target.address,
            options,
            originator: (info.calling_ae.clone(), message_id),
            proposed,
            association: None,
        }
    }

    pub(super) fn originator(&self) -> (String, u16) {
        self.originator.clone()
    }

    /// The association to send an instance of `sop_class` in `transfer_syntax` on.
    pub(super) async fn association(
        &mut self,
        sop_class: &str,
        transfer_syntax: &str,
    ) -> Result<&mut ScuAssociation, DimseError> {
        let pair = (sop_class.to_string(), transfer_syntax.to_string());
        if !self.proposed.contains(&pair) {
            add(&mut self.proposed, &pair);
            if let Some(old) = self.association.take() {
                let _ = old.release().await;
            }
        }
        let association = match self.association.take() {
            Some(association) => association,
            None => {
                let start = self.proposed.len().saturating_sub(MAX_PROPOSALS);
                let proposals: Vec<Proposal> = self.proposed[start..]
                    .iter()
                    .map(|(class, ts)| Proposal {
                        abstract_syntax: class.clone(),
                        transfer_syntaxes: vec![ts.clone()],
                    })
                    .collect();
                ScuAssociation::connect(&self.address, &self.options, &proposals).await?
            }
        };
        Ok(self.association.insert(association))
    }

    /// Drops a broken association (the next instance associates again).
    pub(super) async fn reset(&mut self) {
        if let Some(association) = self.association.take() {
            association.abort().await;
        }
    }

    /// Releases the association at the end of the C-MOVE.
    pub(super) async fn close(mut self: Box<Self>) {
        if let Some(association) = self.association.take() {
            let _ = association.release().await;
        }
    }

    /// Aborts the association (the C-MOVE's own association ended).
    pub(super) async fn abort(mut self: Box<Self>) {
        self.reset().await;
    }
}
