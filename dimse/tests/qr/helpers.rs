//! An in-memory query/retrieve service, a storage-only destination, servers on
//! ephemeral ports, and small valid data sets built with dicom-object.

#![allow(unreachable_pub)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dimse::Status;
use dimse::assoc::{
    AcceptedContext, AssociateRequest, Capabilities, EXPLICIT_VR_LE, IMPLICIT_VR_LE, Rejection,
    RoleSelection, VERIFICATION,
};
use dimse::command::{CFindRq, CStoreRq};
use dimse::qr::{
    FindResult, MoveDestination, Retrieval, RetrieveItem, RetrieveRequest, STUDY_ROOT_FIND,
    STUDY_ROOT_GET, STUDY_ROOT_MOVE,
};
use dimse::scp::{AssociationInfo, DataSink, Service, StoreOutcome};
use dimse::scu::{Proposal, ScuAssociation, ScuOptions};
use dimse::server::{Policy, ServerOptions, serve};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
pub const SCP_AE: &str = "QR_SCP";
pub const STUDY: &str = "1.2.826.0.1.3680043.10.99.7";

/// Admits everyone; the session is nothing.
pub struct Anyone;

impl Policy for Anyone {
    type Session = ();

    async fn admit(&self, _request: &AssociateRequest<'_>) -> Result<(), Rejection> {
        Ok(())
    }
}

/// A running acceptor.
pub struct Server {
    pub addr: String,
    pub port: u16,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Server {
    pub async fn start<S: Service<()>>(service: S) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let options = ServerOptions {
            max_pdu: 16 * 1024,
            read_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(1),
            ..ServerOptions::default()
        };
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = rx.await;
        };
        let task = tokio::spawn(serve(
            listener,
            options,
            Anyone,
            Arc::new(service),
            shutdown,
        ));
        Server {
            addr: format!("127.0.0.1:{port}"),
            port,
            stop: Some(tx),
            task,
        }
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
    }
}

/// One instance the service can send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub sop_class: String,
    pub sop_instance: String,
    pub transfer_syntax: String,
    pub data: Vec<u8>,
}

/// What the in-memory service does.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Number of C-FIND matches ([`study_match`]).
    pub matches: usize,
    /// Pause before each match or instance.
    pub delay: Duration,
    /// Instances of every C-GET / C-MOVE.
    pub instances: Vec<Instance>,
    /// Announced total, when it differs from the number of instances.
    pub announce: Option<usize>,
    /// Known move destinations: (AE title, address).
    pub destinations: Vec<(String, String)>,
}

/// What the in-memory service saw and did.
#[derive(Debug, Default)]
pub struct Record {
    pub identifiers: Mutex<Vec<Vec<u8>>>,
    /// Results or instances the producer handed over.
    pub produced: AtomicUsize,
    /// The producer saw its receiver dropped.
    pub stopped: AtomicBool,
}

/// Query/retrieve over fabricated data, with storage sub-operations.
pub struct QrService {
    pub config: Config,
    pub record: Arc<Record>,
}

impl QrService {
    pub fn new(config: Config) -> (QrService, Arc<Record>) {
        let record = Arc::new(Record::default());
        let service = QrService {
            config,
            record: record.clone(),
        };
        (service, record)
    }
}

impl Capabilities for QrService {
    fn supports_abstract_syntax(&self, uid: &str) -> bool {
        [
            VERIFICATION,
            STUDY_ROOT_FIND,
            STUDY_ROOT_GET,
            STUDY_ROOT_MOVE,
        ]
        .contains(&uid)
            || dimse::sop::is_storage_sop_class(uid)
    }
    fn supports_transfer_syntax(&self, uid: &str) -> bool {
        uid == EXPLICIT_VR_LE || uid == IMPLICIT_VR_LE
    }
    fn sends_storage(&self) -> bool {
        true
    }
}

/// Feeds `items` into a channel of capacity 1, pausing `delay` before each, and
/// notes in `record` how far it got.
fn produce<T: Send + 'static>(
    items: Vec<T>,
    delay: Duration,
    record: Arc<Record>,
) -> mpsc::Receiver<T> {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        for item in items {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if tx.send(item).await.is_err() {
                record.stopped.store(true, Ordering::SeqCst);
                return;
            }
            record.produced.fetch_add(1, Ordering::SeqCst);
        }
    });
    rx
}

impl Service<()> for QrService {
    type Sink = Refuse;

    async fn begin_store(
        &self,
        _: &(),
        _: &AssociationInfo,
        _: &CStoreRq,
        _: &AcceptedContext,
    ) -> Result<Refuse, StoreOutcome> {
        Err(StoreOutcome::with(
            Status::NotAuthorized,
            "query/retrieve only",
        ))
    }

    async fn find(
        &self,
        _: &(),
        _: &AssociationInfo,
        _: &CFindRq,
        context: &AcceptedContext,
        identifier: Vec<u8>,
    ) -> Result<mpsc::Receiver<FindResult>, StoreOutcome> {
        self.record.identifiers.lock().unwrap().push(identifier);
        let ts = context.transfer_syntax.clone();
        let matches = (0..self.config.matches)
            .map(|i| FindResult::Match(study_match(i, &ts)))
            .collect();
        Ok(produce(matches, self.config.delay, self.record.clone()))
    }

    async fn retrieve(
        &self,
        _: &(),
        _: &AssociationInfo,
        _: &RetrieveRequest,
        _: &AcceptedContext,
        identifier: Vec<u8>,
    ) -> Result<Retrieval, StoreOutcome> {
        self.record.identifiers.lock().unwrap().push(identifier);
        let instances = &self.config.instances;
        let items = instances
            .iter()
            .map(|i| RetrieveItem {
                sop_class_uid: i.sop_class.clone(),
                sop_instance_uid: i.sop_instance.clone(),
                transfer_syntax: i.transfer_syntax.clone(),
                data: Box::new(std::io::Cursor::new(i.data.clone())),
            })
            .collect();
        Ok(Retrieval {
            total: self.config.announce.unwrap_or(instances.len()),
            syntaxes: instances
                .iter()
                .map(|i| (i.sop_class.clone(), i.transfer_syntax.clone()))
                .collect(),
            items: produce(items, self.config.delay, self.record.clone()),
        })
    }

    async fn move_destination(
        &self,
        _: &(),
        _: &AssociationInfo,
        ae_title: &str,
    ) -> Option<MoveDestination> {
        let (ae, address) = self
            .config
            .destinations
            .iter()
            .find(|(ae, _)| ae == ae_title)?;
        Some(MoveDestination {
            address: address.clone(),
            ae_title: ae.clone(),
            tls: None,
        })
    }
}

/// A sink that is never made.
pub struct Refuse;

impl DataSink for Refuse {
    async fn write(&mut self, _: &[u8]) -> Result<(), StoreOutcome> {
        Ok(())
    }
    async fn finish(self) -> StoreOutcome {
        StoreOutcome::success()
    }
    async fn discard(self) {}
}

/// A C-STORE received by a [`Collector`], with its request.
#[derive(Debug, Clone)]
pub struct Stored {
    pub request: CStoreRq,
    pub calling_ae: String,
    pub transfer_syntax: String,
    pub data: Vec<u8>,
}

/// A storage SCP that keeps what it receives (a move destination).
#[derive(Clone, Default)]
pub struct Collector {
    pub stored: Arc<Mutex<Vec<Stored>>>,
}

pub struct CollectSink {
    item: Stored,
    into: Arc<Mutex<Vec<Stored>>>,
}

impl Capabilities for Collector {
    fn supports_abstract_syntax(&self, uid: &str) -> bool {
        dimse::sop::is_storage_sop_class(uid)
    }
    fn supports_transfer_syntax(&self, uid: &str) -> bool {
        uid == EXPLICIT_VR_LE || uid == IMPLICIT_VR_LE
    }
}

impl Service<()> for Collector {
    type Sink = CollectSink;

    async fn begin_store(
        &self,
        _: &(),
        association: &AssociationInfo,
        request: &CStoreRq,
        context: &AcceptedContext,
    ) -> Result<CollectSink, StoreOutcome> {
        Ok(CollectSink {
            item: Stored {
                request: request.clone(),
                calling_ae: association.calling_ae.clone(),
                transfer_syntax: context.transfer_syntax.clone(),
                data: Vec::new(),
            },
            into: self.stored.clone(),
        })
    }
}

impl DataSink for CollectSink {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreOutcome> {
        self.item.data.extend_from_slice(chunk);
        Ok(())
    }
    async fn finish(self) -> StoreOutcome {
        self.into.lock().unwrap().push(self.item);
        StoreOutcome::success()
    }
    async fn discard(self) {}
}

/// Encodes `elements` (sorted by the writer) in transfer syntax `ts`.
pub fn encode(ts: &str, elements: Vec<(Tag, VR, PrimitiveValue)>) -> Vec<u8> {
    let ts = TransferSyntaxRegistry
        .get(ts)
        .expect("known transfer syntax");
    let object = InMemDicomObject::from_element_iter(
        elements
            .into_iter()
            .map(|(tag, vr, value)| DataElement::new(tag, vr, value)),
    );
    let mut out = Vec::new();
    object.write_dataset_with_ts(&mut out, ts).expect("encode");
    out
}

/// The `i`-th study-level C-FIND match, in `ts`.
pub fn study_match(i: usize, ts: &str) -> Vec<u8> {
    encode(
        ts,
        vec![
            (tags::QUERY_RETRIEVE_LEVEL, VR::CS, "STUDY".into()),
            (tags::PATIENT_ID, VR::LO, format!("PID{i:04}").into()),
            (tags::PATIENT_NAME, VR::PN, format!("Doe^Jane{i}").into()),
            (
                tags::STUDY_INSTANCE_UID,
                VR::UI,
                format!("{STUDY}.{i}").into(),
            ),
        ],
    )
}

/// The identifier of a study-level query or retrieve, in `ts`.
pub fn study_key(ts: &str) -> Vec<u8> {
    encode(
        ts,
        vec![
            (tags::QUERY_RETRIEVE_LEVEL, VR::CS, "STUDY".into()),
            (tags::STUDY_INSTANCE_UID, VR::UI, STUDY.into()),
        ],
    )
}

/// A CT instance of `STUDY` with `pixels` bytes of pixel data, in `ts`.
pub fn ct_instance(n: usize, pixels: usize, ts: &str) -> Instance {
    let uid = format!("{STUDY}.1.{n}");
    let pixel_data: Vec<u8> = (0..pixels).map(|i| (i * 7 + n) as u8).collect();
    let data = encode(
        ts,
        vec![
            (tags::SOP_CLASS_UID, VR::UI, CT.into()),
            (tags::SOP_INSTANCE_UID, VR::UI, uid.as_str().into()),
            (tags::MODALITY, VR::CS, "CT".into()),
            (tags::PATIENT_ID, VR::LO, "PID0001".into()),
            (tags::STUDY_INSTANCE_UID, VR::UI, STUDY.into()),
            (
                tags::SERIES_INSTANCE_UID,
                VR::UI,
                format!("{STUDY}.1").into(),
            ),
            (tags::INSTANCE_NUMBER, VR::IS, n.to_string().into()),
            (tags::PIXEL_DATA, VR::OB, PrimitiveValue::from(pixel_data)),
        ],
    );
    Instance {
        sop_class: CT.into(),
        sop_instance: uid,
        transfer_syntax: ts.into(),
        data,
    }
}

/// Associates with `server` proposing `proposals` and `roles`.
pub async fn connect(
    server: &Server,
    proposals: &[Proposal],
    roles: Vec<RoleSelection>,
) -> ScuAssociation {
    let mut options = ScuOptions::new("QR_SCU", SCP_AE);
    options.connect_timeout = Duration::from_secs(5);
    options.read_timeout = Duration::from_secs(10);
    options.max_pdu = 16 * 1024;
    options.roles = roles;
    ScuAssociation::connect(&server.addr, &options, proposals)
        .await
        .expect("associate")
}

/// Study Root FIND/GET/MOVE, Verification and CT (Explicit VR LE) as SCP.
pub async fn connect_qr(server: &Server) -> ScuAssociation {
    let proposals = [
        Proposal::verification(),
        Proposal::query(STUDY_ROOT_FIND),
        Proposal::query(STUDY_ROOT_GET),
        Proposal::query(STUDY_ROOT_MOVE),
        Proposal {
            abstract_syntax: CT.into(),
            transfer_syntaxes: vec![EXPLICIT_VR_LE.into()],
        },
    ];
    connect(server, &proposals, vec![RoleSelection::scp(CT)]).await
}
