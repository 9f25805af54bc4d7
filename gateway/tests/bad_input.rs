//! Hostile and broken peers: malformed data sets, forged UIDs, oversized PDUs, stalled
//! transfers, garbage bytes and non-storage proposals. After every case nothing may be
//! indexed or stored, no temp file may linger, and the gateway must go on serving.

mod common;

use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use common::peers::{self, Via};
use common::raw_pdu;
use common::{Backend, GATEWAY_AE, Options, PLAIN_AE, TestGateway, data};
use dimse::command::{CFindRq, CStoreRq, Priority};
use dimse::scu::{Proposal, ScuOptions};
use dimse::{DimseError, Status};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::oneshot;

/// What the gateway held before a case.
struct Before {
    count: i64,
    blobs: Vec<PathBuf>,
}

async fn snapshot(gw: &TestGateway) -> Before {
    Before {
        count: gw.index().await.count_instances().await.unwrap(),
        blobs: gw.setup.blob_files(),
    }
}

/// Nothing indexed, no blob, no temp file left (cleanup may lag the abort a little),
/// and a normal store of `deidentified_ct(n)` over `via` still succeeds.
async fn assert_untouched_and_serving(gw: &TestGateway, before: Before, via: Via, n: u32) {
    let index = gw.index().await;
    assert_eq!(index.count_instances().await.unwrap(), before.count);
    assert_eq!(gw.setup.blob_files(), before.blobs, "blob files changed");
    let clean =
        peers::eventually(Duration::from_secs(2), || gw.setup.temp_files().is_empty()).await;
    assert!(clean, "temp files left: {:?}", gw.setup.temp_files());
    peers::store_good(gw, via, n).await;
    assert_eq!(index.count_instances().await.unwrap(), before.count + 1);
    assert_eq!(gw.setup.blob_files().len(), before.blobs.len() + 1);
}

/// Sends `dataset` under `request_uid` over TLS and returns the status.
async fn store_over_tls(gw: &TestGateway, request_uid: &str, dataset: &[u8]) -> Status {
    let mut scu = peers::ct_association(gw, Via::Tls).await;
    let rsp = peers::store_bytes(&mut scu, request_uid, dataset).await;
    scu.release().await.expect("release after a refused store");
    rsp.status
}

async fn truncated_data_set(backend: Backend) {
    let gw = TestGateway::spawn(backend).await;
    let before = snapshot(&gw).await;
    let spec = peers::deidentified_ct(1);
    let bytes = peers::dataset_bytes(&spec);
    let cut = bytes.len() * 6 / 10;
    let pixels = usize::from(spec.size).pow(2) * 2;
    assert!(
        cut > bytes.len() - pixels,
        "the cut must fall inside Pixel Data"
    );
    let status = store_over_tls(&gw, &spec.sop_uid, &bytes[..cut]).await;
    assert_eq!(status, Status::CannotUnderstand);
    assert_untouched_and_serving(&gw, before, Via::Tls, 100).await;
    gw.stop().await;
}

async fn garbage_after_data_set(backend: Backend) {
    let gw = TestGateway::spawn(backend).await;
    let before = snapshot(&gw).await;
    let spec = peers::deidentified_ct(2);
    let mut bytes = peers::dataset_bytes(&spec);
    bytes.extend_from_slice(&peers::noise(37, 37));
    let status = store_over_tls(&gw, &spec.sop_uid, &bytes).await;
    assert_eq!(status, Status::CannotUnderstand);
    assert_untouched_and_serving(&gw, before, Via::Tls, 100).await;
    gw.stop().await;
}

/// Every file under `dir` (recursively) or directly in `parent` whose name has `marker`.
fn files_named_like(dir: &std::path::Path, parent: &std::path::Path, marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path.clone());
            }
            if path.to_string_lossy().contains(marker) {
                found.push(path.display().to_string());
            }
        }
    }
    for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().contains(marker) {
            found.push(entry.path().display().to_string());
        }
    }
    found
}

async fn path_traversal_uid(backend: Backend) {
    let gw = TestGateway::spawn(backend).await;
    let marker = format!("escape{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    // Blob keys are <blobs>/f<id>/<study>/<sop>...: from there, these climb to the
    // temp dir's parent. The SOP UID is in the request and the data set; the study
    // UID only in the data set.
    let forged_sop = data::Spec {
        sop_uid: format!("../../../../../{marker}"),
        ..peers::deidentified_ct(3)
    };
    let forged_study = data::Spec {
        study_uid: format!("../../../../{marker}"),
        ..peers::deidentified_ct(4)
    };
    let parent = gw.setup.dir.path().parent().unwrap();
    for (i, spec) in [forged_sop, forged_study].iter().enumerate() {
        let before = snapshot(&gw).await;
        let status = store_over_tls(&gw, &spec.sop_uid, &peers::dataset_bytes(spec)).await;
        assert_eq!(status, Status::CannotUnderstand, "{spec:?}");
        let escaped = files_named_like(gw.setup.dir.path(), parent, &marker);
        assert!(
            escaped.is_empty(),
            "files written for a forged UID: {escaped:?}"
        );
        assert_untouched_and_serving(&gw, before, Via::Tls, 100 + i as u32).await;
    }
    gw.stop().await;
}

async fn sop_instance_mismatch(backend: Backend) {
    let gw = TestGateway::spawn(backend).await;
    let before = snapshot(&gw).await;
    let spec = peers::deidentified_ct(4);
    let request_uid = "1.2.826.0.1.3680043.10.3.999999";
    let status = store_over_tls(&gw, request_uid, &peers::dataset_bytes(&spec)).await;
    assert!(
        status.is_failure(),
        "mismatched SOP Instance UID got {status}"
    );
    assert_untouched_and_serving(&gw, before, Via::Tls, 100).await;
    gw.stop().await;
}

async fn pdu_over_max_length(backend: Backend) {
    let options = Options {
        max_pdu: 16384,
        ..Options::default()
    };
    let gw = TestGateway::spawn_with(backend, options).await;
    let before = snapshot(&gw).await;
    let mut stream = raw_pdu::associate(
        gw.plain_port,
        PLAIN_AE,
        GATEWAY_AE,
        data::CT,
        data::EXPLICIT_LE,
    )
    .await;
    let spec = peers::deidentified_ct(5);
    let rq = CStoreRq {
        message_id: 1,
        affected_sop_class_uid: data::CT.into(),
        affected_sop_instance_uid: spec.sop_uid.clone(),
        priority: Priority::Medium,
        move_originator_ae_title: None,
        move_originator_message_id: None,
    };
    let command = dimse::command::Message::from(rq).encode();
    raw_pdu::write_pdv(&mut stream, 1, true, true, &command)
        .await
        .unwrap();
    let huge = vec![0x5Au8; 1 << 20];
    // The gateway may close while we are still writing; only its reaction matters.
    let write = raw_pdu::write_pdv(&mut stream, 1, false, true, &huge);
    let _ = tokio::time::timeout(Duration::from_secs(5), write).await;
    // Well before the 30 s read timeout: the length alone must end the association.
    let ending = raw_pdu::wait_for_close(&mut stream, Duration::from_secs(5)).await;
    eprintln!("oversized PDU ended the association with {ending:?}");
    assert_untouched_and_serving(&gw, before, Via::Plain, 100).await;
    gw.stop().await;
}

/// Yields its bytes, then nothing until `give_up` fires, then an I/O error.
struct StallingReader {
    bytes: Vec<u8>,
    at: usize,
    give_up: oneshot::Receiver<()>,
}

impl AsyncRead for StallingReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.at < this.bytes.len() {
            let n = buf.remaining().min(this.bytes.len() - this.at);
            buf.put_slice(&this.bytes[this.at..this.at + n]);
            this.at += n;
            return Poll::Ready(Ok(()));
        }
        match Pin::new(&mut this.give_up).poll(cx) {
            Poll::Ready(_) => Poll::Ready(Err(std::io::Error::other("stalled peer gives up"))),
            Poll::Pending => Poll::Pending,
        }
    }
}

async fn stalled_peer(backend: Backend) {
    let options = Options {
        read_timeout_secs: 2,
        max_pdu: 16384,
        ..Options::default()
    };
    let gw = TestGateway::spawn_with(backend, options).await;
    let before = snapshot(&gw).await;
    // 2.4 MB of pixels: half of it is over the gateway's memory limit, so the
    // transfer has spilled into a temp file, which must go when the peer stalls.
    let spec = data::Spec {
        size: 1100,
        ..peers::deidentified_ct(6)
    };
    let bytes = peers::dataset_bytes(&spec);
    let (give_up, stalled) = oneshot::channel();
    let reader = StallingReader {
        bytes: bytes[..bytes.len() / 2].to_vec(),
        at: 0,
        give_up: stalled,
    };
    let options = ScuOptions {
        read_timeout: Duration::from_secs(3),
        ..peers::plain_options()
    };
    let addr = peers::addr(&gw, Via::Plain);
    let mut scu = dimse::scu::ScuAssociation::connect(&addr, &options, &[peers::ct_proposal()])
        .await
        .expect("associate");
    let context = scu.contexts()[0].id;
    let peer = tokio::spawn(async move {
        let rq = CStoreRq {
            message_id: 1,
            affected_sop_class_uid: data::CT.into(),
            affected_sop_instance_uid: spec.sop_uid.clone(),
            priority: Priority::Medium,
            move_originator_ae_title: None,
            move_originator_message_id: None,
        };
        scu.send_command(context, &rq.into()).await.unwrap();
        let mut reader = reader;
        let sent = scu.send_data(context, &mut reader).await;
        (sent, scu.read_command(context).await)
    });
    let receiving =
        peers::eventually(Duration::from_secs(5), || !gw.setup.temp_files().is_empty()).await;
    assert!(receiving, "the partial transfer never reached the gateway");
    let stall_began = Instant::now();
    peers::store_good(&gw, Via::Tls, 100).await;
    if stall_began.elapsed() < Duration::from_millis(1500) {
        assert!(
            !gw.setup.temp_files().is_empty(),
            "the stalled transfer was dropped before the read timeout"
        );
    }
    let dropped =
        peers::eventually(Duration::from_secs(5), || gw.setup.temp_files().is_empty()).await;
    let waited = stall_began.elapsed();
    assert!(dropped, "stalled transfer still held after {waited:?}");
    assert!(
        waited >= Duration::from_millis(1500),
        "aborted after {waited:?}, before the 2 s read timeout"
    );
    let _ = give_up.send(());
    let (sent, after) = peer.await.unwrap();
    assert!(sent.is_err(), "the stalled reader must end the transfer");
    assert!(
        matches!(
            after,
            Err(DimseError::Aborted | DimseError::Closed | DimseError::Io(_))
        ),
        "the gateway should have aborted the stalled association, got {after:?}"
    );
    let index = gw.index().await;
    assert_eq!(index.count_instances().await.unwrap(), before.count + 1);
    assert_eq!(gw.setup.blob_files().len(), before.blobs.len() + 1);
    gw.stop().await;
}

async fn garbage_instead_of_association(backend: Backend) {
    let gw = TestGateway::spawn(backend).await;
    let mut framed = vec![0x55, 0, 0, 0, 0, 58];
    framed.extend_from_slice(&peers::noise(7, 58));
    for (i, garbage) in [peers::noise(64, 64), framed].into_iter().enumerate() {
        let before = snapshot(&gw).await;
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", gw.plain_port))
            .await
            .unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut stream, &garbage)
            .await
            .unwrap();
        let ending = raw_pdu::wait_for_close(&mut stream, Duration::from_secs(5)).await;
        eprintln!("garbage {:02x?}.. ended with {ending:?}", &garbage[..6]);
        let n = 100 + i as u32;
        assert_untouched_and_serving(&gw, before, Via::Plain, n).await;
    }
    gw.stop().await;
}

async fn query_only_association(backend: Backend) {
    let gw = TestGateway::spawn(backend).await;
    let before = snapshot(&gw).await;
    const STUDY_ROOT_FIND: &str = "1.2.840.10008.5.1.4.1.2.2.1";
    let find = Proposal {
        abstract_syntax: STUDY_ROOT_FIND.into(),
        transfer_syntaxes: vec![data::EXPLICIT_LE.into(), "1.2.840.10008.1.2".into()],
    };
    match peers::connect(&gw, Via::Tls, &[find]).await {
        Ok(mut scu) => {
            assert!(
                scu.contexts().is_empty(),
                "a query-only proposal was accepted: {:?}",
                scu.contexts()
            );
            // Using the refused context anyway is a protocol error.
            let rq = CFindRq {
                message_id: 1,
                affected_sop_class_uid: STUDY_ROOT_FIND.into(),
                priority: Priority::Medium,
            };
            let _ = scu.send_command(1, &rq.into()).await;
            let answer = scu.read_command(1).await;
            assert!(
                matches!(
                    answer,
                    Err(DimseError::Aborted | DimseError::Closed | DimseError::Io(_))
                ),
                "a C-FIND on a refused context should abort, got {answer:?}"
            );
        }
        Err(DimseError::Rejected(reason)) => eprintln!("query-only association rejected: {reason}"),
        Err(e) => panic!("unexpected failure: {e}"),
    }
    assert_untouched_and_serving(&gw, before, Via::Tls, 100).await;
    gw.stop().await;
}

both_backends!(truncated_data_set);
both_backends!(garbage_after_data_set);
both_backends!(path_traversal_uid);
both_backends!(sop_instance_mismatch);
both_backends!(pdu_over_max_length);
both_backends!(stalled_peer);
both_backends!(garbage_instead_of_association);
both_backends!(query_only_association);
