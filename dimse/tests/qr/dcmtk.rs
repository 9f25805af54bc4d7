//! DCMTK's findscu, getscu and movescu (Debian package `dcmtk`) against the
//! in-memory service: an independent implementation reads our responses, answers our
//! C-STORE sub-operations and proposes its own roles.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use dicom_dictionary_std::tags;
use dimse::assoc::EXPLICIT_VR_LE;

use super::helpers::*;

async fn dcmtk(tool: &str, args: Vec<String>) -> Output {
    // Debian's DCMTK first: pynetdicom also installs programs named findscu, getscu...
    let debian = std::path::Path::new("/usr/bin").join(tool);
    let program = if debian.exists() { debian } else { tool.into() };
    let mut command = tokio::process::Command::new(program);
    command
        .args(&args)
        .env("TCP_NODELAY", "1")
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .unwrap_or_else(|_| panic!("{tool} did not finish"))
        .unwrap_or_else(|e| panic!("cannot run {tool} (is dcmtk installed?): {e}"));
    let log = format!(
        "{tool} {args:?}: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{log}");
    if std::env::var_os("TEST_LOG").is_some() {
        eprintln!("{log}");
    }
    output
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// Asserts that `dir` holds exactly `instances`, each data set byte for byte.
fn assert_received(dir: &Path, instances: &[Instance]) {
    let files = files_in(dir);
    assert_eq!(files.len(), instances.len(), "{files:?}");
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        let meta = dimse::part10::parse_meta(&bytes).unwrap();
        let sent = instances
            .iter()
            .find(|i| i.sop_instance == meta.sop_instance_uid)
            .unwrap_or_else(|| panic!("unexpected file {file:?}"));
        assert_eq!(meta.transfer_syntax, sent.transfer_syntax);
        assert!(
            bytes[meta.dataset_offset..] == sent.data[..],
            "{file:?} differs from what was sent"
        );
    }
}

#[tokio::test]
async fn findscu_study_root_shows_both_matches() {
    let (service, record) = QrService::new(Config {
        matches: 2,
        ..Config::default()
    });
    let server = Server::start(service).await;
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().to_str().unwrap();
    let port = server.port.to_string();
    let list = [
        "-v",
        "-S",
        "-aec",
        SCP_AE,
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        "PatientID",
        "-k",
        "StudyInstanceUID",
        "-X",
        "-od",
        out_dir,
        "127.0.0.1",
        &port,
    ];
    let output = dcmtk("findscu", args(&list)).await;
    let log = String::from_utf8_lossy(&output.stderr).to_string()
        + &String::from_utf8_lossy(&output.stdout);
    assert_eq!(log.matches("(Pending)").count(), 2, "{log}");
    assert!(log.contains("Received Find Response 2 (Pending)"), "{log}");
    assert!(
        log.contains("Received Final Find Response (Success)"),
        "{log}"
    );

    // The extracted responses are our matches, parsed by DCMTK.
    let files = files_in(dir.path());
    assert_eq!(files.len(), 2, "{files:?}");
    for (i, file) in files.iter().enumerate() {
        let object = dicom_object::open_file(file).unwrap();
        let uid = object.element(tags::STUDY_INSTANCE_UID).unwrap();
        assert_eq!(uid.to_str().unwrap(), format!("{STUDY}.{i}"));
        let pid = object.element(tags::PATIENT_ID).unwrap();
        assert_eq!(pid.to_str().unwrap(), format!("PID{i:04}"));
    }
    let identifiers = record.identifiers.lock().unwrap().clone();
    assert_eq!(identifiers.len(), 1);
    assert!(identifiers[0].windows(5).any(|w| w == b"STUDY"));
    server.stop().await;
}

#[tokio::test]
async fn getscu_receives_every_instance_byte_exact() {
    let instances = vec![
        ct_instance(1, 2000, EXPLICIT_VR_LE),
        ct_instance(2, 200_000, EXPLICIT_VR_LE),
        ct_instance(3, 0, EXPLICIT_VR_LE),
    ];
    let (service, _) = QrService::new(Config {
        instances: instances.clone(),
        ..Config::default()
    });
    let server = Server::start(service).await;
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().to_str().unwrap();
    let port = server.port.to_string();
    let key = format!("StudyInstanceUID={STUDY}");
    let list = [
        "-v",
        "-S",
        "-aec",
        SCP_AE,
        "-od",
        out_dir,
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        &key,
        "127.0.0.1",
        &port,
    ];
    dcmtk("getscu", args(&list)).await;
    assert_received(dir.path(), &instances);
    server.stop().await;
}

#[tokio::test]
async fn movescu_as_its_own_destination_receives_every_instance_byte_exact() {
    let instances = vec![
        ct_instance(1, 3000, EXPLICIT_VR_LE),
        ct_instance(2, 100_000, EXPLICIT_VR_LE),
    ];
    let receive_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (service, _) = QrService::new(Config {
        instances: instances.clone(),
        destinations: vec![("MOVESCU".into(), format!("127.0.0.1:{receive_port}"))],
        ..Config::default()
    });
    let server = Server::start(service).await;
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().to_str().unwrap();
    let (port, receive) = (server.port.to_string(), receive_port.to_string());
    let key = format!("StudyInstanceUID={STUDY}");
    let list = [
        "-v",
        "-S",
        "-aet",
        "MOVESCU",
        "-aec",
        SCP_AE,
        "-aem",
        "MOVESCU",
        "+P",
        &receive,
        "-od",
        out_dir,
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        &key,
        "127.0.0.1",
        &port,
    ];
    dcmtk("movescu", args(&list)).await;
    assert_received(dir.path(), &instances);
    server.stop().await;
}
