//! The audit trail: stores, queries, retrieves (C-GET and C-MOVE to DCMTK's
//! `storescp`), logins, failed logins and refused peers leave events with the right
//! counts and no identifier; the table refuses UPDATE and DELETE; the writer keeps
//! every event under back-pressure and on flush; search filters and pages.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::data::{self, Spec};
use common::peers::{dataset_bytes, eventually, plain_options, store_bytes, tls_options};
use common::{Backend, GATEWAY_AE, TestGateway};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dimse::Status;
use dimse::assoc::{EXPLICIT_VR_LE, RoleSelection};
use dimse::qr::{STUDY_ROOT_FIND, STUDY_ROOT_GET, STUDY_ROOT_MOVE};
use dimse::scu::{Credentials, MemoryStore, Proposal, ScuAssociation, ScuOptions};
use gateway::audit::{
    AuditEvent, AuditFilter, AuditTrail, EventKind, Outcome, Protocol, StoredEvent, search,
};
use gateway::domain::AeTitle;

const PASSWORD: &str = "correct horse battery";
const DEST_AE: &str = "AUDIT_DEST";

async fn all_events(index: &gateway::db::Index) -> Vec<StoredEvent> {
    let filter = AuditFilter {
        limit: Some(1000),
        ..AuditFilter::default()
    };
    search(index, &filter).await.expect("search audit events")
}

fn of_kind(events: &[StoredEvent], kind: EventKind) -> Vec<&StoredEvent> {
    events.iter().filter(|e| e.event.kind == kind).collect()
}

fn identifier(level: &str, study: Option<&str>) -> Vec<u8> {
    let mut elements = vec![DataElement::new(
        tags::QUERY_RETRIEVE_LEVEL,
        VR::CS,
        PrimitiveValue::from(level),
    )];
    elements.push(DataElement::new(
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        PrimitiveValue::from(study.unwrap_or("")),
    ));
    if study.is_none() {
        elements.push(DataElement::new(
            tags::PATIENT_ID,
            VR::LO,
            PrimitiveValue::from(""),
        ));
    }
    let ts = dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased();
    let mut out = Vec::new();
    InMemDicomObject::from_element_iter(elements)
        .write_dataset_with_ts(&mut out, &ts)
        .unwrap();
    out
}

async fn qr_association(
    gw: &TestGateway,
    user: &str,
    password: &str,
) -> Result<ScuAssociation, dimse::DimseError> {
    let mut options = tls_options(&gw.setup.cert);
    options.credentials = Some(Credentials::UsernamePassword {
        username: user.into(),
        password: password.into(),
    });
    options.roles = vec![RoleSelection::scp(data::CT)];
    let proposals = [
        Proposal::query(STUDY_ROOT_FIND),
        Proposal::query(STUDY_ROOT_GET),
        Proposal::query(STUDY_ROOT_MOVE),
        Proposal {
            abstract_syntax: data::CT.into(),
            transfer_syntaxes: vec![EXPLICIT_VR_LE.into()],
        },
    ];
    ScuAssociation::connect(&format!("127.0.0.1:{}", gw.tls_port), &options, &proposals).await
}

/// DCMTK's `storescp` as the C-MOVE destination, killed when dropped.
struct Receiver {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Receiver {
    async fn start() -> Receiver {
        common::require_dcmtk();
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(common::dcmtk_path("storescp"))
            .args(["+B", "-aet", DEST_AE, "-od"])
            .arg(dir.path())
            .arg(port.to_string())
            .env("TCP_NODELAY", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start storescp");
        let up = eventually(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        })
        .await;
        assert!(up, "storescp did not start listening");
        Receiver {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Values that identify patients or studies in the test data; none may appear in
/// any audit event.
fn identifiers(specs: &[Spec]) -> Vec<String> {
    let mut out = Vec::new();
    for s in specs {
        out.extend([
            s.patient_id.clone(),
            s.study_uid.clone(),
            s.series_uid.clone(),
            s.sop_uid.clone(),
            s.accession.clone(),
        ]);
    }
    out
}

async fn store_find_get_move_and_failures(backend: Backend) {
    let gw = TestGateway::spawn(backend).await;
    let facility = gw.setup.facility.id;
    // Instances 10..14: studies ...10.1.2 (10, 13), ...10.1.3 (11), ...10.1.1 (12).
    let specs: Vec<Spec> = (10..14).map(|n| Spec::new(data::CT, "CT", n)).collect();
    let mut scu = ScuAssociation::connect(
        &format!("127.0.0.1:{}", gw.plain_port),
        &plain_options(),
        &[common::peers::ct_proposal()],
    )
    .await
    .expect("plain association");
    for spec in &specs {
        let rsp = store_bytes(&mut scu, &spec.sop_uid, &dataset_bytes(spec)).await;
        assert_eq!(rsp.status, Status::Success);
    }
    // The request names another instance than the data set: refused.
    let rsp = store_bytes(&mut scu, "1.2.3.999", &dataset_bytes(&specs[0])).await;
    assert!(rsp.status.is_failure(), "{rsp:?}");
    scu.release().await.unwrap();

    common::add_clinician(&gw, facility, "dr.house", PASSWORD).await;
    let receiver = Receiver::start().await;
    let index = gw.index().await;
    index
        .add_destination(
            facility,
            &AeTitle::parse(DEST_AE).unwrap(),
            "127.0.0.1",
            receiver.port,
            false,
        )
        .await
        .unwrap();
    let mut qr = qr_association(&gw, "dr.house", PASSWORD)
        .await
        .expect("the right password is admitted");
    let found = qr
        .find(STUDY_ROOT_FIND, &identifier("STUDY", None))
        .await
        .unwrap();
    assert_eq!(found.matches.len(), 3);
    let mut store = MemoryStore::default();
    let got = qr
        .get(
            STUDY_ROOT_GET,
            &identifier("STUDY", Some(&specs[1].study_uid)),
            &mut store,
        )
        .await
        .unwrap();
    assert!(got.status.is_success(), "{got:?}");
    assert_eq!(store.received().len(), 1);
    let moved = qr
        .move_(
            STUDY_ROOT_MOVE,
            DEST_AE,
            &identifier("STUDY", Some(&specs[0].study_uid)),
            |_| std::ops::ControlFlow::Continue(()),
        )
        .await
        .unwrap();
    assert!(moved.status.is_success(), "{moved:?}");
    qr.release().await.unwrap();

    let refused = qr_association(&gw, "dr.house", "wrong password").await;
    assert!(refused.is_err(), "a wrong password is refused");
    // A password typed into the user name field: refused, and never recorded.
    let typed = qr_association(&gw, "Typed-Secret.2026", PASSWORD).await;
    assert!(typed.is_err(), "an unknown user name is refused");
    let stranger = ScuAssociation::connect(
        &format!("127.0.0.1:{}", gw.plain_port),
        &ScuOptions::new("STRANGER", GATEWAY_AE),
        &[common::peers::ct_proposal()],
    )
    .await;
    assert!(stranger.is_err(), "an unknown AE title is refused");

    let setup = gw.stop().await; // flushes the trail
    let events = all_events(&index).await;

    let stores: Vec<_> = of_kind(&events, EventKind::InstancesTransferred)
        .into_iter()
        .filter(|e| e.event.detail.starts_with("C-STORE"))
        .collect();
    assert_eq!(stores.len(), 1, "one event per association: {stores:#?}");
    let s = &stores[0].event;
    assert_eq!(s.object_count, 4);
    assert_eq!(s.outcome, Outcome::MinorFailure, "one instance was refused");
    assert!(s.detail.contains("stored 4, refused 1"), "{}", s.detail);
    assert!(s.detail.contains(common::PLAIN_AE), "{}", s.detail);
    assert_eq!(s.facility_id, Some(facility));
    assert_eq!(s.peer.as_deref(), Some("127.0.0.1"));
    assert_eq!(s.protocol, Protocol::Dicom);

    let queries = of_kind(&events, EventKind::Query);
    assert_eq!(queries.len(), 1);
    let q = &queries[0].event;
    assert_eq!(
        (q.object_count, q.outcome, q.username.as_deref()),
        (3, Outcome::Success, Some("dr.house"))
    );
    assert!(q.detail.contains("C-FIND level STUDY"), "{}", q.detail);

    let begins = of_kind(&events, EventKind::BeginTransferring);
    let begin_get = begins
        .iter()
        .find(|e| e.event.detail.contains("C-GET"))
        .expect("begin-transferring for the C-GET");
    assert_eq!(begin_get.event.object_count, 1);
    let begin_move = begins
        .iter()
        .find(|e| e.event.detail.contains("C-MOVE"))
        .expect("begin-transferring for the C-MOVE");
    assert_eq!(begin_move.event.object_count, 2);
    let transferred = of_kind(&events, EventKind::InstancesTransferred);
    let end_get = transferred
        .iter()
        .find(|e| e.event.detail.starts_with("C-GET"))
        .expect("instances-transferred for the C-GET");
    assert_eq!(end_get.event.object_count, 1);
    assert_eq!(end_get.event.outcome, Outcome::Success);
    let end_move = transferred
        .iter()
        .find(|e| e.event.detail.starts_with("C-MOVE"))
        .expect("instances-transferred for the C-MOVE");
    assert_eq!(end_move.event.object_count, 2);
    assert!(
        end_move.event.detail.contains(DEST_AE),
        "{}",
        end_move.event.detail
    );
    assert_eq!(end_move.event.username.as_deref(), Some("dr.house"));

    let logins = of_kind(&events, EventKind::Login);
    assert_eq!(logins.len(), 1);
    assert_eq!(logins[0].event.username.as_deref(), Some("dr.house"));
    let failures = of_kind(&events, EventKind::AuthenticationFailure);
    assert_eq!(failures.len(), 2);
    assert!(
        failures
            .iter()
            .all(|f| f.event.outcome == Outcome::MinorFailure)
    );
    let known = failures
        .iter()
        .find(|f| f.event.username.as_deref() == Some("dr.house"))
        .expect("the wrong password for an existing user names the user");
    assert!(
        !known.event.detail.contains("wrong password"),
        "never the password"
    );
    let unknown = failures
        .iter()
        .find(|f| f.event.username.is_none())
        .expect("the unknown user name is not recorded");
    assert!(
        unknown.event.detail.contains("unknown user name"),
        "{}",
        unknown.event.detail
    );
    let alerts = of_kind(&events, EventKind::SecurityAlert);
    assert_eq!(alerts.len(), 1);
    assert!(
        alerts[0].event.detail.contains("unknown AE title")
            && alerts[0].event.detail.contains("STRANGER"),
        "{}",
        alerts[0].event.detail
    );
    assert_eq!(alerts[0].event.facility_id, None);

    let forbidden = identifiers(&specs);
    for e in &events {
        let text = format!("{:?}", e.event);
        for id in &forbidden {
            assert!(!text.contains(id.as_str()), "{id} appears in {text}");
        }
        assert!(!text.contains(PASSWORD) && !text.contains("wrong password"));
        assert!(
            !text.contains("Typed-Secret.2026"),
            "typed name recorded: {text}"
        );
    }
    index.close().await;
    drop(receiver);
    drop(setup);
}

both_backends!(store_find_get_move_and_failures);

async fn the_table_is_append_only(backend: Backend) {
    use sqlx::Connection;
    let setup = common::Setup::new(backend, &common::Options::default()).await;
    let index = setup.index().await;
    let trail = AuditTrail::start(index.clone(), 16, None);
    trail
        .record(
            AuditEvent::new(EventKind::AdminChange, Outcome::Success, Protocol::Cli).detail("x"),
        )
        .await;
    trail.flush().await;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&setup.config.database_url())
        .await
        .unwrap();
    let update = sqlx::query("UPDATE audit_events SET detail = 'changed'")
        .execute(&mut conn)
        .await;
    assert!(update.is_err(), "UPDATE must be refused");
    let delete = sqlx::query("DELETE FROM audit_events")
        .execute(&mut conn)
        .await;
    assert!(delete.is_err(), "DELETE must be refused");
    let events = all_events(&index).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event.detail, "x");
    conn.close().await.unwrap();
    index.close().await;
}

both_backends!(the_table_is_append_only);

async fn nothing_is_lost_under_back_pressure(backend: Backend) {
    let setup = common::Setup::new(backend, &common::Options::default()).await;
    let index = setup.index().await;
    // A queue of 2 for 400 events from 8 tasks: callers must wait, not drop.
    let trail = AuditTrail::start(index.clone(), 2, None);
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..8 {
        let trail = trail.clone();
        tasks.spawn(async move {
            for i in 0..50 {
                let e = AuditEvent::new(EventKind::Query, Outcome::Success, Protocol::Dicom)
                    .user(format!("user{t}"))
                    .count(i);
                trail.record(e).await;
            }
        });
    }
    // Events recorded from synchronous code (a Drop) while the queue is full.
    for _ in 0..20 {
        trail.record_detached(AuditEvent::new(
            EventKind::Logout,
            Outcome::Success,
            Protocol::Dicom,
        ));
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    trail.flush().await;
    let events = all_events(&index).await;
    assert_eq!(of_kind(&events, EventKind::Query).len(), 400);
    assert_eq!(of_kind(&events, EventKind::Logout).len(), 20);

    // Filters and pages.
    let page = |before_id: Option<i64>| AuditFilter {
        username: Some("user3".into()),
        kind: Some(EventKind::Query),
        limit: Some(20),
        before_id,
        ..AuditFilter::default()
    };
    let first = search(&index, &page(None)).await.unwrap();
    let second = search(&index, &page(first.last().map(|e| e.id)))
        .await
        .unwrap();
    let third = search(&index, &page(second.last().map(|e| e.id)))
        .await
        .unwrap();
    assert_eq!((first.len(), second.len(), third.len()), (20, 20, 10));
    let ids: Vec<i64> = first
        .iter()
        .chain(&second)
        .chain(&third)
        .map(|e| e.id)
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "newest first, no overlap"
    );
    assert!(
        first
            .iter()
            .chain(&second)
            .chain(&third)
            .all(|e| e.event.username.as_deref() == Some("user3"))
    );
    let none = search(
        &index,
        &AuditFilter {
            outcome: Some(Outcome::MajorFailure),
            ..AuditFilter::default()
        },
    )
    .await
    .unwrap();
    assert!(none.is_empty());
    let future = search(
        &index,
        &AuditFilter {
            from: Some(gateway::db::now_millis() + 60_000),
            ..AuditFilter::default()
        },
    )
    .await
    .unwrap();
    assert!(future.is_empty());
    let odd = search(
        &index,
        &AuditFilter {
            username: Some("x' OR '1'='1".into()),
            ..AuditFilter::default()
        },
    )
    .await
    .unwrap();
    assert!(odd.is_empty(), "values are bound, not spliced");
    index.close().await;
}

both_backends!(nothing_is_lost_under_back_pressure);
