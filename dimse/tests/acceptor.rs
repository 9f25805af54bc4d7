//! The association acceptor (`server::serve` + `scp`) in isolation, driven by our own
//! requestor over plain TCP on an ephemeral port: streaming into a sink, the sink's
//! status reaching the requestor, admission policy, the association limit, handshake
//! and read timeouts, discard on failure or abort, and graceful shutdown.
//!
//! TLS is covered by the gateway's tests (this crate has no certificate generator).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dimse::admission::AdmissionOptions;
use dimse::assoc::{
    AcceptedContext, AssociateRequest, Capabilities, EXPLICIT_VR_LE, IMPLICIT_VR_LE, Rejection,
    VERIFICATION,
};
use dimse::command::{CStoreRq, Message, Priority};
use dimse::scp::{AssociationInfo, DataSink, Service, StoreOutcome};
use dimse::scu::{Proposal, ScuAssociation, ScuOptions};
use dimse::server::{Policy, ServerOptions, serve};
use dimse::{DimseError, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const SCU_AE: &str = "TEST_SCU";
const SCP_AE: &str = "TEST_SCP";
const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
const INSTANCE: &str = "1.2.826.0.1.3680043.10.99.1";

/// What the test service saw.
#[derive(Debug, Default)]
struct Record {
    bytes: Vec<u8>,
    writes: usize,
    largest_write: usize,
    finished: usize,
    discarded: usize,
    sessions: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
struct Behaviour {
    /// Status `finish()` returns.
    finish: Status,
    /// Every `write()` fails with OutOfResources.
    fail_writes: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            finish: Status::Success,
            fail_writes: false,
        }
    }
}

struct TestService {
    record: Arc<Mutex<Record>>,
    behaviour: Behaviour,
}

struct VecSink {
    record: Arc<Mutex<Record>>,
    behaviour: Behaviour,
}

impl Capabilities for TestService {
    fn supports_abstract_syntax(&self, uid: &str) -> bool {
        uid == VERIFICATION || uid == CT
    }
    fn supports_transfer_syntax(&self, uid: &str) -> bool {
        uid == EXPLICIT_VR_LE || uid == IMPLICIT_VR_LE
    }
}

impl Service<String> for TestService {
    type Sink = VecSink;

    async fn begin_store(
        &self,
        session: &String,
        _association: &AssociationInfo,
        _request: &CStoreRq,
        _context: &AcceptedContext,
    ) -> Result<VecSink, StoreOutcome> {
        self.record.lock().unwrap().sessions.push(session.clone());
        Ok(VecSink {
            record: self.record.clone(),
            behaviour: self.behaviour,
        })
    }
}

impl DataSink for VecSink {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreOutcome> {
        let mut record = self.record.lock().unwrap();
        record.writes += 1;
        record.largest_write = record.largest_write.max(chunk.len());
        if self.behaviour.fail_writes {
            return Err(StoreOutcome::with(Status::OutOfResources, "disk full"));
        }
        record.bytes.extend_from_slice(chunk);
        Ok(())
    }

    async fn finish(self) -> StoreOutcome {
        self.record.lock().unwrap().finished += 1;
        StoreOutcome {
            status: self.behaviour.finish,
            comment: None,
        }
    }

    async fn discard(self) {
        self.record.lock().unwrap().discarded += 1;
    }
}

/// Admits one calling AE title; the session is that title.
struct AdmitAe(&'static str);

impl Policy for AdmitAe {
    type Session = String;

    async fn admit(&self, request: &AssociateRequest<'_>) -> Result<String, Rejection> {
        if request.calling_ae == self.0 {
            Ok(request.calling_ae.to_string())
        } else {
            Err(Rejection::CallingAeNotRecognized)
        }
    }
}

struct Harness {
    addr: String,
    record: Arc<Mutex<Record>>,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
}

impl Harness {
    async fn start(options: ServerOptions, behaviour: Behaviour) -> Harness {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let record = Arc::new(Mutex::new(Record::default()));
        let service = Arc::new(TestService {
            record: record.clone(),
            behaviour,
        });
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = rx.await;
        };
        let server = tokio::spawn(serve(listener, options, AdmitAe(SCU_AE), service, shutdown));
        Harness {
            addr,
            record,
            stop: Some(tx),
            server,
        }
    }

    async fn connect_as(&self, calling_ae: &str) -> Result<ScuAssociation, DimseError> {
        let mut options = ScuOptions::new(calling_ae, SCP_AE);
        options.connect_timeout = Duration::from_secs(5);
        options.read_timeout = Duration::from_secs(5);
        let proposals = [
            Proposal::verification(),
            Proposal {
                abstract_syntax: CT.into(),
                transfer_syntaxes: vec![EXPLICIT_VR_LE.into()],
            },
        ];
        ScuAssociation::connect(&self.addr, &options, &proposals).await
    }

    async fn connect(&self) -> ScuAssociation {
        self.connect_as(SCU_AE).await.expect("associate")
    }

    /// Requests shutdown and returns how long `serve` took to return.
    async fn shut_down(&mut self) -> Duration {
        let started = Instant::now();
        let _ = self.stop.take().expect("not stopped yet").send(());
        tokio::time::timeout(Duration::from_secs(10), &mut self.server)
            .await
            .expect("serve returns")
            .expect("serve does not panic");
        started.elapsed()
    }

    /// Waits until `done(record)` holds, for at most 3 s.
    async fn wait_for(&self, what: &str, done: impl Fn(&Record) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(3);
        while !done(&self.record.lock().unwrap()) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Small PDUs, roomy timeouts; tests override what they exercise.
fn options() -> ServerOptions {
    ServerOptions {
        max_pdu: 16 * 1024,
        handshake_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(5),
        max_associations: 8,
        admission: AdmissionOptions::default(),
        shutdown_grace: Duration::from_secs(2),
        tls: None,
    }
}

fn payload(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 16) as u8)
        .collect()
}

fn ct_context(scu: &ScuAssociation) -> u8 {
    scu.context_for(CT, EXPLICIT_VR_LE).expect("CT accepted").id
}

#[tokio::test]
async fn echo_and_a_3_mb_store_arrive_intact_across_many_pdvs() {
    let behaviour = Behaviour {
        finish: Status::CoercionOfDataElements,
        ..Behaviour::default()
    };
    let h = Harness::start(options(), behaviour).await;
    let mut scu = h.connect().await;
    assert_eq!(scu.echo().await.unwrap(), Status::Success);

    let data = payload(3 * 1024 * 1024 + 17);
    let rsp = scu
        .store(CT, INSTANCE, EXPLICIT_VR_LE, &data[..])
        .await
        .unwrap();
    assert_eq!(
        rsp.status.code(),
        0xB000,
        "the sink's warning reaches the SCU"
    );
    assert_eq!(rsp.affected_sop_instance_uid, INSTANCE);
    assert_eq!(rsp.message_id_being_responded_to, 2);
    scu.release().await.unwrap();

    let record = h.record.lock().unwrap();
    assert!(
        record.bytes == data,
        "sink got {} bytes",
        record.bytes.len()
    );
    assert!(
        record.writes >= data.len() / (16 * 1024),
        "{}",
        record.writes
    );
    assert!(
        record.largest_write <= 16 * 1024,
        "{}",
        record.largest_write
    );
    assert_eq!((record.finished, record.discarded), (1, 0));
    assert_eq!(record.sessions, [SCU_AE]);
}

#[tokio::test]
async fn a_calling_ae_the_policy_does_not_admit_is_rejected() {
    let h = Harness::start(options(), Behaviour::default()).await;
    match h.connect_as("INTRUDER").await {
        Err(DimseError::Rejected(why)) => {
            assert!(why.starts_with("Permanent"), "{why}");
            assert!(why.contains("calling AE title not recognized"), "{why}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    // The acceptor keeps serving.
    h.connect().await.release().await.unwrap();
    assert!(h.record.lock().unwrap().sessions.is_empty());
}

#[tokio::test]
async fn the_association_limit_rejects_as_transient_until_a_slot_frees() {
    let h = Harness::start(
        ServerOptions {
            max_associations: 2,
            ..options()
        },
        Behaviour::default(),
    )
    .await;
    let mut first = h.connect().await;
    let mut second = h.connect().await;
    match h.connect_as(SCU_AE).await {
        Err(DimseError::Rejected(why)) => assert!(why.starts_with("Transient"), "{why}"),
        other => panic!("expected a transient rejection of a third association, got {other:?}"),
    }
    // The two admitted associations still work.
    assert_eq!(first.echo().await.unwrap(), Status::Success);
    assert_eq!(second.echo().await.unwrap(), Status::Success);
    first.release().await.unwrap();

    // The slot is freed right after the release; allow for that race.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut third = loop {
        match h.connect_as(SCU_AE).await {
            Ok(scu) => break scu,
            Err(DimseError::Rejected(why)) if Instant::now() < deadline => {
                assert!(why.starts_with("Transient"), "{why}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("no slot after a release: {e}"),
        }
    };
    assert_eq!(third.echo().await.unwrap(), Status::Success);
    third.release().await.unwrap();
    second.release().await.unwrap();
}

#[tokio::test]
async fn a_silent_tcp_peer_is_dropped_after_the_handshake_timeout() {
    let h = Harness::start(
        ServerOptions {
            handshake_timeout: Duration::from_millis(300),
            ..options()
        },
        Behaviour::default(),
    )
    .await;
    let mut raw = TcpStream::connect(&h.addr).await.unwrap();
    let started = Instant::now();
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), raw.read_to_end(&mut received))
        .await
        .expect("the server closes a silent connection");
    let elapsed = started.elapsed();
    eprintln!(
        "silent peer closed after {elapsed:?} ({read:?}, {} bytes)",
        received.len()
    );
    // Nothing, or an A-ABORT (type 07, 10 bytes), before the close.
    assert!(
        received.is_empty() || (received.len() == 10 && received[0] == 0x07),
        "got {received:02x?}"
    );
    assert!(
        elapsed >= Duration::from_millis(250),
        "closed after {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(1200),
        "closed after {elapsed:?}"
    );
    let _ = raw.shutdown().await;
}

#[tokio::test]
async fn a_silent_peer_is_dropped_after_the_first_byte_timeout() {
    let h = Harness::start(
        ServerOptions {
            admission: AdmissionOptions {
                first_byte_timeout: Duration::from_millis(200),
                ..AdmissionOptions::default()
            },
            ..options()
        },
        Behaviour::default(),
    )
    .await;
    let mut raw = TcpStream::connect(&h.addr).await.unwrap();
    let started = Instant::now();
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), raw.read_to_end(&mut received))
        .await
        .expect("the server closes a silent connection")
        .unwrap();
    let elapsed = started.elapsed();
    assert!(received.is_empty(), "got {received:02x?}");
    // Well before the 5 s handshake timeout.
    assert!(
        (Duration::from_millis(150)..Duration::from_millis(2500)).contains(&elapsed),
        "closed after {elapsed:?}"
    );
}

#[tokio::test]
async fn silent_connections_from_one_address_do_not_keep_an_association_out() {
    let h = Harness::start(
        ServerOptions {
            admission: AdmissionOptions {
                max_pending: 16,
                max_pending_per_address: 4,
                ..AdmissionOptions::default()
            },
            ..options()
        },
        Behaviour::default(),
    )
    .await;
    let target: std::net::SocketAddr = h.addr.parse().unwrap();
    // 40 silent connections from 127.0.0.2 (loopback), 10 from our own address:
    // far more than either bound.
    let mut held = Vec::new();
    for source in [[127, 0, 0, 2], [127, 0, 0, 1]] {
        let count = if source[3] == 2 { 40 } else { 10 };
        for _ in 0..count {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind((source, 0).into()).unwrap();
            held.push(socket.connect(target).await.unwrap());
        }
    }
    // Associations still succeed, one after another.
    for _ in 0..3 {
        let mut scu = h.connect().await;
        scu.echo().await.expect("C-ECHO under a silent flood");
        scu.release().await.unwrap();
    }
    // The server closed all but a bounded number of the silent connections.
    let mut open = 0;
    for mut stream in held {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(20), stream.read(&mut byte));
        if read.await.is_err() {
            open += 1;
        }
    }
    assert!(
        open <= 8,
        "{open} silent connections still held (bound: 4 per address)"
    );
}

#[tokio::test]
async fn an_idle_association_is_aborted_after_the_read_timeout() {
    let h = Harness::start(
        ServerOptions {
            read_timeout: Duration::from_millis(300),
            ..options()
        },
        Behaviour::default(),
    )
    .await;
    let mut scu = h.connect().await;
    let started = Instant::now();
    let read = scu.read_command(1).await;
    let elapsed = started.elapsed();
    eprintln!("idle association ended after {elapsed:?}");
    assert!(
        matches!(read, Err(DimseError::Aborted | DimseError::Closed)),
        "got {read:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(250),
        "aborted after {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(1500),
        "aborted after {elapsed:?}"
    );
}

#[tokio::test]
async fn a_failing_sink_is_discarded_and_its_status_reaches_the_scu() {
    let behaviour = Behaviour {
        fail_writes: true,
        ..Behaviour::default()
    };
    let h = Harness::start(options(), behaviour).await;
    let mut scu = h.connect().await;
    let data = payload(1024 * 1024);
    let rsp = scu
        .store(CT, INSTANCE, EXPLICIT_VR_LE, &data[..])
        .await
        .expect("the whole data set is read and answered");
    assert_eq!(rsp.status, Status::OutOfResources);
    assert_eq!(rsp.error_comment.as_deref(), Some("disk full"));
    // The association survives a refused instance.
    assert_eq!(scu.echo().await.unwrap(), Status::Success);
    scu.release().await.unwrap();

    let record = h.record.lock().unwrap();
    assert_eq!((record.finished, record.discarded), (0, 1));
    assert_eq!(record.writes, 1, "no writes after the first failure");
}

/// Sends a C-STORE request and 200 KB of its data set, then aborts the association
/// or just disconnects; the sink must be discarded, never finished.
async fn interrupt_a_store(abort: bool) {
    let h = Harness::start(options(), Behaviour::default()).await;
    let mut scu = h.connect().await;
    let context = ct_context(&scu);
    let rq = CStoreRq {
        message_id: 1,
        affected_sop_class_uid: CT.into(),
        affected_sop_instance_uid: INSTANCE.into(),
        priority: Priority::Medium,
        move_originator_ae_title: None,
        move_originator_message_id: None,
    };
    scu.send_command(context, &Message::from(rq)).await.unwrap();
    // A reader that never ends after 200 KB: the last PDV is never sent.
    let head = payload(200 * 1024);
    let (_keep_open, never) = tokio::io::duplex(64);
    let mut data = (&head[..]).chain(never);
    let sending = scu.send_data(context, &mut data);
    let stalled = tokio::time::timeout(Duration::from_millis(300), sending).await;
    assert!(stalled.is_err());
    h.wait_for("data to arrive", |r| r.bytes.len() > 100 * 1024)
        .await;
    if abort {
        scu.abort().await;
    } else {
        drop(scu);
    }
    h.wait_for("discard", |r| r.discarded == 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let record = h.record.lock().unwrap();
    assert_eq!((record.finished, record.discarded), (0, 1));
}

#[tokio::test]
async fn an_abort_in_the_middle_of_a_data_set_discards_it() {
    interrupt_a_store(true).await;
}

#[tokio::test]
async fn a_disconnect_in_the_middle_of_a_data_set_discards_it() {
    interrupt_a_store(false).await;
}

#[tokio::test]
async fn shutdown_aborts_an_idle_association_after_the_grace_period() {
    let mut h = Harness::start(
        ServerOptions {
            shutdown_grace: Duration::from_millis(500),
            read_timeout: Duration::from_secs(30),
            ..options()
        },
        Behaviour::default(),
    )
    .await;
    let mut scu = h.connect().await;
    let aborted = tokio::spawn(async move { scu.read_command(1).await });
    let took = h.shut_down().await;
    eprintln!("serve returned {took:?} after shutdown");
    assert!(
        took >= Duration::from_millis(450),
        "returned after {took:?}"
    );
    assert!(
        took < Duration::from_millis(1500),
        "returned after {took:?}"
    );
    let read = aborted.await.unwrap();
    assert!(matches!(read, Err(DimseError::Aborted)), "got {read:?}");
    assert!(
        TcpStream::connect(&h.addr).await.is_err(),
        "still listening"
    );
}

#[tokio::test]
async fn an_association_may_finish_its_work_during_the_grace_period() {
    let mut h = Harness::start(
        ServerOptions {
            shutdown_grace: Duration::from_secs(5),
            ..options()
        },
        Behaviour::default(),
    )
    .await;
    let mut scu = h.connect().await;
    let _ = h.stop.take().unwrap().send(());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        TcpStream::connect(&h.addr).await.is_err(),
        "still accepting"
    );
    let data = payload(256 * 1024);
    let rsp = scu.store(CT, INSTANCE, EXPLICIT_VR_LE, &data[..]).await;
    assert_eq!(rsp.unwrap().status, Status::Success);
    scu.release().await.unwrap();
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(2), &mut h.server)
        .await
        .expect("serve returns once the last association is released")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(h.record.lock().unwrap().bytes, data);
}

#[tokio::test]
async fn shutdown_without_associations_returns_promptly() {
    let mut h = Harness::start(options(), Behaviour::default()).await;
    h.connect().await.release().await.unwrap();
    let took = h.shut_down().await;
    eprintln!("serve returned {took:?} after shutdown");
    assert!(took < Duration::from_millis(200), "returned after {took:?}");
}
