//! The real `pacs-gateway` binary for the flood tests: started on a harness
//! [`Setup`] with extra TOML, its stderr in a file, killed on drop.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{GATEWAY_AE, Setup};

/// A `pacs-gateway serve` process.
pub struct GatewayProcess {
    child: Child,
    /// DICOM TLS port.
    pub tls_port: u16,
    /// HTTPS port.
    pub https_port: u16,
    /// Plain-HTTP metrics port.
    pub metrics_port: u16,
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
    /// Starts the binary on `setup`'s data dir with every listener on a fresh
    /// loopback port; `dicom` and `https` are extra lines of those sections. Waits
    /// until the metrics port accepts connections.
    pub fn spawn(setup: &Setup, dicom: &str, https: &str) -> GatewayProcess {
        let ports = (free_port(), free_port(), free_port(), free_port());
        let (tls_port, plain_port, https_port, metrics_port) = ports;
        let config = setup.dir.path().join("gateway.toml");
        let text = format!(
            "data_dir = {data:?}\n\
             [dicom]\nae_title = {GATEWAY_AE:?}\ntls_listen = \"127.0.0.1:{tls_port}\"\n\
             plain_listen = \"127.0.0.1:{plain_port}\"\n{dicom}\n\
             [https]\nlisten = \"127.0.0.1:{https_port}\"\n{https}\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n",
            data = setup.config.data_dir.display().to_string(),
        );
        std::fs::write(&config, text).unwrap();
        let log = setup.dir.path().join("gateway.log");
        let child = Command::new(env!("CARGO_BIN_EXE_pacs-gateway"))
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start pacs-gateway");
        let mut gateway = GatewayProcess {
            child,
            tls_port,
            https_port,
            metrics_port,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", metrics_port)).is_err() {
            if let Some(status) = gateway.child.try_wait().unwrap() {
                panic!("pacs-gateway exited with {status}\n{}", gateway.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "pacs-gateway not listening after 30 s\n{}",
                gateway.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        gateway
    }

    /// Everything the process wrote to stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last 4,000 bytes of the log.
    pub fn log_tail(&self) -> String {
        let text = self.log_text();
        let start = text.len().saturating_sub(4000);
        let start = (start..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text[start..].to_string()
    }

    /// The DICOM TLS listener.
    pub fn tls_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.tls_port))
    }

    /// The HTTPS listener.
    pub fn https_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.https_port))
    }

    /// The text of `/metrics` from the plain-HTTP metrics port.
    pub async fn scrape(&self) -> String {
        reqwest::get(format!("http://127.0.0.1:{}/metrics", self.metrics_port))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("/metrics text")
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The value of the metric line starting with `prefix`, or 0.
pub fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// `pacs_gateway_connections_refused_total{listener=..,reason=..}`.
pub fn refused_metric(listener: &str, reason: &str) -> String {
    format!("pacs_gateway_connections_refused_total{{listener=\"{listener}\",reason=\"{reason}\"}}")
}
