//! Building blocks of the ingest benchmark: synthetic instances, peers to measure
//! against (DCMTK `storescp`, Orthanc) and a `storescu` driver that splits the files
//! over N parallel associations; [`measure`] reads CPU time, peak memory and one
//! fsync round; [`services`] runs the gateway and the facility client.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, VR, dicom_value};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

pub mod measure;
pub mod report;
pub mod services;

const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

/// Writes `count` de-identified 512x512 16-bit CT instances (10 per series, 100 per
/// study; renderable: the whole Image Pixel module) into `dir`; returns the total
/// size in bytes.
pub fn generate(dir: &Path, count: usize) -> Result<u64> {
    std::fs::create_dir_all(dir)?;
    let pixels: Vec<u8> = (0..512 * 512 * 2).map(|i: usize| (i % 251) as u8).collect();
    let mut total = 0;
    for n in 0..count {
        let path = dir.join(format!("ct{n:06}.dcm"));
        let s = |v: String| PrimitiveValue::from(v);
        let mut obj = InMemDicomObject::from_element_iter([
            DataElement::new(tags::SOP_CLASS_UID, VR::UI, PrimitiveValue::from(CT)),
            DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, s(format!("2.25.9{n}"))),
            DataElement::new(
                tags::STUDY_DATE,
                VR::DA,
                s(format!("2024{:02}{:02}", n / 100 % 12 + 1, n % 28 + 1)),
            ),
            DataElement::new(tags::MODALITY, VR::CS, PrimitiveValue::from("CT")),
            DataElement::new(tags::PATIENT_ID, VR::LO, s(format!("PSEUDO{}", n / 100))),
            DataElement::new(
                tags::PATIENT_IDENTITY_REMOVED,
                VR::CS,
                PrimitiveValue::from("YES"),
            ),
            DataElement::new(
                tags::STUDY_INSTANCE_UID,
                VR::UI,
                s(format!("2.25.7{}", n / 100)),
            ),
            DataElement::new(
                tags::SERIES_INSTANCE_UID,
                VR::UI,
                s(format!("2.25.8{}", n / 10)),
            ),
            DataElement::new(tags::INSTANCE_NUMBER, VR::IS, s(format!("{}", n % 10 + 1))),
            DataElement::new(tags::ROWS, VR::US, dicom_value!(U16, [512])),
            DataElement::new(tags::COLUMNS, VR::US, dicom_value!(U16, [512])),
            DataElement::new(tags::BITS_ALLOCATED, VR::US, dicom_value!(U16, [16])),
            // The rest of the Image Pixel module, so that the gateway can render them
            // (background thumbnails, `/rendered`).
            DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, dicom_value!(U16, [1])),
            DataElement::new(
                tags::PHOTOMETRIC_INTERPRETATION,
                VR::CS,
                PrimitiveValue::from("MONOCHROME2"),
            ),
            DataElement::new(tags::BITS_STORED, VR::US, dicom_value!(U16, [16])),
            DataElement::new(tags::HIGH_BIT, VR::US, dicom_value!(U16, [15])),
            DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, dicom_value!(U16, [0])),
            DataElement::new(
                tags::PIXEL_DATA,
                VR::OW,
                PrimitiveValue::from(pixels.clone()),
            ),
        ]);
        let item = InMemDicomObject::from_element_iter([DataElement::new(
            tags::ENCRYPTED_CONTENT,
            VR::OB,
            PrimitiveValue::from(vec![7u8; 64]),
        )]);
        obj.put(DataElement::new(
            tags::ENCRYPTED_ATTRIBUTES_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![item]),
        ));
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(CT)
            .media_storage_sop_instance_uid(format!("2.25.9{n}"))
            .transfer_syntax(EXPLICIT_LE);
        obj.with_meta(meta)?.write_to_file(&path)?;
        total += std::fs::metadata(&path)?.len();
    }
    Ok(total)
}

/// Debian's DCMTK tool first (pynetdicom installs programs with the same names).
pub fn dcmtk(tool: &str) -> PathBuf {
    let debian = Path::new("/usr/bin").join(tool);
    if debian.exists() {
        debian
    } else {
        PathBuf::from(tool)
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits (up to 30 s) until something accepts connections on `port`.
pub fn wait_for_port(port: u16) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("nothing listens on port {port} after 30 s")
}

/// Server certificate, key and CA (from a gateway's dev PKI).
#[derive(Debug, Clone)]
pub struct ServerCerts {
    /// Server key.
    pub key: PathBuf,
    /// Server certificate.
    pub cert: PathBuf,
    /// CA certificate.
    pub ca: PathBuf,
}

impl ServerCerts {
    /// The dev PKI files in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        ServerCerts {
            key: dir.join("server.key"),
            cert: dir.join("server.crt"),
            ca: dir.join("ca.crt"),
        }
    }
}

/// A facility client certificate as written by `facility issue-cert`.
#[derive(Debug, Clone)]
pub struct ClientCert {
    /// Key.
    pub key: PathBuf,
    /// Certificate.
    pub cert: PathBuf,
    /// CA certificate.
    pub ca: PathBuf,
}

impl ClientCert {
    /// The files in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        ClientCert {
            key: dir.join("facility.key"),
            cert: dir.join("facility.crt"),
            ca: dir.join("ca.crt"),
        }
    }
}

/// Sends every file in `files` with `assocs` parallel `storescu` processes; returns
/// the wall time. Fails if any transfer fails.
pub fn storescu(
    files: &Path,
    called: &str,
    calling: &str,
    port: u16,
    assocs: usize,
    tls: Option<&ClientCert>,
) -> Result<Duration> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(files)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    all.sort();
    let per = all.len().div_ceil(assocs);
    let start = Instant::now();
    let mut children = Vec::new();
    for chunk in all.chunks(per) {
        let mut cmd = Command::new(dcmtk("storescu"));
        cmd.env("TCP_NODELAY", "1")
            .args(["-aec", called, "-aet", calling]);
        if let Some(c) = tls {
            cmd.arg("+tls")
                .arg(&c.key)
                .arg(&c.cert)
                .arg("+cf")
                .arg(&c.ca);
        }
        cmd.arg("127.0.0.1")
            .arg(port.to_string())
            .args(chunk)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        children.push(cmd.spawn().context("start storescu")?);
    }
    for child in children {
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("storescu failed: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    Ok(start.elapsed())
}

/// A peer to measure against.
pub struct Peer {
    child: Child,
    port: u16,
    ae: &'static str,
    _dir: tempfile::TempDir,
}

impl Peer {
    /// DCMTK `storescp --fork` writing to a fresh directory (`+tls` when asked).
    pub fn storescp(work: &Path, tls: bool, certs: &ServerCerts) -> Result<Peer> {
        let dir = tempfile::tempdir_in(work)?;
        let port = free_port()?;
        let mut cmd = Command::new(dcmtk("storescp"));
        cmd.env("TCP_NODELAY", "1")
            .args(["--fork", "-aet", "STORESCP", "-od"])
            .arg(dir.path());
        if tls {
            cmd.arg("+tls")
                .arg(&certs.key)
                .arg(&certs.cert)
                .arg("+cf")
                .arg(&certs.ca);
        }
        let child = cmd
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        wait_for_port(port)?;
        Ok(Peer {
            child,
            port,
            ae: "STORESCP",
            _dir: dir,
        })
    }

    /// Orthanc with its default SQLite index, when the `Orthanc` binary exists.
    pub fn orthanc(work: &Path) -> Result<Option<Peer>> {
        if Command::new("Orthanc")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            return Ok(None);
        }
        let dir = tempfile::tempdir_in(work)?;
        let (port, http) = (free_port()?, free_port()?);
        let config = dir.path().join("orthanc.json");
        let storage = dir.path().join("storage");
        std::fs::write(
            &config,
            format!(
                r#"{{"Name":"bench","StorageDirectory":{storage:?},"IndexDirectory":{storage:?},"DicomAet":"ORTHANC","DicomPort":{port},"HttpPort":{http},"RemoteAccessAllowed":false,"DicomCheckCalledAet":false,"UnknownSopClassAccepted":true,"Plugins":[]}}"#
            ),
        )?;
        let child = Command::new("Orthanc")
            .env("TCP_NODELAY", "1")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        wait_for_port(port)?;
        Ok(Some(Peer {
            child,
            port,
            ae: "ORTHANC",
            _dir: dir,
        }))
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends the files to this peer.
    pub fn send(&self, files: &Path, assocs: usize, tls: Option<&ClientCert>) -> Result<Duration> {
        storescu(files, self.ae, "BENCH", self.port, assocs, tls)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
