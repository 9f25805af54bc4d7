//! Query/retrieve through the acceptor and our requestor, with an in-memory service:
//! C-FIND streaming and C-CANCEL, C-GET sub-operations on the same association with
//! pending counts, C-MOVE to a second in-process SCP, refusals that leave the
//! association usable, and the identifier bound. `dcmtk.rs` drives the same service
//! with DCMTK's findscu, getscu and movescu.

#[path = "qr/dcmtk.rs"]
mod dcmtk;
#[path = "qr/helpers.rs"]
mod helpers;

use std::ops::ControlFlow;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use dimse::Status;
use dimse::assoc::{EXPLICIT_VR_LE, IMPLICIT_VR_LE, VERIFICATION};
use dimse::command::SubOperations;
use dimse::qr::{MAX_IDENTIFIER_LEN, STUDY_ROOT_FIND, STUDY_ROOT_GET, STUDY_ROOT_MOVE};
use dimse::scu::{MemoryStore, Proposal};
use helpers::*;

fn counts(remaining: Option<u16>, completed: u16, failed: u16, warning: u16) -> SubOperations {
    SubOperations {
        remaining,
        completed: Some(completed),
        failed: Some(failed),
        warning: Some(warning),
    }
}

/// Waits up to 3 s for `done`.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn find_streams_every_match_in_order_then_success() {
    let (service, record) = QrService::new(Config {
        matches: 25,
        ..Config::default()
    });
    let server = Server::start(service).await;
    let mut scu = connect_qr(&server).await;
    let ts = scu
        .contexts()
        .iter()
        .find(|c| c.abstract_syntax == STUDY_ROOT_FIND);
    assert_eq!(ts.unwrap().transfer_syntax, EXPLICIT_VR_LE);
    let key = study_key(EXPLICIT_VR_LE);

    let found = scu.find(STUDY_ROOT_FIND, &key).await.unwrap();
    assert_eq!(found.response.status, Status::Success);
    assert!(!found.response.has_identifier);
    let expected: Vec<_> = (0..25).map(|i| study_match(i, EXPLICIT_VR_LE)).collect();
    assert!(found.matches == expected, "{} matches", found.matches.len());
    assert_eq!(*record.identifiers.lock().unwrap(), [key.as_slice()]);

    // A second query on the same association works the same.
    let again = scu.find(STUDY_ROOT_FIND, &key).await.unwrap();
    assert_eq!(again.matches.len(), 25);
    scu.release().await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn cancel_mid_find_answers_cancel_and_stops_the_producer() {
    let (service, record) = QrService::new(Config {
        matches: 1000,
        delay: Duration::from_millis(5),
        ..Config::default()
    });
    let server = Server::start(service).await;
    let mut scu = connect_qr(&server).await;
    let mut seen = 0;
    let started = Instant::now();
    let last = scu
        .find_with(STUDY_ROOT_FIND, &study_key(EXPLICIT_VR_LE), |_| {
            seen += 1;
            if seen == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .await
        .unwrap();
    assert_eq!(last.status, Status::Cancel);
    assert_eq!(seen, 3, "no match reaches the caller after its cancel");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    eventually("the producer to see its receiver dropped", || {
        record.stopped.load(Ordering::SeqCst)
    })
    .await;
    let produced = record.produced.load(Ordering::SeqCst);
    assert!(produced < 20, "the producer went on to {produced} results");

    // The association is still usable.
    assert_eq!(scu.echo().await.unwrap(), Status::Success);
    scu.release().await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn get_sends_each_instance_back_byte_exact_with_pending_counts() {
    let instances = vec![
        ct_instance(1, 1000, EXPLICIT_VR_LE),
        ct_instance(2, 300_000, EXPLICIT_VR_LE), // many 16 KiB PDVs
        ct_instance(3, 0, EXPLICIT_VR_LE),
    ];
    let (service, _) = QrService::new(Config {
        instances: instances.clone(),
        ..Config::default()
    });
    let server = Server::start(service).await;
    let mut scu = connect_qr(&server).await;
    let ct = scu
        .contexts()
        .iter()
        .find(|c| c.abstract_syntax == CT)
        .unwrap();
    assert!(ct.scp_role && !ct.scu_role, "{ct:?}");

    let mut store = MemoryStore::default();
    let outcome = scu
        .get(STUDY_ROOT_GET, &study_key(EXPLICIT_VR_LE), &mut store)
        .await
        .unwrap();
    assert_eq!(outcome.status, Status::Success, "{outcome:?}");
    assert_eq!(outcome.sub_operations, counts(None, 3, 0, 0));
    assert_eq!(
        outcome.pending,
        [
            counts(Some(2), 1, 0, 0),
            counts(Some(1), 2, 0, 0),
            counts(Some(0), 3, 0, 0)
        ]
    );
    let received = store.received();
    assert_eq!(received.len(), 3);
    for (got, sent) in received.iter().zip(&instances) {
        assert_eq!(got.sop_instance_uid, sent.sop_instance);
        assert_eq!(got.transfer_syntax, EXPLICIT_VR_LE);
        assert!(got.data == sent.data, "{} differs", sent.sop_instance);
    }
    assert_eq!(scu.echo().await.unwrap(), Status::Success);
    scu.release().await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn an_instance_without_a_context_fails_and_the_others_still_go() {
    // Stored in MPEG-2, which has no decoder here: it cannot be converted to the
    // Explicit VR LE that was negotiated (an Implicit VR LE one would be).
    let mut video = ct_instance(2, 100, EXPLICIT_VR_LE);
    video.transfer_syntax = "1.2.840.10008.1.2.4.100".into();
    let instances = vec![
        ct_instance(1, 100, EXPLICIT_VR_LE),
        video,
        ct_instance(3, 100, EXPLICIT_VR_LE),
    ];
    let (service, _) = QrService::new(Config {
        instances: instances.clone(),
        announce: Some(4), // one more than ever comes: counted as failed
        ..Config::default()
    });
    let server = Server::start(service).await;
    let mut scu = connect_qr(&server).await;
    let mut store = MemoryStore::default();
    let outcome = scu
        .get(STUDY_ROOT_GET, &study_key(EXPLICIT_VR_LE), &mut store)
        .await
        .unwrap();
    assert_eq!(outcome.status.code(), 0xB000, "{outcome:?}");
    assert_eq!(outcome.sub_operations, counts(None, 2, 2, 0));
    assert_eq!(outcome.pending.last(), Some(&counts(Some(1), 2, 1, 0)));
    // Failed SOP Instance UID List (0008,0058) in Explicit VR LE.
    let list = outcome.identifier.expect("failed instance list");
    assert_eq!(&list[..6], &[0x08, 0, 0x58, 0, b'U', b'I']);
    assert!(list.ends_with(format!("{}\0", instances[1].sop_instance).as_bytes()));
    let uids: Vec<_> = store
        .received()
        .into_iter()
        .map(|r| r.sop_instance_uid)
        .collect();
    assert_eq!(
        uids,
        [
            instances[0].sop_instance.clone(),
            instances[2].sop_instance.clone()
        ]
    );
    scu.release().await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn cancel_mid_get_answers_cancel_with_the_remaining_count() {
    let instances: Vec<_> = (0..50)
        .map(|n| ct_instance(n, 64, EXPLICIT_VR_LE))
        .collect();
    let (service, record) = QrService::new(Config {
        instances,
        delay: Duration::from_millis(5),
        ..Config::default()
    });
    let server = Server::start(service).await;
    let mut scu = connect_qr(&server).await;
    let mut store = MemoryStore::cancelling_after(2);
    let outcome = scu
        .get(STUDY_ROOT_GET, &study_key(EXPLICIT_VR_LE), &mut store)
        .await
        .unwrap();
    assert_eq!(outcome.status, Status::Cancel, "{outcome:?}");
    let done = outcome.sub_operations.completed.unwrap();
    assert!((2..=4).contains(&done), "{outcome:?}");
    assert_eq!(outcome.sub_operations.remaining, Some(50 - done));
    assert_eq!(store.received().len(), usize::from(done));
    eventually("the producer to stop", || {
        record.stopped.load(Ordering::SeqCst)
    })
    .await;
    assert_eq!(scu.echo().await.unwrap(), Status::Success);
    scu.release().await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn move_stores_every_instance_at_the_destination_byte_exact() {
    let collector = Collector::default();
    let destination = Server::start(collector.clone()).await;
    let instances = vec![
        ct_instance(1, 5000, EXPLICIT_VR_LE),
        ct_instance(2, 100_000, EXPLICIT_VR_LE),
        ct_instance(3, 10, IMPLICIT_VR_LE),
    ];
    let (service, _) = QrService::new(Config {
        instances: instances.clone(),
        destinations: vec![("DEST".into(), destination.addr.clone())],
        ..Config::default()
    });
    let server = Server::start(service).await;
    let mut scu = connect_qr(&server).await;
    let mut pendings = 0;
    let outcome = scu
        .move_(STUDY_ROOT_MOVE, "DEST", &study_key(EXPLICIT_VR_LE), |_| {
            pendings += 1;
            ControlFlow::Continue(())
        })
        .await
        .unwrap();
    assert_eq!(outcome.status, Status::Success, "{outcome:?}");
    assert_eq!(outcome.sub_operations, counts(None, 3, 0, 0));
    assert_eq!(pendings, 3);
    assert_eq!(outcome.pending[0], counts(Some(2), 1, 0, 0));

    let stored = collector.stored.lock().unwrap().clone();
    assert_eq!(stored.len(), 3);
    for (got, sent) in stored.iter().zip(&instances) {
        assert_eq!(got.request.affected_sop_instance_uid, sent.sop_instance);
        assert_eq!(got.transfer_syntax, sent.transfer_syntax);
        assert!(got.data == sent.data, "{} differs", sent.sop_instance);
        assert_eq!(got.calling_ae, SCP_AE, "the SCP calls as its own AE title");
        assert_eq!(
            got.request.move_originator_ae_title.as_deref(),
            Some("QR_SCU")
        );
        assert_eq!(got.request.move_originator_message_id, Some(1));
    }
    scu.release().await.unwrap();
    server.stop().await;
    destination.stop().await;
}

#[tokio::test]
async fn an_unknown_move_destination_is_refused_with_a801() {
    let (service, record) = QrService::new(Config {
        instances: vec![ct_instance(1, 10, EXPLICIT_VR_LE)],
        ..Config::default()
    });
    let server = Server::start(service).await;
    let mut scu = connect_qr(&server).await;
    let outcome = scu
        .move_(
            STUDY_ROOT_MOVE,
            "NOWHERE",
            &study_key(EXPLICIT_VR_LE),
            |_| ControlFlow::Continue(()),
        )
        .await
        .unwrap();
    assert_eq!(outcome.status, Status::MoveDestinationUnknown);
    assert_eq!(outcome.status.code(), 0xA801);
    assert!(outcome.pending.is_empty());
    assert!(
        record.identifiers.lock().unwrap().is_empty(),
        "no retrieval started"
    );
    assert_eq!(scu.echo().await.unwrap(), Status::Success);
    scu.release().await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn a_move_destination_that_cannot_be_reached_fails_every_sub_operation() {
    let closed = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let (service, _) = QrService::new(Config {
        instances: (0..3).map(|n| ct_instance(n, 10, EXPLICIT_VR_LE)).collect(),
        destinations: vec![("GONE".into(), closed)],
        ..Config::default()
    });
    let server = Server::start(service).await;
    let mut scu = connect_qr(&server).await;
    let outcome = scu
        .move_(STUDY_ROOT_MOVE, "GONE", &study_key(EXPLICIT_VR_LE), |_| {
            ControlFlow::Continue(())
        })
        .await
        .unwrap();
    assert_eq!(outcome.status.code(), 0xA702, "{outcome:?}");
    assert_eq!(outcome.sub_operations, counts(None, 0, 3, 0));
    let comment = outcome.error_comment.unwrap_or_default();
    assert!(comment.contains("move destination"), "{comment}");
    assert_eq!(scu.echo().await.unwrap(), Status::Success);
    scu.release().await.unwrap();
    server.stop().await;
}

/// Serves the Q/R SOP classes but implements none of the Q/R methods.
struct NoQr;

impl dimse::assoc::Capabilities for NoQr {
    fn supports_abstract_syntax(&self, uid: &str) -> bool {
        [
            VERIFICATION,
            STUDY_ROOT_FIND,
            STUDY_ROOT_GET,
            STUDY_ROOT_MOVE,
        ]
        .contains(&uid)
    }
    fn supports_transfer_syntax(&self, uid: &str) -> bool {
        uid == EXPLICIT_VR_LE || uid == IMPLICIT_VR_LE
    }
}

impl dimse::scp::Service<()> for NoQr {
    type Sink = Refuse;

    async fn begin_store(
        &self,
        _: &(),
        _: &dimse::scp::AssociationInfo,
        _: &dimse::command::CStoreRq,
        _: &dimse::assoc::AcceptedContext,
    ) -> Result<Refuse, dimse::scp::StoreOutcome> {
        Ok(Refuse)
    }
}

#[tokio::test]
async fn a_service_without_query_retrieve_refuses_and_the_association_goes_on() {
    let server = Server::start(NoQr).await;
    let proposals = [
        Proposal::verification(),
        Proposal::query(STUDY_ROOT_FIND),
        Proposal::query(STUDY_ROOT_GET),
        Proposal::query(STUDY_ROOT_MOVE),
    ];
    let mut scu = connect(&server, &proposals, Vec::new()).await;
    let key = study_key(EXPLICIT_VR_LE);
    let found = scu.find(STUDY_ROOT_FIND, &key).await.unwrap();
    assert_eq!(found.response.status, Status::UnrecognizedOperation);
    assert!(found.matches.is_empty());
    let comment = found.response.error_comment.unwrap_or_default();
    assert!(comment.contains("not supported"), "{comment}");

    let got = scu
        .get(STUDY_ROOT_GET, &key, &mut MemoryStore::default())
        .await;
    assert_eq!(got.unwrap().status, Status::UnrecognizedOperation);
    let moved = scu
        .move_(STUDY_ROOT_MOVE, "ANY", &key, |_| ControlFlow::Continue(()))
        .await;
    assert_eq!(moved.unwrap().status, Status::MoveDestinationUnknown);
    assert_eq!(scu.echo().await.unwrap(), Status::Success);
    scu.release().await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn an_identifier_over_the_bound_fails_and_the_association_goes_on() {
    let (service, record) = QrService::new(Config {
        matches: 2,
        ..Config::default()
    });
    let server = Server::start(service).await;
    let mut scu = connect_qr(&server).await;
    let huge = vec![0u8; MAX_IDENTIFIER_LEN + 2];
    let found = scu.find(STUDY_ROOT_FIND, &huge).await.unwrap();
    assert_eq!(found.response.status, Status::OutOfResources);
    assert!(found.matches.is_empty());
    assert!(
        record.identifiers.lock().unwrap().is_empty(),
        "the service never saw it"
    );

    // Exactly at the bound is fine, and the association still works.
    let at_bound = vec![0u8; MAX_IDENTIFIER_LEN];
    let found = scu.find(STUDY_ROOT_FIND, &at_bound).await.unwrap();
    assert_eq!(found.response.status, Status::Success);
    assert_eq!(found.matches.len(), 2);
    assert_eq!(
        record.identifiers.lock().unwrap()[0].len(),
        MAX_IDENTIFIER_LEN
    );
    scu.release().await.unwrap();
    server.stop().await;
}
