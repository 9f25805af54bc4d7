//! Test harness for the gateway's integration tests: a gateway on ephemeral ports in a
//! temp dir (in-process or as the real binary), an enrolled facility with an issued
//! client certificate, DCMTK tools, and DICOM files generated at test time.
//!
//! Tests are silent unless `TEST_LOG=1`.

#![allow(dead_code, unreachable_pub)]

pub mod data;
pub mod peers;
pub mod raw_pdu;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Once;

use gateway::app::Application;
use gateway::config::{Config, DuplicatePolicy};
use gateway::db::{Facility, Index};
use gateway::domain::FacilityName;
use gateway::pki::Ca;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The facility every harness gateway has enrolled.
pub const FACILITY: &str = "st-mary";
/// The AE title allow-listed on the plain port for [`FACILITY`].
pub const PLAIN_AE: &str = "MODALITY1";
/// The gateway's AE title in tests.
pub const GATEWAY_AE: &str = "PACS_GATEWAY";

/// Which index database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file in the temp dir.
    Sqlite,
    /// A fresh database on the server named by `PACS_TEST_DATABASE_URL`.
    Postgres,
}

/// Declares `mod NAME { sqlite, postgres }` tests running `NAME(Backend)`.
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

/// Installs a log subscriber when `TEST_LOG` is set.
pub fn init_logging() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            gateway::telemetry::init(1, gateway::telemetry::LogFormat::Text);
        }
    });
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

/// Files a facility needs to talk TLS to the gateway.
#[derive(Debug, Clone)]
pub struct FacilityCert {
    /// Client certificate.
    pub cert: PathBuf,
    /// Client key.
    pub key: PathBuf,
    /// Gateway CA (verifies the server).
    pub ca: PathBuf,
}

/// Test configuration knobs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Whether the facility may send identified instances.
    pub accept_identified: bool,
    /// Duplicate policy.
    pub duplicate_policy: DuplicatePolicy,
    /// Seconds between PDUs before abort.
    pub read_timeout_secs: u64,
    /// Largest PDU accepted.
    pub max_pdu: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            accept_identified: true,
            duplicate_policy: DuplicatePolicy::Reject,
            read_timeout_secs: 30,
            max_pdu: 256 * 1024,
        }
    }
}

/// Temp dir, config and enrolled facility, shared by in-process and process gateways.
pub struct Setup {
    /// Keeps the temp dir alive.
    pub dir: tempfile::TempDir,
    /// The config in effect (ports may be 0).
    pub config: Config,
    /// The facility.
    pub facility: Facility,
    /// Its certificate files.
    pub cert: FacilityCert,
}

impl Drop for Setup {
    /// Drops the test's PostgreSQL database, if it made one (the SQLite file goes
    /// with the temp dir).
    fn drop(&mut self) {
        let Some(url) = self.config.database_url.clone() else {
            return;
        };
        let (Some(base), Some((_, name))) = (postgres_base_url(), url.rsplit_once('/')) else {
            return;
        };
        let name = name.to_string();
        let dropper = std::thread::spawn(move || {
            use sqlx::Connection;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&base).await.ok()?;
                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                sqlx::query(&sql).execute(&mut conn).await.ok()
            })
        });
        let _ = dropper.join();
    }
}

impl Setup {
    /// Creates a data dir with an index, the facility and its certificate.
    pub async fn new(backend: Backend, options: &Options) -> Setup {
        init_logging();
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(fresh_postgres_database().await),
        };
        let mut config = Config {
            data_dir: dir.path().join("data"),
            database_url,
            ..Config::default()
        };
        config.dicom.ae_title = GATEWAY_AE.into();
        config.dicom.tls_listen = "127.0.0.1:0".into();
        config.dicom.plain_listen = "127.0.0.1:0".into();
        config.https.listen = "127.0.0.1:0".into();
        config.metrics.listen = "127.0.0.1:0".into();
        config
            .dicom
            .plain_ae
            .insert(PLAIN_AE.into(), FACILITY.into());
        config.dicom.read_timeout_secs = options.read_timeout_secs;
        config.dicom.max_pdu = options.max_pdu;
        config.ingest.duplicate_policy = options.duplicate_policy;
        let index = gateway::app::open_index(&config).await.expect("open index");
        let name = FacilityName::parse(FACILITY).unwrap();
        let facility = index
            .create_facility(&name, options.accept_identified)
            .await
            .expect("facility");
        let files = gateway::app::TlsFiles::resolve(&config).expect("dev PKI");
        let ca = files.load_ca().expect("CA");
        let issued = ca
            .issue_client(FACILITY, Some("facility"))
            .expect("client cert");
        let cert_dir = dir.path().join("facility-cert");
        std::fs::create_dir_all(&cert_dir).unwrap();
        let (cert, key) = issued.write(&cert_dir, "facility").expect("write cert");
        index
            .add_certificate(facility.id, &issued.fingerprint(), FACILITY)
            .await
            .expect("enroll cert");
        index.close().await;
        let cert = FacilityCert {
            cert,
            key,
            ca: files.ca_cert.clone(),
        };
        Setup {
            dir,
            config,
            facility,
            cert,
        }
    }

    /// Opens the index (for assertions).
    pub async fn index(&self) -> Index {
        gateway::app::open_index(&self.config)
            .await
            .expect("open index")
    }

    /// Root of the blob store.
    pub fn blob_root(&self) -> PathBuf {
        self.config.data_dir.join("blobs")
    }

    /// A certificate from a different CA (same facility name), written to a new dir.
    pub fn foreign_cert(&self) -> FacilityCert {
        let other = Ca::create("Some Other CA").unwrap();
        let issued = other.issue_client(FACILITY, Some("facility")).unwrap();
        let dir = self.dir.path().join("foreign-cert");
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = issued.write(&dir, "facility").unwrap();
        FacilityCert {
            cert,
            key,
            ca: self.cert.ca.clone(),
        }
    }

    /// A certificate signed by the gateway's own CA but never enrolled (as if issued
    /// outside `facility issue-cert`, or for a facility since removed).
    pub fn unenrolled_cert(&self) -> FacilityCert {
        let ca = gateway::app::TlsFiles::resolve(&self.config)
            .unwrap()
            .load_ca()
            .unwrap();
        let issued = ca.issue_client(FACILITY, Some("facility")).unwrap();
        let dir = self.dir.path().join("unenrolled-cert");
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = issued.write(&dir, "facility").unwrap();
        FacilityCert {
            cert,
            key,
            ca: self.cert.ca.clone(),
        }
    }

    /// Stored blob files (excluding temp files and the thumbnail cache), sorted.
    pub fn blob_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        walk(&self.blob_root(), &mut out);
        out.retain(|p| {
            !p.starts_with(self.blob_root().join("incoming"))
                && !p.starts_with(self.blob_root().join("thumbnails"))
        });
        out.sort();
        out
    }

    /// Temp files left in the incoming area.
    pub fn temp_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        walk(&self.blob_root().join("incoming"), &mut out);
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
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// A gateway running in this process.
pub struct TestGateway {
    /// Its setup.
    pub setup: Setup,
    /// DICOM TLS port.
    pub tls_port: u16,
    /// Plain DICOM port.
    pub plain_port: u16,
    /// Its metrics (what `/metrics` serves).
    pub metrics: std::sync::Arc<gateway::metrics::Metrics>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestGateway {
    /// Starts a gateway with default options.
    pub async fn spawn(backend: Backend) -> TestGateway {
        Self::spawn_with(backend, Options::default()).await
    }

    /// Starts a gateway with `options`.
    pub async fn spawn_with(backend: Backend, options: Options) -> TestGateway {
        let setup = Setup::new(backend, &options).await;
        Self::start(setup).await
    }

    /// Starts a gateway on an existing setup (e.g. after a restart).
    pub async fn start(setup: Setup) -> TestGateway {
        let app = Application::build(setup.config.clone())
            .await
            .expect("build gateway");
        let tls_port = app.tls_port().expect("tls port");
        let plain_port = app.plain_port().expect("plain port");
        let metrics = app.metrics().clone();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        TestGateway {
            setup,
            tls_port,
            plain_port,
            metrics,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the gateway and returns its setup (data dir intact).
    pub async fn stop(mut self) -> Setup {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("gateway task").expect("gateway run");
        }
        let TestGateway { setup, .. } = self;
        setup
    }

    /// The index (a new pool on the same database).
    pub async fn index(&self) -> Index {
        self.setup.index().await
    }

    /// `+tls` arguments for DCMTK with the facility certificate.
    pub fn dcmtk_tls_args(&self) -> Vec<String> {
        dcmtk_tls_args(&self.setup.cert)
    }
}

/// `+tls KEY CERT +cf CA` for DCMTK.
pub fn dcmtk_tls_args(cert: &FacilityCert) -> Vec<String> {
    vec![
        "+tls".into(),
        cert.key.display().to_string(),
        cert.cert.display().to_string(),
        "+cf".into(),
        cert.ca.display().to_string(),
    ]
}

/// The DCMTK tool `tool`: Debian's `/usr/bin` copy first, so that a same-named
/// program earlier on PATH (pynetdicom installs `storescu`, `findscu`...) is not
/// picked up instead.
pub fn dcmtk_path(tool: &str) -> PathBuf {
    let debian = Path::new("/usr/bin").join(tool);
    if debian.exists() {
        debian
    } else {
        PathBuf::from(tool)
    }
}

/// Fails the test with a clear message when DCMTK is missing.
pub fn require_dcmtk() {
    let found = Command::new(dcmtk_path("storescu"))
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "DCMTK is not installed: run `apt-get install -y dcmtk` (the README's test command does)"
    );
}

/// Runs a DCMTK tool (with `TCP_NODELAY=1`) and returns its output.
pub fn dcmtk(tool: &str, args: &[String]) -> Output {
    require_dcmtk();
    let out = Command::new(dcmtk_path(tool))
        .args(args)
        .env("TCP_NODELAY", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
    if std::env::var_os("TEST_LOG").is_some() {
        eprintln!(
            "$ {tool} {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Runs a DCMTK tool off the async runtime.
pub async fn dcmtk_async(tool: &str, args: Vec<String>) -> Output {
    let tool = tool.to_string();
    tokio::task::spawn_blocking(move || dcmtk(&tool, &args))
        .await
        .unwrap()
}

/// Turns `&str` slices into owned args.
pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// SHA-256 (hex) of a file's data set (the bytes after its meta header).
pub fn dataset_sha256(path: &Path) -> String {
    use sha2::Digest;
    let bytes = std::fs::read(path).unwrap();
    let meta = dimse::part10::parse_meta(&bytes).unwrap();
    hex::encode(sha2::Sha256::digest(&bytes[meta.dataset_offset..]))
}

/// [`dataset_sha256`] without reading the file into memory (for very large files).
pub fn dataset_sha256_streamed(path: &Path) -> String {
    use sha2::Digest;
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).unwrap();
    let mut head = Vec::new();
    (&mut file).take(64 * 1024).read_to_end(&mut head).unwrap();
    let meta = dimse::part10::parse_meta(&head).unwrap();
    file.seek(SeekFrom::Start(meta.dataset_offset as u64))
        .unwrap();
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hex::encode(hasher.finalize())
}

impl Setup {
    /// Enrolls another facility (accepting identified instances) whose senders come in
    /// on the plain port as `ae`; call before [`TestGateway::start`].
    pub async fn add_plain_facility(&mut self, name: &str, ae: &str) -> Facility {
        let index = self.index().await;
        let name = FacilityName::parse(name).expect("facility name");
        let facility = index
            .create_facility(&name, true)
            .await
            .expect("second facility");
        index.close().await;
        self.config
            .dicom
            .plain_ae
            .insert(ae.into(), name.as_str().into());
        facility
    }
}

/// Stores `files` on the plain port as [`PLAIN_AE`] with DCMTK storescu; panics on failure.
pub async fn store_plain(gw: &TestGateway, files: &[PathBuf]) {
    let mut list = args(&[
        "-aet",
        PLAIN_AE,
        "-aec",
        GATEWAY_AE,
        "127.0.0.1",
        &gw.plain_port.to_string(),
    ]);
    list.extend(files.iter().map(|f| f.display().to_string()));
    let out = dcmtk_async("storescu", list).await;
    assert!(
        out.status.success(),
        "storescu failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Creates a clinician of `facility` with `password` (short failure delay).
pub async fn add_clinician(
    gw: &TestGateway,
    facility: gateway::domain::FacilityId,
    name: &str,
    password: &str,
) {
    use gateway::auth::{AuthSettings, Password, Role, Username, hash_password};
    let settings = AuthSettings {
        failure_delay_ms: 1,
        ..AuthSettings::default()
    };
    let hash = hash_password(&settings, &Password::new(password)).expect("hash");
    let index = gw.index().await;
    index
        .create_user(
            facility,
            &Username::parse(name).expect("user name"),
            Role::Clinician,
            &hash,
        )
        .await
        .expect("create user");
    index.close().await;
}

/// Where `scripts/install-deps.sh` installs the Python packages the tests drive
/// (pynetdicom, dicomweb-client): not site-wide, where pynetdicom's `storescu`,
/// `findscu`, ... scripts would shadow DCMTK's on PATH.
pub const PYTHON_DEPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/python");

/// `python3` that also sees [`PYTHON_DEPS`].
pub fn python() -> std::process::Command {
    let mut command = std::process::Command::new("python3");
    let mut path = std::ffi::OsString::from(PYTHON_DEPS);
    if let Some(old) = std::env::var_os("PYTHONPATH").filter(|p| !p.is_empty()) {
        path.push(":");
        path.push(old);
    }
    command.env("PYTHONPATH", path);
    command
}
