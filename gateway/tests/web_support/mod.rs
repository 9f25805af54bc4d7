//! Shared by the DICOMweb tests: a real `Application` with HTTPS and a plain DICOM
//! port, two facilities with a clinician each, a reqwest client trusting the dev CA,
//! and small readers of DICOM JSON and multipart/related bodies.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};

use crate::common::data::{self, CT, Spec};
use crate::common::{Backend, Options, Setup, args, dcmtk_async};
use crate::http_support::{DOC_A, DOC_B, OTHER, OTHER_AE, PASSWORD, fast_auth};
use gateway::app::Application;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::oneshot;

/// A running gateway.
pub struct Running {
    pub setup: Setup,
    pub https_port: u16,
    pub plain_port: u16,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub fn base(&self) -> String {
        format!("https://localhost:{}/dicom-web", self.https_port)
    }

    pub fn client(&self) -> reqwest::Client {
        let ca = std::fs::read(&self.setup.cert.ca).unwrap();
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .build()
            .unwrap()
    }

    pub async fn stop(self) -> Setup {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
        self.setup
    }

    /// Stores `files` over the plain DICOM port as the main facility's modality.
    pub async fn store(&self, files: &[PathBuf]) {
        self.store_with(files, &[]).await;
    }

    /// Stores `files` with extra storescu options (`-xt` for JPEG-LS, `-xr` for RLE).
    pub async fn store_with(&self, files: &[PathBuf], options: &[&str]) {
        let mut list = args(options);
        list.extend(args(&[
            "-aet",
            crate::common::PLAIN_AE,
            "-aec",
            crate::common::GATEWAY_AE,
            "127.0.0.1",
            &self.plain_port.to_string(),
        ]));
        list.extend(files.iter().map(|f| f.display().to_string()));
        let out = dcmtk_async("storescu", list).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

pub async fn user(index: &gateway::db::Index, facility: gateway::domain::FacilityId, name: &str) {
    let hash = gateway::auth::hash_password(&fast_auth(), &gateway::auth::Password::new(PASSWORD))
        .unwrap();
    index
        .create_user(
            facility,
            &gateway::auth::Username::parse(name).unwrap(),
            gateway::auth::Role::Clinician,
            &hash,
        )
        .await
        .unwrap();
}

pub async fn start(backend: Backend, options: Options) -> Running {
    let mut setup = Setup::new(backend, &options).await;
    setup.config.auth = fast_auth();
    let other = setup.add_plain_facility(OTHER, OTHER_AE).await;
    let index = setup.index().await;
    user(&index, setup.facility.id, DOC_A).await;
    user(&index, other.id, DOC_B).await;
    index.close().await;
    let app = Application::build(setup.config.clone())
        .await
        .expect("build");
    let https_port = app.https_port().expect("https port");
    let plain_port = app.plain_port().unwrap();
    let (stop, rx) = oneshot::channel();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    Running {
        setup,
        https_port,
        plain_port,
        stop,
        task,
    }
}

/// Three CT instances: two in study 1 (series 1 and 2... by `Spec::new`), one in study 2.
pub fn fixtures(dir: &Path) -> Vec<(Spec, PathBuf)> {
    [0u32, 3, 1]
        .into_iter()
        .map(|n| {
            let mut spec = Spec::new(CT, "CT", n);
            spec.deidentified = true;
            let path = data::write(&dir.join(format!("ct{n}.dcm")), &spec);
            (spec, path)
        })
        .collect()
}

pub async fn get(
    client: &reqwest::Client,
    url: &str,
    user: &str,
    accept: Option<&str>,
) -> reqwest::Response {
    let mut request = client.get(url).basic_auth(user, Some(PASSWORD));
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    request.send().await.unwrap()
}

pub async fn json(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub fn value<'a>(item: &'a Value, tag: &str) -> Option<&'a Value> {
    item.get(tag)
        .and_then(|e| e.get("Value"))
        .and_then(|v| v.get(0))
}

/// Splits a multipart/related body into (part headers, part body).
pub fn parts(content_type: &str, body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .expect("boundary")
        .trim_matches('"');
    let delimiter = format!("--{boundary}").into_bytes();
    let mut out = Vec::new();
    let mut positions = Vec::new();
    let mut i = 0;
    while i + delimiter.len() <= body.len() {
        if body[i..].starts_with(&delimiter) {
            positions.push(i);
            i += delimiter.len();
        } else {
            i += 1;
        }
    }
    for pair in positions.windows(2) {
        let part = &body[pair[0] + delimiter.len()..pair[1]];
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        let part = part.strip_suffix(b"\r\n").unwrap_or(part);
        let split = part
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("part headers");
        out.push((
            String::from_utf8_lossy(&part[..split]).into_owned(),
            part[split + 4..].to_vec(),
        ));
    }
    out
}
