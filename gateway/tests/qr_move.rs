//! C-MOVE on the gateway: a user's move goes to a destination registered for the
//! user's facility (here DCMTK's `storescp`), which receives the stored data sets
//! byte for byte; unregistered destinations, and those of another facility, are
//! refused with 0xA801 and receive nothing.

mod common;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::data::{self, Spec};
use common::peers::{eventually, file_dataset, tls_options};
use common::{Backend, TestGateway};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dimse::Status;
use dimse::qr::STUDY_ROOT_MOVE;
use dimse::scu::{Credentials, Proposal, ScuAssociation};
use gateway::domain::AeTitle;

const PASSWORD: &str = "correct horse battery";

/// DCMTK's `storescp` (not a same-named tool of another toolkit earlier on PATH).
fn dcmtk_storescp() -> PathBuf {
    common::require_dcmtk();
    let candidates = [PathBuf::from("/usr/bin/storescp"), "storescp".into()];
    candidates
        .into_iter()
        .find(|tool| {
            Command::new(tool)
                .arg("--version")
                .output()
                .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("dcmtk"))
        })
        .expect("DCMTK storescp is not installed: run `apt-get install -y dcmtk`")
}

/// A DCMTK `storescp` on a free port, killed when dropped.
struct Receiver {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Receiver {
    async fn start(ae_title: &str) -> Receiver {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(dcmtk_storescp())
            .args(["+B", "-aet", ae_title, "-od"])
            .arg(dir.path())
            .arg(port.to_string())
            .env("TCP_NODELAY", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start storescp");
        let mut receiver = Receiver { child, port, dir };
        let listening = eventually(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        })
        .await;
        assert!(listening, "storescp did not start listening on {port}");
        assert!(
            receiver.child.try_wait().unwrap().is_none(),
            "storescp exited"
        );
        receiver
    }

    fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A gateway holding instances 0 and 3 (both in study `…10.1.1`) and one user.
async fn gateway_with_study(backend: Backend) -> (TestGateway, Vec<PathBuf>, tempfile::TempDir) {
    let gw = TestGateway::spawn(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<_> = [0, 3]
        .iter()
        .map(|&n| {
            data::write(
                &dir.path().join(format!("{n}.dcm")),
                &Spec::new(data::CT, "CT", n),
            )
        })
        .collect();
    common::store_plain(&gw, &files).await;
    common::add_clinician(&gw, gw.setup.facility.id, "dr.house", PASSWORD).await;
    (gw, files, dir)
}

async fn connect(gw: &TestGateway) -> ScuAssociation {
    let mut options = tls_options(&gw.setup.cert);
    options.credentials = Some(Credentials::UsernamePassword {
        username: "dr.house".into(),
        password: PASSWORD.into(),
    });
    ScuAssociation::connect(
        &format!("127.0.0.1:{}", gw.tls_port),
        &options,
        &[Proposal::query(STUDY_ROOT_MOVE)],
    )
    .await
    .expect("the user is admitted")
}

fn study_key(study: &str) -> Vec<u8> {
    let obj = InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::QUERY_RETRIEVE_LEVEL,
            VR::CS,
            PrimitiveValue::from("STUDY"),
        ),
        DataElement::new(
            tags::STUDY_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(study),
        ),
    ]);
    let ts = dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased();
    let mut out = Vec::new();
    obj.write_dataset_with_ts(&mut out, &ts).unwrap();
    out
}

async fn register(gw: &TestGateway, facility: gateway::domain::FacilityId, ae: &str, port: u16) {
    let index = gw.index().await;
    index
        .add_destination(
            facility,
            &AeTitle::parse(ae).unwrap(),
            "127.0.0.1",
            port,
            false,
        )
        .await
        .expect("register destination");
    index.close().await;
}

fn datasets(files: &[PathBuf]) -> Vec<Vec<u8>> {
    let mut sets: Vec<_> = files.iter().map(|f| file_dataset(Path::new(f))).collect();
    sets.sort();
    sets
}

async fn move_to_registered_destination(backend: Backend) {
    let (mut gw, files, _dir) = gateway_with_study(backend).await;
    let receiver = Receiver::start("DEST").await;
    register(&gw, gw.setup.facility.id, "DEST", receiver.port).await;
    let other = gw
        .setup
        .add_plain_facility("other-clinic", "OTHER_AE")
        .await;
    register(&gw, other.id, "ELSEWHERE", receiver.port).await;
    let study = Spec::new(data::CT, "CT", 0).study_uid;
    let key = study_key(&study);
    let mut assoc = connect(&gw).await;

    let mut pendings = 0;
    let outcome = assoc
        .move_(STUDY_ROOT_MOVE, "DEST", &key, |_| {
            pendings += 1;
            ControlFlow::Continue(())
        })
        .await
        .unwrap();
    assert_eq!(outcome.status, Status::Success, "{outcome:?}");
    assert_eq!(outcome.sub_operations.completed, Some(2), "{outcome:?}");
    assert_eq!(outcome.sub_operations.failed.unwrap_or(0), 0);
    assert_eq!(pendings, 2);
    assert!(
        eventually(Duration::from_secs(5), || receiver.files().len() == 2).await,
        "storescp wrote {:?}",
        receiver.files()
    );
    assert!(
        datasets(&receiver.files()) == datasets(&files),
        "the destination received the stored data sets byte for byte"
    );
    assert!(
        datasets(&gw.setup.blob_files()) == datasets(&files),
        "what was stored is what was sent"
    );

    for unknown in ["NOWHERE", "ELSEWHERE"] {
        let outcome = assoc
            .move_(
                STUDY_ROOT_MOVE,
                unknown,
                &key,
                |_| ControlFlow::Continue(()),
            )
            .await
            .unwrap();
        assert_eq!(
            outcome.status.code(),
            0xA801,
            "{unknown} is not a destination of this facility: {outcome:?}"
        );
        assert!(outcome.pending.is_empty());
    }
    assoc.release().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.files().len(), 2, "refused moves sent nothing");
    gw.stop().await;
}

both_backends!(move_to_registered_destination);
