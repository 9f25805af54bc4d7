//! One DICOMweb service as the benchmark calls it: a base URL, a reqwest client
//! (HTTP/1.1 with keep-alive for both peers, so neither gets HTTP/2's multiplexing)
//! and, for the gateway, HTTP Basic credentials sent with every request.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// A DICOMweb service.
#[derive(Debug, Clone)]
pub struct WebPeer {
    /// Name for tables.
    pub name: &'static str,
    /// Service root, without the trailing slash (`.../dicom-web`).
    pub base: String,
    client: reqwest::Client,
    basic: Option<(String, String)>,
}

impl WebPeer {
    /// The gateway at `https://localhost:PORT/dicom-web` (resolved to 127.0.0.1),
    /// trusting only the CA in `ca`, as `user`.
    pub fn gateway(port: u16, ca: &Path, user: &str, password: &str) -> Result<WebPeer> {
        let pem = std::fs::read(ca).with_context(|| format!("read {}", ca.display()))?;
        let client = builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&pem)?)
            .resolve("localhost", SocketAddr::from(([127, 0, 0, 1], port)))
            .build()?;
        Ok(WebPeer {
            name: "gateway",
            base: format!("https://localhost:{port}/dicom-web"),
            client,
            basic: Some((user.into(), password.into())),
        })
    }

    /// Orthanc's DICOMweb plugin at `http://127.0.0.1:PORT/dicom-web`.
    pub fn orthanc(port: u16) -> Result<WebPeer> {
        Ok(WebPeer {
            name: "Orthanc",
            base: format!("http://127.0.0.1:{port}/dicom-web"),
            client: builder().build()?,
            basic: None,
        })
    }

    /// `GET base + path` with `accept`; the whole body, or an error on a non-2xx
    /// status. Clones share one connection pool: concurrent requests each get a
    /// connection of their own, kept alive for the next.
    pub async fn get(&self, path: &str, accept: &str) -> Result<impl AsRef<[u8]> + use<>> {
        let mut request = self
            .client
            .get(format!("{}{path}", self.base))
            .header(reqwest::header::ACCEPT, accept);
        if let Some((user, password)) = &self.basic {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            bail!(
                "{} GET {path}: {status}: {}",
                self.name,
                String::from_utf8_lossy(&body[..body.len().min(300)])
            );
        }
        Ok(body)
    }
}

fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .http1_only()
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(300))
        .timeout(Duration::from_secs(300))
}
