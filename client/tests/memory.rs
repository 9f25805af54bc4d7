//! Memory per association stays bounded for any instance size (issue 12), through
//! the binaries: a 1 GiB multi-frame instance (native pixel data, written to disk
//! piece by piece) is stored to a running `pacs-client serve`, which spools it and
//! forwards it, de-identified and sealed, to a real gateway (in this process). The
//! client's peak resident memory (VmHWM) must stay at most 96 MiB, and the gateway's
//! copy must hold the same pixel bytes.
//!
//! A spool file cut short between the scan and the send is never sent.
//!
//! `PACS_MEMORY_TEST_MIB` sets another pixel data size; `PACS_MEMORY_TEST_CLIENT`
//! another `pacs-client` binary (to measure an older build: the peak is printed
//! before it is checked).

mod common;

use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{GatewaySide, MODALITY_AE, client_config, client_toml, free_port};
use dicom_core::{DataElement, PrimitiveValue, VR, dicom_value};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use sha2::{Digest, Sha256};
use tokio::process::Command;

/// The bound the issue sets for the client's peak RSS.
const PEAK_LIMIT_KIB: u64 = 96 * 1024;
const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const SOP_INSTANCE: &str = "1.2.826.0.1.3680043.99.3.77.1";
/// Rows x columns x 2 bytes: one frame is 2 MiB.
const SIDE: u16 = 1024;
const FRAME: u64 = SIDE as u64 * SIDE as u64 * 2;
const PIECE: usize = 1 << 20;

fn pixel_bytes() -> u64 {
    let mib: u64 = std::env::var("PACS_MEMORY_TEST_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    (mib << 20) / FRAME * FRAME
}

/// Piece `n` of the pixel data: a fixed pattern stamped with its number, so that a
/// lost, repeated or misplaced piece changes the hash.
fn piece(pattern: &mut [u8], n: u64) {
    pattern[..8].copy_from_slice(&n.to_le_bytes());
}

/// Writes the instance (header in memory, pixel data piece by piece, trailing
/// padding after it); returns the SHA-256 of the pixel data value.
fn write_instance(path: &Path, pixel_len: u64) -> Vec<u8> {
    let s = |v: &str| PrimitiveValue::from(v);
    let header = InMemDicomObject::from_element_iter([
        DataElement::new(tags::SPECIFIC_CHARACTER_SET, VR::CS, s("ISO_IR 192")),
        DataElement::new(tags::SOP_CLASS_UID, VR::UI, s(CT)),
        DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, s(SOP_INSTANCE)),
        DataElement::new(tags::STUDY_DATE, VR::DA, s("20240315")),
        DataElement::new(tags::ACCESSION_NUMBER, VR::SH, s("ACCX77")),
        DataElement::new(tags::MODALITY, VR::CS, s("CT")),
        DataElement::new(tags::PATIENT_NAME, VR::PN, s("Müller^Jürgen")),
        DataElement::new(tags::PATIENT_ID, VR::LO, s("MRN-777")),
        DataElement::new(tags::PATIENT_BIRTH_DATE, VR::DA, s("19650312")),
        DataElement::new(
            tags::STUDY_INSTANCE_UID,
            VR::UI,
            s("1.2.826.0.1.3680043.99.1.77"),
        ),
        DataElement::new(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            s("1.2.826.0.1.3680043.99.2.77"),
        ),
        DataElement::new(
            tags::NUMBER_OF_FRAMES,
            VR::IS,
            s(&(pixel_len / FRAME).to_string()),
        ),
        DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, dicom_value!(U16, [1])),
        DataElement::new(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, s("MONOCHROME2")),
        DataElement::new(tags::ROWS, VR::US, dicom_value!(U16, [SIDE])),
        DataElement::new(tags::COLUMNS, VR::US, dicom_value!(U16, [SIDE])),
        DataElement::new(tags::BITS_ALLOCATED, VR::US, dicom_value!(U16, [16])),
        DataElement::new(tags::BITS_STORED, VR::US, dicom_value!(U16, [16])),
        DataElement::new(tags::HIGH_BIT, VR::US, dicom_value!(U16, [15])),
        DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, dicom_value!(U16, [0])),
    ]);
    let mut out = BufWriter::with_capacity(PIECE, std::fs::File::create(path).unwrap());
    out.write_all(&dimse::part10::encode_meta(
        CT,
        SOP_INSTANCE,
        EXPLICIT_LE,
        MODALITY_AE,
    ))
    .unwrap();
    out.write_all(&client::intake::forward::encode(&header, EXPLICIT_LE).unwrap())
        .unwrap();
    out.write_all(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0])
        .unwrap();
    out.write_all(&u32::try_from(pixel_len).unwrap().to_le_bytes())
        .unwrap();
    let mut pattern: Vec<u8> = (0..PIECE).map(|i| (i * 7 % 253) as u8).collect();
    let mut hash = Sha256::new();
    for n in 0..pixel_len / PIECE as u64 {
        piece(&mut pattern, n);
        hash.update(&pattern);
        out.write_all(&pattern).unwrap();
    }
    // Data Set Trailing Padding after the pixel data (removed and sealed).
    out.write_all(&[0xFC, 0xFF, 0xFC, 0xFF, b'O', b'B', 0, 0, 8, 0, 0, 0])
        .unwrap();
    out.write_all(b"PADPADPA").unwrap();
    out.into_inner().unwrap().sync_all().unwrap();
    hash.finalize().to_vec()
}

/// The length and SHA-256 of the Pixel Data value in a Part-10 file, read piece by
/// piece, and whether the trailing padding got through as it was.
fn stored_pixels(path: &Path) -> (u64, Vec<u8>, bool) {
    let mut file = std::fs::File::open(path).unwrap();
    let mut head = vec![0u8; 64 * 1024];
    let n = file.read(&mut head).unwrap();
    let meta = dimse::part10::parse_meta(&head[..n]).unwrap();
    assert_eq!(meta.transfer_syntax, EXPLICIT_LE);
    let offset = meta.dataset_offset as u64;
    file.seek(SeekFrom::Start(offset)).unwrap();
    let scanned = dimse::scan::scan(
        BufReader::with_capacity(PIECE, &file),
        dimse::scan::Encoding::ExplicitLittle,
    )
    .unwrap();
    let span = scanned.pixel_data.expect("the stored copy has pixel data");
    let end = offset + span.end;
    file.seek(SeekFrom::Start(offset + span.start + 12))
        .unwrap();
    let mut value = (&file).take(span.end - span.start - 12);
    let mut hash = Sha256::new();
    let mut buffer = vec![0u8; PIECE];
    let mut len = 0u64;
    loop {
        let n = value.read(&mut buffer).unwrap();
        if n == 0 {
            break;
        }
        hash.update(&buffer[..n]);
        len += n as u64;
    }
    let mut rest = Vec::new();
    file.seek(SeekFrom::Start(end)).unwrap();
    file.read_to_end(&mut rest).unwrap();
    let padding_kept = rest.windows(8).any(|w| w == b"PADPADPA");
    (len, hash.finalize().to_vec(), padding_kept)
}

/// VmHWM (peak resident set) of process `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

fn client_binary() -> PathBuf {
    std::env::var_os("PACS_MEMORY_TEST_CLIENT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_pacs-client")))
}

/// A gateway in this process and `pacs-client serve` (the binary) in front of it.
struct Rig {
    gw: GatewaySide,
    gateway: Option<common::RunningGateway>,
    dir: tempfile::TempDir,
    config: client::config::Config,
    edge_port: u16,
    serve: tokio::process::Child,
    log: PathBuf,
}

impl Rig {
    /// Starts both, `serve` with `failpoints` (or none).
    async fn start(failpoints: Option<&str>) -> Rig {
        let gw = GatewaySide::prepare().await;
        let gateway = Some(gw.start().await);
        let dir = tempfile::tempdir().unwrap();
        let edge_port = free_port();
        let config = client_config(dir.path(), &gw, edge_port);
        let config_file = dir.path().join("client.toml");
        std::fs::write(&config_file, client_toml(&config)).unwrap();
        let command = |args: &[&str]| {
            let mut cmd = Command::new(client_binary());
            cmd.current_dir(dir.path())
                .env_remove("PACS_CLIENT_CONFIG")
                .env_remove(client::failpoint::ENV)
                .env_remove("RUST_LOG")
                .arg("--config")
                .arg(&config_file)
                .args(args)
                .stdin(Stdio::null());
            cmd
        };
        let init = command(&["init"]).output().await.unwrap();
        assert!(init.status.success(), "init: {init:?}");
        let log = dir.path().join("serve.log");
        let mut serve = command(&["serve"]);
        if let Some(points) = failpoints {
            serve.env(client::failpoint::ENV, points);
        }
        let serve = serve
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", edge_port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "serve did not start listening");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Rig {
            gw,
            gateway,
            dir,
            config,
            edge_port,
            serve,
            log,
        }
    }

    /// Stores `file` to the edge as the modality, streamed from disk.
    async fn store(&self, file: &Path) {
        let options = dimse::scu::ScuOptions::new(MODALITY_AE, "PACS_CLIENT");
        let proposal = dimse::scu::Proposal {
            abstract_syntax: CT.into(),
            transfer_syntaxes: vec![EXPLICIT_LE.into()],
        };
        let address = format!("127.0.0.1:{}", self.edge_port);
        let mut modality = dimse::scu::ScuAssociation::connect(&address, &options, &[proposal])
            .await
            .unwrap();
        let rsp = modality.store_file(file).await.unwrap();
        assert!(
            rsp.status.is_success(),
            "the edge took it: {:?}",
            rsp.status
        );
        let _ = modality.release().await;
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The spooled copy of the one instance stored.
    fn spooled(&self) -> PathBuf {
        let mut files = Vec::new();
        let mut dirs = vec![self.config.data_dir.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "dcm") {
                    files.push(path);
                }
            }
        }
        assert_eq!(files.len(), 1, "one spooled instance: {files:?}");
        files.remove(0)
    }

    async fn stop(mut self) {
        let _ = self.serve.kill().await;
        if let Some(gateway) = self.gateway.take() {
            gateway.stop().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gibibyte_instance_is_forwarded_in_bounded_memory() {
    let started = Instant::now();
    let pixel_len = pixel_bytes();
    let rig = Rig::start(None).await;
    let pid = rig.serve.id().expect("serve is running");
    let instance = rig.dir.path().join("big.dcm");
    let expected = {
        let path = instance.clone();
        tokio::task::spawn_blocking(move || write_instance(&path, pixel_len))
            .await
            .unwrap()
    };
    let written = started.elapsed();
    rig.store(&instance).await;
    let spooled = started.elapsed();

    let stored = rig.gw.wait_for(1, Duration::from_secs(240)).await;
    let forwarded = started.elapsed();
    let peak = peak_rss_kib(pid);
    println!(
        "pacs-client serve peak RSS (VmHWM): {peak} kB = {:.1} MiB, forwarding a {} MiB \
         instance (limit {} MiB); written {:.1?}, spooled {:.1?}, at the gateway {:.1?}",
        peak as f64 / 1024.0,
        pixel_len >> 20,
        PEAK_LIMIT_KIB / 1024,
        written,
        spooled,
        forwarded,
    );
    assert_eq!(
        stored,
        1,
        "the gateway holds the instance; client log:\n{}",
        rig.log()
    );

    let blob = rig
        .gw
        .all_files()
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .unwrap();
    let (len, hash, padding_kept) = tokio::task::spawn_blocking(move || stored_pixels(&blob))
        .await
        .unwrap();
    assert_eq!(len, pixel_len, "pixel data length at the gateway");
    assert!(hash == expected, "the gateway's pixel bytes differ");
    assert!(!padding_kept, "trailing padding was sent as it was");
    rig.stop().await;
    assert!(
        peak <= PEAK_LIMIT_KIB,
        "pacs-client serve peaked at {peak} kB, more than {PEAK_LIMIT_KIB} kB"
    );
}

/// The spool file is cut short after it was scanned and before it is sent: that try
/// fails, the next finds it unreadable (a dead letter with the reason), and the
/// gateway never receives a data set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spool_file_cut_short_before_the_send_is_never_sent() {
    let rig = Rig::start(Some("forward.before-send=sleep-ms:3000")).await;
    let instance = rig.dir.path().join("cut.dcm");
    let pixel_len = 8 * FRAME;
    let path = instance.clone();
    tokio::task::spawn_blocking(move || write_instance(&path, pixel_len))
        .await
        .unwrap();
    rig.store(&instance).await;
    let spooled = rig.spooled();
    // The forwarder scans it, then sleeps before the send (and says so): cut it then.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !rig
        .log()
        .contains("failpoint forward.before-send: sleeping")
    {
        assert!(Instant::now() < deadline, "no send began:\n{}", rig.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let len = std::fs::metadata(&spooled).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&spooled)
        .unwrap()
        .set_len(len - FRAME)
        .unwrap();

    let outbox = client::outbox::Outbox::open(&rig.config.database_url())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let dead = loop {
        let dead = outbox.dead_letters().await.unwrap();
        if !dead.is_empty() || Instant::now() > deadline {
            break dead;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let log = rig.log();
    assert_eq!(dead.len(), 1, "a dead letter; client log:\n{log}");
    assert!(
        dead[0].reason.contains("cannot read spooled instance"),
        "{}",
        dead[0].reason
    );
    assert!(
        log.contains("changed after it was read"),
        "the first try saw the change; client log:\n{log}"
    );
    assert_eq!(
        rig.gw.stored().await.len(),
        0,
        "nothing reached the gateway"
    );
    outbox.close().await;
    rig.stop().await;
}
