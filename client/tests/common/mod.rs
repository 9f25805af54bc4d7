//! End-to-end harness: a real gateway in-process (strict: de-identified instances
//! only), a facility client (in-process or the `pacs-client` binary) enrolled with a
//! certificate the gateway issued, DCMTK `storescu` as the modality, and identifying
//! test instances generated at run time.

#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use client::config::{Config as ClientConfig, Modality};
use dicom_core::{DataElement, PrimitiveValue, VR, dicom_value};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use gateway::app::Application;
use gateway::config::Config as GatewayConfig;
use gateway::db::Index;
use gateway::domain::FacilityName;
use tokio::sync::oneshot;

/// Facility name on both sides.
pub const FACILITY: &str = "st-mary";
/// The modality's AE title.
pub const MODALITY_AE: &str = "CT_ROOM_1";

/// A free loopback port.
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A gateway data dir with the facility enrolled and its certificate issued.
pub struct GatewaySide {
    /// Keeps the dir alive.
    pub dir: tempfile::TempDir,
    /// Gateway config (fixed TLS port so it can restart on the same one).
    pub config: GatewayConfig,
    /// The facility row id.
    pub facility_id: gateway::domain::FacilityId,
    /// Certificate dir for the client (facility.crt, facility.key, ca.crt).
    pub cert_dir: PathBuf,
    /// The TLS port.
    pub port: u16,
}

/// Where the gateway keeps its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite in the gateway's data dir.
    Sqlite,
    /// A fresh database on the server named by `PACS_TEST_DATABASE_URL`.
    Postgres,
}

/// Declares `mod NAME { sqlite, postgres }` tests running `NAME(Backend)`; the
/// PostgreSQL variant says SKIPPED when `PACS_TEST_DATABASE_URL` is not set.
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                if $crate::common::postgres_base_url().is_none() {
                    eprintln!(
                        "SKIPPED {}::postgres: PACS_TEST_DATABASE_URL is not set",
                        stringify!($name)
                    );
                    return;
                }
                super::$name($crate::common::Backend::Postgres).await;
            }
        }
    };
}

/// `PACS_TEST_DATABASE_URL`, if set and not empty.
pub fn postgres_base_url() -> Option<String> {
    std::env::var("PACS_TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

/// Creates a fresh PostgreSQL database and returns its URL.
pub async fn fresh_postgres_database() -> String {
    use sqlx::Connection;
    let base = postgres_base_url().expect("PACS_TEST_DATABASE_URL");
    let name = format!("pacs_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&base)
        .await
        .expect("connect to PACS_TEST_DATABASE_URL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let (prefix, _) = base.rsplit_once('/').expect("database URL has a path");
    format!("{prefix}/{name}")
}

impl GatewaySide {
    /// Prepares (does not start) a strict gateway on SQLite.
    pub async fn prepare() -> GatewaySide {
        GatewaySide::prepare_on(Backend::Sqlite).await
    }

    /// Prepares (does not start) a strict gateway with its index on `backend`.
    pub async fn prepare_on(backend: Backend) -> GatewaySide {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut config = GatewayConfig {
            data_dir: dir.path().join("gateway"),
            ..GatewayConfig::default()
        };
        if backend == Backend::Postgres {
            config.database_url = Some(fresh_postgres_database().await);
        }
        config.dicom.tls_listen = format!("127.0.0.1:{port}");
        config.dicom.plain_listen = String::new();
        // The admin API on its own ephemeral port (tests run side by side).
        config.https.listen = format!("127.0.0.1:{}", free_port());
        config.metrics.listen = String::new();
        let index = gateway::app::open_index(&config).await.unwrap();
        let facility = index
            .create_facility(&FacilityName::parse(FACILITY).unwrap(), false)
            .await
            .unwrap();
        let files = gateway::app::TlsFiles::resolve(&config).unwrap();
        let ca = files.load_ca().unwrap();
        let issued = ca.issue_client(FACILITY, Some("facility")).unwrap();
        let cert_dir = dir.path().join("cert");
        std::fs::create_dir_all(&cert_dir).unwrap();
        issued.write(&cert_dir, "facility").unwrap();
        std::fs::copy(&files.ca_cert, cert_dir.join("ca.crt")).unwrap();
        index
            .add_certificate(facility.id, &issued.fingerprint(), FACILITY)
            .await
            .unwrap();
        index.close().await;
        GatewaySide {
            dir,
            config,
            facility_id: facility.id,
            cert_dir,
            port,
        }
    }

    /// Starts the gateway; drop or `stop` the handle to stop it.
    pub async fn start(&self) -> RunningGateway {
        let app = Application::build(self.config.clone()).await.unwrap();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        RunningGateway {
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// The index.
    pub async fn index(&self) -> Index {
        gateway::app::open_index(&self.config).await.unwrap()
    }

    /// Instances stored for the facility.
    pub async fn stored(&self) -> Vec<gateway::db::read::InstanceRow> {
        let index = self.index().await;
        let rows = index.instances(self.facility_id).await.unwrap();
        index.close().await;
        rows
    }

    /// Polls until at least `n` instances are stored (or the deadline passes).
    pub async fn wait_for(&self, n: usize, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let count = self.stored().await.len();
            if count >= n || Instant::now() > deadline {
                return count;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every file the gateway wrote (blobs, index database, WAL).
    pub fn all_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        walk(&self.config.data_dir, &mut out);
        out.retain(|p| !p.starts_with(self.config.data_dir.join("certs")));
        out
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out)
        } else {
            out.push(path)
        }
    }
}

/// A gateway running in this process.
pub struct RunningGateway {
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl RunningGateway {
    /// Stops it and waits.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

/// A client config pointing at `gateway`, with fast retries.
pub fn client_config(dir: &Path, gateway: &GatewaySide, edge_port: u16) -> ClientConfig {
    let mut config = ClientConfig {
        data_dir: dir.join("client"),
        facility: FACILITY.into(),
        ..ClientConfig::default()
    };
    config.edge.listen = format!("127.0.0.1:{edge_port}");
    config.edge.modalities = vec![Modality {
        ae_title: MODALITY_AE.into(),
        host: None,
    }];
    config.gateway.address = format!("127.0.0.1:{}", gateway.port);
    config.gateway.cert = Some(gateway.cert_dir.join("facility.crt"));
    config.gateway.key = Some(gateway.cert_dir.join("facility.key"));
    config.gateway.ca = Some(gateway.cert_dir.join("ca.crt"));
    config.forwarder.backoff_initial_secs = 1;
    config.forwarder.backoff_max_secs = 1;
    config.forwarder.poll_interval_ms = 50;
    config.forwarder.max_attempts = 1000;
    config
}

/// The same config as TOML, for the binary.
pub fn client_toml(config: &ClientConfig) -> String {
    let g = &config.gateway;
    let path = |p: &Option<PathBuf>| p.as_ref().unwrap().display().to_string();
    let mut text = format!(
        "data_dir = {:?}\nfacility = {:?}\n[edge]\nlisten = {:?}\n[[edge.modalities]]\nae_title = {:?}\n\
         [gateway]\naddress = {:?}\ncert = {:?}\nkey = {:?}\nca = {:?}\n\
         [forwarder]\nbackoff_initial_secs = 1\nbackoff_max_secs = 1\npoll_interval_ms = 50\nmax_attempts = 1000\n",
        config.data_dir.display().to_string(),
        config.facility,
        config.edge.listen,
        MODALITY_AE,
        g.address,
        path(&g.cert),
        path(&g.key),
        path(&g.ca),
    );
    for rule in &config.sharing.rules {
        text.push_str(&format!(
            "[[sharing.rules]]\nstudy_description = {:?}\naction = \"local\"\n",
            rule.study_description.clone().unwrap_or_default()
        ));
    }
    text
}

/// Identifying values of generated patients: what must never reach the gateway.
#[derive(Debug, Clone)]
pub struct Patient {
    /// Patient Name.
    pub name: String,
    /// Patient ID.
    pub id: String,
    /// Birth date.
    pub birth_date: String,
    /// Accession number.
    pub accession: String,
}

/// Patient `n` (names with accents, to exercise character sets).
pub fn patient(n: u32) -> Patient {
    Patient {
        name: format!("Müller{n}^Jürgen"),
        id: format!("MRN-{:06}", 314159 + n),
        birth_date: format!("1965031{}", n % 10),
        accession: format!("ACCX{:05}", 27182 + n),
    }
}

/// Original UID root of the generated instances.
pub const UID_ROOT: &str = "1.2.826.0.1.3680043.99";

/// Writes an identified CT instance `i` of patient `p`, study `study`: 16 x 16 with
/// Bits Allocated 16 and every pixel byte `i % 250`, but no Photometric
/// Interpretation, Samples per Pixel or Bits Stored (so nothing can render it).
pub fn write_instance(dir: &Path, p: &Patient, study: u32, i: u32, description: &str) -> PathBuf {
    write_object(dir, study, i, identified_instance(p, study, i, description))
}

/// Size of the images [`write_image_instance`] writes: columns, rows.
pub const IMAGE_SIZE: (u16, u16) = (256, 128);

/// Stored value of column `x` of a [`write_image_instance`] image: a left-to-right
/// ramp over the 12 bits stored, the same on every row.
pub fn gradient_value(x: u16) -> u16 {
    let (columns, _) = IMAGE_SIZE;
    (u32::from(x) * 4095 / u32::from(columns - 1)) as u16
}

/// Like [`write_instance`], but a renderable image: a MONOCHROME2 image module of
/// [`IMAGE_SIZE`], 16 bits allocated, 12 stored, unsigned, with a window covering the
/// whole range, and a [`gradient_value`] ramp in Pixel Data (black on the left,
/// white on the right once rendered).
pub fn write_image_instance(
    dir: &Path,
    p: &Patient,
    study: u32,
    i: u32,
    description: &str,
) -> PathBuf {
    let (columns, rows) = IMAGE_SIZE;
    let mut obj = identified_instance(p, study, i, description);
    let us = |v: u16| dicom_value!(U16, [v]);
    let mut pixels = Vec::with_capacity(usize::from(columns) * usize::from(rows) * 2);
    for _ in 0..rows {
        for x in 0..columns {
            pixels.extend_from_slice(&gradient_value(x).to_le_bytes());
        }
    }
    for element in [
        DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, us(1)),
        DataElement::new(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            PrimitiveValue::from("MONOCHROME2"),
        ),
        DataElement::new(tags::ROWS, VR::US, us(rows)),
        DataElement::new(tags::COLUMNS, VR::US, us(columns)),
        DataElement::new(tags::BITS_ALLOCATED, VR::US, us(16)),
        DataElement::new(tags::BITS_STORED, VR::US, us(12)),
        DataElement::new(tags::HIGH_BIT, VR::US, us(11)),
        DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, us(0)),
        DataElement::new(tags::WINDOW_CENTER, VR::DS, PrimitiveValue::from("2048")),
        DataElement::new(tags::WINDOW_WIDTH, VR::DS, PrimitiveValue::from("4096")),
        DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::from(pixels)),
    ] {
        obj.put(element);
    }
    write_object(dir, study, i, obj)
}

/// Writes `obj` (instance `i` of study `study`) as a Part-10 file in `dir`.
fn write_object(dir: &Path, study: u32, i: u32, obj: InMemDicomObject) -> PathBuf {
    let sop = format!("{UID_ROOT}.3.{study}.{i}");
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.2")
        .media_storage_sop_instance_uid(sop.as_str())
        .transfer_syntax("1.2.840.10008.1.2.1");
    let path = dir.join(format!("s{study}i{i}.dcm"));
    obj.with_meta(meta).unwrap().write_to_file(&path).unwrap();
    path
}

/// The data set [`write_instance`] writes.
fn identified_instance(p: &Patient, study: u32, i: u32, description: &str) -> InMemDicomObject {
    let s = |v: &str| PrimitiveValue::from(v);
    let sop = format!("{UID_ROOT}.3.{study}.{i}");
    InMemDicomObject::from_element_iter([
        DataElement::new(tags::SPECIFIC_CHARACTER_SET, VR::CS, s("ISO_IR 192")),
        DataElement::new(tags::SOP_CLASS_UID, VR::UI, s("1.2.840.10008.5.1.4.1.1.2")),
        DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, s(&sop)),
        DataElement::new(tags::STUDY_DATE, VR::DA, s("20240315")),
        DataElement::new(tags::ACCESSION_NUMBER, VR::SH, s(&p.accession)),
        DataElement::new(tags::MODALITY, VR::CS, s("CT")),
        DataElement::new(tags::INSTITUTION_NAME, VR::LO, s("St Mary Hospital")),
        DataElement::new(tags::REFERRING_PHYSICIAN_NAME, VR::PN, s("House^Gregory")),
        DataElement::new(tags::STUDY_DESCRIPTION, VR::LO, s(description)),
        DataElement::new(tags::PATIENT_NAME, VR::PN, s(&p.name)),
        DataElement::new(tags::PATIENT_ID, VR::LO, s(&p.id)),
        DataElement::new(tags::PATIENT_BIRTH_DATE, VR::DA, s(&p.birth_date)),
        DataElement::new(tags::PATIENT_SEX, VR::CS, s("M")),
        DataElement::new(
            tags::STUDY_INSTANCE_UID,
            VR::UI,
            s(&format!("{UID_ROOT}.1.{study}")),
        ),
        DataElement::new(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            s(&format!("{UID_ROOT}.2.{study}")),
        ),
        DataElement::new(tags::INSTANCE_NUMBER, VR::IS, s(&i.to_string())),
        DataElement::new(tags::ROWS, VR::US, dicom_value!(U16, [16])),
        DataElement::new(tags::COLUMNS, VR::US, dicom_value!(U16, [16])),
        DataElement::new(tags::BITS_ALLOCATED, VR::US, dicom_value!(U16, [16])),
        DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::from(vec![(i % 250) as u8; 512]),
        ),
    ])
}

/// The DCMTK tool `tool`, Debian's `/usr/bin` copy first (pynetdicom installs
/// programs of the same names).
pub fn dcmtk_path(tool: &str) -> PathBuf {
    let debian = Path::new("/usr/bin").join(tool);
    if debian.exists() {
        debian
    } else {
        PathBuf::from(tool)
    }
}

/// `storescu` from the modality to the client's edge port; panics on failure.
pub async fn storescu(port: u16, files: Vec<PathBuf>) {
    let out = tokio::task::spawn_blocking(move || {
        Command::new(dcmtk_path("storescu"))
            .env("TCP_NODELAY", "1")
            .args([
                "-v",
                "-aet",
                MODALITY_AE,
                "-aec",
                "PACS_CLIENT",
                "127.0.0.1",
                &port.to_string(),
            ])
            .args(&files)
            .stdin(Stdio::null())
            .output()
            .expect("storescu (apt-get install dcmtk)")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "storescu to the client failed ({:?}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Like [`client_toml`], but the `[forwarder]` section carries `config.forwarder`'s
/// values (e.g. `max_attempts = 1` to make dead letters quickly).
pub fn client_toml_with_forwarder(config: &ClientConfig) -> String {
    let fixed = "[forwarder]\nbackoff_initial_secs = 1\nbackoff_max_secs = 1\npoll_interval_ms = 50\nmax_attempts = 1000\n";
    let f = &config.forwarder;
    let wanted = format!(
        "[forwarder]\nassociations = {}\nbackoff_initial_secs = {}\nbackoff_max_secs = {}\npoll_interval_ms = {}\nmax_attempts = {}\n",
        f.associations,
        f.backoff_initial_secs,
        f.backoff_max_secs,
        f.poll_interval_ms,
        f.max_attempts
    );
    let text = client_toml(config);
    assert!(
        text.contains(fixed),
        "client_toml's [forwarder] section changed; update client_toml_with_forwarder"
    );
    text.replace(fixed, &wanted)
}

/// A client (not started) with the viewer `viewer_ae` mapped to the clinician
/// `dr.house`, whose password the gateway knows and the client keeps in a 0600
/// credentials file; the key is created and `client.toml` written. Returns the
/// config, the config file and the edge port.
pub async fn client_with_viewer(
    gw: &GatewaySide,
    dir: &Path,
    viewer_ae: &str,
    password: &str,
) -> (ClientConfig, PathBuf, u16) {
    use gateway::auth::{AuthSettings, Password, Role, Username, hash_password};
    use std::os::unix::fs::PermissionsExt;
    let edge = free_port();
    let mut config = client_config(dir, gw, edge);
    config.edge.viewers = vec![client::config::Viewer {
        ae_title: viewer_ae.into(),
        host: None,
        user: "dr.house".into(),
        port: None,
        character_set: None,
    }];
    let credentials = dir.join("credentials.toml");
    std::fs::write(
        &credentials,
        format!("username = \"dr.house\"\npassword = \"{password}\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o600)).unwrap();
    config.credentials.file = Some(credentials);
    client::keyfile::create(&config.key_file()).unwrap();
    let index = gw.index().await;
    let hash = hash_password(&AuthSettings::default(), &Password::new(password)).unwrap();
    index
        .create_user(
            gw.facility_id,
            &Username::parse("dr.house").unwrap(),
            Role::Clinician,
            &hash,
        )
        .await
        .unwrap();
    index.close().await;
    let config_file = dir.join("client.toml");
    std::fs::write(&config_file, client_toml(&config)).unwrap();
    (config, config_file, edge)
}

/// Where `scripts/install-deps.sh` installs the Python packages the tests drive
/// (pynetdicom, dicomweb-client): not site-wide, where pynetdicom's scripts would
/// shadow DCMTK's on PATH.
pub const PYTHON_DEPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/python");

/// `python3` that also sees [`PYTHON_DEPS`].
pub fn python() -> Command {
    let mut command = Command::new("python3");
    let mut path = std::ffi::OsString::from(PYTHON_DEPS);
    if let Some(old) = std::env::var_os("PYTHONPATH").filter(|p| !p.is_empty()) {
        path.push(":");
        path.push(old);
    }
    command.env("PYTHONPATH", path);
    command
}
