//! The PDU reader as the acceptor uses it: bytes from the network through
//! `PduConn::read_pdu` (bounded buffer, `dicom_ul::read_pdu` strict), then for an
//! A-ASSOCIATE-RQ the negotiation, maximum PDU and user identity look-ups the server
//! does. Whatever the bytes, this must end in a PDU or an error, never a panic.

#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use dicom_ul::Pdu;
use dimse::assoc::{self, Capabilities};
use dimse::pdu_io::PduConn;
use libfuzzer_sys::fuzz_target;
use tokio::io::AsyncWriteExt;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
});

/// What the gateway serves: storage classes and the usual transfer syntaxes.
struct Gateway;

impl Capabilities for Gateway {
    fn supports_abstract_syntax(&self, uid: &str) -> bool {
        dimse::sop::is_storage_sop_class(uid) || uid == "1.2.840.10008.1.1"
    }
    fn supports_transfer_syntax(&self, uid: &str) -> bool {
        dimse::scan::Encoding::from_transfer_syntax(uid).is_some()
    }
    fn sends_storage(&self) -> bool {
        true
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the largest PDU accepted (as negotiated), the rest is
    // what the peer sends.
    let Some((&size, bytes)) = data.split_first() else {
        return;
    };
    let max = 4096 + u32::from(size) * 512;
    RUNTIME.block_on(async {
        let (ours, mut theirs) = tokio::io::duplex(bytes.len().max(1));
        theirs.write_all(bytes).await.expect("in-memory write");
        drop(theirs);
        let mut conn = PduConn::new(Box::new(ours), max, Duration::from_secs(5));
        while let Ok(pdu) = conn.read_pdu().await {
            if let Pdu::AssociationRQ(rq) = &pdu {
                let (ac, accepted) = assoc::negotiate(rq, &Gateway, max);
                assert_eq!(
                    ac.presentation_contexts.len(),
                    rq.presentation_contexts.len()
                );
                assert!(accepted.len() <= rq.presentation_contexts.len());
                let peer = assoc::peer_max_pdu(&rq.user_variables);
                assert!(peer >= dicom_ul::pdu::MINIMUM_PDU_SIZE);
                let _ = assoc::user_identity(&rq.user_variables);
                let _ = assoc::role_selections(&rq.user_variables);
            }
        }
    });
});
