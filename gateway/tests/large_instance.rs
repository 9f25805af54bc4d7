//! A 210 MiB instance sent with DCMTK over DICOM TLS to the real `pacs-gateway`
//! process: it is stored and indexed once with the sender's hash, the gateway's
//! resident memory stays bounded while it streams, and SIGTERM then shuts the
//! process down cleanly (exit code 0).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::data::{self, Spec};
use common::{Backend, GATEWAY_AE, Options, Setup, args, dcmtk_async, dcmtk_tls_args};

/// 512 x 512 x 16 bit x 420 frames = 210 MiB of pixel data.
const FRAMES: u32 = 420;
/// Peak resident memory allowed for the gateway process.
const PEAK_RSS_LIMIT_KIB: u64 = 160 * 1024;

/// A `pacs-gateway serve` process; killed on drop if still running.
struct GatewayProcess {
    child: Child,
    tls_port: u16,
    log: PathBuf,
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl GatewayProcess {
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        let start = (start..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        format!("--- gateway log (tail) ---\n{}", &text[start..])
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts the binary on `setup` and waits until its TLS port accepts connections.
    fn spawn(setup: &Setup) -> GatewayProcess {
        let tls_port = free_port();
        let config = setup.dir.path().join("gateway.toml");
        std::fs::write(&config, config_toml(setup, tls_port, free_port())).unwrap();
        let log = setup.dir.path().join("gateway.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_pacs-gateway"))
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("start pacs-gateway");
        let mut gateway = GatewayProcess {
            child,
            tls_port,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = gateway.child.try_wait().unwrap() {
                panic!("pacs-gateway exited with {status}\n{}", gateway.log_tail());
            }
            if std::net::TcpStream::connect(("127.0.0.1", tls_port)).is_ok() {
                return gateway;
            }
            assert!(
                Instant::now() < deadline,
                "TLS port {tls_port} not accepting after 20 s\n{}",
                gateway.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits up to `limit` for the exit code.
    fn terminate(&mut self, limit: Duration) -> Option<i32> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The parts of `setup.config` the harness sets, as TOML, with concrete ports.
fn config_toml(setup: &Setup, tls_port: u16, plain_port: u16) -> String {
    use toml::{Table, Value};
    let c = &setup.config;
    let mut root = Table::new();
    let data_dir = c.data_dir.to_str().expect("UTF-8 temp path");
    root.insert("data_dir".into(), Value::from(data_dir));
    if let Some(url) = &c.database_url {
        root.insert("database_url".into(), Value::from(url.as_str()));
    }
    let mut dicom = Table::new();
    dicom.insert("ae_title".into(), Value::from(c.dicom.ae_title.as_str()));
    let tls = format!("127.0.0.1:{tls_port}");
    dicom.insert("tls_listen".into(), Value::from(tls));
    let plain = format!("127.0.0.1:{plain_port}");
    dicom.insert("plain_listen".into(), Value::from(plain));
    dicom.insert("max_pdu".into(), Value::from(i64::from(c.dicom.max_pdu)));
    let read_timeout = i64::try_from(c.dicom.read_timeout_secs).unwrap();
    dicom.insert("read_timeout_secs".into(), Value::from(read_timeout));
    let plain_ae: Table = c
        .dicom
        .plain_ae
        .iter()
        .map(|(ae, facility)| (ae.clone(), Value::from(facility.as_str())))
        .collect();
    dicom.insert("plain_ae".into(), Value::Table(plain_ae));
    root.insert("dicom".into(), Value::Table(dicom));
    let mut https = Table::new();
    https.insert("listen".into(), Value::from("127.0.0.1:0"));
    root.insert("https".into(), Value::Table(https));
    let mut metrics = Table::new();
    metrics.insert("listen".into(), Value::from(""));
    root.insert("metrics".into(), Value::Table(metrics));
    toml::to_string(&root).unwrap()
}

/// A `/proc/PID/status` field in KiB (`VmRSS`, `VmHWM`).
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Samples VmRSS of `pid` every 50 ms until `stop`; returns (max KiB, samples).
fn sample_rss(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(u64, usize)> {
    std::thread::spawn(move || {
        let (mut peak, mut samples) = (0, 0);
        while !stop.load(Ordering::Relaxed) {
            if let Some(kib) = proc_status_kib(pid, "VmRSS:") {
                peak = peak.max(kib);
                samples += 1;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        (peak, samples)
    })
}

fn large_spec() -> Spec {
    Spec {
        size: 512,
        frames: FRAMES,
        ..Spec::new(data::SC_MULTIFRAME_WORD, "OT", 4242)
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

async fn large_instance_bounded_memory(backend: Backend) {
    let setup = Setup::new(backend, &Options::default()).await;
    let work = tempfile::tempdir().unwrap();
    let file = data::write_large(&work.path().join("large.dcm"), &large_spec());
    let size = file_len(&file);
    assert!(size > 210 * 1024 * 1024, "{size} bytes");
    let expected_sha = common::dataset_sha256_streamed(&file);

    let mut gateway = GatewayProcess::spawn(&setup);
    let pid = gateway.pid();
    let idle_rss = proc_status_kib(pid, "VmRSS:").unwrap_or(0);
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_rss(pid, stop.clone());

    let mut list = dcmtk_tls_args(&setup.cert);
    list.extend(args(&["-R", "-aet", "LARGE_SCU", "-aec", GATEWAY_AE]));
    list.extend(["127.0.0.1".into(), gateway.tls_port.to_string()]);
    list.push(file.display().to_string());
    let started = Instant::now();
    let out = dcmtk_async("storescu", list).await;
    let elapsed = started.elapsed();

    stop.store(true, Ordering::Relaxed);
    let (peak_rss, samples) = sampler.join().unwrap();
    let hwm = proc_status_kib(pid, "VmHWM:").expect("VmHWM of the running gateway");
    let mib = |kib: u64| kib as f64 / 1024.0;
    eprintln!(
        "{backend:?}: sent {size} bytes ({:.1} MiB) in {elapsed:.1?} ({:.0} MiB/s); \
         gateway RSS idle {:.1} MiB, sampled peak {:.1} MiB ({samples} samples), VmHWM {:.1} MiB",
        size as f64 / 1048576.0,
        size as f64 / 1048576.0 / elapsed.as_secs_f64(),
        mib(idle_rss),
        mib(peak_rss),
        mib(hwm),
    );
    assert!(
        out.status.success(),
        "storescu failed: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        gateway.log_tail()
    );
    assert!(
        samples >= 5,
        "only {samples} RSS samples during the transfer"
    );
    assert!(
        hwm.max(peak_rss) < PEAK_RSS_LIMIT_KIB,
        "gateway peak RSS {:.1} MiB exceeds {} MiB for a {size}-byte instance",
        mib(hwm.max(peak_rss)),
        PEAK_RSS_LIMIT_KIB / 1024
    );

    let signalled = Instant::now();
    let exit = gateway.terminate(Duration::from_secs(15));
    eprintln!(
        "{backend:?}: exit {exit:?} {:.1?} after SIGTERM",
        signalled.elapsed()
    );
    assert_eq!(
        exit,
        Some(0),
        "no clean exit within 15 s of SIGTERM\n{}",
        gateway.log_tail()
    );

    let index = setup.index().await;
    let rows = index.instances(setup.facility.id).await.unwrap();
    index.close().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].sop_instance_uid, large_spec().sop_uid);
    assert_eq!(rows[0].sha256, expected_sha);
    let meta = dimse::scu::read_file_meta(&file).await.unwrap();
    assert_eq!(rows[0].size_bytes as u64, size - meta.dataset_offset as u64);
    assert_eq!(rows[0].number_of_frames, Some(i64::from(FRAMES)));
    let blobs = setup.blob_files();
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    assert!(file_len(&blobs[0]) >= rows[0].size_bytes as u64);
    assert!(setup.temp_files().is_empty(), "{:?}", setup.temp_files());
}

both_backends!(large_instance_bounded_memory);
